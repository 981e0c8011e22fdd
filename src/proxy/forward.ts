// Forwarding an authorised request to its upstream over certgate's own HTTP/1.1 keep-alive client
// (h1-pool.ts): the request head written once as a string, streamed bodies with backpressure,
// one retry on another target for an idempotent request whose connection failed before anything
// was sent, and one on a fresh connection when a kept-alive one turns out closed.
//
// One Exchange object per request is the whole forwarding state: it is the connection's handler,
// its outcome is read from its fields, and it reports to a per-listener owner, so that a request
// allocates no closures, no result object and no spec beside it.

import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { ErrorCode } from '../errors.js';
import type { RequestContext } from './context.js';
import type { UpstreamLines } from './headers.js';
import { UpstreamError, type H1Connection, type H1Handler } from './h1-pool.js';
import { hopByHop } from './h1-response.js';
import type { UpstreamGroup, UpstreamTarget } from './upstream.js';

/** What an exchange (HTTP/1.1 here, h2c in src/http2/h2c.ts) tells its owner when it is over. */
export interface ExchangeOutcome {
  readonly ctx: RequestContext;
  readonly status: number;
  readonly bytes: number;
  /** Set when certgate answered with its own error instead of the upstream's response. */
  readonly code: ErrorCode | undefined;
  readonly upstreamMs: number;
  readonly error: Error | undefined;
}

/** Who is told when an exchange fails before its response started, and when it is over. */
export interface ExchangeOwner {
  /** Send certgate's JSON error (the upstream failed before its response started). */
  upstreamFailed(x: ExchangeOutcome, code: ErrorCode, message: string): void;
  /** Exactly once per exchange, with its outcome in the exchange's fields. */
  exchangeDone(x: ExchangeOutcome): void;
}

/**
 * Response bytes certgate holds per request before it pauses the upstream, so memory stays
 * bounded for a slow client (Envoy's default buffer limit per connection is 1 MiB too). At
 * 256 KiB a 1 MiB download paused three times and ran at a third of the lean proxy's rate.
 */
const RESPONSE_BUFFER_BYTES = 1024 * 1024;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'CONNECT_TIMEOUT']);
const TIMEOUT_ERRORS = new Set(['TIMEOUT', 'CONNECT_TIMEOUT']);
const kExchange = Symbol('certgate.exchange');

/**
 * Response headers the client must not get from the upstream (hop-by-hop). A length test first:
 * most names are of another length and are never lowercased.
 */
export function dropResponseHeader(name: string): boolean {
  const n = name.length;
  if (n !== 2 && n !== 7 && n !== 10 && n !== 16 && n !== 17) return false;
  return hopByHop(name.toLowerCase());
}

/** The client went away: stop the upstream exchange too (one listener function for every response). */
function onClientClose(this: ServerResponse & { [kExchange]?: Exchange }): void {
  this[kExchange]?.cancel();
}

export class Exchange implements H1Handler, ExchangeOutcome {
  readonly ctx: RequestContext;
  readonly #owner: ExchangeOwner;
  readonly #res: ServerResponse;
  readonly #group: UpstreamGroup;
  readonly #lines: UpstreamLines;
  readonly #body: Readable | null;
  readonly #timeoutMs: number;
  #target: UpstreamTarget | undefined;
  #conn: H1Connection | undefined = undefined;
  #started = 0;
  #retried = false;
  #freshRetry = false;
  #paused = false;
  #finished = false;
  // Outcome, read by the owner in exchangeDone.
  status = 0;
  bytes = 0;
  /** Set when certgate answered with its own error instead of the upstream's response. */
  code: ErrorCode | undefined = undefined;
  upstreamMs = 0;
  error: Error | undefined = undefined;

  constructor(owner: ExchangeOwner, ctx: RequestContext, res: ServerResponse, group: UpstreamGroup, lines: UpstreamLines, body: Readable | null, timeoutMs: number) {
    this.#owner = owner;
    this.ctx = ctx;
    this.#res = res;
    this.#group = group;
    this.#lines = lines;
    this.#body = body;
    this.#timeoutMs = timeoutMs;
  }

