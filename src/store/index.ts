// The store: where state that instances share lives. Without `store.redis`, the embedded file
// store of one machine (CA index.json under its lock, rate limits and inventory in memory), as
// before. With `store.redis`, the CA index, renewal rate limits and the fleet inventory are in
// Redis (one connection for commands, one for the CA index's WATCH/MULTI updates).

import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { FileIndexStore, type CaIndexStore } from '../ca/index-store.js';
import type { Inventory } from '../lifecycle/inventory.js';
import { RedisIndexStore } from './ca-index-redis.js';
import { FleetInventory } from './inventory-redis.js';
import { LocalRateLimiter, type RateLimiter } from './rate-limit.js';
import { RedisRateLimiter } from './rate-limit-redis.js';
import { createRedis } from './redis-client.js';

/** The CA directory's index file names (the same as CA_FILES in ca/authority.ts). */
const INDEX_FILE = 'index.json';
const INDEX_LOCK = 'index.lock';

export interface FleetInventoryOptions {
  readonly inventory: Inventory;
  readonly instance: () => string;
  readonly maxEntries: () => number;
  readonly log: Logger;
}

export interface Store {
  readonly kind: 'file' | 'redis';
  /** The CA index of the CA directory `dir` (whose root is `rootPem`). */
  caIndex(dir: string, rootPem: string): Promise<CaIndexStore>;
  readonly rateLimits: RateLimiter;
  /** With Redis: the fleet inventory over this instance's inventory (started); undefined with the file store. */
  inventory(opts: FleetInventoryOptions): FleetInventory | undefined;
  /** Final inventory flush, then the connections close. */
  close(): Promise<void>;
}

const fileIndex = (dir: string): CaIndexStore => new FileIndexStore(join(dir, INDEX_FILE), join(dir, INDEX_LOCK));

export function fileStore(): Store {
  return {
    kind: 'file',
    caIndex: (dir) => Promise.resolve(fileIndex(dir)),
    rateLimits: new LocalRateLimiter(),
    inventory: () => undefined,
    close: () => Promise.resolve(),
  };
}

export interface OpenStoreOptions {
  readonly log?: Logger;
  /**
   * Wait for the first connection (the CLI: it has nothing to fall back on). A server does not:
   * it starts with Redis out of reach and the client keeps reconnecting.
   */
  readonly requireConnection?: boolean;
}

export async function openStore(config: Pick<Config, 'store'>, opts: OpenStoreOptions = {}): Promise<Store> {
  const cfg = config.store.redis;
  if (cfg === undefined) return fileStore();
  const log = opts.log;
  const commands = createRedis(cfg, 'store');
  const caConn = createRedis(cfg, 'ca-index');
  for (const c of [commands, caConn]) c.on('error', (err: Error) => log?.debug({ event: 'store_error', err: err.message }, 'store connection error'));
  const connect = (c: Redis) => c.connect();
  if (opts.requireConnection) {
    try {
      await Promise.all([connect(commands), connect(caConn)]);
    } catch (err) {
      commands.disconnect();
      caConn.disconnect();
      throw new Error(`cannot reach the Redis store at ${cfg.url}: ${(err as Error).message}`);
    }
  } else {
    for (const c of [commands, caConn]) {
      connect(c).catch((err: Error) => log?.warn({ event: 'store_unreachable', url: cfg.url, err: err.message }, 'Redis store unreachable; retrying'));
    }
  }
  const fleets: FleetInventory[] = [];
  return {
    kind: 'redis',
    caIndex: (dir, rootPem) => RedisIndexStore.open(caConn, cfg.keyPrefix, rootPem, () => fileIndex(dir).read()),
    rateLimits: new RedisRateLimiter(commands, cfg.keyPrefix, new LocalRateLimiter()),
    inventory: (o) => {
      const f = new FleetInventory({ redis: commands, keyPrefix: cfg.keyPrefix, ...o }).start();
      fleets.push(f);
      return f;
    },
    close: async () => {
      await Promise.allSettled(fleets.map((f) => f.close()));
      await Promise.allSettled([commands.quit(), caConn.quit()]);
      commands.disconnect();
      caConn.disconnect();
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
 * that every instance refuses the certificate and closes its connections. The fleet revocation
 * list (Redis revocations, pub/sub) is wired here by the lead when the store's revocations are
 * merged; until then the CA index and CRL are updated and the caller says that the list was not
 * reached ('not-wired').
 */
export async function announceCaRevocation(store: Store, r: CaRevocation): Promise<'propagated' | 'not-wired'> {
  const fleet = (store as Store & { revocations?: { add(input: CaRevocation & { actor: string }): Promise<unknown> } }).revocations;
  if (fleet === undefined) return 'not-wired';
  await fleet.add({ ...r, actor: 'ca' });
  return 'propagated';
}
