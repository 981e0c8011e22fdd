import { AsnConvert } from '@peculiar/asn1-schema';
import { AttributeTypeAndValue, AttributeValue, Name as AsnName, RelativeDistinguishedName } from '@peculiar/asn1-x509';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { identityFromDer } from '../../src/identity/identity.js';
import type { Identity } from '../../src/identity/types.js';
import { FIXTURE_FINGERPRINT, identityFixture } from '../helpers/identity.js';
import { parseXfcc, subjectValue, xfccElement } from '../../src/proxy/xfcc.js';
import { type CryptoKeyPair, webcrypto, x509 } from '../../src/x509.js';

const FP = FIXTURE_FINGERPRINT;
const identity = identityFixture;

/** A real certificate whose subject is a single CN (any string) and with the given SANs. */
async function certWith(cn: string, sans: Array<{ type: 'dns' | 'url'; value: string }>): Promise<Identity> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const name = new AsnName([
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: cn }) }),
    ]),
  ]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: new x509.Name(AsnConvert.serialize(name)),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : [],
  });
  return identityFromDer(new Uint8Array(cert.rawData));
}

const pairs = (header: string): Array<[string, string]> => {
  const elements = parseXfcc(header);
  expect(elements).toHaveLength(1);
  return elements[0]!.map((p) => [p.key, p.value]);
};

describe('xfccElement', () => {
  it("writes Envoy's own example byte for byte", () => {
    // Envoy test/integration/xfcc_integration_test.h: subject, URI and DNS of its test client.
    const subject =
      'emailAddress=frontend-team@lyft.com,CN=Test Frontend Team,OU=Lyft Engineering,O=Lyft,L=San Francisco,ST=California,C=US';
    const id = identity({ subject, uri: ['spiffe://lyft.com/frontend-team'], dns: ['lyft.com', 'www.lyft.com'] });
    expect(xfccElement(id, { by: 'spiffe://lyft.com/backend-team' })).toBe(
      `By=spiffe://lyft.com/backend-team;Hash=${FP};Subject="${subject}";URI=spiffe://lyft.com/frontend-team;DNS=lyft.com;DNS=www.lyft.com`,
    );
  });

  it('keeps an empty URI and an empty Subject, as Envoy does', () => {
    expect(xfccElement(identity({ subject: '' }))).toBe(`Hash=${FP};Subject="";URI=`);
  });

  it('leaves out the pairs switched off', () => {
    const id = identity({ uri: ['spiffe://a/b'], dns: ['a.example'] });
    expect(xfccElement(id, { subject: false, uri: false, dns: false })).toBe(`Hash=${FP}`);
    expect(xfccElement(id, { dns: false })).toBe(`Hash=${FP};Subject="CN=client";URI=spiffe://a/b`);
  });

  it('adds the URL-encoded PEM certificate when asked, quoted', async () => {
    const id = await certWith('with-cert', [{ type: 'dns', value: 'a.example' }]);
    const element = xfccElement(id, { cert: true });
    const cert = pairs(element).find(([k]) => k === 'Cert')![1];
    expect(cert).toMatch(/^-----BEGIN%20CERTIFICATE-----%0A[A-Za-z0-9%]+-----END%20CERTIFICATE-----%0A$/);
    const pem = decodeURIComponent(cert);
    expect(new NodeX509(pem).fingerprint256.replace(/:/g, '').toLowerCase()).toBe(id.fingerprint);
    expect(pairs(element).map(([k]) => k)).toEqual(['Hash', 'Cert', 'Subject', 'URI', 'DNS']);
  });

  it.each([
    ['a plain URI stays bare', 'spiffe://acme.test/ns/a/sa/b', 'spiffe://acme.test/ns/a/sa/b'],
    ['a URI with ; is quoted', 'https://a.example/p;x', '"https://a.example/p;x"'],
    ['a URI with = is quoted', 'https://a.example/?q=1', '"https://a.example/?q=1"'],
    ['a URI with , is quoted', 'https://a.example/a,b', '"https://a.example/a,b"'],
    ['a double quote is percent-encoded', 'spiffe://a/"x', 'spiffe://a/%22x'],
    ['a backslash is percent-encoded', 'spiffe://a/\\x', 'spiffe://a/%5Cx'],
    ['whitespace and CR LF are percent-encoded', 'spiffe://a/ x\r\nb', 'spiffe://a/%20x%0D%0Ab'],
    ['non-ASCII is percent-encoded as UTF-8', 'spiffe://a/é😀', 'spiffe://a/%C3%A9%F0%9F%98%80'],
    ['both rules at once', 'x";URI=evil', '"x%22;URI=evil"'],
  ])('writes URI values: %s', (_case, uri, written) => {
    const element = xfccElement(identity({ uri: [uri] }));
    expect(element).toBe(`Hash=${FP};Subject="CN=client";URI=${written}`);
    expect(pairs(element)).toHaveLength(3);
  });

  it.each([
    ['an RFC 4514 string is kept as is', 'CN=a\\,b+UID=1,O=Acme\\, Inc.', 'CN=a\\,b+UID=1,O=Acme\\, Inc.'],
    ['escaped quotes stay escaped once', 'CN=x\\"\\;URI=spiffe://evil', 'CN=x\\"\\;URI=spiffe://evil'],
    ['an escaped backslash before the end', 'CN=a\\\\', 'CN=a\\\\'],
    ['non-ASCII as UTF-8 hex pairs, like OpenSSL RFC 2253', 'L=Zürich,CN=東', 'L=Z\\C3\\BCrich,CN=\\E6\\9D\\B1'],
    ['astral characters', 'CN=😀', 'CN=\\F0\\9F\\98\\80'],
    ['a bare quote (not from rfc4514) is escaped', 'CN=a"b', 'CN=a\\"b'],
    ['a dangling backslash is escaped', 'CN=a\\', 'CN=a\\\\'],
    ['controls become hex pairs', 'CN=a\r\nb', 'CN=a\\0D\\0Ab'],
  ])('writes Subject content: %s', (_case, subject, written) => {
    expect(subjectValue(subject)).toBe(written);
    const element = xfccElement(identity({ subject }));
    expect(element).toBe(`Hash=${FP};Subject="${written}";URI=`);
    expect(pairs(element)).toEqual([
      ['Hash', FP],
      ['Subject', written],
      ['URI', ''],
    ]);
  });
});

