// Certificate and CRL issuing, with keys from WebCrypto. Pure apart from randomness and the
// clock (both overridable through options): no file I/O. Used by the issuing CA, `dev-certs`
// and the shared test PKI helper.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { canonicalSerial } from '../identity/canonical.js';
import { encodeInteger, encodeIntegerHex, encodeOid, encodeTime, encodeTlv } from '../util/der.js';
import { pemEncode } from '../util/pem.js';
import { x509, webcrypto, type CryptoKey, type CryptoKeyPair } from '../x509.js';

export type KeyAlg = 'P-256' | 'P-384' | 'RSA-2048' | 'RSA-3072' | 'RSA-4096';
const KEY_ALGS: readonly KeyAlg[] = Object.freeze(['P-256', 'P-384', 'RSA-2048', 'RSA-3072', 'RSA-4096']);

/** Structured subject; rendered in conventional X.500 order (C, ST, L, O, OU, CN). */
export interface SubjectFields {
  cn?: string;
  o?: string | string[];
  ou?: string | string[];
  c?: string;
  st?: string;
  l?: string;
  dc?: string[];
  serialNumber?: string;
  email?: string;
}

/**
 * A DN string is read as RFC 4514 text, most specific first (`CN=alice, OU=payments, O=Acme`),
 * and encoded in the reverse, conventional ASN.1 order (O, OU, CN), like OpenSSL's `-subject`
 * in RFC 2253 mode and Go's pkix.Name do.
 */
export type SubjectInput = string | SubjectFields;

/** A CA that can sign: its certificate and its private key. */
export interface Issuer {
  cert: x509.X509Certificate;
  privateKey: CryptoKey;
}

export type EkuName = 'serverAuth' | 'clientAuth' | 'ocspSigning' | 'codeSigning' | 'emailProtection' | 'timeStamping';
export type KeyUsageName = keyof typeof x509.KeyUsageFlags;

export interface SanInput {
  dns?: string[];
  ip?: string[];
  uri?: string[];
  email?: string[];
}

export interface IssueOptions {
  subject: SubjectInput;
  /** Absent: self-signed. */
  issuer?: Issuer;
  /** Key pair to generate for the subject (default P-256). Ignored when `publicKey` is given. */
  keyAlg?: KeyAlg;
  /** Sign this key (from a CSR) instead of generating one; the result then has no private key. */
  publicKey?: CryptoKey | x509.PublicKey;
  /** Hex serial in any common form; default: random, 128 bits, positive. */
  serial?: string;
  /** Default: one minute ago, to tolerate clock skew. */
  notBefore?: Date;
  notAfter?: Date;
  /** Validity from notBefore when notAfter is absent; default 365 (leaf) or 3650 (CA). */
  days?: number;
  isCA?: boolean;
  pathLen?: number;
  /** Names or dotted OIDs. */
  eku?: (EkuName | string)[];
  san?: SanInput;
  /** Authority Information Access OCSP responder URL(s). */
  ocspUrl?: string | string[];
  /** CRL distribution point URL(s). */
  crlUrl?: string | string[];
  /** Overrides the default key usage (CA: keyCertSign+cRLSign; leaf: digitalSignature [+keyEncipherment for RSA]). */
  keyUsage?: KeyUsageName[];
  /** Extra extensions appended as they are. */
  extensions?: x509.Extension[];
}

/** A certificate signed for a public key we were given (CSR): no private key to return. */
export interface SignedCertificate {
  cert: x509.X509Certificate;
  certPem: string;
  /** Canonical serial: lowercase hex, no leading zeros. */
  serial: string;
}

export interface IssuedCertificate extends SignedCertificate {
  keys: CryptoKeyPair;
  /** PKCS#8 PEM of the private key. */
  keyPem: string;
}

