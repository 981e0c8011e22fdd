// Revocations shared by a fleet through Redis. Keys (under store.redis.keyPrefix):
//   rev:records   hash id -> record JSON: {op:'add',entry} or a dated tombstone {op:'remove',id,at,actor}
//   rev:changes   pub/sub channel: every record that changed the hash, with Redis's time
//   generation    random; missing or changed means Redis was flushed or replaced
// The merge is a grow-only set of adds plus tombstones: an add never replaces anything, a
// tombstone replaces an add; so any order of pushes from any instance converges, and an entry
// disappears only by an explicit DELETE. Each instance enforces its local list (the durable
// journal in revocation.dataDir), which is also what it re-publishes after an outage or flush.

import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { metrics } from '../metrics.js';
import { recordKey, type LocalRevocationList, type RevocationEntry, type RevocationRecord } from '../revocation/local-list.js';
import type { RedisLink } from './index.js';
import type { RevocationStore } from './revocations.js';

/**
 * KEYS: records hash, generation. ARGV: id, record JSON, op, channel, a new generation (used
 * if none), publisher (JSON string). Returns 1 when the record changed the hash (and was
 * published), 0 when it was already there or superseded by a tombstone.
 */
const PUT_LUA = `
redis.call('SET', KEYS[2], ARGV[5], 'NX')
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  if ARGV[3] == 'add' then return 0 end
  if cjson.decode(cur).op == 'remove' then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local t = redis.call('TIME')
local at = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('PUBLISH', ARGV[4], '{"at":' .. at .. ',"from":' .. ARGV[6] .. ',"rec":' .. ARGV[2] .. '}')
return 1
`;

type PutRedis = Redis & {
  certgatePutRevocation(records: string, generation: string, id: string, rec: string, op: string, channel: string, newGen: string, from: string): Promise<number>;
};

/** Records per pipeline when re-publishing a whole list. */
const BATCH = 500;

function parseRecord(v: unknown): RevocationRecord | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Partial<RevocationRecord> & { entry?: Partial<RevocationEntry> };
  if (r.op === 'add' && typeof r.entry?.id === 'string') return { op: 'add', entry: r.entry as RevocationEntry };
  if (r.op === 'remove' && typeof r.id === 'string') return { op: 'remove', id: r.id, at: String(r.at ?? ''), actor: String(r.actor ?? '') };
  return undefined;
}

const idOf = (r: RevocationRecord): string => (r.op === 'add' ? r.entry.id : r.id);

export class RedisRevocations implements RevocationStore {
  readonly list: LocalRevocationList;
  readonly #link: RedisLink;
  readonly #log: Logger;
  readonly #recordsKey: string;
  readonly #channel: string;
  /** Record keys known to be in Redis (add:ID, remove:ID); what is not here gets pushed. */
  #known = new Set<string>();
  #flushing: Promise<void> | undefined;
  #again = false;

