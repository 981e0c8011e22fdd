// A minimal DER reader for the one structure that must be fast: a CRL with 100,000 entries is
// walked in milliseconds here, where a generic ASN.1 object mapper takes seconds. Reads only;
// lengths are checked against the buffer so a truncated or hostile CRL throws, never overreads.

export interface Tlv {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly body: number;
  /** Offset just past the content. */
  readonly end: number;
}

export class DerError extends Error {
  readonly code = 'CERTGATE_DER_INVALID';
}

export function readTlv(buf: Uint8Array, at: number, limit = buf.length): Tlv {
  if (at + 2 > limit) throw new DerError('truncated DER');
  const tag = buf[at]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  let len = buf[at + 1]!;
  let body = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError('unsupported DER length');
    if (body + n > limit) throw new DerError('truncated DER');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[body + i]!;
    body += n;
  }
  const end = body + len;
  if (end > limit) throw new DerError('truncated DER');
  return { tag, start: at, body, end };
}

/** The children of a constructed TLV. */
export function children(buf: Uint8Array, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = t.body; at < t.end; ) {
    const c = readTlv(buf, at, t.end);
    out.push(c);
    at = c.end;
  }
  return out;
}

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) throw new DerError(`${what}: unexpected structure`);
  return t;
}

/** INTEGER as canonical hex (lowercase, no leading zeros): the serial contract. */
export function integerHex(buf: Uint8Array, t: Tlv): string {
  let i = t.body;
  while (i < t.end - 1 && buf[i] === 0) i++;
  let s = Buffer.from(buf.buffer, buf.byteOffset + i, t.end - i).toString('hex').replace(/^0+/, '');
  if (s === '') s = '0';
  return s;
}

export function oidString(buf: Uint8Array, t: Tlv): string {
  const parts: number[] = [];
  let v = 0;
  for (let i = t.body; i < t.end; i++) {
    const b = buf[i]!;
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

/** UTCTime (0x17) or GeneralizedTime (0x18), Zulu. */
export function timeValue(buf: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(buf.buffer, buf.byteOffset + t.body, t.end - t.body).toString('latin1');
  let m: RegExpMatchArray | null;
  if (t.tag === 0x17 && (m = s.match(/^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?Z$/))) {
    const yy = Number(m[1]);
    return new Date(Date.UTC(yy < 50 ? 2000 + yy : 1900 + yy, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)));
  }
  if (t.tag === 0x18 && (m = s.match(/^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(?:\.\d+)?Z$/))) {
    return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  throw new DerError(`invalid time ${JSON.stringify(s)}`);
}

export function slice(buf: Uint8Array, t: Tlv): Uint8Array {
  return buf.subarray(t.start, t.end);
}

export function content(buf: Uint8Array, t: Tlv): Uint8Array {
  return buf.subarray(t.body, t.end);
}

// ---------------------------------------------------------------------------------------------
// Writer

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV whose content is the concatenation of `content` (one copy, no intermediate buffers). */
export function encodeTlv(tag: number, ...content: Buffer[]): Buffer {
  let len = 0;
  for (const c of content) len += c.length;
  const head = encodeLength(len);
  const out = Buffer.allocUnsafe(1 + head.length + len);
  out[0] = tag;
  head.copy(out, 1);
  let at = 1 + head.length;
  for (const c of content) at += c.copy(out, at);
  return out;
}

export function encodeInteger(v: bigint): Buffer {
  if (v < 0n) throw new RangeError('negative integer');
  return encodeIntegerHex(v.toString(16));
}

/** Non-negative INTEGER from canonical hex (no leading zeros). */
export function encodeIntegerHex(hex: string): Buffer {
  const even = hex.length % 2 ? '0' + hex : hex;
  // A leading 00 keeps the value positive when its top bit is set.
  const padded = /^[89a-f]/.test(even) ? '00' + even : even;
  return encodeTlv(0x02, Buffer.from(padded, 'hex'));
}

export function encodeOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [arcs[0]! * 40 + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk: number[] = [];
    for (let v = arc; ; v = Math.floor(v / 128)) {
      chunk.unshift((v & 0x7f) | (chunk.length ? 0x80 : 0));
      if (v < 128) break;
    }
    out.push(...chunk);
  }
  return encodeTlv(0x06, Buffer.from(out));
}

/** RFC 5280: UTCTime through 2049, GeneralizedTime from 2050; always Zulu, whole seconds. */
export function encodeTime(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return encodeTlv(0x17, Buffer.from(digits.slice(2) + 'Z', 'latin1'));
  return encodeTlv(0x18, Buffer.from(digits + 'Z', 'latin1'));
}
