import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { children, DerError, encodeInteger, encodeIntegerHex, encodeOid, encodeTime, encodeTlv, integerHex, oidString, readTlv, timeValue } from '../../src/util/der.js';
import { pemBlocks, pemEncode, splitPem } from '../../src/util/pem.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

describe('PEM', () => {
  it('encodes in 64-column LF lines that OpenSSL-compatible parsers read back', () => {
    const der = new Uint8Array(new X509Certificate(pki.root.certPem).raw);
    const pem = pemEncode(der, 'CERTIFICATE');
    const lines = pem.split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines.at(-2)).toBe('-----END CERTIFICATE-----');
    expect(lines.at(-1)).toBe('');
    for (const l of lines.slice(1, -3)) expect(l).toHaveLength(64);
    expect(new X509Certificate(pem).fingerprint256).toBe(new X509Certificate(pki.root.certPem).fingerprint256);
    expect(pemEncode(der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer, 'CERTIFICATE')).toBe(pem);
  });

  it('splits mixed text into blocks in order, by label, ignoring text between and CRLF line ends', () => {
    const text = `comment\r\n${pki.root.certPem.replace(/\n/g, '\r\n')}junk\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n${pki.intermediate.certPem}`;
    const all = pemBlocks(text);
    expect(all.map((b) => b.label)).toEqual(['CERTIFICATE', 'PRIVATE KEY', 'CERTIFICATE']);
    expect(Buffer.from(all[1]!.der)).toEqual(Buffer.from([0, 0, 0]));
    const certs = splitPem(text, 'CERTIFICATE');
    expect(certs.map((c) => new X509Certificate(c).fingerprint256)).toEqual([pki.root.certPem, pki.intermediate.certPem].map((c) => new X509Certificate(c).fingerprint256));
    expect(pemBlocks(text, 'X509 CRL')).toEqual([]);
    // A BEGIN without its matching END is not a block.
    expect(pemBlocks('-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n')).toEqual([]);
  });
});

describe('DER', () => {
  it('writes what it reads: lengths in every form, integers, OIDs and both time types', () => {
    for (const n of [0, 1, 127, 128, 255, 256, 65_535, 65_536, 1_000_000]) {
      const tlv = encodeTlv(0x04, Buffer.alloc(n, 7));
      const t = readTlv(tlv, 0);
      expect([t.tag, t.end - t.body, t.end]).toEqual([0x04, n, tlv.length]);
    }
    for (const hex of ['0', '1', '7f', '80', 'ff', '100', 'deadbeef', '8'.repeat(40)]) {
      const b = encodeIntegerHex(hex);
      expect(integerHex(b, readTlv(b, 0))).toBe(hex);
      // Non-negative: the top bit of the first content byte is clear.
      expect(b[2]! & 0x80).toBe(0);
    }
    expect(encodeInteger(255n)).toEqual(encodeIntegerHex('ff'));
    expect(() => encodeInteger(-1n)).toThrow(RangeError);
    for (const oid of ['2.5.29.20', '1.2.840.113549.1.1.11', '1.2.840.10045.4.3.2']) {
      const b = encodeOid(oid);
      expect(oidString(b, readTlv(b, 0))).toBe(oid);
    }
    for (const iso of ['2049-12-31T23:59:59.000Z', '2050-01-01T00:00:00.000Z', '1999-06-15T12:30:45.000Z']) {
      const b = encodeTime(new Date(iso));
      expect(b[0]).toBe(iso.startsWith('2050') ? 0x18 : 0x17);
      expect(timeValue(b, readTlv(b, 0)).toISOString()).toBe(iso);
    }
    const seq = encodeTlv(0x30, encodeIntegerHex('1'), encodeOid('2.5.29.20'));
    expect(children(seq, readTlv(seq, 0)).map((c) => c.tag)).toEqual([0x02, 0x06]);
  });

  it('refuses truncated input instead of reading past it', () => {
    const tlv = encodeTlv(0x30, Buffer.alloc(300));
    expect(() => readTlv(tlv.subarray(0, 100), 0)).toThrow(DerError);
    expect(() => readTlv(tlv.subarray(0, 3), 0)).toThrow(DerError);
    expect(() => readTlv(Buffer.from([0x30]), 0)).toThrow(DerError);
  });
});
