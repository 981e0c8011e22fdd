// Public and mixed routes, API keys and the extra header formats, through the proxy: real TLS,
// a real backend that records what it received.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics.js';
import { BACKEND, exchange, rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let ops: TestCert;
let token: string;
let keyFile: string;

const sha = (k: string) => createHash('sha256').update(k).digest('hex');
const KEY = 'k-legacy-billing-0123456789';
const OTHER = 'k-other-team-0123456789';
const EXPIRED = 'k-old-reports-0123456789';
const SPOOFED = {
  'x-client-cert-subject': 'CN=admin',
  'x-forwarded-client-cert': 'Hash=00;Subject="CN=admin"',
  'client-cert': ':AAAA:',
  'client-cert-chain': ':AAAA:',
  'x-forwarded-tls-client-cert': 'AAAA',
  'x-forwarded-tls-client-cert-info': 'Subject%3D%22CN%3Dadmin%22',
  'x-client-api-key': 'admin',
};

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice, OU=payments', san: { dns: ['alice.test'], uri: ['spiffe://acme.test/alice'] } });
  ops = await pki.client({ subject: 'CN=ops-1' });
  keyFile = join(mkdtempSync(join(tmpdir(), 'certgate-keys-')), 'api-keys.yaml');
  writeFileSync(
    keyFile,
    [
      `- { name: legacy-billing, sha256: ${sha(KEY)}, expires: 2999-01-01 }`,
      `- { name: other-team, sha256: ${sha(OTHER)}, expires: 2999-01-01 }`,
      `- { name: legacy-reports, sha256: ${sha(EXPIRED)}, expires: 2020-01-01 }`,
    ].join('\n'),
  );
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    admin: true,
    extra: {
      apiKeys: { file: keyFile },
      headers: { rfc9440: true, traefik: { pem: true, info: ['subject', 'issuer', 'notBefore', 'notAfter', 'sans', 'serial'] } },
      clientCertPolicy: { maxValidityDays: 400 },
    },
    routes: [
      { name: 'public', match: { pathPrefix: '/public' }, upstream: BACKEND, allow: [{ anonymous: true }, { subject: '*' }] },
      { name: 'mixed', match: { pathPrefix: '/mixed' }, upstream: BACKEND, allow: [{ anonymous: true }, { cn: 'ops-*' }] },
      { name: 'legacy', match: { pathPrefix: '/legacy' }, upstream: BACKEND, allow: [{ apiKey: 'legacy-*' }, { cn: 'alice' }] },
      { name: 'private', match: { pathPrefix: '/private' }, upstream: BACKEND, allow: [{ cn: 'alice' }] },
    ],
  });
  token = readFileSync(join(h.dir, 'admin.token'), 'utf8').trim();
});

afterAll(async () => {
  await h?.close();
});

