// The Observer that turns proxy events into metrics and inventory updates. Per request: two
// plain-number increments (request count, latency histogram) and one inventory lookup; the cells
// are cached in nested Maps so that no label object or key string is built per request, and
// prom-client sees the totals only at scrape time (metrics-local.ts).

import type { Identity } from '../identity/types.js';
import type { HistogramCell, RequestCell } from '../metrics-local.js';
import { metrics, requestCounts } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import type { Observer, RequestEvent } from '../proxy/events.js';
import type { PeerRefusal } from '../tls/authorization.js';
import type { Inventory } from './inventory.js';
import type { RefusalWindow } from './refusal-window.js';

const NO_ROUTE = '';

export interface LifecycleObserverOptions {
  readonly inventory: Inventory;
  /** Refusals of the last hour by code (the dashboard). */
  readonly refusals?: RefusalWindow;
  /** After every reload attempt (watch re-pointing, expiry re-check, gauges). */
  readonly onReload?: (ok: boolean, rt: Runtime | undefined, errors: string[]) => void;
  /** Whoever else wants the events (e.g. another module's observer). */
  readonly next?: Observer;
}

export class LifecycleObserver implements Observer {
  readonly #inventory: Inventory;
  readonly #refusals: RefusalWindow | undefined;
  readonly #onReload: LifecycleObserverOptions['onReload'];
  readonly #next: Observer | undefined;
  /** route -> decision -> status -> count cell */
  readonly #requests = new Map<string, Map<string, Map<number, RequestCell>>>();
  readonly #latency = new Map<string, HistogramCell>();
  readonly #resumed = metrics.connections.labels('true');
  readonly #fresh = metrics.connections.labels('false');

  constructor(opts: LifecycleObserverOptions) {
    this.#inventory = opts.inventory;
    this.#refusals = opts.refusals;
    this.#onReload = opts.onReload;
    this.#next = opts.next;
  }

  handshakeRefused(r: PeerRefusal, socket: Parameters<NonNullable<Observer['handshakeRefused']>>[1]): void {
    metrics.handshakeFailures.labels(r.code, r.reason).inc();
    this.#refusals?.add(r.code);
    this.#next?.handshakeRefused?.(r, socket);
  }

  handshakeClosed(socket: Parameters<NonNullable<Observer['handshakeClosed']>>[0]): void {
    metrics.handshakeClosed.inc();
    this.#next?.handshakeClosed?.(socket);
  }

  connectionAccepted(id: Identity, resumed: boolean): void {
    (resumed ? this.#resumed : this.#fresh).inc();
    this.#inventory.connection(id);
    this.#next?.connectionAccepted?.(id, resumed);
  }

  requestDone(e: RequestEvent): void {
    const route = e.route ?? NO_ROUTE;
    let byDecision = this.#requests.get(route);
    if (byDecision === undefined) this.#requests.set(route, (byDecision = new Map()));
    let byStatus = byDecision.get(e.decision);
    if (byStatus === undefined) byDecision.set(e.decision, (byStatus = new Map()));
    let cell = byStatus.get(e.status);
    if (cell === undefined) byStatus.set(e.status, (cell = requestCounts.cell(route, e.status, e.decision)));
    cell.pending++;
    if (e.upstreamMs !== undefined) {
      let h = this.#latency.get(route);
      if (h === undefined) this.#latency.set(route, (h = metrics.upstreamLatency.cell(route)));
      metrics.upstreamLatency.observe(h, e.upstreamMs / 1000);
    }
    this.#inventory.request(e);
    // A request without an identity was refused for its connection's handshake, already counted.
    if (e.decision !== 'allow' && e.identity !== undefined) this.#refusals?.add(e.decision);
    this.#next?.requestDone?.(e);
  }

  revocationUnknown(id: Identity, status: Parameters<NonNullable<Observer['revocationUnknown']>>[1]): void {
    this.#next?.revocationUnknown?.(id, status);
  }

  reloaded(ok: boolean, rt: Runtime | undefined, errors: string[]): void {
    metrics.reloads.labels(ok ? 'success' : 'failure').inc();
    this.#onReload?.(ok, rt, errors);
    this.#next?.reloaded?.(ok, rt, errors);
  }
}
