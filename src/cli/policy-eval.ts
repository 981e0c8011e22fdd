// What `certgate explain` and `certgate test` share: the config's policy, an identity built as the
// proxy builds it (from a certificate file, or from names written out), the checks the proxy
// applies to a certificate before any route, and the proxy's own decision code and header
// builder. Nothing here decides anything itself: it calls what the proxy calls.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readConfig, readConfigFile } from '../config/load.js';
import type { ConfigIssue } from '../config/issues.js';
import type { Config } from '../config/types.js';
import { ErrorCodes, type ErrorCode } from '../errors.js';
import { canonicalFingerprint, canonicalSerial } from '../identity/canonical.js';
import { identityFromDer } from '../identity/identity.js';
import type { Identity } from '../identity/types.js';
import { compilePolicy, type CompiledEntry, type CompiledPolicy } from '../policy/compile.js';
import { traceDecision, type PolicyTrace } from '../policy/trace.js';
import { IdentityHeaderCache, upstreamHeaders } from '../proxy/headers.js';
import { canonicalPath, hostOnly } from '../proxy/hygiene.js';
import { LocalRevocationList, readEntries } from '../revocation/local-list.js';
import { CompiledCertPolicy, oneLine } from '../tls/client-cert-policy.js';
import { loadTlsMaterial, MaterialError, type TrustedCa } from '../tls/material.js';
import { subjectName } from '../ca/pki.js';
import { splitPem } from '../util/pem.js';
import { webcrypto, x509 } from '../x509.js';

/** A config or input problem: exit 1. */
export class InputError extends Error {}

export interface PolicySetup {
  readonly config: Config;
  readonly policy: CompiledPolicy;
  readonly certPolicy: CompiledCertPolicy;
  readonly headers: IdentityHeaderCache;
  /** tls.clientCAs, or the problems reading them (they matter only for a certificate). */
  readonly cas: readonly TrustedCa[];
  readonly caProblems: readonly string[];
  /** The local revocation list, read on first need. */
  revocations?: LocalRevocationList;
}

/** The config's policy; schema errors are returned (with file:line:col), not thrown. */
export function loadPolicySetup(file: string): { setup?: PolicySetup; issues: ConfigIssue[] } {
  const { text, issues: fileIssues } = readConfigFile(file);
  if (text === undefined) return { issues: fileIssues };
  const { config, issues } = readConfig(text, file);
  if (config === undefined || issues.length > 0) return { issues };
  // The server certificate and key need not exist where policy is tested (CI): only the client CAs matter.
  let cas: readonly TrustedCa[] = [];
  let caProblems: string[] = [];
  try {
    cas = loadTlsMaterial(config).cas;
  } catch (err) {
    if (!(err instanceof MaterialError)) throw err;
    cas = err.cas;
    caProblems = err.issues.filter((i) => i.path.startsWith('tls.clientCAs')).map((i) => `${i.path}: ${i.message}`);
  }
  const setup: PolicySetup = {
    config,
    policy: compilePolicy(config),
    certPolicy: new CompiledCertPolicy(config.clientCertPolicy),
    headers: new IdentityHeaderCache(config.headers),
    cas,
    caProblems,
  };
  return { setup, issues: [] };
}

// ---------------------------------------------------------------------------------------------
// Identities

export interface CertificateInput {
  readonly leaf: X509Certificate;
  /** The certificates after the leaf in the file: what a client would send with it. */
  readonly chain: readonly X509Certificate[];
  readonly identity: Identity;
}

