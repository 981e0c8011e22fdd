// The running application: proxy listener + admin listener + the pieces that feed them
// (revocation, lifecycle). SIGHUP, the file watcher and POST /reload all call the same reload().

import type { Config } from './config/types.js';
import { ensureAdminToken } from './admin/auth.js';
import { AdminServer } from './admin/server.js';
import { formatConfigIssue } from './errors.js';
import { createLoggers, type Loggers } from './log.js';
import { Certgate, type ReloadResult } from './server.js';
import { MaterialError, materialConfigIssues } from './tls/material.js';

export interface App {
  readonly certgate: Certgate;
  readonly admin: AdminServer | undefined;
  readonly config: Config;
  readonly loggers: Loggers;
  readonly port: number;
  readonly adminPort: number | undefined;
  reload(): ReloadResult;
  stop(): Promise<void>;
}

export interface AppOptions {
  readonly handleSignals?: boolean;
}

export async function startApp(config: Config, opts: AppOptions = {}): Promise<App> {
  const loggers = createLoggers(config.log);
  let certgate: Certgate;
  try {
    certgate = new Certgate({ config, loggers });
  } catch (err) {
    if (err instanceof MaterialError) throw new Error(materialConfigIssues(config, err).map(formatConfigIssue).join('\n'));
    throw err;
  }
  const reload = () => certgate.reload();
  let admin: AdminServer | undefined;
  let adminPort: number | undefined;
  if (config.admin.enabled) {
    admin = new AdminServer(loggers.log, ensureAdminToken(config.admin.tokenFile));
    admin.route('GET', '/healthz', (r) => r.json(200, { status: 'ok' }));
    admin.route('GET', '/readyz', (r) =>
      certgate.draining ? r.json(503, { status: 'draining' }) : r.json(200, { status: 'ready', generation: certgate.runtime.generation }),
    );
    admin.route('POST', '/reload', (r) => {
      const result = reload();
      loggers.log.info({ event: 'audit', actor: r.actor, action: 'reload', ok: result.ok }, 'admin reload');
      r.json(result.ok ? 200 : 422, result);
    });
    adminPort = (await admin.listen(config.admin.host, config.admin.port)).port;
  }
  const addr = await certgate.listen();
  loggers.log.info(
    { event: 'listening', host: addr.address, port: addr.port, adminPort, routes: config.routes.length },
    'certgate listening',
  );
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await certgate.shutdown();
      await admin?.close();
    })());
  if (opts.handleSignals) {
    process.on('SIGHUP', reload);
    const onTerm = () => void stop().then(() => process.exit(0));
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onTerm);
  }
  return { certgate, admin, config, loggers, port: addr.port, adminPort, reload, stop };
}
