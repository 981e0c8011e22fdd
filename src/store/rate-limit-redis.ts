// Fleet-wide rate limits: one counter per key and fixed window in Redis (INCR, then an expiry of
// two windows), so that attempts on every instance add up. With Redis out of reach the local
// limiter decides: an outage relaxes the limit to per instance, it never stops renewals.

import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RateLimiter } from './rate-limit.js';

export class RedisRateLimiter implements RateLimiter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #fallback: RateLimiter;

  constructor(redis: Redis, keyPrefix: string, fallback: RateLimiter) {
    this.#redis = redis;
    this.#prefix = `${keyPrefix}ratelimit:`;
    this.#fallback = fallback;
  }

  async hit(key: string, limit: number, windowMs: number, now: number): Promise<boolean> {
    // Hashed: identities are long and may hold any character.
    const k = `${this.#prefix}${createHash('sha256').update(key).digest('hex').slice(0, 32)}:${Math.floor(now / windowMs)}`;
    try {
      const res = await this.#redis.multi().incr(k).pexpire(k, 2 * windowMs).exec();
      const [err, n] = res?.[0] ?? [new Error('transaction aborted'), 0];
      if (err) throw err;
      return (n as number) <= limit;
    } catch {
      return this.#fallback.hit(key, limit, windowMs, now);
    }
  }
}
