/** What certgate knows about a client, computed once per certificate (cached by fingerprint). */
export interface Identity {
  /** RFC 4514 subject DN, most specific first: CN=billing-api,OU=payments,O=Acme */
  readonly subject: string;
  readonly cn: readonly string[];
  readonly o: readonly string[];
  readonly ou: readonly string[];
  readonly dns: readonly string[];
  readonly uri: readonly string[];
  readonly email: readonly string[];
  readonly ip: readonly string[];
  /** The URI SAN with scheme spiffe, if any (the first one). */
  readonly spiffe: string | undefined;
  /** SHA-256 of the DER certificate, lowercase hex without colons. */
  readonly fingerprint: string;
  /** Lowercase hex, no colons, no leading zeros. */
  readonly serial: string;
  /** RFC 4514 issuer DN. */
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** e.g. "EC P-256", "RSA 2048", "Ed25519" */
  readonly keyType: 'EC' | 'RSA' | 'Ed25519' | 'Ed448' | 'unknown';
  readonly keyBits: number;
  readonly curve: string | undefined;
  /** e.g. "ecdsa-with-SHA256", "sha256WithRSAEncryption" */
  readonly sigAlg: string;
  /** Hex of the Authority Key Identifier, if present (to find the issuer on resumed sessions). */
  readonly authorityKeyId: string | undefined;
  readonly isCA: boolean;
  /** Extended key usage OIDs; empty when the extension is absent. */
  readonly eku: readonly string[];
  readonly ocspUrls: readonly string[];
  readonly crlUrls: readonly string[];
  /** The DER certificate, kept for revocation checks (OCSP request building, re-verification). */
  readonly der: Uint8Array;
}
