// Forwarding to `upstreamProtocol: h2c` upstreams: cleartext HTTP/2 with trailers, so that gRPC
// works end to end. One multiplexed session per upstream origin (kept across reloads, closed when
// idle, so that a reload that drops an upstream needs no pass over them); one H2cExchange per request, reporting to the same owner as the HTTP/1.1 Exchange.

import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { ErrorCode } from '../errors.js';
import type { RequestContext } from '../proxy/context.js';
import { dropResponseHeader, type ExchangeOutcome, type ExchangeOwner } from '../proxy/forward.js';
import type { UpstreamGroup, UpstreamTarget } from '../proxy/upstream.js';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = constants;
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT']);
/** Request headers HTTP/2 forbids (RFC 9113 8.2.2) that upstreamHeaders does not already drop. */
const H2_FORBIDDEN = new Set(['host', 'http2-settings']);

export interface H2cSettings {
  readonly upstreamConnect: number;
  readonly idle: number;
}

/** Sessions to h2c upstreams, one per origin. */
export class H2cUpstreams {
  readonly #sessions = new Map<string, ClientHttp2Session>();
  readonly #settings: H2cSettings;

  constructor(settings: H2cSettings) {
    this.#settings = settings;
  }

  forward(owner: ExchangeOwner, ctx: RequestContext, group: UpstreamGroup, headers: readonly string[], body: Readable | null, timeoutMs: number): void {
    new H2cExchange(owner, this, ctx, group, headers, body, timeoutMs).start();
  }

  session(origin: string): ClientHttp2Session {
    const open = this.#sessions.get(origin);
    if (open !== undefined && !open.closed && !open.destroyed) return open;
    const s = connect(origin);
    // A session is shared: a failed connect or an upstream GOAWAY ends it for new requests only.
    const forget = () => this.#sessions.get(origin) === s && this.#sessions.delete(origin);
    const connectTimer = setTimeout(() => s.destroy(Object.assign(new Error(`connect to ${origin} timed out`), { code: 'ETIMEDOUT' })), this.#settings.upstreamConnect);
    s.once('connect', () => clearTimeout(connectTimer));
    s.on('error', forget);
    s.once('goaway', forget);
    s.once('close', () => {
      clearTimeout(connectTimer);
      forget();
    });
    s.setTimeout(Math.min(this.#settings.idle, 60_000), () => s.close());
    s.unref();
    this.#sessions.set(origin, s);
    return s;
  }

  async closeAll(): Promise<void> {
    const all = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(all.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.close(resolve)))));
  }
}

/** The HTTP/2 stream under a compatibility response (undefined for an HTTP/1.1 client). */
function clientStreamOf(ctx: RequestContext): ServerHttp2Stream | undefined {
  return ctx.protocol === 'h2' ? (ctx.res as unknown as { stream: ServerHttp2Stream }).stream : undefined;
}

class H2cExchange implements ExchangeOutcome {
  readonly ctx: RequestContext;
  readonly #owner: ExchangeOwner;
  readonly #upstreams: H2cUpstreams;
  readonly #res: ServerResponse;
  readonly #group: UpstreamGroup;
  readonly #headers: readonly string[];
  readonly #body: Readable | null;
  readonly #timeoutMs: number;
  #target: UpstreamTarget | undefined = undefined;
  #up: ClientHttp2Stream | undefined = undefined;
  #timer: NodeJS.Timeout | undefined = undefined;
  #started = 0;
  #finished = false;
  #trailers: IncomingHttpHeaders | undefined = undefined;
  status = 0;
  bytes = 0;
  code: ErrorCode | undefined = undefined;
  upstreamMs = 0;
  error: Error | undefined = undefined;

  constructor(owner: ExchangeOwner, upstreams: H2cUpstreams, ctx: RequestContext, group: UpstreamGroup, headers: readonly string[], body: Readable | null, timeoutMs: number) {
    this.#owner = owner;
    this.#upstreams = upstreams;
    this.ctx = ctx;
    this.#res = ctx.res!;
    this.#group = group;
    this.#headers = headers;
    this.#body = body;
    this.#timeoutMs = timeoutMs;
  }

