// The local (instant) revocation list: durable in `revocation.dataDir/revocations.jsonl`, an
// append-only log of add/remove records, each appended and fsynced under the lock (util/files) so
// the server and the offline CLI never lose each other's writes; a torn last line (kill -9 mid
// write) is ignored. Lookups are O(1): one Map by issuer|serial, one by fingerprint.

import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalFingerprint, canonicalSerial } from '../identity/canonical.js';
import type { Identity } from '../identity/types.js';
import { withFileLock } from '../util/files.js';

export interface RevocationEntry {
  readonly id: string;
  /** Canonical serial; with `issuer` it names one certificate, without it any issuer's. */
  readonly serial?: string;
  /** RFC 4514 issuer DN (normalised, see normaliseDn). */
  readonly issuer?: string;
  /** Canonical SHA-256 fingerprint. */
  readonly fingerprint?: string;
  readonly reason: string;
  readonly createdAt: string;
  readonly actor: string;
}

export interface RevocationInput {
  serial?: string;
  issuer?: string;
  fingerprint?: string;
  reason?: string;
  actor?: string;
}

/** One entry added to or removed from the list, by whichever process wrote it (alerts, audit). */
export type RevocationChange =
  | { readonly action: 'revoke'; readonly entry: RevocationEntry }
  | { readonly action: 'unrevoke'; readonly entry: RevocationEntry; readonly actor?: string; readonly at?: string };

type LogRecord = { op: 'add'; entry: RevocationEntry } | { op: 'remove'; id: string; at: string; actor: string };

export class RevocationInputError extends Error {
  readonly code = 'CERTGATE_REVOCATION_INPUT';
}

const LOG_FILE = 'revocations.jsonl';
const LOCK_FILE = 'revocations.lock';
/**
 * Holders need milliseconds. A holder killed on this host is seen dead at once; one on another
 * host (a shared volume) is presumed dead after 3 s.
 */
const LOCK_OPTIONS = { timeoutMs: 5_000, staleMs: 3_000 };

const SHORT_TYPES = new Set(['CN', 'O', 'OU', 'C', 'ST', 'L', 'DC', 'UID', 'STREET']);

/** Attribute types as identity DNs spell them (CN, O, ..., emailAddress); others unchanged. */
function attributeType(t: string): string {
  const up = t.toUpperCase();
  if (up === 'EMAILADDRESS') return 'emailAddress';
  if (up === 'SERIALNUMBER') return 'serialNumber';
  return SHORT_TYPES.has(up) ? up : t;
}

/** `CN=a, O=b` and `cn=a,O=b` compare equal to the identity's `CN=a,O=b`. */
export function normaliseDn(dn: string): string {
  return dn
    .split(/(?<!\\),/)
    .map((rdn) => {
      const i = rdn.indexOf('=');
      return i < 0 ? rdn.trim() : `${attributeType(rdn.slice(0, i).trim())}=${rdn.slice(i + 1).trim()}`;
    })
    .join(',');
}

/** Validates and canonicalises an admin/CLI input; throws RevocationInputError saying what is wrong. */
export function entryFromInput(input: RevocationInput, now = new Date()): RevocationEntry {
  const reason = typeof input.reason === 'string' && input.reason.trim() !== '' ? input.reason.trim().slice(0, 200) : undefined;
  if (reason === undefined) throw new RevocationInputError('a reason is required');
  const base = { id: randomBytes(8).toString('hex'), reason, createdAt: now.toISOString(), actor: input.actor ?? 'unknown' };
  if (input.fingerprint !== undefined) {
    if (input.serial !== undefined) throw new RevocationInputError('give either a fingerprint or a serial (+issuer), not both');
    const fp = typeof input.fingerprint === 'string' ? canonicalFingerprint(input.fingerprint) : undefined;
    if (fp === undefined) throw new RevocationInputError('fingerprint must be a SHA-256 fingerprint (64 hex digits, colons allowed)');
    return { ...base, fingerprint: fp };
  }
  if (input.serial === undefined) throw new RevocationInputError('a serial (+issuer) or a fingerprint is required');
  const serial = typeof input.serial === 'string' ? canonicalSerial(input.serial) : undefined;
  if (serial === undefined) throw new RevocationInputError('serial must be hexadecimal (colons, 0x, leading zeros allowed)');
  if (input.issuer !== undefined && (typeof input.issuer !== 'string' || !input.issuer.includes('='))) {
    throw new RevocationInputError('issuer must be a DN such as "CN=My Intermediate CA,O=Acme"');
  }
  return { ...base, serial, ...(input.issuer !== undefined ? { issuer: normaliseDn(input.issuer) } : {}) };
}

