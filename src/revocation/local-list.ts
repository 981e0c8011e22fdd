// The local (instant) revocation list: durable in `revocation.dataDir/revocations.jsonl`, an
// append-only log of add/remove records, each appended and fsynced under the lock (util/files) so
// the server and the offline CLI never lose each other's writes; a torn last line (kill -9 mid
// write) is ignored. Lookups are O(1): one Map by issuer|serial, one by fingerprint.
// A removal leaves a dated tombstone: an `add` of a removed id (from a fleet instance that was cut
// off, see store/revocations-redis.ts) never brings the entry back. Records written while the
// shared store was unreachable carry `pending` until a `synced` record says they reached it.

import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
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

export interface Tombstone {
  readonly id: string;
  readonly at: string;
  readonly actor: string;
}

export type LogRecord =
  | { op: 'add'; entry: RevocationEntry; pending?: true }
  | { op: 'remove'; id: string; at: string; actor: string; pending?: true }
  | { op: 'synced'; keys: string[] };

/** Names a record for the shared store: `add:ID` or `remove:ID`. */
export type RecordKey = `add:${string}` | `remove:${string}`;

/** An add or a removal as the fleet exchanges them. */
export type RevocationRecord = { op: 'add'; entry: RevocationEntry } | { op: 'remove'; id: string; at: string; actor: string };

export const recordKey = (r: RevocationRecord): RecordKey => (r.op === 'add' ? `add:${r.entry.id}` : `remove:${r.id}`);

interface ListState {
  entries: Map<string, RevocationEntry>;
  removed: Map<string, Tombstone>;
  /** Keys of records written while the shared store was unreachable, not yet synced. */
  pending: Set<string>;
}

const emptyState = (): ListState => ({ entries: new Map(), removed: new Map(), pending: new Set() });

/** One record onto the state: a removed id stays removed; the first tombstone's date is kept. */
function applyRecord(st: ListState, rec: LogRecord): void {
  if (rec.op === 'add') {
    if (!rec.entry?.id || st.removed.has(rec.entry.id)) return;
    st.entries.set(rec.entry.id, rec.entry);
    if (rec.pending) st.pending.add(`add:${rec.entry.id}`);
  } else if (rec.op === 'remove') {
    if (typeof rec.id !== 'string') return;
    st.entries.delete(rec.id);
    if (!st.removed.has(rec.id)) st.removed.set(rec.id, { id: rec.id, at: rec.at, actor: rec.actor });
    st.pending.delete(`add:${rec.id}`);
    if (rec.pending) st.pending.add(`remove:${rec.id}`);
  } else if (rec.op === 'synced' && Array.isArray(rec.keys)) {
    for (const k of rec.keys) st.pending.delete(k);
  }
}

function withRecords(st: ListState, records: readonly LogRecord[]): ListState {
  const next: ListState = { entries: new Map(st.entries), removed: new Map(st.removed), pending: new Set(st.pending) };
  for (const r of records) applyRecord(next, r);
  return next;
}

/** Whether a record would change anything (so that a merge appends only what is new). */
function changes(st: ListState, rec: LogRecord): boolean {
  if (rec.op === 'add') return !st.entries.has(rec.entry.id) && !st.removed.has(rec.entry.id);
  if (rec.op === 'remove') return !st.removed.has(rec.id);
  return rec.keys.some((k) => st.pending.has(k));
}

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

/** Reads the log into the current entries (in insertion order), tombstones and pending keys. */
export function readEntries(dir: string): ListState & { size: number } {
  let text: string;
  try {
    text = readFileSync(join(dir, LOG_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...emptyState(), size: 0 };
    throw err;
  }
  const st = emptyState();
  // Only complete lines count: a write cut short by a crash has no newline yet.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    if (line === '') continue;
    try {
      applyRecord(st, JSON.parse(line) as LogRecord);
    } catch {
      continue;
    }
  }
  return { ...st, size: Buffer.byteLength(complete) };
}

/** Whether the durable list was ever written here (a fleet instance's local copy). */
export function journalExists(dir: string): boolean {
  return existsSync(join(dir, LOG_FILE));
}

export interface LocalListOptions {
  /** Where the log lives; undefined for a memory-only list (a cluster worker fed by replace()). */
  readonly dataDir: string | undefined;
  /** How often the file is checked for entries written by another process (the offline CLI). */
  readonly pollMs?: number;
}

export class LocalRevocationList {
  readonly #dir: string | undefined;
  #state: ListState = emptyState();
  #byKey = new Map<string, RevocationEntry>();
  #bySerial = new Map<string, RevocationEntry>();
  #byFingerprint = new Map<string, RevocationEntry>();
  #listeners: (() => void)[] = [];
  #changeListeners: ((c: RevocationChange) => void)[] = [];
  #size = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Merged records in force but not yet in the log: a re-read in between must keep them. */
  #unwritten: LogRecord[] = [];

