// CRLs: parsed once per load into a Set of revoked serials (per issuer), signature verified
// against the issuing CA in the trust bundle. A CRL signed by anyone else is refused.
// Parsing uses the small DER reader (util/der.ts): @peculiar/x509 needs seconds for 100,000
// entries, this takes milliseconds; the signature is checked with node:crypto.

import { verify as cryptoVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Name } from '@peculiar/asn1-x509';
import { request } from 'undici';
import { rfc4514 } from '../identity/dn.js';
import { identityFromDer } from '../identity/identity.js';
import type { TrustedCa } from '../tls/material.js';
import { children, content, expectTag, integerHex, oidString, readTlv, slice, timeValue, type Tlv } from '../util/der.js';
import { pemBlocks } from '../util/pem.js';

export type CrlSource = 'crl-file' | 'crl-url';

/** RFC 5280 CRLReason names by code. */
const REASONS: Record<number, string> = {
  0: 'unspecified', 1: 'keyCompromise', 2: 'cACompromise', 3: 'affiliationChanged', 4: 'superseded',
  5: 'cessationOfOperation', 6: 'certificateHold', 8: 'removeFromCRL', 9: 'privilegeWithdrawn', 10: 'aACompromise',
};

export interface ParsedCrl {
  readonly issuerName: Uint8Array;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  readonly tbs: Uint8Array;
  readonly sigAlg: string;
  readonly signature: Uint8Array;
  /** serial (canonical hex) -> reason code */
  readonly revoked: Map<string, number>;
}

/** A verified CRL, ready for O(1) lookups. */
export interface LoadedCrl {
  readonly source: CrlSource;
  /** File path or URL. */
  readonly origin: string;
  /** The trusted CA that signed it. */
  readonly ca: TrustedCa;
  /** RFC 4514 DN of that CA, the same form as Identity.issuer. */
  readonly issuer: string;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  readonly revoked: ReadonlyMap<string, number>;
}

export class CrlError extends Error {
  readonly code = 'CERTGATE_CRL_INVALID';
}

export function reasonName(code: number | undefined): string {
  return code === undefined ? 'unspecified' : (REASONS[code] ?? `reason-${code}`);
}

/** DER, or one or more PEM `X509 CRL` blocks. */
export function crlDerBlocks(data: Uint8Array): Uint8Array[] {
  if (data[0] === 0x30) return [data];
  const text = Buffer.from(data).toString('latin1');
  const blocks = pemBlocks(text, 'X509 CRL');
  if (blocks.length === 0) throw new CrlError('neither DER nor PEM (-----BEGIN X509 CRL-----)');
  return blocks.map((b) => b.der);
}

export function parseCrl(der: Uint8Array): ParsedCrl {
  const top = expectTag(readTlv(der, 0), 0x30, 'CertificateList');
  const [tbsT, algT, sigT] = children(der, top);
  const tbsTlv = expectTag(tbsT, 0x30, 'tbsCertList');
  const alg = children(der, expectTag(algT, 0x30, 'signatureAlgorithm'));
  const sigBits = expectTag(sigT, 0x03, 'signatureValue');
  const f = children(der, tbsTlv);
  let i = 0;
  if (f[i]?.tag === 0x02) i++; // version
  expectTag(f[i++], 0x30, 'signature');
  const issuerName = slice(der, expectTag(f[i++], 0x30, 'issuer'));
  const tu = f[i++];
  if (tu === undefined || (tu.tag !== 0x17 && tu.tag !== 0x18)) throw new CrlError('thisUpdate missing');
  const thisUpdate = timeValue(der, tu);
  let nextUpdate: Date | undefined;
  if (f[i] !== undefined && (f[i]!.tag === 0x17 || f[i]!.tag === 0x18)) nextUpdate = timeValue(der, f[i++]!);
  const revoked = new Map<string, number>();
  if (f[i]?.tag === 0x30) {
    const list = f[i++]!;
    for (let at = list.body; at < list.end; ) {
      const entry = readTlv(der, at, list.end);
      at = entry.end;
      const serialT = readTlv(der, entry.body, entry.end);
      if (serialT.tag !== 0x02) throw new CrlError('revoked entry without serial');
      const dateT = readTlv(der, serialT.end, entry.end);
      let reason = 0;
      if (dateT.end < entry.end) reason = entryReason(der, readTlv(der, dateT.end, entry.end));
      revoked.set(integerHex(der, serialT), reason);
    }
  }
  const bits = content(der, sigBits);
  return {
    issuerName,
    thisUpdate,
    nextUpdate,
    tbs: slice(der, tbsTlv),
    sigAlg: oidString(der, expectTag(alg[0], 0x06, 'algorithm')),
    signature: bits.subarray(1),
    revoked,
  };
}

function entryReason(der: Uint8Array, exts: Tlv): number {
  for (const ext of children(der, exts)) {
    const parts = children(der, ext);
    if (parts[0]?.tag === 0x06 && oidString(der, parts[0]) === '2.5.29.21') {
      const value = readTlv(der, parts[parts.length - 1]!.body);
      return der[value.body] ?? 0;
    }
  }
  return 0;
}

const HASH_OF_SIG: Record<string, string | null> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.113549.1.1.5': 'sha1',
  '1.3.101.112': null, // Ed25519
};

