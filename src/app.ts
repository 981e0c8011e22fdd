// The running application: proxy listener + admin listener + the pieces that feed them
// (revocation, lifecycle). SIGHUP, the file watcher and POST /reload all call the same reload().

import type { AddressInfo } from 'node:net';
import { unsupportedIssues } from './config/load.js';
import type { Config } from './config/types.js';
import { ensureAdminToken } from './admin/auth.js';
import { AdminServer } from './admin/server.js';
import { registerRevocationRoutes } from './admin/revocations.js';
import { CompositeRevocationChecker } from './revocation/checker.js';
import type { LocalRevocationList } from './revocation/local-list.js';
import { formatConfigIssue } from './config/issues.js';
import { registerLifecycleRoutes } from './admin/lifecycle-routes.js';
import { registerDashboard } from './admin/dashboard.js';
import { createAlerts, type AppAlerts } from './alerts/wiring.js';
import type { AlertLedger } from './alerts/ledger.js';
import { RedisAlertLedger } from './store/alert-ledger-redis.js';
import { crlItem } from './lifecycle/expiry.js';
import { Lifecycle } from './lifecycle/lifecycle.js';
import { Monitors } from './lifecycle/monitors.js';
import { TicketKeyRotator } from './lifecycle/ticket-keys.js';
import { createLoggers, type Loggers } from './log.js';
import { Certgate, type ReloadResult } from './server.js';
import type { EstHandler } from './ca/est-route.js';
import { MaterialError, materialConfigIssues } from './tls/material.js';
import { openStore, type Store } from './store/index.js';
import type { FleetInventory } from './store/inventory-redis.js';
import { instanceName } from './store/redis-client.js';
import { keepStringMethodsFast } from './util/v8-strings.js';

export interface App {
  readonly certgate: Certgate;
  readonly admin: AdminServer | undefined;
  readonly config: Config;
  readonly loggers: Loggers;
  readonly lifecycle: Lifecycle;
  readonly monitors: Monitors;
  readonly revocation: CompositeRevocationChecker;
  readonly alerts: AppAlerts;
  readonly store: Store;
  /** With a Redis store: this process's part of the fleet inventory. */
  readonly fleet: FleetInventory | undefined;
  readonly port: number;
  readonly adminPort: number | undefined;
  reload(): ReloadResult;
  stop(): Promise<void>;
}

export interface AppOptions {
  readonly handleSignals?: boolean;
  /** A worker passes the rotator its primary pushes keys into; otherwise one is made here. */
  readonly tickets?: TicketKeyRotator;
  /** A cluster worker changes what it loads (no admin, no watcher) at start and on every reload. */
  readonly adjustConfig?: (c: Config) => Config;
  /** A worker passes a memory-only revocation list that its primary feeds (replace()). */
  readonly revocationList?: LocalRevocationList;
  /** A worker's slot (1..N). */
  readonly worker?: number;
}

