// Loggers are built once at start. The access log is its own pino instance so it can go to its
// own file; writes are asynchronous (sonic-boom) and flushed on shutdown.

import { pino, type Logger, type DestinationStream } from 'pino';
import type { Config } from './config/types.js';

export interface Loggers {
  readonly log: Logger;
  readonly access: Logger;
  flush(): void;
}

function destination(file: string | undefined): DestinationStream & { flushSync(): void } {
  return pino.destination({ dest: file ?? 1, sync: false, mkdir: true, minLength: file ? 4096 : 0 });
}

export function createLoggers(cfg: Config['log'], name = 'certgate'): Loggers {
  const main = destination(cfg.file);
  const accessDest = cfg.accessFile !== undefined ? destination(cfg.accessFile) : main;
  const base = { name };
  const log = pino({ level: cfg.level, base, timestamp: pino.stdTimeFunctions.isoTime }, main);
  const access = pino(
    { level: cfg.access ? 'info' : 'silent', base: { ...base, kind: 'access' }, timestamp: pino.stdTimeFunctions.isoTime },
    accessDest,
  );
  return {
    log,
    access,
    flush() {
      for (const d of new Set([main, accessDest])) {
        try {
          d.flushSync();
        } catch {
          // Not yet open (nothing written): nothing to flush.
        }
      }
    },
  };
}
