// Identity from a DER certificate. Parsed once per certificate (see createIdentityCache), never per
// request. Pure: no I/O.
import { createHash, createPublicKey } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityInfoAccessSyntax,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  CRLDistributionPoints,
  ExtendedKeyUsage,
  type GeneralName,
  SubjectAlternativeName,
  id_ad_ocsp,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_cRLDistributionPoints,
  id_ce_extKeyUsage,
  id_ce_subjectAltName,
  id_pe_authorityInfoAccess,
} from '@peculiar/asn1-x509';
import { LRUCache } from 'lru-cache';
import { canonicalFingerprint, canonicalSerial } from './canonical.js';
import { nameValues, rfc4514 } from './dn.js';
import type { Identity } from './types.js';

// OpenSSL's names (`openssl x509 -text`, "Signature Algorithm:"), so logs and lint messages read
// the same as the tools operators already use.
const SIG_ALGS: ReadonlyMap<string, string> = new Map([
  ['1.2.840.10045.4.1', 'ecdsa-with-SHA1'],
  ['1.2.840.10045.4.3.1', 'ecdsa-with-SHA224'],
  ['1.2.840.10045.4.3.2', 'ecdsa-with-SHA256'],
  ['1.2.840.10045.4.3.3', 'ecdsa-with-SHA384'],
  ['1.2.840.10045.4.3.4', 'ecdsa-with-SHA512'],
  ['1.2.840.113549.1.1.2', 'md2WithRSAEncryption'],
  ['1.2.840.113549.1.1.4', 'md5WithRSAEncryption'],
  ['1.2.840.113549.1.1.5', 'sha1WithRSAEncryption'],
  ['1.2.840.113549.1.1.10', 'RSASSA-PSS'],
  ['1.2.840.113549.1.1.11', 'sha256WithRSAEncryption'],
  ['1.2.840.113549.1.1.12', 'sha384WithRSAEncryption'],
  ['1.2.840.113549.1.1.13', 'sha512WithRSAEncryption'],
  ['1.2.840.113549.1.1.14', 'sha224WithRSAEncryption'],
  ['1.3.101.112', 'ED25519'],
  ['1.3.101.113', 'ED448'],
  ['1.2.840.10040.4.3', 'dsaWithSHA1'],
  ['2.16.840.1.101.3.4.3.1', 'dsa_with_SHA224'],
  ['2.16.840.1.101.3.4.3.2', 'dsa_with_SHA256'],
]);

const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const OID_RSA = '1.2.840.113549.1.1.1';
const OID_RSA_PSS = '1.2.840.113549.1.1.10';
const OID_ED25519 = '1.3.101.112';
const OID_ED448 = '1.3.101.113';

// Named-curve parameters by their DER encoding (OBJECT IDENTIFIER TLV), to avoid another parse.
const CURVES: ReadonlyMap<string, { name: string; bits: number }> = new Map([
  ['06082a8648ce3d030107', { name: 'P-256', bits: 256 }],
  ['06052b81040022', { name: 'P-384', bits: 384 }],
  ['06052b81040023', { name: 'P-521', bits: 521 }],
  ['06052b8104000a', { name: 'secp256k1', bits: 256 }],
]);

