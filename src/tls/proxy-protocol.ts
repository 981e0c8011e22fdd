// The PROXY protocol header a TCP load balancer puts in front of the client's bytes
// (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt): version 1 (one text line) and
// version 2 (binary). Pure: the listener hands it everything buffered so far and learns whether a
// header is complete, still arriving, absent or invalid. Only the source address is used; the
// destination and the TLVs are checked for framing and otherwise ignored.

import { BlockList, isIP } from 'node:net';

/** The client's address as the header gives it (or as the socket does, without a header). */
export interface ClientAddress {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

export type ProxyParse =
  | { readonly state: 'incomplete' }
  | { readonly state: 'absent' }
  | { readonly state: 'invalid'; readonly reason: string }
  | {
      readonly state: 'header';
      readonly version: 1 | 2;
      /** Bytes the header takes; what follows is the client's own (a TLS ClientHello). */
      readonly length: number;
      /** Undefined for v1 UNKNOWN, v2 LOCAL and v2 without an IP address: the socket's address applies. */
      readonly source: ClientAddress | undefined;
    };

/** The spec's longest v1 line, CRLF included. */
export const V1_MAX_LENGTH = 107;
/** Address block and TLVs of a v2 header; real balancers send well under this (the spec allows 64 KiB). */
export const V2_MAX_BODY = 4096;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;

const INCOMPLETE: ProxyParse = { state: 'incomplete' };
const ABSENT: ProxyParse = { state: 'absent' };
const invalid = (reason: string): ProxyParse => ({ state: 'invalid', reason });

/** Reads a PROXY header at the start of `buf` (all bytes received so far). */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (startsWithOrPrefix(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf);
  if (startsWithOrPrefix(buf, V2_SIGNATURE)) return buf.length < V2_FIXED ? INCOMPLETE : parseV2(buf);
  return ABSENT;
}

/**
 * Whether `buf` opens with a PROXY header signature (`PROXY ` or the v2 one): undefined while too
 * few bytes have arrived to tell. What a peer that may not send a header is checked with.
 */
export function startsWithProxySignature(buf: Buffer): boolean | undefined {
  for (const sig of [V1_PREFIX, V2_SIGNATURE]) {
    if (startsWithOrPrefix(buf, sig)) return buf.length >= sig.length ? true : undefined;
  }
  return false;
}

/** `buf` starts with `sig`, or is a non-empty beginning of it. */
function startsWithOrPrefix(buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length);
  return n > 0 && buf.compare(sig, 0, n, 0, n) === 0;
}

// --- v1: "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n" -------------------------------------

function parseV1(buf: Buffer): ProxyParse {
  const end = buf.indexOf(0x0a);
  if (end < 0 || end >= V1_MAX_LENGTH) return buf.length >= V1_MAX_LENGTH ? invalid('v1 header longer than 107 bytes') : INCOMPLETE;
  if (buf[end - 1] !== 0x0d) return invalid('v1 header not ended by CRLF');
  const line = buf.toString('latin1', V1_PREFIX.length, end - 1);
  const parts = line.split(' ');
  const proto = parts[0];
  // UNKNOWN may carry anything up to the CRLF; the connection's own address applies.
  if (proto === 'UNKNOWN') return { state: 'header', version: 1, length: end + 1, source: undefined };
  if (proto !== 'TCP4' && proto !== 'TCP6') return invalid(`v1 protocol must be TCP4, TCP6 or UNKNOWN`);
  if (parts.length !== 5) return invalid('v1 header must have source, destination and two ports');
  const family = proto === 'TCP4' ? 4 : 6;
  const [, src, dst, sport, dport] = parts as [string, string, string, string, string];
  if (isIP(src) !== family || isIP(dst) !== family) return invalid(`v1 addresses must be IPv${family}`);
  const port = v1Port(sport);
  if (port === undefined || v1Port(dport) === undefined) return invalid('v1 ports must be decimal numbers from 0 to 65535');
  const address = family === 4 ? src : formatIPv6(ipv6Bytes(src));
  return { state: 'header', version: 1, length: end + 1, source: { address, port, family: family === 4 ? 'IPv4' : 'IPv6' } };
}

