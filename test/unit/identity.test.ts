import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AttributeTypeAndValue, AttributeValue, Name as AsnName, RelativeDistinguishedName } from '@peculiar/asn1-x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { escapeDnValue, nameValues, rfc4514 } from '../../src/identity/dn.js';
import { createIdentityCache, fingerprintOf, formatIp, identityFromDer } from '../../src/identity/identity.js';
import { type CryptoKeyPair, webcrypto, x509 } from '../../src/x509.js';

// Certificates are built here, small and local; the shared PKI helper lives in test/helpers/pki.ts.
const subtle = webcrypto.subtle;
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const RSA = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
const ecKeys = (): Promise<CryptoKeyPair> => subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;

type Rdn = Array<[oid: string, value: string, kind?: 'utf8' | 'printable' | 'ia5']>;
/** An X.501 Name from RDNs in encoded order (most general first), exactly as given. */
function asnName(rdns: Rdn[]): x509.Name {
  const name = new AsnName(
    rdns.map(
      (rdn) =>
        new RelativeDistinguishedName(
          rdn.map(([type, v, kind = 'utf8']) => {
            const value =
              kind === 'printable'
                ? new AttributeValue({ printableString: v })
                : kind === 'ia5'
                  ? new AttributeValue({ ia5String: v })
                  : new AttributeValue({ utf8String: v });
            return new AttributeTypeAndValue({ type, value });
          }),
        ),
    ),
  );
  return new x509.Name(AsnConvert.serialize(name));
}

const OID = {
  C: '2.5.4.6',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  L: '2.5.4.7',
  CN: '2.5.4.3',
  UID: '0.9.2342.19200300.100.1.1',
  email: '1.2.840.113549.1.9.1',
  DC: '0.9.2342.19200300.100.1.25',
};

describe('rfc4514', () => {
  it.each([
    ['plain', 'billing-api', 'billing-api'],
    ['comma', 'Acme, Inc.', 'Acme\\, Inc.'],
    ['plus', 'a+b', 'a\\+b'],
    ['quote', 'say "hi"', 'say \\"hi\\"'],
    ['backslash', 'a\\b', 'a\\\\b'],
    ['angle brackets and semicolon', '<a>;b', '\\<a\\>\\;b'],
    ['leading hash', '#ops', '\\#ops'],
    ['hash elsewhere', 'a#b', 'a#b'],
    ['leading and trailing space', ' a ', '\\ a\\ '],
    ['a single space', ' ', '\\ '],
    ['equals is not special', 'a=b', 'a=b'],
    ['NUL', 'a\u0000b', 'a\\00b'],
    ['other controls', 'a\r\nb', 'a\\0D\\0Ab'],
    ['unicode kept', 'Zürich 東京', 'Zürich 東京'],
  ])('escapes a value: %s', (_case, value, expected) => {
    expect(escapeDnValue(value)).toBe(expected);
  });

  it('writes attributes most specific first, as OpenSSL RFC 2253 does, multi-valued RDNs with +, unknown types as #hex', () => {
    const name = asnName([
      [[OID.DC, 'test', 'ia5']],
      [[OID.C, 'US', 'printable']],
      [[OID.O, 'Acme, Inc.']],
      [[OID.OU, 'pay+ments']],
      [[OID.OU, '#ops']],
      [['1.2.3.4', 'x']],
      [
        [OID.CN, 'billing "api"'],
        [OID.UID, 'u1'],
      ],
      [[OID.email, 'ops@acme.test', 'ia5']],
    ]);
    expect(rfc4514(name)).toBe(
      'emailAddress=ops@acme.test,UID=u1+CN=billing \\"api\\",1.2.3.4=#0C0178,OU=\\#ops,OU=pay\\+ments,O=Acme\\, Inc.,C=US,DC=test',
    );
    expect(nameValues(name, 'OU')).toEqual(['pay+ments', '#ops']);
    expect(nameValues(name, 'cn')).toEqual(['billing "api"']);
    expect(nameValues(name, '1.2.3.4')).toEqual(['x']);
    expect(nameValues(name, 'nonsense')).toEqual([]);
  });

  it('reads @peculiar/x509 Names built from JSON', () => {
    expect(rfc4514(new x509.Name([{ C: ['US'] }, { O: ['Acme'] }, { CN: ['a'] }]))).toBe('CN=a,O=Acme,C=US');
  });
});

