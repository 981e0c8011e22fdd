// Is the server's certificate file a complete chain? "Complete" means the file holds every
// certificate from the leaf up to, not including, a self-signed root, as judged by issuer and
// subject names and by signatures:
// - the leaf is self-signed, or its issuer is in the file (a leaf alone is incomplete);
// - each CA certificate in the file is self-signed, or its issuer is in the file, or its issuer
//   is not known to be an intermediate. Issuers are looked up among the certificates certgate
//   knows (the client CA bundles, the system roots) only to tell a root from an intermediate: a
//   known intermediate that is missing makes the chain incomplete. Those bundles are not a
//   client's trust store, so they never stand in for a certificate the file should hold.

import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';

const dn = (c: X509Certificate, which: 'subject' | 'issuer') => c[which].replace(/\n/g, ', ');

function selfSigned(c: X509Certificate): boolean {
  return c.checkIssued(c) && c.verify(c.publicKey);
}

function issuerIn(c: X509Certificate, pool: Iterable<X509Certificate>, skip?: Set<X509Certificate>): X509Certificate | undefined {
  for (const p of pool) if (!skip?.has(p) && c.checkIssued(p) && c.verify(p.publicKey)) return p;
  return undefined;
}

let systemRoots: X509Certificate[] | undefined;
function roots(): X509Certificate[] {
  systemRoots ??= rootCertificates.map((p) => new X509Certificate(p));
  return systemRoots;
}

/**
 * Why the chain in `file` stops short of a root, or undefined when it is complete. `known`:
 * certificates used only to recognise a missing issuer as an intermediate (see above).
 */
export function incompleteChain(chain: readonly X509Certificate[], file: string, known: readonly X509Certificate[] = []): string | undefined {
  let cur = chain[0];
  if (cur === undefined) return undefined;
  const used = new Set<X509Certificate>([cur]);
  const missing = (c: X509Certificate) =>
    `${file} is an incomplete chain: the issuer of "${dn(c, 'subject')}" ("${dn(c, 'issuer')}") is not in the file; append the intermediate CA certificate(s) after the leaf, up to (not including) the root`;
  // Each step uses up one certificate of the file, so the walk ends.
  for (;;) {
    if (selfSigned(cur)) return undefined;
    const next = issuerIn(cur, chain, used);
    if (next === undefined) {
      if (cur === chain[0]) return missing(cur);
      const outside = issuerIn(cur, known) ?? issuerIn(cur, roots());
      return outside !== undefined && !selfSigned(outside) ? missing(cur) : undefined;
    }
    used.add(next);
    cur = next;
  }
}
