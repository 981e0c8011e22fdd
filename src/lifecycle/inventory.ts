// Inventory of the client certificates certgate has accepted: what they are (from the Identity
// parsed once per certificate) and how they are used. Per request it does a Map lookup and a few
// field updates, nothing else. Bounded: past maxEntries the least recently seen entry goes.
// Optionally persisted to a JSON file (periodically and at shutdown, temp file + rename).
// With a fleet store, changed entries are also remembered (a flag and one push per entry between
// flushes) so that the store can write them in batches: nothing touches the store per request.

import { readFileSync } from 'node:fs';
import type { Identity } from '../identity/types.js';
import type { RequestEvent } from '../proxy/events.js';
import { writeFileAtomicSync } from '../util/files.js';

const DAY_MS = 86_400_000;

export interface InventoryEntry {
  readonly fingerprint: string;
  readonly subject: string;
  readonly san: { readonly dns: readonly string[]; readonly uri: readonly string[]; readonly email: readonly string[]; readonly ip: readonly string[] };
  readonly spiffe: string | undefined;
  readonly issuer: string;
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly daysLeft: number;
  readonly key: string;
  readonly sigAlg: string;
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly connections: number;
  readonly requests: number;
  /** Routes this certificate was let through on (forwarded, whatever the upstream answered). */
  readonly routes: readonly string[];
  /** Refusals as `route:code` (just `code` when no route matched), e.g. `admin:identity_not_allowed`. */
  readonly refused: readonly string[];
  /** The client address of the last request (the PROXY header's behind a load balancer). */
  readonly lastAddress: string | undefined;
  readonly lastDecision: string | undefined;
  /** With a fleet store: the instances (`store.instance`) that have seen this certificate. */
  readonly instances?: readonly string[];
}

/** One instance's record of a certificate, times in ms: what the fleet store keeps per instance. */
export interface InventoryRecord {
  readonly fingerprint: string;
  readonly subject: string;
  readonly san: InventoryEntry['san'];
  readonly spiffe: string | undefined;
  readonly issuer: string;
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly key: string;
  readonly sigAlg: string;
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly connections: number;
  readonly requests: number;
  readonly routes: readonly string[];
  readonly refused: readonly string[];
  readonly lastAddress?: string | undefined;
  readonly lastDecision: string | undefined;
}

/** Mutable record; times in ms. `placedAt` is lastSeen when the entry last moved to the Map's tail. */
class Entry {
  requests = 0;
  connections = 0;
  lastDecision: string | undefined = undefined;
  lastAddress: string | undefined = undefined;
  placedAt: number;
  evicted = false;
  /** Changed since the fleet store's last flush (only tracked when a fleet store is on). */
  changed = false;
  readonly routes = new Set<string>();
  readonly refused = new Set<string>();
  constructor(
    readonly fingerprint: string,
    readonly subject: string,
    readonly san: InventoryEntry['san'],
    readonly spiffe: string | undefined,
    readonly issuer: string,
    readonly serial: string,
    readonly notBefore: number,
    readonly notAfter: number,
    readonly key: string,
    readonly sigAlg: string,
    readonly firstSeen: number,
    public lastSeen: number,
  ) {
    this.placedAt = lastSeen;
  }
}

function keyDescription(id: Pick<Identity, 'keyType' | 'keyBits' | 'curve'>): string {
  if (id.keyType === 'EC') return `EC ${id.curve ?? id.keyBits}`;
  if (id.keyType === 'RSA') return `RSA ${id.keyBits}`;
  return id.keyType;
}

/** A key of apiKeys.file that clients still use: who still has to move to a certificate. */
export interface ApiKeyUse {
  readonly name: string;
  readonly requests: number;
  readonly firstUsed: string;
  readonly lastUsed: string;
  readonly routes: readonly string[];
  readonly lastDecision: string;
}

export interface InventoryOptions {
  readonly maxEntries: number;
  readonly now?: () => number;
}

export class Inventory {
  readonly #entries = new Map<string, Entry>();
  /** Requests carry the Identity object the connection already holds: no string hashing per request. */
  readonly #byIdentity = new WeakMap<Identity, Entry>();
  /** API key names (bounded by the key file) -> use. */
  readonly #keys = new Map<string, { requests: number; first: number; last: number; routes: Set<string>; lastDecision: string }>();
  #max: number;
  readonly #now: () => number;
  /** Entries changed since the last takeChanges(); undefined: no fleet store, nothing tracked. */
  #changed: Entry[] | undefined;

