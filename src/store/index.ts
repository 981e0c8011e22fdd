// The one place that opens the store from the config: the file store (no `store.redis`: today's
// behaviour, no extra component) or Redis (a fleet: instances with the same Redis and keyPrefix
// share one truth). It owns the Redis connection pair and its up/down state: the
// certgate_store_up gauge, one log line per change, the `store` field of /readyz and the
// onStoreUnavailable hook. Beside the revocation list it holds the CA index (and its enrollment
// tokens), the renewal rate limits and the fleet inventory. Nothing here is on the request path.

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { FileIndexStore, type CaIndexStore } from '../ca/index-store.js';
import type { Config } from '../config/types.js';
import type { Inventory } from '../lifecycle/inventory.js';
import { metrics } from '../metrics.js';
import { entryFromInput, journalExists, LocalRevocationList } from '../revocation/local-list.js';
import { RedisIndexStore } from './ca-index-redis.js';
import { FleetInventory } from './inventory-redis.js';
import { LocalRateLimiter, type RateLimiter } from './rate-limit.js';
import { RedisRateLimiter } from './rate-limit-redis.js';
import { createRedis, instanceName, type RedisStoreConfig } from './redis-client.js';
import { FileRevocations, type RevocationStore } from './revocations.js';
import { RedisRevocations } from './revocations-redis.js';

/** How long a start waits for Redis before it serves from the local copy. */
const START_WAIT_MS = 3_000;
/** The generation key is read this often: a Redis flushed or replaced is seen within a second. */
const HEARTBEAT_MS = 1_000;

export type SyncReason = 'connected' | 'generation';

export interface Store {
  readonly kind: 'file' | 'redis';
  /** The enforced revocation list and how admin changes reach the fleet. */
  readonly revocations: RevocationStore;
  /** The CA index of the CA directory `dir` (whose root is `rootPem`), enrollment tokens included. */
  caIndex(dir: string, rootPem: string): Promise<CaIndexStore>;
  /** Enrollment and renewal rate limits (fleet-wide with Redis). */
  readonly rateLimits: RateLimiter;
  /** With Redis: the fleet inventory over this instance's inventory (started); undefined with the file store. */
  inventory(opts: FleetInventoryOptions): FleetInventory | undefined;
  /** The Redis connections and their up/down state; undefined with the file store. */
  readonly link: RedisLink | undefined;
  /** For /readyz: `{store: 'up'|'down'}` with a Redis store, nothing with the file store. */
  readiness(): { store?: 'up' | 'down' };
  /** Called each time a Redis store becomes unreachable (the alerts' store_unavailable), with why. */
  onStoreUnavailable(fn: (reason: string) => void): void;
  /** Called each time a Redis store is reachable again after being unreachable. */
  onStoreAvailable(fn: () => void): void;
  /** Final inventory flush, then the connections close. */
  close(): Promise<void>;
}

export interface FleetInventoryOptions {
  readonly inventory: Inventory;
  readonly instance: () => string;
  readonly maxEntries: () => number;
  readonly log: Logger;
}

/** The CA directory's index file names (the same as CA_FILES in ca/authority.ts). */
const fileIndex = (dir: string): CaIndexStore => new FileIndexStore(join(dir, 'index.json'), join(dir, 'index.lock'));

/**
 * A command connection and a subscriber connection to `store.redis`. Components register the
 * channels they follow and a sync step; on every (re)connect the link subscribes first, then
 * runs each sync step (reload and merge, push what Redis lacks), and only then says "up". A
 * changed generation key (Redis flushed or replaced) runs the sync steps again: they re-publish.
 */
export class RedisLink {
  readonly redis: Redis;
  readonly sub: Redis;
  readonly prefix: string;
  readonly instance: string;
  readonly #log: Logger;
  readonly #channels = new Map<string, (message: string) => void>();
  readonly #syncs: ((why: SyncReason) => Promise<void>)[] = [];
  readonly #unavailable: ((reason: string) => void)[] = [];
  readonly #available: (() => void)[] = [];
  readonly #upWaiters = new Set<() => void>();
  #state: 'starting' | 'up' | 'down' = 'starting';
  #generation: string | undefined;
  #syncing: Promise<void> | undefined;
  #again = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;
  #lastError = '';

  constructor(cfg: RedisStoreConfig, instance: string, log: Logger) {
    this.prefix = cfg.keyPrefix;
    this.instance = instance;
    this.#log = log.child({ component: 'store' });
    this.redis = createRedis(cfg, `${instance}-cmd`);
    this.sub = createRedis(cfg, `${instance}-sub`);
  }

  get up(): boolean {
    return this.#state === 'up';
  }

  get generationKey(): string {
    return `${this.prefix}generation`;
  }

  /** Follows a channel (subscribed on every connect, before any sync step runs). */
  subscribe(channel: string, onMessage: (message: string) => void): void {
    this.#channels.set(channel, onMessage);
  }

  onSync(step: (why: SyncReason) => Promise<void>): void {
    this.#syncs.push(step);
  }