  start(): void {
    const target = (this.#target = this.#group.pick(Date.now()));
    if (target === undefined) return this.#fail('upstream_unavailable', 'no upstream target', undefined);
    this.#started = performance.now();
    let up: ClientHttp2Stream;
    try {
      up = this.#upstreams.session(target.origin).request(this.#requestHeaders(target), { endStream: this.#body === null });
    } catch (err) {
      return this.#fail('upstream_unavailable', `upstream ${target.origin} refused the request: ${(err as Error).message}`, err as Error);
    }
    this.#up = up;
    this.#timer = setTimeout(() => {
      this.#fail('upstream_timeout', `upstream ${target.origin} did not answer in time`, undefined);
      up.close(NGHTTP2_CANCEL);
    }, this.#timeoutMs);
    up.on('response', (h, flags) => this.#onResponse(h, flags));
    up.on('trailers', (t) => (this.#trailers = t));
    up.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      if (!this.#res.write(chunk)) {
        up.pause();
        this.#res.once('drain', () => up.resume());
      }
    });
    up.on('end', () => this.#onEnd());
    up.on('error', (err) => this.#onError(err));
    up.on('close', () => {
      if (!this.#finished) this.#onError(Object.assign(new Error(`upstream stream closed (code ${up.rstCode})`), { code: 'ERR_HTTP2_STREAM_ERROR' }));
    });
    // The client reset its stream or went away: the upstream request is cancelled with it.
    this.#res.once('close', () => {
      if (!up.closed) up.close(NGHTTP2_CANCEL);
    });
    if (this.#body !== null) {
      this.#body.on('error', () => up.close(NGHTTP2_CANCEL));
      this.#body.pipe(up);
    }
  }

  #requestHeaders(target: UpstreamTarget): OutgoingHttpHeaders {
    const out: OutgoingHttpHeaders = {
      ':method': this.ctx.method,
      ':path': target.basePath === '' ? this.ctx.url : target.basePath + this.ctx.url,
      ':scheme': 'http',
      ':authority': this.ctx.host ?? new URL(target.origin).host,
    };
    const raw = this.#headers;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (H2_FORBIDDEN.has(name)) continue;
      const prev = out[name];
      out[name] = prev === undefined ? raw[i + 1]! : Array.isArray(prev) ? [...prev, raw[i + 1]!] : [String(prev), raw[i + 1]!];
    }
    // gRPC requires `te: trailers`; it is hop-by-hop, so upstreamHeaders dropped the client's.
    if (wantsTrailers(this.ctx.headers)) out['te'] = 'trailers';
    return out;
  }

  #onResponse(h: IncomingHttpHeaders, flags: number): void {
    clearTimeout(this.#timer);
    if (this.#finished) return;
    this.status = Number(h[':status']);
    const list: string[] = [];
    for (const name of Object.keys(h)) {
      if (name.charCodeAt(0) === 58 /* : */ || dropResponseHeader(name)) continue;
      const v = h[name]!;
      if (Array.isArray(v)) for (const x of v) list.push(name, x);
      else list.push(name, String(v));
    }
    const stream = clientStreamOf(this.ctx);
    // A trailers-only answer (gRPC errors) must stay one HEADERS frame with END_STREAM: gRPC
    // clients read grpc-status only from a frame that ends the stream.
    if (stream !== undefined && (flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
      const out: OutgoingHttpHeaders = { ':status': this.status };
      for (let i = 0; i < list.length; i += 2) out[list[i]!] = list[i + 1]!;
      if (!stream.destroyed && !stream.headersSent) stream.respond(out, { endStream: true });
      return;
    }
    this.#res.writeHead(this.status, list);
  }

  #onEnd(): void {
    if (this.#finished) return;
    const t = this.#trailers;
    // Trailers reach HTTP/2 clients; an HTTP/1.1 response has no place for them here.
    if (t !== undefined && this.ctx.protocol === 'h2') {
      const out: Record<string, string | string[]> = {};
      for (const name of Object.keys(t)) if (name.charCodeAt(0) !== 58) out[name] = t[name] as string | string[];
      (this.#res as unknown as { addTrailers(h: object): void }).addTrailers(out);
    }
    const stream = clientStreamOf(this.ctx);
    // Unless a trailers-only answer already ended the client's stream.
    if (stream === undefined || !stream.writableEnded) this.#res.end();
    this.#done(undefined, undefined);
  }

  #onError(err: Error): void {
    if (this.#finished) return;
    clearTimeout(this.#timer);
    const cause = (err as { cause?: Error }).cause ?? err;
    const code = (cause as NodeJS.ErrnoException).code ?? '';
    const target = this.#target!;
    if (CONNECT_ERRORS.has(code)) this.#group.markDown(target, Date.now());
    if (this.#res.headersSent || clientStreamOf(this.ctx)?.headersSent === true) {
      // The response already started: cut it so that the client sees it incomplete.
      this.#res.destroy(err);
      return this.#done(undefined, err);
    }
    const timeout = code === 'ETIMEDOUT';
    this.#fail(timeout ? 'upstream_timeout' : 'upstream_unavailable', `upstream ${target.origin} failed: ${code || err.message}`, err);
  }

  #fail(code: ErrorCode, message: string, err: Error | undefined): void {
    if (this.#finished) return;
    this.#owner.upstreamFailed(this, code, message);
    this.#done(code, err);
  }

  #done(code: ErrorCode | undefined, err: Error | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#timer);
    if (code !== undefined) this.status = 0;
    this.code = code;
    this.error = err;
    this.upstreamMs = this.#started === 0 ? 0 : performance.now() - this.#started;
    this.#owner.exchangeDone(this);
  }
}

function wantsTrailers(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'te' && raw[i + 1]!.toLowerCase().includes('trailers')) return true;
  return false;
}
