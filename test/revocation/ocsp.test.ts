import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityFromDer } from '../../src/identity/identity.js';
import { metrics } from '../../src/metrics.js';
import { BACKEND, rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { startOcspResponder, type OcspResponder } from '../helpers/responders.js';
import { closedWithin } from '../helpers/sockets.js';
import { waitFor } from '../helpers/wait.js';

/** Why the checker answered as it did: the detail is logged, never sent to the client. */
async function detailOf(h: Harness, c: TestCert): Promise<string> {
  const st = await h.app.revocation.check(identityFromDer(new Uint8Array(c.cert.rawData)));
  return 'detail' in st ? st.detail : '';
}

let pki: TestPki;
let ocsp: OcspResponder;
let h: Harness;
const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });
const routes = [
  { name: 'strict', match: { pathPrefix: '/strict' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }], revocation: 'hard' },
  { name: 'default', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] },
];

async function cacheCount(result: 'hit' | 'miss'): Promise<number> {
  const m = await metrics.ocspCache.get();
  return m.values.find((v) => v.labels.result === result)?.value ?? 0;
}

beforeAll(async () => {
  pki = await createTestPki();
  ocsp = await startOcspResponder({ certPem: pki.intermediate.certPem, keyPem: pki.intermediate.keyPem });
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes,
    extra: { revocation: { dataDir: 'data', ocsp: { enabled: true, timeout: '10s', cacheSize: 100 } } },
  });
});

afterAll(async () => {
  await h?.close();
  await ocsp?.close();
});

