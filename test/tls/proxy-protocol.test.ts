// The PROXY protocol header parser (src/tls/proxy-protocol.ts): v1 text and v2 binary, what is
// accepted, what is refused, and that a header arriving in pieces is read the same as whole.
import { describe, expect, it } from 'vitest';
import {
  formatIPv6, parseProxyHeader, startsWithProxySignature, TrustedPeers, V1_MAX_LENGTH, V2_MAX_BODY, type ProxyParse,
} from '../../src/tls/proxy-protocol.js';

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const v1 = (line: string) => Buffer.from(line, 'latin1');

/** A v2 header: version/command byte, family/transport byte, then the body (addresses, TLVs). */
function v2(verCmd: number, famProto: number, body: Buffer, declaredLength = body.length): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(declaredLength);
  return Buffer.concat([SIG, Buffer.from([verCmd, famProto]), len, body]);
}
function inet(src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  src.split('.').forEach((x, i) => (b[i] = Number(x)));
  dst.split('.').forEach((x, i) => (b[4 + i] = Number(x)));
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}
function inet6(src: Buffer, dst: Buffer, sport: number, dport: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt16BE(sport, 0);
  p.writeUInt16BE(dport, 2);
  return Buffer.concat([src, dst, p]);
}
function tlv(type: number, value: Buffer): Buffer {
  const h = Buffer.from([type, 0, 0]);
  h.writeUInt16BE(value.length, 1);
  return Buffer.concat([h, value]);
}
const hex = (s: string) => Buffer.from(s.replace(/[^0-9a-f]/gi, ''), 'hex');
const CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);

function header(r: ProxyParse) {
  if (r.state !== 'header') throw new Error(`expected a header, got ${JSON.stringify(r)}`);
  return r;
}

describe('PROXY protocol v1', () => {
  it.each([
    ['TCP4', 'PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n', { address: '192.0.2.10', port: 56324, family: 'IPv4' }],
    ['TCP6', 'PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n', { address: '2001:db8::7', port: 40000, family: 'IPv6' }],
    ['TCP6, written long (normalised)', 'PROXY TCP6 2001:0db8:0000:0000:0000:0000:0000:0007 ::1 1 443\r\n', { address: '2001:db8::7', port: 1, family: 'IPv6' }],
    ['TCP6, IPv4-mapped', 'PROXY TCP6 ::ffff:192.0.2.5 ::1 65535 443\r\n', { address: '::ffff:192.0.2.5', port: 65535, family: 'IPv6' }],
    ['port 0', 'PROXY TCP4 192.0.2.10 198.51.100.1 0 443\r\n', { address: '192.0.2.10', port: 0, family: 'IPv4' }],
  ])('reads the source of a %s header', (_name, line, source) => {
    const r = header(parseProxyHeader(Buffer.concat([v1(line), CLIENT_HELLO])));
    expect(r).toEqual({ state: 'header', version: 1, length: line.length, source });
  });

  it('reads UNKNOWN (with or without addresses) as a header with no source: the socket address applies', () => {
    for (const line of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n']) {
      expect(parseProxyHeader(v1(line))).toEqual({ state: 'header', version: 1, length: line.length, source: undefined });
    }
  });

  it('accepts the longest header the spec allows (107 bytes) and refuses anything longer', () => {
    const addr = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    // The spec's own worst case; the same line with TCP6 is 3 bytes shorter.
    const longest = `PROXY UNKNOWN ${addr} ${addr} 65535 65535\r\n`;
    expect(longest.length).toBe(V1_MAX_LENGTH);
    expect(header(parseProxyHeader(v1(longest))).length).toBe(107);
    expect(header(parseProxyHeader(v1(`PROXY TCP6 ${addr} ${addr} 65535 65535\r\n`))).source?.address).toBe(addr);
    expect(parseProxyHeader(v1(`PROXY UNKNOWN ${addr} ${addr} 65535 655350\r\n`)).state).toBe('invalid');
    expect(parseProxyHeader(v1(`PROXY UNKNOWN ${'x'.repeat(200)}\r\n`))).toMatchObject({ state: 'invalid', reason: expect.stringContaining('107') });
    // Without a line end, 107 bytes are enough to know.
    expect(parseProxyHeader(v1(`PROXY TCP4 ${'1'.repeat(96)}`))).toMatchObject({ state: 'invalid' });
    expect(parseProxyHeader(v1(`PROXY TCP4 ${'1'.repeat(95)}`))).toEqual({ state: 'incomplete' });
  });

  it.each([
    ['a bare LF', 'PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\n'],
    ['an unknown protocol', 'PROXY UDP4 192.0.2.10 198.51.100.1 56324 443\r\n'],
    ['a missing port', 'PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n'],
    ['an extra field', 'PROXY TCP4 192.0.2.10 198.51.100.1 56324 443 x\r\n'],
    ['double spaces', 'PROXY TCP4  192.0.2.10 198.51.100.1 56324 443\r\n'],
    ['an IPv6 address in TCP4', 'PROXY TCP4 2001:db8::7 198.51.100.1 56324 443\r\n'],
    ['an IPv4 address in TCP6', 'PROXY TCP6 192.0.2.10 2001:db8::1 56324 443\r\n'],
    ['a bad address', 'PROXY TCP4 192.0.2.300 198.51.100.1 56324 443\r\n'],
    ['a port above 65535', 'PROXY TCP4 192.0.2.10 198.51.100.1 65536 443\r\n'],
    ['a port with a leading zero', 'PROXY TCP4 192.0.2.10 198.51.100.1 056324 443\r\n'],
    ['a signed port', 'PROXY TCP4 192.0.2.10 198.51.100.1 +5 443\r\n'],
    ['lower case', 'PROXY tcp4 192.0.2.10 198.51.100.1 56324 443\r\n'],
  ])('refuses %s', (_name, line) => {
    expect(parseProxyHeader(v1(line)).state).toBe('invalid');
  });
});

