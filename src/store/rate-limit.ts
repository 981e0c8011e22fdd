// Renewal rate limits. The local limiter is a sliding window per key in memory (one instance, or
// the fallback while Redis is out of reach); rate-limit-redis.ts counts for the whole fleet.

export interface RateLimiter {
  /** Counts an attempt for `key`; false when `limit` attempts were already made in the window. */
  hit(key: string, limit: number, windowMs: number, now: number): Promise<boolean>;
}

const MAX_KEYS = 10_000;

export class LocalRateLimiter implements RateLimiter {
  readonly #attempts = new Map<string, number[]>();

  hit(key: string, limit: number, windowMs: number, now: number): Promise<boolean> {
    const since = now - windowMs;
    const list = (this.#attempts.get(key) ?? []).filter((t) => t > since);
    const ok = list.length < limit;
    if (ok) list.push(now);
    this.#attempts.set(key, list);
    // Bounded memory: forget keys that have been quiet for a whole window.
    if (this.#attempts.size > MAX_KEYS) for (const [k, v] of this.#attempts) if (v.every((t) => t <= since)) this.#attempts.delete(k);
    return Promise.resolve(ok);
  }
}