  constructor(opts: InventoryOptions) {
    this.#max = opts.maxEntries;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  setMaxEntries(max: number): void {
    this.#max = max;
    while (this.#entries.size > this.#max) this.#evictOne();
  }

  /** Once per accepted connection. */
  connection(id: Identity): void {
    const e = this.#entryFor(id);
    if (e !== undefined) e.connections++;
  }

  /** Once per request: lookups and counter bumps only. */
  request(ev: RequestEvent): void {
    const id = ev.identity;
    if (id === undefined) {
      if (ev.apiKey !== undefined) this.#keyUsed(ev);
      return;
    }
    const e = this.#entryFor(id);
    if (e === undefined) return;
    e.requests++;
    // A 5xx passed admission (the upstream failed or certgate is stopping): not a refusal.
    if (ev.decision === 'allow' || ev.status >= 500) {
      if (ev.route !== undefined) e.routes.add(ev.route);
    } else {
      e.refused.add(ev.route !== undefined ? `${ev.route}:${ev.decision}` : ev.decision);
    }
    e.lastDecision = ev.decision;
    if (ev.remote !== '') e.lastAddress = ev.remote;
  }

  #keyUsed(ev: RequestEvent): void {
    const now = this.#now();
    let k = this.#keys.get(ev.apiKey!);
    if (k === undefined) this.#keys.set(ev.apiKey!, (k = { requests: 0, first: now, last: now, routes: new Set(), lastDecision: ev.decision }));
    k.requests++;
    k.last = now;
    k.lastDecision = ev.decision;
    if (ev.decision === 'allow' && ev.route !== undefined) k.routes.add(ev.route);
  }

