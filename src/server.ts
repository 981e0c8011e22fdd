// Composition root of the proxy listener: first bytes -> TLS handshake admission (tls/) ->
// request steps (proxy/request.ts, proxy/upgrade.ts) over one Runtime reference that reload swaps.

import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { EstHandler } from './ca/est-route.js';
import type { Config } from './config/types.js';
import type { ErrorCode } from './errors.js';
import { createIdentityCache, type IdentityCache } from './identity/identity.js';
import type { Loggers } from './log.js';
import { AccessLog } from './proxy/access-log.js';
import { rawErrorResponse } from './proxy/error-response.js';
import type { Observer, ReloadResult } from './proxy/events.js';
import { RequestSteps } from './proxy/request.js';
import { handleUpgrade } from './proxy/upgrade.js';
import { PoolRegistry } from './proxy/upstream.js';
import { noRevocation, type RevocationChecker } from './revocation/types.js';
import { buildRuntime, originsOf, type Runtime } from './runtime.js';
import { admitHandshake } from './tls/admission.js';
import { clientAddressOf } from './tls/client-address.js';
import { ConnState, connStateOf, OpenConnections } from './tls/connections.js';
import { FirstBytesListener } from './tls/first-bytes.js';
import { handshakeFailureReason } from './tls/handshake-errors.js';
import { ServerStapling } from './tls/stapling.js';
import { secureContextOptions } from './tls/material.js';
import { reload, type FollowsRuntime } from './lifecycle/reload.js';
import { ALPN, Http2Sessions } from './http2/sessions.js';

export type { Observer, ReloadResult, RequestEvent } from './proxy/events.js';

export interface CertgateOptions {
  readonly config: Config;
  readonly loggers: Loggers;
  readonly revocation?: RevocationChecker;
  readonly observer?: Observer;
  /** Shared ticket keys (48 bytes); the primary hands them to workers. */
  readonly ticketKeys?: Buffer;
  /** EST enrollment on this listener (when `est.enabled`). */
  readonly est?: EstHandler;
  /** Applied to every config a reload loads (a cluster worker's own adjustments). */
  readonly adjustConfig?: (c: Config) => Config;
}

export class Certgate {
  #rt: Runtime;
  readonly #server: Server;
  readonly #front: FirstBytesListener;
  readonly #pools: PoolRegistry;
  readonly #identities: IdentityCache;
  readonly #log: Logger;
  readonly #loggers: Loggers;
  readonly #conns: OpenConnections;
  readonly #accessLog: AccessLog;
  readonly #steps: RequestSteps;
  readonly #stapling: ServerStapling;
  #revocation: RevocationChecker;
  #ticketKeys: Buffer;
  #draining = false;
  readonly #followers: FollowsRuntime[] = [];
  readonly #adjustConfig: ((c: Config) => Config) | undefined;

