// Loggers are built once at start. Access lines (one per request) go through a BatchedWriter,
// to stdout or to their own file: gathered in memory, written once per batch, flushed on
// shutdown, dropped and counted when the destination does not keep up.

import { closeSync, fstatSync, mkdirSync, openSync, write, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { dirname } from 'node:path';
import { pino, type Logger, type DestinationStream } from 'pino';
import type { Config } from './config/types.js';
import { metrics, onCollect } from './metrics.js';

export interface Loggers {
  readonly log: Logger;
  /** Where access lines go; undefined when `log.access` is off. */
  readonly access: AccessLines | undefined;
  /** Synchronously writes what is still in memory (at exit). */
  flush(): void;
  /** Waits (bounded) for a write under way, then flushes: the shutdown path. */
  drain(): Promise<void>;
}

/** A destination for complete access lines, plus what every line starts with. */
export interface AccessLines {
  /** `,"name":"certgate","kind":"access"`: the base fields after level and time. */
  readonly base: string;
  write(line: string): void;
}

const STDOUT = 1;

/**
 * One write per batch (64 KiB or 100 ms), whatever the destination: sonic-boom wrote each
 * stdout line with its own fs.write, about a sixth of certgate's CPU per request in the bench.
 * Memory is bounded: past MAX_BYTES waiting (the destination stalls: a pipe nobody reads, a
 * full disk) new lines are dropped and counted, so a request never waits for its log line.
 */
export class BatchedWriter implements DestinationStream {
  static readonly FLUSH_BYTES = 64 * 1024;
  static readonly FLUSH_MS = 100;
  static readonly MAX_BYTES = 2 * 1024 * 1024;
  /** How long drain() waits for a write under way before giving up on it. */
  static readonly DRAIN_MS = 1000;
  readonly #fd: number;
  readonly #ownsFd: boolean;
  /**
   * A pipe or socket (stdout under a container runtime) is written through libuv's event loop:
   * an fs.write to a pipe nobody reads would block a thread-pool thread, and the process could
   * then not even exit.
   */
  readonly #stream: Socket | undefined;
  #chunks: string[] = [];
  #pending = 0;
  /** The batch being written, and how much of it is out. */
  #out: Buffer | undefined;
  #outFrom = 0;
  #timer: NodeJS.Timeout | undefined;
  #failed = false;
  #dropped = 0;
  #droppedTotal = 0;
  #idle: (() => void)[] = [];

  constructor(target: string | number) {
    if (typeof target === 'number') {
      this.#fd = target;
      this.#ownsFd = false;
    } else {
      mkdirSync(dirname(target), { recursive: true });
      this.#fd = openSync(target, 'a', 0o640);
      this.#ownsFd = true;
    }
    if (isStream(this.#fd)) {
      this.#stream = new Socket({ fd: this.#fd, readable: false, writable: true });
      this.#stream.on('error', (err) => this.#onWritten(err, 0));
    }
    live.add(this);
  }

  /** Lines dropped since the last call (for the metric, read at scrape time). */
  takeDropped(): number {
    const n = this.#dropped;
    this.#dropped = 0;
    return n;
  }

  get droppedTotal(): number {
    return this.#droppedTotal;
  }

  write(line: string): boolean {
    if (this.#pending >= BatchedWriter.MAX_BYTES) {
      if (this.#droppedTotal === 0) process.stderr.write('certgate: the access log destination is not keeping up; dropping lines (certgate_access_log_dropped_total)\n');
      this.#dropped++;
      this.#droppedTotal++;
      return true;
    }
    this.#chunks.push(line);
    this.#pending += line.length;
    if (this.#pending >= BatchedWriter.FLUSH_BYTES) this.#flush();
    else this.#timer ??= setTimeout(this.#onTimer, BatchedWriter.FLUSH_MS).unref();
    return true;
  }

  /** Lines that must not be dropped (the main log sharing stdout): the bound does not apply. */
  writeAlways(line: string): void {
    this.#chunks.push(line);
    this.#pending += line.length;
    this.#timer ??= setTimeout(this.#onTimer, BatchedWriter.FLUSH_MS).unref();
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    this.#flush();
  };

  #take(): Buffer {
    const data = Buffer.from(this.#chunks.length === 1 ? this.#chunks[0]! : this.#chunks.join(''), 'utf8');
    this.#chunks = [];
    this.#pending = 0;
    return data;
  }

  #flush(): void {
    if (this.#out !== undefined || this.#pending === 0) return;
    this.#out = this.#take();
    this.#outFrom = 0;
    this.#writeOut();
  }

  #writeOut(): void {
    const data = this.#out!;
    if (this.#stream !== undefined) {
      this.#stream.write(data, (err) => {
        if (err == null) this.#onWritten(null, data.length);
      });
      return;
    }
    write(this.#fd, data, this.#outFrom, data.length - this.#outFrom, null, this.#onWritten);
  }

  #onWritten = (err: NodeJS.ErrnoException | null, n: number): void => {
    if (err !== null && err.code === 'EAGAIN') {
      // A non-blocking pipe that is full: keep the batch and try again later.
      setTimeout(() => this.#writeOut(), BatchedWriter.FLUSH_MS).unref();
      return;
    }
    if (err !== null) {
      if (this.#out === undefined) return;
      if (!this.#failed) process.stderr.write(`certgate: access log write failed: ${err.message}\n`);
      this.#failed = true;
    } else if (this.#outFrom + n < this.#out!.length) {
      this.#outFrom += n;
      return this.#writeOut();
    }
    this.#out = undefined;
    if (this.#pending >= BatchedWriter.FLUSH_BYTES) this.#flush();
    else if (this.#pending > 0) this.#timer ??= setTimeout(this.#onTimer, BatchedWriter.FLUSH_MS).unref();
    else for (const f of this.#idle.splice(0)) f();
  };

  /** At shutdown: waits up to DRAIN_MS for a batch under way, then writes the rest at once. */
  async drain(): Promise<void> {
    if (this.#out !== undefined) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, BatchedWriter.DRAIN_MS);
        this.#idle.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.flushSync();
  }

  /**
   * Whatever is still in memory goes out now. When a batch is still under way the destination
   * is stalled: writing beside it would reorder lines and could block the exit forever, so the
   * rest is counted as dropped instead.
   */
  flushSync(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending === 0) return;
    if (this.#out !== undefined) {
      this.#dropped += this.#chunks.length;
      this.#droppedTotal += this.#chunks.length;
      this.#chunks = [];
      this.#pending = 0;
      return;
    }
    const data = this.#take();
    let off = 0;
    let again = 0;
    while (off < data.length) {
      try {
        off += writeSync(this.#fd, data, off, data.length - off);
      } catch (err) {
        // A full non-blocking pipe: wait for the reader, but not forever.
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++again > 1000) throw err;
        Atomics.wait(SLEEP, 0, 0, 1);
      }
    }
  }

  close(): void {
    this.flushSync();
    live.delete(this);
    if (this.#ownsFd) closeSync(this.#fd);
  }
}

/** A pipe or a socket; false for files, terminals and a descriptor that is not open. */
function isStream(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false;
  }
}

const SLEEP = new Int32Array(new SharedArrayBuffer(4));
/** Every writer of the process: flushed on exit, their drops counted at scrape time. */
const live = new Set<BatchedWriter>();
process.on('exit', () => {
  for (const w of live) {
    try {
      w.flushSync();
    } catch {
      // Exiting anyway: nothing else can be done with the lines.
    }
  }
});
onCollect('certgate_access_log_dropped_total', () => {
  let n = 0;
  for (const w of live) n += w.takeDropped();
  metrics.accessLogDropped.inc(n);
});

/** One stdout writer per process, shared by every logger that writes there (lines never interleave). */
let stdoutWriter: BatchedWriter | undefined;
function stdout(): BatchedWriter {
  return (stdoutWriter ??= new BatchedWriter(STDOUT));
}

/** The main log on stdout goes through the same writer as the access lines, never dropped. */
function alwaysTo(w: BatchedWriter): DestinationStream & { flushSync(): void } {
  return { write: (s: string) => w.writeAlways(s), flushSync: () => w.flushSync() };
}

export function createLoggers(cfg: Config['log'], name = 'certgate'): Loggers {
  const main = cfg.file !== undefined ? pino.destination({ dest: cfg.file, sync: false, mkdir: true, minLength: 4096 }) : alwaysTo(stdout());
  const accessWriter = !cfg.access ? undefined : cfg.accessFile !== undefined ? new BatchedWriter(cfg.accessFile) : stdout();
  const log = pino({ level: cfg.level, base: { name }, timestamp: pino.stdTimeFunctions.isoTime }, main);
  const access: AccessLines | undefined =
    accessWriter === undefined ? undefined : { base: `,"name":${JSON.stringify(name)},"kind":"access"`, write: (line) => accessWriter.write(line) };
  const flush = (): void => {
    for (const d of new Set<{ flushSync(): void }>([main, ...(accessWriter ? [accessWriter] : [])])) {
      try {
        d.flushSync();
      } catch {
        // Not yet open (nothing written): nothing to flush.
      }
    }
  };
  return {
    log,
    access,
    flush,
    async drain() {
      if (accessWriter !== undefined) await accessWriter.drain();
      flush();
    },
  };
}
