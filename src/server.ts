// Composition root of the proxy listener: the flow listener -> identity -> revocation -> policy
// -> headers -> forward -> access log, over one Runtime reference that reload swaps.

import { randomBytes, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { Transform, type Readable } from 'node:stream';
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { anonymousEstAllowed, EST_PREFIX, type EstHandler } from './ca/est-route.js';
import { checkConfig } from './config/check.js';
import { loadConfig, restartOnlyIssues } from './config/load.js';
import type { Config } from './config/types.js';
import { ConfigError, ErrorCodes, errorBody, formatConfigIssue, type ErrorCode } from './errors.js';
import { createIdentityCache, type IdentityCache } from './identity/identity.js';
import type { Identity } from './identity/types.js';
import type { Loggers } from './log.js';
import { decide } from './policy/decide.js';
import type { CompiledRoute } from './policy/compile.js';
import { forward, type ForwardResult } from './proxy/forward.js';
import { upstreamHeaders } from './proxy/headers.js';
import { canonicalPath, hostOnly } from './proxy/hygiene.js';
import { PoolRegistry } from './proxy/upstream.js';
import { proxyWebSocket } from './proxy/websocket.js';
import { noRevocation, type RevocationChecker, type RevocationStatus } from './revocation/types.js';
import { chainDepthOf, explainVerifyWeakness } from './lifecycle/lint.js';
import { metrics } from './metrics.js';
import { buildRuntime, originsOf, type Runtime } from './runtime.js';
import { refusalFromVerifyError, type PeerRefusal } from './tls/authorization.js';
import { MaterialError, materialConfigIssues, secureContextOptions, trustPath } from './tls/material.js';

/** Hooks for metrics and the inventory; every one is optional and cheap when absent. */
export interface Observer {
  handshakeRefused?(r: PeerRefusal, socket: TLSSocket): void;
  connectionAccepted?(id: Identity, resumed: boolean): void;
  requestDone?(e: RequestEvent): void;
  revocationUnknown?(id: Identity, status: RevocationStatus): void;
  reloaded?(ok: boolean, rt: Runtime | undefined, errors: string[]): void;
}

export interface RequestEvent {
  readonly identity: Identity | undefined;
  readonly route: string | undefined;
  readonly status: number;
  readonly decision: 'allow' | ErrorCode;
  readonly durationMs: number;
  readonly upstreamMs: number | undefined;
}

/** Per-connection state: computed once after the handshake, kept small (memory per idle conn). */
class Conn {
  identity: Identity | undefined = undefined;
  refusal: PeerRefusal | undefined = undefined;
  /** notAfter of the leaf, ms: a long-lived connection does not outlive its certificate. */
  validUntil = 0;
  sni: string | undefined = undefined;
  revEpoch = -1;
  rev: RevocationStatus | Promise<RevocationStatus> | undefined = undefined;
  softWarned = false;
  /** The last raw Host header seen and its normalised form: clients repeat it on every request. */
  hostRaw: string | undefined = undefined;
  hostNorm: string | undefined = undefined;
  /** Body framing of the request being handled, read in the same pass as Host (HTTP/1.1 handles
   *  one request at a time per connection, and these are used synchronously after). */
  contentLength: string | undefined = undefined;
  chunked = false;
  /** A Transfer-Encoding other than exactly `chunked`: refused, never forwarded. */
  badEncoding: string | undefined = undefined;
}

const kConn = Symbol('certgate.conn');

/** A request refused by #admit: the code decides the status; `close` ends the connection after. */
class Refused {
  constructor(
    readonly code: ErrorCode,
    readonly message: string | undefined = undefined,
    readonly route: CompiledRoute | undefined = undefined,
    readonly close = false,
  ) {}
}
/** #admit's answer for requests that belong to the EST endpoint. */
const EST = Symbol('certgate.est');
type CertgateSocket = TLSSocket & { [kConn]?: Conn };

export interface CertgateOptions {
  readonly config: Config;
  readonly loggers: Loggers;
  readonly revocation?: RevocationChecker;
  readonly observer?: Observer;
  /** Shared ticket keys (48 bytes); the primary hands them to workers. */
  readonly ticketKeys?: Buffer;
  /** EST enrollment on this listener (when `est.enabled`). */
  readonly est?: EstHandler;
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly errors: string[];
  readonly generation: number;
}

export class Certgate {
  #rt: Runtime;
  readonly #server: Server;
  readonly #pools: PoolRegistry;
  readonly #identities: IdentityCache;
  readonly #log: Logger;
  readonly #loggers: Loggers;
  readonly #conns = new Set<CertgateSocket>();
  readonly #accessByIdentity = new WeakMap<Identity, Logger>();
  #revocation: RevocationChecker;
  #observer: Observer;
  #ticketKeys: Buffer;
  #draining = false;
  readonly #est: EstHandler | undefined;
  #seq = 0;
  readonly #idPrefix = randomBytes(4).toString('hex') + '-';

  constructor(opts: CertgateOptions) {
    this.#loggers = opts.loggers;
    this.#log = opts.loggers.log;
    this.#revocation = opts.revocation ?? noRevocation;
    this.#observer = opts.observer ?? {};
    this.#est = opts.est;
    this.#ticketKeys = opts.ticketKeys ?? randomBytes(48);
    this.#identities = createIdentityCache();
    const cfg = opts.config;
    this.#pools = new PoolRegistry({ connectMs: cfg.timeouts.upstreamConnect, idleMs: cfg.timeouts.idle });
    this.#rt = buildRuntime(cfg, this.#pools);
    this.#warnOwnCerts(this.#rt);
    this.#server = createServer(
      {
        ...secureContextOptions(cfg, this.#rt.tls, this.#ticketKeys),
        requestCert: true,
        // certgate decides after the handshake so that it can log and answer why.
        rejectUnauthorized: false,
        handshakeTimeout: cfg.timeouts.handshake,
        maxHeaderSize: cfg.limits.maxHeaderSize,
        keepAliveTimeout: cfg.timeouts.idle,
        headersTimeout: cfg.timeouts.headers,
        requestTimeout: cfg.timeouts.request,
        // Node checks those two every 30 s by default: a slow client would get 30 s more.
        connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(cfg.timeouts.headers / 2))),
        // Duplicate Host headers must reach us so that they can be refused, not merged.
        joinDuplicateHeaders: false,
      },
      this.#onRequest,
    );
    this.#server.maxConnections = cfg.limits.maxConnections;
    // Inactivity cut-off for connections that never send a request (keepAliveTimeout only
    // starts after a response); upgraded sockets get their timeout cleared by http-proxy.
    this.#server.timeout = cfg.timeouts.idle;
    this.#server.on('secureConnection', this.#onSecureConnection);
    this.#server.on('tlsClientError', this.#onTlsClientError);
    this.#server.on('clientError', this.#onClientError);
    this.#server.on('upgrade', this.#onUpgrade);
    this.#revocation.onChange(() => this.#recheckOpenConnections());
  }

  get runtime(): Runtime {
    return this.#rt;
  }

  get server(): Server {
    return this.#server;
  }

  get openConnections(): number {
    return this.#conns.size;
  }

  setObserver(o: Observer): void {
    this.#observer = o;
  }

  setRevocation(r: RevocationChecker): void {
    this.#revocation = r;
    r.onChange(() => this.#recheckOpenConnections());
    this.#recheckOpenConnections();
  }

  /** Ticket keys are kept across reloads and rotated on a schedule (or pushed by the primary). */
  setTicketKeys(keys: Buffer): void {
    this.#ticketKeys = keys;
    this.#server.setTicketKeys(keys);
  }

  listen(): Promise<AddressInfo> {
    const { host, port } = this.#rt.config.listen;
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host, port, exclusive: false }, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /**
   * Builds a new Runtime from the config file and swaps it in only if every part built.
   * Open connections keep working; new handshakes get the new TLS material.
   */
  reload(configFile = this.#rt.config.file): ReloadResult {
    const errors: string[] = [];
    let next: Runtime | undefined;
    let commitRevocation: (() => void) | undefined;
    try {
      const checked = checkConfig(configFile);
      const cfg = checked.config;
      const fixed = cfg === undefined ? [] : restartOnlyIssues(this.#rt.config, cfg);
      if (cfg === undefined || fixed.length > 0) {
        errors.push(...[...checked.issues, ...fixed].map(formatConfigIssue));
      } else {
        next = buildRuntime(cfg, this.#pools);
        // CRL files are verified against the new trust bundle: a bad one fails the whole reload.
        commitRevocation = this.#revocation.prepare?.(cfg, next.tls.cas);
      }
    } catch (err) {
      if (err instanceof ConfigError) errors.push(...err.issues.map(formatConfigIssue));
      else if (err instanceof MaterialError) errors.push(...materialConfigIssues(loadConfigQuietly(configFile) ?? this.#rt.config, err).map(formatConfigIssue));
      else errors.push(`${configFile}: ${(err as Error).message}`);
    }
    if (next === undefined || errors.length > 0) {
      next = undefined;
      for (const e of errors) this.#log.error({ event: 'reload_failed' }, e);
      this.#observer.reloaded?.(false, undefined, errors);
      return { ok: false, errors, generation: this.#rt.generation };
    }
    this.#server.setSecureContext(secureContextOptions(next.config, next.tls, this.#ticketKeys));
    const prev = this.#rt;
    this.#rt = next;
    this.#warnOwnCerts(next);
    this.#pools.retain(originsOf(next));
    this.#recheckConnectionsAfterReload(prev, next);
    commitRevocation?.();
    this.#log.info({ event: 'reloaded', generation: next.generation }, 'configuration and TLS material reloaded');
    this.#observer.reloaded?.(true, next, []);
    return { ok: true, errors: [], generation: next.generation };
  }

  /** clientCertPolicy.ownCerts: warn (refuse already failed the build). */
  #warnOwnCerts(rt: Runtime): void {
    for (const w of rt.ownCertWarnings) this.#log.warn({ event: 'own_certificate_weak', generation: rt.generation }, w);
  }

  /** Stop accepting, let in-flight requests finish until the deadline, then close everything. */
  async shutdown(deadlineMs = this.#rt.config.timeouts.shutdown): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    this.#log.info({ event: 'draining', openConnections: this.#conns.size }, 'shutting down: no new connections');
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    // Connections with no request in flight (including ones that never sent one) close now;
    // busy ones get `Connection: close` on their response; upgraded ones keep the deadline.
    for (const s of this.#conns) if (!isBusy(s) && !isUpgraded(s)) s.destroy();
    const timer = setTimeout(() => {
      this.#log.warn({ event: 'shutdown_deadline', openConnections: this.#conns.size }, 'shutdown deadline reached: closing open connections');
      this.#server.closeAllConnections();
      for (const s of this.#conns) s.destroy();
    }, deadlineMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
    await Promise.allSettled([this.#pools.closeAll(), this.#revocation.close()]);
    this.#log.info({ event: 'stopped' }, 'certgate stopped');
    this.#loggers.flush();
  }

  get draining(): boolean {
    return this.#draining;
  }

  // --- listener: once per connection --------------------------------------------------------

  #onSecureConnection = (socket: CertgateSocket): void => {
    const conn = new Conn();
    socket[kConn] = conn;
    this.#conns.add(socket);
    socket.once('close', () => this.#conns.delete(socket));
    const sni = socket.servername;
    conn.sni = typeof sni === 'string' && sni !== '' ? sni.toLowerCase() : undefined;
    // The legacy accessor gives the DER and fingerprint for about half the cost of
    // getPeerX509Certificate() (measured ~150 µs against ~350 µs per connection); the X509Certificate
    // is built only on rare paths (OpenSSL refusals, first sight of a certificate, resumption).
    const legacy = socket.getPeerCertificate(false) as Partial<PeerCertificate> | null;
    const raw = legacy?.raw;
    if (!socket.authorized) {
      const r = refusalFromVerifyError(String(socket.authorizationError ?? ''), raw !== undefined);
      const peer = raw === undefined ? undefined : socket.getPeerX509Certificate();
      if (peer === undefined || (r.code !== 'weak_certificate' && r.reason !== 'UNSPECIFIED')) return this.#refuseConnection(socket, conn, r);
      // OpenSSL refused weak crypto itself: say exactly what, in clientCertPolicy's terms.
      const leaf = this.#identities.get(peer.raw, peer.fingerprint256);
      const weak = explainVerifyWeakness(r.reason, peer, leaf, r.message, this.#rt.certPolicy.policy);
      if (weak === undefined) return this.#refuseConnection(socket, conn, r, leaf);
      metrics.weakCertRefusals.inc({ rule: weak.rule });
      return this.#refuseConnection(socket, conn, { code: 'weak_certificate', reason: r.reason, message: weak.reason }, leaf);
    }
    if (raw === undefined) {
      this.#refuseConnection(socket, conn, refusalFromVerifyError(undefined, false));
      return;
    }
    const id = this.#identities.get(raw, legacy!.fingerprint256);
    // clientCertPolicy: verdict cached per certificate, so resumed sessions and later connections
    // pay a WeakMap lookup; the chain depth is read only on the first sight of a certificate.
    const rt = this.#rt;
    const weak = rt.certPolicy.check(id, () => chainDepthOf(socket.getPeerX509Certificate()!, rt.tls.cas));
    if (weak !== undefined) {
      metrics.weakCertRefusals.inc({ rule: weak.rule });
      return this.#refuseConnection(socket, conn, { code: 'weak_certificate', reason: weak.rule, message: weak.reason }, id);
    }
    const resumed = socket.isSessionReused();
    // A resumed session carries the original verification result: certgate checks time and trust
    // again. The identity is set only after, since a connection with an identity counts as accepted.
    if (resumed) {
      const now = Date.now();
      if (now >= id.notAfter.getTime()) return this.#refuseConnection(socket, conn, refusalFromVerifyError('CERT_HAS_EXPIRED', true), id);
      if (now < id.notBefore.getTime()) return this.#refuseConnection(socket, conn, refusalFromVerifyError('CERT_NOT_YET_VALID', true), id);
      // The issuer may have left the trust bundle since the session was made. A certificate found
      // trusted stays so for this runtime (its bundle cannot change without a new runtime).
      if (rt.trustedOnResumption.get(id) !== true) {
        if (!chainsToTrust(socket, socket.getPeerX509Certificate()!, rt.tls.cas)) {
          return this.#refuseConnection(socket, conn, { code: 'certificate_untrusted', reason: 'RESUMED_ISSUER_NOT_TRUSTED', message: 'the issuing CA of this resumed session is no longer trusted' }, id);
        }
        rt.trustedOnResumption.set(id, true);
      }
    }
    conn.identity = id;
    conn.validUntil = id.notAfter.getTime();
    conn.revEpoch = this.#revocation.epoch;
    conn.rev = this.#revocation.check(id);
    this.#observer.connectionAccepted?.(id, resumed);
  };

  #refuseConnection(socket: CertgateSocket, conn: Conn, r: PeerRefusal, id = conn.identity): void {
    conn.refusal = r;
    this.#log.warn(
      { event: 'handshake_refused', code: r.code, reason: r.reason, remote: socket.remoteAddress, subject: id?.subject, fingerprint: id?.fingerprint },
      r.message,
    );
    this.#observer.handshakeRefused?.(r, socket);
    if (this.#rt.config.tls.refuse === 'handshake') socket.destroy();
  }

  #onTlsClientError = (err: Error, socket: TLSSocket): void => {
    const code = (err as NodeJS.ErrnoException).code ?? 'TLS_ERROR';
    this.#log.warn({ event: 'tls_error', code, remote: socket.remoteAddress }, err.message);
    this.#observer.handshakeRefused?.({ code: 'bad_request', reason: code, message: err.message }, socket);
  };

  /** Requests Node's parser refused before our handler: the same JSON body, then close. */
  #onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    // Only HTTP-level errors get an HTTP answer; a TLS error (handshake timeout, bad record)
    // has no channel to answer on: writing would wait for a handshake that never comes.
    const http = err.code?.startsWith('HPE_') === true || err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const code: ErrorCode | undefined =
      !http ? undefined
      : err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large'
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout'
      : 'bad_request';
    if (code === undefined || !socket.writable || (socket as Socket & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    const requestId = this.#nextRequestId();
    this.#log.info({ event: 'client_error', code, reason: err.code, reqId: requestId }, err.message);
    const body = errorBody(code, requestId);
    const status = ErrorCodes[code].status;
    socket.end(
      `HTTP/1.1 ${status} ${code.replace(/_/g, ' ')}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
    );
  };

  // --- per request --------------------------------------------------------------------------

  #nextRequestId(): string {
    return this.#idPrefix + (++this.#seq).toString(36);
  }

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const rt = this.#rt; // read once: a reload mid-request does not change this request
    const requestId = this.#nextRequestId();
    const socket = req.socket as CertgateSocket;
    const conn = socket[kConn];
    if (this.#draining) res.shouldKeepAlive = false;
    // A connection refused after the handshake (revoked, CA removed, weak after a reload) stays refused.
    if (conn === undefined || conn.identity === undefined || conn.refusal !== undefined) {
      const r = conn?.refusal ?? refusalFromVerifyError(undefined, false);
      // A client with no certificate at all may fetch the CA certs and enroll with a token; a
      // client whose certificate failed verification may not.
      if (r.code === 'certificate_required' && this.#est !== undefined && rt.config.est?.enabled === true && anonymousEstAllowed(req.method, req.url)) {
        return this.#handleEst(rt, req, res, requestId, started, undefined);
      }
      return this.#refuse(req, res, requestId, started, r.code, r.message, undefined, undefined, true);
    }
    const id = conn.identity;
    if (Date.now() >= conn.validUntil) {
      conn.refusal = refusalFromVerifyError('CERT_HAS_EXPIRED', true);
      return this.#refuse(req, res, requestId, started, 'certificate_expired', conn.refusal.message, id, undefined, true);
    }
    const rev = this.#revocationOf(conn, id);
    if (rev !== undefined && 'then' in rev) {
      rev.then(
        (s) => {
          if (conn.rev === rev) conn.rev = s;
          this.#authorize(rt, req, res, requestId, started, conn, id, s);
        },
        (err: Error) => {
          this.#log.error({ event: 'revocation_error', reqId: requestId, err }, 'revocation check failed');
          this.#refuse(req, res, requestId, started, 'revocation_unknown', undefined, id, undefined, false);
        },
      );
      return;
    }
    this.#authorize(rt, req, res, requestId, started, conn, id, rev);
  };

  /** The connection's revocation answer, asked again only when a revocation source changed. */
  #revocationOf(conn: Conn, id: Identity): Conn['rev'] {
    if (conn.revEpoch !== this.#revocation.epoch) {
      conn.revEpoch = this.#revocation.epoch;
      conn.rev = this.#revocation.check(id);
    }
    return conn.rev;
  }

  #authorize(
    rt: Runtime,
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    started: number,
    conn: Conn,
    id: Identity,
    rev: RevocationStatus | undefined,
  ): void {
    const a = this.#admit(rt, req, conn, id, rev, requestId);
    if (a === EST) return this.#handleEst(rt, req, res, requestId, started, id);
    if (a instanceof Refused) return this.#refuse(req, res, requestId, started, a.code, a.message, id, a.route, a.close);
    this.#forward(rt, req, res, requestId, started, id, a, conn);
  }

  /**
   * The decision for one request on an accepted connection, shared by plain requests and
   * upgrades: revocation, path, Host, framing, policy, then the route's revocation mode.
   * Returns the route, a Refused, or EST when the request belongs to the EST endpoint.
   */
  #admit(rt: Runtime, req: IncomingMessage, conn: Conn, id: Identity, rev: RevocationStatus | undefined, requestId: string): CompiledRoute | Refused | typeof EST {
    if (rev !== undefined && rev.state === 'revoked') {
      this.#log.warn(
        { event: 'revoked', reqId: requestId, serial: id.serial, issuer: id.issuer, fingerprint: id.fingerprint, source: rev.source, reason: rev.reason },
        `refused revoked certificate (${rev.detail})`,
      );
      conn.refusal = { code: 'certificate_revoked', reason: rev.reason, message: ErrorCodes.certificate_revoked.message };
      metrics.revocationRefusals.inc({ source: rev.source });
      return new Refused('certificate_revoked', undefined, undefined, true);
    }
    const path = canonicalPath(req.url!);
    if (path === undefined) return new Refused('bad_path');
    if (this.#est !== undefined && rt.config.est?.enabled === true && path.startsWith(EST_PREFIX)) {
      if (rev !== undefined && rev.state === 'unknown' && rev.defaultMode === 'hard') return new Refused('revocation_unknown', `revocation status unknown (${rev.source})`);
      return EST;
    }
    const host = this.#requestFacts(req, conn);
    if (host === undefined) return new Refused('bad_request', 'invalid or duplicate Host header', undefined, true);
    if (conn.badEncoding !== undefined) return new Refused('bad_request', `unsupported Transfer-Encoding "${conn.badEncoding}": only chunked is accepted`, undefined, true);
    // Without a Host header (HTTP/1.0) the TLS server name stands in for it.
    const decision = decide(id, { method: req.method!, host: host === '' ? conn.sni : host, path, sni: conn.sni }, rt.policy);
    if (!decision.allow) return new Refused(decision.code, undefined, decision.route);
    const route = decision.route;
    if (rev !== undefined && rev.state === 'unknown') {
      if ((route.config.revocation ?? rev.defaultMode) === 'hard') {
        this.#log.warn({ event: 'revocation_unknown', reqId: requestId, serial: id.serial, issuer: id.issuer, source: rev.source, detail: rev.detail, route: route.name }, 'refused: revocation status unknown (hard mode)');
        return new Refused('revocation_unknown', `revocation status unknown (${rev.source})`, route);
      }
      if (!conn.softWarned) {
        conn.softWarned = true;
        this.#log.warn({ event: 'revocation_soft_fail', serial: id.serial, issuer: id.issuer, source: rev.source, detail: rev.detail }, 'revocation status unknown; allowed (soft mode)');
      }
      metrics.revocationSoftFailures.inc({ source: rev.source });
      this.#observer.revocationUnknown?.(id, rev);
    }
    return route;
  }


  /** EST (enrollment, renewal) is answered by certgate itself, before any route or policy. */
  #handleEst(rt: Runtime, req: IncomingMessage, res: ServerResponse, requestId: string, started: number, id: Identity | undefined): void {
    // The window, rate limit and validity come from the current runtime, so a reload applies them.
    this.#est!.handle(req, res, id, requestId, rt.config.est!).then(
      (o) => this.#accessLog(req, requestId, started, id, undefined, o.decision, o.status, 0, undefined, undefined),
      (err: Error) => {
        this.#log.error({ event: 'est_error', reqId: requestId, err }, 'EST request failed');
        this.#sendError(res, requestId, 'internal_error', undefined, true);
        this.#accessLog(req, requestId, started, id, undefined, 'internal_error', 500, 0, undefined, err);
      },
    );
  }

  /** Lowercased Host without port; '' when absent; undefined when duplicated or malformed. */
  #requestFacts(req: IncomingMessage, conn?: Conn): string | undefined {
    // One pass over the raw headers: Node's lazily built req.headers object is never needed.
    const raw = req.rawHeaders;
    let host: string | undefined;
    let contentLength: string | undefined;
    let encoding: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === 4) {
        if (n.toLowerCase() === 'host') {
          if (host !== undefined) return undefined;
          host = raw[i + 1]!;
        }
      } else if (n.length === 14) {
        if (n.toLowerCase() === 'content-length') contentLength = raw[i + 1]!;
      } else if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') encoding = raw[i + 1]!;
    }
    if (conn === undefined) return host === undefined ? '' : hostOnly(host);
    conn.contentLength = contentLength;
    conn.chunked = encoding !== undefined;
    // Anything but plain `chunked` (xchunked, gzip, a list) frames the body in a way the parser
    // and the upstream may read differently: a smuggling vector, refused.
    conn.badEncoding = encoding !== undefined && encoding.trim().toLowerCase() !== 'chunked' ? encoding : undefined;
    if (host === undefined) return '';
    if (conn.hostRaw !== host) {
      conn.hostRaw = host;
      conn.hostNorm = hostOnly(host);
    }
    return conn.hostNorm;
  }


  #forward(rt: Runtime, req: IncomingMessage, res: ServerResponse, requestId: string, started: number, id: Identity, route: CompiledRoute, conn: Conn): void {
    const limit = route.config.maxBodySize;
    const cl = conn.contentLength;
    let body: Readable | null = null;
    let tooLarge = false;
    if (cl !== undefined) {
      if (Number(cl) > limit) return this.#refuse(req, res, requestId, started, 'payload_too_large', `the request body exceeds ${limit} bytes`, id, route, true);
      if (cl !== '0') body = req;
    } else if (conn.chunked) {
      body = req.pipe(limitBytes(limit, () => (tooLarge = true)));
    }
    const headers = upstreamHeaders(req.rawHeaders, rt.identityHeaders.get(id), rt.config.headers, req.socket.remoteAddress ?? '', requestId);
    forward({
      req,
      res,
      group: rt.upstreams[route.index]!,
      headers,
      body,
      timeoutMs: route.config.timeouts.upstream,
      fail: (code, message) => {
        if (tooLarge) return this.#sendError(res, requestId, 'payload_too_large', `the request body exceeds ${limit} bytes`, true);
        // The detail names the upstream's address: it goes to the log, never to the client.
        this.#log.warn({ event: 'upstream_error', code, reqId: requestId, route: route.name }, message);
        this.#sendError(res, requestId, code, undefined, false);
      },
      done: (r: ForwardResult) => this.#accessLog(req, requestId, started, id, route, tooLarge ? 'payload_too_large' : r.code ?? 'allow', r.code === undefined ? r.status : ErrorCodes[tooLarge ? 'payload_too_large' : r.code].status, r.bytes, r.upstreamMs, r.error),
    });
  }



  #refuse(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    started: number,
    code: ErrorCode,
    message: string | undefined,
    id: Identity | undefined,
    route: CompiledRoute | undefined,
    close: boolean,
  ): void {
    this.#sendError(res, requestId, code, message, close);
    this.#accessLog(req, requestId, started, id, route, code, ErrorCodes[code].status, 0, undefined, undefined);
  }

  #sendError(res: ServerResponse, requestId: string, code: ErrorCode, message: string | undefined, close: boolean): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = errorBody(code, requestId, message);
    if (close) res.shouldKeepAlive = false;
    res.writeHead(ErrorCodes[code].status, [
      'content-type', 'application/json',
      'content-length', String(Buffer.byteLength(body)),
      'x-request-id', requestId,
      'cache-control', 'no-store',
    ]);
    res.end(body);
  }

  #accessLog(
    req: IncomingMessage,
    requestId: string,
    started: number,
    id: Identity | undefined,
    route: CompiledRoute | undefined,
    decision: 'allow' | ErrorCode,
    status: number,
    bytes: number,
    upstreamMs: number | undefined,
    error: Error | undefined,
  ): void {
    const durationMs = performance.now() - started;
    const logger = id === undefined ? this.#loggers.access : this.#accessLoggerFor(id);
    logger.info(
      {
        reqId: requestId,
        method: req.method,
        path: req.url,
        route: route?.name,
        decision,
        status,
        bytes,
        ms: Math.round(durationMs * 1000) / 1000,
        ...(error !== undefined ? { error: (error as NodeJS.ErrnoException).code ?? error.message } : {}),
      },
      'request',
    );
    this.#observer.requestDone?.({ identity: id, route: route?.name, status, decision, durationMs, upstreamMs });
  }

  /** One child logger per certificate: its identity fields are serialised once, not per line. */
  #accessLoggerFor(id: Identity): Logger {
    let l = this.#accessByIdentity.get(id);
    if (l === undefined) {
      l = this.#loggers.access.child({ subject: id.subject, fingerprint: id.fingerprint });
      this.#accessByIdentity.set(id, l);
    }
    return l;
  }

  // --- upgrade (WebSocket) -------------------------------------------------------------------

  #onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    const rt = this.#rt;
    const started = performance.now();
    const requestId = this.#nextRequestId();
    const conn = (socket as CertgateSocket)[kConn];
    (socket as HttpSocket)[kUpgraded] = true;
    const refuse = (code: ErrorCode, message?: string, id?: Identity, route?: CompiledRoute) => {
      const body = errorBody(code, requestId, message);
      socket.end(
        `HTTP/1.1 ${ErrorCodes[code].status} ${code.replace(/_/g, ' ')}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
      );
      this.#accessLog(req, requestId, started, id, route, code, ErrorCodes[code].status, 0, undefined, undefined);
    };
    // A connection refused after the handshake (revoked, CA removed, weak after a reload) stays refused.
    if (conn === undefined || conn.identity === undefined || conn.refusal !== undefined) {
      const r = conn?.refusal ?? refusalFromVerifyError(undefined, false);
      return refuse(r.code, r.message);
    }
    const id = conn.identity;
    if (Date.now() >= conn.validUntil) return refuse('certificate_expired', undefined, id);
    const proceed = (rev: RevocationStatus | undefined) => {
      const a = this.#admit(rt, req, conn, id, rev, requestId);
      if (a instanceof Refused) return refuse(a.code, a.message, id, a.route);
      if (a === EST) return refuse('bad_request', 'EST does not take upgrades', id);
      const route = a;
      if (!route.config.websocket) return refuse('bad_request', 'this route does not accept upgrades', id, route);
      const group = rt.upstreams[route.index]!;
      const target = group.pick(Date.now());
      if (target === undefined) return refuse('upstream_unavailable', undefined, id, route);
      const headers = upstreamHeaders(req.rawHeaders, rt.identityHeaders.get(id), rt.config.headers, socket.remoteAddress ?? '', requestId);
      proxyWebSocket(req, socket, head, target, headers, (err) => {
        if (err !== undefined) {
          group.markDown(target, Date.now());
          this.#log.warn({ event: 'upstream_error', code: 'upstream_unavailable', reqId: requestId, route: route.name }, `upstream ${target.origin} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
          return refuse('upstream_unavailable', undefined, id, route);
        }
        this.#accessLog(req, requestId, started, id, route, 'allow', 101, 0, undefined, undefined);
      });
    };
    const rev = this.#revocationOf(conn, id);
    if (rev !== undefined && 'then' in rev) rev.then(proceed, () => refuse('revocation_unknown', undefined, id));
    else proceed(rev);
  };

  // --- changes to trust and revocation ------------------------------------------------------

  /** Every open connection is checked again; a revoked one gets closed at once. */
  #recheckOpenConnections(): void {
    const epoch = this.#revocation.epoch;
    for (const socket of this.#conns) {
      const conn = socket[kConn];
      if (conn?.identity === undefined || conn.revEpoch === epoch) continue;
      const id = conn.identity;
      conn.revEpoch = epoch;
      const r = this.#revocation.check(id);
      conn.rev = r;
      const apply = (s: RevocationStatus) => {
        if (s.state !== 'revoked' || socket.destroyed) return;
        this.#log.warn(
          { event: 'revoked_connection_closed', serial: id.serial, issuer: id.issuer, fingerprint: id.fingerprint, source: s.source, reason: s.reason },
          'closed an open connection of a revoked certificate',
        );
        conn.refusal = { code: 'certificate_revoked', reason: s.reason, message: ErrorCodes.certificate_revoked.message };
        metrics.revocationRefusals.inc({ source: s.source });
        closeWhenIdle(socket);
      };
      if ('then' in r) r.then(apply, () => {});
      else apply(r);
    }
  }

  /** After a reload, connections whose issuing CA is no longer trusted are closed. */
  /**
   * After a reload, one pass over the open connections: those whose chain ran through a CA that
   * left the trust bundle, and those the reloaded clientCertPolicy refuses, are closed. The peer
   * certificate object (costly) is built only when a check needs it.
   */
  #recheckConnectionsAfterReload(prev: Runtime, next: Runtime): void {
    const kept = new Set(next.tls.cas.map((c) => c.cert.fingerprint256));
    const removed = prev.tls.cas.filter((c) => !kept.has(c.cert.fingerprint256));
    for (const socket of this.#conns) {
      const conn = socket[kConn];
      if (conn?.identity === undefined || conn.refusal !== undefined) continue;
      const id = conn.identity;
      if (removed.length > 0) {
        const peer = socket.getPeerX509Certificate();
        const path = peer === undefined ? [] : trustPath(peer, prev.tls.cas);
        if (path.length === 0 || path.some((ca) => removed.includes(ca))) {
          conn.refusal = { code: 'certificate_untrusted', reason: 'CA_REMOVED', message: 'the issuing CA is no longer trusted' };
          this.#log.warn({ event: 'untrusted_connection_closed', subject: id.subject }, 'closed a connection whose CA was removed from the trust bundle');
          closeWhenIdle(socket);
          continue;
        }
      }
      const weak = next.certPolicy.check(id, () => {
        const peer = socket.getPeerX509Certificate();
        return peer === undefined ? 1 : chainDepthOf(peer, next.tls.cas);
      });
      if (weak === undefined) continue;
      metrics.weakCertRefusals.inc({ rule: weak.rule });
      conn.refusal = { code: 'weak_certificate', reason: weak.rule, message: weak.reason };
      this.#log.warn(
        { event: 'weak_connection_closed', subject: id.subject, fingerprint: id.fingerprint, rule: weak.rule },
        `closed a connection that the reloaded clientCertPolicy refuses: ${weak.reason}`,
      );
      closeWhenIdle(socket);
    }
  }
}

/**
 * A resumed session's leaf still chains to the current trust bundle: through a trusted CA
 * directly (found by name and signature), or through the intermediates the peer sent, if any.
 */
function chainsToTrust(socket: TLSSocket, leaf: X509Certificate, cas: Runtime['tls']['cas']): boolean {
  if (trustPath(leaf, cas).length > 0) return true;
  let cur = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  for (let depth = 0; cur?.issuerCertificate !== undefined && cur.issuerCertificate !== cur && depth < 5; depth++) {
    const next = new X509Certificate(cur.issuerCertificate.raw);
    const prev = new X509Certificate(cur.raw);
    if (!prev.checkIssued(next) || !prev.verify(next.publicKey)) return false;
    if (trustPath(next, cas).length > 0 || cas.some((c) => c.cert.fingerprint256 === next.fingerprint256)) return true;
    cur = cur.issuerCertificate;
  }
  return false;
}

function loadConfigQuietly(file: string): Config | undefined {
  try {
    return loadConfig(file);
  } catch {
    return undefined;
  }
}

type HttpSocket = TLSSocket & { _httpMessage?: ServerResponse | null; [kUpgraded]?: boolean };
const kUpgraded = Symbol('certgate.upgraded');

function isBusy(socket: TLSSocket): boolean {
  const m = (socket as HttpSocket)._httpMessage;
  return m !== undefined && m !== null;
}

function isUpgraded(socket: TLSSocket): boolean {
  return (socket as HttpSocket)[kUpgraded] === true;
}

/** Close now if no request is in flight; otherwise the refusal on the connection answers it. */
function closeWhenIdle(socket: TLSSocket): void {
  const busy = (socket as HttpSocket)._httpMessage;
  if (busy === undefined || busy === null) socket.destroy();
  else busy.once('finish', () => socket.destroy());
}

/** Counts streamed request body bytes and fails the stream past the route's limit. */
function limitBytes(max: number, onExceed: () => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > max) {
        onExceed();
        cb(new Error('request body too large'));
        return;
      }
      cb(null, chunk);
    },
  });
}