/** Checks a signature over `data` with a CA's key for the signature algorithm OID. */
export function verifySignature(sigAlg: string, data: Uint8Array, signature: Uint8Array, ca: TrustedCa): boolean {
  const hash = HASH_OF_SIG[sigAlg];
  if (hash === undefined) throw new CrlError(`unsupported signature algorithm ${sigAlg}`);
  try {
    return cryptoVerify(hash, data, { key: ca.cert.publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

export interface CaInfo {
  /** Raw subject Name DER. */
  readonly name: Buffer;
  /** RFC 4514 subject, the same form as Identity.issuer. */
  readonly dn: string;
  /** The subjectPublicKey bits (what OCSP's issuerKeyHash hashes). */
  readonly keyBits: Buffer;
  /** RFC 4514 DN of the CA's own issuer, and its serial: to find the CA itself in a CRL. */
  readonly issuerDn: string;
  readonly serial: string;
  readonly selfSigned: boolean;
}

const infoCache = new WeakMap<TrustedCa, CaInfo>();

/** Subject and key bytes of a trusted CA, computed once per CA. */
export function caInfo(ca: TrustedCa): CaInfo {
  let s = infoCache.get(ca);
  if (s === undefined) {
    const der = new Uint8Array(ca.cert.raw);
    const tbs = children(der, readTlv(der, 0))[0]!;
    const f = children(der, tbs);
    const off = f[0]?.tag === 0xa0 ? 1 : 0;
    const spki = children(der, f[off + 5]!);
    const id = identityFromDer(der);
    s = {
      name: Buffer.from(slice(der, f[off + 4]!)),
      dn: id.subject,
      keyBits: Buffer.from(content(der, spki[1]!).subarray(1)),
      issuerDn: id.issuer,
      serial: id.serial,
      selfSigned: ca.cert.checkIssued(ca.cert),
    };
    infoCache.set(ca, s);
  }
  return s;
}

/** Finds the trusted CA that signed the CRL; throws a CrlError saying why none did. */
export function verifyCrl(crl: ParsedCrl, cas: readonly TrustedCa[]): TrustedCa {
  const named = cas.filter((ca) => caInfo(ca).name.equals(crl.issuerName));
  if (named.length === 0) {
    const dn = rfc4514(AsnConvert.parse(crl.issuerName, Name));
    throw new CrlError(`the CRL's issuer is not a CA in tls.clientCAs (issuer name ${dn}); refusing it`);
  }
  for (const ca of named) if (verifySignature(crl.sigAlg, crl.tbs, crl.signature, ca)) return ca;
  throw new CrlError(`the CRL's signature does not verify against the trusted CA ${caInfo(named[0]!).dn}; refusing it`);
}

export function loadCrl(der: Uint8Array, cas: readonly TrustedCa[], source: CrlSource, origin: string): LoadedCrl {
  const parsed = parseCrl(der);
  const ca = verifyCrl(parsed, cas);
  return {
    source,
    origin,
    ca,
    issuer: caInfo(ca).dn,
    thisUpdate: parsed.thisUpdate,
    nextUpdate: parsed.nextUpdate,
    revoked: parsed.revoked,
  };
}

/** Reads and verifies every CRL in a file (sync: used inside reload's all-or-nothing build). */
export function loadCrlFile(file: string, cas: readonly TrustedCa[]): LoadedCrl[] {
  let data: Uint8Array;
  try {
    data = readFileSync(file);
  } catch (err) {
    throw new CrlError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return crlDerBlocks(data).map((d) => loadCrl(d, cas, 'crl-file', file));
  } catch (err) {
    throw new CrlError(`${file}: ${(err as Error).message}`);
  }
}

export interface FetchOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly retries?: number;
  readonly backoffMs?: number;
}

/** GETs a CRL with a timeout and a size limit, retrying with exponential backoff. */
export async function fetchCrl(url: string, o: FetchOptions): Promise<Uint8Array> {
  const retries = o.retries ?? 2;
  let lastErr: Error | undefined;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, (o.backoffMs ?? 200) * 2 ** (attempt - 1)));
    try {
      return await fetchBytes(url, 'GET', undefined, undefined, o.timeoutMs, o.maxBytes);
    } catch (err) {
      lastErr = err as Error;
    }
  }
  throw lastErr ?? new Error('fetch failed');
}

/** One HTTP exchange through undici with a whole-exchange timeout and a body size cap. */
export async function fetchBytes(
  url: string,
  method: 'GET' | 'POST',
  body: Uint8Array | undefined,
  contentType: string | undefined,
  timeoutMs: number,
  maxBytes: number,
): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(timeoutMs);
  const res = await request(url, {
    method,
    signal,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    ...(body !== undefined ? { body, headers: { 'content-type': contentType ?? 'application/octet-stream' } } : {}),
  });
  if (res.statusCode !== 200) {
    res.body.resume();
    throw new Error(`${url}: HTTP ${res.statusCode}`);
  }
  const declared = Number(res.headers['content-length'] ?? 0);
  if (declared > maxBytes) {
    res.body.destroy();
    throw new Error(`${url}: ${declared} bytes exceeds the limit of ${maxBytes}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res.body) {
    size += (c as Buffer).length;
    if (size > maxBytes) {
      res.body.destroy();
      throw new Error(`${url}: response exceeds the limit of ${maxBytes} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