function v1Port(s: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

// --- v2: signature, version/command, family/transport, length, addresses, TLVs ---------------

const CMD_LOCAL = 0x0;
const CMD_PROXY = 0x1;
const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;
const STREAM = 0x1;
const ADDRESS_LENGTH: Record<number, number> = { [AF_INET]: 12, [AF_INET6]: 36, [AF_UNIX]: 216 };

function parseV2(buf: Buffer): ProxyParse {
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return invalid(`v2 version must be 2, got ${verCmd >> 4}`);
  const command = verCmd & 0x0f;
  if (command !== CMD_LOCAL && command !== CMD_PROXY) return invalid(`v2 command must be LOCAL or PROXY, got ${command}`);
  const family = buf[13]! >> 4;
  const transport = buf[13]! & 0x0f;
  const bodyLength = buf.readUInt16BE(14);
  if (bodyLength > V2_MAX_BODY) return invalid(`v2 header longer than ${V2_MAX_BODY} bytes after its fixed part (${bodyLength})`);
  const length = V2_FIXED + bodyLength;
  if (buf.length < length) return INCOMPLETE;
  // LOCAL: the balancer's own connection (a health check); the protocol block is ignored.
  if (command === CMD_LOCAL) return { state: 'header', version: 2, length, source: undefined };
  if (family > AF_UNIX || transport > 2) return invalid(`v2 unknown address family or transport (0x${buf[13]!.toString(16)})`);
  if (family === AF_UNSPEC) return { state: 'header', version: 2, length, source: undefined };
  if (transport !== STREAM) return invalid('v2 transport must be STREAM (TCP) on this listener');
  const addressLength = ADDRESS_LENGTH[family]!;
  if (bodyLength < addressLength) return invalid(`v2 address block too short (${bodyLength} bytes)`);
  const tlvs = skipTlvs(buf, V2_FIXED + addressLength, length);
  if (tlvs !== undefined) return invalid(tlvs);
  const at = V2_FIXED;
  if (family === AF_INET) {
    const address = `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
    return { state: 'header', version: 2, length, source: { address, port: buf.readUInt16BE(at + 8), family: 'IPv4' } };
  }
  if (family === AF_INET6) {
    const address = formatIPv6(buf.subarray(at, at + 16));
    return { state: 'header', version: 2, length, source: { address, port: buf.readUInt16BE(at + 32), family: 'IPv6' } };
  }
  // AF_UNIX: no IP to speak of; the socket's address applies.
  return { state: 'header', version: 2, length, source: undefined };
}

/** TLVs (type, 16-bit length, value) must fill the rest exactly; their content is not used. */
function skipTlvs(buf: Buffer, from: number, end: number): string | undefined {
  let i = from;
  while (i < end) {
    if (end - i < 3) return 'v2 TLV truncated';
    i += 3 + buf.readUInt16BE(i + 1);
  }
  return i === end ? undefined : 'v2 TLV longer than the header';
}

// --- IPv6 text <-> bytes ----------------------------------------------------------------------

/** 16 bytes of an address that isIP() accepted as IPv6. */
function ipv6Bytes(s: string): Buffer {
  // A dotted IPv4 tail (`::ffff:192.0.2.1`) is two groups.
  const text = s.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
  );
  const [head = '', rest] = text.split('::') as [string, string | undefined];
  const groups = (p: string) => (p === '' ? [] : p.split(':').map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** RFC 5952 text, with IPv4-mapped addresses written as Node writes them (`::ffff:192.0.2.1`). */
export function formatIPv6(b: Buffer): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  // The longest run of two or more zero groups becomes `::` (the first one on a tie).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

// --- trusted peers ----------------------------------------------------------------------------

/** `listen.proxyProtocol.trusted`, compiled: the peers that must (and alone may) send a header. */
export class TrustedPeers {
  readonly #list = new BlockList();

  /** `cidrs` were checked at config load (`10.0.0.0/8`, `::1/128`, or a bare address). */
  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const [net = '', bits] = c.split('/');
      const type = isIP(net) === 6 ? 'ipv6' : 'ipv4';
      this.#list.addSubnet(net, bits === undefined ? (type === 'ipv6' ? 128 : 32) : Number(bits), type);
    }
  }

  /** IPv4-mapped IPv6 addresses (a listener on `::`) match IPv4 networks. */
  has(address: string | undefined): boolean {
    if (address === undefined) return false;
    const v = isIP(address);
    return v !== 0 && this.#list.check(address, v === 6 ? 'ipv6' : 'ipv4');
  }
}