const EKU_OIDS: Record<EkuName, string> = {
  serverAuth: x509.ExtendedKeyUsage.serverAuth,
  clientAuth: x509.ExtendedKeyUsage.clientAuth,
  ocspSigning: x509.ExtendedKeyUsage.ocspSigning,
  codeSigning: x509.ExtendedKeyUsage.codeSigning,
  emailProtection: x509.ExtendedKeyUsage.emailProtection,
  timeStamping: x509.ExtendedKeyUsage.timeStamping,
};

const DAY_MS = 86_400_000;

function keyGenParams(alg: KeyAlg): webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams {
  switch (alg) {
    case 'P-256':
    case 'P-384':
      return { name: 'ECDSA', namedCurve: alg };
    case 'RSA-2048':
    case 'RSA-3072':
    case 'RSA-4096':
      return {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: Number(alg.slice(4)),
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      };
  }
}

/** A fresh, extractable signing key pair. */
export async function generateKeyPair(alg: KeyAlg = 'P-256'): Promise<CryptoKeyPair> {
  if (!KEY_ALGS.includes(alg)) throw new TypeError(`unsupported key algorithm: ${String(alg)}`);
  return webcrypto.subtle.generateKey(keyGenParams(alg), true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

/** The signature algorithm a key signs with: ECDSA SHA-384 for P-384, otherwise SHA-256. */
export function signingAlgorithmFor(key: CryptoKey): webcrypto.EcdsaParams | webcrypto.Algorithm {
  const alg = key.algorithm as webcrypto.KeyAlgorithm & { namedCurve?: string };
  if (alg.name === 'ECDSA') return { name: 'ECDSA', hash: alg.namedCurve === 'P-384' ? 'SHA-384' : alg.namedCurve === 'P-521' ? 'SHA-512' : 'SHA-256' } as webcrypto.EcdsaParams;
  if (alg.name === 'RSASSA-PKCS1-v1_5') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as webcrypto.Algorithm;
  throw new TypeError(`unsupported signing key algorithm: ${alg.name}`);
}

/** Random 128-bit positive serial (top bit set, so always 32 hex digits), canonical form. */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! | 0x80;
  return bytes.toString('hex');
}

/** Builds the x509 Name for a subject (see SubjectInput for the order rule). */
export function subjectName(subject: SubjectInput): x509.Name {
  if (typeof subject === 'string') {
    if (subject.trim() === '') return new x509.Name([]);
    const rdns = new x509.Name(subject).toJSON();
    return new x509.Name(rdns.reverse());
  }
  const rdns: Record<string, string[]>[] = [];
  const add = (type: string, v: string | string[] | undefined): void => {
    for (const value of v === undefined ? [] : Array.isArray(v) ? v : [v]) rdns.push({ [type]: [value] });
  };
  add('DC', subject.dc);
  add('C', subject.c);
  add('ST', subject.st);
  add('L', subject.l);
  add('O', subject.o);
  add('OU', subject.ou);
  add('CN', subject.cn);
  add('serialNumber', subject.serialNumber);
  add('E', subject.email);
  return new x509.Name(rdns);
}

function asList(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function keyUsageFlags(names: KeyUsageName[]): number {
  let flags = 0;
  for (const n of names) {
    const f = x509.KeyUsageFlags[n];
    if (f === undefined) throw new TypeError(`unknown key usage: ${n}`);
    flags |= f;
  }
  return flags;
}

function authorityKeyId(issuer: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> | x509.AuthorityKeyIdentifierExtension {
  // The AKI must equal the issuer's SKI byte for byte (OpenSSL builds chains with it), whatever
  // method produced that SKI.
  const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
  return x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey, false);
}

/** Issues a certificate: self-signed when `issuer` is absent, else signed by the issuer's key. */
export function issueCertificate(opts: IssueOptions & { publicKey: CryptoKey | x509.PublicKey }): Promise<SignedCertificate>;
export function issueCertificate(opts: IssueOptions): Promise<IssuedCertificate>;
export async function issueCertificate(opts: IssueOptions): Promise<IssuedCertificate | SignedCertificate> {
  const keys = opts.publicKey === undefined ? await generateKeyPair(opts.keyAlg ?? 'P-256') : undefined;
  const publicKey = opts.publicKey ?? keys!.publicKey;
  if (opts.issuer === undefined && keys === undefined) {
    throw new TypeError('a self-signed certificate needs a generated key pair, not a given public key');
  }
  const signingKey = opts.issuer?.privateKey ?? keys!.privateKey;
  const isCA = opts.isCA ?? false;

  const subject = subjectName(opts.subject);
  const notBefore = opts.notBefore ?? new Date(Math.floor((Date.now() - 60_000) / 1000) * 1000);
  const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + (opts.days ?? (isCA ? 3650 : 365)) * DAY_MS);
  const serial = opts.serial === undefined ? randomSerial() : canonicalSerial(opts.serial);
  if (serial === undefined) throw new TypeError(`invalid serial: ${opts.serial}`);

  const spki = publicKey instanceof x509.PublicKey ? publicKey : await x509.PublicKey.create(publicKey);
  const isRsa = spki.algorithm.name.startsWith('RSA');

  const extensions: x509.Extension[] = [];
  extensions.push(new x509.BasicConstraintsExtension(isCA, isCA ? opts.pathLen : undefined, true));
  const usage: KeyUsageName[] =
    opts.keyUsage ?? (isCA ? ['keyCertSign', 'cRLSign'] : isRsa ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature']);
  extensions.push(new x509.KeyUsagesExtension(keyUsageFlags(usage), true));
  if (opts.eku !== undefined && opts.eku.length > 0) {
    extensions.push(new x509.ExtendedKeyUsageExtension(opts.eku.map((e) => EKU_OIDS[e as EkuName] ?? e), false));
  }
  const san: x509.JsonGeneralName[] = [
    ...(opts.san?.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.san?.ip ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(opts.san?.uri ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(opts.san?.email ?? []).map((value) => ({ type: 'email' as const, value })),
  ];
  // RFC 5280 4.2.1.6: with an empty subject the SAN carries the identity and must be critical.
  if (san.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(san, subject.toJSON().length === 0));
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(spki, false));
  if (opts.issuer !== undefined) extensions.push(await authorityKeyId(opts.issuer.cert));
  const ocsp = asList(opts.ocspUrl);
  if (ocsp.length > 0) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp }));
  const crl = asList(opts.crlUrl);
  if (crl.length > 0) extensions.push(new x509.CRLDistributionPointsExtension(crl));
  extensions.push(...(opts.extensions ?? []));

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: opts.issuer?.cert.subjectName ?? subject,
    notBefore,
    notAfter,
    publicKey: spki,
    signingKey,
    signingAlgorithm: signingAlgorithmFor(signingKey),
    extensions,
  });
  const certPem = certToPem(cert);
  // x509's serialNumber is the hex of the DER bytes ('0abc'); ours is the canonical form ('abc').
  if (keys === undefined) return { cert, certPem, serial };
  return { cert, certPem, serial, keys, keyPem: await privateKeyToPem(keys.privateKey) };
}

