// Forwarding an authorised request to its upstream with undici's Pool.dispatch: raw header
// arrays both ways, streamed bodies with backpressure, one retry on another target for an
// idempotent request whose connection failed before anything was sent.
//
// One Exchange object per request is the whole forwarding state: it is undici's handler, its
// outcome is read from its fields, and it reports to a per-listener owner, so that a request
// allocates no closures, no result object and no spec beside it.

import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ErrorCode } from '../errors.js';
import type { RequestContext } from './context.js';
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

/** Response bytes certgate holds per request before it pauses the upstream (memory stays flat). */
const RESPONSE_BUFFER_BYTES = 256 * 1024;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);
const TIMEOUT_ERRORS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);
const kExchange = Symbol('certgate.exchange');

function errorCodeOf(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? '';
}

/**
 * Response headers the client must not get from the upstream (hop-by-hop). A length test first:
 * most names are of another length and are never lowercased.
 */
export function dropResponseHeader(name: string): boolean {
  const n = name.length;
  if (n !== 2 && n !== 7 && n !== 10 && n !== 16 && n !== 17) return false;
  const l = name.toLowerCase();
  return l === 'connection' || l === 'keep-alive' || l === 'proxy-connection' || l === 'transfer-encoding' || l === 'upgrade' || l === 'te' || l === 'trailer';
}

/** The client went away: stop the upstream exchange too (one listener function for every response). */
function onClientClose(this: ServerResponse & { [kExchange]?: Exchange }): void {
  this[kExchange]?.cancel();
}

export class Exchange implements Dispatcher.DispatchHandler, ExchangeOutcome {
  readonly ctx: RequestContext;
  readonly #owner: ExchangeOwner;
  readonly #res: ServerResponse;
  readonly #group: UpstreamGroup;
  readonly #headers: string[];
  readonly #body: Readable | null;
  readonly #timeoutMs: number;
  #target: UpstreamTarget | undefined;
  #started = 0;
  #retried = false;
  #abort: ((err?: Error) => void) | undefined = undefined;
  #resume: (() => void) | undefined = undefined;
  #finished = false;
  // Outcome, read by the owner in exchangeDone.
  status = 0;
  bytes = 0;
  /** Set when certgate answered with its own error instead of the upstream's response. */
  code: ErrorCode | undefined = undefined;
  upstreamMs = 0;
  error: Error | undefined = undefined;

  constructor(owner: ExchangeOwner, ctx: RequestContext, res: ServerResponse, group: UpstreamGroup, headers: string[], body: Readable | null, timeoutMs: number) {
    this.#owner = owner;
    this.ctx = ctx;
    this.#res = res;
    this.#group = group;
    this.#headers = headers;
    this.#body = body;
    this.#timeoutMs = timeoutMs;
  }

  get target(): string | undefined {
    return this.#target?.origin;
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
    this.#dispatch(target);
  }

  #dispatch(target: UpstreamTarget): void {
    this.#target = target;
    this.#abort = undefined;
    this.#started = performance.now();
    const url = this.ctx.url;
    target.pool.dispatch(
      {
        path: target.basePath === '' ? url : target.basePath + url,
        method: this.ctx.method as Dispatcher.HttpMethod,
        headers: this.#headers,
        body: this.#body,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      },
      this,
    );
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: Node answers 100-continue itself
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1');
      if (!dropResponseHeader(name)) headers.push(name, raw[i + 1]!.toString('latin1'));
    }
    this.status = statusCode;
    this.#resume = resume;
    // HTTP/2 has no status text (Node warns when given one).
    if (this.ctx.protocol === 'h2') this.#res.writeHead(statusCode, headers);
    else this.#res.writeHead(statusCode, statusText, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    const res = this.#res;
    res.write(chunk);
    // Pausing the upstream at the TLS socket's 16 KiB mark paused and resumed it after every
    // 64 KiB read; a bounded allowance per response streams large bodies with far fewer cycles.
    if (res.writableLength <= RESPONSE_BUFFER_BYTES) return true;
    res.once('drain', this.#resume!);
    return false;
  }

  onComplete(): void {
    this.#res.end();
    this.#finish(undefined, undefined);
  }

  onError(err: Error): void {
    const code = errorCodeOf(err);
    const now = Date.now();
    const target = this.#target!;
    if (CONNECT_ERRORS.has(code)) this.#group.markDown(target, now);
    if (this.#res.headersSent) {
      // The response already started: all we can do is cut it so the client sees it incomplete.
      this.#res.destroy(err);
      this.#finish(undefined, err);
      return;
    }
    if (this.status === 0 && !this.#retried && CONNECT_ERRORS.has(code) && this.#body === null && IDEMPOTENT.has(this.ctx.method)) {
      const next = this.#group.pick(now, target);
      if (next !== undefined) {
        this.#retried = true;
        this.#dispatch(next);
        return;
      }
    }
    const timeout = TIMEOUT_ERRORS.has(code);
    const ec: ErrorCode = timeout ? 'upstream_timeout' : 'upstream_unavailable';
    this.#owner.upstreamFailed(this, ec, timeout ? `upstream ${target.origin} did not answer in time` : `upstream ${target.origin} failed: ${code || err.message}`);
    this.#finish(ec, err);
  }

  /** The client went away: stop the upstream exchange too. */
  cancel(): void {
    if (!this.#finished && this.#abort !== undefined) this.#abort(new Error('client closed the connection'));
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
