// One place that turns `store.redis` into a Redis connection. The fleet's components (revocations,
// inventory, CA index) each take connections from here, so TLS, password and reconnect behaviour
// are the same for all of them.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/types.js';

export type RedisStoreConfig = NonNullable<Config['store']['redis']>;

/** Reconnect attempts at most this far apart, so that a returning Redis is seen within a second. */
export const RECONNECT_MAX_MS = 1000;

export function redisOptions(cfg: RedisStoreConfig): RedisOptions {
  const u = new URL(cfg.url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  const opts: RedisOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port === '' ? 6379 : Number(u.port),
    db,
    // Commands fail at once while disconnected: callers fall back to their local state
    // instead of queueing behind an outage.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), RECONNECT_MAX_MS),
  };
  if (cfg.username !== undefined) opts.username = cfg.username;
  if (cfg.passwordFile !== undefined) opts.password = readFileSync(cfg.passwordFile, 'utf8').trim();
  if (u.protocol === 'rediss:') {
    const t = cfg.tls;
    opts.tls = {
      servername: t?.servername ?? opts.host!,
      ...(t?.ca !== undefined ? { ca: readFileSync(t.ca) } : {}),
      ...(t?.cert !== undefined ? { cert: readFileSync(t.cert) } : {}),
      ...(t?.key !== undefined ? { key: readFileSync(t.key) } : {}),
    };
  }
  return opts;
}

/** A new connection (not yet connected: call `connect()`); subscribers need their own. */
export function createRedis(cfg: RedisStoreConfig, name: string): Redis {
  return new Redis({ ...redisOptions(cfg), connectionName: `certgate-${name}` });
}

/** This instance's name in the fleet: `store.instance`, else `hostname:port`. */
export function instanceName(config: Pick<Config, 'store' | 'listen'>, boundPort?: number): string {
  return config.store.instance ?? `${hostname()}:${boundPort ?? config.listen.port}`;
}
