// The EST wire format against OpenSSL (what existing EST clients are built on), and the small
// pure functions behind the CLI flags and the renewal window.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsr } from '../../src/ca/csr.js';
import { renewalOpensAt } from '../../src/ca/est.js';
import { certsFromPkcs7, certsOnlyBase64, certsOnlyDer } from '../../src/ca/pkcs7.js';
import { parseFraction } from '../../src/ca/renew.js';
import { parseDuration } from '../../src/util/duration.js';
import { CA_ISSUE } from '../../src/cli/commands.js';
import { durationFlag } from '../../src/cli/flags.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let dir: string;

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-wire-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fp = (pem: string) => new X509Certificate(pem).fingerprint256;

describe('PKCS#7 certs-only', () => {
  it('OpenSSL reads the certs-only message certgate sends, with every certificate in order', () => {
    writeFileSync(join(dir, 'out.p7'), certsOnlyDer(pki.caBundlePem));
    const text = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-in', join(dir, 'out.p7'), '-print_certs'], { encoding: 'utf8' });
    const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    expect(pems.map(fp)).toEqual([pki.root.certPem, pki.intermediate.certPem].map(fp));
  });

  it('the base64 EST body decodes with `base64 -d` as it is, and OpenSSL reads the result', () => {
    const der = execFileSync('base64', ['-d'], { input: certsOnlyBase64(pki.caBundlePem) });
    expect(Buffer.compare(der, Buffer.from(certsOnlyDer(pki.caBundlePem)))).toBe(0);
    writeFileSync(join(dir, 'body.p7'), der);
    const text = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-in', join(dir, 'body.p7'), '-print_certs'], { encoding: 'utf8' });
    const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    expect(pems.map(fp)).toEqual([pki.root.certPem, pki.intermediate.certPem].map(fp));
  });

  it('reads a certs-only message OpenSSL made', () => {
    writeFileSync(join(dir, 'bundle.pem'), pki.caBundlePem);
    const der = execFileSync('openssl', ['crl2pkcs7', '-nocrl', '-certfile', join(dir, 'bundle.pem'), '-outform', 'DER']);
    expect(certsFromPkcs7(der.toString('base64')).map(fp)).toEqual([pki.root.certPem, pki.intermediate.certPem].map(fp));
  });
});

describe('PKCS#10 from OpenSSL', () => {
  it('verifies an OpenSSL CSR and reads its subject and SANs', async () => {
    const key = join(dir, 'k.pem');
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
    const csr = execFileSync('openssl', [
      'req', '-new', '-key', key, '-subj', '/OU=payments/CN=billing-api',
      '-addext', 'subjectAltName=URI:spiffe://example.org/ns/prod/sa/billing-api,DNS:billing.internal',
    ], { encoding: 'utf8' });
    const parsed = await parseCsr(csr);
    expect(parsed.names).toMatchObject({
      subject: 'CN=billing-api,OU=payments',
      cn: ['billing-api'],
      ou: ['payments'],
      uri: ['spiffe://example.org/ns/prod/sa/billing-api'],
      dns: ['billing.internal'],
      otherAttributes: [],
    });
  });
});

describe('flags and the renewal window', () => {
  it.each([
    ['90s', 90_000],
    ['15m', 900_000],
    ['2h', 7_200_000],
    ['30d', 2_592_000_000],
    ['45', 45_000],
    ['250ms', 250],
  ])('duration %s is %d ms (a bare number means seconds, as --ttl documents)', (s, ms) => {
    expect(parseDuration(s, 's')).toBe(ms);
    expect(durationFlag(CA_ISSUE, 'ttl', s)).toBe(ms);
  });

  it.each(['', '0s', '-5m', '1w', 'soon'])('refuses the duration "%s"', (s) => expect(() => durationFlag(CA_ISSUE, 'ttl', s)).toThrow());

  it.each([
    ['2/3', 2 / 3],
    ['0.7', 0.7],
    ['70%', 0.7],
    ['1', undefined],
    ['3/2', undefined],
    ['x', undefined],
  ])('fraction %s is %s', (s, v) => expect(parseFraction(s)).toBe(v));

  it('opens the renewal window at the wider of renewWindowDays and renewWindowFraction', () => {
    const DAY = 86_400_000;
    const nb = new Date(0);
    const na = new Date(30 * DAY);
    expect(renewalOpensAt(nb, na, { renewWindowDays: 10, renewWindowFraction: 0.1 })).toBe(20 * DAY);
    expect(renewalOpensAt(nb, na, { renewWindowDays: 1, renewWindowFraction: 0.5 })).toBe(15 * DAY);
    expect(renewalOpensAt(nb, na, { renewWindowDays: 0, renewWindowFraction: 0 })).toBe(30 * DAY);
  });
});