export async function startApp(config: Config, opts: AppOptions = {}): Promise<App> {
  const unsupported = unsupportedIssues(config);
  if (unsupported.length > 0) throw new Error(unsupported.map(formatConfigIssue).join('\n'));
  const loggers = createLoggers(config.log);
  const tickets = opts.tickets ?? new TicketKeyRotator({ intervalMs: config.tls.ticketRotate });
  // The revocation list is loaded (from Redis or the local copy) before any listener opens.
  const store = await openStore(config, loggers.log, opts.revocationList ? { revocationList: opts.revocationList, ...(opts.worker !== undefined ? { worker: opts.worker } : {}) } : {});
  // The CA is opened only when EST is on (it reads the CA directory and its signing key).
  const est: EstHandler | undefined = config.est?.enabled === true
    ? await (await import('./ca/est.js')).EstServer.open(config.est, loggers.log, store).catch(async (err: unknown) => {
      await store.close();
      throw err;
    })
    : undefined;
  keepStringMethodsFast();
  let certgate: Certgate;
  try {
    certgate = new Certgate({ config, loggers, ticketKeys: tickets.current, ...(est !== undefined ? { est } : {}), ...(opts.adjustConfig ? { adjustConfig: opts.adjustConfig } : {}) });
  } catch (err) {
    // Redis connections would keep a failed start's process alive.
    await store.close();
    if (err instanceof MaterialError) throw new Error(materialConfigIssues(config, err).map(formatConfigIssue).join('\n'));
    throw err;
  }
  let revocation: CompositeRevocationChecker;
  try {
    revocation = new CompositeRevocationChecker({ runtime: certgate.runtime, log: loggers.log, localList: store.revocations.list });
  } catch (err) {
    // Redis connections would keep a failed start's process alive.
    await store.close();
    if (err instanceof MaterialError) throw new Error(materialConfigIssues(config, err).map(formatConfigIssue).join('\n'));
    throw err;
  }
  // CRL URLs are fetched once before the listener opens (bounded by their timeouts).
  await revocation.ready();
  certgate.setRevocation(revocation);
  let alerts: AppAlerts | undefined;
  const monitors = new Monitors({ log: loggers.log, policy: config.clientCertPolicy, onResult: (m, r) => alerts?.alerts.monitorResult(m.address, r) });
  const reload = () => certgate.reload();
  const lifecycle = new Lifecycle({ certgate, config, log: loggers.log, reload, tickets });
  try {
    const link = store.link;
    const shared = link !== undefined ? (local: AlertLedger) => new RedisAlertLedger(link.redis, link.prefix, local) : undefined;
    alerts = createAlerts(config, loggers.log, lifecycle, revocation.local, shared);
    const a = alerts.alerts;
    store.onStoreUnavailable((reason) => a.storeUnavailable('redis', reason));
    store.onStoreAvailable(() => a.storeAvailable('redis'));
  } catch (err) {
    lifecycle.stop();
    await certgate.abort();
    await store.close();
    throw err;
  }
  // Named once the listener is bound (the default name is hostname:port).
  let boundPort: number | undefined;
  const fleet = store.inventory({
    inventory: lifecycle.inventory,
    instance: () => instanceName(config, boundPort),
    maxEntries: () => certgate.runtime.config.inventory.maxEntries,
    log: loggers.log,
  });
  // Re-configured from each new runtime, after the listener and revocation; alerts before the
  // lifecycle, whose expiry re-check they hang off.
  certgate.follow(monitors);
  certgate.follow(alerts.alerts);
  certgate.follow(lifecycle);
  lifecycle.expiry.addSource(() => monitors.items());
  // CRLs are judged by their own validity (expiry.ts), and exported like a notAfter.
  lifecycle.expiry.addSource(() => revocation.describe().crls.flatMap(crlItem));
  let admin: AdminServer | undefined;
  let adminPort: number | undefined;
  // Ready only once every listener is bound: a start that fails half-way never says ready.
  let ready = false;
  if (config.admin.enabled) {
    admin = new AdminServer(loggers.log, { token: ensureAdminToken(config.admin.tokenFile), access: certgate.runtime.admin, revocation: () => revocation });
    const a = admin;
    certgate.follow({ apply: (next) => a.apply(next.admin) });
    admin.route('GET', '/healthz', (r) => r.json(200, { status: 'ok' }));
    admin.route('GET', '/readyz', (r) =>
      !ready ? r.json(503, { status: 'starting', ...store.readiness() })
      : certgate.draining ? r.json(503, { status: 'draining', ...store.readiness() })
      : r.json(200, { status: 'ready', generation: certgate.runtime.generation, ...store.readiness() }),
    );
    admin.route('POST', '/reload', (r) => {
      const result = reload();
      loggers.log.info({ event: 'audit', actor: r.actor, action: 'reload', ok: result.ok }, 'admin reload');
      r.json(result.ok ? 200 : 422, result);
    });
    registerLifecycleRoutes(admin, lifecycle, fleet);
    registerRevocationRoutes(admin, { list: revocation.local, store: store.revocations, log: loggers.log, describe: () => revocation.describe() });
    const runtime = () => certgate.runtime;
    registerDashboard(admin, { lifecycle, monitors, revocation, generation: () => runtime().generation, warnDays: () => runtime().config.expiry.warnDays, store: () => ({ kind: store.kind, state: store.readiness().store === 'down' ? 'unavailable' : 'ok' }) });
  }
  let addr: AddressInfo;
  try {
    if (admin !== undefined) adminPort = (await bind('admin listener', config.admin.host, config.admin.port, () => admin!.listen(config.admin.host, config.admin.port))).port;
    addr = await bind('proxy listener', config.listen.host, config.listen.port, () => certgate.listen());
  } catch (err) {
    // Close what was opened and stop every timer and watcher, so that the process can exit.
    lifecycle.stop();
    monitors.stop();
    await Promise.allSettled([certgate.abort(), admin?.close(), alerts.close(), store.close()]);
    loggers.flush();
    throw err;
  }
  boundPort = addr.port;
  ready = true;
  alerts.start(addr.port);
  monitors.apply(certgate.runtime);
  loggers.log.info(
    { event: 'listening', host: addr.address, port: addr.port, adminPort, routes: config.routes.length },
    'certgate listening',
  );
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await certgate.shutdown();
      lifecycle.stop();
      monitors.stop();
      await Promise.allSettled([admin?.close(), alerts.close(), store.close()]);
    })());
  if (opts.handleSignals) {
    process.on('SIGHUP', reload);
    const onTerm = () => void stop().then(() => process.exit(0));
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onTerm);
  }
  return { certgate, admin, config, loggers, lifecycle, monitors, revocation, alerts, store, fleet, port: addr.port, adminPort, reload, stop };
}

/** A listener that cannot bind stops the start; the message names which one. */
export async function bind(what: string, host: string, port: number, listen: () => Promise<AddressInfo>): Promise<AddressInfo> {
  try {
    return await listen();
  } catch (err) {
    throw new Error(`${what} ${host}:${port}: ${(err as Error).message}`);
  }
}