const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });
const last = () => h.backend.received.at(-1)!;
const admin = (method: string, path: string, body?: unknown) =>
  fetch(h.adminUrl + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

function identityHeadersOf(headers: Record<string, unknown>): string[] {
  return Object.keys(headers).filter((k) => k.startsWith('x-client-cert-') || ['x-forwarded-client-cert', 'client-cert', 'client-cert-chain', 'x-forwarded-tls-client-cert', 'x-forwarded-tls-client-cert-info', 'x-client-api-key', 'x-api-key'].includes(k));
}

describe('public and mixed routes', () => {
  it('admits a request without a certificate on { anonymous: true }, with no identity headers and spoofed ones stripped', async () => {
    const r = await h.request('/public/a', { headers: SPOOFED });
    expect(r.status).toBe(200);
    expect(last().url).toBe('/public/a');
    expect(identityHeadersOf(last().headers)).toEqual([]);
  });

  it('admits any trusted certificate beside anonymous clients on allow [anonymous, subject: *], with its identity headers', async () => {
    const r = await h.request('/public/b', { client: creds(alice), headers: SPOOFED });
    expect(r.status).toBe(200);
    expect(last().headers['x-client-cert-cn']).toBe('alice');
    expect(last().headers['x-forwarded-client-cert']).toContain(`Hash=${alice.fingerprint256}`);
  });

  it('on allow [anonymous, cn: ops-*] admits anonymous clients and ops-* but refuses other certificates', async () => {
    expect((await h.request('/mixed')).status).toBe(200);
    expect((await h.request('/mixed', { client: creds(ops) })).status).toBe(200);
    const r = await h.request('/mixed', { client: creds(alice) });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('identity_not_allowed');
  });

  it('never downgrades a refused certificate to anonymous: expired, untrusted, weak and revoked are refused as before', async () => {
    const expired = await pki.client({ subject: 'CN=old', notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    const untrusted = await (await pki.untrustedRoot()).client({ subject: 'CN=evil' });
    const weak = await pki.client({ subject: 'CN=long', notAfter: new Date(Date.now() + 800 * 86_400_000) });
    const before = h.backend.received.length;
    for (const [c, code] of [[expired, 'certificate_expired'], [untrusted, 'certificate_untrusted'], [weak, 'weak_certificate']] as const) {
      const r = await h.request('/public', { client: creds(c) });
      expect(r.json?.error?.code, code).toBe(code);
      expect(r.status).toBe(403);
    }
    const revoked = await pki.client({ subject: 'CN=revoked' });
    expect((await admin('POST', '/revocations', { fingerprint: revoked.fingerprint256, reason: 'test' })).status).toBe(201);
    const r = await h.request('/public', { client: creds(revoked) });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_revoked');
    expect(h.backend.received.length).toBe(before);
  });

  it('still answers 401 certificate_required without a certificate on every other route, and closes', async () => {
    const r = await h.request('/private');
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe('certificate_required');
    expect(r.headers['connection']).toBe('close');
    expect((await h.request('/nowhere')).json.error.code).toBe('certificate_required');
  });

  it('serves several anonymous requests on one keep-alive connection', async () => {
    const s = await rawTls(h.port, pki.rootPem);
    const out = await exchange(s, 'GET /public/1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /public/2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(out.match(/HTTP\/1.1 200/g)).toHaveLength(2);
  });
});

describe('API keys', () => {
  it('admits a valid key on { apiKey: legacy-* }: the backend gets its name, never the key, and spoofed names are removed', async () => {
    const r = await h.request('/legacy/x', { headers: { 'x-api-key': KEY, 'x-client-api-key': 'admin' } });
    expect(r.status).toBe(200);
    expect(last().headers['x-client-api-key']).toBe('legacy-billing');
    expect(last().headers['x-api-key']).toBeUndefined();
    expect(JSON.stringify(last().rawHeaders)).not.toContain(KEY);
  });

  it('refuses a wrong key with 401 api_key_invalid, also on a route open to anonymous clients', async () => {
    for (const path of ['/legacy', '/public']) {
      const r = await h.request(path, { headers: { 'x-api-key': 'wrong' } });
      expect(r.status, path).toBe(401);
      expect(r.json.error.code).toBe('api_key_invalid');
    }
  });

  it('refuses an expired key with 401 api_key_expired', async () => {
    const r = await h.request('/legacy', { headers: { 'x-api-key': EXPIRED } });
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe('api_key_expired');
  });

  it('refuses a valid key whose name the route does not allow, and a request without key on a key-only route', async () => {
    const r = await h.request('/legacy', { headers: { 'x-api-key': OTHER } });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('identity_not_allowed');
    expect((await h.request('/legacy')).json.error.code).toBe('certificate_required');
  });

  it('decides a request with a certificate by the certificate alone, and removes the key header from it', async () => {
    const r = await h.request('/legacy', { client: creds(alice), headers: { 'x-api-key': 'wrong' } });
    expect(r.status).toBe(200);
    expect(last().headers['x-api-key']).toBeUndefined();
    expect(last().headers['x-client-api-key']).toBeUndefined();
    expect((await h.request('/private', { client: creds(ops), headers: { 'x-api-key': KEY } })).json.error.code).toBe('identity_not_allowed');
  });

  it('counts key use per name and lists the keys still in use in GET /certs', async () => {
    await h.request('/legacy', { headers: { 'x-api-key': KEY } });
    const text = await registry.getSingleMetricAsString('certgate_api_key_requests_total');
    expect(text).toMatch(/certgate_api_key_requests_total\{name="legacy-billing"\} [1-9]/);
    expect(text).toMatch(/certgate_api_key_requests_total\{name="legacy-reports"\} [1-9]/);
    expect(text).not.toContain('wrong');
    const certs = (await (await admin('GET', '/certs')).json()) as { apiKeys: { name: string; lastUsed: string; routes: string[] }[] };
    const billing = certs.apiKeys.find((k) => k.name === 'legacy-billing');
    expect(billing?.routes).toEqual(['legacy']);
    expect(Date.now() - Date.parse(billing!.lastUsed)).toBeLessThan(60_000);
    expect(certs.apiKeys.map((k) => k.name)).toContain('legacy-reports');
  });

  it('keeps the running keys when a reload finds the key file broken', async () => {
    writeFileSync(keyFile, `- { name: legacy-billing, sha256: nothex, expires: 2999-01-01 }\n`);
    const res = h.app.reload();
    expect(res.ok).toBe(false);
    expect(res.errors.join('\n')).toMatch(/api-keys\.yaml:1:\d+ \[0\]\.sha256: must be the SHA-256/);
    expect((await h.request('/legacy', { headers: { 'x-api-key': KEY } })).status).toBe(200);
  });
});

describe('header formats', () => {
  it('sends RFC 9440 Client-Cert (the leaf) and Client-Cert-Chain (the intermediate) as byte sequences', async () => {
    await h.request('/public/h', { client: creds(alice), headers: SPOOFED });
    const b64 = (pem: string) => pem.replace(/-----[^-]+-----|\s/g, '');
    expect(last().headers['client-cert']).toBe(`:${b64(alice.certPem)}:`);
    expect(last().headers['client-cert-chain']).toBe(`:${b64(pki.intermediate.certPem)}:`);
  });

  it('sends the Traefik passTLSClientCert headers, client-sent ones replaced', async () => {
    await h.request('/public/t', { client: creds(alice), headers: SPOOFED });
    const b64 = (pem: string) => pem.replace(/-----[^-]+-----|\s/g, '');
    expect(last().headers['x-forwarded-tls-client-cert']).toBe(`${b64(alice.certPem)},${b64(pki.intermediate.certPem)}`);
    const info = decodeURIComponent(String(last().headers['x-forwarded-tls-client-cert-info']).replace(/\+/g, ' '));
    expect(info).toContain('Subject="OU=payments,CN=alice"');
    expect(info).toContain(`NA="${Math.floor(alice.cert.notAfter.getTime() / 1000)}"`);
    expect(info).toContain('SAN="alice.test,spiffe://acme.test/alice"');
    expect(info.split(',Subject=')).toHaveLength(2);
  });
});