/** Appends records to the log and fsyncs, under the lock. Usable without a running server. */
export async function appendRecords(dir: string, records: LogRecord[]): Promise<void> {
  await withFileLock(join(dir, LOCK_FILE), () => {
    const fd = openSync(join(dir, LOG_FILE), 'a+', 0o600);
    try {
      // A line torn by a crash must not swallow this record: start on a fresh line.
      const size = fstatSync(fd).size;
      const last = Buffer.alloc(1);
      const torn = size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
      writeSync(fd, (torn ? '\n' : '') + records.map((r) => JSON.stringify(r) + '\n').join(''));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }, LOCK_OPTIONS);
}

/** Reads the log into the current entries (in insertion order). */
export function readEntries(dir: string, removals?: Map<string, { actor: string; at: string }>): { entries: Map<string, RevocationEntry>; size: number } {
  let text: string;
  try {
    text = readFileSync(join(dir, LOG_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: new Map(), size: 0 };
    throw err;
  }
  const entries = new Map<string, RevocationEntry>();
  // Only complete lines count: a write cut short by a crash has no newline yet.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  applyLines(complete, entries, removals);
  return { entries, size: Buffer.byteLength(complete) };
}

function applyLines(text: string, entries: Map<string, RevocationEntry>, removals?: Map<string, { actor: string; at: string }>): void {
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let rec: LogRecord;
    try {
      rec = JSON.parse(line) as LogRecord;
    } catch {
      continue;
    }
    if (rec.op === 'add' && rec.entry?.id) entries.set(rec.entry.id, rec.entry);
    else if (rec.op === 'remove') {
      entries.delete(rec.id);
      removals?.set(rec.id, { actor: rec.actor, at: rec.at });
    }
  }
}

export interface LocalListOptions {
  /** Where the log lives; undefined for a memory-only list (a cluster worker fed by replace()). */
  readonly dataDir: string | undefined;
  /** How often the file is checked for entries written by another process (the offline CLI). */
  readonly pollMs?: number;
}

export class LocalRevocationList {
  readonly #dir: string | undefined;
  #entries = new Map<string, RevocationEntry>();
  #byKey = new Map<string, RevocationEntry>();
  #bySerial = new Map<string, RevocationEntry>();
  #byFingerprint = new Map<string, RevocationEntry>();
  #listeners: (() => void)[] = [];
  #changeListeners: ((c: RevocationChange) => void)[] = [];
  #size = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: LocalListOptions) {
    this.#dir = opts.dataDir;
    if (this.#dir !== undefined) {
      mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
      const r = readEntries(this.#dir);
      this.#size = r.size;
      this.#index(r.entries);
      if ((opts.pollMs ?? 0) > 0) {
        this.#timer = setInterval(() => this.#poll(), opts.pollMs);
        this.#timer.unref();
      }
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** O(1): the entry revoking this certificate, if any. */
  lookup(id: Identity): RevocationEntry | undefined {
    return this.#byFingerprint.get(id.fingerprint) ?? this.#byKey.get(`${id.issuer}|${id.serial}`) ?? this.#bySerial.get(id.serial);
  }

  entries(): RevocationEntry[] {
    return [...this.#entries.values()];
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /** Each entry added or removed after the list was loaded (not replace(): a worker's copy). */
  onEntriesChanged(listener: (c: RevocationChange) => void): void {
    this.#changeListeners.push(listener);
  }

  /**
   * Adds durably (appended and fsynced under the lock) before it takes effect, so an acknowledged
   * revocation survives a crash; waits for the lock without blocking the event loop.
   */
  async addDurably(entry: RevocationEntry): Promise<RevocationEntry> {
    if (this.#dir === undefined) {
      this.#apply(new Map(this.#entries).set(entry.id, entry));
      this.#announce([{ action: 'revoke', entry }]);
      return entry;
    }
    await appendRecords(this.#dir, [{ op: 'add', entry }]);
    this.#reread();
    return entry;
  }

  async removeDurably(id: string, actor: string): Promise<RevocationEntry | undefined> {
    const e = this.#entries.get(id);
    if (e === undefined) return undefined;
    if (this.#dir === undefined) {
      const next = new Map(this.#entries);
      next.delete(id);
      this.#apply(next);
      this.#announce([{ action: 'unrevoke', entry: e, actor, at: new Date().toISOString() }]);
      return e;
    }
    await appendRecords(this.#dir, [{ op: 'remove', id, at: new Date().toISOString(), actor }]);
    this.#reread();
    return e;
  }

  /** Replaces the whole in-memory list (a cluster worker receiving the primary's list). */
  replace(entries: readonly RevocationEntry[]): void {
    this.#apply(new Map(entries.map((e) => [e.id, e])));
  }

  /** Picks up records other processes appended since the last read (cheap: one stat). */
  refresh(): void {
    this.#poll();
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  #poll(): void {
    if (this.#dir === undefined) return;
    let size: number;
    try {
      size = statSync(join(this.#dir, LOG_FILE)).size;
    } catch {
      return;
    }
    if (size !== this.#size) this.#reread();
  }

  /** Re-reads the whole log: it also brings in whatever another process appended meanwhile. */
  #reread(): void {
    const removals = new Map<string, { actor: string; at: string }>();
    const r = readEntries(this.#dir!, removals);
    this.#size = r.size;
    if (sameEntries(r.entries, this.#entries)) return;
    const prev = this.#entries;
    this.#apply(r.entries);
    const changes: RevocationChange[] = [];
    for (const [id, entry] of r.entries) if (!prev.has(id)) changes.push({ action: 'revoke', entry });
    for (const [id, entry] of prev) if (!r.entries.has(id)) changes.push({ action: 'unrevoke', entry, ...removals.get(id) });
    this.#announce(changes);
  }

  #announce(changes: readonly RevocationChange[]): void {
    for (const c of changes) for (const l of this.#changeListeners) l(c);
  }

  #apply(next: Map<string, RevocationEntry>): void {
    this.#index(next);
    for (const l of this.#listeners) l();
  }

  #index(entries: Map<string, RevocationEntry>): void {
    const byKey = new Map<string, RevocationEntry>();
    const bySerial = new Map<string, RevocationEntry>();
    const byFp = new Map<string, RevocationEntry>();
    for (const e of entries.values()) {
      if (e.fingerprint !== undefined) byFp.set(e.fingerprint, e);
      else if (e.serial !== undefined && e.issuer !== undefined) byKey.set(`${e.issuer}|${e.serial}`, e);
      else if (e.serial !== undefined) bySerial.set(e.serial, e);
    }
    this.#entries = entries;
    this.#byKey = byKey;
    this.#bySerial = bySerial;
    this.#byFingerprint = byFp;
  }
}

function sameEntries(a: Map<string, RevocationEntry>, b: Map<string, RevocationEntry>): boolean {
  if (a.size !== b.size) return false;
  for (const k of a.keys()) if (!b.has(k)) return false;
  return true;
}