describe('PROXY protocol v2', () => {
  it('reads the source of a PROXY TCP4 header, and how long it is', () => {
    const h = v2(0x21, 0x11, inet('192.0.2.10', '198.51.100.1', 56324, 443));
    expect(parseProxyHeader(Buffer.concat([h, CLIENT_HELLO]))).toEqual({
      state: 'header', version: 2, length: 28, source: { address: '192.0.2.10', port: 56324, family: 'IPv4' },
    });
  });

  it('reads the source of a PROXY TCP6 header', () => {
    const h = v2(0x21, 0x21, inet6(hex('2001 0db8 0000 0000 0000 0000 0000 0007'), hex('0'.repeat(31) + '1'), 40000, 443));
    expect(parseProxyHeader(h)).toEqual({ state: 'header', version: 2, length: 52, source: { address: '2001:db8::7', port: 40000, family: 'IPv6' } });
  });

  it('skips TLVs (any type, including ones it does not know) and counts them in the length', () => {
    const tlvs = Buffer.concat([tlv(0x01, Buffer.from('h2')), tlv(0x05, Buffer.alloc(16, 7)), tlv(0xea, Buffer.from('vpce-0123456789')), tlv(0x04, Buffer.alloc(0))]);
    const h = v2(0x21, 0x11, Buffer.concat([inet('203.0.113.9', '10.0.0.1', 1234, 443), tlvs]));
    const r = header(parseProxyHeader(Buffer.concat([h, CLIENT_HELLO])));
    expect(r.source).toEqual({ address: '203.0.113.9', port: 1234, family: 'IPv4' });
    expect(r.length).toBe(h.length);
  });

  it('reads LOCAL as a header with no source, whatever its address block says', () => {
    for (const famProto of [0x00, 0x11, 0x21]) {
      const h = v2(0x20, famProto, famProto === 0 ? Buffer.alloc(0) : inet('192.0.2.1', '192.0.2.2', 1, 2));
      expect(parseProxyHeader(h)).toEqual({ state: 'header', version: 2, length: h.length, source: undefined });
    }
  });

  it('reads PROXY with an unspecified family, or a UNIX one, as a header with no source', () => {
    expect(header(parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0)))).source).toBeUndefined();
    expect(header(parseProxyHeader(v2(0x21, 0x31, Buffer.alloc(216)))).source).toBeUndefined();
  });

  it('refuses a body longer than the bound as soon as the length field arrives', () => {
    const h = v2(0x21, 0x11, Buffer.alloc(0), V2_MAX_BODY + 1);
    expect(parseProxyHeader(h)).toMatchObject({ state: 'invalid', reason: expect.stringContaining(String(V2_MAX_BODY)) });
    const atBound = v2(0x21, 0x11, Buffer.concat([inet('192.0.2.1', '192.0.2.2', 1, 2), tlv(0x04, Buffer.alloc(V2_MAX_BODY - 12 - 3))]));
    expect(header(parseProxyHeader(atBound)).length).toBe(16 + V2_MAX_BODY);
  });

  it.each([
    ['version 1 in the binary form', v2(0x11, 0x11, inet('192.0.2.1', '192.0.2.2', 1, 2))],
    ['an unknown command', v2(0x22, 0x11, inet('192.0.2.1', '192.0.2.2', 1, 2))],
    ['UDP', v2(0x21, 0x12, inet('192.0.2.1', '192.0.2.2', 1, 2))],
    ['an unknown family', v2(0x21, 0x41, inet('192.0.2.1', '192.0.2.2', 1, 2))],
    ['an address block shorter than TCP4 needs', v2(0x21, 0x11, Buffer.alloc(8))],
    ['an address block shorter than TCP6 needs', v2(0x21, 0x21, Buffer.alloc(12))],
    ['a TLV running past the header', v2(0x21, 0x11, Buffer.concat([inet('192.0.2.1', '192.0.2.2', 1, 2), Buffer.from([0x01, 0x00, 0x09, 0x61])]))],
    ['a truncated TLV header', v2(0x21, 0x11, Buffer.concat([inet('192.0.2.1', '192.0.2.2', 1, 2), Buffer.from([0x01, 0x00])]))],
  ])('refuses %s', (_name, h) => {
    expect(parseProxyHeader(h).state).toBe('invalid');
  });
});

