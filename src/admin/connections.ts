// Client certificates on the mTLS admin listener: each connection is admitted once by the proxy's
// handshake admission (trust, clientCertPolicy, resumption); every request then checks what can
// change while a connection is open: expiry, the allow list and trust after a reload, revocation.

import type { Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { IdentityCache } from '../identity/identity.js';
import type { RevocationChecker } from '../revocation/types.js';
import { admitHandshake } from '../tls/admission.js';
import { clientAddressOf } from '../tls/client-address.js';
import { ConnState } from '../tls/connections.js';
import { secureContextOptions } from '../tls/material.js';
import { checkResumedSession } from '../tls/resumption.js';
import { roleOf, type AdminTls, type CertStanding } from './access.js';

interface AdminConn {
  readonly conn: ConnState;
  /** The material the handshake was admitted under; trust is checked again when it changes. */
  trustedBy: AdminTls;
}

export class AdminConnections {
  readonly #bySocket = new WeakMap<TLSSocket, AdminConn>();
  readonly #server: Server;
  readonly #current: () => AdminTls | undefined;
  readonly #revocation: () => Pick<RevocationChecker, 'check'> | undefined;
  readonly #ticketKeys: Buffer;

  constructor(server: Server, identities: IdentityCache, revocation: () => Pick<RevocationChecker, 'check'> | undefined, current: () => AdminTls | undefined, ticketKeys: Buffer) {
    this.#server = server;
    this.#current = current;
    this.#revocation = revocation;
    this.#ticketKeys = ticketKeys;
    server.on('secureConnection', (socket: TLSSocket) => {
      const tls = current();
      if (tls === undefined) return void socket.destroy();
      const conn = new ConnState(clientAddressOf(socket));
      conn.peer = admitHandshake(socket, conn, tls, identities);
      this.#bySocket.set(socket, { conn, trustedBy: tls });
    });
  }

  setMaterial(tls: AdminTls): void {
    this.#server.setSecureContext({ ...secureContextOptions(tls.config, tls.tls, this.#ticketKeys), sessionIdContext: 'certgate-admin' });
  }

  /** What the certificate on this connection allows now. */
  async standing(socket: TLSSocket): Promise<CertStanding> {
    const c = this.#bySocket.get(socket);
    const tls = this.#current();
    if (c === undefined || tls === undefined) return { state: 'refused', code: 'certificate_untrusted', message: 'the TLS handshake was not admitted' };
    const { conn } = c;
    if (conn.refusal !== undefined) {
      // No certificate at all: a bearer token may still do (admin.tls.tokenAlso).
      if (conn.refusal.code === 'certificate_required') return { state: 'none' };
      return { state: 'refused', code: conn.refusal.code, message: conn.refusal.message, peer: conn.peer };
    }
    const id = conn.identity!;
    if (Date.now() >= conn.validUntil) return { state: 'refused', code: 'certificate_expired', message: 'the client certificate has expired', peer: id };
    if (c.trustedBy !== tls) {
      // A reload changed admin.tls.clientCAs (or the material): the chain must still lead to it.
      const r = checkResumedSession(socket, id, tls);
      if (r !== undefined) return { state: 'refused', code: r.code, message: r.message, peer: id };
      c.trustedBy = tls;
    }
    const role = roleOf(id, tls);
    if (role === undefined) return { state: 'refused', code: 'identity_not_allowed', message: 'this certificate matches no entry of admin.tls.allow', peer: id };
    const rev = this.#revocation();
    if (rev !== undefined) {
      const s = await rev.check(id);
      if (s.state === 'revoked') return { state: 'refused', code: 'certificate_revoked', message: 'the client certificate has been revoked', peer: id };
      // The same default as a proxy route without its own `revocation` mode.
      if (s.state === 'unknown' && s.defaultMode === 'hard') return { state: 'refused', code: 'revocation_unknown', message: s.detail, peer: id };
    }
    return { state: 'allowed', role, id };
  }
}
