// PKCS#10 requests: parse (PEM, DER or the base64 body EST sends), verify the proof of
// possession, and read the names they ask for. The names are only ever compared with what a
// provisioner allows; they are never trusted on their own.
import { nameValues, rfc4514 } from '../identity/dn.js';
import { pemBlocks } from '../util/pem.js';
import { x509 } from '../x509.js';
import { signingAlgorithmFor } from './pki.js';
import type { CryptoKeyPair } from '../x509.js';

/** The names a certificate or request carries, in the forms our policy and identity code use. */
export interface RequestedNames {
  /** RFC 4514, most specific first; '' when empty. */
  subject: string;
  cn: string[];
  o: string[];
  ou: string[];
  uri: string[];
  dns: string[];
  email: string[];
  ip: string[];
  /** Subject attributes other than CN, O, OU (a naming policy refuses these). */
  otherAttributes: string[];
}

export class CsrError extends Error {
  readonly code = 'CERTGATE_CSR_INVALID';
}

export interface ParsedCsr {
  csr: x509.Pkcs10CertificateRequest;
  names: RequestedNames;
  publicKey: x509.PublicKey;
}

/** Accepts PEM, DER, or bare base64 DER (with whitespace, as EST clients send it). */
function csrBytes(input: string | Uint8Array): Uint8Array {
  if (typeof input !== 'string') {
    // A body may be base64 text in bytes (EST) or raw DER (starts with SEQUENCE).
    if (input[0] === 0x30) return input;
    input = Buffer.from(input).toString('latin1');
  }
  const pem = pemBlocks(input, 'CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST')[0];
  if (pem !== undefined) return pem.der;
  const b64 = input.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+=*$/.test(b64)) throw new CsrError('the certificate request is neither PEM nor base64 DER');
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

/** Parses and verifies the request's self-signature (proof that the requester holds the key). */
export async function parseCsr(input: string | Uint8Array): Promise<ParsedCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrBytes(input));
  } catch (err) {
    if (err instanceof CsrError) throw err;
    throw new CsrError(`the certificate request does not parse: ${(err as Error).message}`);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrError('the certificate request signature does not verify');
  const ext = csr.getExtension('2.5.29.17');
  // The extension factory hands back the typed class when it knows the OID; decode it if not.
  const san = ext === null ? null : ext instanceof x509.SubjectAlternativeNameExtension ? ext : new x509.SubjectAlternativeNameExtension(ext.rawData);
  return { csr, publicKey: csr.publicKey, names: namesOf(csr.subjectName, san) };
}

const KNOWN = new Set(['2.5.4.3', '2.5.4.10', '2.5.4.11']);

function namesOf(subject: x509.Name, san: x509.SubjectAlternativeNameExtension | null | undefined): RequestedNames {
  const names: RequestedNames = {
    subject: rfc4514(subject),
    cn: nameValues(subject, 'CN'),
    o: nameValues(subject, 'O'),
    ou: nameValues(subject, 'OU'),
    uri: [],
    dns: [],
    email: [],
    ip: [],
    otherAttributes: [],
  };
  for (const rdn of subject.toJSON()) {
    for (const type of Object.keys(rdn)) if (!KNOWN.has(attrOid(type))) names.otherAttributes.push(type);
  }
  for (const n of san?.names.items ?? []) {
    if (n.type === 'dns') names.dns.push(n.value);
    else if (n.type === 'url') names.uri.push(n.value);
    else if (n.type === 'email') names.email.push(n.value);
    else if (n.type === 'ip') names.ip.push(n.value);
    else names.otherAttributes.push(`SAN ${n.type}`);
  }
  return names;
}

const SHORT: Record<string, string> = { CN: '2.5.4.3', O: '2.5.4.10', OU: '2.5.4.11' };
function attrOid(type: string): string {
  return SHORT[type] ?? type;
}

/** Same set of values, order ignored. */
export function sameValues(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.every((v, i) => v === sb[i]);
}

/** A request for `names` with this key pair, signed with it (the client side of enrollment). */
export async function createCsr(keys: CryptoKeyPair, names: { subject: string; uri?: readonly string[]; dns?: readonly string[] }): Promise<string> {
  const san: x509.JsonGeneralName[] = [
    ...(names.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(names.uri ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    // Our subjects are RFC 4514 (most specific first); the encoding order is the reverse.
    name: new x509.Name(new x509.Name(names.subject).toJSON().reverse()),
    keys,
    signingAlgorithm: signingAlgorithmFor(keys.privateKey),
    extensions: san.length > 0 ? [new x509.SubjectAlternativeNameExtension(san)] : [],
  });
  return csr.toString('pem');
}
