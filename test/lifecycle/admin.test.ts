import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as inventoryCli } from '../../src/cli/cmd-inventory.js';
import { BACKEND, mtlsRequest, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let bob: TestCert;
let carol: TestCert;
const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice, OU=payments, O=Acme', san: { uri: ['spiffe://acme.test/sa/alice'], dns: ['alice.acme.test'] }, days: 5 });
  bob = await pki.client({ subject: 'CN=bob, O=Acme', days: 60 });
  carol = await pki.client({ subject: 'CN=carol, O=Acme', days: 200, keyAlg: 'RSA-2048' });
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    admin: true,
    routes: [
      { name: 'orders', match: { pathPrefix: '/orders' }, upstream: BACKEND, allow: [{ o: 'Acme' }] },
      { name: 'slow', match: { pathPrefix: '/slow' }, upstream: BACKEND, allow: [{ o: 'Acme' }] },
      { name: 'admin-only', match: { pathPrefix: '/support' }, upstream: BACKEND, allow: [{ cn: 'alice' }] },
    ],
    extra: { inventory: { perClientSeries: 2, file: 'inventory.json' } },
  });
  await h.request('/orders/1', { client: creds(alice) });
  await h.request('/orders/2', { client: creds(alice) });
  await h.request('/support', { client: creds(alice) });
  await h.request('/support', { client: creds(bob) }); // identity_not_allowed
  await h.request('/orders/3', { client: creds(carol) });
  await h.request('/orders/1', {}); // no certificate
});

afterAll(async () => {
  await h?.close();
});

const get = async (path: string) => {
  const res = await fetch(h.adminUrl + path);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
};

