// Server TLS material, read and checked once per load: certificate chain, key, client CA bundles.
// Nothing here is read per connection; reload builds new material and swaps it whole.

import { X509Certificate, createPrivateKey, constants as cryptoConstants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import { positionOf } from '../config/load.js';
import type { Config } from '../config/types.js';
import type { ConfigIssue } from '../errors.js';
import { splitPem } from '../util/pem.js';
import { incompleteChain } from './chain.js';
import { resolveProfile, type TlsProfile } from './profile.js';

export interface TrustedCa {
  readonly file: string;
  readonly pem: string;
  readonly cert: X509Certificate;
}

export interface TlsMaterial {
  readonly certPem: string;
  readonly keyPem: string;
  /** The server's leaf certificate and the rest of the chain it sends. */
  readonly serverChain: readonly X509Certificate[];
  readonly cas: readonly TrustedCa[];
  /** Problems that do not stop a load (an incomplete chain without tls.requireCompleteChain). */
  readonly warnings: readonly MaterialIssue[];
}

export interface MaterialIssue {
  readonly path: string;
  readonly message: string;
}

export class MaterialError extends Error {
  readonly issues: readonly MaterialIssue[];
  /** The client CAs that did load, so that CRL files can still be checked against them. */
  readonly cas: readonly TrustedCa[];
  constructor(issues: MaterialIssue[], cas: readonly TrustedCa[] = []) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    this.issues = issues;
    this.cas = cas;
  }
}

/** The same problems as config issues, with the line and column of the key in the YAML. */
export function materialConfigIssues(config: Config, err: MaterialError): ConfigIssue[] {
  return err.issues.map((i) => ({ file: config.file, ...positionOf(config, i.path), path: i.path, message: i.message }));
}

function readText(path: string, key: string, issues: MaterialIssue[]): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    issues.push({ path: key, message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return undefined;
  }
}

/** Reads and cross-checks cert, key and CA bundles; throws MaterialError listing every problem. */
export function loadTlsMaterial(config: Config, now = Date.now()): TlsMaterial {
  const issues: MaterialIssue[] = [];
  const certPem = readText(config.tls.cert, 'tls.cert', issues);
  const keyPem = readText(config.tls.key, 'tls.key', issues);
  let serverChain: X509Certificate[] = [];
  if (certPem !== undefined) {
    try {
      serverChain = splitPem(certPem, 'CERTIFICATE').map((p) => new X509Certificate(p));
      if (serverChain.length === 0) issues.push({ path: 'tls.cert', message: `${config.tls.cert} holds no PEM certificate` });
    } catch (err) {
      issues.push({ path: 'tls.cert', message: `${config.tls.cert}: ${(err as Error).message}` });
    }
  }
  const leaf = serverChain[0];
  if (leaf !== undefined && keyPem !== undefined) {
    try {
      if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) {
        issues.push({ path: 'tls.key', message: `${config.tls.key} does not match the certificate in ${config.tls.cert}` });
      }
    } catch (err) {
      issues.push({ path: 'tls.key', message: `${config.tls.key}: ${(err as Error).message}` });
    }
  }
  if (leaf !== undefined && Date.parse(leaf.validTo) <= now && !config.tls.allowExpiredServerCert) {
    issues.push({
      path: 'tls.cert',
      message: `the server certificate expired on ${new Date(leaf.validTo).toISOString()}; renew it, or set tls.allowExpiredServerCert: true to start anyway`,
    });
  }
  const cas: TrustedCa[] = [];
  config.tls.clientCAs.forEach((file, i) => {
    const text = readText(file, `tls.clientCAs[${i}]`, issues);
    if (text === undefined) return;
    const pems = splitPem(text, 'CERTIFICATE');
    if (pems.length === 0) issues.push({ path: `tls.clientCAs[${i}]`, message: `${file} holds no PEM certificate` });
    for (const pem of pems) {
      try {
        const cert = new X509Certificate(pem);
        if (!cert.ca) issues.push({ path: `tls.clientCAs[${i}]`, message: `${file}: ${cert.subject.replace(/\n/g, ', ')} is not a CA certificate` });
        else cas.push({ file, pem, cert });
      } catch (err) {
        issues.push({ path: `tls.clientCAs[${i}]`, message: `${file}: ${(err as Error).message}` });
      }
    }
  });
  for (const p of resolveProfile(config.tls).issues) issues.push({ path: `tls.${p.key}`, message: p.message });
  const warnings: MaterialIssue[] = [];
  const gap = incompleteChain(serverChain, config.tls.cert, cas.map((c) => c.cert));
  if (gap !== undefined) {
    if (config.tls.requireCompleteChain) issues.push({ path: 'tls.cert', message: `${gap} (tls.requireCompleteChain is on)` });
    else warnings.push({ path: 'tls.cert', message: gap });
  }
  if (issues.length > 0) throw new MaterialError(issues, cas);
  return { certPem: certPem!, keyPem: keyPem!, serverChain, cas, warnings };
}

/** The profile `config.tls` asks for; loadTlsMaterial has already reported any problem with it. */
export function tlsProfile(config: Config): TlsProfile {
  const { profile, issues } = resolveProfile(config.tls);
  if (profile === undefined) throw new MaterialError(issues.map((p) => ({ path: `tls.${p.key}`, message: p.message })));
  return profile;
}

/**
 * Options for a listener and for server.setSecureContext on reload: `m`'s certificate, key and
 * client CAs, with the protocol, cipher and curve profile of `config.tls` (the same profile for
 * every listener certgate runs).
 */
export function secureContextOptions(config: Config, m: Pick<TlsMaterial, 'certPem' | 'keyPem' | 'cas'>, ticketKeys: Buffer): SecureContextOptions {
  const profile = tlsProfile(config);
  return {
    cert: m.certPem,
    key: m.keyPem,
    ca: m.cas.map((c) => c.pem),
    minVersion: profile.minVersion,
    ciphers: profile.ciphers,
    ecdhCurve: profile.ecdhCurve,
    // The server's order: a client offering CBC first still gets GCM or ChaCha20.
    honorCipherOrder: true,
    // Renegotiation lets a client change its certificate mid-connection: refused outright.
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
    ticketKeys,
    sessionIdContext: 'certgate',
  };
}

/**
 * The trusted CAs a certificate's chain runs through, leaf's issuer first, up to a root.
 * Empty when no trusted CA issued it. Signatures are checked, not only names.
 */
export function trustPath(leaf: X509Certificate, cas: readonly TrustedCa[]): TrustedCa[] {
  const path: TrustedCa[] = [];
  let cur = leaf;
  for (let depth = 0; depth < 10; depth++) {
    const issuer = cas.find((c) => cur.checkIssued(c.cert) && cur.verify(c.cert.publicKey));
    if (issuer === undefined || path.includes(issuer)) break;
    path.push(issuer);
    if (issuer.cert.checkIssued(issuer.cert)) break; // self-signed root
    cur = issuer.cert;
  }
  return path;
}
