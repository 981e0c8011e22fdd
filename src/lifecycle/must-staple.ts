// Must-staple (RFC 7633's TLS feature extension with status_request): a certificate that
// carries it is refused by clients that honour it whenever the server staples no OCSP response.

import type { X509Certificate } from 'node:crypto';
import type { Config } from '../config/types.js';
import { ocspUrlOf } from '../tls/stapling.js';
import { x509 } from '../x509.js';

export const MUST_STAPLE_OID = '1.3.6.1.5.5.7.1.24';

export function hasMustStaple(der: Uint8Array): boolean {
  return new x509.X509Certificate(der).getExtension(MUST_STAPLE_OID) !== null;
}

/** Why a must-staple server certificate will have nothing stapled, or undefined. */
export function mustStapleProblem(config: Config, leaf: X509Certificate): string | undefined {
  if (!hasMustStaple(new Uint8Array(leaf.raw))) return undefined;
  const demand = 'the server certificate demands OCSP stapling (must-staple)';
  const cost = 'clients that honour must-staple will refuse every connection';
  if (config.tls.ocspStapling === false) return `${demand} but tls.ocspStapling is false: ${cost}`;
  if (ocspUrlOf(leaf) === undefined) return `${demand} but names no http OCSP responder (AIA), so nothing can be stapled: ${cost}`;
  return undefined;
}
