// An Identity as plain data, for tests of pure code (policy, XFCC, headers) that take an
// Identity and never parse a certificate. Tests of parsing build real certificates instead.

import type { Identity } from '../../src/identity/types.js';

export const FIXTURE_FINGERPRINT = 'e0f3c8ce5e2ea305f0701ff512e36e2e97928284a228bcf77332d33930a1b6fd';

export function identityFixture(fields: Partial<Identity> = {}): Identity {
  return {
    subject: 'CN=client',
    cn: [],
    o: [],
    ou: [],
    dns: [],
    uri: [],
    email: [],
    ip: [],
    spiffe: undefined,
    fingerprint: FIXTURE_FINGERPRINT,
    serial: '1',
    issuer: 'CN=ca',
    notBefore: new Date(0),
    notAfter: new Date(0),
    keyType: 'EC',
    keyBits: 256,
    curve: 'P-256',
    sigAlg: 'ecdsa-with-SHA256',
    authorityKeyId: undefined,
    isCA: false,
    eku: [],
    ocspUrls: [],
    crlUrls: [],
    der: new Uint8Array(),
    ...fields,
  };
}
