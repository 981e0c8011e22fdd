// clientCertPolicy on real connections: every kind of weak certificate is refused with 403
// weak_certificate and the exact reason, whether OpenSSL refused it during verification or
// certgate's own lint did; a good certificate still passes.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '../../src/metrics.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, weakCertWithOpenssl, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let h: Harness;
let logDir: string;
const logFile = () => join(logDir, 'certgate.log');

beforeAll(async () => {
  pki = await createTestPki();
  logDir = mkdtempSync(join(tmpdir(), 'certgate-lint-log-'));
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }],
    extra: {
      log: { level: 'warn', access: false, file: logFile() },
      clientCertPolicy: { curves: ['P-256'], maxValidityDays: 400, maxChainDepth: 2 },
    },
  });
});

afterAll(async () => {
  await h?.close();
  rmSync(logDir, { recursive: true, force: true });
});

async function refusedWith(creds: { cert: string; key: string }): Promise<string> {
  const before = h.backend.received.length;
  const r = await h.request('/x', { client: creds });
  expect(r.status).toBe(403);
  expect(r.json.error.code).toBe('weak_certificate');
  expect(h.backend.received.length).toBe(before);
  return r.json.error.message as string;
}

interface RawGet {
  reused: boolean;
  body: string;
  session: Buffer | undefined;
}

/** GET /x on a fresh TLS connection with any client options; resolves when the server closes. */
function rawGet(opts: { cert: string; key: string; ciphers?: string; session?: Buffer }): Promise<RawGet> {
  return new Promise((resolve, reject) => {
    let saved: Buffer | undefined;
    let reused = false;
    let body = '';
    const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca: pki.rootPem, servername: 'localhost', ...opts });
    s.on('session', (b: Buffer) => (saved = b));
    s.on('data', (d: Buffer) => (body += d.toString()));
    s.once('secureConnect', () => {
      reused = s.isSessionReused();
      s.write('GET /x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
    });
    s.once('error', reject);
    s.once('close', () => resolve({ reused, body, session: saved }));
  });
}

async function weakCount(rule: string): Promise<number> {
  const m = await metrics.weakCertRefusals.get();
  return m.values.find((v) => v.labels.rule === rule)?.value ?? 0;
}