// ---------------------------------------------------------------------------------------------
// CRLs

export type CrlReasonName = keyof typeof x509.X509CrlReason;

export interface CrlEntryInput {
  /** Hex serial in any common form. */
  serial: string;
  /** Default: thisUpdate. */
  revokedAt?: Date;
  /** Reason name (`keyCompromise`, `key_compromise` ...) or RFC 5280 code. */
  reason?: CrlReasonName | string | number;
}

export interface IssueCrlOptions {
  issuer: Issuer;
  entries: CrlEntryInput[];
  /** Default: now. */
  thisUpdate?: Date;
  /** Default: thisUpdate + 7 days. */
  nextUpdate?: Date;
  crlNumber?: number | bigint;
}

export interface IssuedCrl {
  /** Parsed lazily on first access (slow for large CRLs; see issueCrl). */
  readonly crl: x509.X509Crl;
  der: Uint8Array;
  pem: string;
}

const REASONS = new Map<string, number>(
  Object.entries(x509.X509CrlReason)
    .filter((e): e is [string, number] => typeof e[1] === 'number')
    .map(([k, v]) => [k.toLowerCase(), v]),
);

/** RFC 5280 reason code for a name or number; throws on anything unknown. */
export function crlReasonCode(reason: string | number): number {
  const code = typeof reason === 'number' ? reason : REASONS.get(reason.toLowerCase().replace(/[_\s-]/g, ''));
  if (code === undefined || !Object.values(x509.X509CrlReason).includes(code)) {
    throw new TypeError(`unknown CRL reason: ${String(reason)}`);
  }
  return code;
}

