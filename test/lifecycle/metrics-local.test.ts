// Per-request metrics are counted in plain numbers and handed to prom-client at scrape time: the
// /metrics text (and the JSON the cluster aggregates) must be exactly what prom-client's own
// Counter and Histogram produced when they were called per request.

import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LifecycleObserver } from '../../src/lifecycle/observe.js';
import type { Inventory } from '../../src/lifecycle/inventory.js';
import { registry } from '../../src/metrics.js';
import type { RequestEvent } from '../../src/proxy/events.js';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What the observer did before: prom-client per request. */
function reference(events: readonly RequestEvent[]): Registry {
  const r = new Registry();
  const requests = new Counter({
    name: 'certgate_requests_total',
    help: 'Requests by route, status and decision (allow or an error code)',
    labelNames: ['route', 'status', 'decision'] as const,
    registers: [r],
  });
  const latency = new Histogram({
    name: 'certgate_upstream_latency_seconds',
    help: 'Time from dispatch to the end of the upstream response',
    labelNames: ['route'] as const,
    buckets: BUCKETS,
    registers: [r],
  });
  for (const e of events) {
    requests.labels(e.route ?? '', String(e.status), e.decision).inc();
    if (e.upstreamMs !== undefined) latency.labels(e.route ?? '').observe(e.upstreamMs / 1000);
  }
  return r;
}

function events(): RequestEvent[] {
  const out: RequestEvent[] = [];
  const routes = ['orders', 'admin-only', undefined, 'with "quote" and \\ backslash'];
  // Latencies on bucket bounds, between them, above the last one, and zero.
  const ms = [0, 1, 1.2, 2.5, 3, 10, 99.9, 100, 250.1, 1000, 2400, 9999, 10_000, 10_000.5, 42_000];
  for (let i = 0; i < 400; i++) {
    const route = routes[(i * 7) % routes.length];
    const refused = i % 11 === 0;
    out.push({
      identity: undefined,
      remote: '127.0.0.1',
      route,
      status: refused ? 403 : i % 13 === 0 ? 502 : 200,
      decision: refused ? 'identity_not_allowed' : i % 13 === 0 ? 'upstream_unavailable' : 'allow',
      durationMs: 1,
      upstreamMs: refused ? undefined : ms[i % ms.length]! + i / 1000,
    });
  }
  return out;
}

const noInventory = { request() {}, connection() {} } as unknown as Inventory;
const NAMES = ['certgate_requests_total', 'certgate_upstream_latency_seconds'];

async function text(r: Registry): Promise<string> {
  const parts: string[] = [];
  for (const n of NAMES) parts.push(await r.getSingleMetricAsString(n));
  return parts.join('\n\n');
}

async function json(r: Registry): Promise<unknown[]> {
  return (await r.getMetricsAsJSON()).filter((m) => NAMES.includes(m.name));
}

describe('per-request metrics at scrape time', () => {
  it('render the same /metrics text and cluster JSON as prom-client per request, across scrapes', async () => {
    const all = events();
    const observer = new LifecycleObserver({ inventory: noInventory });
    // Two scrapes: counts accumulated before the first one must not be handed over twice.
    for (const e of all.slice(0, 150)) observer.requestDone(e);
    expect(await text(registry)).toBe(await text(reference(all.slice(0, 150))));
    for (const e of all.slice(150)) observer.requestDone(e);
    const ref = reference(all);
    expect(await text(registry)).toBe(await text(ref));
    expect(await json(registry)).toEqual(await json(ref));
    // The primary's aggregation of two workers' JSON gives the same text too.
    const agg = async (r: Registry) => text(AggregatorRegistry.aggregate([await json(r), await json(r)] as never));
    expect(await agg(registry)).toBe(await agg(ref));
  });
});