  onUnavailable(fn: (reason: string) => void): void {
    this.#unavailable.push(fn);
  }

  onAvailable(fn: () => void): void {
    this.#available.push(fn);
  }

  start(): void {
    for (const c of [this.redis, this.sub]) {
      c.on('ready', () => this.#requestSync());
      c.on('close', () => this.#setDown(this.#lastError || 'connection closed'));
      c.on('error', (err: Error) => (this.#lastError = err.message));
      c.connect().catch(() => undefined);
    }
    this.sub.on('message', (channel: string, message: string) => this.#channels.get(channel)?.(message));
    this.#heartbeat = setInterval(() => void this.#beat(), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Resolves true once up, or false when `ms` passes first. */
  waitUp(ms = Infinity): Promise<boolean> {
    if (this.up) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        this.#upWaiters.delete(onUp);
        clearTimeout(t);
        resolve(v);
      };
      const onUp = () => done(true);
      const t = Number.isFinite(ms) ? setTimeout(() => done(false), ms) : undefined;
      this.#upWaiters.add(onUp);
    });
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.redis.disconnect();
    this.sub.disconnect();
  }

  #ready(): boolean {
    return this.redis.status === 'ready' && this.sub.status === 'ready';
  }

  /** Every second: both connections alive and the generation unchanged, else down or re-sync. */
  async #beat(): Promise<void> {
    if (this.#closed) return;
    if (!this.#ready()) return this.#setDown(this.#lastError || 'not connected');
    try {
      const g = await this.redis.get(this.generationKey);
      if (g !== this.#generation) this.#requestSync();
    } catch (err) {
      this.#setDown((err as Error).message);
    }
  }

  #requestSync(): void {
    if (this.#closed || !this.#ready()) return;
    if (this.#syncing !== undefined) {
      this.#again = true;
      return;
    }
    this.#syncing = (async () => {
      try {
        do {
          this.#again = false;
          await this.#sync();
        } while (this.#again && this.#ready());
      } catch (err) {
        this.#log.warn({ event: 'store_sync_failed', err: (err as Error).message }, 'could not sync with Redis; retrying');
        this.#setDown((err as Error).message);
      } finally {
        this.#syncing = undefined;
      }
    })();
  }

  async #sync(): Promise<void> {
    // Subscribe first: whatever is published while the state is reloaded is not missed.
    if (this.#channels.size > 0) await this.sub.subscribe(...this.#channels.keys());
    await this.redis.set(this.generationKey, randomBytes(8).toString('hex'), 'NX');
    const generation = await this.redis.get(this.generationKey);
    if (generation === null) throw new Error('the generation key vanished during the sync');
    const why: SyncReason = this.#generation !== undefined && generation !== this.#generation ? 'generation' : 'connected';
    if (why === 'generation') this.#log.warn({ event: 'store_generation_changed', generation }, 'Redis came back empty or was replaced: re-publishing this instance\'s state');
    for (const step of this.#syncs) await step(why);
    this.#generation = generation;
    this.#setUp();
  }

  #setUp(): void {
    if (this.#state === 'up') return;
    const wasDown = this.#state === 'down';
    this.#state = 'up';
    metrics.storeUp.set(1);
    this.#log.info({ event: 'store_up', instance: this.instance }, 'Redis store reachable and in sync');
    for (const w of [...this.#upWaiters]) w();
    if (wasDown) this.#notify(this.#available, undefined);
  }

  #setDown(reason: string): void {
    if (this.#state === 'down' || this.#closed) return;
    this.#state = 'down';
    metrics.storeUp.set(0);
    this.#log.warn({ event: 'store_down', instance: this.instance, reason }, 'Redis store unreachable: serving with the local copy; changes are journaled and pushed when it returns');
    this.#notify(this.#unavailable, reason);
  }

  #notify(fns: readonly ((reason: string) => void)[], reason: string | undefined): void {
    for (const fn of fns) {
      try {
        fn(reason ?? '');
      } catch (err) {
        this.#log.error({ event: 'store_listener_failed', err }, 'store state listener failed');
      }
    }
  }
}

export interface OpenStoreOptions {
  /** A cluster worker's memory-only list, fed by its primary: the worker opens no store except,
   *  with Redis, a connection for its own part of the fleet inventory. */
  readonly revocationList?: LocalRevocationList;
  /** A cluster worker's slot (1..N), which names its inventory field in Redis. */
  readonly worker?: number;
  /**
   * The CLI: fail when Redis cannot be reached within a few seconds (it has nothing to fall back
   * on); a server instead starts from its local copy and keeps reconnecting.
   */
  readonly requireConnection?: boolean;
}

/** The embedded file store: the local revocation list, index.json under its lock, limits in memory. */
export function fileStore(list: LocalRevocationList): Store {
  const revocations = new FileRevocations(list);
  return {
    kind: 'file',
    revocations,
    caIndex: (dir) => Promise.resolve(fileIndex(dir)),
    rateLimits: new LocalRateLimiter(),
    inventory: () => undefined,
    link: undefined,
    readiness: () => ({}),
    onStoreUnavailable: () => {},
    onStoreAvailable: () => {},
    close: async () => revocations.close(),
  };
}

/**
 * Opens the store. With Redis, returns once the revocation list is loaded from Redis, or (Redis
 * unreachable) from the local copy; with neither it waits for Redis, so that the caller opens no
 * listener with a partial list.
 */
export async function openStore(config: Config, log: Logger, opts: OpenStoreOptions = {}): Promise<Store> {
  const list = opts.revocationList ?? new LocalRevocationList({ dataDir: config.revocation.dataDir, pollMs: opts.requireConnection ? 0 : config.revocation.recheck });
  const redisCfg = config.store.redis;
  if (redisCfg === undefined) return fileStore(list);
  if (opts.revocationList !== undefined) return workerStore(fileStore(list), config, redisCfg, opts.worker ?? 1, log);
  const link = new RedisLink(redisCfg, instanceName(config), log);
  const revocations = new RedisRevocations(link, list, log);
  link.start();
  if (!(await link.waitUp(START_WAIT_MS))) {
    if (opts.requireConnection) {
      revocations.close();
      link.close();
      throw new Error(`cannot reach the Redis store at ${redisCfg.url}`);
    }
    if (list.dataDir !== undefined && journalExists(list.dataDir)) {
      log.warn({ event: 'store_start_local_copy', entries: list.size, dataDir: list.dataDir }, 'Redis unreachable at start: serving with the local copy of the revocation list');
    } else {
      log.error(
        { event: 'store_waiting', url: redisCfg.url },
        'Redis unreachable and no local copy of the revocation list: waiting for Redis before opening the proxy listener',
      );
      await link.waitUp();
    }
  }
  // The CA index's WATCH/MULTI needs a connection of its own (WATCH is per connection).
  const caConn = createRedis(redisCfg, 'ca-index');
  caConn.on('error', (err: Error) => log.debug({ event: 'store_error', err: err.message }, 'CA index connection error'));
  // Connected before the store is handed out (the first enrollment or `ca` command uses it at
  // once); when Redis is out of reach the client keeps reconnecting and index updates fail.
  await caConn.connect().catch((err: Error) => {
    if (opts.requireConnection) throw new Error(`cannot reach the Redis store at ${redisCfg.url}: ${err.message}`);
  });
  const fleets: FleetInventory[] = [];
  return {
    kind: 'redis',
    revocations,
    caIndex: (dir, rootPem) => RedisIndexStore.open(caConn, redisCfg.keyPrefix, rootPem, () => fileIndex(dir).read()),
    rateLimits: new RedisRateLimiter(link.redis, redisCfg.keyPrefix, new LocalRateLimiter()),
    inventory: (o) => {
      const f = new FleetInventory({ redis: link.redis, keyPrefix: redisCfg.keyPrefix, ...o }).start();
      fleets.push(f);
      return f;
    },
    link,
    readiness: () => ({ store: link.up ? 'up' : 'down' }),
    onStoreUnavailable: (fn) => link.onUnavailable(fn),
    onStoreAvailable: (fn) => link.onAvailable(fn),
    close: async () => {
      await Promise.allSettled(fleets.map((f) => f.close()));
      revocations.close();
      link.close();
      await caConn.quit().catch(() => undefined);
      caConn.disconnect();
    },
  };
}

/**
 * A cluster worker with a Redis store: the primary holds the revocation list, but each worker
 * writes its own inventory (the primary has none) to the fleet, under `i:INSTANCE#wN`.
 */
function workerStore(base: Store, config: Config, redisCfg: RedisStoreConfig, worker: number, log: Logger): Store {
  const conn = createRedis(redisCfg, `${instanceName(config)}-w${worker}-inventory`);
  conn.on('error', (err: Error) => log.debug({ event: 'store_error', err: err.message }, 'inventory connection error'));
  // Not awaited: flushes fail (and are retried) until it is connected.
  conn.connect().catch(() => undefined);
  const fleets: FleetInventory[] = [];
  return {
    ...base,
    inventory: (o) => {
      const f = new FleetInventory({ redis: conn, keyPrefix: redisCfg.keyPrefix, worker, ...o }).start();
      fleets.push(f);
      return f;
    },
    close: async () => {
      await Promise.allSettled(fleets.map((f) => f.close()));
      await base.close();
      await conn.quit().catch(() => undefined);
      conn.disconnect();
    },
  };
}

/** A revocation made at the CA (`certgate ca revoke --config` with a Redis store). */
export interface CaRevocation {
  readonly serial: string;
  readonly issuer: string;
  readonly reason: string;
}

/**
 * Puts a revocation made at the CA on the fleet's revocation list, as POST /revocations does, so
 * that every instance refuses the certificate and closes its connections.
 */
export async function announceCaRevocation(store: Store, r: CaRevocation): Promise<'propagated' | 'pending'> {
  const { propagated } = await store.revocations.add(entryFromInput({ ...r, actor: 'ca' }));
  return propagated ? 'propagated' : 'pending';
}
