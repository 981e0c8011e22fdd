// `workers` > 1: certgate on node:cluster, one worker per core sharing the proxy listener.
// The primary serves no proxy traffic. It owns what must be one for all workers: the admin
// listener, the durable local revocation list, reload (SIGHUP, POST /reload, the file watcher)
// and the TLS ticket keys (so a session resumes on whichever worker the connection lands), and
// pushes them to the workers over IPC. /metrics aggregates every worker's registry.
//
// IPC messages are { certgate: <kind>, ... }; prom-client's own messages pass beside them.

import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from 'pino';
import { ensureAdminToken } from './admin/auth.js';
import { certsReport, mergeCertsReports, sendCerts, type CertsReport } from './admin/lifecycle-routes.js';
import { registerRevocationRoutes } from './admin/revocations.js';
import { AdminServer } from './admin/server.js';
import { adminAccessFromFile, adminAccessOf } from './admin/load-access.js';
import { bind, startApp, type App } from './app.js';
import type { Config } from './config/types.js';
import { TicketKeyRotator } from './lifecycle/ticket-keys.js';
import { ReloadWatcher, materialProblems, watchedFiles } from './lifecycle/watch.js';
import { createLoggers } from './log.js';
import { registry } from './metrics.js';
import { LocalRevocationList, type RevocationEntry } from './revocation/local-list.js';
import { Inventory } from './lifecycle/inventory.js';
import { openStore } from './store/index.js';
import { instanceName } from './store/redis-client.js';
import type { ReloadResult } from './server.js';
import type { Identity } from './identity/types.js';
import { GOOD, type RevocationStatus } from './revocation/types.js';

type ToWorker =
  | { certgate: 'init'; tickets: string; revocations: RevocationEntry[] }
  | { certgate: 'tickets'; keys: string }
  | { certgate: 'revocations'; entries: RevocationEntry[]; seq: number }
  | { certgate: 'reload'; id: number }
  | { certgate: 'certs'; id: number }
  | { certgate: 'shutdown' };

type FromWorker =
  | { certgate: 'hello' }
  | { certgate: 'listening'; port: number; host: string }
  | { certgate: 'reloaded'; id: number; result: ReloadResult }
  | { certgate: 'revocations-applied'; seq: number }
  | { certgate: 'certs'; id: number; report: CertsReport }
  | { certgate: 'fatal'; message: string };

function isOurs<T extends { certgate: string }>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && typeof (m as { certgate?: unknown }).certgate === 'string';
}

export interface ClusterPrimary {
  readonly workers: number;
  readonly port: number;
  readonly adminPort: number | undefined;
  /** Reload in every worker; resolves with each worker's result. */
  reload(): Promise<{ ok: boolean; results: ReloadResult[] }>;
  stop(): Promise<void>;
}

