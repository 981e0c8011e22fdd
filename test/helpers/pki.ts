// The one shared test PKI: every certificate a test needs comes from here. The CA hierarchy is
// built once per test file (vitest isolates modules per file) and reused; leaves are cheap (P-256)
// and issued fresh on each call.
import { execFileSync } from 'node:child_process';
import { X509Certificate as NodeX509Certificate, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chainPem,
  issueCertificate,
  issueCrl,
  type CrlEntryInput,
  type EkuName,
  type IssuedCertificate,
  type IssuedCrl,
  type Issuer,
  type KeyAlg,
  type KeyUsageName,
  type SanInput,
  type SubjectInput,
} from '../../src/ca/pki.js';
import { x509, type CryptoKeyPair } from '../../src/x509.js';

export type { IssuedCrl, KeyAlg, SubjectInput, SanInput } from '../../src/ca/pki.js';
export { x509 };

/** A certificate authority a test can issue from. */
export interface TestCa {
  cert: x509.X509Certificate;
  /** Node's parsed form, for `checkIssued`/`verify` and fingerprints. */
  nodeCert: NodeX509Certificate;
  certPem: string;
  keyPem: string;
  keys: CryptoKeyPair;
  /** {cert, privateKey}: what pki.ts signs with. */
  issuer: Issuer;
  /** Self-signed root of its hierarchy. */
  isRoot: boolean;
  /** This CA's PEM followed by its issuers' up to, not including, the root (a root: itself). */
  chainPem: string;
  serial: string;
}

/** An end-entity (or sub-CA) certificate with everything a TLS client or server needs. */
export interface TestCert {
  cert: x509.X509Certificate;
  nodeCert: NodeX509Certificate;
  certPem: string;
  keyPem: string;
  keys?: CryptoKeyPair;
  /** Leaf followed by the intermediate(s) up to (not including) the root. */
  chainPem: string;
  /** Canonical serial: lowercase hex, no leading zeros. */
  serial: string;
  /** Canonical SHA-256 fingerprint: lowercase hex, no colons. */
  fingerprint256: string;
  issuedBy: TestCa;
}

export interface ClientOptions {
  /** DN string (`CN=alice, OU=payments, O=Acme`) or fields; default `CN=client-N, O=certgate-test`. */
  subject?: SubjectInput;
  /** Shortcut for subject `CN=<cn>, O=certgate-test`. */
  cn?: string;
  san?: SanInput;
  /** 'intermediate' (default), 'root', or any TestCa (e.g. from `pki.ca()` or `untrustedRoot()`). */
  issuer?: 'intermediate' | 'root' | TestCa;
  notBefore?: Date;
  notAfter?: Date;
  days?: number;
  keyAlg?: KeyAlg;
  /** Default ['clientAuth']; [] for none. */
  eku?: (EkuName | string)[];
  keyUsage?: KeyUsageName[];
  serial?: string;
  ocspUrl?: string | string[];
  crlUrl?: string | string[];
  isCA?: boolean;
  pathLen?: number;
  extensions?: x509.Extension[];
}

export interface CaOptions {
  subject?: SubjectInput;
  /** Default: the intermediate. Use 'root' for a second intermediate. */
  issuer?: 'intermediate' | 'root' | TestCa;
  keyAlg?: KeyAlg;
  pathLen?: number;
  notBefore?: Date;
  notAfter?: Date;
  days?: number;
  serial?: string;
  ocspUrl?: string | string[];
  crlUrl?: string | string[];
  /** e.g. ['ocspSigning'] for a CA that should also sign OCSP responses. */
  eku?: (EkuName | string)[];
  keyUsage?: KeyUsageName[];
}

export interface CrlOptions {
  /** Default: the intermediate. */
  issuer?: 'intermediate' | 'root' | TestCa;
  /** Serials (any hex form), certs, or full entries. */
  entries?: (string | TestCert | CrlEntryInput)[];
  thisUpdate?: Date;
  nextUpdate?: Date;
  crlNumber?: number | bigint;
}

export interface WrittenPki {
  dir: string;
  /** Server leaf + intermediate. */
  serverCert: string;
  serverKey: string;
  /** Root + intermediate: what certgate trusts for clients. */
  caBundle: string;
  rootCa: string;
  intermediateCa: string;
}

