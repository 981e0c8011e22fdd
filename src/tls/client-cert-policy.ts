// Client-certificate admission policy (config `clientCertPolicy`): what OpenSSL's verification
// lets through but certgate refuses (small RSA keys, curves, CA:TRUE leaves, validity, depth).
// Pure: the verdict is a function of the certificate's facts, its chain depth and the policy.
// Read on the handshake path; lifecycle's lint of certgate's own certificates reuses the rules.

import type { X509Certificate } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { Identity } from '../identity/types.js';
import { identityFromDer } from '../identity/identity.js';
import { trustPath, type TrustedCa } from './material.js';

export type CertPolicy = Config['clientCertPolicy'];

/** Rule names are the config keys they come from (metric label `rule`, public API). */
export type LintRule =
  | 'minRsaBits'
  | 'curves'
  | 'keyType'
  | 'forbiddenSigAlgs'
  | 'requireClientAuthEku'
  | 'rejectCaLeaf'
  | 'maxValidityDays'
  | 'maxChainDepth';

export interface LintViolation {
  readonly rule: LintRule;
  /** Says exactly what is wrong, for the refusal body and the log. */
  readonly reason: string;
}

/** The certificate facts the lint reads (a subset of Identity, so tests need no parsing). */
export type CertFacts = Pick<Identity, 'keyType' | 'keyBits' | 'curve' | 'sigAlg' | 'isCA' | 'eku' | 'notBefore' | 'notAfter'>;

export const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
export const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_ANY_EKU = '2.5.29.37.0';
const DAY_MS = 86_400_000;

// OpenSSL and SEC names for the same curves, so `curves: [prime256v1]` means what it says.
const CURVE_ALIASES: Readonly<Record<string, string>> = {
  'p-256': 'P-256', prime256v1: 'P-256', secp256r1: 'P-256',
  'p-384': 'P-384', secp384r1: 'P-384',
  'p-521': 'P-521', secp521r1: 'P-521',
  secp256k1: 'secp256k1',
};

export function canonicalCurve(name: string): string {
  return CURVE_ALIASES[name.toLowerCase()] ?? name;
}

/**
 * The first rule the certificate breaks, or undefined when it meets the policy.
 * `chainDepth` is the number of CA certificates above the leaf up to and including the trust
 * anchor (a leaf issued by a root: 1); undefined when unknown, which skips that rule.
 */
export function lintClientCert(id: CertFacts, chainDepth: number | undefined, policy: CertPolicy): LintViolation | undefined {
  return (
    lintKey(id, policy) ??
    lintSigAlg(id, policy) ??
    lintEku(id, policy, OID_CLIENT_AUTH, 'clientAuth') ??
    lintCaLeaf(id, policy) ??
    lintValidity(id, policy) ??
    lintDepth(chainDepth, policy)
  );
}

export function lintKey(id: CertFacts, policy: CertPolicy): LintViolation | undefined {
  switch (id.keyType) {
    case 'RSA':
      if (id.keyBits < policy.minRsaBits) {
        return { rule: 'minRsaBits', reason: `RSA key of ${id.keyBits} bits is below the minimum of ${policy.minRsaBits} (clientCertPolicy.minRsaBits)` };
      }
      return undefined;
    case 'EC': {
      const allowed = policy.curves.map(canonicalCurve);
      if (id.curve === undefined) return { rule: 'curves', reason: `EC key on an unrecognised curve; allowed curves: ${allowed.join(', ')} (clientCertPolicy.curves)` };
      if (!allowed.includes(id.curve)) {
        return { rule: 'curves', reason: `EC curve ${id.curve} is not allowed; allowed curves: ${allowed.join(', ')} (clientCertPolicy.curves)` };
      }
      return undefined;
    }
    case 'Ed25519':
    case 'Ed448':
      return undefined;
    default:
      return { rule: 'keyType', reason: 'the certificate key type is not supported (RSA, EC, Ed25519 or Ed448 expected)' };
  }
}

export function lintSigAlg(id: CertFacts, policy: CertPolicy): LintViolation | undefined {
  const name = id.sigAlg.toLowerCase();
  const hit = policy.forbiddenSigAlgs.find((f) => f !== '' && name.includes(f.toLowerCase()));
  if (hit === undefined) return undefined;
  return { rule: 'forbiddenSigAlgs', reason: `signature algorithm ${id.sigAlg} is forbidden (clientCertPolicy.forbiddenSigAlgs: ${hit})` };
}

export function lintEku(id: CertFacts, policy: CertPolicy, oid: string, name: string): LintViolation | undefined {
  if (!policy.requireClientAuthEku || id.eku.length === 0) return undefined;
  if (id.eku.includes(oid) || id.eku.includes(OID_ANY_EKU)) return undefined;
  return {
    rule: 'requireClientAuthEku',
    reason: `the extended key usage (${id.eku.map(ekuName).join(', ')}) does not include ${name} (clientCertPolicy.requireClientAuthEku)`,
  };
}

function ekuName(oid: string): string {
  return oid === OID_SERVER_AUTH ? 'serverAuth' : oid === OID_CLIENT_AUTH ? 'clientAuth' : oid === '1.3.6.1.5.5.7.3.3' ? 'codeSigning' : oid === '1.3.6.1.5.5.7.3.4' ? 'emailProtection' : oid;
}

export function lintCaLeaf(id: CertFacts, policy: CertPolicy): LintViolation | undefined {
  if (!policy.rejectCaLeaf || !id.isCA) return undefined;
  return { rule: 'rejectCaLeaf', reason: 'the certificate is a CA certificate (basicConstraints CA:TRUE) used as a leaf (clientCertPolicy.rejectCaLeaf)' };
}

