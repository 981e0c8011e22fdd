// Envoy's x-forwarded-client-cert (XFCC), written the way Envoy writes it so backends that already
// parse Envoy's header parse ours.
//
// Syntax (Envoy docs, "HTTP header manipulation > x-forwarded-client-cert",
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert):
//   header  = element *( "," element )         one element per proxy hop; we write exactly one
//   element = pair *( ";" pair )               keys: By, Hash, Cert, Chain, Subject, URI, DNS
//   Which keys are set is `headers.xfccDetails`; `headers.xfccMode` says what happens to the
//   client's own XFCC (headers.ts).
//   pair    = key "=" value
//   "If `,`, `;` or `=` appear in a value, the value should be double-quoted. Double-quotes in the
//   value should be replaced by backslash-double-quote (\")."
//
// What Envoy's code actually emits (source/common/http/conn_manager_utility.cc,
// mutateXfccRequestHeader): By, Hash, then Cert, Chain, Subject, URI, DNS in that order;
// `Subject="<subject>"` is always quoted (and present even when empty), its text being OpenSSL's
// X509_NAME_print_ex(XN_FLAG_RFC2253) output written verbatim; `Cert="<url-encoded PEM>"` is
// always quoted; `URI=` is present (empty) when the certificate has no URI SAN; one `DNS=` per DNS
// SAN. Envoy writes By/URI/DNS raw, unquoted even when they hold `;` (envoyproxy/envoy#32945).
//
// Our rule, identical to Envoy's bytes for every well-formed certificate:
// - Subject: always quoted; the content is the RFC 4514 string, in which `"` and `\` inside
//   attribute values are already written `\"` and `\\` (RFC 4514 s2.4, as OpenSSL does), so the
//   documented `"` -> `\"` rule holds and no subject can close the quotes early. Like OpenSSL's
//   RFC 2253 mode (ESC_MSB), bytes of non-ASCII characters are written as `\XX` hex pairs, so
//   the header stays ASCII; those are valid RFC 4514 escapes.
// - By/URI/DNS: where Envoy would emit something unsafe we follow the documented rule instead:
//   `"`, `\`, whitespace, control and non-ASCII characters are percent-encoded (none may appear in
//   a valid URI or DNS name, RFC 3986/1035, so a valid value is unchanged), and a value holding
//   `,` `;` or `=` is double-quoted. A certificate therefore cannot add a pair or an element.
import type { Identity } from '../identity/types.js';
import { pemEncode } from '../util/pem.js';

export const XFCC_HEADER = 'x-forwarded-client-cert';

export interface XfccOptions {
  /** URI SANs of certgate's own server certificate (Envoy's `By`, one pair each); none when undefined. */
  readonly by?: string | readonly string[] | undefined;
  /** Include `Cert="<url-encoded PEM>"` (Envoy `set_current_client_cert_details.cert`). Default false. */
  readonly cert?: boolean;
  /** Include `Subject="..."`. Default true. */
  readonly subject?: boolean;
  /** Include `URI=` pairs. Default true. */
  readonly uri?: boolean;
  /** Include `DNS=` pairs. Default true. */
  readonly dns?: boolean;
  /** Include `Hash=`. Default true (Envoy always writes it; `headers.xfccDetails` may leave it out). */
  readonly hash?: boolean;
  /**
   * Include `Chain="<url-encoded PEM>"`: the leaf and these certificates the client presented after
   * it (Envoy `set_current_client_cert_details.chain`). Default: no Chain.
   */
  readonly chain?: readonly Uint8Array[] | undefined;
}

/** Which XFCC keys `headers.xfccDetails` names, as the options of xfccElement. */
export function xfccOptions(details: readonly string[], by: string | readonly string[] | undefined, chain: readonly Uint8Array[] | undefined): XfccOptions {
  const has = new Set(details);
  return {
    by: has.has('By') ? by : undefined,
    hash: has.has('Hash'),
    cert: has.has('Cert'),
    chain: has.has('Chain') ? (chain ?? []) : undefined,
    subject: has.has('Subject'),
    uri: has.has('URI'),
    dns: has.has('DNS'),
  };
}

/** One XFCC element for the client certificate behind `identity`. */
export function xfccElement(identity: Identity, opts: XfccOptions = {}): string {
  const pairs: string[] = [];
  // Envoy writes one By per URI SAN of its own certificate (envoyproxy/envoy#20724), like URI.
  for (const b of typeof opts.by === 'string' ? [opts.by] : (opts.by ?? [])) if (b !== '') pairs.push('By=' + sanValue(b));
  if (opts.hash !== false) pairs.push('Hash=' + identity.fingerprint);
  // encodeURIComponent escapes exactly what Envoy's urlEncodedPemEncodedPeerCertificate replaces in a
  // PEM (`\n`, space, `+`, `/`, `=`); the other PEM characters are unreserved.
  if (opts.cert === true) pairs.push(`Cert="${encodeURIComponent(pemEncode(identity.der, 'CERTIFICATE'))}"`);
  if (opts.chain !== undefined) {
    const pems = [identity.der, ...opts.chain].map((d) => pemEncode(d, 'CERTIFICATE')).join('');
    pairs.push(`Chain="${encodeURIComponent(pems)}"`);
  }
  if (opts.subject !== false) pairs.push(`Subject="${subjectValue(identity.subject)}"`);
  if (opts.uri !== false) {
    if (identity.uri.length === 0) pairs.push('URI=');
    for (const u of identity.uri) pairs.push('URI=' + sanValue(u));
  }
  if (opts.dns !== false) for (const d of identity.dns) pairs.push('DNS=' + sanValue(d));
  return pairs.join(';');
}

