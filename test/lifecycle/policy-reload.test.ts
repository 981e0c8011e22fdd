// A reload that tightens clientCertPolicy applies to connections already open, not only to new
// handshakes: an idle keep-alive connection of a certificate the new policy refuses is closed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, exchange, rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let h: Harness;
let p384: TestCert;
let p256: TestCert;

beforeAll(async () => {
  pki = await createTestPki();
  p384 = await pki.client({ cn: 'p384-client', keyAlg: 'P-384' });
  p256 = await pki.client({ cn: 'p256-client' });
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', upstream: BACKEND, allow: [{ cn: ['p384-client', 'p256-client'] }] }],
    extra: { clientCertPolicy: { curves: ['P-256', 'P-384'] } },
  });
});

afterAll(async () => {
  await h?.close();
});

describe('reloading a stricter clientCertPolicy', () => {
  it('closes open connections of certificates it now refuses and keeps the others', async () => {
    const weak = await rawTls(h.port, pki.rootPem, { cert: p384.chainPem, key: p384.keyPem });
    const good = await rawTls(h.port, pki.rootPem, { cert: p256.chainPem, key: p256.keyPem });
    const first = await new Promise<string>((resolve) => {
      let out = '';
      weak.on('data', (c: Buffer) => {
        out += c.toString('latin1');
        if (out.includes('"bodyBytes"')) resolve(out);
      });
      weak.write('GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n');
    });
    expect(first).toMatch(/^HTTP\/1.1 200/);
    const closed = new Promise<number>((resolve) => {
      const t0 = Date.now();
      weak.once('close', () => resolve(Date.now() - t0));
    });

    h.writeConfig((cfg) => {
      cfg.clientCertPolicy = { curves: ['P-256'] };
    });
    expect(h.app.reload().ok).toBe(true);
    expect(await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Infinity), 2000))])).toBeLessThan(1000);

    const still = await exchange(good, 'GET /b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(still).toMatch(/^HTTP\/1.1 200/);
    const refused = await h.request('/c', { client: { cert: p384.chainPem, key: p384.keyPem } });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('weak_certificate');
    expect(refused.json.error.message).toContain('P-384');
  });
});
