// Handshake admission: from a TLSSocket whose handshake completed to the connection's state
// (identity, or the refusal and why), once per connection. OpenSSL verified the chain against
// the trust bundle (rejectUnauthorized: false so that certgate can say why); certgate adds
// clientCertPolicy and, for resumed sessions, time and trust again.

import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { IdentityCache } from '../identity/identity.js';
import type { Identity } from '../identity/types.js';
import { metrics } from '../metrics.js';
import { refusalFromVerifyError } from './authorization.js';
import { chainDepthOf, explainVerifyWeakness } from './client-cert-policy.js';
import type { ConnState } from './connections.js';
import { checkResumedSession, type HandshakeTrust } from './resumption.js';

/**
 * Fills `conn`: `identity` when admitted, else `refusal`. Returns the leaf's identity whenever a
 * certificate was read (also for a refusal, for the log).
 */
export function admitHandshake(socket: TLSSocket, conn: ConnState, rt: HandshakeTrust, identities: IdentityCache): Identity | undefined {
  const sni = socket.servername;
  conn.sni = typeof sni === 'string' && sni !== '' ? sni.toLowerCase() : undefined;
  // The legacy accessor gives the DER and fingerprint for about half the cost of
  // getPeerX509Certificate() (measured ~150 µs against ~350 µs per connection); the X509Certificate
  // is built only on rare paths (OpenSSL refusals, first sight of a certificate, resumption).
  const legacy = socket.getPeerCertificate(false) as Partial<PeerCertificate> | null;
  const raw = legacy?.raw;
  if (!socket.authorized) {
    const r = refusalFromVerifyError(String(socket.authorizationError ?? ''), raw !== undefined);
    conn.refusal = r;
    const peer = raw === undefined ? undefined : socket.getPeerX509Certificate();
    if (peer === undefined || (r.code !== 'weak_certificate' && r.reason !== 'UNSPECIFIED')) return undefined;
    // OpenSSL refused weak crypto itself: say exactly what, in clientCertPolicy's terms.
    const leaf = identities.get(peer.raw, peer.fingerprint256);
    const weak = explainVerifyWeakness(r.reason, peer, leaf, r.message, rt.certPolicy.policy);
    if (weak !== undefined) {
      metrics.weakCertRefusals.inc({ rule: weak.rule });
      conn.refusal = { code: 'weak_certificate', reason: r.reason, message: weak.reason };
    }
    return leaf;
  }
  if (raw === undefined) {
    conn.refusal = refusalFromVerifyError(undefined, false);
    return undefined;
  }
  const id = identities.get(raw, legacy!.fingerprint256);
  // clientCertPolicy: verdict cached per certificate, so resumed sessions and later connections
  // pay a WeakMap lookup; the chain depth is read only on the first sight of a certificate.
  const weak = rt.certPolicy.check(id, () => chainDepthOf(socket.getPeerX509Certificate()!, rt.tls.cas));
  if (weak !== undefined) {
    metrics.weakCertRefusals.inc({ rule: weak.rule });
    conn.refusal = { code: 'weak_certificate', reason: weak.rule, message: weak.reason };
    return id;
  }
  if (socket.isSessionReused()) {
    const r = checkResumedSession(socket, id, rt);
    if (r !== undefined) {
      conn.refusal = r;
      return id;
    }
  }
  conn.identity = id;
  conn.validUntil = id.notAfter.getTime();
  return id;
}
