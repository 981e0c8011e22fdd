// Headers to the backend. Whatever the client sent about identity or forwarding is dropped and
// ours is set (Envoy's SANITIZE_SET, the default `headers.xfccMode`): the backend learns identity
// only from the verified certificate, or the API key's name. The identity headers of a certificate
// (XFCC, x-client-cert-*, RFC 9440, Traefik) are rendered once and reused per request.

import type { TLSSocket } from 'node:tls';
import type { MatcherSpec } from '../config/types.js';
import type { Identity } from '../identity/types.js';
import { compileMatcher, type IdentityMatcher } from '../policy/compile.js';
import { presentedChain, rfc9440Headers, TRAEFIK_CERT, TRAEFIK_INFO, traefikInfo, traefikPem, type TraefikInfoField } from './cert-headers.js';
import { XFCC_HEADER, xfccElement, xfccOptions } from './xfcc.js';

export type XfccMode = 'sanitize' | 'sanitize_set' | 'append_forward' | 'forward_only';

export interface HeaderSettings {
  readonly xfcc: boolean;
  /** Lowercase, ends with '-', e.g. 'x-client-cert-'. */
  readonly prefix: string;
  readonly forwarded: boolean;
  /** Default: sanitize_set, or sanitize with `xfcc: false`. */
  readonly xfccMode?: XfccMode | undefined;
  /** XFCC keys to set (Envoy's set_current_client_cert_details). Default: Hash, Subject, URI, DNS. */
  readonly xfccDetails?: readonly string[];
  /** Clients whose own XFCC append_forward and forward_only keep. */
  readonly trustedProxies?: readonly MatcherSpec[];
  readonly rfc9440?: boolean;
  readonly traefik?: { readonly pem: boolean; readonly info: readonly TraefikInfoField[] } | undefined;
}

/** What a request adds to the upstream headers for its client; made once per certificate or key name. */
export interface IdentityHeaders {
  /** Flat [name, value, ...] list appended to the request. */
  readonly list: readonly string[];
  /** A trusted proxy under append_forward / forward_only: its own XFCC is kept... */
  readonly keepClientXfcc: boolean;
  /** ...and this element appended to it (append_forward), if any. */
  readonly xfcc: string | undefined;
  /** Names removed from the client's headers besides the fixed ones (the API key headers). */
  readonly drop: ReadonlySet<string> | undefined;
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
  // The other certificate header formats: removed whether or not certgate sets them.
  'client-cert',
  'client-cert-chain',
  TRAEFIK_CERT,
  TRAEFIK_INFO,
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

export function xfccModeOf(s: HeaderSettings): XfccMode {
  return s.xfccMode ?? (s.xfcc ? 'sanitize_set' : 'sanitize');
}

const DEFAULT_DETAILS = ['Hash', 'Subject', 'URI', 'DNS'];

/** Where a certificate's extra material comes from: certgate's own URI SAN (By), the presented chain. */
export interface RenderInputs {
  readonly by?: string | readonly string[] | undefined;
  /** The presented intermediates; read only when a format needs them. */
  readonly chain?: () => readonly Uint8Array[];
  /** The client is a trusted proxy (headers.trustedProxies). */
  readonly trustedProxy?: boolean;
}

/**
 * Our XFCC element, or undefined when the mode sets none: sanitize never does; forward_only passes
 * a trusted proxy's XFCC on untouched and strips anybody else's (Envoy sets none in that mode).
 */
function ourXfcc(id: Identity, s: HeaderSettings, mode: XfccMode, inputs: RenderInputs): string | undefined {
  if (mode === 'sanitize' || mode === 'forward_only') return undefined;
  const details = s.xfccDetails ?? DEFAULT_DETAILS;
  const chain = details.includes('Chain') ? inputs.chain?.() : undefined;
  return headerSafe(xfccElement(id, xfccOptions(details, inputs.by, chain)));
}

/** The identity headers for one certificate, as a flat [name, value, ...] list (XFCC kept apart when forwarding). */
export function renderIdentityHeaders(id: Identity, s: HeaderSettings, inputs: RenderInputs = {}): string[] {
  return renderFor(id, s, inputs).list as string[];
}

function renderFor(id: Identity, s: HeaderSettings, inputs: RenderInputs, drop?: ReadonlySet<string>): IdentityHeaders {
  const out: string[] = [];
  const mode = xfccModeOf(s);
  const trusted = inputs.trustedProxy === true && (mode === 'append_forward' || mode === 'forward_only');
  const xfcc = ourXfcc(id, s, mode, inputs);
  if (xfcc !== undefined && !trusted) out.push(XFCC_HEADER, xfcc);
  let chain: readonly Uint8Array[] | undefined;
  const chainOf = () => (chain ??= inputs.chain?.() ?? []);
  if (s.rfc9440 === true) out.push(...rfc9440Headers(id, chainOf()));
  if (s.traefik !== undefined) {
    if (s.traefik.pem) out.push(TRAEFIK_CERT, traefikPem(id, chainOf()));
    if (s.traefik.info.length > 0) out.push(TRAEFIK_INFO, traefikInfo(id, chainOf(), new Set(s.traefik.info)));
  }
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
  return Object.freeze({ list: Object.freeze(out), keepClientXfcc: trusted, xfcc: trusted ? xfcc : undefined, drop });
}

const NO_HEADERS: IdentityHeaders = Object.freeze({ list: Object.freeze([]), keepClientXfcc: false, xfcc: undefined, drop: undefined });

export interface ExtraHeaderSettings {
  /** apiKeys: its header is removed from every request, forwardHeader carries the key's name. */
  readonly apiKeys?: { readonly header: string; readonly forwardHeader: string } | undefined;
  /** certgate's own URI SANs, for XFCC By. */
  readonly by?: string | readonly string[] | undefined;
}

/** Renders once per (certificate, settings); settings change only with a new Runtime. */
export class IdentityHeaderCache {
  readonly #settings: HeaderSettings;
  readonly #cache = new WeakMap<Identity, IdentityHeaders>();
  readonly #byKey = new Map<string, IdentityHeaders>();
  readonly #trusted: readonly IdentityMatcher[];
  readonly #drop: ReadonlySet<string> | undefined;
  readonly #anonymous: IdentityHeaders;
  readonly #extra: ExtraHeaderSettings;
  constructor(settings: HeaderSettings, extra: ExtraHeaderSettings = {}) {
    this.#settings = settings;
    this.#extra = extra;
    this.#trusted = (settings.trustedProxies ?? []).map(compileMatcher);
    const k = extra.apiKeys;
    this.#drop = k !== undefined ? new Set([k.header, k.forwardHeader]) : undefined;
    this.#anonymous = this.#drop === undefined ? NO_HEADERS : Object.freeze({ ...NO_HEADERS, drop: this.#drop });
  }