export interface TestPki {
  root: TestCa;
  intermediate: TestCa;
  /** CN=localhost, DNS localhost, IP 127.0.0.1 and ::1, serverAuth, issued by the intermediate. */
  server: TestCert;
  /** Root + intermediate PEM. */
  caBundlePem: string;
  /** Root PEM only: what a TLS client trusts to verify `server`. */
  rootPem: string;
  /** Issues a client certificate (clientAuth EKU unless told otherwise). */
  client(opts?: ClientOptions): Promise<TestCert>;
  /** Issues a server certificate (serverAuth; default SANs localhost/127.0.0.1/::1). */
  serverCert(opts?: ClientOptions): Promise<TestCert>;
  /** Issues a subordinate CA. */
  ca(opts?: CaOptions): Promise<TestCa>;
  /** A separate hierarchy nobody trusts; with sameNames its CA DNs equal this one's. */
  untrustedRoot(opts?: { sameNames?: boolean; keyAlg?: KeyAlg }): Promise<TestPki>;
  crl(opts?: CrlOptions): Promise<IssuedCrl>;
  /** Writes server cert/key, CA bundle, root and intermediate PEM files into dir (created). */
  writeTo(dir: string): Promise<WrittenPki>;
}

export interface CreateTestPkiOptions {
  keyAlg?: KeyAlg;
  rootSubject?: SubjectInput;
  intermediateSubject?: SubjectInput;
  /** Default true: reuse the hierarchy already built in this test file for the same options. */
  cache?: boolean;
}

const cache = new Map<string, Promise<TestPki>>();
let clientCounter = 0;