describe('arrival in pieces', () => {
  const cases: [string, Buffer][] = [
    ['v1', v1('PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n')],
    ['v2', v2(0x21, 0x11, Buffer.concat([inet('192.0.2.10', '198.51.100.1', 56324, 443), tlv(0x01, Buffer.from('http/1.1'))]))],
  ];

  it.each(cases)('a %s header cut anywhere is incomplete, and whole once every byte is there', (_name, h) => {
    for (let n = 1; n < h.length; n++) expect(parseProxyHeader(h.subarray(0, n)), `first ${n} bytes`).toEqual({ state: 'incomplete' });
    expect(header(parseProxyHeader(h)).source).toEqual({ address: '192.0.2.10', port: 56324, family: 'IPv4' });
  });

  it('says absent for anything else at once: a ClientHello, plain HTTP, garbage', () => {
    for (const b of [CLIENT_HELLO, v1('GET / HTTP/1.1\r\n'), v1('POST /x'), v1('PRI * HTTP/2.0'), Buffer.from([0, 1, 2]), v1('\r\n\r\nxx')]) {
      expect(parseProxyHeader(b)).toEqual({ state: 'absent' });
    }
  });

  it('tells whether bytes open with a signature, and waits while they might', () => {
    expect(startsWithProxySignature(v1('PROXY '))).toBe(true);
    expect(startsWithProxySignature(v1('PROXY TCP4 garbage'))).toBe(true);
    expect(startsWithProxySignature(SIG)).toBe(true);
    expect(startsWithProxySignature(v1('PROX'))).toBeUndefined();
    expect(startsWithProxySignature(SIG.subarray(0, 11))).toBeUndefined();
    expect(startsWithProxySignature(v1('PROPFIND / HTTP/1.1'))).toBe(false);
    expect(startsWithProxySignature(CLIENT_HELLO)).toBe(false);
  });
});

describe('addresses', () => {
  it.each([
    ['0'.repeat(31) + '1', '::1'],
    ['0'.repeat(32), '::'],
    ['2001 0db8 0000 0000 0001 0000 0000 0001', '2001:db8::1:0:0:1'],
    ['2001 0db8 0000 0001 0001 0001 0001 0001', '2001:db8:0:1:1:1:1:1'],
    ['fe80 0000 0000 0000 0000 0000 0000 0000', 'fe80::'],
    ['0000 0000 0000 0000 0000 ffff c000 0205', '::ffff:192.0.2.5'],
    ['2001 0db8 0000 0000 0001 0001 0000 0000', '2001:db8::1:1:0:0'],
  ])('writes %s as %s (RFC 5952)', (bytes, text) => {
    expect(formatIPv6(hex(bytes))).toBe(text);
  });

  it('trusts the listed networks, IPv4-mapped addresses included, and nothing else', () => {
    const t = new TrustedPeers(['10.0.0.0/8', '127.0.0.1', 'fd00::/8', '::1/128']);
    for (const a of ['10.1.2.3', '127.0.0.1', '::ffff:10.9.9.9', '::ffff:127.0.0.1', 'fd12::1', '::1']) expect(t.has(a), a).toBe(true);
    for (const a of ['11.0.0.1', '127.0.0.2', '::2', 'fe80::1', '', undefined]) expect(t.has(a), String(a)).toBe(false);
  });
});