  start(): void {
    const target = this.#group.pick(Date.now());
    if (target === undefined) {
      this.#owner.upstreamFailed(this, 'upstream_unavailable', 'no upstream target');
      this.code = 'upstream_unavailable';
      this.#finished = true;
      this.#owner.exchangeDone(this);
      return;
    }
    (this.#res as ServerResponse & { [kExchange]?: Exchange })[kExchange] = this;
    // `on`, not `once`: a response closes once, and `once` would wrap the listener per request.
    this.#res.on('close', onClientClose);
    this.#dispatch(target, false);
  }

  #dispatch(target: UpstreamTarget, fresh: boolean): void {
    this.#target = target;
    this.#started = performance.now();
    const ctx = this.ctx;
    const method = ctx.method;
    // The head as one string: every name and value here was checked by Node's parser (the
    // client's) or made printable by certgate (its own), so nothing is validated again.
    // The header lines come rendered (once per connection while the client repeats its headers).
    const l = this.#lines;
    let head = method + ' ' + (target.basePath === '' ? ctx.url : target.basePath + ctx.url) + ' HTTP/1.1\r\n' + l.client;
    if (!l.hasRequestId) head += 'x-request-id: ' + ctx.requestId + '\r\n';
    head += l.own;
    if (!l.hasHost) head += 'host: ' + target.host + '\r\n';
    const body = this.#body;
    this.#conn = target.pool.send(
      this,
      { head, body, chunked: body !== null && ctx.contentLength === undefined, noBody: method === 'HEAD', timeoutMs: this.#timeoutMs },
      fresh,
    );
  }

  onResponseHead(status: number, reason: string, headers: string[]): void {
    this.status = status;
    // HTTP/2 has no status text (Node warns when given one).
    try {
      if (this.ctx.protocol === 'h2') this.#res.writeHead(status, headers);
      else this.#res.writeHead(status, reason, headers);
    } catch (err) {
      // Node refused a name or value (its own checks of what it sends): answer 502 instead.
      this.status = 0;
      this.#conn?.abandon();
      this.onUpstreamError(new UpstreamError('UPSTREAM_BAD_RESPONSE', `invalid response from the upstream: ${(err as Error).message}`, false));
    }
  }

  onResponseBody(chunk: Buffer): void {
    this.bytes += chunk.length;
    const res = this.#res;
    res.write(chunk);
    // Pausing the upstream at the TLS socket's 16 KiB mark paused and resumed it after every
    // 64 KiB read; a bounded allowance per response streams large bodies with far fewer cycles.
    if (res.writableLength <= RESPONSE_BUFFER_BYTES || this.#paused) return;
    this.#paused = true;
    this.#conn!.pause();
    res.once('drain', () => {
      this.#paused = false;
      this.#conn?.resume();
    });
  }

  onResponseEnd(): void {
    this.#conn = undefined;
    this.#res.end();
    this.#finish(undefined, undefined);
  }

  onUpstreamError(err: UpstreamError): void {
    this.#conn = undefined;
    if (this.#finished) return;
    const code = err.code;
    const now = Date.now();
    const target = this.#target!;
    if (this.#res.headersSent) {
      // The response already started: all we can do is cut it so the client sees it incomplete.
      this.#res.destroy(err);
      this.#finish(undefined, err);
      return;
    }
    const replayable = this.status === 0 && this.#body === null && IDEMPOTENT.has(this.ctx.method);
    // A kept-alive connection the upstream had closed while idle: once more, on a new connection.
    if (err.stale && replayable && !this.#freshRetry) {
      this.#freshRetry = true;
      this.#dispatch(target, true);
      return;
    }
    if (CONNECT_ERRORS.has(code)) this.#group.markDown(target, now);
    if (replayable && !this.#retried && CONNECT_ERRORS.has(code)) {
      const next = this.#group.pick(now, target);
      if (next !== undefined) {
        this.#retried = true;
        this.#dispatch(next, false);
        return;
      }
    }
    const timeout = TIMEOUT_ERRORS.has(code);
    const ec: ErrorCode = timeout ? 'upstream_timeout' : 'upstream_unavailable';
    this.#owner.upstreamFailed(this, ec, timeout ? `upstream ${target.origin} did not answer in time` : `upstream ${target.origin} failed: ${err.message} (${code})`);
    this.#finish(ec, err);
  }

  /** The client went away: stop the upstream exchange too. */
  cancel(): void {
    if (this.#finished) return;
    const conn = this.#conn;
    this.#conn = undefined;
    conn?.abandon();
    this.#finish(undefined, new Error('client closed the connection'));
  }

  #finish(code: ErrorCode | undefined, error: Error | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    if (code !== undefined) this.status = 0;
    this.code = code;
    this.error = error;
    this.upstreamMs = performance.now() - this.#started;
    this.#owner.exchangeDone(this);
  }
}