  /** A certificate's headers; `socket` is read (for the presented chain) only on first render. */
  get(id: Identity, socket?: TLSSocket): IdentityHeaders {
    let h = this.#cache.get(id);
    if (h === undefined) {
      const inputs: RenderInputs = { by: this.#extra.by, chain: () => presentedChain(socket), trustedProxy: this.#trusted.some((m) => m(id)) };
      this.#cache.set(id, (h = renderFor(id, this.#settings, inputs, this.#drop)));
    }
    return h;
  }

  /** A request without a certificate: nothing, or the name of the API key it presented. */
  certless(keyName: string | undefined): IdentityHeaders {
    const k = this.#extra.apiKeys;
    if (keyName === undefined || k === undefined) return this.#anonymous;
    let h = this.#byKey.get(keyName);
    if (h === undefined) this.#byKey.set(keyName, (h = Object.freeze({ ...this.#anonymous, list: Object.freeze([k.forwardHeader, keyName]) })));
    return h;
  }
}

function isOurs(lower: string, prefix: string, drop: ReadonlySet<string> | undefined): boolean {
  if (DROP.has(lower) || lower.startsWith(prefix) || drop?.has(lower) === true) return true;
  // A backend that maps '_' to '-' (CGI, some frameworks) would read these as ours.
  if (lower.includes('_')) {
    const dashed = lower.replace(/_/g, '-');
    return DROP.has(dashed) || dashed.startsWith(prefix) || drop?.has(dashed) === true;
  }
  return false;
}

/** The client's headers that pass, and what the headers certgate adds depend on. */
interface ClientPart {
  readonly out: string[];
  readonly host: string | undefined;
  readonly hasRequestId: boolean;
  readonly clientXfcc: string | undefined;
}

function identityOf(identity: IdentityHeaders | readonly string[]): IdentityHeaders {
  return isHeaderList(identity) ? { list: identity, keepClientXfcc: false, xfcc: undefined, drop: undefined } : identity;
}

/** Drops hop-by-hop headers, anything named in Connection, and every identity or forwarding header the client sent. */
function clientPart(raw: readonly string[], ih: IdentityHeaders, s: HeaderSettings): ClientPart {
  const out: string[] = [];
  let clientXfcc: string | undefined;
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
    if (isOurs(lower, s.prefix, ih.drop)) {
      // A trusted proxy's XFCC is kept (append_forward, forward_only); several lines are one list.
      if (ih.keepClientXfcc && lower === XFCC_HEADER) clientXfcc = clientXfcc === undefined ? raw[i + 1]! : `${clientXfcc},${raw[i + 1]!}`;
      continue;
    }
    if (connectionTokens !== undefined && connectionTokens.has(lower)) continue;
    if (lower === 'host') host = raw[i + 1];
    else if (lower === 'x-request-id') hasRequestId = true;
    out.push(name, raw[i + 1]!);
  }
  return { out, host, hasRequestId, clientXfcc };
}

/** Appends the forwarding, XFCC and identity headers to `out`. */
function appendOwn(out: string[], c: ClientPart, ih: IdentityHeaders, s: HeaderSettings, clientIp: string): string[] {
  if (s.forwarded) {
    out.push('x-forwarded-for', clientIp, 'x-forwarded-proto', 'https');
    if (c.host !== undefined) out.push('x-forwarded-host', c.host);
  }
  if (ih.keepClientXfcc) {
    const xfcc = c.clientXfcc === undefined ? ih.xfcc : ih.xfcc === undefined ? c.clientXfcc : `${c.clientXfcc},${ih.xfcc}`;
    if (xfcc !== undefined) out.push(XFCC_HEADER, xfcc);
  }
  const list = ih.list;
  for (let i = 0; i < list.length; i++) out.push(list[i]!);
  return out;
}

/**
 * Builds the upstream header list from the client's raw headers: drops hop-by-hop headers,
 * anything named in Connection, and every identity or forwarding header the client sent;
 * then appends forwarding and identity headers. Returns a flat [name, value, ...] array.
 */
export function upstreamHeaders(
  raw: readonly string[],
  identity: IdentityHeaders | readonly string[],
  s: HeaderSettings,
  clientIp: string,
  requestId: string,
): string[] {
  const ih = identityOf(identity);
  const c = clientPart(raw, ih, s);
  const out = c.out;
  if (!c.hasRequestId) out.push('x-request-id', requestId);
  return appendOwn(out, c, ih, s, clientIp);
}

/**
 * upstreamHeaders as the header lines of an HTTP/1.1 head (`name: value\r\n` each, same order),
 * around the one line that differs per request: the x-request-id certgate adds when the client
 * sent none.
 */
export interface UpstreamLines {
  /** The client's headers that pass (its own x-request-id among them, if it sent one). */
  readonly client: string;
  /** Forwarding, XFCC and identity lines. */
  readonly own: string;
  /** The client sent x-request-id: certgate adds none. */
  readonly hasRequestId: boolean;
  /** A Host line is among them (else the upstream target's is added). */
  readonly hasHost: boolean;
}

function linesOf(list: readonly string[]): string {
  let text = '';
  for (let i = 0; i < list.length; i += 2) text += list[i]! + ': ' + list[i + 1]! + '\r\n';
  return text;
}

export function upstreamLines(raw: readonly string[], identity: IdentityHeaders | readonly string[], s: HeaderSettings, clientIp: string): UpstreamLines {
  const ih = identityOf(identity);
  const c = clientPart(raw, ih, s);
  const own = appendOwn([], c, ih, s, clientIp);
  // The client's Host was found while filtering; among certgate's own, only a configured name could be one.
  const hasHost = c.host !== undefined || own.some((name, i) => i % 2 === 0 && name.toLowerCase() === 'host');
  return { client: linesOf(c.out), own: linesOf(own), hasRequestId: c.hasRequestId, hasHost };
}

/**
 * A connection's last request headers and their upstream lines. A client sends the same headers
 * on every request of a connection, so the lines are filtered and rendered once and reused while
 * the headers, the identity, the settings and the address are the same; any difference in any
 * header renders them anew, so what is dropped or added never depends on an earlier request.
 */
export class UpstreamLinesMemo {
  #raw: readonly string[] = [];
  #identity: IdentityHeaders | readonly string[] | undefined = undefined;
  #settings: HeaderSettings | undefined = undefined;
  #clientIp = '';
  #lines: UpstreamLines | undefined = undefined;

  get(raw: readonly string[], identity: IdentityHeaders | readonly string[], s: HeaderSettings, clientIp: string): UpstreamLines {
    const last = this.#lines;
    if (last !== undefined && identity === this.#identity && s === this.#settings && clientIp === this.#clientIp && sameList(raw, this.#raw)) return last;
    const lines = upstreamLines(raw, identity, s, clientIp);
    // A copy: the key must be what the lines were made from, whoever holds the request's list.
    this.#raw = raw.slice();
    this.#identity = identity;
    this.#settings = s;
    this.#clientIp = clientIp;
    this.#lines = lines;
    return lines;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isHeaderList(x: IdentityHeaders | readonly string[]): x is readonly string[] {
  return Array.isArray(x);
}
