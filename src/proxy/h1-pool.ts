// certgate's keep-alive client for plain http:// upstreams: one pool per origin, one request per
// connection at a time (no pipelining). The request head is written as one string from header
// lists certgate built itself: the client's headers were checked by Node's parser, certgate's own
// are printable ASCII by construction, so nothing is validated twice (undici's public API
// re-validated every header of every request, the largest cost of the request path). Responses
// are read by the strict parser in h1-response.ts.
//
// Timeouts cost nothing per request: the socket's own idle timeout is the route's upstream
// timeout (no byte for that long while a request is out), and idle connections are closed by one
// sweep a second.

import { maxHeaderSize } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { ResponseError, ResponseParser, type ResponseSink } from './h1-response.js';

/** One exchange on a connection, as the connection sees it (forward.ts's Exchange). */
export interface H1Handler extends ResponseSink {
  onResponseEnd(): void;
  onUpstreamError(err: UpstreamError): void;
}

export interface H1Request {
  /**
   * Request line and header lines, without the blank line that ends the head. Written as latin1:
   * Node's parser reads header bytes as latin1, so obs-text goes out as the bytes that came in.
   */
  readonly head: string;
  readonly body: Readable | null;
  /** Frame the body as chunked (its length is not known). */
  readonly chunked: boolean;
  /** A HEAD request: its response has no body whatever the headers say. */
  readonly noBody: boolean;
  readonly timeoutMs: number;
}

/**
 * Why an exchange failed. `code`: a socket errno (ECONNREFUSED, ECONNRESET...), CONNECT_TIMEOUT,
 * TIMEOUT, UPSTREAM_BAD_RESPONSE or CLOSED. `stale`: a kept-alive connection failed before any
 * byte of the response, the usual sign that the upstream closed it while it was idle.
 */
export class UpstreamError extends Error {
  readonly code: string;
  readonly stale: boolean;
  constructor(code: string, message: string, stale: boolean) {
    super(message);
    this.code = code;
    this.stale = stale;
  }
}

export interface H1PoolSettings {
  readonly connectMs: number;
  /** Longest a connection stays idle in the pool (an upstream's Keep-Alive hint can shorten it). */
  readonly keepAliveMs: number;
}

const SWEEP_MS = 1_000;
/** Close an idle connection this long before the upstream's announced keep-alive timeout. */
const HINT_MARGIN_MS = 1_000;

class H1Connection implements ResponseSink {
  readonly #pool: H1Pool;
  readonly socket: Socket;
  readonly parser: ResponseParser;
  #handler: H1Handler | undefined = undefined;
  #body: Readable | null = null;
  #chunked = false;
  #bodyDone = true;
  #connected = false;
  #timeoutMs = 0;
  #paused = false;
  /** Requests this connection has carried before the current one. */
  served = 0;
  idleSince = 0;

