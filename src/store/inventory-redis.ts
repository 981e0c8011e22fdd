// The fleet inventory in Redis. Each instance keeps its own inventory in memory (as without a
// store) and writes the entries that changed in batches (one Lua call per flush, every
// FLUSH_MS), never per request. A failed flush marks its entries changed again, so the next one
// writes their latest values; memory stays bounded by the inventory itself.
//
// Keys (prefix = store.redis.keyPrefix):
//   PREFIXinv:seen           sorted set: fingerprint -> last seen (ms) anywhere; trimmed to maxEntries
//   PREFIXinv:c:FINGERPRINT  hash: `cert` = the certificate's fields, `i:INSTANCE` = that instance's
//                            first/last seen, counts, routes, refusals (absolute values, so a
//                            retried flush is harmless); with `workers` > 1 each worker keeps
//                            its own inventory and writes `i:INSTANCE#wN` (N = its slot), so the
//                            workers of one instance do not overwrite each other's counts
//   PREFIXinv:gen            set by the first flush into an empty Redis: when a flush finds it
//                            missing (Redis flushed or replaced), every instance re-sends all it holds
// GET /certs reads them on demand and merges per certificate across instances.

import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { view, type Inventory, type InventoryEntry, type InventoryRecord } from '../lifecycle/inventory.js';

export const FLUSH_MS = 500;
const BATCH = 500;
/** GET /certs does not wait longer than this for Redis before answering with the local view. */
const READ_TIMEOUT_MS = 1500;

const FLUSH_SCRIPT = `
local seen = KEYS[1]
local fresh = redis.call('SET', KEYS[2], '1', 'NX')
local certPrefix = ARGV[1]
local field = ARGV[2]
local max = tonumber(ARGV[3])
local i = 4
while i <= #ARGV do
  local fp = ARGV[i]
  redis.call('HSET', certPrefix .. fp, 'cert', ARGV[i + 2], field, ARGV[i + 3])
  redis.call('ZADD', seen, 'GT', ARGV[i + 1], fp)
  i = i + 4
end
local over = redis.call('ZCARD', seen) - max
if over > 0 then
  for _, fp in ipairs(redis.call('ZRANGE', seen, 0, over - 1)) do redis.call('DEL', certPrefix .. fp) end
  redis.call('ZREMRANGEBYRANK', seen, 0, over - 1)
end
if fresh then return 1 end
return 0
`;

type CertFields = Pick<InventoryRecord, 'fingerprint' | 'subject' | 'san' | 'spiffe' | 'issuer' | 'serial' | 'notBefore' | 'notAfter' | 'key' | 'sigAlg'>;
type InstanceFields = Pick<InventoryRecord, 'firstSeen' | 'lastSeen' | 'connections' | 'requests' | 'routes' | 'refused' | 'lastAddress' | 'lastDecision'>;

function certFields(r: InventoryRecord): CertFields {
  return { fingerprint: r.fingerprint, subject: r.subject, san: r.san, spiffe: r.spiffe, issuer: r.issuer, serial: r.serial, notBefore: r.notBefore, notAfter: r.notAfter, key: r.key, sigAlg: r.sigAlg };
}

function instanceFields(r: InventoryRecord): InstanceFields {
  return { firstSeen: r.firstSeen, lastSeen: r.lastSeen, connections: r.connections, requests: r.requests, routes: r.routes, refused: r.refused, lastAddress: r.lastAddress, lastDecision: r.lastDecision };
}

/** What GET /certs shows of the clients: every instance's (fleet) or, with Redis out of reach, this one's. */
export interface FleetClients {
  readonly fleet: boolean;
  readonly instance: string;
  readonly clients: InventoryEntry[];
}

export interface FleetInventoryOptions {
  readonly redis: Redis;
  readonly keyPrefix: string;
  readonly inventory: Inventory;
  /** This instance's name (`store.instance`, else hostname:port once the listener is bound). */
  readonly instance: () => string;
  /** A cluster worker's slot (1..N): its entries go to a field of its own, `i:INSTANCE#wN`. */
  readonly worker?: number;
  readonly maxEntries: () => number;
  readonly log: Logger;
  readonly now?: () => number;
}

export class FleetInventory {
  readonly #o: FleetInventoryOptions;
  readonly #seenKey: string;
  readonly #certPrefix: string;
  readonly #genKey: string;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #failing = false;

  constructor(o: FleetInventoryOptions) {
    this.#o = o;
    this.#seenKey = `${o.keyPrefix}inv:seen`;
    this.#certPrefix = `${o.keyPrefix}inv:c:`;
    this.#genKey = `${o.keyPrefix}inv:gen`;
    o.inventory.trackChanges();
  }

  start(): this {
    this.#timer ??= setInterval(() => void this.flush(), FLUSH_MS);
    this.#timer.unref();
    return this;
  }

