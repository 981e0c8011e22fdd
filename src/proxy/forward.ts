// Forwarding an authorised request to its upstream with undici's Pool.dispatch: raw header
// arrays both ways, streamed bodies with backpressure, one retry on another target for an
// idempotent request whose connection failed before anything was sent.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ErrorCode } from '../errors.js';
import type { UpstreamGroup, UpstreamTarget } from './upstream.js';

export interface ForwardResult {
  status: number;
  bytes: number;
  /** Set when certgate answered with its own error instead of the upstream's response. */
  code: ErrorCode | undefined;
  upstreamMs: number;
  target: string | undefined;
  error: Error | undefined;
}

export interface ForwardSpec {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly group: UpstreamGroup;
  readonly headers: string[];
  readonly body: Readable | null;
  readonly timeoutMs: number;
  /** Sends certgate's JSON error when the upstream fails before its response started. */
  readonly fail: (code: ErrorCode, message: string) => void;
  readonly done: (r: ForwardResult) => void;
  /** The handler of the attempt under way, so that a client going away cancels the right one. */
  current?: UpstreamHandler;
}

/** Response bytes certgate holds per request before it pauses the upstream (memory stays flat). */
const RESPONSE_BUFFER_BYTES = 256 * 1024;
const RESPONSE_DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);
const TIMEOUT_ERRORS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function errorCodeOf(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? '';
}

class UpstreamHandler implements Dispatcher.DispatchHandler {
  readonly #spec: ForwardSpec;
  readonly #target: UpstreamTarget;
  readonly #started: number;
  readonly #retried: boolean;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #status = 0;
  #bytes = 0;
  #finished = false;

  constructor(spec: ForwardSpec, target: UpstreamTarget, retried: boolean) {
    this.#spec = spec;
    this.#target = target;
    this.#retried = retried;
    this.#started = performance.now();
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: Node answers 100-continue itself
    const res = this.#spec.res;
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1');
      if (RESPONSE_DROP.has(name.toLowerCase())) continue;
      headers.push(name, raw[i + 1]!.toString('latin1'));
    }
    this.#status = statusCode;
    this.#resume = resume;
    res.writeHead(statusCode, statusText, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#bytes += chunk.length;
    const res = this.#spec.res;
    res.write(chunk);
    // Pausing the upstream at the TLS socket's 16 KiB mark paused and resumed it after every
    // 64 KiB read; a bounded allowance per response streams large bodies with far fewer cycles.
    if (res.writableLength <= RESPONSE_BUFFER_BYTES) return true;
    res.once('drain', this.#resume!);
    return false;
  }

  onComplete(): void {
    this.#spec.res.end();
    this.#finish(undefined, undefined);
  }

  onError(err: Error): void {
    const spec = this.#spec;
    const code = errorCodeOf(err);
    const now = Date.now();
    if (CONNECT_ERRORS.has(code)) spec.group.markDown(this.#target, now);
    if (spec.res.headersSent) {
      // The response already started: all we can do is cut it so the client sees it incomplete.
      spec.res.destroy(err);
      this.#finish(undefined, err);
      return;
    }
    if (this.#status === 0 && !this.#retried && CONNECT_ERRORS.has(code) && spec.body === null && IDEMPOTENT.has(spec.req.method!)) {
      const next = spec.group.pick(now, this.#target);
      if (next !== undefined) {
        dispatchTo(spec, next, true);
        return;
      }
    }
    const timeout = TIMEOUT_ERRORS.has(code);
    const ec: ErrorCode = timeout ? 'upstream_timeout' : 'upstream_unavailable';
    spec.fail(ec, timeout ? `upstream ${this.#target.origin} did not answer in time` : `upstream ${this.#target.origin} failed: ${code || err.message}`);
    this.#finish(ec, err);
  }

  /** The client went away: stop the upstream exchange too. */
  cancel(): void {
    if (!this.#finished && this.#abort !== undefined) this.#abort(new Error('client closed the connection'));
  }

  #finish(code: ErrorCode | undefined, error: Error | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    const spec = this.#spec;
    spec.done({
      status: code === undefined ? this.#status : 0,
      bytes: this.#bytes,
      code,
      upstreamMs: performance.now() - this.#started,
      target: this.#target.origin,
      error,
    });
  }
}

function dispatchTo(spec: ForwardSpec, target: UpstreamTarget, retried: boolean): void {
  const handler = new UpstreamHandler(spec, target, retried);
  spec.current = handler;
  const req = spec.req;
  target.pool.dispatch(
    {
      path: target.basePath === '' ? req.url! : target.basePath + req.url!,
      method: req.method as Dispatcher.HttpMethod,
      headers: spec.headers,
      body: spec.body,
      headersTimeout: spec.timeoutMs,
      bodyTimeout: spec.timeoutMs,
    },
    handler,
  );
}

export function forward(spec: ForwardSpec): void {
  const target = spec.group.pick(Date.now());
  if (target === undefined) {
    spec.fail('upstream_unavailable', 'no upstream target');
    spec.done({ status: 0, bytes: 0, code: 'upstream_unavailable', upstreamMs: 0, target: undefined, error: undefined });
    return;
  }
  spec.res.once('close', () => spec.current?.cancel());
  dispatchTo(spec, target, false);
}