  constructor(opts: CertgateOptions) {
    this.#loggers = opts.loggers;
    this.#log = opts.loggers.log;
    this.#revocation = opts.revocation ?? noRevocation;
    this.#ticketKeys = opts.ticketKeys ?? randomBytes(48);
    this.#adjustConfig = opts.adjustConfig;
    this.#identities = createIdentityCache();
    this.#conns = new OpenConnections(this.#log);
    this.#accessLog = new AccessLog(opts.loggers);
    this.#accessLog.observer = opts.observer ?? {};
    const cfg = opts.config;
    this.#pools = new PoolRegistry({ connectMs: cfg.timeouts.upstreamConnect, idleMs: cfg.timeouts.idle });
    this.#rt = buildRuntime(cfg, this.#pools);
    this.#warnOwnCerts(this.#rt);
    this.#steps = new RequestSteps(this, this.#log, this.#accessLog, this.#conns, opts.est);
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
        ...(cfg.listen.http2 ? ALPN : {}),
      },
      this.#steps.onRequest,
    );
    // Inactivity cut-off for connections that never send a request (keepAliveTimeout only
    // starts after a response); upgraded sockets get their timeout cleared by http-proxy.
    this.#server.timeout = cfg.timeouts.idle;
    this.#server.on('secureConnection', this.#onSecureConnection);
    if (cfg.listen.http2) new Http2Sessions(this.#server, this.#steps, cfg.limits.http2, this.#log);
    this.#server.on('tlsClientError', this.#onTlsClientError);
    this.#stapling = new ServerStapling(this.#log);
    this.#stapling.apply(cfg, this.#rt.tls);
    this.#server.on('OCSPRequest', this.#stapling.onOcspRequest);
    this.#server.on('clientError', this.#onClientError);
    this.#server.on('upgrade', (req, socket: Socket, head: Buffer) => handleUpgrade(this.#steps, this.#rt, this.#log, req, socket, head));
    this.#front = new FirstBytesListener({ tls: this.#server, config: cfg, log: this.#log });
    this.#revocation.onChange(() => this.#conns.recheckRevocation(this.#revocation));
  }

  get runtime(): Runtime {
    return this.#rt;
  }

  get revocation(): RevocationChecker {
    return this.#revocation;
  }

  get openConnections(): number {
    return this.#conns.size;
  }

  get ocspStapleAgeSeconds(): number | undefined {
    return this.#stapling.stapler?.ageSeconds();
  }

  get draining(): boolean {
    return this.#draining;
  }

  setObserver(o: Observer): void {
    this.#accessLog.observer = o;
  }

  setRevocation(r: RevocationChecker): void {
    this.#revocation = r;
    r.onChange(() => this.#conns.recheckRevocation(this.#revocation));
    this.#conns.recheckRevocation(r);
  }

  /** Ticket keys are kept across reloads and rotated on a schedule (or pushed by the primary). */
  setTicketKeys(keys: Buffer): void {
    this.#ticketKeys = keys;
    this.#server.setTicketKeys(keys);
  }

  listen(): Promise<AddressInfo> {
    return this.#front.listen(this.#rt.config.listen.host, this.#rt.config.listen.port);
  }

  /** Components re-configured from every new runtime after the listener (lifecycle, monitors). */
  follow(c: FollowsRuntime): void {
    this.#followers.push(c);
  }

  /**
   * Builds a new Runtime from the config file and applies it only if every part built: to this
   * listener, revocation, then the followers. Open connections keep working; new handshakes get
   * the new TLS material.
   */
  reload(configFile = this.#rt.config.file): ReloadResult {
    const revocation = this.#revocation;
    return reload({
      configFile,
      ...(this.#adjustConfig !== undefined ? { adjust: this.#adjustConfig } : {}),
      current: this.#rt,
      pools: this.#pools,
      components: [this, ...(revocation.apply !== undefined ? [{ apply: (next: Runtime) => revocation.apply!(next) }] : []), ...this.#followers],
      log: this.#log,
      observer: this.#accessLog.observer,
    });
  }

  /** Puts a new runtime in place: TLS material for new handshakes, pools, open connections re-checked. */
  apply(next: Runtime, prev: Runtime = this.#rt): void {
    this.#server.setSecureContext(secureContextOptions(next.config, next.tls, this.#ticketKeys));
    this.#rt = next;
    this.#front.apply(next.config);
    this.#stapling.apply(next.config, next.tls);
    this.#warnOwnCerts(next);
    this.#pools.retain(originsOf(next));
    this.#conns.recheckAfterReload(prev, next);
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
    const closed = this.#front.close();
    this.#stapling.close();
    this.#server.close();
    // Idle connections close now, busy ones after their answer (HTTP/2: GOAWAY); upgraded ones at the deadline.
    this.#conns.closeIdle();
    const timer = setTimeout(() => {
      this.#log.warn({ event: 'shutdown_deadline', openConnections: this.#conns.size }, 'shutdown deadline reached: closing open connections');
      this.#server.closeAllConnections();
      this.#conns.destroyAll();
    }, deadlineMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
    await Promise.allSettled([this.#pools.closeAll(), this.#steps.h2c.closeAll(), this.#revocation.close()]);
    this.#log.info({ event: 'stopped' }, 'certgate stopped');
    await this.#loggers.drain();
  }

  /** Closes the listener and everything opened with it, for a start that failed half-way. */
  async abort(): Promise<void> {
    this.#draining = true;
    this.#conns.destroyAll();
    this.#stapling.close();
    await Promise.allSettled([this.#front.close(), this.#pools.closeAll(), this.#steps.h2c.closeAll(), this.#revocation.close()]);
  }

  // --- once per connection ------------------------------------------------------------------

  #onSecureConnection = (socket: TLSSocket): void => {
    const conn = new ConnState(clientAddressOf(socket));
    this.#conns.add(socket, conn);
    const id = admitHandshake(socket, conn, this.#rt, this.#identities);
    if (conn.refusal !== undefined) {
      conn.peer = id;
      conn.refusalPending = true;
      if (this.#rt.config.tls.refuse === 'handshake') {
        this.reportRefusal(socket, conn);
        socket.destroy();
        return;
      }
      // A certificate that was presented and refused is a failed handshake whatever comes next.
      // Without one it may be a scanner or health check: decided by whether a request follows.
      if (conn.refusal.code !== 'certificate_required') this.reportRefusal(socket, conn);
      else socket.once('close', () => conn.refusalPending && this.#closedAfterHandshake(socket));
      return;
    }
    conn.revEpoch = this.#revocation.epoch;
    conn.rev = this.#revocation.check(conn.identity!);
    this.#accessLog.observer.connectionAccepted?.(conn.identity!, socket.isSessionReused());
  };

  reportRefusal(socket: TLSSocket, conn: ConnState): void {
    if (!conn.refusalPending) return;
    conn.refusalPending = false;
    const r = conn.refusal!;
    const id = conn.peer;
    this.#log.warn(
      { event: 'handshake_refused', code: r.code, reason: r.reason, remote: conn.client?.address, subject: id?.subject, fingerprint: id?.fingerprint },
      r.message,
    );
    this.#accessLog.observer.handshakeRefused?.(r, socket);
  }

  /** A scanner or health check: it completed the handshake and went away. Not a failure. */
  #closedAfterHandshake(socket: TLSSocket): void {
    this.#log.debug({ event: 'handshake_closed', remote: clientAddressOf(socket)?.address }, 'client closed after the TLS handshake without a request');
    this.#accessLog.observer.handshakeClosed?.(socket);
  }

  #onTlsClientError = (err: Error, socket: TLSSocket): void => {
    const code = (err as NodeJS.ErrnoException).code ?? 'TLS_ERROR';
    // Closed right after sending its Finished, before Node ran the secure step: the handshake
    // itself went through (Node reports this as "socket hang up").
    if (code === 'ECONNRESET' && socket.getPeerFinished() !== undefined) return this.#closedAfterHandshake(socket);
    const reason = handshakeFailureReason(err);
    this.#log.warn({ event: 'tls_error', code, reason, remote: clientAddressOf(socket)?.address }, err.message);
    this.#accessLog.observer.handshakeRefused?.({ code: 'bad_request', reason, message: err.message }, socket);
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
    const conn = connStateOf(socket);
    if (code === undefined || !socket.writable || (conn !== undefined && conn.inFlight > 0)) {
      socket.destroy();
      return;
    }
    const requestId = this.#steps.nextRequestId();
    this.#log.info({ event: 'client_error', code, reason: err.code, reqId: requestId }, err.message);
    socket.end(rawErrorResponse(code, requestId));
  };
}