  /** API keys seen since start, most recently used first. */
  apiKeys(): ApiKeyUse[] {
    return [...this.#keys]
      .sort((a, b) => b[1].last - a[1].last)
      .map(([name, k]) => ({ name, requests: k.requests, firstUsed: new Date(k.first).toISOString(), lastUsed: new Date(k.last).toISOString(), routes: [...k.routes].sort(), lastDecision: k.lastDecision }));
  }

  #entryFor(id: Identity): Entry | undefined {
    if (this.#max <= 0) return undefined;
    const now = this.#now();
    let e = this.#byIdentity.get(id);
    if (e === undefined || e.evicted) {
      e = this.#entries.get(id.fingerprint);
      if (e === undefined) {
        while (this.#entries.size >= this.#max) this.#evictOne();
        e = new Entry(
          id.fingerprint,
          id.subject,
          { dns: id.dns, uri: id.uri, email: id.email, ip: id.ip },
          id.spiffe,
          id.issuer,
          id.serial,
          id.notBefore.getTime(),
          id.notAfter.getTime(),
          keyDescription(id),
          id.sigAlg,
          now,
          now,
        );
        this.#entries.set(e.fingerprint, e);
      }
      this.#byIdentity.set(id, e);
    }
    e.lastSeen = now;
    if (this.#changed !== undefined && !e.changed) {
      e.changed = true;
      this.#changed.push(e);
    }
    return e;
  }

  /** From now on, remember which entries change (for a fleet store); every current entry counts as changed. */
  trackChanges(): void {
    if (this.#changed !== undefined) return;
    this.#changed = [];
    for (const e of this.#entries.values()) {
      e.changed = true;
      this.#changed.push(e);
    }
  }

  /**
   * The entries changed since the last call, as records, and forgets them. Bounded: each entry is
   * in the list at most once, and evicted ones are dropped here.
   */
  takeChanges(): InventoryRecord[] {
    const list = this.#changed;
    if (list === undefined || list.length === 0) return [];
    this.#changed = [];
    const out: InventoryRecord[] = [];
    for (const e of list) {
      e.changed = false;
      if (!e.evicted) out.push(recordOf(e));
    }
    return out;
  }

  /** A flush failed: those entries count as changed again (their latest values are written next time). */
  markChanged(fingerprints: Iterable<string>): void {
    if (this.#changed === undefined) return;
    for (const fp of fingerprints) {
      const e = this.#entries.get(fp);
      if (e === undefined || e.changed) continue;
      e.changed = true;
      this.#changed.push(e);
    }
  }

  /** Every entry as a record (the fleet view merges this instance's live values over the store's). */
  records(): InventoryRecord[] {
    return [...this.#entries.values()].map(recordOf);
  }

  /**
   * Least recently seen goes first. Entries are not moved on every use (that would cost a delete
   * and an insert per request): one seen since it was placed gets a second chance at the tail.
   */
  #evictOne(): void {
    for (const [fp, e] of this.#entries) {
      this.#entries.delete(fp);
      if (e.lastSeen > e.placedAt) {
        e.placedAt = e.lastSeen;
        this.#entries.set(fp, e);
        continue;
      }
      e.evicted = true;
      return;
    }
  }

  /** Every entry, soonest expiry first (for /certs, the CLI and the expiry gauges). */
  list(): InventoryEntry[] {
    const now = this.#now();
    return [...this.#entries.values()].sort((a, b) => a.notAfter - b.notAfter).map((e) => view(e, now));
  }

  /** notAfter (ms) of every entry, for the expiry metrics and alerts; no sorting, no copies of entries. */
  *notAfters(): Iterable<{ fingerprint: string; subject: string; serial: string; notAfter: number; lastSeen: number }> {
    yield* this.#entries.values();
  }

  toJSON(): { version: 1; entries: unknown[] } {
    return {
      version: 1,
      entries: [...this.#entries.values()].map(recordOf),
    };
  }

  /** Loads a file written by save(); a missing file is an empty inventory. Bad entries are skipped. */
  load(file: string): number {
    let data: { entries?: unknown };
    try {
      data = JSON.parse(readFileSync(file, 'utf8')) as { entries?: unknown };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw new Error(`cannot read the inventory file ${file}: ${(err as Error).message}`);
    }
    if (!Array.isArray(data.entries)) return 0;
    const loaded = (data.entries as Record<string, unknown>[])
      .filter((r) => typeof r?.fingerprint === 'string' && typeof r.notAfter === 'number' && typeof r.lastSeen === 'number')
      .sort((a, b) => (a.lastSeen as number) - (b.lastSeen as number));
    for (const r of loaded) {
      if (this.#entries.has(r.fingerprint as string)) continue;
      while (this.#entries.size >= this.#max && this.#max > 0) this.#evictOne();
      if (this.#max <= 0) break;
      const san = (r.san ?? {}) as Partial<InventoryEntry['san']>;
      const e = new Entry(
        r.fingerprint as string,
        String(r.subject ?? ''),
        { dns: san.dns ?? [], uri: san.uri ?? [], email: san.email ?? [], ip: san.ip ?? [] },
        typeof r.spiffe === 'string' ? r.spiffe : undefined,
        String(r.issuer ?? ''),
        String(r.serial ?? ''),
        Number(r.notBefore ?? 0),
        r.notAfter as number,
        String(r.key ?? ''),
        String(r.sigAlg ?? ''),
        Number(r.firstSeen ?? r.lastSeen),
        r.lastSeen as number,
      );
      e.requests = Number(r.requests ?? 0);
      e.connections = Number(r.connections ?? 0);
      e.lastDecision = typeof r.lastDecision === 'string' ? r.lastDecision : undefined;
      e.lastAddress = typeof r.lastAddress === 'string' ? r.lastAddress : undefined;
      if (Array.isArray(r.routes)) for (const x of r.routes) if (typeof x === 'string') e.routes.add(x);
      if (Array.isArray(r.refused)) for (const x of r.refused) if (typeof x === 'string') e.refused.add(x);
      this.#entries.set(e.fingerprint, e);
      if (this.#changed !== undefined) {
        e.changed = true;
        this.#changed.push(e);
      }
    }
    return loaded.length;
  }

  /** Atomic: a crash mid-write leaves the previous file intact. */
  save(file: string): void {
    writeFileAtomicSync(file, JSON.stringify(this.toJSON()) + '\n', 0o600);
  }
}

function recordOf(e: Entry): InventoryRecord {
  return {
    fingerprint: e.fingerprint,
    subject: e.subject,
    san: e.san,
    spiffe: e.spiffe,
    issuer: e.issuer,
    serial: e.serial,
    notBefore: e.notBefore,
    notAfter: e.notAfter,
    key: e.key,
    sigAlg: e.sigAlg,
    firstSeen: e.firstSeen,
    lastSeen: e.lastSeen,
    connections: e.connections,
    requests: e.requests,
    routes: [...e.routes],
    refused: [...e.refused],
    lastAddress: e.lastAddress,
    lastDecision: e.lastDecision,
  };
}

/** The API shape of a record (ISO times, days left, sorted lists). */
export function view(e: InventoryRecord | Entry, now: number): InventoryEntry {
  return {
    fingerprint: e.fingerprint,
    subject: e.subject,
    san: e.san,
    spiffe: e.spiffe,
    issuer: e.issuer,
    serial: e.serial,
    notBefore: new Date(e.notBefore).toISOString(),
    notAfter: new Date(e.notAfter).toISOString(),
    daysLeft: daysLeft(e.notAfter, now),
    key: e.key,
    sigAlg: e.sigAlg,
    firstSeen: new Date(e.firstSeen).toISOString(),
    lastSeen: new Date(e.lastSeen).toISOString(),
    connections: e.connections,
    requests: e.requests,
    routes: [...e.routes].sort(),
    refused: [...e.refused].sort(),
    lastAddress: e.lastAddress,
    lastDecision: e.lastDecision,
  };
}

/** Whole days left, rounded down; negative once expired. */
export function daysLeft(notAfterMs: number, now: number): number {
  return Math.floor((notAfterMs - now) / DAY_MS);
}