  /** Writes what changed since the last flush; one flush at a time. */
  flush(): Promise<void> {
    return (this.#flushing ??= this.#flush().finally(() => (this.#flushing = undefined)));
  }

  async #flush(): Promise<void> {
    const changes = this.#o.inventory.takeChanges();
    if (changes.length === 0) return;
    const field = `i:${this.#member()}`;
    let done = 0;
    try {
      for (; done < changes.length; done += BATCH) {
        const args: (string | number)[] = [this.#certPrefix, field, Math.max(1, this.#o.maxEntries())];
        for (const r of changes.slice(done, done + BATCH)) args.push(r.fingerprint, r.lastSeen, JSON.stringify(certFields(r)), JSON.stringify(instanceFields(r)));
        const fresh = await this.#o.redis.eval(FLUSH_SCRIPT, 2, this.#seenKey, this.#genKey, ...args);
        // A Redis that came back empty gets everything this instance holds on the next flush.
        if (fresh === 1) this.#o.inventory.markChanged(this.#o.inventory.records().map((r) => r.fingerprint));
      }
      if (this.#failing) this.#o.log.info({ event: 'inventory_flush_recovered' }, 'fleet inventory written to the store again');
      this.#failing = false;
    } catch (err) {
      this.#o.inventory.markChanged(changes.slice(done).map((r) => r.fingerprint));
      if (!this.#failing) this.#o.log.warn({ event: 'inventory_flush_failed', err: (err as Error).message }, 'cannot write the fleet inventory; retrying');
      this.#failing = true;
    }
  }

  /** The name this process writes under: the instance's, with `#wN` for a cluster worker. */
  #member(): string {
    return this.#o.worker === undefined ? this.#o.instance() : `${this.#o.instance()}#w${this.#o.worker}`;
  }

  /** Every instance's clients merged per certificate; this instance's own live values win over its stored ones. */
  async clients(): Promise<FleetClients> {
    const now = (this.#o.now ?? Date.now)();
    const me = this.#o.instance();
    const local = this.#o.inventory.records();
    let stored: Map<string, { cert: CertFields; byInstance: Map<string, InstanceFields> }>;
    try {
      stored = await withTimeout(this.#read(), READ_TIMEOUT_MS);
    } catch (err) {
      this.#o.log.warn({ event: 'inventory_fleet_unavailable', err: (err as Error).message }, 'fleet inventory unavailable: answering with this instance\'s clients');
      const clients = local.map((r) => ({ ...view(r, now), instances: [me] })).sort(byExpiry);
      return { fleet: false, instance: me, clients };
    }
    for (const r of local) {
      const s = stored.get(r.fingerprint) ?? { cert: certFields(r), byInstance: new Map<string, InstanceFields>() };
      s.byInstance.set(this.#member(), instanceFields(r));
      stored.set(r.fingerprint, s);
    }
    const clients = [...stored.values()].map((s) => merged(s.cert, s.byInstance, now)).sort(byExpiry);
    return { fleet: true, instance: me, clients };
  }

  async #read(): Promise<Map<string, { cert: CertFields; byInstance: Map<string, InstanceFields> }>> {
    const redis = this.#o.redis;
    const fps = await redis.zrevrange(this.#seenKey, 0, Math.max(1, this.#o.maxEntries()) - 1);
    const out = new Map<string, { cert: CertFields; byInstance: Map<string, InstanceFields> }>();
    if (fps.length === 0) return out;
    const pipe = redis.pipeline();
    for (const fp of fps) pipe.hgetall(this.#certPrefix + fp);
    const replies = (await pipe.exec()) ?? [];
    for (const [i, [err, h]] of replies.entries()) {
      if (err !== null) throw err;
      const hash = h as Record<string, string>;
      if (hash.cert === undefined) continue;
      try {
        const byInstance = new Map<string, InstanceFields>();
        for (const [k, v] of Object.entries(hash)) if (k.startsWith('i:')) byInstance.set(k.slice(2), JSON.parse(v) as InstanceFields);
        out.set(fps[i]!, { cert: JSON.parse(hash.cert) as CertFields, byInstance });
      } catch {
        // A damaged entry is skipped, not a failed view.
      }
    }
    return out;
  }

  /** Stops the timer and writes what is left (at shutdown, before the connection closes). */
  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#flushing;
    await this.flush();
  }
}

/** One certificate across instances (and their workers): first/last seen widen, counts add up,
 *  routes and refusals join; `instances` names instances, a worker's `#wN` left off. */
function merged(cert: CertFields, byInstance: Map<string, InstanceFields>, now: number): InventoryEntry {
  let firstSeen = Infinity;
  let lastSeen = -Infinity;
  let connections = 0;
  let requests = 0;
  let lastDecision: string | undefined;
  let lastAddress: string | undefined;
  const routes = new Set<string>();
  const refused = new Set<string>();
  for (const i of byInstance.values()) {
    firstSeen = Math.min(firstSeen, i.firstSeen);
    if (i.lastSeen >= lastSeen) {
      lastSeen = i.lastSeen;
      lastDecision = i.lastDecision ?? lastDecision;
      lastAddress = i.lastAddress ?? lastAddress;
    }
    connections += i.connections;
    requests += i.requests;
    for (const r of i.routes) routes.add(r);
    for (const r of i.refused) refused.add(r);
  }
  const record: InventoryRecord = { ...cert, firstSeen, lastSeen, connections, requests, routes: [...routes], refused: [...refused], lastAddress, lastDecision };
  const instances = new Set([...byInstance.keys()].map((m) => m.replace(/#w\d+$/, '')));
  return { ...view(record, now), instances: [...instances].sort() };
}

const byExpiry = (a: InventoryEntry, b: InventoryEntry) => Date.parse(a.notAfter) - Date.parse(b.notAfter) || a.subject.localeCompare(b.subject);

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer from the store within ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e as Error)),
    );
  });
}