/** The test PKI: root -> intermediate -> server; clients on demand. */
export function createTestPki(opts: CreateTestPkiOptions = {}): Promise<TestPki> {
  if (opts.cache === false) return buildPki(opts);
  const key = JSON.stringify([opts.keyAlg, opts.rootSubject, opts.intermediateSubject]);
  let p = cache.get(key);
  if (p === undefined) {
    p = buildPki(opts);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

function fingerprint(cert: NodeX509Certificate): string {
  return cert.fingerprint256.replace(/:/g, '').toLowerCase();
}

function toTestCa(issued: IssuedCertificate, parent: TestCa | undefined): TestCa {
  // Chains stop below the root: a root's chain is itself, a CA under a root is alone in its chain.
  const chain = parent === undefined || parent.isRoot ? issued.certPem : chainPem(issued.certPem, parent.chainPem);
  return {
    isRoot: parent === undefined,
    cert: issued.cert,
    nodeCert: new NodeX509Certificate(issued.certPem),
    certPem: issued.certPem,
    keyPem: issued.keyPem,
    keys: issued.keys,
    issuer: { cert: issued.cert, privateKey: issued.keys.privateKey },
    chainPem: chain,
    serial: issued.serial,
  };
}

function toTestCert(issued: IssuedCertificate, ca: TestCa): TestCert {
  const nodeCert = new NodeX509Certificate(issued.certPem);
  const chain = ca.isRoot ? issued.certPem : chainPem(issued.certPem, ca.chainPem);
  return {
    cert: issued.cert,
    nodeCert,
    certPem: issued.certPem,
    keyPem: issued.keyPem,
    keys: issued.keys,
    chainPem: chain,
    serial: issued.serial,
    fingerprint256: fingerprint(nodeCert),
    issuedBy: ca,
  };
}

async function buildPki(opts: CreateTestPkiOptions): Promise<TestPki> {
  const keyAlg = opts.keyAlg ?? 'P-256';
  const rootIssued = await issueCertificate({
    subject: opts.rootSubject ?? 'CN=certgate test root CA, O=certgate-test',
    keyAlg,
    isCA: true,
    notBefore: new Date(Date.now() - 86_400_000),
    days: 3650,
  });
  const root = toTestCa(rootIssued, undefined);
  const intermediate = toTestCa(
    await issueCertificate({
      subject: opts.intermediateSubject ?? 'CN=certgate test intermediate CA, O=certgate-test',
      issuer: root.issuer,
      keyAlg,
      isCA: true,
      pathLen: 0,
      notBefore: new Date(Date.now() - 86_400_000),
      days: 3650,
    }),
    root,
  );

  const pick = (i: 'intermediate' | 'root' | TestCa | undefined): TestCa =>
    i === undefined || i === 'intermediate' ? intermediate : i === 'root' ? root : i;

  const leaf = async (o: ClientOptions, defaults: { subject: SubjectInput; eku: (EkuName | string)[]; san?: SanInput }): Promise<TestCert> => {
    const ca = pick(o.issuer);
    const issued = await issueCertificate({
      subject: o.subject ?? (o.cn !== undefined ? `CN=${o.cn}, O=certgate-test` : defaults.subject),
      issuer: ca.issuer,
      keyAlg: o.keyAlg ?? 'P-256',
      eku: o.eku ?? defaults.eku,
      ...(o.san ?? defaults.san ? { san: o.san ?? defaults.san } : {}),
      ...(o.notBefore ? { notBefore: o.notBefore } : {}),
      ...(o.notAfter ? { notAfter: o.notAfter } : {}),
      ...(o.days !== undefined ? { days: o.days } : {}),
      ...(o.keyUsage ? { keyUsage: o.keyUsage } : {}),
      ...(o.serial !== undefined ? { serial: o.serial } : {}),
      ...(o.ocspUrl !== undefined ? { ocspUrl: o.ocspUrl } : {}),
      ...(o.crlUrl !== undefined ? { crlUrl: o.crlUrl } : {}),
      ...(o.isCA !== undefined ? { isCA: o.isCA } : {}),
      ...(o.pathLen !== undefined ? { pathLen: o.pathLen } : {}),
      ...(o.extensions ? { extensions: o.extensions } : {}),
    });
    return toTestCert(issued, ca);
  };

  const serverDefaults = { subject: 'CN=localhost, O=certgate-test', eku: ['serverAuth'], san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] } };
  const server = await leaf({}, serverDefaults);
  const caBundlePem = chainPem(root.certPem, intermediate.certPem);

  const pki: TestPki = {
    root,
    intermediate,
    server,
    caBundlePem,
    rootPem: root.certPem,
    client: (o = {}) => leaf(o, { subject: `CN=client-${++clientCounter}, O=certgate-test`, eku: ['clientAuth'] }),
    serverCert: (o = {}) => leaf(o, serverDefaults),
    async ca(o = {}) {
      const parent = pick(o.issuer);
      const issued = await issueCertificate({
        subject: o.subject ?? `CN=certgate test sub CA ${++clientCounter}, O=certgate-test`,
        issuer: parent.issuer,
        keyAlg: o.keyAlg ?? 'P-256',
        isCA: true,
        ...(o.pathLen !== undefined ? { pathLen: o.pathLen } : {}),
        ...(o.notBefore ? { notBefore: o.notBefore } : {}),
        ...(o.notAfter ? { notAfter: o.notAfter } : {}),
        ...(o.days !== undefined ? { days: o.days } : {}),
        ...(o.serial !== undefined ? { serial: o.serial } : {}),
        ...(o.ocspUrl !== undefined ? { ocspUrl: o.ocspUrl } : {}),
        ...(o.crlUrl !== undefined ? { crlUrl: o.crlUrl } : {}),
        ...(o.eku ? { eku: o.eku } : {}),
        ...(o.keyUsage ? { keyUsage: o.keyUsage } : {}),
      });
      return toTestCa(issued, parent);
    },
    untrustedRoot: (o = {}) =>
      buildPki({
        keyAlg: o.keyAlg ?? keyAlg,
        rootSubject: o.sameNames ? (opts.rootSubject ?? 'CN=certgate test root CA, O=certgate-test') : 'CN=certgate untrusted root CA, O=elsewhere',
        intermediateSubject: o.sameNames
          ? (opts.intermediateSubject ?? 'CN=certgate test intermediate CA, O=certgate-test')
          : 'CN=certgate untrusted intermediate CA, O=elsewhere',
        cache: false,
      }),
    crl: (o = {}) =>
      issueCrl({
        issuer: pick(o.issuer).issuer,
        entries: (o.entries ?? []).map((e) => (typeof e === 'string' ? { serial: e } : 'issuedBy' in e ? { serial: e.serial } : e)),
        ...(o.thisUpdate ? { thisUpdate: o.thisUpdate } : {}),
        ...(o.nextUpdate ? { nextUpdate: o.nextUpdate } : {}),
        ...(o.crlNumber !== undefined ? { crlNumber: o.crlNumber } : {}),
      }),
    async writeTo(dir) {
      await mkdir(dir, { recursive: true });
      const paths: WrittenPki = {
        dir,
        serverCert: join(dir, 'server.pem'),
        serverKey: join(dir, 'server-key.pem'),
        caBundle: join(dir, 'ca-bundle.pem'),
        rootCa: join(dir, 'root-ca.pem'),
        intermediateCa: join(dir, 'intermediate-ca.pem'),
      };
      await Promise.all([
        writeFile(paths.serverCert, server.chainPem),
        writeFile(paths.serverKey, server.keyPem, { mode: 0o600 }),
        writeFile(paths.caBundle, caBundlePem),
        writeFile(paths.rootCa, root.certPem),
        writeFile(paths.intermediateCa, intermediate.certPem),
      ]);
      return paths;
    },
  };
  return pki;
}

// ---------------------------------------------------------------------------------------------
// Certificates WebCrypto cannot make (weak keys and digests), from the openssl CLI.