const SAN_UNSAFE = /["\\\s\x00-\x1f\x7f-\u{10ffff}]/u;
const NEEDS_QUOTES = /[,;=]/;

function sanValue(value: string): string {
  let v = value;
  if (SAN_UNSAFE.test(v)) {
    v = '';
    for (const ch of value) {
      v += SAN_UNSAFE.test(ch) ? percentEncode(ch) : ch;
    }
  }
  return NEEDS_QUOTES.test(v) ? `"${v}"` : v;
}

function percentEncode(ch: string): string {
  let out = '';
  for (const b of Buffer.from(ch, 'utf8')) out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  return out;
}

/**
 * The Subject content: the RFC 4514 string, ASCII-only, with every `"` escaped. For output of
 * `rfc4514()` only non-ASCII characters change; any other string is made safe too (a `"` not
 * already escaped becomes `\"`, a dangling final `\` becomes `\\`, controls become `\XX`).
 */
export function subjectValue(subject: string): string {
  let out = '';
  for (let i = 0; i < subject.length; i++) {
    const c = subject[i]!;
    const code = c.charCodeAt(0);
    if (c === '\\') {
      const next = subject[i + 1];
      if (next === undefined) {
        out += '\\\\';
      } else if (next.charCodeAt(0) < 0x80 && next.charCodeAt(0) >= 0x20 && next.charCodeAt(0) !== 0x7f) {
        out += c + next;
        i++;
      } else {
        out += '\\\\'; // escaped non-ASCII/control: keep the char for the branches below
      }
    } else if (c === '"') {
      out += '\\"';
    } else if (code < 0x20 || code === 0x7f) {
      out += '\\' + code.toString(16).toUpperCase().padStart(2, '0');
    } else if (code >= 0x80) {
      const cp = subject.codePointAt(i)!;
      const chars = String.fromCodePoint(cp);
      for (const b of Buffer.from(chars, 'utf8')) out += '\\' + b.toString(16).toUpperCase().padStart(2, '0');
      i += chars.length - 1;
    } else {
      out += c;
    }
  }
  return out;
}

export interface XfccPair {
  readonly key: string;
  readonly value: string;
}

export class XfccSyntaxError extends Error {
  readonly code = 'XFCC_SYNTAX';
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(`${message} at offset ${offset}`);
    this.name = 'XfccSyntaxError';
    this.offset = offset;
  }
}

const KEY_CHAR = /[A-Za-z0-9_-]/;

/**
 * Strict parser of the syntax above: a list of elements, each the list of its pairs in order
 * (duplicates kept: DNS and URI repeat). A quoted value is returned as written between its quotes,
 * `\x` pairs included (the Subject then equals the RFC 4514 string); a backslash only stops the
 * next character from ending the value. Unquoted values may not contain `"` `,` `;` `=`.
 * Optional whitespace is accepted around the `,` between elements (HTTP list folding).
 */
export function parseXfcc(header: string): XfccPair[][] {
  const elements: XfccPair[][] = [];
  let pairs: XfccPair[] = [];
  let i = 0;
  const n = header.length;
  const skipOws = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  skipOws();
  if (i === n) return elements;
  for (;;) {
    const keyStart = i;
    while (i < n && KEY_CHAR.test(header[i]!)) i++;
    if (i === keyStart) throw new XfccSyntaxError('expected a key', i);
    const key = header.slice(keyStart, i);
    if (header[i] !== '=') throw new XfccSyntaxError(`expected "=" after key ${key}`, i);
    i++;
    let value: string;
    if (header[i] === '"') {
      i++;
      const start = i;
      for (;;) {
        if (i >= n) throw new XfccSyntaxError('unterminated quoted value', start - 1);
        const c = header[i]!;
        if (c === '\\') {
          if (i + 1 >= n) throw new XfccSyntaxError('dangling backslash', i);
          i += 2;
        } else if (c === '"') {
          break;
        } else {
          i++;
        }
      }
      value = header.slice(start, i);
      i++;
    } else {
      const start = i;
      while (i < n && header[i] !== ';' && header[i] !== ',') {
        const c = header[i]!;
        if (c === '"' || c === '=') throw new XfccSyntaxError(`unexpected ${c} in unquoted value`, i);
        i++;
      }
      value = header.slice(start, i);
    }
    pairs.push({ key, value });
    if (i === n) break;
    const sep = header[i];
    if (sep === ';') {
      i++;
    } else {
      skipOws();
      if (i === n) break;
      if (header[i] !== ',') throw new XfccSyntaxError('expected ";" or "," after value', i);
      i++;
      elements.push(pairs);
      pairs = [];
      skipOws();
    }
  }
  elements.push(pairs);
  return elements;
}
