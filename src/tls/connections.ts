// Open connections: the per-connection state computed once after the handshake, the set of open
// sockets, and what happens to them when trust changes (revocation, a reload that removes a CA or
// tightens clientCertPolicy) and at shutdown. In-flight requests are counted here (by the request
// path) instead of reading Node's private socket fields.

import type { ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ErrorCodes } from '../errors.js';
import type { Identity } from '../identity/types.js';
import type { UpstreamLinesMemo } from '../proxy/headers.js';
import { metrics } from '../metrics.js';
import type { RevocationChecker, RevocationStatus } from '../revocation/types.js';
import type { Runtime } from '../runtime.js';
import type { PeerRefusal } from './authorization.js';
import type { ClientAddress } from './client-address.js';
import { chainDepthOf } from './client-cert-policy.js';
import { trustPath } from './material.js';

/** How trust changes and shutdown reach an HTTP/2 session on a connection (src/http2/sessions.ts). */
export interface SessionControl {
  /** GOAWAY, then the connection closes at once: open streams are cut. */
  terminate(): void;
  /** GOAWAY: no new streams; the open ones finish, then the connection closes. */
  drain(): void;
}

/** Per-connection state: computed once after the handshake, kept small (memory per idle conn). */
export class ConnState {
  /** The client's address: the PROXY header's behind a load balancer, else the TCP peer's. What
   *  logs, `X-Forwarded-For` and observers read, never socket.remoteAddress (see client-address.ts). */
  readonly client: ClientAddress | undefined;
  identity: Identity | undefined = undefined;
  refusal: PeerRefusal | undefined = undefined;
  /** The handshake's refusal is logged and counted when the first request meets it (or at once in
   *  tls.refuse: handshake); a client that closes without a request was not refused anything. */
  refusalPending = false;
  /** The certificate the client presented, also when refused (for the log). */
  peer: Identity | undefined = undefined;
  /** notAfter of the leaf, ms: a long-lived connection does not outlive its certificate. */
  validUntil = 0;
  sni: string | undefined = undefined;
  revEpoch = -1;
  rev: RevocationStatus | Promise<RevocationStatus> | undefined = undefined;
  softWarned = false;
  /** The last raw Host header seen and its normalised form: clients repeat it on every request. */
  hostRaw: string | undefined = undefined;
  hostNorm: string | undefined = undefined;
  /** Requests started and not yet finished (HTTP/1.1 pipelining may queue several). */
  inFlight = 0;
  upgraded = false;
  /** Close as soon as the request in flight has been answered. */
  closing = false;
  /** Set when the connection speaks HTTP/2 (ALPN h2). */
  session: SessionControl | undefined = undefined;
  /** The upstream header lines of the last request forwarded over HTTP/1.1 (headers.ts). */
  upstreamLines: UpstreamLinesMemo | undefined = undefined;

  constructor(client: ClientAddress | undefined) {
    this.client = client;
  }
}

const kConn = Symbol('certgate.conn');
type Tracked = TLSSocket & { [kConn]?: ConnState };

export function connStateOf(socket: object): ConnState | undefined {
  return (socket as Tracked)[kConn];
}

export class OpenConnections {
  readonly #sockets = new Set<Tracked>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  get size(): number {
    return this.#sockets.size;
  }

  add(socket: TLSSocket, conn: ConnState): void {
    const s = socket as Tracked;
    s[kConn] = conn;
    this.#sockets.add(s);
    socket.once('close', () => this.#sockets.delete(s));
  }

  /** Called when a request's answer is complete (or the request was abandoned). */
  requestEnded(socket: TLSSocket, conn: ConnState, res: ServerResponse | undefined): void {
    if (conn.inFlight > 0) conn.inFlight--;
    if (!conn.closing || conn.inFlight > 0 || socket.destroyed) return;
    if (res === undefined || res.writableFinished) socket.destroy();
    else res.once('finish', () => socket.destroy());
  }

  /** Close now if no request is in flight; otherwise right after its answer. */
  closeWhenIdle(socket: TLSSocket, conn: ConnState): void {
    // An HTTP/2 connection carries many clients' streams of one identity: all of them stop.
    if (conn.session !== undefined) conn.session.terminate();
    else if (conn.inFlight === 0 || conn.upgraded) socket.destroy();
    else conn.closing = true;
  }

  /** Shutdown: idle connections (and ones that never sent a request) close now. */
  closeIdle(): void {
    for (const s of this.#sockets) {
      const c = s[kConn];
      if (c?.session !== undefined) c.session.drain();
      else if (c === undefined || (c.inFlight === 0 && !c.upgraded)) s.destroy();
    }
  }

  destroyAll(): void {
    for (const s of this.#sockets) s.destroy();
  }

  /** After a revocation source changed: every open connection is checked again; revoked ones close. */
  recheckRevocation(revocation: RevocationChecker): void {
    const epoch = revocation.epoch;
    for (const socket of this.#sockets) {
      const conn = socket[kConn];
      if (conn?.identity === undefined || conn.revEpoch === epoch) continue;
      const id = conn.identity;
      conn.revEpoch = epoch;
      const r = revocation.check(id);
      conn.rev = r;
      const apply = (s: RevocationStatus) => {
        if (s.state !== 'revoked' || socket.destroyed) return;
        this.#log.warn(
          { event: 'revoked_connection_closed', serial: id.serial, issuer: id.issuer, fingerprint: id.fingerprint, source: s.source, reason: s.reason },
          'closed an open connection of a revoked certificate',
        );
        conn.refusal = { code: 'certificate_revoked', reason: s.reason, message: ErrorCodes.certificate_revoked.message };
        metrics.revocationRefusals.inc({ source: s.source });
        this.closeWhenIdle(socket, conn);
      };
      if ('then' in r) r.then(apply, () => {});
      else apply(r);
    }
  }

  /**
   * After a reload, one pass over the open connections: those whose chain ran through a CA that
   * left the trust bundle, and those the reloaded clientCertPolicy refuses, are closed. The peer
   * certificate object (costly) is built only when a check needs it.
   */
  recheckAfterReload(prev: Runtime, next: Runtime): void {
    const kept = new Set(next.tls.cas.map((c) => c.cert.fingerprint256));
    const removed = prev.tls.cas.filter((c) => !kept.has(c.cert.fingerprint256));
    for (const socket of this.#sockets) {
      const conn = socket[kConn];
      if (conn?.identity === undefined || conn.refusal !== undefined) continue;
      const id = conn.identity;
      if (removed.length > 0) {
        const peer = socket.getPeerX509Certificate();
        const path = peer === undefined ? [] : trustPath(peer, prev.tls.cas);
        if (path.length === 0 || path.some((ca) => removed.includes(ca))) {
          conn.refusal = { code: 'certificate_untrusted', reason: 'CA_REMOVED', message: 'the issuing CA is no longer trusted' };
          this.#log.warn({ event: 'untrusted_connection_closed', subject: id.subject }, 'closed a connection whose CA was removed from the trust bundle');
          this.closeWhenIdle(socket, conn);
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
      this.closeWhenIdle(socket, conn);
    }
  }
}