describe('XFCC injection', () => {
  it.each([
    ['a quote and a URI pair in the CN', 'x";URI=spiffe://evil'],
    ['a comma and a Hash pair in the CN', 'a,Hash=0000000000000000000000000000000000000000000000000000000000000000'],
    ['a new element in the CN', 'a",By=spiffe://evil;Hash=00;Subject="CN=admin'],
    ['a trailing backslash in the CN', 'a\\'],
    ['backslash then quote in the CN', 'a\\";DNS=evil.example'],
  ])('a certificate cannot add a pair or an element through its subject: %s', async (_case, cn) => {
    const id = await certWith(cn, [
      { type: 'url', value: 'spiffe://acme.test/real' },
      { type: 'dns', value: 'real.example' },
    ]);
    expect(id.cn).toEqual([cn]);
    const element = xfccElement(id, { by: 'spiffe://acme.test/certgate' });
    expect(pairs(element)).toEqual([
      ['By', 'spiffe://acme.test/certgate'],
      ['Hash', id.fingerprint],
      ['Subject', id.subject],
      ['URI', 'spiffe://acme.test/real'],
      ['DNS', 'real.example'],
    ]);
    // Appended to a header from a previous hop, it is still exactly one more element.
    const all = parseXfcc(`Hash=${FP};URI=spiffe://prev,${element}`);
    expect(all).toHaveLength(2);
    expect(all[1]!.map((p) => p.value)).toEqual(pairs(element).map(([, v]) => v));
  });

  it('a certificate cannot add a pair or an element through its SANs', async () => {
    const uri = 'spiffe://acme.test/x;Hash=evil,By=spiffe://evil';
    const dns = 'a.example";DNS=evil.example';
    const id = await certWith('san', [
      { type: 'url', value: uri },
      { type: 'dns', value: dns },
    ]);
    expect(pairs(xfccElement(id))).toEqual([
      ['Hash', id.fingerprint],
      ['Subject', 'CN=san'],
      ['URI', uri],
      ['DNS', 'a.example%22;DNS=evil.example'],
    ]);
  });
});

describe('parseXfcc', () => {
  it('reads several elements, keeping repeated keys in order', () => {
    expect(parseXfcc('By=a;Hash=1;DNS=x;DNS=y, Hash=2;Subject="CN=a\\,b";URI=')).toEqual([
      [
        { key: 'By', value: 'a' },
        { key: 'Hash', value: '1' },
        { key: 'DNS', value: 'x' },
        { key: 'DNS', value: 'y' },
      ],
      [
        { key: 'Hash', value: '2' },
        { key: 'Subject', value: 'CN=a\\,b' },
        { key: 'URI', value: '' },
      ],
    ]);
    expect(parseXfcc('')).toEqual([]);
  });

  it.each([
    ['a key without a value', 'Hash'],
    ['a trailing semicolon', 'Hash=a;'],
    ['an empty pair', 'Hash=a;;URI=b'],
    ['a trailing comma', 'Hash=a,'],
    ['an empty key', '=a'],
    ['an unterminated quote', 'Subject="CN=a'],
    ['a quote closed by an escape', 'Subject="CN=a\\"'],
    ['a dangling backslash', 'Subject="CN=a\\'],
    ['a quote inside a bare value', 'URI=a"b'],
    ['an equals sign inside a bare value', 'URI=a=b'],
    ['text after a closing quote', 'Subject="a"b;Hash=1'],
  ])('refuses %s', (_case, header) => {
    expect(() => parseXfcc(header)).toThrow(expect.objectContaining({ code: 'XFCC_SYNTAX' }));
  });
});