  constructor(opts: LocalListOptions) {
    this.#dir = opts.dataDir;
    if (this.#dir !== undefined) {
      mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
      const { size, ...st } = readEntries(this.#dir);
      this.#size = size;
      this.#state = st;
      this.#index(st.entries);
      if ((opts.pollMs ?? 0) > 0) {
        this.#timer = setInterval(() => this.#poll(), opts.pollMs);
        this.#timer.unref();
      }
    }
  }

  get size(): number {
    return this.#state.entries.size;
  }

  /** The folder of the durable log (undefined for a memory-only list). */
  get dataDir(): string | undefined {
    return this.#dir;
  }

  /** O(1): the entry revoking this certificate, if any. */
  lookup(id: Identity): RevocationEntry | undefined {
    return this.#byFingerprint.get(id.fingerprint) ?? this.#byKey.get(`${id.issuer}|${id.serial}`) ?? this.#bySerial.get(id.serial);
  }

  entries(): RevocationEntry[] {
    return [...this.#state.entries.values()];
  }

  tombstones(): Tombstone[] {
    return [...this.#state.removed.values()];
  }

  /** Every add and removal this list holds, as the fleet exchanges them. */
  records(): RevocationRecord[] {
    return [
      ...this.entries().map((entry): RevocationRecord => ({ op: 'add', entry })),
      ...this.tombstones().map((t): RevocationRecord => ({ op: 'remove', id: t.id, at: t.at, actor: t.actor })),
    ];
  }

  /** Keys of records written while the shared store was unreachable and not synced since. */
  pendingKeys(): ReadonlySet<string> {
    return this.#state.pending;
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Each entry added or removed after the list was loaded, by this instance or another process on
   * this machine (the offline CLI); not replace() (a worker's copy) nor merge() (another fleet
   * instance made it and announces it).
   */
  onEntriesChanged(listener: (c: RevocationChange) => void): void {
    this.#changeListeners.push(listener);
  }

  /**
   * Adds durably (appended and fsynced under the lock) before it takes effect, so an acknowledged
   * revocation survives a crash; waits for the lock without blocking the event loop.
   * `pending`: not (yet) in the shared store.
   */
  async addDurably(entry: RevocationEntry, opts: { pending?: boolean } = {}): Promise<RevocationEntry> {
    await this.#write([{ op: 'add', entry, ...(opts.pending ? { pending: true as const } : {}) }]);
    return entry;
  }

  async removeDurably(id: string, actor: string, opts: { pending?: boolean } = {}): Promise<RevocationEntry | undefined> {
    const e = this.#state.entries.get(id);
    if (e === undefined) return undefined;
    await this.#write([{ op: 'remove', id, at: new Date().toISOString(), actor, ...(opts.pending ? { pending: true as const } : {}) }]);
    return e;
  }

  /**
   * Records from the shared store: in force at once (the store holds them already), then written
   * to the log; only those that change something. Returns them.
   */
  async merge(records: readonly RevocationRecord[]): Promise<RevocationRecord[]> {
    const fresh = records.filter((r) => changes(this.#state, r));
    if (fresh.length === 0) return fresh;
    if (this.#dir === undefined) {
      this.#apply(withRecords(this.#state, fresh), false);
      return fresh;
    }
    this.#unwritten.push(...fresh);
    this.#apply(withRecords(this.#state, fresh), false);
    try {
      await appendRecords(this.#dir, fresh);
    } finally {
      this.#unwritten = this.#unwritten.filter((r) => !fresh.includes(r as RevocationRecord));
    }
    this.#reread();
    return fresh;
  }

  /** These records reached the shared store: they are no longer pending. */
  async markSynced(keys: readonly string[]): Promise<void> {
    const rec: LogRecord = { op: 'synced', keys: keys.filter((k) => this.#state.pending.has(k)) };
    if (rec.keys.length > 0) await this.#write([rec]);
  }

  /** Creates the log if it does not exist yet: an empty list loaded from the store is a local copy too. */
  async touch(): Promise<void> {
    if (this.#dir !== undefined && !journalExists(this.#dir)) await appendRecords(this.#dir, []);
  }

  /** Replaces the whole in-memory list (a cluster worker receiving the primary's list). */
  replace(entries: readonly RevocationEntry[]): void {
    this.#apply({ ...emptyState(), entries: new Map(entries.map((e) => [e.id, e])) }, false);
  }

  /** Picks up records other processes appended since the last read (cheap: one stat). */
  refresh(): void {
    this.#poll();
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  async #write(records: LogRecord[]): Promise<void> {
    if (this.#dir === undefined) {
      this.#apply(withRecords(this.#state, records));
      return;
    }
    await appendRecords(this.#dir, records);
    this.#reread();
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
    const { size, ...st } = readEntries(this.#dir!);
    this.#size = size;
    this.#apply(this.#unwritten.length === 0 ? st : withRecords(st, this.#unwritten));
  }

  /** Listeners hear of changes to the entries (what is enforced), not of tombstone bookkeeping. */
  #apply(next: ListState, announce = true): void {
    const prev = this.#state;
    const changed = !sameEntries(next.entries, prev.entries) || next.removed.size !== prev.removed.size;
    this.#state = next;
    if (!changed) return;
    this.#index(next.entries);
    for (const l of this.#listeners) l();
    if (!announce || this.#changeListeners.length === 0) return;
    const changes: RevocationChange[] = [];
    for (const [id, entry] of next.entries) if (!prev.entries.has(id)) changes.push({ action: 'revoke', entry });
    for (const [id, entry] of prev.entries) {
      if (next.entries.has(id)) continue;
      const t = next.removed.get(id);
      changes.push({ action: 'unrevoke', entry, ...(t !== undefined ? { actor: t.actor, at: t.at } : {}) });
    }
    for (const c of changes) for (const l of this.#changeListeners) l(c);
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
