// How the application connects alerts to what it already runs: the expiry monitor's checks, the
// inventory, the local revocation list. app.ts calls createAlerts() before the listeners are
// followed (so a reload configures alerts before the lifecycle re-checks expiry) and start()
// once the listeners are bound (the port names the instance).

import cluster from 'node:cluster';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { Lifecycle } from '../lifecycle/lifecycle.js';
import type { LocalRevocationList } from '../revocation/local-list.js';
import { instanceName } from '../store/redis-client.js';
import { Alerts } from './alerts.js';
import { FileLedger, type AlertLedger } from './ledger.js';

/** Beside the durable revocation list: the state that must survive restarts lives in one folder. */
export const LEDGER_FILE = 'alerts-sent.json';

export interface AppAlerts {
  readonly alerts: Alerts;
  /** Subscribes to the checks (the first one runs at once: the start evaluation). */
  start(port: number): void;
  close(): Promise<void>;
}

/** `shared`: the fleet's ledger over the file one (a Redis store), so one instance sends each alert. */
export function createAlerts(config: Config, log: Logger, lifecycle: Lifecycle, revocations: LocalRevocationList | undefined, shared?: (local: AlertLedger) => AlertLedger): AppAlerts {
  mkdirSync(config.revocation.dataDir, { recursive: true, mode: 0o700 });
  const fileLedger = new FileLedger(join(config.revocation.dataDir, LEDGER_FILE), {
    onError: (err) => log.warn({ event: 'alerts_ledger_failed', err: err.message }, 'alert ledger not written: an alert may be sent once more after a restart'),
  });
  const ledger = shared !== undefined ? shared(fileLedger) : fileLedger;
  // With workers, each runs the same checks: only the first sends, or every alert would go N times.
  const silent = cluster.isWorker && process.env['CERTGATE_WORKER_SLOT'] !== '1';
  const alerts = new Alerts({ log, ledger, clients: () => lifecycle.inventory.notAfters(), silent });
  alerts.configure(config);
  const cleanup: (() => void)[] = [];
  return {
    alerts,
    start(port) {
      alerts.instance = instanceName(config, port);
      cleanup.push(lifecycle.expiry.onCheck((findings, now) => alerts.expiryChecked(findings, now)));
      revocations?.onEntriesChanged((c) => alerts.revocationChanged(c));
    },
    async close() {
      for (const c of cleanup.splice(0)) c();
      await alerts.close();
    },
  };
}