/** Runs the primary: forks `config.workers` workers and serves admin. */
export async function startPrimary(config: Config, opts: { handleSignals?: boolean } = {}): Promise<ClusterPrimary> {
  const loggers = createLoggers(config.log);
  const log = loggers.log.child({ role: 'primary' });
  const tickets = new TicketKeyRotator({ intervalMs: config.tls.ticketRotate }).start();
  // The primary holds the store (with Redis: the fleet's list, loaded before any worker starts).
  const store = await openStore(config, log);
  const revocations = store.revocations.list;
  const workers = new Set<Worker>();
  const broadcast = (m: ToWorker) => {
    for (const w of workers) if (w.isConnected()) w.send(m);
  };
  tickets.onRotate((keys) => broadcast({ certgate: 'tickets', keys: keys.toString('base64') }));
  // Every change (admin API here, or the offline CLI appending to the file) reaches every worker;
  // the admin API answers only once every worker has applied it (or after a short deadline).
  // GET /certs: every worker keeps its own inventory; the primary asks them all and merges.
  let certsSeq = 0;
  const certsReplies = new Map<number, (w: Worker, report: CertsReport) => void>();
  const gatherCerts = (): Promise<CertsReport[]> =>
    new Promise((resolve) => {
      const id = ++certsSeq;
      const live = [...workers].filter((w) => w.isConnected());
      const reports: CertsReport[] = [];
      const left = new Set(live);
      const finish = () => {
        certsReplies.delete(id);
        clearTimeout(timer);
        resolve(reports);
      };
      const timer = setTimeout(finish, 2000);
      certsReplies.set(id, (w, report) => {
        if (!left.delete(w)) return;
        reports.push(report);
        if (left.size === 0) finish();
      });
      if (live.length === 0) return finish();
      for (const w of live) w.send({ certgate: 'certs', id } satisfies ToWorker);
    });
  let revSeq = 0;
  const appliedSeq = new Map<Worker, number>();
  const revWaiters = new Set<() => void>();
  const allApplied = (seq: number) => [...workers].every((w) => !w.isConnected() || (appliedSeq.get(w) ?? 0) >= seq);
  revocations.onChange(() => broadcast({ certgate: 'revocations', entries: revocations.entries(), seq: ++revSeq }));
  const revocationsPropagated = (): Promise<void> => {
    const seq = revSeq;
    if (allApplied(seq)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = () => {
        if (!allApplied(seq)) return;
        clearTimeout(timer);
        revWaiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        revWaiters.delete(check);
        log.warn({ event: 'revocation_propagation_slow', seq }, 'not every worker confirmed the revocation within 5 s');
        resolve();
      }, 5000);
      revWaiters.add(check);
    });
  };

  let stopping = false;
  let reloadSeq = 0;
  const pendingReloads = new Map<number, { left: Set<Worker>; results: ReloadResult[]; done: () => void }>();
  let listening: (addr: { port: number; host: string }) => void = () => {};
  const firstListening = new Promise<{ port: number; host: string }>((r) => (listening = r));
  const listeningWorkers = new Set<Worker>();
  const listenWaiters = new Set<() => void>();
  const allListening = (): Promise<void> =>
    new Promise((resolve) => {
      const check = () => {
        if ([...workers].every((w) => listeningWorkers.has(w))) {
          listenWaiters.delete(check);
          resolve();
        }
      };
      listenWaiters.add(check);
      check();
    });
  let failed: (err: Error) => void = () => {};
  const startFailed = new Promise<never>((_, reject) => (failed = reject));

  // Each worker has a stable slot (1..N), reused when a worker is replaced, so that per-worker
  // state on disk (its inventory file) survives restarts and respawns.
  const slots = new Map<Worker, number>();
  /** Workers that could not start (a listener that cannot bind): never respawned. */
  const fatal = new Set<Worker>();
  let started = false;
  const fork = (slot: number): Worker => {
    const w = cluster.fork({ CERTGATE_WORKER: '1', CERTGATE_WORKER_SLOT: String(slot) });
    slots.set(w, slot);
    workers.add(w);
    w.on('message', (m: unknown) => {
      if (!isOurs<FromWorker>(m)) return;
      switch (m.certgate) {
        case 'hello':
          w.send({ certgate: 'init', tickets: tickets.current.toString('base64'), revocations: revocations.entries() } satisfies ToWorker);
          break;
        case 'listening':
          listeningWorkers.add(w);
          listening({ port: m.port, host: m.host });
          for (const check of [...listenWaiters]) check();
          break;
        case 'certs':
          certsReplies.get(m.id)?.(w, m.report);
          break;
        case 'revocations-applied':
          appliedSeq.set(w, m.seq);
          for (const check of [...revWaiters]) check();
          break;
        case 'reloaded': {
          const p = pendingReloads.get(m.id);
          if (p === undefined) break;
          p.results.push(m.result);
          p.left.delete(w);
          if (p.left.size === 0) p.done();
          break;
        }
        case 'fatal':
          fatal.add(w);
          log.error({ event: 'worker_start_failed', pid: w.process.pid }, m.message);
          failed(new Error(m.message));
          break;
      }
    });
    w.on('exit', (code, signal) => {
      workers.delete(w);
      appliedSeq.delete(w);
      for (const check of [...revWaiters]) check();
      for (const p of pendingReloads.values()) if (p.left.delete(w) && p.left.size === 0) p.done();
      if (stopping) return;
      // A worker that cannot start would fail again: before the start is complete it ends the
      // start, after it the others keep serving.
      if (!started || fatal.delete(w)) {
        if (!started) failed(new Error(`a worker exited during start (code ${code}, signal ${signal})`));
        slots.delete(w);
        return;
      }
      log.error({ event: 'worker_exit', pid: w.process.pid, code, signal }, 'a worker exited; starting another');
      const slot = slots.get(w) ?? 1;
      slots.delete(w);
      setTimeout(() => !stopping && fork(slot), 500).unref();
    });
    return w;
  };
  /** A start that fails half-way: workers, timers and the admin listener go, then the error. */
  const abort = async (err: unknown): Promise<never> => {
    stopping = true;
    tickets.stop();
    await store.close();
    const exits = [...workers].map((w) => new Promise<void>((res) => (w.isDead() ? res() : w.once('exit', () => res()))));
    for (const w of workers) w.process.kill('SIGKILL');
    await Promise.all(exits);
    loggers.flush();
    throw err;
  };
  startFailed.catch(() => {});
  for (let i = 1; i <= config.workers; i++) fork(i);
  let addr: { port: number; host: string };
  try {
    addr = await Promise.race([firstListening, startFailed]);
  } catch (err) {
    return abort(err);
  }

  let admin: AdminServer | undefined;
  const reloadAll = async (): Promise<{ ok: boolean; results: ReloadResult[] }> => {
    // The admin listener runs here: its TLS material and allow list are checked with the rest,
    // and applied only when every worker reloaded.
    const nextAdmin = admin === undefined ? undefined : adminAccessFromFile(config.file);
    if (Array.isArray(nextAdmin)) {
      for (const e of nextAdmin) log.error({ event: 'reload_failed' }, e);
      return { ok: false, results: [{ ok: false, errors: nextAdmin, generation: reloadSeq }] };
    }
    const id = ++reloadSeq;
    const live = [...workers].filter((w) => w.isConnected());
    const results: ReloadResult[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 30_000);
      pendingReloads.set(id, { left: new Set(live), results, done: () => (clearTimeout(timer), resolve()) });
      if (live.length === 0) resolve();
      for (const w of live) w.send({ certgate: 'reload', id } satisfies ToWorker);
    });
    pendingReloads.delete(id);
    const ok = results.length === live.length && results.every((r) => r.ok);
    if (ok && nextAdmin !== undefined) admin?.apply(nextAdmin);
    log.info({ event: ok ? 'reloaded' : 'reload_failed', workers: live.length }, ok ? 'every worker reloaded' : 'reload failed in a worker');
    return { ok, results };
  };
  /** The watcher and SIGHUP: checks the files here first, then reloads every worker and answers
   *  with their real result (a worker that fails makes it fail). */
  const reloadEverywhere = async (): Promise<ReloadResult> => {
    const errors = materialProblems(config.file);
    if (errors.length > 0) {
      for (const e of errors) log.error({ event: 'reload_failed' }, e);
      return { ok: false, errors, generation: reloadSeq };
    }
    const r = await reloadAll();
    return { ok: r.ok, errors: [...new Set(r.results.flatMap((x) => x.errors))], generation: reloadSeq };
  };

  let adminPort: number | undefined;
  if (config.admin.enabled) {
    const aggregator = new AggregatorRegistry();
    const access = adminAccessOf(config);
    if (Array.isArray(access)) return abort(new Error(access.join('\n')));
    // Admin certificates are checked against the primary's local list, the one workers follow.
    const adminRevocation = {
      check: (id: Identity): RevocationStatus => {
        const e = revocations.lookup(id);
        return e === undefined ? GOOD : { state: 'revoked', source: 'local', reason: e.reason, detail: `local revocation ${e.id}` };
      },
    };
    admin = new AdminServer(log, { token: ensureAdminToken(config.admin.tokenFile), access, revocation: () => adminRevocation });
    admin.route('GET', '/healthz', (r) => r.json(200, { status: 'ok', workers: workers.size }));
    admin.route('GET', '/readyz', (r) =>
      stopping || workers.size === 0 ? r.json(503, { status: stopping ? 'draining' : 'no workers', ...store.readiness() }) : r.json(200, { status: 'ready', workers: workers.size, ...store.readiness() }),
    );
    admin.route('POST', '/reload', async (r) => {
      const errors = materialProblems(config.file);
      const result = errors.length > 0 ? { ok: false, results: [{ ok: false, errors, generation: reloadSeq }] } : await reloadAll();
      log.info({ event: 'audit', actor: r.actor, action: 'reload', ok: result.ok }, 'admin reload');
      r.json(result.ok ? 200 : 422, { ok: result.ok, errors: [...new Set(result.results.flatMap((x) => x.errors))], workers: result.results.length });
    });
    admin.route('GET', '/metrics', async (r) => {
      r.text(200, await aggregator.clusterMetrics(), aggregator.contentType);
    });
    registerRevocationRoutes(admin, { list: revocations, store: store.revocations, log, propagated: revocationsPropagated });
    // With Redis the workers write their inventories to the fleet (each under its own field):
    // the primary reads the fleet view, once every worker has flushed, with an inventory of its
    // own that stays empty (it serves no traffic). Redis out of reach: the workers' merged.
    const fleet = store.inventory({
      inventory: new Inventory({ maxEntries: config.inventory.maxEntries }),
      instance: () => instanceName(config, addr.port),
      maxEntries: () => config.inventory.maxEntries,
      log,
    });
    admin.route('GET', '/certs', async (r) => {
      const reports = await gatherCerts();
      if (fleet === undefined) return sendCerts(r, reports);
      const view = await fleet.clients();
      const merged = mergeCertsReports(reports);
      const clients = view.fleet ? view.clients : merged.clients.map((c) => ({ ...c, instances: [view.instance] }));
      sendCerts(r, [{ ...merged, clients, fleet: view.fleet, instance: view.instance }]);
    });
  }
  try {
    if (admin !== undefined) adminPort = (await bind('admin listener', config.admin.host, config.admin.port, () => admin!.listen(config.admin.host, config.admin.port))).port;
    // Every worker must be listening (or have failed) before the start counts as done.
    await Promise.race([allListening(), startFailed]);
  } catch (err) {
    await admin?.close();
    return abort(err);
  }
  started = true;
  const watcher = config.watch.enabled ? new ReloadWatcher({ log, debounceMs: config.watch.debounce, reload: reloadEverywhere, configFile: config.file }) : undefined;
  watcher?.setFiles(watchedFiles(config));

  log.info({ event: 'listening', host: addr.host, port: addr.port, adminPort, workers: config.workers, routes: config.routes.length }, 'certgate listening');

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      stopping = true;
      watcher?.close();
      tickets.stop();
      await store.close();
      const exits = [...workers].map((w) => new Promise<void>((res) => (w.isDead() ? res() : w.once('exit', () => res()))));
      broadcast({ certgate: 'shutdown' });
      const kill = setTimeout(() => {
        for (const w of workers) w.process.kill('SIGKILL');
      }, config.timeouts.shutdown + 2000);
      kill.unref();
      await Promise.all(exits);
      clearTimeout(kill);
      await admin?.close();
      log.info({ event: 'stopped' }, 'certgate stopped');
      loggers.flush();
    })());
  if (opts.handleSignals) {
    process.on('SIGHUP', () => void reloadEverywhere());
    const onTerm = () => void stop().then(() => process.exit(0));
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onTerm);
  }
  return { workers: config.workers, port: addr.port, adminPort, reload: reloadAll, stop };
}

