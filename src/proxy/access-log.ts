// The last step of every request: one access log line and the observer's requestDone (metrics,
// inventory), both read from the request context. The line is the JSON pino wrote before (same
// fields, same order), built by concatenation: the constant head once, the identity fields once
// per certificate, the time once per millisecond, and only the request's own fields per line.

import type { Identity } from '../identity/types.js';
import type { AccessLines, Loggers } from '../log.js';
import type { RequestContext } from './context.js';
import type { Observer } from './events.js';

/** A JSON string literal; the fast path skips JSON.stringify for plain printable ASCII. */
export function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(s);
  }
  return '"' + s + '"';
}

export class AccessLog {
  readonly #lines: AccessLines | undefined;
  /** `","name":"certgate","kind":"access"`, then the identity's fields: per certificate. */
  readonly #anonymous: string;
  readonly #byIdentity = new WeakMap<Identity, string>();
  #lastMs = -1;
  #head = '';
  #lastSecond = -1;
  /** `{"level":30,"time":"2026-11-29T06:38:25.`: the ISO time up to its milliseconds, per second. */
  #secondHead = '';
  observer: Observer = {};

  constructor(loggers: Loggers) {
    this.#lines = loggers.access;
    this.#anonymous = (this.#lines?.base ?? '') + ',"reqId":';
  }

  write(ctx: RequestContext): void {
    ctx.durationMs = performance.now() - ctx.started;
    const lines = this.#lines;
    if (lines !== undefined) lines.write(this.line(ctx));
    this.observer.requestDone?.(ctx);
  }

  /** The access line of a finished request (newline included). */
  line(ctx: RequestContext): string {
    const id = ctx.identity;
    const route = ctx.route;
    const error = ctx.error;
    // The request id (hex and base36), the client address (an IP literal from the socket or the
    // PROXY header parser), the method (a token Node's parser accepted) and the route name
    // (checked against [A-Za-z0-9_.-] at config load) need no escaping; the path and the error
    // are the client's or the network's and are escaped.
    return (
      this.#timeHead() +
      (id === undefined ? this.#anonymous : this.#identityPart(id)) +
      '"' +
      ctx.requestId +
      '",' +
      // Only what is not HTTP/1.1 is named (h2, websocket): HTTP/1.1 lines keep their shape.
      (ctx.protocol === 'h2' || ctx.protocol === 'websocket' ? '"protocol":"' + ctx.protocol + '",' : '') +
      '"method":"' +
      ctx.method +
      '","path":' +
      jsonString(ctx.url) +
      (route === undefined ? '' : ',"route":"' + route + '"') +
      ',"decision":"' +
      ctx.decision +
      '","status":' +
      ctx.status +
      ',"bytes":' +
      ctx.bytes +
      ',"ms":' +
      Math.round(ctx.durationMs * 1000) / 1000 +
      (error === undefined ? '' : ',"error":' + jsonString((error as NodeJS.ErrnoException).code ?? error.message)) +
      ',"remote":"' +
      ctx.remote +
      '","msg":"request"}\n'
    );
  }

  /**
   * `{"level":30,"time":"…"`, pino's isoTime: toISOString once per second (it formats with
   * snprintf, which cost more than the rest of the line), the milliseconds appended per millisecond.
   */
  #timeHead(): string {
    const now = Date.now();
    if (now !== this.#lastMs) {
      this.#lastMs = now;
      const ms = now % 1000;
      const second = now - ms;
      if (second !== this.#lastSecond) {
        this.#lastSecond = second;
        this.#secondHead = `{"level":30,"time":"${new Date(second).toISOString().slice(0, 20)}`;
      }
      this.#head = this.#secondHead + (ms < 10 ? '00' : ms < 100 ? '0' : '') + ms + 'Z"';
    }
    return this.#head;
  }

  /** The identity's fields, serialised once per certificate, not per line. */
  #identityPart(id: Identity): string {
    let s = this.#byIdentity.get(id);
    if (s === undefined) {
      s = (this.#lines?.base ?? '') + ',"subject":' + jsonString(id.subject) + ',"fingerprint":' + jsonString(id.fingerprint) + ',"reqId":';
      this.#byIdentity.set(id, s);
    }
    return s;
  }
}