export interface WeakCertOptions {
  /** The signing CA: a TestCa, or its PEM cert and key. A self-signed cert when absent. */
  issuer?: TestCa | { certPem: string; keyPem: string };
  /** OpenSSL -subj form (`/CN=weak/O=certgate-test`) or `CN=weak, O=certgate-test`; default CN=weak-client. */
  subject?: string;
  /** 'rsa' (default) or 'ec'. */
  keyType?: 'rsa' | 'ec';
  /** RSA modulus bits; default 1024. */
  rsaBits?: number;
  /** EC curve name for keyType 'ec', e.g. 'prime192v1', 'secp224r1'; default prime256v1. */
  curve?: string;
  /**
   * Signature digest: default 'sha1'. 'md5' only works with an RSA issuer (there is no
   * ECDSA-with-MD5); make one with `pki.ca({ keyAlg: 'RSA-2048' })`.
   */
  digest?: 'sha1' | 'md5' | 'sha256' | 'sha384' | 'sha512';
  days?: number;
  /** Default 'clientAuth'. */
  eku?: string[];
  /** Hex serial; default random. */
  serial?: string;
  san?: SanInput;
}

export interface WeakCert {
  cert: x509.X509Certificate;
  nodeCert: NodeX509Certificate;
  certPem: string;
  keyPem: string;
  /** Leaf + the issuer's chain (when the issuer is a TestCa below a root). */
  chainPem: string;
  serial: string;
  fingerprint256: string;
}

function opensslSubject(subject: string): string {
  if (subject.startsWith('/')) return subject;
  // RFC 4514 text is most specific first; OpenSSL's -subj lists the ASN.1 order (least specific first).
  return '/' + subject.split(/\s*,\s*/).reverse().join('/');
}

/** Makes a certificate with a weak key or digest through `openssl`, signed by the given CA. */
export function weakCertWithOpenssl(opts: WeakCertOptions = {}): WeakCert {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-weak-'));
  try {
    const run = (args: string[]): string => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    const keyPath = join(dir, 'key.pem');
    if ((opts.keyType ?? 'rsa') === 'rsa') {
      run(['genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${opts.rsaBits ?? 1024}`, '-out', 'key.pem']);
    } else {
      run(['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${opts.curve ?? 'prime256v1'}`, '-out', 'key.pem']);
    }
    const digest = opts.digest ?? 'sha1';
    const ext: string[] = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${(opts.eku ?? ['clientAuth']).join(',')}`,
      'subjectKeyIdentifier=hash',
    ];
    if (opts.issuer !== undefined) ext.push('authorityKeyIdentifier=keyid');
    const san = [
      ...(opts.san?.dns ?? []).map((v) => `DNS:${v}`),
      ...(opts.san?.ip ?? []).map((v) => `IP:${v}`),
      ...(opts.san?.uri ?? []).map((v) => `URI:${v}`),
      ...(opts.san?.email ?? []).map((v) => `email:${v}`),
    ];
    if (san.length > 0) ext.push(`subjectAltName=${san.join(',')}`);
    writeFileSync(join(dir, 'ext.cnf'), ext.join('\n') + '\n');
    run(['req', '-new', '-key', 'key.pem', '-subj', opensslSubject(opts.subject ?? 'CN=weak-client, O=certgate-test'), '-out', 'req.csr']);
    const signer: string[] = [];
    if (opts.issuer === undefined) {
      signer.push('-signkey', 'key.pem');
    } else {
      writeFileSync(join(dir, 'ca.pem'), opts.issuer.certPem);
      writeFileSync(join(dir, 'ca-key.pem'), opts.issuer.keyPem, { mode: 0o600 });
      signer.push('-CA', 'ca.pem', '-CAkey', 'ca-key.pem');
    }
    const serial = '0x' + (opts.serial?.replace(/[:\s]/g, '') ?? randomBytes(16).toString('hex').replace(/^./, '7'));
    run(['x509', '-req', '-in', 'req.csr', ...signer, `-${digest}`, '-days', String(opts.days ?? 30), '-set_serial', serial,
      '-extfile', 'ext.cnf', '-out', 'cert.pem']);
    const certPath = join(dir, 'cert.pem');
    const certPem = readFileSync(certPath, 'utf8');
    const keyPem = readFileSync(keyPath, 'utf8');
    const nodeCert = new NodeX509Certificate(certPem);
    const issuerChain = opts.issuer && 'isRoot' in opts.issuer && !opts.issuer.isRoot ? opts.issuer.chainPem : '';
    return {
      cert: new x509.X509Certificate(certPem),
      nodeCert,
      certPem,
      keyPem,
      chainPem: chainPem(certPem, ...(issuerChain ? [issuerChain] : [])),
      serial: nodeCert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
      fingerprint256: fingerprint(nodeCert),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
