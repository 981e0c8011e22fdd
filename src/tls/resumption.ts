// A resumed TLS session carries the original verification result: certgate checks time and trust
// again against the current runtime before the connection gets its identity.

import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { Identity } from '../identity/types.js';
import type { Runtime } from '../runtime.js';
import { refusalFromVerifyError, type PeerRefusal } from './authorization.js';
import { trustPath } from './material.js';

/** What handshake admission reads: the proxy's Runtime, or the admin listener's own trust. */
export type HandshakeTrust = Pick<Runtime, 'certPolicy' | 'tls' | 'trustedOnResumption'>;

/** Undefined when the resumed session may go on; else why not. */
export function checkResumedSession(socket: TLSSocket, id: Identity, rt: HandshakeTrust, now = Date.now()): PeerRefusal | undefined {
  if (now >= id.notAfter.getTime()) return refusalFromVerifyError('CERT_HAS_EXPIRED', true);
  if (now < id.notBefore.getTime()) return refusalFromVerifyError('CERT_NOT_YET_VALID', true);
  // The issuer may have left the trust bundle since the session was made. A certificate found
  // trusted stays so for this runtime (its bundle cannot change without a new runtime).
  if (rt.trustedOnResumption.get(id) !== true) {
    if (!chainsToTrust(socket, socket.getPeerX509Certificate()!, rt.tls.cas)) {
      return { code: 'certificate_untrusted', reason: 'RESUMED_ISSUER_NOT_TRUSTED', message: 'the issuing CA of this resumed session is no longer trusted' };
    }
    rt.trustedOnResumption.set(id, true);
  }
  return undefined;
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
