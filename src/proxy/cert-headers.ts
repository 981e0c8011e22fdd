// Header formats other than XFCC that backends and proxies already parse: RFC 9440
// (Client-Cert, Client-Cert-Chain) and Traefik's passTLSClientCert (X-Forwarded-Tls-Client-Cert,
// X-Forwarded-Tls-Client-Cert-Info). Rendered once per certificate (headers.ts caches them).

import type { TLSSocket } from 'node:tls';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { nameValues, type NameLike } from '../identity/dn.js';
import { identityFromDer } from '../identity/identity.js';
import type { Identity } from '../identity/types.js';

export const CLIENT_CERT = 'client-cert';
export const CLIENT_CERT_CHAIN = 'client-cert-chain';
export const TRAEFIK_CERT = 'x-forwarded-tls-client-cert';
export const TRAEFIK_INFO = 'x-forwarded-tls-client-cert-info';

const MAX_CHAIN = 10;

/**
 * The CA certificates the client presented after its leaf, in the order of the chain. Node
 * completes the presented chain from the trust store; a self-signed root at its end is the trust
 * anchor and is left out (RFC 9440 lets the chain exclude it), so what remains are the
 * intermediates between the leaf and the root.
 */
export function presentedChain(socket: TLSSocket | undefined): Uint8Array[] {
  if (socket === undefined || typeof socket.getPeerCertificate !== 'function') return [];
  const leaf = socket.getPeerCertificate(true) as { raw?: Buffer; issuerCertificate?: unknown } | null;
  const out: Uint8Array[] = [];
  let cur = leaf?.issuerCertificate as { raw?: Buffer; issuerCertificate?: unknown; subject?: unknown; issuer?: unknown } | undefined;
  let prev: unknown = leaf;
  for (let i = 0; i < MAX_CHAIN && cur !== undefined && cur !== prev && cur.raw !== undefined; i++) {
    // Node points a self-signed root at itself: that is where the chain ends.
    if (cur.issuerCertificate === cur) break;
    out.push(new Uint8Array(cur.raw));
    prev = cur;
    cur = cur.issuerCertificate as typeof cur;
  }
  return out;
}

/** RFC 8941 byte sequence: `:` base64 `:`. */
function byteSequence(der: Uint8Array): string {
  return ':' + Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64') + ':';
}

/** RFC 9440: Client-Cert with the leaf, Client-Cert-Chain (an RFC 8941 list) when there are intermediates. */
export function rfc9440Headers(id: Identity, chain: readonly Uint8Array[]): string[] {
  const out = [CLIENT_CERT, byteSequence(id.der)];
  if (chain.length > 0) out.push(CLIENT_CERT_CHAIN, chain.map(byteSequence).join(', '));
  return out;
}

export type TraefikInfoField = 'subject' | 'issuer' | 'notBefore' | 'notAfter' | 'sans' | 'serial';

/** X-Forwarded-Tls-Client-Cert: every presented certificate as base64 DER (a PEM without its lines), comma-separated. */
export function traefikPem(id: Identity, chain: readonly Uint8Array[]): string {
  return [id.der, ...chain].map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64')).join(',');
}

/** Go's url.QueryEscape: everything but A-Z a-z 0-9 - _ . ~ percent-encoded, space as `+`. */
export function goQueryEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%20/g, '+');
}

// The attributes Traefik writes, in its order: DC, C, ST, L, O, OU (subject only), SN, CN (one).
function traefikDn(name: NameLike, withOu: boolean): string {
  const parts: string[] = [];
  const all = (attr: string, label: string) => {
    for (const v of nameValues(name, attr)) if (v !== '') parts.push(`${label}=${v}`);
  };
  const last = (attr: string, label: string) => {
    const v = nameValues(name, attr).at(-1);
    if (v !== undefined && v !== '') parts.push(`${label}=${v}`);
  };
  all('DC', 'DC');
  all('C', 'C');
  all('ST', 'ST');
  all('L', 'L');
  all('O', 'O');
  if (withOu) all('OU', 'OU');
  last('serialNumber', 'SN');
  last('CN', 'CN');
  return parts.join(',');
}

function certInfo(der: Uint8Array, id: Identity, fields: ReadonlySet<TraefikInfoField>): string {
  const values: string[] = [];
  if (fields.has('subject') || fields.has('issuer')) {
    const tbs = AsnConvert.parse(der, Certificate).tbsCertificate;
    const subject = fields.has('subject') ? traefikDn(tbs.subject, true) : '';
    if (subject !== '') values.push(`Subject="${subject}"`);
    const issuer = fields.has('issuer') ? traefikDn(tbs.issuer, false) : '';
    if (issuer !== '') values.push(`Issuer="${issuer}"`);
  }
  if (fields.has('serial')) values.push(`SerialNumber="${BigInt('0x' + (id.serial || '0')).toString()}"`);
  if (fields.has('notBefore')) values.push(`NB="${Math.floor(id.notBefore.getTime() / 1000)}"`);
  if (fields.has('notAfter')) values.push(`NA="${Math.floor(id.notAfter.getTime() / 1000)}"`);
  if (fields.has('sans')) {
    const sans = [...id.dns, ...id.email, ...id.ip, ...id.uri];
    if (sans.length > 0) values.push(`SAN="${sans.join(',')}"`);
  }
  return values.join(';');
}

/** X-Forwarded-Tls-Client-Cert-Info: one element per presented certificate, query-escaped as Traefik does. */
export function traefikInfo(id: Identity, chain: readonly Uint8Array[], fields: ReadonlySet<TraefikInfoField>): string {
  const elements = [certInfo(id.der, id, fields), ...chain.map((d) => certInfo(d, identityFromDer(d), fields))];
  return goQueryEscape(elements.join(','));
}
