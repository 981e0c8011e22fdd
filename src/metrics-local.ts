// The per-request metrics, kept in plain numbers: prom-client hashes the label object on every
// inc/observe, even on a cached child, which cost about as much as certgate's own request code.
// A cell per label set is found once (the observer caches it) and bumped per request; prom-client
// sees the totals only when /metrics is scraped, with the same names, labels and values as before.

import type { Counter, MetricObjectWithValues, MetricValueWithName, Registry } from 'prom-client';

type CounterChild = ReturnType<Counter<string>['labels']>;

/** Requests not yet handed to prom-client, for one (route, status, decision). */
export interface RequestCell {
  pending: number;
  readonly child: CounterChild;
}

export class RequestCounts {
  readonly #counter: () => Counter<'route' | 'status' | 'decision'>;
  /** In creation order, which is the order prom-client saw the label sets before. */
  readonly #cells: RequestCell[] = [];
  readonly #index = new Map<string, RequestCell>();
  constructor(counter: () => Counter<'route' | 'status' | 'decision'>) {
    this.#counter = counter;
  }
  /** The cell of a label set: looked up once, then cached by the caller. */
  cell(route: string, status: number, decision: string): RequestCell {
    const key = `${route}\u0000${status}\u0000${decision}`;
    let c = this.#index.get(key);
    if (c === undefined) {
      c = { pending: 0, child: this.#counter().labels(route, String(status), decision) };
      this.#index.set(key, c);
      this.#cells.push(c);
    }
    return c;
  }
  /** At scrape time: the counts since the last scrape go to prom-client. */
  flush(): void {
    for (const c of this.#cells) {
      if (c.pending > 0) {
        c.child.inc(c.pending);
        c.pending = 0;
      }
    }
  }
}

/** One route's histogram: counts per bucket (not cumulative), sum and count. */
export interface HistogramCell {
  readonly route: string;
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export interface RouteHistogramOptions {
  readonly name: string;
  readonly help: string;
  readonly buckets: readonly number[];
  readonly registers: Registry[];
}

/**
 * A histogram labelled by route that renders exactly as prom-client's Histogram does (same
 * `get()` JSON, so /metrics text and the cluster aggregation are unchanged). prom-client itself
 * registers such plain metric objects when it aggregates workers.
 */
export class RouteHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly labelNames = ['route'] as const;
  readonly #bounds: readonly number[];
  readonly #cells = new Map<string, HistogramCell>();

  constructor(opts: RouteHistogramOptions) {
    this.name = opts.name;
    this.help = opts.help;
    this.#bounds = [...opts.buckets].sort((a, b) => a - b);
    for (const r of opts.registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  cell(route: string): HistogramCell {
    let c = this.#cells.get(route);
    if (c === undefined) this.#cells.set(route, (c = { route, counts: new Float64Array(this.#bounds.length), sum: 0, count: 0 }));
    return c;
  }

  /** prom-client's observe: the first bucket whose bound is >= v; above the last, only +Inf. */
  observe(c: HistogramCell, v: number): void {
    const b = this.#bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        c.counts[i]!++;
        break;
      }
    }
    c.sum += v;
    c.count++;
  }

  async get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: MetricValueWithName<string>[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.#cells.values()) {
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += c.counts[i]!;
        values.push({ labels: { le: this.#bounds[i]!, route: c.route }, value: acc, metricName: bucket, exemplar: null } as MetricValueWithName<string>);
      }
      values.push({ labels: { le: '+Inf', route: c.route }, value: c.count, metricName: bucket, exemplar: null } as MetricValueWithName<string>);
      values.push({ labels: { route: c.route }, value: c.sum, metricName: `${this.name}_sum`, exemplar: undefined } as MetricValueWithName<string>);
      values.push({ labels: { route: c.route }, value: c.count, metricName: `${this.name}_count`, exemplar: undefined } as MetricValueWithName<string>);
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator } as unknown as MetricObjectWithValues<MetricValueWithName<string>>;
  }

  reset(): void {
    this.#cells.clear();
  }
}

/** Counts per value of one label, in plain numbers, handed to prom-client when scraped. */
export class LabelCounts {
  readonly #counter: () => Counter<string>;
  readonly #cells = new Map<string, { pending: number; child: CounterChild | undefined }>();
  constructor(counter: () => Counter<string>) {
    this.#counter = counter;
  }
  inc(label: string): void {
    let c = this.#cells.get(label);
    if (c === undefined) this.#cells.set(label, (c = { pending: 0, child: undefined }));
    c.pending++;
  }
  flush(): void {
    for (const [label, c] of this.#cells) {
      if (c.pending === 0) continue;
      (c.child ??= this.#counter().labels(label)).inc(c.pending);
      c.pending = 0;
    }
  }
}
