// Loggers are built once at start. The access log is its own pino instance so it can go to its
// own file; writes are asynchronous and flushed on shutdown.

import { closeSync, mkdirSync, openSync, write, writeSync } from 'node:fs';
import { dirname } from 'node:path';
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

/**
 * The access log file: one line per request, so lines are gathered in memory and written with
 * one fs.write per 64 KiB or 200 ms. sonic-boom wrote (and re-measured its growing buffer) far
 * more often; in the bench that cost about a sixth of certgate's CPU per request.
 */
export class BatchedFile implements DestinationStream {
  readonly #fd: number;
  #chunks: string[] = [];
  #pending = 0;
  #writing = false;
  #timer: NodeJS.Timeout | undefined;
  #failed = false;
  static readonly FLUSH_BYTES = 64 * 1024;
  static readonly FLUSH_MS = 200;

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true });
    this.#fd = openSync(file, 'a', 0o640);
  }

  write(line: string): boolean {
    this.#chunks.push(line);
    this.#pending += line.length;
    if (this.#pending >= BatchedFile.FLUSH_BYTES) this.#flush();
    else this.#timer ??= setTimeout(this.#onTimer, BatchedFile.FLUSH_MS).unref();
    return true;
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    this.#flush();
  };

  #take(): Buffer {
    const data = Buffer.from(this.#chunks.join(''), 'utf8');
    this.#chunks = [];
    this.#pending = 0;
    return data;
  }

  #flush(): void {
    if (this.#writing || this.#pending === 0) return;
    this.#writing = true;
    this.#writeAll(this.#take(), 0);
  }

  #writeAll(data: Buffer, from: number): void {
    write(this.#fd, data, from, data.length - from, null, (err, n) => {
      if (err !== null) {
        if (!this.#failed) process.stderr.write(`certgate: access log write failed: ${err.message}\n`);
        this.#failed = true;
      } else if (from + n < data.length) {
        return this.#writeAll(data, from + n);
      }
      this.#writing = false;
      if (this.#pending >= BatchedFile.FLUSH_BYTES) this.#flush();
      else if (this.#pending > 0) this.#timer ??= setTimeout(this.#onTimer, BatchedFile.FLUSH_MS).unref();
    });
  }

  /** At shutdown: whatever is still in memory goes out now. */
  flushSync(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending === 0) return;
    const data = this.#take();
    let off = 0;
    while (off < data.length) off += writeSync(this.#fd, data, off, data.length - off);
  }

  close(): void {
    this.flushSync();
    closeSync(this.#fd);
  }
}

/** pino's isoTime, rendered once per millisecond instead of once per line (same output). */
function cachedIsoTime(): () => string {
  let last = -1;
  let text = '';
  return () => {
    const now = Date.now();
    if (now !== last) {
      last = now;
      text = `,"time":"${new Date(now).toISOString()}"`;
    }
    return text;
  };
}

export function createLoggers(cfg: Config['log'], name = 'certgate'): Loggers {
  const main = destination(cfg.file);
  const accessDest = cfg.accessFile !== undefined ? new BatchedFile(cfg.accessFile) : main;
  const base = { name };
  const log = pino({ level: cfg.level, base, timestamp: pino.stdTimeFunctions.isoTime }, main);
  const access = pino(
    { level: cfg.access ? 'info' : 'silent', base: { ...base, kind: 'access' }, timestamp: cachedIsoTime() },
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