/** A PEM file with the leaf first, optionally followed by its chain. */
export function readCertificate(path: string): CertificateInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError(`${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const pems = splitPem(text, 'CERTIFICATE');
  if (pems.length === 0) throw new InputError(`${path} holds no PEM certificate`);
  try {
    const [leaf, ...chain] = pems.map((p) => new X509Certificate(p));
    return { leaf: leaf!, chain, identity: identityFromDer(new Uint8Array(leaf!.raw)) };
  } catch (err) {
    throw new InputError(`${path}: ${(err as Error).message}`);
  }
}

export interface IdentityFields {
  readonly subject?: string | undefined;
  readonly uri?: readonly string[] | undefined;
  readonly dns?: readonly string[] | undefined;
  readonly email?: readonly string[] | undefined;
  /** Each is a URI SAN, listed before the `uri` ones: the first is the SPIFFE ID. */
  readonly spiffe?: readonly string[] | undefined;
  readonly issuer?: string | undefined;
  readonly serial?: string | undefined;
  readonly fingerprint?: string | undefined;
}

let throwaway: Promise<webcrypto.CryptoKeyPair> | undefined;

/**
 * The Identity the proxy would read from a certificate with these names: such a certificate is
 * made (with a throwaway key) and read by the proxy's own parser, so DN escaping, SAN order and
 * the SPIFFE ID come out exactly as they would from a real one.
 */
export async function identityFromFields(f: IdentityFields): Promise<Identity> {
  for (const s of f.spiffe ?? []) if (!s.startsWith('spiffe://')) throw new InputError(`a SPIFFE ID must start with "spiffe://", got "${s}"`);
  const serial = f.serial === undefined ? '01' : canonicalSerial(f.serial);
  if (serial === undefined) throw new InputError(`serial must be hexadecimal, got "${f.serial}"`);
  const fingerprint = f.fingerprint === undefined ? undefined : canonicalFingerprint(f.fingerprint);
  if (f.fingerprint !== undefined && fingerprint === undefined) throw new InputError(`fingerprint must be a SHA-256 fingerprint (64 hex digits), got "${f.fingerprint}"`);
  const name = (dn: string | undefined, what: string): x509.Name => {
    try {
      return subjectName(dn ?? '');
    } catch (err) {
      throw new InputError(`${what} "${dn}" is not a DN such as "CN=alice,OU=payments,O=Acme": ${(err as Error).message}`);
    }
  };
  const subject = name(f.subject, 'subject');
  const issuer = name(f.issuer, 'issuer');
  const san: x509.JsonGeneralName[] = [
    ...(f.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...[...(f.spiffe ?? []), ...(f.uri ?? [])].map((value) => ({ type: 'url' as const, value })),
    ...(f.email ?? []).map((value) => ({ type: 'email' as const, value })),
  ];
  const keys = await (throwaway ??= webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial.length % 2 === 0 ? serial : `0${serial}`,
    subject,
    issuer,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: san.length > 0 ? [new x509.SubjectAlternativeNameExtension(san, subject.toJSON().length === 0)] : [],
  });
  const id = identityFromDer(new Uint8Array(cert.rawData));
  return fingerprint === undefined ? id : Object.freeze({ ...id, fingerprint });
}

// ---------------------------------------------------------------------------------------------
// What the proxy applies to a certificate before any route

export interface CertCheck {
  readonly check: 'trust' | 'validity' | 'clientCertPolicy' | 'revocation';
  readonly ok: boolean;
  readonly detail: string;
}

export interface CertVerdict {
  readonly checks: readonly CertCheck[];
  /** The first refusal, in the proxy's order. */
  readonly refusal: ErrorCode | undefined;
}

/** The issuers from the leaf up to a trusted CA: presented certificates first, then tls.clientCAs. */
function chainToTrust(c: CertificateInput, cas: readonly TrustedCa[]): X509Certificate[] | undefined {
  const path: X509Certificate[] = [];
  let cur = c.leaf;
  for (let depth = 0; depth < 10; depth++) {
    const issued = (by: X509Certificate) => cur.checkIssued(by) && cur.verify(by.publicKey);
    const trusted = cas.find((ca) => issued(ca.cert));
    if (trusted !== undefined) {
      path.push(trusted.cert);
      for (let top = trusted.cert, n = 0; !top.checkIssued(top) && n < 10; n++) {
        const up = cas.find((ca) => top.checkIssued(ca.cert) && top.verify(ca.cert.publicKey));
        if (up === undefined || path.includes(up.cert)) break;
        path.push((top = up.cert));
      }
      return path;
    }
    const next = c.chain.find((x) => x !== cur && issued(x));
    if (next === undefined || path.includes(next)) return undefined;
    path.push((cur = next));
  }
  return undefined;
}

export function checkCertificate(setup: PolicySetup, c: CertificateInput, now = Date.now()): CertVerdict {
  if (setup.caProblems.length > 0) throw new InputError(`cannot check a certificate against tls.clientCAs: ${setup.caProblems.join('; ')}`);
  const checks: CertCheck[] = [];
  const done = (refusal: ErrorCode | undefined): CertVerdict => ({ checks, refusal });
  const path = chainToTrust(c, setup.cas);
  if (path === undefined) {
    checks.push({ check: 'trust', ok: false, detail: `not issued by a CA in tls.clientCAs (through the ${c.chain.length} certificate(s) after the leaf)` });
    return done('certificate_untrusted');
  }
  checks.push({ check: 'trust', ok: true, detail: `issued by ${path.map((p) => oneLine(p.subject)).join(' <- ')}` });
  for (const x of [c.leaf, ...path]) {
    const who = x === c.leaf ? 'the certificate' : `CA ${oneLine(x.subject)}`;
    if (Date.parse(x.validFrom) > now) {
      checks.push({ check: 'validity', ok: false, detail: `${who} is valid from ${new Date(x.validFrom).toISOString()}` });
      return done('certificate_not_yet_valid');
    }
    if (Date.parse(x.validTo) <= now) {
      checks.push({ check: 'validity', ok: false, detail: `${who} expired on ${new Date(x.validTo).toISOString()}` });
      return done('certificate_expired');
    }
  }
  const id = c.identity;
  checks.push({ check: 'validity', ok: true, detail: `${id.notBefore.toISOString()} to ${id.notAfter.toISOString()}` });
  const weak = setup.certPolicy.check(id, () => path.length);
  if (weak !== undefined) {
    checks.push({ check: 'clientCertPolicy', ok: false, detail: `${weak.rule}: ${weak.reason}` });
    return done('weak_certificate');
  }
  checks.push({ check: 'clientCertPolicy', ok: true, detail: 'meets clientCertPolicy' });
  const entry = localRevocations(setup).lookup(id);
  if (entry !== undefined) {
    checks.push({ check: 'revocation', ok: false, detail: `revoked in the local list (${entry.id}: ${entry.reason}, by ${entry.actor} at ${entry.createdAt})` });
    return done('certificate_revoked');
  }
  checks.push({ check: 'revocation', ok: true, detail: 'not in the local revocation list (CRLs and OCSP are not consulted here)' });
  return done(undefined);
}

/** The local revocation list, read (never written) from revocation.dataDir. */
function localRevocations(setup: PolicySetup): LocalRevocationList {
  const s = setup;
  if (s.revocations === undefined) {
    const list = new LocalRevocationList({ dataDir: undefined });
    try {
      list.replace([...readEntries(setup.config.revocation.dataDir).entries.values()]);
    } catch (err) {
      throw new InputError(`cannot read the local revocation list in ${setup.config.revocation.dataDir}: ${(err as Error).message}`);
    }
    s.revocations = list;
  }
  return s.revocations;
}

// ---------------------------------------------------------------------------------------------
// The decision

export interface RequestInput {
  readonly method: string;
  readonly path: string;
  readonly host: string | undefined;
}

export interface Outcome {
  /** `allow` or the error code the client gets. */
  readonly decision: 'allow' | ErrorCode;
  readonly status: number;
  readonly route: string | undefined;
  /** `allow[NAME|INDEX]` or `deny[...]`: the entry that decided; undefined otherwise. */
  readonly rule: string | undefined;
  readonly trace: PolicyTrace | undefined;
  readonly cert: CertVerdict | undefined;
  /** What the backend receives, as [name, value] pairs, when allowed. */
  readonly headers: readonly (readonly [string, string])[] | undefined;
}

export function ruleName(e: CompiledEntry | undefined): string | undefined {
  return e === undefined ? undefined : `${e.list}[${e.label}]`;
}

/** The proxy's answer for this identity and request (admission order: certificate, path, Host, policy). */
export function evaluate(setup: PolicySetup, id: Identity, r: RequestInput, cert?: CertificateInput): Outcome {
  const certVerdict = cert === undefined ? undefined : checkCertificate(setup, cert);
  const path = canonicalPath(r.path);
  const host = r.host === undefined ? undefined : hostOnly(r.host);
  if (r.host !== undefined && host === undefined) throw new InputError(`--host "${r.host}" is not a valid Host`);
  const facts = { method: r.method.toUpperCase(), path: path ?? '/', host: host === '' ? undefined : host, sni: undefined };
  const trace = path === undefined ? undefined : traceDecision(id, facts, setup.policy);
  const d = trace?.decision;
  const refusal: ErrorCode | undefined = certVerdict?.refusal ?? (path === undefined ? 'bad_path' : d!.allow ? undefined : d!.code);
  // A refused certificate never reaches the policy: no entry decided.
  const out = { route: d?.route?.name, rule: certVerdict?.refusal !== undefined ? undefined : ruleName(d?.rule), trace, cert: certVerdict };
  if (refusal !== undefined) return { ...out, decision: refusal, status: ErrorCodes[refusal].status, headers: undefined };
  const raw = r.host === undefined ? [] : ['Host', r.host];
  const flat = upstreamHeaders(raw, setup.headers.get(id), setup.config.headers, '<client address>', '<request id>');
  const headers: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) headers.push([flat[i]!, flat[i + 1]!]);
  return { ...out, decision: 'allow', status: 200, headers };
}