/**
 * Signs a CRL. The entries are encoded directly in DER (the generic ASN.1 serializer takes
 * seconds for 100k entries); the issuer name and signature come from the issuer certificate.
 */
export async function issueCrl(opts: IssueCrlOptions): Promise<IssuedCrl> {
  const thisUpdate = opts.thisUpdate ?? new Date(Math.floor(Date.now() / 1000) * 1000);
  const nextUpdate = opts.nextUpdate ?? new Date(thisUpdate.getTime() + 7 * DAY_MS);
  const sigAlg = signingAlgorithmFor(opts.issuer.privateKey);

  const extensions: Buffer[] = [];
  const aki = await authorityKeyId(opts.issuer.cert);
  extensions.push(Buffer.from(aki.rawData));
  if (opts.crlNumber !== undefined) {
    extensions.push(encodeTlv(0x30, encodeOid('2.5.29.20'), encodeTlv(0x04, encodeInteger(BigInt(opts.crlNumber)))));
  }

  // Entries share few distinct dates and reasons: encode each once.
  const times = new Map<number, Buffer>();
  const timeOf = (d: Date): Buffer => {
    let b = times.get(d.getTime());
    if (b === undefined) times.set(d.getTime(), (b = encodeTime(d)));
    return b;
  };
  const reasonExts = new Map<number, Buffer>();
  const reasonExt = (code: number): Buffer => {
    let b = reasonExts.get(code);
    if (b === undefined) reasonExts.set(code, (b = encodeTlv(0x30, encodeTlv(0x30, encodeOid('2.5.29.21'), encodeTlv(0x04, Buffer.from([0x0a, 0x01, code]))))));
    return b;
  };
  const revoked: Buffer[] = new Array(opts.entries.length);
  for (let i = 0; i < opts.entries.length; i++) {
    const e = opts.entries[i]!;
    const serial = canonicalSerial(e.serial);
    if (serial === undefined) throw new TypeError(`invalid serial in CRL entry: ${e.serial}`);
    const reason = e.reason === undefined ? 0 : crlReasonCode(e.reason);
    // RFC 5280 5.3.1: the reasonCode "unspecified" should be absent rather than encoded.
    revoked[i] = reason === 0
      ? encodeTlv(0x30, encodeIntegerHex(serial), timeOf(e.revokedAt ?? thisUpdate))
      : encodeTlv(0x30, encodeIntegerHex(serial), timeOf(e.revokedAt ?? thisUpdate), reasonExt(reason));
  }

  const algId = signatureAlgorithmId(sigAlg);
  const tbsParts = [
    Buffer.from([0x02, 0x01, 0x01]), // version v2
    algId,
    Buffer.from(opts.issuer.cert.subjectName.toArrayBuffer()),
    encodeTime(thisUpdate),
    encodeTime(nextUpdate),
  ];
  if (revoked.length > 0) tbsParts.push(encodeTlv(0x30, ...revoked));
  tbsParts.push(encodeTlv(0xa0, encodeTlv(0x30, ...extensions)));
  const tbs = encodeTlv(0x30, ...tbsParts);

  const rawSig = Buffer.from(await webcrypto.subtle.sign(sigAlg, opts.issuer.privateKey, tbs));
  const sig = sigAlg.name === 'ECDSA' ? ecdsaRawToDer(rawSig) : rawSig;
  const crlDer = encodeTlv(0x30, tbs, algId, encodeTlv(0x03, Buffer.from([0]), sig));
  const entryCount = opts.entries.length;
  let parsed: x509.X509Crl | undefined;
  return {
    der: new Uint8Array(crlDer),
    pem: pemEncode(crlDer, 'X509 CRL'),
    // Parsed on first use: @peculiar/x509 needs about 9 s for 100,000 entries, and asn1js
    // refuses more than 10,000 nodes (about 1,500 entries) unless the limit is raised.
    get crl(): x509.X509Crl {
      parsed ??= new x509.X509Crl(crlDer, {
        berOptions: { maxNodes: 16 * entryCount + 1_000, maxContentLength: crlDer.length + 1 },
      });
      return parsed;
    },
  };
}