describe('client certificates refused by clientCertPolicy', () => {
  it('allows a P-256 client certificate that meets the policy', async () => {
    const good = await pki.client();
    const r = await h.request('/ok', { client: { cert: good.chainPem, key: good.keyPem } });
    expect(r.status).toBe(200);
  });

  it('refuses an RSA-1024 key, which OpenSSL lets through, naming the key size', async () => {
    const weak = weakCertWithOpenssl({ issuer: pki.intermediate, rsaBits: 1024, digest: 'sha256', subject: 'CN=rsa1024, O=certgate-test' });
    const before = await weakCount('minRsaBits');
    const msg = await refusedWith({ cert: weak.chainPem, key: weak.keyPem });
    expect(msg).toContain('RSA key of 1024 bits is below the minimum of 2048');
    expect(await weakCount('minRsaBits')).toBe(before + 1);
    h.app.loggers.flush();
    const lines = readFileSync(logFile(), 'utf8').split('\n').filter((l) => l.includes('handshake_refused') && l.includes('weak_certificate'));
    expect(lines.some((l) => l.includes('RSA key of 1024 bits') && l.includes(weak.fingerprint256))).toBe(true);
  });

  it('refuses a SHA-1 signed certificate that OpenSSL rejects in verification, naming the signature algorithm', async () => {
    const weak = weakCertWithOpenssl({ issuer: pki.intermediate, keyType: 'ec', digest: 'sha1', subject: 'CN=sha1, O=certgate-test' });
    const before = await weakCount('forbiddenSigAlgs');
    // The client's own OpenSSL refuses to present a SHA-1 certificate at the default security
    // level; a careless or hostile client lowers it, which is what certgate must withstand.
    const r = await rawGet({ cert: weak.chainPem, key: weak.keyPem, ciphers: 'DEFAULT@SECLEVEL=0' });
    expect(r.body).toMatch(/^HTTP\/1\.1 403/);
    const body = JSON.parse(r.body.slice(r.body.indexOf('\r\n\r\n') + 4));
    expect(body.error, JSON.stringify(body)).toMatchObject({ code: 'weak_certificate' });
    expect(body.error.message).toContain('signature algorithm ecdsa-with-SHA1 is forbidden');
    expect(body.error.message).toMatch(/refused by OpenSSL verification \((CA_MD_TOO_WEAK|UNSPECIFIED)\)/);
    expect(await weakCount('forbiddenSigAlgs')).toBe(before + 1);
  });

  it('refuses a certificate whose extended key usage is serverAuth only (OpenSSL INVALID_PURPOSE)', async () => {
    const c = await pki.client({ eku: ['serverAuth'] });
    const msg = await refusedWith({ cert: c.chainPem, key: c.keyPem });
    expect(msg).toContain('does not include clientAuth');
    expect(msg).toContain('serverAuth');
  });

  it('refuses a CA:TRUE certificate used as a client leaf', async () => {
    const c = await pki.client({ isCA: true, keyUsage: ['digitalSignature', 'keyCertSign'] });
    const msg = await refusedWith({ cert: c.chainPem, key: c.keyPem });
    expect(msg).toContain('CA:TRUE');
  });

  it('refuses a validity period longer than maxValidityDays', async () => {
    const c = await pki.client({ days: 800 });
    const msg = await refusedWith({ cert: c.chainPem, key: c.keyPem });
    expect(msg).toContain('validity period of 800 days exceeds the maximum of 400');
  });

  it('refuses a chain deeper than maxChainDepth (client sends two intermediates under the root)', async () => {
    const ca1 = await pki.ca({ issuer: 'root' });
    const ca2 = await pki.ca({ issuer: ca1 });
    const c = await pki.client({ issuer: ca2 });
    const msg = await refusedWith({ cert: c.chainPem, key: c.keyPem });
    expect(msg).toContain('chain depth of 3 CA certificates exceeds the maximum of 2');
  });

  it('refuses an EC curve that is not in curves (P-384 when only P-256 is allowed)', async () => {
    const c = await pki.client({ keyAlg: 'P-384' });
    const msg = await refusedWith({ cert: c.chainPem, key: c.keyPem });
    expect(msg).toContain('EC curve P-384 is not allowed');
  });

  it('refuses the same weak certificate again on a resumed TLS session', async () => {
    const c = await pki.client({ days: 800 });
    const get = (session?: Buffer) => rawGet({ cert: c.chainPem, key: c.keyPem, ...(session ? { session } : {}) });
    const first = await get();
    expect(first.body).toContain('weak_certificate');
    expect(first.session).toBeDefined();
    const second = await get(first.session);
    expect(second.reused).toBe(true);
    expect(second.body).toContain('403');
    expect(second.body).toContain('validity period of 800 days');
  });

  it('keeps the running material when a reload brings a weak server certificate and ownCerts is refuse', async () => {
    const weak = weakCertWithOpenssl({ issuer: pki.intermediate, rsaBits: 1024, digest: 'sha256', eku: ['serverAuth'], subject: 'CN=localhost', san: { dns: ['localhost'] } });
    const generation = h.app.certgate.runtime.generation;
    writeFileSync(join(h.dir, 'server.pem'), weak.chainPem);
    writeFileSync(join(h.dir, 'server-key.pem'), weak.keyPem);
    h.writeConfig((cfg) => {
      cfg.clientCertPolicy = { ...(cfg.clientCertPolicy as object), ownCerts: 'refuse' };
    });
    try {
      const r = h.app.certgate.reload();
      expect(r.ok).toBe(false);
      expect(r.errors.join('\n')).toMatch(/tls\.cert: server certificate: RSA key of 1024 bits/);
      expect(h.app.certgate.runtime.generation).toBe(generation);
      const good = await pki.client();
      expect((await h.request('/ok', { client: { cert: good.chainPem, key: good.keyPem } })).status).toBe(200);
    } finally {
      writeFileSync(join(h.dir, 'server.pem'), pki.server.chainPem);
      writeFileSync(join(h.dir, 'server-key.pem'), pki.server.keyPem);
    }
  });
});