describe('GET /metrics', () => {
  it('serves Prometheus text with requests by route, status and decision, handshake failures and upstream latency', async () => {
    const m = await get('/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(m.text).toMatch(/^certgate_requests_total\{route="orders",status="200",decision="allow"\} 3$/m);
    expect(m.text).toMatch(/^certgate_requests_total\{route="admin-only",status="403",decision="identity_not_allowed"\} 1$/m);
    expect(m.text).toMatch(/^certgate_requests_total\{route="",status="401",decision="certificate_required"\} 1$/m);
    expect(m.text).toMatch(/^certgate_handshake_failures_total\{code="certificate_required",reason="NO_CERTIFICATE"\} 1$/m);
    expect(m.text).toMatch(/^certgate_upstream_latency_seconds_count\{route="orders"\} 3$/m);
    expect(m.text).toMatch(/^certgate_connections_total\{resumed="false"\} [1-9]/m);
    expect(m.text).toMatch(/^certgate_open_connections \d+$/m);
    expect(m.text).toMatch(/^certgate_reloads_total\{result="failure"\} 0$/m);
  });

  it('exports notAfter of the server chain, every CA, and only the N soonest-expiring client certificates', async () => {
    const m = (await get('/metrics')).text;
    const series = (role: string) => m.split('\n').filter((l) => l.startsWith(`certgate_cert_not_after_seconds{role="${role}"`));
    const server = series('server');
    expect(server).toHaveLength(2); // leaf + intermediate it sends
    expect(server[0]).toContain(`subject="CN=localhost,O=certgate-test",serial="${pki.server.serial}",fingerprint="${pki.server.fingerprint256}"`);
    expect(server[0]).toMatch(new RegExp(` ${Math.floor(Date.parse(pki.server.nodeCert.validTo) / 1000)}$`));
    expect(series('ca')).toHaveLength(2);
    // perClientSeries: 2 of 3 clients, the two that expire first.
    const clients = series('client');
    expect(clients).toHaveLength(2);
    expect(clients.some((l) => l.includes(alice.fingerprint256))).toBe(true);
    expect(clients.some((l) => l.includes(bob.fingerprint256))).toBe(true);
    expect(clients.some((l) => l.includes(carol.fingerprint256))).toBe(false);
    // Counts cover every client, by days-to-expiry bucket.
    expect(m).toMatch(/^certgate_client_certs_expiring\{within="7"\} 1$/m);
    expect(m).toMatch(/^certgate_client_certs_expiring\{within="90"\} 1$/m);
    expect(m).toMatch(/^certgate_client_certs_expiring\{within="later"\} 1$/m);
    expect(m).toMatch(/^certgate_client_certs_expiring\{within="expired"\} 0$/m);
  });
});

describe('GET /certs and the inventory', () => {
  it('lists the server chain and CAs with days left, and every client certificate seen with its usage', async () => {
    const r = await get('/certs');
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text);
    expect(body.server[0]).toMatchObject({ role: 'server', subject: 'CN=localhost,O=certgate-test', serial: pki.server.serial });
    expect(body.server[0].daysLeft).toBeGreaterThan(300);
    expect(body.cas.map((c: { subject: string }) => c.subject).sort()).toEqual(['CN=certgate test intermediate CA,O=certgate-test', 'CN=certgate test root CA,O=certgate-test']);
    expect(body.clients.map((c: { subject: string }) => c.subject)).toEqual(['CN=alice,OU=payments,O=Acme', 'CN=bob,O=Acme', 'CN=carol,O=Acme']);
    const a = body.clients[0];
    expect(a).toMatchObject({
      fingerprint: alice.fingerprint256,
      serial: alice.serial,
      issuer: 'CN=certgate test intermediate CA,O=certgate-test',
      san: { dns: ['alice.acme.test'], uri: ['spiffe://acme.test/sa/alice'], email: [], ip: [] },
      spiffe: 'spiffe://acme.test/sa/alice',
      key: 'EC P-256',
      sigAlg: expect.stringMatching(/ecdsa-with-SHA256/i),
      requests: 3,
      routes: ['admin-only', 'orders'],
      refused: [],
      lastDecision: 'allow',
      daysLeft: 4,
    });
    expect(a.connections).toBeGreaterThanOrEqual(3);
    expect(Date.parse(a.notAfter) - Date.parse(a.notBefore)).toBeGreaterThan(4 * 86_400_000);
    expect(Date.parse(a.lastSeen)).toBeGreaterThanOrEqual(Date.parse(a.firstSeen));
    // Refused on admin-only: a refusal, not a route it uses.
    expect(body.clients[1]).toMatchObject({ requests: 1, routes: [], refused: ['admin-only:identity_not_allowed'], lastDecision: 'identity_not_allowed' });
    expect(body.clients[2]).toMatchObject({ key: 'RSA 2048', sigAlg: expect.stringMatching(/ecdsa-with-SHA256/i) });
  });

  it('certgate inventory prints a table sorted by days to expiry, filters with --expiring-within, and prints JSON', async () => {
    let out = '';
    expect(await inventoryCli(['--admin', h.adminUrl], (s) => (out += s))).toBe(0);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^DAYS LEFT\s+NOT AFTER\s+SUBJECT\s+SERIAL\s+KEY\s+REQUESTS\s+LAST SEEN\s+ROUTES\s+REFUSED\s+DECISION$/);
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/^4\s+\d{4}-\d\d-\d\d\s+CN=alice,OU=payments,O=Acme\s+\S+\s+EC P-256\s+3\s+\S+ \S+\s+admin-only,orders\s+-\s+allow$/);
    expect(lines[2]).toMatch(/^5\d\s.*CN=bob,O=Acme.*\s-\s+admin-only:identity_not_allowed\s+identity_not_allowed$/);
    expect(lines[3]).toMatch(/^19\d\s.*CN=carol,O=Acme.*RSA 2048/);

    out = '';
    expect(await inventoryCli(['--admin', h.adminUrl, '--expiring-within', '30d'], (s) => (out += s))).toBe(0);
    expect(out.trimEnd().split('\n')).toHaveLength(2);
    expect(out).toContain('CN=alice');

    out = '';
    expect(await inventoryCli(['--admin', h.adminUrl + '/', '--json', '--expiring-within', '90d'], (s) => (out += s))).toBe(0);
    const json = JSON.parse(out);
    expect(json.map((c: { fingerprint: string }) => c.fingerprint)).toEqual([alice.fingerprint256, bob.fingerprint256]);
  });

  it('certgate inventory fails with exit code 1 when the admin listener cannot be reached, 2 on bad flags', async () => {
    expect(await inventoryCli(['--admin', 'http://127.0.0.1:2'], () => {})).toBe(1);
    await expect(inventoryCli(['--admin', h.adminUrl, '--expiring-within', 'soon'], () => {})).rejects.toThrow(/not a duration/);
    await expect(inventoryCli([], () => {})).rejects.toThrow(/missing required flag --admin/);
  });
});

describe('admin isolation, readiness and shutdown', () => {
  it('never serves admin endpoints on the proxy listener', async () => {
    for (const path of ['/metrics', '/certs', '/healthz', '/readyz', '/reload']) {
      const r = await h.request(path, { client: creds(alice) });
      expect(r.status).toBe(404);
      expect(r.json.error.code).toBe('route_not_found');
      expect(r.text).not.toContain('certgate_');
    }
  });
  it('answers /healthz and /readyz, fails /readyz while draining, and saves the inventory at shutdown', async () => {
    expect((await get('/healthz')).status).toBe(200);
    const ready = await get('/readyz');
    expect(ready.status).toBe(200);
    const inFlight = mtlsRequest(h.origin, pki.rootPem, '/slow?ms=700', { client: creds(alice) });
    await waitFor(() => h.backend.received.some((r) => r.url.startsWith('/slow')), { what: 'the slow request to reach the backend' });
    const stopping = h.app.stop();
    const draining = await get('/readyz');
    expect(draining.status).toBe(503);
    expect(JSON.parse(draining.text).status).toBe('draining');
    expect((await get('/healthz')).status).toBe(200);
    expect((await inFlight).status).toBe(200);
    await stopping;
    const file = join(h.dir, 'inventory.json');
    expect(existsSync(file)).toBe(true);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    const a = saved.entries.find((e: { fingerprint: string }) => e.fingerprint === alice.fingerprint256);
    expect(a).toMatchObject({ requests: 9, subject: 'CN=alice,OU=payments,O=Acme' });
  });
});