describe('formatIp', () => {
  const v6 = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/:/g, ''), 'hex'));
  it.each([
    [Uint8Array.from([192, 0, 2, 10]), '192.0.2.10'],
    [v6('2001:0db8:0000:0000:0000:0000:0000:0001'), '2001:db8::1'],
    [v6('2001:0db8:0000:0000:0001:0000:0000:0001'), '2001:db8::1:0:0:1'],
    [v6('2001:0db8:0000:0001:0001:0001:0001:0001'), '2001:db8:0:1:1:1:1:1'],
    [v6('0000:0000:0000:0000:0000:0000:0000:0000'), '::'],
    [v6('0000:0000:0000:0000:0000:0000:0000:0001'), '::1'],
    [v6('fe80:0000:0000:0000:0000:0000:0000:0000'), 'fe80::'],
    [v6('0000:0000:0000:0000:0000:ffff:c000:0201'), '::ffff:192.0.2.1'],
  ])('formats %s as %s', (bytes, text) => {
    expect(formatIp(bytes)).toBe(text);
  });
});

describe('identityFromDer', () => {
  let caKeys: CryptoKeyPair;
  let ca: x509.X509Certificate;
  let caSubject: x509.Name;

  beforeAll(async () => {
    caKeys = await ecKeys();
    caSubject = asnName([
      [[OID.C, 'US', 'printable']],
      [[OID.O, 'Acme, Inc.']],
      [[OID.OU, 'pay+ments']],
      [[OID.OU, '#ops']],
      [[OID.L, 'Zürich']],
      [
        [OID.CN, ' x"y<z>;\\ '],
        [OID.UID, 'u1'],
      ],
    ]);
    ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '80a1b2c3',
      name: caSubject,
      notBefore: new Date('2025-01-02T03:04:05Z'),
      notAfter: new Date('2035-01-02T03:04:05Z'),
      keys: caKeys,
      signingAlgorithm: EC,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.2', '1.3.6.1.5.5.7.3.1']),
        new x509.AuthorityKeyIdentifierExtension('a1b2c3d4'),
        new x509.AuthorityInfoAccessExtension({
          ocsp: ['http://ocsp.acme.test'],
          caIssuers: ['http://ca.acme.test/ca.crt'],
        }),
        new x509.CRLDistributionPointsExtension(['http://crl.acme.test/a.crl', 'http://crl2.acme.test/a.crl']),
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: 'a.example' },
          { type: 'dns', value: '*.b.example' },
          { type: 'url', value: 'https://x.example/a' },
          { type: 'url', value: 'spiffe://acme.test/ns/pay/sa/billing' },
          { type: 'url', value: 'spiffe://acme.test/second' },
          { type: 'email', value: 'ops@acme.test' },
          { type: 'email', value: 'sec@acme.test' },
          { type: 'ip', value: '192.0.2.10' },
          { type: 'ip', value: '2001:db8:0:0:0:0:0:1' },
          { type: 'ip', value: '2001:db8:0:0:1:0:0:1' },
          { type: 'ip', value: '0:0:0:0:0:ffff:c000:201' },
        ]),
      ],
    });
  });

  it('reads every field of an ECDSA P-256 certificate with an odd subject and many SANs', () => {
    const der = new Uint8Array(ca.rawData);
    // The DER INTEGER carries a leading 00 because the high bit of the serial is set.
    expect(Buffer.from(der).toString('hex')).toContain('02050080a1b2c3');
    const id = identityFromDer(der);
    const subject = 'UID=u1+CN=\\ x\\"y\\<z\\>\\;\\\\\\ ,L=Zürich,OU=\\#ops,OU=pay\\+ments,O=Acme\\, Inc.,C=US';
    expect(id).toEqual({
      subject,
      cn: [' x"y<z>;\\ '],
      o: ['Acme, Inc.'],
      ou: ['pay+ments', '#ops'],
      dns: ['a.example', '*.b.example'],
      uri: ['https://x.example/a', 'spiffe://acme.test/ns/pay/sa/billing', 'spiffe://acme.test/second'],
      email: ['ops@acme.test', 'sec@acme.test'],
      ip: ['192.0.2.10', '2001:db8::1', '2001:db8::1:0:0:1', '::ffff:192.0.2.1'],
      spiffe: 'spiffe://acme.test/ns/pay/sa/billing',
      fingerprint: createHash('sha256').update(der).digest('hex'),
      serial: '80a1b2c3',
      issuer: subject,
      notBefore: new Date('2025-01-02T03:04:05Z'),
      notAfter: new Date('2035-01-02T03:04:05Z'),
      keyType: 'EC',
      keyBits: 256,
      curve: 'P-256',
      sigAlg: 'ecdsa-with-SHA256',
      authorityKeyId: 'a1b2c3d4',
      isCA: true,
      eku: ['1.3.6.1.5.5.7.3.2', '1.3.6.1.5.5.7.3.1'],
      ocspUrls: ['http://ocsp.acme.test'],
      crlUrls: ['http://crl.acme.test/a.crl', 'http://crl2.acme.test/a.crl'],
      der,
    });
    expect(id.fingerprint).toBe(new NodeX509(der).fingerprint256.replace(/:/g, '').toLowerCase());
    expect(Object.isFrozen(id)).toBe(true);
    expect(Object.isFrozen(id.dns)).toBe(true);
  });

  it('reads an RSA 2048 leaf issued by the CA, with no optional extensions', async () => {
    const keys = (await subtle.generateKey(RSA, true, ['sign', 'verify'])) as CryptoKeyPair;
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: '01',
      subject: asnName([[[OID.CN, 'billing-api']]]),
      issuer: ca.subjectName,
      notBefore: new Date('2025-06-01T00:00:00Z'),
      notAfter: new Date('2025-06-02T00:00:00Z'),
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
      extensions: [],
    });
    const id = identityFromDer(new Uint8Array(leaf.rawData));
    expect(id).toMatchObject({
      subject: 'CN=billing-api',
      issuer: identityFromDer(new Uint8Array(ca.rawData)).subject,
      cn: ['billing-api'],
      o: [],
      ou: [],
      dns: [],
      uri: [],
      email: [],
      ip: [],
      spiffe: undefined,
      serial: '1',
      keyType: 'RSA',
      keyBits: 2048,
      curve: undefined,
      sigAlg: 'ecdsa-with-SHA384',
      authorityKeyId: undefined,
      isCA: false,
      eku: [],
      ocspUrls: [],
      crlUrls: [],
    });
  });

  it.each([
    ['sha256WithRSAEncryption', RSA, RSA],
    ['sha1WithRSAEncryption', { ...RSA, hash: 'SHA-1' }, { ...RSA, hash: 'SHA-1' }],
    ['sha512WithRSAEncryption', { ...RSA, hash: 'SHA-512' }, { ...RSA, hash: 'SHA-512' }],
    ['ecdsa-with-SHA384', { name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }],
    ['ecdsa-with-SHA512', { name: 'ECDSA', namedCurve: 'P-521' }, { name: 'ECDSA', hash: 'SHA-512' }],
    ['ED25519', { name: 'Ed25519' }, { name: 'Ed25519' }],
  ])('names the signature algorithm %s', async (sigAlg, keyAlg, signingAlgorithm) => {
    const keys = (await subtle.generateKey(keyAlg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=alg', keys, signingAlgorithm });
    const id = identityFromDer(new Uint8Array(cert.rawData));
    expect(id.sigAlg).toBe(sigAlg);
    const expectedKey = {
      RSASSA: { keyType: 'RSA', keyBits: 2048, curve: undefined },
      'P-384': { keyType: 'EC', keyBits: 384, curve: 'P-384' },
      'P-521': { keyType: 'EC', keyBits: 521, curve: 'P-521' },
      Ed25519: { keyType: 'Ed25519', keyBits: 256, curve: undefined },
    }[keyAlg.name === 'ECDSA' ? (keyAlg as { namedCurve: string }).namedCurve : keyAlg.name.split('-')[0]!];
    expect(id).toMatchObject(expectedKey!);
  });

  it('does not throw on an empty subject or an extension that does not decode', async () => {
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: new x509.Name(AsnConvert.serialize(new AsnName())),
      keys: await ecKeys(),
      signingAlgorithm: EC,
      extensions: [
        new x509.Extension('2.5.29.17', false, new Uint8Array([0x01, 0x02, 0x03])),
        new x509.Extension('2.5.29.19', false, new Uint8Array([0xff])),
        new x509.Extension('1.2.3.4.5', false, new Uint8Array([0x05, 0x00])),
      ],
    });
    const id = identityFromDer(new Uint8Array(cert.rawData));
    expect(id).toMatchObject({ subject: '', cn: [], dns: [], isCA: false, issuer: '' });
  });

  it('throws on bytes that are not a certificate', () => {
    expect(() => identityFromDer(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]))).toThrow();
  });
});

describe('createIdentityCache', () => {
  it('parses a certificate once and serves it by fingerprint in any common form', async () => {
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=cached',
      keys: await ecKeys(),
      signingAlgorithm: EC,
    });
    const der = new Uint8Array(cert.rawData);
    const cache = createIdentityCache(2);
    const first = cache.get(der);
    expect(cache.get(der)).toBe(first);
    expect(cache.get(der, new NodeX509(der).fingerprint256)).toBe(first);
    expect(cache.size).toBe(1);
    expect(first.fingerprint).toBe(fingerprintOf(der));
  });

  it('evicts the least recently used identity beyond its size', async () => {
    const cache = createIdentityCache(1);
    const ders = await Promise.all(
      ['CN=a', 'CN=b'].map(async (name) =>
        new Uint8Array(
          (await x509.X509CertificateGenerator.createSelfSigned({ name, keys: await ecKeys(), signingAlgorithm: EC }))
            .rawData,
        ),
      ),
    );
    const a = cache.get(ders[0]!);
    cache.get(ders[1]!);
    expect(cache.size).toBe(1);
    expect(cache.get(ders[0]!)).not.toBe(a);
    expect(cache.get(ders[0]!)).toEqual(a);
  });
});
