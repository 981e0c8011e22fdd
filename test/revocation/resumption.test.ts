import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, exchange, rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let h: Harness;
const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });
const GET = 'GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n';

async function sessionOf(c: TestCert): Promise<Buffer> {
  const s = await rawTls(h.port, pki.rootPem, creds(c));
  const session = await new Promise<Buffer>((resolve) => {
    s.once('session', resolve);
    s.write(GET);
  });
  s.destroy();
  return session;
}

function resume(c: TestCert, session: Buffer): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca: pki.rootPem, ...creds(c), servername: 'localhost', session }, () => resolve(s));
    s.once('error', reject);
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'app', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }],
    extra: { revocation: { dataDir: 'data' } },
  });
});

afterAll(() => h?.close());

describe('resumed TLS sessions', () => {
  it('lets a resumed session of a trusted, unrevoked client through', async () => {
    const c = await pki.client();
    const s = await resume(c, await sessionOf(c));
    expect(s.isSessionReused()).toBe(true);
    expect(await exchange(s, GET, 1000)).toMatch(/^HTTP\/1.1 200/);
  });

  it('refuses a resumed session whose issuing CA has left the trust bundle since', async () => {
    const c = await pki.client();
    const session = await sessionOf(c);
    const other = await pki.untrustedRoot();
    writeFileSync(join(h.dir, 'clients-ca.pem'), other.caBundlePem);
    try {
      expect(h.app.reload().ok).toBe(true);
      const s = await resume(c, session);
      expect(s.isSessionReused()).toBe(true);
      const out = await exchange(s, GET, 1000);
      expect(out).toMatch(/^HTTP\/1.1 403[\s\S]*"code":"certificate_untrusted"/);
    } finally {
      writeFileSync(join(h.dir, 'clients-ca.pem'), pki.caBundlePem);
      expect(h.app.reload().ok).toBe(true);
    }
  });
});