  constructor(link: RedisLink, list: LocalRevocationList, log: Logger) {
    this.list = list;
    this.#link = link;
    this.#log = log.child({ component: 'store' });
    this.#recordsKey = `${link.prefix}rev:records`;
    this.#channel = `${link.prefix}rev:changes`;
    link.redis.defineCommand('certgatePutRevocation', { numberOfKeys: 2, lua: PUT_LUA });
    // Until Redis says otherwise, what the journal does not mark pending was stored there.
    const pending = list.pendingKeys();
    for (const r of list.records()) if (!pending.has(recordKey(r))) this.#known.add(recordKey(r));
    this.#updatePending();
    link.subscribe(this.#channel, (m) => void this.#onMessage(m));
    link.onSync((why) => this.#sync(why));
    // Local changes that did not come through add/remove (the offline CLI appending to the
    // journal) are pushed too.
    list.onChange(() => {
      this.#updatePending();
      this.flush().catch((err: Error) => this.#log.warn({ event: 'store_push_failed', err: err.message }, 'revocation changes not pushed to Redis yet'));
    });
  }

  async add(entry: RevocationEntry): Promise<{ entry: RevocationEntry; propagated: boolean }> {
    // Journaled and enforced here first; then stored in Redis when it can be.
    await this.list.addDurably(entry, { pending: true });
    await this.flush().catch(() => undefined);
    return { entry, propagated: this.#known.has(`add:${entry.id}`) };
  }

  async remove(id: string, actor: string): Promise<{ removed: RevocationEntry | undefined; propagated: boolean }> {
    const removed = await this.list.removeDurably(id, actor, { pending: true });
    if (removed === undefined) return { removed, propagated: true };
    await this.flush().catch(() => undefined);
    return { removed, propagated: this.#known.has(`remove:${id}`) };
  }

  close(): void {
    this.list.close();
  }

  /** Pushes every local record Redis lacks; one push at a time, a caller's record included. */
  flush(): Promise<void> {
    if (this.#flushing !== undefined) {
      this.#again = true;
      return this.#flushing;
    }
    this.#flushing = (async () => {
      try {
        do {
          this.#again = false;
          await this.#pushMissing();
        } while (this.#again);
      } finally {
        this.#flushing = undefined;
      }
    })();
    return this.#flushing;
  }

  async #pushMissing(): Promise<void> {
    if (this.#link.redis.status !== 'ready') return;
    const missing = this.list.records().filter((r) => !this.#known.has(recordKey(r)));
    if (missing.length === 0) return;
    const redis = this.#link.redis as PutRedis;
    const from = JSON.stringify(this.#link.instance);
    const newGen = Math.random().toString(16).slice(2);
    const stored: string[] = [];
    for (let i = 0; i < missing.length; i += BATCH) {
      const batch = missing.slice(i, i + BATCH);
      const p = redis.pipeline() as unknown as PutRedis & { exec(): Promise<[Error | null, unknown][] | null> };
      for (const r of batch) p.certgatePutRevocation(this.#recordsKey, this.#link.generationKey, idOf(r), JSON.stringify(r), r.op, this.#channel, newGen, from);
      const results = (await p.exec()) ?? [];
      batch.forEach((r, j) => {
        const err = results[j]?.[0];
        if (results[j] === undefined || err) throw err ?? new Error('no reply from Redis');
        stored.push(recordKey(r));
        this.#known.add(recordKey(r));
      });
    }
    await this.list.markSynced(stored);
    this.#updatePending();
  }

  /** On every connect and generation change: reload from Redis, merge, push what it lacks. */
  async #sync(why: string): Promise<void> {
    const all = await this.#link.redis.hgetall(this.#recordsKey);
    const remote: RevocationRecord[] = [];
    const known = new Set<string>();
    for (const text of Object.values(all)) {
      let r: RevocationRecord | undefined;
      try {
        r = parseRecord(JSON.parse(text));
      } catch {
        r = undefined;
      }
      if (r === undefined) continue;
      remote.push(r);
      known.add(recordKey(r));
      // A tombstone supersedes the add: the add need not be pushed again.
      if (r.op === 'remove') known.add(`add:${r.id}`);
    }
    this.#known = known;
    const fresh = await this.list.merge(remote);
    await this.list.touch();
    const before = this.list.records().filter((r) => !known.has(recordKey(r))).length;
    await this.flush();
    this.#updatePending();
    this.#log.info({ event: 'store_revocations_synced', why, inRedis: remote.length, learned: fresh.length, pushed: before, entries: this.list.size }, 'revocation list in sync with Redis');
  }

  async #onMessage(message: string): Promise<void> {
    let at: number;
    let from: unknown;
    let rec: RevocationRecord | undefined;
    try {
      const m = JSON.parse(message) as { at?: unknown; from?: unknown; rec?: unknown };
      at = Number(m.at);
      from = m.from;
      rec = parseRecord(m.rec);
    } catch {
      rec = undefined;
      at = NaN;
    }
    if (rec === undefined) return;
    this.#known.add(recordKey(rec));
    if (rec.op === 'remove') this.#known.add(`add:${rec.id}`);
    try {
      const fresh = await this.list.merge([rec]);
      if (fresh.length > 0 && from !== this.#link.instance && Number.isFinite(at)) {
        metrics.storePropagation.observe(Math.max(0, Date.now() - at) / 1000);
      }
    } catch (err) {
      this.#log.error({ event: 'store_apply_failed', err: (err as Error).message }, 'could not journal a revocation change from Redis');
    }
  }

  #updatePending(): void {
    let n = 0;
    for (const r of this.list.records()) if (!this.#known.has(recordKey(r))) n++;
    metrics.revocationsPending.set(n);
  }
}
