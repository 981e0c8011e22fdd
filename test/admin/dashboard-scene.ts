// A certgate with something to show on the dashboard: real certificates from the test PKI,
// clients expiring at chosen distances, a CRL, a local revocation, a monitored endpoint (the
// proxy itself), refusals, and a reload. Used by the browser test and by `npm run
// docs:screenshot`; and a headless Chromium (system package) driven by playwright-core.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

const DAY_MS = 86_400_000;

export interface SceneClient {
  readonly name: string;
  readonly cert: TestCert;
  /** Whole days left, as the inventory counts them (notAfter is an hour past the day). */
  readonly daysLeft: number;
}

export interface Scene {
  readonly h: Harness;
  readonly clients: readonly SceneClient[];
  readonly token: string;
  close(): Promise<void>;
}

export interface SceneOptions {
  /** A client whose subject is markup (to show that it stays text). */
  readonly hostileSubject?: string;
}

export async function startDashboardScene(opts: SceneOptions = {}): Promise<Scene> {
  const pki = await createTestPki();
  const now = Date.now();
  const issue = async (name: string, days: number, extra: Parameters<typeof pki.client>[0] = {}): Promise<SceneClient> => ({
    name,
    daysLeft: days,
    cert: await pki.client({ subject: `CN=${name}, OU=payments, O=certgate-test`, notBefore: new Date(now - DAY_MS), notAfter: new Date(now + days * DAY_MS + 3_600_000), ...extra }),
  });
  const clients: SceneClient[] = [
    await issue('orders-api', 62, { san: { uri: ['spiffe://acme.test/ns/prod/sa/orders-api'] } }),
    await issue('billing-worker', 5, { san: { uri: ['spiffe://acme.test/ns/prod/sa/billing-worker'] } }),
    await issue('reporting', 24, { san: { uri: ['spiffe://acme.test/ns/prod/sa/reporting'] } }),
    await issue('batch-export', 170),
    await issue('legacy-client', 41),
  ];
  if (opts.hostileSubject !== undefined) {
    clients.push({ name: 'hostile', daysLeft: 40, cert: await pki.client({ subject: { cn: opts.hostileSubject, o: 'certgate-test' }, notAfter: new Date(now + 40 * DAY_MS + 3_600_000) }) });
  }
  // certgate's own certificate is due for renewal in 45 days: on the timeline, not yet warned.
  const server = await pki.serverCert({ cn: 'localhost', notBefore: new Date(now - 30 * DAY_MS), notAfter: new Date(now + 45 * DAY_MS) });
  const dir = mkdtempSync(join(tmpdir(), 'certgate-dashboard-'));
  const crl = await pki.crl({ entries: ['0badc0de'], thisUpdate: new Date(now - DAY_MS), nextUpdate: new Date(now + 12 * DAY_MS) });
  writeFileSync(join(dir, 'clients.crl'), crl.pem);
  writeFileSync(join(dir, 'server-ca.pem'), pki.rootPem);
  const token = 't'.repeat(32);
  writeFileSync(join(dir, 'admin.token'), token + '\n', { mode: 0o600 });
  const h = await startHarness({
    tls: { serverCert: server.chainPem, serverKey: server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    admin: true,
    routes: [
      { name: 'admin-api', match: { pathPrefix: '/admin' }, upstream: BACKEND, allow: [{ cn: 'orders-api' }] },
      { name: 'api', upstream: BACKEND, allow: [{ o: 'certgate-test' }] },
    ],
    extra: { inventory: { maxEntries: 20_000 }, revocation: { dataDir: join(dir, 'data'), crl: { files: [join(dir, 'clients.crl')] } }, admin: { enabled: true, host: '127.0.0.1', port: 0, tokenFile: join(dir, 'admin.token') } },
  });

  for (const [i, c] of clients.entries()) {
    for (let n = 0; n <= i % 3; n++) expectStatus(await h.request(`/orders/${n}`, { client: { cert: c.cert.chainPem, key: c.cert.keyPem } }), 200);
  }
  // Refusals: a route the client may not use, and a request without a certificate.
  const reporting = clients[2]!.cert;
  expectStatus(await h.request('/admin/users', { client: { cert: reporting.chainPem, key: reporting.keyPem } }), 403);
  expectStatus(await h.request('/orders/1'), 401);
  // Revoked through the admin API after it was seen: its next request is refused.
  const legacy = clients[4]!.cert;
  const revoke = await fetch(`${h.adminUrl}/revocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ fingerprint: legacy.fingerprint256, reason: 'keyCompromise' }),
  });
  expectStatus({ status: revoke.status }, 201);
  expectStatus(await h.request('/orders/2', { client: { cert: legacy.chainPem, key: legacy.keyPem } }), 403);

  // A reload that adds the proxy itself as a monitored endpoint: generation 2 and a scan result.
  h.writeConfig((cfg) => (cfg.monitors = [{ address: `127.0.0.1:${h.port}`, servername: 'localhost', ca: join(dir, 'server-ca.pem'), interval: '1h' }]));
  const r = h.app.reload();
  if (!r.ok) throw new Error(`reload failed: ${r.errors.join('; ')}`);
  await waitFor(() => h.app.monitors.lastScans()[0]?.scannedAt, { deadline: 20_000, what: 'the first monitor scan' });

  return {
    h,
    clients,
    token,
    async close() {
      await h.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function expectStatus(r: { status: number }, ...ok: number[]): void {
  if (!ok.includes(r.status)) throw new Error(`expected status ${ok.join(' or ')}, got ${r.status}`);
}

/**
 * The system Chromium (Debian package), headless, with a fresh profile (playwright passes it as
 * --user-data-dir; it refuses that flag in `args`).
 */
export async function launchChromium(viewport = { width: 1400, height: 1000 }): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'certgate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