/** SHA-256 of the DER certificate, lowercase hex without colons (the canonical fingerprint). */
export function fingerprintOf(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

const hex = (buf: ArrayBuffer | Uint8Array): string => Buffer.from(buf as ArrayBuffer).toString('hex');

/** IPv4 dotted; IPv6 in RFC 5952 form (lowercase, longest zero run of 2+ compressed, IPv4-mapped dotted). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length !== 16) return hex(bytes); // name-constraint style address+mask: not an address
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.subarray(12).join('.')}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const text = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestLen < 2) return text(groups);
  return `${text(groups.slice(0, bestStart))}::${text(groups.slice(bestStart + bestLen))}`;
}

// asn1-x509 hands IP SANs over as text in its own format; turn it back into bytes so the output
// form is ours (RFC 5952) and not the library's.
function ipBytes(text: string): Uint8Array | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) return Uint8Array.from(text.split('.').map(Number));
  if (text.includes('/') || !text.includes(':')) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const left = halves[0] ? halves[0].split(':') : [];
  const right = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return undefined;
  const groups = [...left, ...Array<string>(missing).fill('0'), ...right].map((g) => parseInt(g, 16));
  if (groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

interface KeyInfo {
  keyType: Identity['keyType'];
  keyBits: number;
  curve: string | undefined;
}

function keyInfo(cert: Certificate): KeyInfo {
  const spki = cert.tbsCertificate.subjectPublicKeyInfo;
  switch (spki.algorithm.algorithm) {
    case OID_EC_PUBLIC_KEY: {
      const params = spki.algorithm.parameters;
      const curve = params ? CURVES.get(hex(params)) : undefined;
      return { keyType: 'EC', keyBits: curve?.bits ?? 0, curve: curve?.name };
    }
    case OID_RSA:
    case OID_RSA_PSS: {
      let bits = 0;
      try {
        const spkiDer = AsnConvert.serialize(spki);
        bits = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' }).asymmetricKeyDetails
          ?.modulusLength ?? 0;
      } catch {
        bits = 0; // an RSA key OpenSSL cannot load is reported as 0 bits, which any policy refuses
      }
      return { keyType: 'RSA', keyBits: bits, curve: undefined };
    }
    case OID_ED25519:
      return { keyType: 'Ed25519', keyBits: 256, curve: undefined };
    case OID_ED448:
      return { keyType: 'Ed448', keyBits: 456, curve: undefined };
    default:
      return { keyType: 'unknown', keyBits: 0, curve: undefined };
  }
}

function uris(names: readonly GeneralName[] | undefined, into: string[]): void {
  for (const n of names ?? []) if (n.uniformResourceIdentifier !== undefined) into.push(n.uniformResourceIdentifier);
}

const freeze = <T>(items: T[]): readonly T[] => Object.freeze(items);

/** Parses a DER certificate into a frozen Identity. Throws only when the DER is not a certificate. */
export function identityFromDer(der: Uint8Array): Identity {
  return parseIdentity(der, fingerprintOf(der));
}

function parseIdentity(der: Uint8Array, fingerprint: string): Identity {
  const cert = AsnConvert.parse(der, Certificate);
  const tbs = cert.tbsCertificate;

  const dns: string[] = [];
  const uri: string[] = [];
  const email: string[] = [];
  const ip: string[] = [];
  const eku: string[] = [];
  const ocspUrls: string[] = [];
  const crlUrls: string[] = [];
  let authorityKeyId: string | undefined;
  let isCA = false;

  // Each extension is parsed on its own: one that does not decode is ignored rather than making
  // the whole certificate unusable; missing data only ever narrows what a policy can allow.
  for (const ext of tbs.extensions ?? []) {
    const value = ext.extnValue.buffer;
    try {
      switch (ext.extnID) {
        case id_ce_subjectAltName:
          for (const n of AsnConvert.parse(value, SubjectAlternativeName)) {
            if (n.dNSName !== undefined) dns.push(n.dNSName);
            else if (n.uniformResourceIdentifier !== undefined) uri.push(n.uniformResourceIdentifier);
            else if (n.rfc822Name !== undefined) email.push(n.rfc822Name);
            else if (n.iPAddress !== undefined) {
              const bytes = ipBytes(n.iPAddress);
              ip.push(bytes ? formatIp(bytes) : n.iPAddress);
            }
          }
          break;
        case id_ce_basicConstraints:
          isCA = AsnConvert.parse(value, BasicConstraints).cA === true;
          break;
        case id_ce_extKeyUsage:
          eku.push(...AsnConvert.parse(value, ExtendedKeyUsage));
          break;
        case id_ce_authorityKeyIdentifier: {
          const kid = AsnConvert.parse(value, AuthorityKeyIdentifier).keyIdentifier;
          if (kid) authorityKeyId = hex(kid.buffer);
          break;
        }
        case id_pe_authorityInfoAccess:
          for (const ad of AsnConvert.parse(value, AuthorityInfoAccessSyntax)) {
            if (ad.accessMethod === id_ad_ocsp) uris([ad.accessLocation], ocspUrls);
          }
          break;
        case id_ce_cRLDistributionPoints:
          for (const dp of AsnConvert.parse(value, CRLDistributionPoints)) uris(dp.distributionPoint?.fullName, crlUrls);
          break;
      }
    } catch {
      // see above
    }
  }

  const key = keyInfo(cert);
  const sigOid = cert.signatureAlgorithm.algorithm;
  const identity: Identity = {
    subject: rfc4514(tbs.subject),
    cn: freeze(nameValues(tbs.subject, 'CN')),
    o: freeze(nameValues(tbs.subject, 'O')),
    ou: freeze(nameValues(tbs.subject, 'OU')),
    dns: freeze(dns),
    uri: freeze(uri),
    email: freeze(email),
    ip: freeze(ip),
    spiffe: uri.find((u) => u.toLowerCase().startsWith('spiffe://')),
    fingerprint,
    serial: canonicalSerial(hex(tbs.serialNumber)) ?? '0',
    issuer: rfc4514(tbs.issuer),
    notBefore: tbs.validity.notBefore.getTime(),
    notAfter: tbs.validity.notAfter.getTime(),
    keyType: key.keyType,
    keyBits: key.keyBits,
    curve: key.curve,
    sigAlg: SIG_ALGS.get(sigOid) ?? sigOid,
    authorityKeyId,
    isCA,
    eku: freeze(eku),
    ocspUrls: freeze(ocspUrls),
    crlUrls: freeze(crlUrls),
    der,
  };
  return Object.freeze(identity);
}

export interface IdentityCache {
  /** The Identity of this certificate; parsed on first sight, then served from the cache. */
  get(der: Uint8Array, fingerprint?: string): Identity;
  readonly size: number;
}

/**
 * An LRU of Identities keyed by fingerprint, so a certificate is parsed once, not per connection.
 * `fingerprint` may be passed in any common form (e.g. Node's `fingerprint256`, uppercase with
 * colons); it is trusted to belong to `der`, so pass only one computed from the same certificate.
 */
export function createIdentityCache(max = 10_000): IdentityCache {
  const cache = new LRUCache<string, Identity>({ max });
  return {
    get(der, fingerprint) {
      const fp = (fingerprint !== undefined ? canonicalFingerprint(fingerprint) : undefined) ?? fingerprintOf(der);
      let identity = cache.get(fp);
      if (identity === undefined) {
        identity = parseIdentity(der, fp);
        cache.set(fp, identity);
      }
      return identity;
    },
    get size() {
      return cache.size;
    },
  };
}
