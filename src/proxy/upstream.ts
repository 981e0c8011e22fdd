// Upstream targets: one keep-alive connection pool per target (h1-pool.ts), round-robin with passive health:
// a target that refused a connection is skipped for a while. Pools and health are mutable state
// kept outside the Runtime snapshot (in the registry), so that they survive reloads.

import { H1Pool } from './h1-pool.js';

export interface UpstreamTarget {
  readonly origin: string;
  /** Path prefix to put before the request path ('' when the URL has none). */
  readonly basePath: string;
  /** host[:port], for a request without a Host header (HTTP/1.0). */
  readonly host: string;
  readonly pool: H1Pool;
  readonly health: UpstreamHealth;
}

export interface UpstreamHealth {
  /** Until this time (ms since epoch) the target is skipped, unless every target is down. */
  downUntil: number;
}

export interface PoolSettings {
  readonly connectMs: number;
  readonly idleMs: number;
}

/** Pools outlive a Runtime: a reload that keeps a target keeps its warm connections. */
export class PoolRegistry {
  readonly #pools = new Map<string, H1Pool>();
  readonly #health = new Map<string, UpstreamHealth>();
  readonly #settings: PoolSettings;
  constructor(settings: PoolSettings) {
    this.#settings = settings;
  }
  get(origin: string): H1Pool {
    let p = this.#pools.get(origin);
    if (p === undefined) {
      // Per-request timeouts come from the route on each request.
      p = new H1Pool(origin, { connectMs: this.#settings.connectMs, keepAliveMs: Math.min(this.#settings.idleMs, 4_000) });
      this.#pools.set(origin, p);
    }
    return p;
  }
  /** Passive health of a target, shared by every runtime that names it. */
  health(origin: string): UpstreamHealth {
    let h = this.#health.get(origin);
    if (h === undefined) this.#health.set(origin, (h = { downUntil: 0 }));
    return h;
  }
  /** Close pools no longer referenced by the current runtime (in-flight requests finish). */
  retain(origins: ReadonlySet<string>): void {
    for (const origin of this.#health.keys()) if (!origins.has(origin)) this.#health.delete(origin);
    for (const [origin, pool] of this.#pools) {
      if (!origins.has(origin)) {
        this.#pools.delete(origin);
        void pool.close();
      }
    }
  }
  async closeAll(): Promise<void> {
    const all = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(all.map((p) => p.close()));
  }
}

const PASSIVE_DOWN_MS = 5_000;

export class UpstreamGroup {
  readonly targets: readonly UpstreamTarget[];
  #next = 0;
  constructor(urls: readonly string[], pools: PoolRegistry) {
    this.targets = urls.map((u) => {
      const url = new URL(u);
      const basePath = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
      return { origin: url.origin, basePath, host: url.host, pool: pools.get(url.origin), health: pools.health(url.origin) };
    });
  }
  /** Next healthy target in turn, skipping `except`; a down target only when none is healthy. */
  pick(now: number, except?: UpstreamTarget): UpstreamTarget | undefined {
    const n = this.targets.length;
    if (n === 1) return except === this.targets[0] ? undefined : this.targets[0];
    let fallback: UpstreamTarget | undefined;
    for (let i = 0; i < n; i++) {
      const t = this.targets[(this.#next + i) % n]!;
      if (t === except) continue;
      if (t.health.downUntil <= now) {
        this.#next = (this.#next + i + 1) % n;
        return t;
      }
      fallback ??= t;
    }
    this.#next = (this.#next + 1) % n;
    return fallback;
  }
  markDown(t: UpstreamTarget, now: number): void {
    t.health.downUntil = now + PASSIVE_DOWN_MS;
  }
}
