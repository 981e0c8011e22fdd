// The issuing CA kept in one directory. Signing follows one fixed order (validate the request ->
// apply the template -> enforce the naming policy -> sign -> store), and every change to the
// index (issued certificates, revocations, enrollment tokens) is one update of the index store
// (index-store.ts: under the index lock, atomically rewritten).
//
// Layout (the same names `certgate dev-certs` writes, so certs-dev is a CA directory too):
//   root-ca.pem  root-ca-key.pem  [intermediate-ca.pem  intermediate-ca-key.pem]
//   ca-bundle.pem (root + intermediate: what certgate trusts as tls.clientCAs)
//   ca.json  policy.json  index.json  crl.pem  index.lock (only while a writer holds it)
import { createHash, randomBytes, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { access, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalSerial } from '../identity/canonical.js';
import { rfc4514 } from '../identity/dn.js';
import { compileAny, type StringMatcher } from '../policy/glob.js';
import { x509, type CryptoKey } from '../x509.js';
import { writeFileAtomic } from '../util/files.js';
import { emptyIndex, FileIndexStore, type CaIndexStore, type IndexEntry, type IndexFile } from './index-store.js';
import type { Store } from '../store/index.js';
import {
  chainPem,
  crlReasonCode,
  generateKeyPair,
  issueCertificate,
  issueCrl,
  issuerFromPem,
  privateKeyToPem,
  randomSerial,
  type EkuName,
  type Issuer,
  type KeyAlg,
  type SubjectInput,
} from './pki.js';
import type { RequestedNames } from './csr.js';

export type { IndexEntry } from './index-store.js';

export const CA_FILES = Object.freeze({
  rootCa: 'root-ca.pem',
  rootCaKey: 'root-ca-key.pem',
  intermediateCa: 'intermediate-ca.pem',
  intermediateCaKey: 'intermediate-ca-key.pem',
  caBundle: 'ca-bundle.pem',
  meta: 'ca.json',
  policy: 'policy.json',
  index: 'index.json',
  crl: 'crl.pem',
  lock: 'index.lock',
});

const DAY = 86_400_000;
const MAX_SKEW_MS = 60_000;

export class CaError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export type CertState = 'valid' | 'expired' | 'revoked';

/** What `ca issue --csr` may ask for: globs per name kind; a kind that is absent allows nothing. */
export interface NamingPolicy {
  cn?: string[];
  o?: string[];
  ou?: string[];
  uri?: string[];
  dns?: string[];
  /** Longest validity a request may get, days. */
  maxDays?: number;
}

const DEFAULT_POLICY: NamingPolicy = Object.freeze({
  cn: ['*'],
  o: ['*'],
  ou: ['*'],
  uri: ['spiffe://**'],
  dns: [],
  maxDays: 90,
}) as NamingPolicy;

interface CompiledNamingPolicy {
  raw: NamingPolicy;
  m: Record<'cn' | 'o' | 'ou' | 'uri' | 'dns', StringMatcher>;
}

export interface InitOptions {
  keyAlg?: KeyAlg;
  /** Also create an intermediate that signs leaves (the root key can then stay offline). */
  intermediate?: boolean;
  rootSubject?: SubjectInput;
  intermediateSubject?: SubjectInput;
  days?: number;
  notBefore?: Date;
}

export interface IssueRequest {
  subject: SubjectInput;
  san?: { uri?: readonly string[]; dns?: readonly string[]; email?: readonly string[]; ip?: readonly string[] };
  /** Sign this key (from a CSR); otherwise a key pair is generated. */
  publicKey?: x509.PublicKey;
  keyAlg?: KeyAlg;
  /** Validity from now; default 30 days. */
  ttlMs?: number;
  /** Explicit validity (tests, migrations); overrides ttlMs. */
  notBefore?: Date;
  notAfter?: Date;
  eku?: EkuName[];
  source: string;
  renewedFrom?: string;
}

export interface Issued {
  serial: string;
  certPem: string;
  /** Leaf followed by the intermediate (not the root). */
  chainPem: string;
  /** PKCS#8 PEM when certgate generated the key. */
  keyPem?: string;
  cert: x509.X509Certificate;
  entry: IndexEntry;
}

interface Prepared {
  notBefore: Date;
  notAfter: Date;
  san: { uri?: string[]; dns?: string[]; email?: string[]; ip?: string[] };
  publicKey: CryptoKey | x509.PublicKey;
  keyPem: string | undefined;
}

export interface TokenIdentity {
  cn: string;
  ou: string[];
  uri: string[];
  dns: string[];
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

export function stateOf(e: IndexEntry, now = Date.now()): CertState {
  if (e.revokedAt !== undefined) return 'revoked';
  return Date.parse(e.notAfter) <= now ? 'expired' : 'valid';
}

export const tokenHash = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

/** Creates a CA in dir (root, and an intermediate when asked). Refuses to overwrite one. */
export async function initAuthority(dir: string, opts: InitOptions = {}): Promise<CertificateAuthority> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (await exists(join(dir, CA_FILES.rootCa))) throw new CaError('CERTGATE_CA_EXISTS', `${dir} already holds a CA (${CA_FILES.rootCa}); use another --dir`);
  const keyAlg = opts.keyAlg ?? 'P-256';
  const notBefore = opts.notBefore ?? new Date(Math.floor((Date.now() - MAX_SKEW_MS) / 1000) * 1000);
  const days = opts.days ?? 3650;
  const root = await issueCertificate({ subject: opts.rootSubject ?? 'CN=certgate root CA', isCA: true, keyAlg, notBefore, days });
  const KEY = 0o600;
  const CERT = 0o644;
  // Keys first: a directory with a certificate but no key is useless; the reverse is harmless.
  await writeFileAtomic(join(dir, CA_FILES.rootCaKey), root.keyPem, KEY);
  await writeFileAtomic(join(dir, CA_FILES.rootCa), root.certPem, CERT);
  let bundle = root.certPem;
  if (opts.intermediate) {
    const inter = await issueCertificate({
      subject: opts.intermediateSubject ?? 'CN=certgate intermediate CA',
      issuer: { cert: root.cert, privateKey: root.keys.privateKey },
      isCA: true,
      pathLen: 0,
      keyAlg,
      notBefore,
      days,
    });
    await writeFileAtomic(join(dir, CA_FILES.intermediateCaKey), inter.keyPem, KEY);
    await writeFileAtomic(join(dir, CA_FILES.intermediateCa), inter.certPem, CERT);
    bundle = chainPem(root.certPem, inter.certPem);
  }
  await writeFileAtomic(join(dir, CA_FILES.caBundle), bundle, CERT);
  await writeFileAtomic(join(dir, CA_FILES.meta), JSON.stringify({ version: 1, keyAlg, intermediate: opts.intermediate ?? false, createdAt: new Date().toISOString() }, null, 2) + '\n', CERT);
  if (!(await exists(join(dir, CA_FILES.policy)))) {
    await writeFileAtomic(join(dir, CA_FILES.policy), JSON.stringify(DEFAULT_POLICY, null, 2) + '\n', CERT);
  }
  if (!(await exists(join(dir, CA_FILES.index)))) {
    await writeFileAtomic(join(dir, CA_FILES.index), JSON.stringify(emptyIndex()) + '\n', KEY);
  }
  const ca = await CertificateAuthority.open(dir);
  await ca.publishCrl();
  return ca;
}

export class CertificateAuthority {
  readonly dir: string;
  /** The CA that signs leaves and CRLs (the intermediate when there is one). */
  readonly signer: Issuer;
  readonly rootPem: string;
  /** Signer's chain below the root ('' when the root signs): appended to every issued leaf. */
  readonly intermediatesPem: string;
  /** Root + intermediate. */
  readonly bundlePem: string;
  readonly #signerNode: NodeX509Certificate;
  readonly #index: CaIndexStore;
  #policy: CompiledNamingPolicy | undefined;

  private constructor(dir: string, signer: Issuer, rootPem: string, intermediatesPem: string, index: CaIndexStore | undefined) {
    this.dir = dir;
    this.signer = signer;
    this.rootPem = rootPem;
    this.intermediatesPem = intermediatesPem;
    this.bundlePem = intermediatesPem === '' ? rootPem : chainPem(rootPem, intermediatesPem);
    this.#signerNode = new NodeX509Certificate(Buffer.from(signer.cert.rawData));
    this.#index = index ?? new FileIndexStore(join(dir, CA_FILES.index), join(dir, CA_FILES.lock));
  }

  /** Opens a CA directory (`ca init` or `dev-certs`); with a store, the index is the store's (Redis: the fleet's). */
  static async open(dir: string, opts: { store?: Pick<Store, 'caIndex'> } = {}): Promise<CertificateAuthority> {
    const p = (f: string) => join(dir, f);
    if (!(await exists(p(CA_FILES.rootCa)))) throw new CaError('CERTGATE_CA_MISSING', `${dir} holds no CA (no ${CA_FILES.rootCa}); run "certgate ca init --dir ${dir}" first`);
    const rootPem = await readFile(p(CA_FILES.rootCa), 'utf8');
    const hasInter = await exists(p(CA_FILES.intermediateCa));
    const certFile = hasInter ? CA_FILES.intermediateCa : CA_FILES.rootCa;
    const keyFile = hasInter ? CA_FILES.intermediateCaKey : CA_FILES.rootCaKey;
    const certPem = await readFile(p(certFile), 'utf8');
    let keyPem: string;
    try {
      keyPem = await readFile(p(keyFile), 'utf8');
    } catch {
      throw new CaError('CERTGATE_CA_KEY_MISSING', `cannot read the signing key ${p(keyFile)}`);
    }
    const signer = await issuerFromPem(certPem, keyPem);
    const index = opts.store !== undefined ? await opts.store.caIndex(dir, rootPem) : undefined;
    return new CertificateAuthority(dir, signer, rootPem, hasInter ? certPem : '', index);
  }

  /** RFC 4514 DN of the signer: the issuer of every certificate and CRL this CA makes. */
  get issuerDn(): string {
    return rfc4514(this.signer.cert.subjectName);
  }

  get signerCertPem(): string {
    return this.intermediatesPem === '' ? this.rootPem : this.intermediatesPem;
  }

  /** True when `der` was signed by this CA's signer (name and signature). */
  issued(der: Uint8Array): boolean {
    try {
      const c = new NodeX509Certificate(Buffer.from(der));
      return c.checkIssued(this.#signerNode) && c.verify(this.#signerNode.publicKey);
    } catch {
      return false;
    }
  }

  // --- index ----------------------------------------------------------------------------------

  async list(): Promise<IndexEntry[]> {
    return (await this.#index.read()).certs;
  }

  async entry(serial: string): Promise<IndexEntry | undefined> {
    const s = canonicalSerial(serial);
    return (await this.#index.read()).certs.find((e) => e.serial === s);
  }

  // --- issuing --------------------------------------------------------------------------------

  /** Signs a certificate and records it; the serial is random 128-bit and unique in the index. */
  async issue(req: IssueRequest): Promise<Issued> {
    const prepared = await this.#prepare(req);
    return this.#index.update((idx) => this.#signInto(idx, req, prepared));
  }

  /** Validity, SANs and (seconds for RSA-4096) key generation: the work done before the lock. */
  async #prepare(req: IssueRequest): Promise<Prepared> {
    const ttlMs = req.ttlMs ?? 30 * DAY;
    if (!(ttlMs > 0)) throw new CaError('CERTGATE_CA_BAD_VALIDITY', 'the validity must be positive');
    const now = Date.now();
    // Backdate a little for clock skew, but never by a large part of a short lifetime.
    const notBefore = req.notBefore ?? new Date(Math.floor((now - Math.min(MAX_SKEW_MS, ttlMs / 10)) / 1000) * 1000);
    const notAfter = req.notAfter ?? new Date(now + ttlMs);
    const signerEnd = this.signer.cert.notAfter.getTime();
    if (notAfter.getTime() > signerEnd) throw new CaError('CERTGATE_CA_BAD_VALIDITY', `the certificate would outlive its issuing CA (expires ${this.signer.cert.notAfter.toISOString()})`);
    const san = {
      ...(req.san?.uri?.length ? { uri: [...req.san.uri] } : {}),
      ...(req.san?.dns?.length ? { dns: [...req.san.dns] } : {}),
      ...(req.san?.email?.length ? { email: [...req.san.email] } : {}),
      ...(req.san?.ip?.length ? { ip: [...req.san.ip] } : {}),
    };
    const keys = req.publicKey === undefined ? await generateKeyPair(req.keyAlg ?? 'P-256') : undefined;
    const keyPem = keys === undefined ? undefined : await privateKeyToPem(keys.privateKey);
    return { notBefore, notAfter, san, publicKey: req.publicKey ?? keys!.publicKey, keyPem };
  }

  /** Signs and appends the index entry; runs inside an index update. */
  async #signInto(idx: IndexFile, req: IssueRequest, p: Prepared): Promise<Issued> {
    const taken = new Set(idx.certs.map((e) => e.serial));
    let serial = randomSerial();
    while (taken.has(serial)) serial = randomSerial();
    const { notBefore, notAfter, san, publicKey } = p;
    const signed = await issueCertificate({ subject: req.subject, issuer: this.signer, serial, notBefore, notAfter, eku: req.eku ?? ['clientAuth'], san, publicKey });
    const node = new NodeX509Certificate(signed.certPem);
    const entry: IndexEntry = {
      serial: signed.serial,
      subject: rfc4514(signed.cert.subjectName),
      uri: [...(san.uri ?? [])],
      dns: [...(san.dns ?? [])],
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      issuedAt: new Date().toISOString(),
      fingerprint: node.fingerprint256.replace(/:/g, '').toLowerCase(),
      source: req.source,
      ...(req.renewedFrom !== undefined ? { renewedFrom: req.renewedFrom } : {}),
    };
    idx.certs.push(entry);
    const chain = this.intermediatesPem === '' ? signed.certPem : chainPem(signed.certPem, this.intermediatesPem);
    return { serial: signed.serial, certPem: signed.certPem, chainPem: chain, cert: signed.cert, entry, ...(p.keyPem !== undefined ? { keyPem: p.keyPem } : {}) };
  }

  // --- naming policy (for CSRs signed from the CLI) --------------------------------------------

  async policy(): Promise<NamingPolicy> {
    return (await this.#compiledPolicy()).raw;
  }

  async #compiledPolicy(): Promise<CompiledNamingPolicy> {
    if (this.#policy !== undefined) return this.#policy;
    let raw: NamingPolicy;
    try {
      raw = JSON.parse(await readFile(join(this.dir, CA_FILES.policy), 'utf8')) as NamingPolicy;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CaError('CERTGATE_CA_POLICY_INVALID', `${join(this.dir, CA_FILES.policy)}: ${(err as Error).message}`);
      raw = DEFAULT_POLICY;
    }
    const list = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);
    this.#policy = {
      raw,
      m: {
        cn: compileAny(list(raw.cn), 'plain'),
        o: compileAny(list(raw.o), 'plain'),
        ou: compileAny(list(raw.ou), 'plain'),
        uri: compileAny(list(raw.uri), 'path'),
        dns: compileAny(list(raw.dns), 'dns'),
      },
    };
    return this.#policy;
  }

  /** Every requested name that the naming policy does not allow (empty: allowed). */
  async policyViolations(names: RequestedNames, days?: number): Promise<string[]> {
    const { raw, m } = await this.#compiledPolicy();
    const out: string[] = [];
    if (names.cn.length !== 1) out.push(`exactly one CN is required (got ${names.cn.length})`);
    for (const k of ['cn', 'o', 'ou', 'uri', 'dns'] as const) {
      for (const v of names[k]) if (!m[k](v)) out.push(`${k} "${v}" is not allowed by ${CA_FILES.policy}`);
    }
    for (const v of names.email) out.push(`email SAN "${v}" is not allowed`);
    for (const v of names.ip) out.push(`IP SAN "${v}" is not allowed`);
    for (const v of names.otherAttributes) out.push(`subject attribute ${v} is not allowed`);
    if (days !== undefined && raw.maxDays !== undefined && days > raw.maxDays) out.push(`validity ${days} days exceeds maxDays ${raw.maxDays}`);
    return out;
  }

  // --- revocation -----------------------------------------------------------------------------

  /** Marks the serial revoked in the index and publishes a new CRL. */
  async revoke(serial: string, reason: string): Promise<{ entry: IndexEntry; crlPath: string; alreadyRevoked: boolean }> {
    const s = canonicalSerial(serial);
    if (s === undefined) throw new CaError('CERTGATE_CA_BAD_SERIAL', `not a serial number: ${serial}`);
    crlReasonCode(reason); // refuse unknown reasons before touching anything
    const r = await this.#index.update((idx) => {
      const e = idx.certs.find((c) => c.serial === s);
      if (e === undefined) throw new CaError('CERTGATE_CA_UNKNOWN_SERIAL', `no certificate with serial ${s} in ${join(this.dir, CA_FILES.index)}`);
      const already = e.revokedAt !== undefined;
      if (!already) {
        e.revokedAt = new Date().toISOString();
        e.reason = reason;
      }
      return { entry: { ...e }, alreadyRevoked: already };
    });
    const crl = await this.publishCrl();
    return { ...r, crlPath: crl.path };
  }

  /**
   * Signs a CRL of every revoked certificate in the index and writes it (default crl.pem in the
   * CA directory, which certgate loads as revocation.crl.files). Republish before nextUpdate:
   * certgate treats a stale CRL as unknown status.
   */
  async publishCrl(opts: { out?: string; days?: number } = {}): Promise<{ path: string; pem: string; entries: number; nextUpdate: Date }> {
    const path = opts.out ?? join(this.dir, CA_FILES.crl);
    return this.#index.update(async (idx) => {
      idx.crlNumber += 1;
      const revoked = idx.certs.filter((e) => e.revokedAt !== undefined);
      const thisUpdate = new Date(Math.floor(Date.now() / 1000) * 1000);
      const nextUpdate = new Date(thisUpdate.getTime() + (opts.days ?? 7) * DAY);
      const crl = await issueCrl({
        issuer: this.signer,
        thisUpdate,
        nextUpdate,
        crlNumber: idx.crlNumber,
        entries: revoked.map((e) => ({ serial: e.serial, revokedAt: new Date(e.revokedAt!), reason: e.reason ?? 'unspecified' })),
      });
      await writeFileAtomic(path, crl.pem, 0o644);
      return { path, pem: crl.pem, entries: revoked.length, nextUpdate };
    });
  }

  // --- enrollment tokens ----------------------------------------------------------------------

  /** A one-time token for a first certificate with this identity; only its sha256 is stored. */
  async createToken(id: TokenIdentity, ttlMs: number): Promise<{ token: string; expiresAt: Date }> {
    if (id.cn === '') throw new CaError('CERTGATE_CA_BAD_TOKEN', 'a token needs a CN');
    const token = 'cgt_' + randomBytes(32).toString('base64url');
    const now = Date.now();
    const expiresAt = new Date(now + ttlMs);
    await this.#index.update((idx) => {
      // Expired and used tokens are kept a day for the audit trail, then dropped.
      idx.tokens = idx.tokens.filter((t) => Date.parse(t.expiresAt) > now - DAY);
      idx.tokens.push({ hash: tokenHash(token), cn: id.cn, ou: [...id.ou], uri: [...id.uri], dns: [...id.dns], createdAt: new Date(now).toISOString(), expiresAt: expiresAt.toISOString() });
    });
    return { token, expiresAt };
  }

  /**
   * First enrollment with a one-time token, as one index update: the token is checked, `build`
   * turns its identity into the request (or a refusal, which leaves the token unused), and the
   * certificate is signed and the token marked used together. Two concurrent uses of a token are
   * serialised by the index lock, so only one can succeed; a refused or failed one spends nothing.
   */
  async enrollWithToken(token: string, build: (id: TokenIdentity) => IssueRequest | { refused: string }): Promise<Issued | { refused: string }> {
    const h = tokenHash(token);
    return this.#index.update(async (idx) => {
      const now = Date.now();
      const t = idx.tokens.find((x) => x.hash === h);
      if (t === undefined) return { refused: 'unknown enrollment token' };
      if (t.usedAt !== undefined) return { refused: 'this enrollment token has already been used' };
      if (Date.parse(t.expiresAt) <= now) return { refused: 'this enrollment token has expired' };
      const req = build({ cn: t.cn, ou: t.ou, uri: t.uri, dns: t.dns });
      if ('refused' in req) return req;
      const issued = await this.#signInto(idx, req, await this.#prepare(req));
      t.usedAt = new Date(now).toISOString();
      return issued;
    });
  }
}