/** Runs one worker: waits for the primary's keys and revocation list, then serves the proxy. */
export async function startWorker(config: Config): Promise<App> {
  // Constructing one installs prom-client's worker-side listener that answers the primary.
  void new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const send = (m: FromWorker) => process.send?.(m);
  const init = await new Promise<Extract<ToWorker, { certgate: 'init' }>>((resolve) => {
    const onInit = (m: unknown) => {
      if (isOurs<ToWorker>(m) && m.certgate === 'init') {
        process.off('message', onInit);
        resolve(m);
      }
    };
    process.on('message', onInit);
    send({ certgate: 'hello' });
  });
  const tickets = new TicketKeyRotator({ intervalMs: 0, initial: Buffer.from(init.tickets, 'base64') });
  const list = new LocalRevocationList({ dataDir: undefined });
  list.replace(init.revocations);
  // The primary serves admin and watches files: a worker does neither.
  // Each worker keeps its own inventory file (GET /certs on the primary merges them).
  const slot = Number(process.env['CERTGATE_WORKER_SLOT'] ?? '1');
  // The same adjustments at start and on every reload: a reload reads the file as the primary
  // wrote it (admin enabled), which must not count as a change to a restart-only key.
  const forWorker = (c: Config): Config => ({
    ...c,
    admin: { ...c.admin, enabled: false },
    watch: { ...c.watch, enabled: false },
    inventory: c.inventory.file === undefined ? c.inventory : { ...c.inventory, file: `${c.inventory.file}.worker${slot}` },
  });
  const workerConfig = forWorker(config);
  let app: App;
  try {
    app = await startApp(workerConfig, { tickets, revocationList: list, adjustConfig: forWorker, worker: slot });
  } catch (err) {
    // Told to the primary, which ends the start; the IPC channel would keep this process alive.
    process.send?.({ certgate: 'fatal', message: (err as Error).message } satisfies FromWorker, undefined, {}, () => process.disconnect?.());
    throw err;
  }
  const log: Logger = app.loggers.log;
  process.on('message', (m: unknown) => {
    if (!isOurs<ToWorker>(m)) return;
    switch (m.certgate) {
      case 'tickets':
        tickets.set(Buffer.from(m.keys, 'base64'));
        break;
      case 'revocations':
        list.replace(m.entries);
        send({ certgate: 'revocations-applied', seq: m.seq });
        break;
      case 'reload':
        send({ certgate: 'reloaded', id: m.id, result: app.reload() });
        break;
      case 'certs': {
        // With Redis the primary reads the fleet view next: write what changed first (bounded,
        // so a slow Redis does not hold up the answer).
        const id = m.id;
        const reply = () => send({ certgate: 'certs', id, report: certsReport(app.lifecycle) });
        if (app.fleet === undefined) reply();
        else void Promise.race([app.fleet.flush(), new Promise((r) => setTimeout(r, 1000).unref())]).then(reply);
        break;
      }
      case 'shutdown':
        void app.stop().then(() => process.exit(0));
        break;
    }
  });
  // The primary decides when to stop; a terminal's Ctrl-C reaches every process of the group.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => void app.stop().then(() => process.exit(0)));
  log.debug({ event: 'worker_listening', pid: process.pid }, 'worker listening');
  send({ certgate: 'listening', port: app.port, host: config.listen.host });
  return app;
}

export const isClusterWorker = (): boolean => cluster.isWorker && process.env.CERTGATE_WORKER === '1';