describe('OCSP', () => {
  it('asks the AIA responder and forwards a certificate it says is good', async () => {
    const c = await pki.client({ ocspUrl: ocsp.url });
    const before = ocsp.requests;
    expect((await h.request('/strict', { client: creds(c) })).status).toBe(200);
    expect(ocsp.requests).toBe(before + 1);
  });

  it('refuses a certificate the responder says is revoked, with 403 certificate_revoked', async () => {
    const c = await pki.client({ ocspUrl: ocsp.url });
    ocsp.states.set(c.serial, 'revoked');
    const r = await h.request('/', { client: creds(c) });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_revoked');
  });

  it('answers from the cache until nextUpdate: a second connection sends no request', async () => {
    const c = await pki.client({ ocspUrl: ocsp.url });
    const hits = await cacheCount('hit');
    expect((await h.request('/strict', { client: creds(c) })).status).toBe(200);
    const n = ocsp.requests;
    expect((await h.request('/strict', { client: creds(c) })).status).toBe(200);
    expect(ocsp.requests).toBe(n);
    expect(await cacheCount('hit')).toBe(hits + 1);
  });

  it('shares one request among concurrent connections of the same certificate', async () => {
    const c = await pki.client({ ocspUrl: ocsp.url });
    ocsp.delayMs = 150;
    const n = ocsp.requests;
    try {
      const rs = await Promise.all([1, 2, 3].map(() => h.request('/strict', { client: creds(c) })));
      expect(rs.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(ocsp.requests).toBe(n + 1);
    } finally {
      ocsp.delayMs = 0;
    }
  });

  it('accepts a delegated responder certificate (id-kp-OCSPSigning) issued by the issuer', async () => {
    const delegate = await pki.client({ cn: 'ocsp responder', eku: ['ocspSigning'] });
    const d = await startOcspResponder({ certPem: delegate.certPem, keyPem: delegate.keyPem });
    d.includeCerts = [delegate.certPem];
    try {
      const revoked = await pki.client({ ocspUrl: d.url });
      d.states.set(revoked.serial, 'revoked');
      expect((await h.request('/strict', { client: creds(revoked) })).json.error.code).toBe('certificate_revoked');
      const good = await pki.client({ ocspUrl: d.url });
      expect((await h.request('/strict', { client: creds(good) })).status).toBe(200);
    } finally {
      await d.close();
    }
  });

  it('treats a response signed by a certificate without OCSP signing rights as unknown (hard route: 403)', async () => {
    const notDelegate = await pki.client({ cn: 'not a responder' }); // clientAuth only
    const d = await startOcspResponder({ certPem: notDelegate.certPem, keyPem: notDelegate.keyPem });
    d.includeCerts = [notDelegate.certPem];
    try {
      const c = await pki.client({ ocspUrl: d.url });
      d.states.set(c.serial, 'good');
      const r = await h.request('/strict', { client: creds(c) });
      expect(r.status).toBe(403);
      expect(r.json.error.code).toBe('revocation_unknown');
      expect(r.json.error.message).toBe('revocation status unknown (ocsp)');
      expect(await detailOf(h, c)).toMatch(/not signed by the issuer or a responder it delegated to/);
    } finally {
      await d.close();
    }
  });

  it('treats a response signed by an untrusted look-alike CA as unknown', async () => {
    const other = await pki.untrustedRoot({ sameNames: true });
    const d = await startOcspResponder({ certPem: other.intermediate.certPem, keyPem: other.intermediate.keyPem });
    try {
      const c = await pki.client({ ocspUrl: d.url });
      const r = await h.request('/strict', { client: creds(c) });
      expect(r.json.error.code).toBe('revocation_unknown');
      expect(await detailOf(h, c)).toMatch(/not signed by the issuer/);
    } finally {
      await d.close();
    }
  });

  it('with the responder down: hard route refuses with 403 revocation_unknown, soft (default) route allows', async () => {
    const c = await pki.client({ ocspUrl: 'http://127.0.0.1:1/ocsp' });
    const r = await h.request('/strict', { client: creds(c) });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('revocation_unknown');
    const soft = await metrics.revocationSoftFailures.get();
    const before = soft.values.find((v) => v.labels.source === 'ocsp')?.value ?? 0;
    expect((await h.request('/other', { client: creds(c) })).status).toBe(200);
    const after = (await metrics.revocationSoftFailures.get()).values.find((v) => v.labels.source === 'ocsp')?.value ?? 0;
    expect(after).toBe(before + 1);
  });

  it('does not accept a stale response (past nextUpdate)', async () => {
    const c = await pki.client({ ocspUrl: ocsp.url });
    ocsp.nextUpdateIn = -60;
    try {
      const r = await h.request('/strict', { client: creds(c) });
      expect(r.json.error.code).toBe('revocation_unknown');
      expect(await detailOf(h, c)).toMatch(/stale/);
    } finally {
      ocsp.nextUpdateIn = 3600;
    }
  });
});

describe('OCSP with a configured responder', () => {
  it('asks revocation.ocsp.responder for certificates without an AIA URL, and honours "unknown"', async () => {
    const r2 = await startOcspResponder({ certPem: pki.intermediate.certPem, keyPem: pki.intermediate.keyPem });
    const h2 = await startHarness({
      tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
      serverCa: pki.rootPem,
      routes,
      extra: { revocation: { dataDir: 'data', ocsp: { enabled: true, responder: r2.url, timeout: '10s', mode: 'hard' } } },
    });
    try {
      const plain = await pki.client();
      const revoked = await pki.client();
      const unknown = await pki.client();
      r2.states.set(revoked.serial, 'revoked');
      r2.states.set(unknown.serial, 'unknown');
      expect((await h2.request('/', { client: creds(plain) })).status).toBe(200);
      expect((await h2.request('/', { client: creds(revoked) })).json.error.code).toBe('certificate_revoked');
      // ocsp.mode: hard makes unknown a refusal on routes that do not say otherwise.
      expect((await h2.request('/', { client: creds(unknown) })).json.error.code).toBe('revocation_unknown');
      expect(r2.requests).toBe(3);
    } finally {
      await h2.close();
      await r2.close();
    }
  });
});

describe('OCSP answers on long-lived connections', () => {
  it('asks again when the answer passes nextUpdate and closes the connection if it is now revoked', async () => {
    const r2 = await startOcspResponder({ certPem: pki.intermediate.certPem, keyPem: pki.intermediate.keyPem });
    r2.nextUpdateIn = 2; // encoded in whole seconds: 1 s could round down to "now"
    const h2 = await startHarness({
      tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
      serverCa: pki.rootPem,
      routes,
      extra: { revocation: { dataDir: 'data', recheck: '200ms', ocsp: { enabled: true, responder: r2.url, timeout: '10s' } } },
    });
    try {
      const c = await pki.client();
      const s = await rawTls(h2.port, pki.rootPem, creds(c));
      const closed = closedWithin(s, 5000);
      s.write('GET /first HTTP/1.1\r\nhost: localhost\r\n\r\n');
      // Admitted (the first answer said good) before the responder changes its mind.
      await waitFor(() => h2.backend.received.some((x) => x.url === '/first'), { what: 'the first request at the backend' });
      r2.states.set(c.serial, 'revoked');
      expect(await closed).toBeGreaterThanOrEqual(0);
      expect(r2.requests).toBeGreaterThanOrEqual(2);
    } finally {
      await h2.close();
      await r2.close();
    }
  });
});
