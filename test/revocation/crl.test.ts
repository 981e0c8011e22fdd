import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app.js';
import { run as checkCli } from '../../src/cli/cmd-check.js';
import { loadConfig } from '../../src/config/load.js';
import { loadCrl, parseCrl } from '../../src/revocation/crl.js';
import { BACKEND, rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { closedWithin, oneResponse } from '../helpers/sockets.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { startCrlServer, type CrlServer } from '../helpers/responders.js';

let pki: TestPki;
const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });
const HOUR = 3_600_000;

const tlsFiles = () => ({ serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem });
const routes = [
  { name: 'strict', match: { pathPrefix: '/strict' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] },
  { name: 'lenient', match: { pathPrefix: '/lenient' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }], revocation: 'soft' },
];

beforeAll(async () => {
  pki = await createTestPki();
});

describe('CRL files', () => {
  let h: Harness;
  let revoked: TestCert;
  let good: TestCert;

  beforeAll(async () => {
    revoked = await pki.client();
    good = await pki.client();
    h = await startHarness({ tls: tlsFiles(), serverCa: pki.rootPem, routes, extra: { revocation: { dataDir: 'data' } } });
    // PEM for the intermediate, DER for the root: both forms, two issuers.
    writeFileSync(join(h.dir, 'intermediate.crl.pem'), (await pki.crl({ entries: [{ serial: revoked.serial, reason: 'keyCompromise' }] })).pem);
    writeFileSync(join(h.dir, 'root.crl'), (await pki.crl({ issuer: 'root' })).der);
    h.writeConfig((c) => ((c.revocation as Record<string, unknown>).crl = { files: ['intermediate.crl.pem', 'root.crl'] }));
    expect(h.app.reload()).toMatchObject({ ok: true });
  });
  afterAll(() => h?.close());

  it('refuses a certificate listed in a CRL file with 403 certificate_revoked and lets others through', async () => {
    const r = await h.request('/strict', { client: creds(revoked) });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_revoked');
    expect((await h.request('/strict', { client: creds(good) })).status).toBe(200);
    // Revoked is revoked on a soft route too: soft only concerns unknown status.
    expect((await h.request('/lenient', { client: creds(revoked) })).status).toBe(403);
  });

  it('closes an open connection when a reload brings a CRL that lists its certificate', async () => {
    const c = await pki.client();
    const s = await rawTls(h.port, pki.rootPem, creds(c));
    expect(await oneResponse(s, 'GET /strict HTTP/1.1\r\nhost: localhost\r\n\r\n')).toMatch(/^HTTP\/1.1 200/);
    expect(s.destroyed).toBe(false);
    writeFileSync(join(h.dir, 'intermediate.crl.pem'), (await pki.crl({ entries: [revoked.serial, c.serial] })).pem);
    // Timed from the reload, not from signing the test's CRL.
    const closed = closedWithin(s, 5000);
    expect(h.app.reload().ok).toBe(true);
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(1000);
    expect((await h.request('/strict', { client: creds(c) })).json.error.code).toBe('certificate_revoked');
  });

  it('refuses every certificate below an intermediate that its root CA revoked', async () => {
    const sub = await pki.ca({ issuer: 'root' });
    const below = await pki.client({ issuer: sub });
    writeFileSync(join(h.dir, 'clients-ca.pem'), pki.caBundlePem + sub.certPem);
    expect(h.app.reload().ok).toBe(true);
    expect((await h.request('/strict', { client: creds(below) })).status).toBe(200);
    writeFileSync(join(h.dir, 'root.crl'), (await pki.crl({ issuer: 'root', entries: [{ serial: sub.serial, reason: 'cACompromise' }] })).der);
    expect(h.app.reload().ok).toBe(true);
    const r = await h.request('/strict', { client: creds(below) });
    expect(r.json.error.code).toBe('certificate_revoked');
    expect((await h.request('/strict', { client: creds(good) })).status).toBe(200);
  });

  it('fails a reload whose CRL is signed by a key outside the trust bundle, naming the file, and keeps the old CRLs', async () => {
    const other = await pki.untrustedRoot({ sameNames: true });
    writeFileSync(join(h.dir, 'forged.crl'), (await other.crl({ issuer: 'intermediate' })).der);
    h.writeConfig((c) => ((c.revocation as Record<string, unknown>).crl = { files: ['forged.crl'] }));
    const res = h.app.reload();
    expect(res.ok).toBe(false);
    expect(res.errors.join('\n')).toMatch(/revocation\.crl\.files\[0\]: .*forged\.crl.*signature does not verify against the trusted CA/);
    expect((await h.request('/strict', { client: creds(revoked) })).status).toBe(403);
    h.writeConfig((c) => ((c.revocation as Record<string, unknown>).crl = { files: ['intermediate.crl.pem', 'root.crl'] }));
  });

  it('refuses to start with a CRL from an issuer that is not trusted at all', async () => {
    const other = await pki.untrustedRoot();
    writeFileSync(join(h.dir, 'stranger.crl'), (await other.crl({ issuer: 'intermediate' })).der);
    h.writeConfig((c) => ((c.revocation as Record<string, unknown>).crl = { files: ['stranger.crl'] }));
    await expect(startApp(loadConfig(h.configFile))).rejects.toThrow(/revocation\.crl\.files\[0\]: .*not a CA in tls\.clientCAs/);
    // `certgate check` reports it the same way, with the line of the key.
    let err = '';
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((c: string) => ((err += c), true)) as typeof process.stderr.write;
    try {
      expect(await checkCli(['--config', h.configFile])).toBe(1);
    } finally {
      process.stderr.write = orig;
    }
    expect(err).toMatch(/certgate\.yaml:\d+:\d+ revocation\.crl\.files\[0\]: .*stranger\.crl/);
    h.writeConfig((c) => ((c.revocation as Record<string, unknown>).crl = { files: ['intermediate.crl.pem', 'root.crl'] }));
  });
});

