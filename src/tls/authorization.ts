// What OpenSSL's verification result means for a client, in the terms of the error table.
// certgate runs with rejectUnauthorized: false so that it can log and answer why.

import type { ErrorCode } from '../errors.js';

export interface PeerRefusal {
  readonly code: ErrorCode;
  /** OpenSSL's verification code (e.g. CERT_HAS_EXPIRED), or NO_CERTIFICATE. */
  readonly reason: string;
  readonly message: string;
}

const WEAK: Record<string, string> = {
  CA_MD_TOO_WEAK: 'the certificate is signed with a digest that is too weak (SHA-1 or MD5)',
  EE_KEY_TOO_SMALL: 'the certificate key is too small',
  CA_KEY_TOO_SMALL: 'the issuing CA key is too small',
  INVALID_PURPOSE: 'the certificate is not valid for client authentication (extended key usage)',
};

export function refusalFromVerifyError(reason: string | undefined, hasCert: boolean): PeerRefusal {
  if (!hasCert) return { code: 'certificate_required', reason: 'NO_CERTIFICATE', message: 'no client certificate was presented' };
  const r = reason ?? 'UNKNOWN';
  if (r === 'CERT_HAS_EXPIRED') return { code: 'certificate_expired', reason: r, message: 'the client certificate has expired' };
  if (r === 'CERT_NOT_YET_VALID') return { code: 'certificate_not_yet_valid', reason: r, message: 'the client certificate is not yet valid' };
  const weak = WEAK[r];
  if (weak !== undefined) return { code: 'weak_certificate', reason: r, message: weak };
  return { code: 'certificate_untrusted', reason: r, message: `the client certificate chain is not trusted (${r})` };
}
