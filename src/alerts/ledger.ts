// Which alerts were already sent, so that each goes out once per certificate and threshold across
// reloads and restarts. Behind a small interface: the file ledger below serves one instance; a
// store shared by a fleet (Redis) implements the same claim atomically so that one instance sends.

import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/files.js';

const DAY_MS = 86_400_000;
/** Entries are forgotten a year after the later of the alert and the item's end date. */
const KEEP_MS = 365 * DAY_MS;

export interface AlertLedger {
  /**
   * Records `key` at `level` and resolves true when nothing was recorded for it at this level or
   * a lower one (lower = more urgent: a smaller threshold, then expired); false otherwise. Resolves
   * once the record is durable, so an alert sent is never sent again after a crash.
   */
  claim(key: string, level: number, endsAt: number): Promise<boolean>;
  /** Forgets a condition that ended (a monitor healthy again), so the next one alerts again. */
  release(key: string): Promise<void>;
  close(): Promise<void>;
}

interface Record_ {
  level: number;
  keepUntil: number;
}

/** A JSON file written atomically (temp file + rename); claims made in one tick share one write. */
export class FileLedger implements AlertLedger {
  readonly #file: string;
  readonly #now: () => number;
  readonly #onError: (err: Error) => void;
  readonly #sent = new Map<string, Record_>();
  #write: Promise<void> | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(file: string, opts: { now?: () => number; onError?: (err: Error) => void } = {}) {
    this.#file = file;
    this.#now = opts.now ?? Date.now;
    this.#onError = opts.onError ?? (() => undefined);
    let data: { sent?: Record<string, Partial<Record_>> } = {};
    try {
      data = JSON.parse(readFileSync(file, 'utf8')) as typeof data;
    } catch (err) {
      // A missing file is a first start; an unreadable one must not stop the proxy (alerts repeat once).
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#onError(err as Error);
    }
    const t = this.#now();
    for (const [k, r] of Object.entries(data.sent ?? {})) {
      if (typeof r?.level === 'number' && typeof r.keepUntil === 'number' && r.keepUntil > t) this.#sent.set(k, { level: r.level, keepUntil: r.keepUntil });
    }
  }

  get size(): number {
    return this.#sent.size;
  }

  async claim(key: string, level: number, endsAt: number): Promise<boolean> {
    const had = this.#sent.get(key);
    if (had !== undefined && had.level <= level) return false;
    this.#sent.set(key, { level, keepUntil: Math.max(endsAt, this.#now()) + KEEP_MS });
    await this.#save();
    return true;
  }

  async release(key: string): Promise<void> {
    if (this.#sent.delete(key)) await this.#save();
  }

  async close(): Promise<void> {
    await this.#write;
    await this.#writing;
  }

  /** One write per tick, after the previous one finished (rename order = state order). */
  #save(): Promise<void> {
    this.#write ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.#write = undefined;
      const t = this.#now();
      const sent: Record<string, Record_> = {};
      for (const [k, r] of this.#sent) if (r.keepUntil > t) sent[k] = r;
      const text = JSON.stringify({ version: 1, sent }) + '\n';
      // A failed write (disk full) must not hold the alert back: better once more after a restart.
      this.#writing = this.#writing.then(() => writeFileAtomic(this.#file, text, 0o600)).catch((err: Error) => this.#onError(err));
      return this.#writing;
    });
    return this.#write;
  }
}

/** For tests and for instances without a data folder: forgets everything at exit. */
export class MemoryLedger implements AlertLedger {
  readonly #sent = new Map<string, number>();
  async claim(key: string, level: number): Promise<boolean> {
    const had = this.#sent.get(key);
    if (had !== undefined && had <= level) return false;
    this.#sent.set(key, level);
    return true;
  }
  async release(key: string): Promise<void> {
    this.#sent.delete(key);
  }
  async close(): Promise<void> {}
}