function lintValidity(id: CertFacts, policy: CertPolicy): LintViolation | undefined {
  if (policy.maxValidityDays === undefined) return undefined;
  const days = (id.notAfter.getTime() - id.notBefore.getTime()) / DAY_MS;
  if (days <= policy.maxValidityDays) return undefined;
  return {
    rule: 'maxValidityDays',
    reason: `validity period of ${Math.ceil(days)} days exceeds the maximum of ${policy.maxValidityDays} (clientCertPolicy.maxValidityDays)`,
  };
}

function lintDepth(depth: number | undefined, policy: CertPolicy): LintViolation | undefined {
  if (depth === undefined || depth <= policy.maxChainDepth) return undefined;
  return { rule: 'maxChainDepth', reason: `chain depth of ${depth} CA certificates exceeds the maximum of ${policy.maxChainDepth} (clientCertPolicy.maxChainDepth)` };
}

// ---------------------------------------------------------------------------------------------
// Compiled once per config load; verdicts cached per certificate (Identity is cached by
// fingerprint), so the lint runs once per certificate, not per connection.

const kPass = Object.freeze({ pass: true as const });
type Verdict = LintViolation | typeof kPass;

export class CompiledCertPolicy {
  readonly policy: CertPolicy;
  readonly #verdicts = new WeakMap<Identity, Verdict>();

  constructor(policy: CertPolicy) {
    this.policy = Object.freeze({ ...policy, curves: policy.curves.map(canonicalCurve) });
  }

  /** `depth` is called only on the first sight of this certificate under this policy. */
  check(id: Identity, depth: () => number | undefined): LintViolation | undefined {
    let v = this.#verdicts.get(id);
    if (v === undefined) {
      v = lintClientCert(id, depth(), this.policy) ?? kPass;
      this.#verdicts.set(id, v);
    }
    return 'pass' in v ? undefined : v;
  }
}

/**
 * CA certificates above the peer's leaf up to the trust anchor: the issuer links Node keeps for
 * the certificates the client sent, then the trusted CAs from the last of them to a root.
 * Undefined when nothing issued it (the chain did not verify).
 */
export function chainDepthOf(peer: X509Certificate, cas: readonly TrustedCa[]): number | undefined {
  let depth = 0;
  let cur = peer;
  for (let next = cur.issuerCertificate; next !== undefined && depth < 32; next = cur.issuerCertificate) {
    if (next.fingerprint256 === cur.fingerprint256) return depth; // reached a self-signed root
    depth++;
    cur = next;
  }
  if (depth > 0 && cur.checkIssued(cur)) return depth; // the client sent the root too
  const rest = trustPath(cur, cas).length;
  return depth + rest === 0 ? undefined : depth + rest;
}

export function factsOf(cert: X509Certificate): CertFacts {
  return identityFromDer(new Uint8Array(cert.raw));
}

export function oneLine(dn: string): string {
  return dn.split('\n').reverse().join(', ');
}

// ---------------------------------------------------------------------------------------------
// What OpenSSL refuses itself during verification, explained in the same terms.

const OPENSSL_RULE: Readonly<Record<string, LintRule>> = {
  CA_MD_TOO_WEAK: 'forbiddenSigAlgs',
  EE_KEY_TOO_SMALL: 'minRsaBits',
  CA_KEY_TOO_SMALL: 'minRsaBits',
  INVALID_PURPOSE: 'requireClientAuthEku',
};

/**
 * The rule and exact reason when OpenSSL's verification failed for weak crypto, or undefined
 * when the code is not about weak crypto. Node 20's OpenSSL reports a SHA-1/MD5 signature in a
 * client chain as UNSPECIFIED rather than CA_MD_TOO_WEAK, so that code counts as weak only
 * when the leaf or a CA the client sent is signed with SHA-1 or MD5.
 */
export function explainVerifyWeakness(code: string, peer: X509Certificate, leaf: CertFacts, fallback: string, policy: CertPolicy): LintViolation | undefined {
  const strict: CertPolicy = { ...policy, requireClientAuthEku: true, forbiddenSigAlgs: ['sha1', 'md5', ...policy.forbiddenSigAlgs] };
  const weakSig = (): LintViolation | undefined => {
    const own = lintSigAlg(leaf, strict);
    if (own !== undefined) return own;
    for (let cur = peer, next = cur.issuerCertificate, n = 0; next !== undefined && n < 8; cur = next, next = cur.issuerCertificate, n++) {
      if (next.fingerprint256 === cur.fingerprint256 || next.checkIssued(next)) break; // a root's self-signature is not checked
      const v = lintSigAlg(factsOf(next), strict);
      if (v !== undefined) return { rule: v.rule, reason: `CA ${oneLine(next.subject)}: ${v.reason}` };
    }
    return undefined;
  };
  if (code === 'UNSPECIFIED') {
    const v = weakSig();
    return v === undefined ? undefined : { rule: v.rule, reason: `${v.reason}; refused by OpenSSL verification (${code})` };
  }
  const rule = OPENSSL_RULE[code];
  if (rule === undefined) return undefined;
  const own =
    rule === 'forbiddenSigAlgs' ? weakSig()
    : rule === 'requireClientAuthEku' ? lintEku(leaf, strict, OID_CLIENT_AUTH, 'clientAuth')
    : code === 'EE_KEY_TOO_SMALL' ? lintKey(leaf, strict)
    : undefined;
  return { rule, reason: `${own?.reason ?? fallback}; refused by OpenSSL verification (${code})` };
}
