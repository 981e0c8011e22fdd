// Headers to the backend. Whatever the client sent about identity or forwarding is dropped and
// ours is set (Envoy's SANITIZE_SET): the backend learns identity only from the verified
// certificate. The identity headers of a certificate are rendered once and reused per request.

import type { Identity } from '../identity/types.js';
import { xfccElement } from './xfcc.js';

export interface HeaderSettings {
  readonly xfcc: boolean;
  /** Lowercase, ends with '-', e.g. 'x-client-cert-'. */
  readonly prefix: string;
  readonly forwarded: boolean;
}

// Hop-by-hop headers (RFC 9110 7.6.1) and those certgate alone sets.
const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Node answers 100-continue to the client itself; undici refuses to send Expect upstream.
  'expect',
  'x-forwarded-client-cert',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
]);

/** Characters outside printable ASCII become RFC 4514 style \xx escapes of their UTF-8 bytes. */
export function headerSafe(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x20-\x7e]/.test(value)) return value;
  let out = '';
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0x20 && cp <= 0x7e) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += '\\' + b.toString(16).padStart(2, '0');
  }
  return out;
}

/** The identity headers for one certificate, as a flat [name, value, ...] list. */
export function renderIdentityHeaders(id: Identity, s: HeaderSettings): string[] {
  const out: string[] = [];
  if (s.xfcc) out.push('x-forwarded-client-cert', headerSafe(xfccElement(id)));
  const p = s.prefix;
  out.push(p + 'subject', headerSafe(id.subject));
  if (id.cn.length > 0) out.push(p + 'cn', headerSafe(id.cn.join(',')));
  if (id.uri.length > 0) out.push(p + 'san-uri', headerSafe(id.uri.join(',')));
  if (id.dns.length > 0) out.push(p + 'san-dns', headerSafe(id.dns.join(',')));
  if (id.spiffe !== undefined) out.push(p + 'spiffe', headerSafe(id.spiffe));
  out.push(p + 'fingerprint', id.fingerprint);
  out.push(p + 'serial', id.serial);
  out.push(p + 'not-after', id.notAfter.toISOString());
  out.push(p + 'issuer', headerSafe(id.issuer));
  return out;
}

/** Renders once per (certificate, settings); settings change only with a new Runtime. */
export class IdentityHeaderCache {
  readonly #settings: HeaderSettings;
  readonly #cache = new WeakMap<Identity, readonly string[]>();
  constructor(settings: HeaderSettings) {
    this.#settings = settings;
  }
  get(id: Identity): readonly string[] {
    let h = this.#cache.get(id);
    if (h === undefined) this.#cache.set(id, (h = Object.freeze(renderIdentityHeaders(id, this.#settings))));
    return h;
  }
}

function isOurs(lower: string, prefix: string): boolean {
  if (DROP.has(lower) || lower.startsWith(prefix)) return true;
  // A backend that maps '_' to '-' (CGI, some frameworks) would read these as ours.
  if (lower.includes('_')) {
    const dashed = lower.replace(/_/g, '-');
    return DROP.has(dashed) || dashed.startsWith(prefix);
  }
  return false;
}

/**
 * Builds the upstream header list from the client's raw headers: drops hop-by-hop headers,
 * anything named in Connection, and every identity or forwarding header the client sent;
 * then appends forwarding and identity headers. Returns a flat [name, value, ...] array.
 */
export function upstreamHeaders(
  raw: readonly string[],
  identityHeaders: readonly string[],
  s: HeaderSettings,
  clientIp: string,
  requestId: string,
): string[] {
  const out: string[] = [];
  let connectionTokens: Set<string> | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) {
        const tok = t.trim().toLowerCase();
        if (tok !== '' && tok !== 'close' && tok !== 'keep-alive') (connectionTokens ??= new Set()).add(tok);
      }
    }
  }
  let hasRequestId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (isOurs(lower, s.prefix)) continue;
    if (connectionTokens !== undefined && connectionTokens.has(lower)) continue;
    if (lower === 'host') host = raw[i + 1];
    else if (lower === 'x-request-id') hasRequestId = true;
    out.push(name, raw[i + 1]!);
  }
  if (!hasRequestId) out.push('x-request-id', requestId);
  if (s.forwarded) {
    out.push('x-forwarded-for', clientIp, 'x-forwarded-proto', 'https');
    if (host !== undefined) out.push('x-forwarded-host', host);
  }
  for (let i = 0; i < identityHeaders.length; i++) out.push(identityHeaders[i]!);
  return out;
}
