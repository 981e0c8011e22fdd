// One plain HTTP/1.1 request on an accepted connection, top to bottom: context -> connection
// refusal or expiry -> revocation answer -> request facts -> admission -> EST, refusal or forward
// -> access log. Upgrades (upgrade.ts) reuse the same steps up to admission.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { anonymousEstAllowed, type EstHandler } from '../ca/est-route.js';
import { ErrorCodes, Refusal, type ErrorCode } from '../errors.js';
import type { Identity } from '../identity/types.js';
import { metrics } from '../metrics.js';
import { admitsCertless } from '../policy/certless.js';
import type { CompiledRoute } from '../policy/compile.js';
import type { RevocationChecker, RevocationStatus } from '../revocation/types.js';
import type { Runtime } from '../runtime.js';
import { refusalFromVerifyError } from '../tls/authorization.js';
import { connStateOf, type ConnState, type OpenConnections } from '../tls/connections.js';
import type { AccessLog } from './access-log.js';
import { admitRequest, EST } from './admission.js';
import { declaredTooLarge, limitBytes, tooLargeMessage } from './body-limit.js';
import { RequestContext } from './context.js';
import { sendError } from './error-response.js';
import { Exchange, type ExchangeOutcome, type ExchangeOwner } from './forward.js';
import { H2cUpstreams } from '../http2/h2c.js';
import { ApiKeyUsage, keyHeaderValue } from './api-keys.js';
import { upstreamHeaders, upstreamLines, UpstreamLinesMemo, type IdentityHeaders } from './headers.js';
import { PolicyReport } from './policy-report.js';
import { readRequestFacts } from './request-facts.js';

/** No certificate was presented on this connection (not one that failed: that stays refused). */
export function isCertless(conn: ConnState): boolean {
  return conn.identity === undefined && conn.refusal?.reason === 'NO_CERTIFICATE';
}

/** The identity headers of an admitted request: the certificate's, or the API key's name, or none. */
export function identityHeadersOf(ctx: RequestContext, id: Identity | undefined): IdentityHeaders {
  const ih = ctx.rt.identityHeaders;
  return id !== undefined ? ih.get(id, ctx.req.socket as TLSSocket) : ih.certless(typeof ctx.key === 'object' ? ctx.key.name : undefined);
}

/** Access-log error of an HTTP/2 stream reset by its client before it was forwarded. */
const STREAM_RESET = Object.assign(new Error('stream reset by the client before forwarding'), { code: 'stream_reset' });

/** What the request steps read from the listener that owns them (current runtime, revocation). */
export interface ProxyState {
  readonly runtime: Runtime;
  readonly revocation: RevocationChecker;
  readonly draining: boolean;
  /** Logs and counts a handshake refusal the first time a request meets it. */
  reportRefusal(socket: TLSSocket, conn: ConnState): void;
}

export class RequestSteps implements ExchangeOwner {
  readonly state: ProxyState;
  readonly #log: Logger;
  readonly accessLog: AccessLog;
  readonly connections: OpenConnections;
  readonly est: EstHandler | undefined;
  readonly #policyReport: PolicyReport;
  readonly keyUsage: ApiKeyUsage;
  /** HTTP/2 sessions to `upstreamProtocol: h2c` upstreams (they outlive reloads, like the pools). */
  readonly h2c: H2cUpstreams;
  #seq = 0;
  readonly #idPrefix = randomBytes(4).toString('hex') + '-';

  constructor(state: ProxyState, log: Logger, accessLog: AccessLog, connections: OpenConnections, est: EstHandler | undefined) {
    this.state = state;
    this.#log = log;
    this.accessLog = accessLog;
    this.connections = connections;
    this.est = est;
    this.#policyReport = new PolicyReport(log);
    this.keyUsage = new ApiKeyUsage(log);
    this.h2c = new H2cUpstreams(state.runtime.config.timeouts);
  }

  nextRequestId(): string {
    return this.#idPrefix + (++this.#seq).toString(36);
  }

  estEnabled(rt: Runtime): boolean {
    return this.est !== undefined && rt.config.est?.enabled === true;
  }

  onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    this.handle(new RequestContext(this.state.runtime, connStateOf(req.socket), req, res, this.nextRequestId(), 'http/1.1'));
  };

  /** One HTTP/1.1 request or HTTP/2 stream, from its context to its answer and access line. */
  handle(ctx: RequestContext): void {
    const { conn, req } = ctx;
    if (conn !== undefined && ctx.protocol === 'http/1.1') conn.inFlight++;
    if (this.state.draining) ctx.res!.shouldKeepAlive = false;
    // A connection refused after the handshake (revoked, CA removed, weak after a reload) stays refused.
    if (conn === undefined || conn.identity === undefined || conn.refusal !== undefined) {
      const r = conn?.refusal ?? refusalFromVerifyError(undefined, false);
      // A client with no certificate at all may fetch the CA certs and enroll with a token, and
      // reach the routes that admit anonymous or API-key clients; a client whose certificate
      // failed verification may not: it is never downgraded to anonymous.
      if (conn !== undefined && isCertless(conn)) {
        if (this.estEnabled(ctx.rt) && anonymousEstAllowed(req.method, req.url)) {
          if (conn.refusalPending === true) this.state.reportRefusal(req.socket as TLSSocket, conn);
          return this.#handleEst(ctx);
        }
        if (admitsCertless(ctx.rt.policy)) return this.#certless(ctx, conn);
      }
      if (conn?.refusalPending === true) this.state.reportRefusal(req.socket as TLSSocket, conn);
      return this.refuse(ctx, r.code, r.message, true);
    }
    const id = (ctx.identity = conn.identity);
    if (Date.now() >= conn.validUntil) {
      conn.refusal = refusalFromVerifyError('CERT_HAS_EXPIRED', true);
      return this.refuse(ctx, 'certificate_expired', conn.refusal.message, true);
    }
    readRequestFacts(ctx, ctx.headers, conn);
    const rev = this.revocationOf(conn, id);
    if (rev !== undefined && 'then' in rev) {
      rev.then(
        (s) => {
          if (conn.rev === rev) conn.rev = s;
          this.#admitted(ctx, conn, id, s);
        },
        (err: Error) => {
          this.#log.error({ event: 'revocation_error', reqId: ctx.requestId, err }, 'revocation check failed');
          this.refuse(ctx, 'revocation_unknown', undefined, false);
        },
      );
      return;
    }
    this.#admitted(ctx, conn, id, rev);
  }

  /**
   * A request on a connection without a certificate goes through the same admission as every
   * request, with no identity and what its API key header held.
   */
  #certless(ctx: RequestContext, conn: ConnState): void {
    readRequestFacts(ctx, ctx.headers, conn);
    this.checkKey(ctx);
    this.#admitted(ctx, conn, undefined, undefined);
  }

  /** Reads and checks the API key header of a request without certificate; counts and logs key use. */
  checkKey(ctx: RequestContext): void {
    const keys = ctx.rt.apiKeys;
    const header = ctx.rt.config.apiKeys?.header;
    if (keys === undefined || header === undefined) return;
    const value = keyHeaderValue(ctx.headers, header);
    if (value === undefined) return;
    const now = Date.now();
    const k = (ctx.key = keys.check(value, now));
    if (k === 'invalid') return;
    // An expired key still names who holds it: counted and logged, so the team knows who to call.
    const name = k === 'expired' ? keys.nameOf(value) : k.name;
    ctx.apiKey = name;
    if (name !== undefined) this.keyUsage.used(name, k === 'expired', undefined, now);
  }

  /** The connection's revocation answer, asked again only when a revocation source changed. */
  revocationOf(conn: ConnState, id: Identity): ConnState['rev'] {
    const revocation = this.state.revocation;
    if (conn.revEpoch !== revocation.epoch) {
      conn.revEpoch = revocation.epoch;
      conn.rev = revocation.check(id);
    }
    return conn.rev;
  }

  /**
   * Admission plus its side effects (log lines, metrics, the connection's refusal), for plain
   * requests and upgrades alike. Returns what admitRequest answered.
   */
  admit(ctx: RequestContext, conn: ConnState, id: Identity | undefined, rev: RevocationStatus | undefined): CompiledRoute | Refusal | typeof EST {
    const a = admitRequest(ctx.rt, ctx, id, rev, this.estEnabled(ctx.rt), this.#policyReport);
    if (rev === undefined || rev.state === 'good' || id === undefined) return a;
    if (rev.state === 'revoked') {
      this.#log.warn(
        { event: 'revoked', reqId: ctx.requestId, serial: id.serial, issuer: id.issuer, fingerprint: id.fingerprint, source: rev.source, reason: rev.reason },
        `refused revoked certificate (${rev.detail})`,
      );
      conn.refusal = { code: 'certificate_revoked', reason: rev.reason, message: ErrorCodes.certificate_revoked.message };
      metrics.revocationRefusals.inc({ source: rev.source });
      return a;
    }
    if (a instanceof Refusal) {
      if (a.code === 'revocation_unknown' && a.route !== undefined) {
        this.#log.warn(
          { event: 'revocation_unknown', reqId: ctx.requestId, serial: id.serial, issuer: id.issuer, source: rev.source, detail: rev.detail, route: a.route.name },
          'refused: revocation status unknown (hard mode)',
        );
      }
      return a;
    }
    if (a === EST) return a;
    // Allowed although the status is unknown: the route (or the source) is in soft mode.
    if (!conn.softWarned) {
      conn.softWarned = true;
      this.#log.warn({ event: 'revocation_soft_fail', serial: id.serial, issuer: id.issuer, source: rev.source, detail: rev.detail }, 'revocation status unknown; allowed (soft mode)');
    }
    metrics.revocationSoftFailures.inc({ source: rev.source });
    this.accessLog.observer.revocationUnknown?.(id, rev);
    return a;
  }

  #admitted(ctx: RequestContext, conn: ConnState, id: Identity | undefined, rev: RevocationStatus | undefined): void {
    const a = this.admit(ctx, conn, id, rev);
    if (a === EST) return this.#handleEst(ctx);
    if (a instanceof Refusal) {
      ctx.matched = a.route;
      return this.refuse(ctx, a.code, a.message, a.close);
    }
    ctx.matched = a;
    this.#forward(ctx, a, id);
  }

  /** EST (enrollment, renewal) is answered by certgate itself, before any route or policy. */
  #handleEst(ctx: RequestContext): void {
    // The window, rate limit and validity come from the current runtime, so a reload applies them.
    this.est!.handle(ctx.req, ctx.res!, ctx.identity, ctx.requestId, ctx.rt.config.est!).then(
      (o) => {
        ctx.decision = o.decision;
        ctx.status = o.status;
        this.finish(ctx);
      },
      (err: Error) => {
        this.#log.error({ event: 'est_error', reqId: ctx.requestId, err }, 'EST request failed');
        sendError(ctx.res!, ctx.requestId, 'internal_error', undefined, true);
        ctx.decision = 'internal_error';
        ctx.status = 500;
        ctx.error = err;
        this.finish(ctx);
      },
    );
  }

  #forward(ctx: RequestContext, route: CompiledRoute, id: Identity | undefined): void {
    const { req, res, rt } = ctx;
    // An HTTP/2 stream the client reset while it was being admitted is never forwarded.
    if (ctx.protocol === 'h2' && req.aborted) {
      ctx.error = STREAM_RESET;
      return this.finish(ctx);
    }
    const limit = route.config.maxBodySize;
    let body: Readable | null = null;
    if (ctx.contentLength !== undefined) {
      if (declaredTooLarge(ctx.contentLength, limit)) return this.refuse(ctx, 'payload_too_large', tooLargeMessage(limit), true);
      if (ctx.contentLength !== '0') body = req;
    } else if (ctx.chunked || ctx.lengthless) {
      body = req.pipe(limitBytes(limit, () => (ctx.tooLarge = true)));
    }
    const group = rt.upstreams[route.index]!;
    const timeoutMs = route.config.timeouts.upstream;
    const ih = identityHeadersOf(ctx, id);
    if (route.config.upstreamProtocol === 'h2c') {
      return this.h2c.forward(this, ctx, group, upstreamHeaders(ctx.headers, ih, rt.config.headers, ctx.remote, ctx.requestId), body, timeoutMs);
    }
    const conn = ctx.conn;
    const lines = conn === undefined ? upstreamLines(ctx.headers, ih, rt.config.headers, ctx.remote) : (conn.upstreamLines ??= new UpstreamLinesMemo()).get(ctx.headers, ih, rt.config.headers, ctx.remote);
    new Exchange(this, ctx, res!, group, lines, body, timeoutMs).start();
  }

  upstreamFailed(x: ExchangeOutcome, code: ErrorCode, message: string): void {
    const ctx = x.ctx;
    if (ctx.tooLarge) return sendError(ctx.res!, ctx.requestId, 'payload_too_large', tooLargeMessage(ctx.matched!.config.maxBodySize), true);
    // The detail names the upstream's address: it goes to the log, never to the client.
    this.#log.warn({ event: 'upstream_error', code, reqId: ctx.requestId, route: ctx.matched!.name }, message);
    sendError(ctx.res!, ctx.requestId, code, undefined, false);
  }

  exchangeDone(x: ExchangeOutcome): void {
    const ctx = x.ctx;
    const code: ErrorCode | undefined = ctx.tooLarge ? 'payload_too_large' : x.code;
    ctx.decision = code ?? 'allow';
    ctx.status = x.code === undefined ? x.status : ErrorCodes[code!].status;
    ctx.bytes = x.bytes;
    ctx.upstreamMs = x.upstreamMs;
    ctx.error = x.error;
    this.finish(ctx);
  }

  /** Answers with the JSON error and logs the request. */
  refuse(ctx: RequestContext, code: ErrorCode, message: string | undefined, close: boolean): void {
    // A connection without a certificate counts as a handshake refusal once a request is refused for it.
    if (code === 'certificate_required' && ctx.conn?.refusalPending === true) this.state.reportRefusal(ctx.req.socket as TLSSocket, ctx.conn);
    sendError(ctx.res!, ctx.requestId, code, message, close);
    ctx.decision = code;
    ctx.status = ErrorCodes[code].status;
    this.finish(ctx);
  }

  /** Every request ends here exactly once. */
  finish(ctx: RequestContext): void {
    this.accessLog.write(ctx);
    if (ctx.conn !== undefined && ctx.protocol === 'http/1.1') this.connections.requestEnded(ctx.req.socket as TLSSocket, ctx.conn, ctx.res);
  }
}