/** AlgorithmIdentifier DER for the signature algorithms signingAlgorithmFor returns. */
function signatureAlgorithmId(alg: webcrypto.Algorithm): Buffer {
  const hash = (alg as { hash?: string }).hash;
  if (alg.name === 'ECDSA') {
    const arc = hash === 'SHA-384' ? 3 : hash === 'SHA-512' ? 4 : 2;
    return encodeTlv(0x30, encodeOid(`1.2.840.10045.4.3.${arc}`));
  }
  const arc = hash === 'SHA-384' ? 12 : hash === 'SHA-512' ? 13 : 11;
  return encodeTlv(0x30, encodeOid(`1.2.840.113549.1.1.${arc}`), Buffer.from([0x05, 0x00]));
}

function ecdsaRawToDer(raw: Buffer): Buffer {
  const half = raw.length / 2;
  const int = (b: Buffer): Buffer => encodeInteger(BigInt('0x' + b.toString('hex')));
  return encodeTlv(0x30, int(raw.subarray(0, half)), int(raw.subarray(half)));
}

// ---------------------------------------------------------------------------------------------
// PEM helpers

function certToPem(cert: x509.X509Certificate): string {
  return pemEncode(cert.rawData, 'CERTIFICATE');
}

/** PKCS#8 PEM of an extractable private key. */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  return pemEncode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** Concatenated PEM: leaf first, then its issuers. Accepts certificates or PEM text. */
export function chainPem(...certs: (x509.X509Certificate | string)[]): string {
  return certs
    .map((c) => (typeof c === 'string' ? c.trim() + '\n' : certToPem(c)))
    .join('');
}

/**
 * Imports a private key PEM (PKCS#8, or OpenSSL's "EC PRIVATE KEY"/"RSA PRIVATE KEY") as a
 * WebCrypto signing key pair. RSA keys are imported as RSASSA-PKCS1-v1_5 with SHA-256.
 */
export async function importKeyPairPem(pem: string): Promise<CryptoKeyPair> {
  const key = createPrivateKey(pem);
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  let alg: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : undefined;
    if (namedCurve === undefined) throw new TypeError(`unsupported EC curve: ${String(curve)}`);
    alg = { name: 'ECDSA', namedCurve };
  } else if (key.asymmetricKeyType === 'rsa') {
    alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  } else {
    throw new TypeError(`unsupported key type: ${String(key.asymmetricKeyType)}`);
  }
  const [privateKey, publicKey] = await Promise.all([
    webcrypto.subtle.importKey('pkcs8', pkcs8, alg, true, ['sign']),
    webcrypto.subtle.importKey('spki', spki, alg, true, ['verify']),
  ]);
  return { privateKey, publicKey };
}

/** Reads an issuer from PEM text: the CA certificate and its private key. */
export async function issuerFromPem(certPem: string, keyPem: string): Promise<Issuer> {
  const { privateKey } = await importKeyPairPem(keyPem);
  return { cert: new x509.X509Certificate(certPem), privateKey };
}