  constructor(pool: H1Pool, host: string, port: number, connectMs: number) {
    this.#pool = pool;
    this.parser = new ResponseParser(this, maxHeaderSize);
    const s = (this.socket = connect({ host, port, noDelay: true }));
    s.setTimeout(connectMs);
    s.on('connect', () => {
      this.#connected = true;
      s.setTimeout(this.#timeoutMs);
    });
    s.on('data', (chunk: Buffer) => this.#onData(chunk));
    s.on('end', () => this.#onEnd());
    s.on('timeout', () => this.#onTimeout());
    s.on('error', (err: NodeJS.ErrnoException) => this.#fail(err.code ?? 'ECONNRESET', err.message));
    s.on('close', () => this.#onClose());
    s.on('drain', this.#resumeBody);
  }

  /** Sends one request; the handler hears of its response or its failure, exactly once. */
  send(handler: H1Handler, r: H1Request): void {
    this.#handler = handler;
    this.#paused = false;
    this.parser.expect(r.noBody);
    if (this.#connected && this.#timeoutMs !== r.timeoutMs) this.socket.setTimeout(r.timeoutMs);
    this.#timeoutMs = r.timeoutMs;
    const s = this.socket;
    if (r.body === null) {
      this.#bodyDone = true;
      s.write(r.head + '\r\n', 'latin1');
      return;
    }
    this.#bodyDone = false;
    this.#body = r.body;
    this.#chunked = r.chunked;
    s.write(r.chunked ? r.head + 'transfer-encoding: chunked\r\n\r\n' : r.head + '\r\n', 'latin1');
    r.body.on('data', this.#onBodyData);
    r.body.on('end', this.#onBodyEnd);
    r.body.on('error', this.#onBodyError);
  }

  /** The handler's response side drained: read from the upstream again. */
  resume(): void {
    this.#paused = false;
    // A timeout that fired while paused was ignored, and only traffic arms it again: arm it here,
    // or an upstream that sends nothing more after the pause would never time out.
    this.socket.setTimeout(this.#timeoutMs);
    this.socket.resume();
  }

  /** The client reads slower than the upstream sends: stop reading (the timeout waits too). */
  pause(): void {
    this.#paused = true;
    this.socket.pause();
  }

  /** The exchange is abandoned (the client went away): the connection cannot be reused. */
  abandon(): void {
    this.#detachBody();
    this.#handler = undefined;
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  onResponseHead(status: number, reason: string, headers: string[]): void {
    this.#handler?.onResponseHead(status, reason, headers);
  }

  onResponseBody(chunk: Buffer): void {
    this.#handler?.onResponseBody(chunk);
  }

  #onBodyData = (chunk: Buffer): void => {
    const s = this.socket;
    let ok: boolean;
    if (this.#chunked) {
      if (chunk.length === 0) return;
      s.cork();
      s.write(chunk.length.toString(16) + '\r\n');
      s.write(chunk);
      ok = s.write('\r\n');
      s.uncork();
    } else ok = s.write(chunk);
    if (!ok) this.#body?.pause();
  };

  #resumeBody = (): void => {
    this.#body?.resume();
  };

  #onBodyEnd = (): void => {
    if (this.#chunked) this.socket.write('0\r\n\r\n');
    this.#detachBody();
    this.#bodyDone = true;
    if (this.parser.done && this.#handler !== undefined) this.#complete();
  };

  #onBodyError = (err: Error): void => {
    this.#fail('CLIENT_BODY', `the request body failed: ${err.message}`);
  };

  #detachBody(): void {
    const b = this.#body;
    if (b === null) return;
    this.#body = null;
    b.off('data', this.#onBodyData);
    b.off('end', this.#onBodyEnd);
    b.off('error', this.#onBodyError);
    // The rest of an unfinished body (the upstream answered early) is read and dropped, so that
    // the client's connection can carry its next request; a body paused for backpressure stayed paused.
    if (!b.readableEnded) b.resume();
  }

  #onData(chunk: Buffer): void {
    if (this.#handler === undefined) {
      // Bytes nobody asked for: the connection is out of step, never use it again.
      this.socket.destroy();
      return;
    }
    try {
      this.parser.execute(chunk);
    } catch (err) {
      this.#fail('UPSTREAM_BAD_RESPONSE', (err as ResponseError).message);
      return;
    }
    if (this.parser.done && this.#handler !== undefined) {
      // An answer before the whole request body went out (a 413, say) ends the exchange; the
      // connection cannot be reused then.
      if (!this.#bodyDone) {
        this.#detachBody();
        this.parser.keepAlive = false;
      }
      this.#complete();
    }
  }

  #complete(): void {
    const h = this.#handler!;
    this.#handler = undefined;
    // Paused for a slow client on the response's last bytes: the next exchange must read again.
    if (this.#paused) this.resume();
    this.served++;
    const reusable = this.parser.keepAlive && !this.parser.trailing && this.#bodyDone;
    if (reusable) this.#pool.release(this);
    else this.socket.destroy();
    h.onResponseEnd();
  }

  #onEnd(): void {
    // Closed by the upstream while idle: out of the pool now, not when 'close' comes.
    if (this.#handler === undefined) {
      this.socket.destroy();
      return;
    }
    try {
      this.parser.end();
    } catch (err) {
      this.#fail(this.parser.started ? 'UPSTREAM_BAD_RESPONSE' : 'CLOSED', (err as ResponseError).message);
      return;
    }
    this.#complete();
  }

  #onTimeout(): void {
    // Idle: the sweep closes it. Paused: the client is the slow one, not the upstream.
    if ((this.#handler === undefined || this.#paused) && this.#connected) return;
    if (!this.#connected) this.#fail('CONNECT_TIMEOUT', 'connecting timed out');
    else this.#fail('TIMEOUT', 'no byte from the upstream within the timeout');
  }

  #onClose(): void {
    this.#fail('CLOSED', 'the connection closed');
    this.#pool.forget(this);
  }

  #fail(code: string, message: string): void {
    this.#detachBody();
    const h = this.#handler;
    this.#handler = undefined;
    this.socket.destroy();
    if (h === undefined) return;
    h.onUpstreamError(new UpstreamError(code, message, this.served > 0 && !this.parser.started && code !== 'TIMEOUT'));
  }
}

/** The connections to one origin. */
export class H1Pool {
  readonly #host: string;
  readonly #port: number;
  readonly #settings: H1PoolSettings;
  /** Idle connections, the most recently used last (reused first: it is the least likely to be closed). */
  readonly #idle: H1Connection[] = [];
  readonly #all = new Set<H1Connection>();
  #sweep: NodeJS.Timeout | undefined = undefined;
  #closed = false;
  #onEmpty: (() => void) | undefined = undefined;

  constructor(origin: string, settings: H1PoolSettings) {
    const u = new URL(origin);
    this.#host = u.hostname.replace(/^\[|\]$/g, '');
    this.#port = u.port === '' ? 80 : Number(u.port);
    this.#settings = settings;
  }

  /** Sends a request on an idle connection, or a new one when none is idle (or `fresh`). */
  send(handler: H1Handler, r: H1Request, fresh = false): H1Connection {
    let c: H1Connection | undefined;
    if (!fresh) {
      const now = Date.now();
      while ((c = this.#idle.pop()) !== undefined && (now - c.idleSince >= this.#keepAliveOf(c) || c.socket.destroyed)) c.destroy();
    }
    if (c === undefined) {
      c = new H1Connection(this, this.#host, this.#port, this.#settings.connectMs);
      this.#all.add(c);
      this.#sweep ??= setInterval(() => this.#sweepIdle(), SWEEP_MS).unref();
    }
    c.send(handler, r);
    return c;
  }

  release(c: H1Connection): void {
    if (this.#closed) return c.destroy();
    c.idleSince = Date.now();
    this.#idle.push(c);
  }

  forget(c: H1Connection): void {
    this.#all.delete(c);
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    if (this.#all.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
      this.#onEmpty?.();
    }
  }

  /** No new requests; idle connections close now, busy ones when their exchange is over. */
  close(): Promise<void> {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) c.destroy();
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#onEmpty = resolve));
  }

  #keepAliveOf(c: H1Connection): number {
    const hint = c.parser.keepAliveHint;
    const ka = this.#settings.keepAliveMs;
    return hint > 0 ? Math.min(ka, Math.max(hint - HINT_MARGIN_MS, 0)) : ka;
  }

  #sweepIdle(): void {
    const now = Date.now();
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const c = this.#idle[i]!;
      if (now - c.idleSince < this.#keepAliveOf(c)) continue;
      this.#idle.splice(i, 1);
      c.destroy();
    }
  }
}

export type { H1Connection };
