// Delivery to one webhook: a bounded queue, a few requests at a time, each attempt bounded by the
// webhook's timeout, retries with exponential backoff on 5xx, 429 and network errors. Nothing
// here is awaited by whoever raises an alert, so a slow or dead receiver never delays the proxy.
// The URL is a secret: it is only ever handed to undici, never to a log line or an error.

import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { metrics } from '../metrics.js';
import { jsonBody, slackBody, type Alert, type AlertEvent } from './events.js';

/** Alerts waiting (queued, in flight or between retries) per webhook; more are dropped and counted. */
const MAX_PENDING = 1_000;
const CONCURRENCY = 4;
const MAX_BACKOFF_MS = 5 * 60_000;

export interface WebhookTarget {
  /** `alerts.webhooks[0]`: how logs name it (never by its URL). */
  readonly name: string;
  readonly url: string;
  readonly format: 'json' | 'slack';
  /** undefined: every event. */
  readonly events: ReadonlySet<AlertEvent> | undefined;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly backoffMs: number;
}

interface Job {
  readonly alert: Alert;
  readonly body: string;
  attempt: number;
}

/** The wait before retry `n` (1-based): backoff doubled each time, capped, plus up to 20% jitter. */
export function retryDelay(backoffMs: number, n: number, random = Math.random): number {
  const base = Math.min(MAX_BACKOFF_MS, backoffMs * 2 ** (n - 1));
  return Math.round(base * (1 + 0.2 * random()));
}

/** A failure's name that says what happened without quoting the URL (undici messages may). */
function failureCode(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; cause?: { code?: unknown } };
  if (typeof e.code === 'string') return e.code;
  if (typeof e.cause?.code === 'string') return e.cause.code;
  return typeof e.name === 'string' ? e.name : 'Error';
}

export class WebhookSender {
  readonly target: WebhookTarget;
  readonly #log: Logger;
  readonly #agent: Agent;
  readonly #queue: Job[] = [];
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  readonly #inFlight = new Set<AbortController>();
  #pending = 0;
  #closed = false;
  #idle: (() => void)[] = [];

  constructor(target: WebhookTarget, log: Logger) {
    this.target = target;
    this.#log = log;
    this.#agent = new Agent({ connections: CONCURRENCY, connect: { timeout: target.timeoutMs }, headersTimeout: target.timeoutMs, bodyTimeout: target.timeoutMs });
  }

  wants(event: AlertEvent): boolean {
    return this.target.events === undefined || this.target.events.has(event);
  }

  /** Queues the alert; returns at once. */
  send(alert: Alert): void {
    if (this.#closed || !this.wants(alert.event)) return;
    if (this.#pending >= MAX_PENDING) {
      metrics.alerts.labels(alert.event, 'dropped').inc();
      this.#log.error({ event: 'alert_dropped', webhook: this.target.name, alertEvent: alert.event }, `alert queue of ${this.target.name} is full: alert dropped`);
      return;
    }
    this.#pending++;
    const body = this.target.format === 'slack' ? slackBody(alert) : jsonBody(alert);
    this.#queue.push({ alert, body, attempt: 0 });
    this.#pump();
  }

  /** Resolves when nothing is queued, in flight or waiting for a retry. */
  idle(): Promise<void> {
    if (this.#pending === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops retrying and aborts what is in flight (at shutdown, or when a reload replaces it). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#retryTimers) clearTimeout(t);
    this.#retryTimers.clear();
    for (const c of this.#inFlight) c.abort();
    this.#queue.length = 0;
    for (const r of this.#idle.splice(0)) r();
    await this.#agent.destroy().catch(() => undefined);
  }

  #pump(): void {
    while (!this.#closed && this.#inFlight.size < CONCURRENCY && this.#queue.length > 0) void this.#attempt(this.#queue.shift()!);
  }

  async #attempt(job: Job): Promise<void> {
    job.attempt++;
    const abort = new AbortController();
    this.#inFlight.add(abort);
    const timer = setTimeout(() => abort.abort(), this.target.timeoutMs);
    timer.unref();
    let status: number | undefined;
    let code: string | undefined;
    try {
      const res = await request(this.target.url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: { 'content-type': 'application/json', 'user-agent': 'certgate-alerts' },
        body: job.body,
        signal: abort.signal,
      });
      status = res.statusCode;
      await res.body.dump().catch(() => undefined);
    } catch (err) {
      code = abort.signal.aborted && !this.#closed ? 'timeout' : failureCode(err);
    } finally {
      clearTimeout(timer);
      this.#inFlight.delete(abort);
    }
    if (this.#closed) return;
    if (status !== undefined && status >= 200 && status < 300) this.#done(job, 'sent');
    else this.#failed(job, status, code);
    this.#pump();
  }

  #failed(job: Job, status: number | undefined, code: string | undefined): void {
    const { alert, attempt } = job;
    const retriable = status === undefined || status >= 500 || status === 429;
    const fields = { event: 'alert_delivery_failed', webhook: this.target.name, alertEvent: alert.event, attempt, status, code };
    if (!retriable || attempt > this.target.retries) {
      this.#log.error(fields, `alert ${alert.event} not delivered to ${this.target.name} after ${attempt} attempt(s)`);
      this.#done(job, 'failed');
      return;
    }
    const delay = retryDelay(this.target.backoffMs, attempt);
    this.#log.warn({ ...fields, retryInMs: delay }, `alert ${alert.event} to ${this.target.name} failed: retrying`);
    const t = setTimeout(() => {
      this.#retryTimers.delete(t);
      this.#queue.unshift(job);
      this.#pump();
    }, delay);
    t.unref();
    this.#retryTimers.add(t);
  }

  #done(job: Job, result: 'sent' | 'failed'): void {
    this.#pending--;
    if (this.#pending === 0) for (const r of this.#idle.splice(0)) r();
    metrics.alerts.labels(job.alert.event, result).inc();
    if (result === 'sent') this.#log.info({ event: 'alert_sent', webhook: this.target.name, alertEvent: job.alert.event, attempt: job.attempt }, `alert ${job.alert.event} sent to ${this.target.name}`);
  }
}