describe('stale CRL', () => {
  let h: Harness;
  let c: TestCert;
  beforeAll(async () => {
    c = await pki.client();
    h = await startHarness({ tls: tlsFiles(), serverCa: pki.rootPem, routes, extra: { revocation: { dataDir: 'data' } } });
    writeFileSync(join(h.dir, 'stale.crl'), (await pki.crl({ thisUpdate: new Date(Date.now() - 48 * HOUR), nextUpdate: new Date(Date.now() - HOUR) })).der);
    h.writeConfig((cfg) => ((cfg.revocation as Record<string, unknown>).crl = { files: ['stale.crl'] }));
    expect(h.app.reload().ok).toBe(true);
  });
  afterAll(() => h?.close());

  it('answers 403 revocation_unknown past nextUpdate (hard by default for files), and allows on a soft route', async () => {
    const r = await h.request('/strict', { client: creds(c) });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('revocation_unknown');
    expect((await h.request('/lenient', { client: creds(c) })).status).toBe(200);
  });
});

describe('CRL URLs', () => {
  let h: Harness;
  let srv: CrlServer;
  let a: TestCert;
  let b: TestCert;
  beforeAll(async () => {
    a = await pki.client();
    b = await pki.client();
    srv = await startCrlServer((await pki.crl({ entries: [a.serial] })).der);
    h = await startHarness({
      tls: tlsFiles(),
      serverCa: pki.rootPem,
      routes,
      extra: { revocation: { dataDir: 'data', crl: { urls: [srv.url], timeout: '10s', refresh: '1h' } } },
    });
  });
  afterAll(async () => {
    await h?.close();
    await srv?.close();
  });

  it('fetches the CRL at start and refuses a serial it lists', async () => {
    expect(srv.requests).toBeGreaterThanOrEqual(1);
    expect((await h.request('/strict', { client: creds(a) })).json.error.code).toBe('certificate_revoked');
    expect((await h.request('/strict', { client: creds(b) })).status).toBe(200);
  });

  it('keeps the last good CRL when a refresh fails', async () => {
    srv.failing = true;
    await h.app.revocation.ready();
    expect((await h.request('/strict', { client: creds(a) })).json.error.code).toBe('certificate_revoked');
    expect((await h.request('/strict', { client: creds(b) })).status).toBe(200);
    srv.failing = false;
  });

  it('takes a newer CRL on refresh and re-checks open connections', async () => {
    srv.der = (await pki.crl({ entries: [a.serial, b.serial], thisUpdate: new Date(Date.now() + 1000) })).der;
    await h.app.revocation.ready();
    expect((await h.request('/strict', { client: creds(b) })).json.error.code).toBe('certificate_revoked');
  });
});

describe('CRL distribution points', () => {
  it('fetches the CRL named in the certificate and refuses a listed serial; soft when it cannot be fetched', async () => {
    const srv = await startCrlServer();
    const listed = await pki.client({ crlUrl: srv.url });
    const clean = await pki.client({ crlUrl: srv.url });
    srv.der = (await pki.crl({ entries: [listed.serial] })).der;
    const h = await startHarness({
      tls: tlsFiles(),
      serverCa: pki.rootPem,
      routes,
      extra: { revocation: { dataDir: 'data', crl: { distributionPoints: true, timeout: '10s' } } },
    });
    try {
      expect((await h.request('/strict', { client: creds(listed) })).json.error.code).toBe('certificate_revoked');
      expect((await h.request('/strict', { client: creds(clean) })).status).toBe(200);
      expect(srv.requests).toBe(1);
    } finally {
      await h.close();
      await srv.close();
    }
    // A distribution point that does not answer: unknown, soft by default for network sources.
    const dead = await pki.client({ crlUrl: 'http://127.0.0.1:1/none.crl' });
    const h2 = await startHarness({ tls: tlsFiles(), serverCa: pki.rootPem, routes, extra: { revocation: { dataDir: 'data', crl: { distributionPoints: true, timeout: '10s' } } } });
    try {
      expect((await h2.request('/strict', { client: creds(dead) })).status).toBe(200);
    } finally {
      await h2.close();
    }
  });
});

describe('large CRLs', () => {
  // Parsing speed is measured by the bench (its revocation scenario loads a large CRL), not here.
  it('parses and verifies a CRL of 100,000 entries once, into O(1) lookups', async () => {
    const entries = Array.from({ length: 100_000 }, (_, i) => (0x100000 + i).toString(16));
    const crl = await pki.crl({ entries });
    const loaded = loadCrl(crl.der, [{ file: 'x', pem: pki.intermediate.certPem, cert: pki.intermediate.nodeCert }], 'crl-file', 'big.crl');
    expect(loaded.revoked.size).toBe(100_000);
    expect(loaded.revoked.has((0x100000 + 99_999).toString(16))).toBe(true);
    expect(parseCrl(crl.der).issuerName.length).toBeGreaterThan(0);
  });
});
