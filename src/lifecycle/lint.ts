// Lint of certgate's own certificates (the server chain and the client CA bundles) and of
// scanned servers, with the rules of the client-certificate policy (src/tls/client-cert-policy.ts).

import type { X509Certificate } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { MaterialIssue, TlsMaterial } from '../tls/material.js';
import {
  canonicalCurve,
  factsOf,
  lintCaLeaf,
  lintEku,
  lintKey,
  lintSigAlg,
  oneLine,
  OID_SERVER_AUTH,
  type CertPolicy,
  type LintViolation,
} from '../tls/client-cert-policy.js';

export {
  CompiledCertPolicy,
  lintClientCert,
  OID_CLIENT_AUTH,
  OID_SERVER_AUTH,
  type CertFacts,
  type CertPolicy,
  type LintRule,
  type LintViolation,
} from '../tls/client-cert-policy.js';

// certgate's own certificates: the server chain and the client CA bundles.

/**
 * Lint of a server's certificate chain (leaf first): key, signature (not a root's own), and for
 * the leaf a serverAuth EKU and CA:FALSE. Used for certgate's own chain and by `certgate scan`.
 */
export function lintServerChain(chain: readonly X509Certificate[], policy: CertPolicy): { index: number; what: string; violation: LintViolation }[] {
  const p: CertPolicy = { ...policy, curves: policy.curves.map(canonicalCurve) };
  const out: { index: number; what: string; violation: LintViolation }[] = [];
  chain.forEach((cert, i) => {
    const facts = factsOf(cert);
    const what = i === 0 ? 'server certificate' : `chain certificate ${i} (${oneLine(cert.subject)})`;
    const v =
      lintKey(facts, p) ??
      (cert.checkIssued(cert) ? undefined : lintSigAlg(facts, p)) ??
      (i === 0 ? lintEku(facts, p, OID_SERVER_AUTH, 'serverAuth') ?? lintCaLeaf(facts, p) : undefined);
    if (v !== undefined) out.push({ index: i, what, violation: v });
  });
  return out;
}

/** Problems with certgate's own server certificate chain and trusted CAs, as material issues. */
export function lintOwnCertificates(m: TlsMaterial, config: Config): MaterialIssue[] {
  const policy: CertPolicy = { ...config.clientCertPolicy, curves: config.clientCertPolicy.curves.map(canonicalCurve) };
  const issues: MaterialIssue[] = lintServerChain(m.serverChain, policy).map((f) => ({ path: 'tls.cert', message: `${f.what}: ${f.violation.reason}` }));
  const files = config.tls.clientCAs;
  for (const ca of m.cas) {
    const facts = factsOf(ca.cert);
    // A root's self-signature is not checked by anyone; its key and its signatures below matter.
    const v = lintKey(facts, policy) ?? (ca.cert.checkIssued(ca.cert) ? undefined : lintSigAlg(facts, policy));
    if (v !== undefined) issues.push({ path: `tls.clientCAs[${Math.max(0, files.indexOf(ca.file))}]`, message: `CA ${oneLine(ca.cert.subject)}: ${v.reason}` });
  }
  return issues;
}

