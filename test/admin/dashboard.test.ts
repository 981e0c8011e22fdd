// The dashboard without a browser: the refusal window, the paged /certs, who may read what, the
// headers the page is served with, /overview and /refusals, and the built CLI serving the page's
// files (they are copied into dist/ by the build).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeAdmin, type AdminAccess } from '../../src/admin/access.js';
import { pageClients, pageQueryOf, type PageQuery } from '../../src/admin/certs-page.js';
import type { InventoryEntry } from '../../src/lifecycle/inventory.js';
import { RefusalWindow } from '../../src/lifecycle/refusal-window.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { ROOT, startCertgate, stopCli } from '../helpers/cli.js';
import { identityFixture } from '../helpers/identity.js';
import { createTestPki } from '../helpers/pki.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

describe('RefusalWindow', () => {
  it('counts refusals per code over the last 60 minutes and forgets older minutes', () => {
    let now = Date.UTC(2030, 0, 1, 12, 0, 30);
    const w = new RefusalWindow(() => now);
    w.add('certificate_expired');
    w.add('identity_not_allowed');
    w.add('identity_not_allowed');
    now += 30 * MINUTE;
    w.add('certificate_revoked');
    expect(w.summary()).toMatchObject({ windowMinutes: 60, total: 4, byCode: { identity_not_allowed: 2, certificate_expired: 1, certificate_revoked: 1 } });
    expect(w.summary().perMinute.map((m) => m.minute)).toEqual(['2030-01-01T12:00:00.000Z', '2030-01-01T12:30:00.000Z']);
    now += 30 * MINUTE; // 13:00:30: the 12:00 minute has left the window
    expect(w.summary()).toMatchObject({ total: 1, byCode: { certificate_revoked: 1 } });
    // The ring slot of 12:00 is reused for 13:00 without carrying its counts.
    w.add('certificate_required');
    expect(w.summary().byCode).toEqual({ certificate_required: 1, certificate_revoked: 1 });
    now += 61 * MINUTE;
    expect(w.summary()).toEqual({ windowMinutes: 60, total: 0, byCode: {}, perMinute: [] });
  });
});

function entry(i: number, fields: Partial<InventoryEntry> = {}): InventoryEntry {
  const fp = i.toString(16).padStart(64, '0');
  return {
    fingerprint: fp, subject: `CN=svc-${i}`, san: { dns: [], uri: [], email: [], ip: [] }, spiffe: undefined, issuer: 'CN=ca', serial: i.toString(16),
    notBefore: '2030-01-01T00:00:00.000Z', notAfter: new Date(Date.UTC(2030, 1, 1) + i * DAY).toISOString(), daysLeft: i, key: 'EC P-256', sigAlg: 'ecdsa-with-SHA256',
    firstSeen: '2030-01-01T00:00:00.000Z', lastSeen: '2030-01-01T00:00:00.000Z', connections: 1, requests: 100 - i, routes: ['api'], refused: [], lastAddress: undefined, lastDecision: 'allow',
    ...fields,
  };
}

describe('paged /certs (pure)', () => {
  const all = Array.from({ length: 30 }, (_, i) => entry(i, i === 7 ? { spiffe: 'spiffe://acme.test/ns/prod/sa/Payments', routes: ['pay'] } : {}));
  const q = (p: Partial<PageQuery>): PageQuery => ({ q: '', sort: 'notAfter', order: 'asc', offset: 0, limit: 10, ...p });

  it('answers one page with the counts of matched and total entries', () => {
    const r = pageClients(all, q({ offset: 20, limit: 5 }));
    expect(r.clients.map((c) => c.subject)).toEqual(['CN=svc-20', 'CN=svc-21', 'CN=svc-22', 'CN=svc-23', 'CN=svc-24']);
    expect(r.page).toEqual({ offset: 20, limit: 5, matched: 30, total: 30 });
  });

  it('filters case-insensitively on SPIFFE ID, routes and subject', () => {
    expect(pageClients(all, q({ q: 'sa/payments' })).clients.map((c) => c.subject)).toEqual(['CN=svc-7']);
    expect(pageClients(all, q({ q: 'pay' })).page.matched).toBe(1);
    expect(pageClients(all, q({ q: 'svc-2' })).page.matched).toBe(11);
  });

  it('sorts by any column, both ways', () => {
    expect(pageClients(all, q({ sort: 'requests', order: 'desc', limit: 2 })).clients.map((c) => c.requests)).toEqual([100, 99]);
    expect(pageClients(all, q({ sort: 'notAfter', order: 'desc', limit: 1 })).clients[0]!.subject).toBe('CN=svc-29');
  });

  it('reads its parameters from the URL and refuses bad ones', () => {
    expect(pageQueryOf(new URLSearchParams('expiringWithinDays=3'))).toBeUndefined();
    expect(pageQueryOf(new URLSearchParams('q=Alice&limit=5'))).toEqual({ q: 'alice', sort: 'notAfter', order: 'asc', offset: 0, limit: 5 });
    for (const bad of ['sort=fingerprint', 'order=up', 'offset=-1', 'limit=0', 'limit=5000', 'offset=1.5']) expect(typeof pageQueryOf(new URLSearchParams(bad)), bad).toBe('string');
  });
});

describe('who may load the dashboard', () => {
  const exposed: AdminAccess = { tls: undefined, exposedPlain: true, publicMetrics: false, host: '0.0.0.0', readToken: undefined };
  it.each([
    ['/dashboard', true],
    ['/dashboard/dashboard.js', true],
    ['/dashboard/dashboard.css', true],
    ['/overview', 'unauthorized'],
    ['/refusals', 'unauthorized'],
    ['/certs', 'unauthorized'],
  ] as const)('off loopback without a token: %s -> %s (the shell holds no data)', (path, expected) => {
    const v = authorizeAdmin({ mutation: false, path, cert: { state: 'none' }, token: undefined }, exposed);
    expect(v.ok ? true : v.code).toBe(expected);
  });
});

describe('the dashboard endpoints', () => {
  let h: Harness;
  let alice: { cert: string; key: string };
  beforeAll(async () => {
    const pki = await createTestPki();
    const a = await pki.client({ cn: 'alice' });
    const b = await pki.client({ cn: 'bob' });
    alice = { cert: a.chainPem, key: a.keyPem };
    h = await startHarness({
      tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
      serverCa: pki.rootPem,
      routes: [{ name: 'api', upstream: BACKEND, allow: [{ cn: 'alice' }] }],
      admin: true,
      extra: { expiry: { warnDays: [14, 3] } },
    });
    expect((await h.request('/x', { client: alice })).status).toBe(200);
    expect((await h.request('/x', { client: { cert: b.chainPem, key: b.keyPem } })).status).toBe(403);
    expect((await h.request('/x')).status).toBe(401);
  });
  afterAll(async () => {
    await h?.close();
  });

  it.each([
    ['/dashboard', 'text/html; charset=utf-8', 'index.html'],
    ['/dashboard/dashboard.js', 'text/javascript; charset=utf-8', 'dashboard.js'],
    ['/dashboard/dashboard.css', 'text/css; charset=utf-8', 'dashboard.css'],
    ['/dashboard/favicon.svg', 'image/svg+xml', 'favicon.svg'],
  ])('serves %s as %s with CSP default-src self, X-Frame-Options DENY and nosniff', async (path, type, file) => {
    const res = await fetch(h.adminUrl + path);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(type);
    expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'self';/);
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await res.text()).toBe(readFileSync(join(ROOT, 'src/admin/dashboard-assets', file), 'utf8'));
  });

  it('the page loads its script and style from the same origin, with nothing inline', () => {
    const html = readFileSync(join(ROOT, 'src/admin/dashboard-assets/index.html'), 'utf8');
    expect(html).toMatch(/<script src="\/dashboard\/dashboard.js" defer><\/script>/);
    expect(html).not.toMatch(/<script>|<style|\sstyle=|\son\w+=|https?:\/\//);
    const js = readFileSync(join(ROOT, 'src/admin/dashboard-assets/dashboard.js'), 'utf8');
    // Data goes in as text: no HTML parsing sink anywhere in the script.
    expect(js).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
  });

  it('GET /overview: generation, store, thresholds, timeline, OCSP, monitors, refusals', async () => {
    const o = (await (await fetch(h.adminUrl + '/overview')).json()) as Record<string, any>;
    expect(o.generation).toBe(h.app.certgate.runtime.generation);
    expect(o.store).toEqual({ kind: 'file', state: 'ok' });
    expect(o.expiry).toEqual({ warnDays: [14, 3] });
    expect(o.inventory).toEqual({ total: 2, expired: 0, expiring: 0 }); // bob was seen, then refused by the route
    expect(o.timeline.items).toEqual([]); // the test PKI lives ten years; alice too
    expect(o.ocsp).toEqual({ enabled: false, cached: 0, cacheSize: 0, staple: null });
    expect(o.monitors).toEqual([]);
    // One per refused request: the request without a certificate is not counted twice (handshake + request).
    expect(o.refusals).toMatchObject({ total: 2, byCode: { identity_not_allowed: 1, certificate_required: 1 } });
    expect(await (await fetch(h.adminUrl + '/refusals')).json()).toMatchObject({ total: 2 });
  });

  it('GET /certs keeps its answer without paging parameters and pages with them', async () => {
    const plain = (await (await fetch(h.adminUrl + '/certs')).json()) as Record<string, unknown>;
    expect(Object.keys(plain).sort()).toEqual(['apiKeys', 'cas', 'clients', 'generatedAt', 'server']);
    const bad = await fetch(h.adminUrl + '/certs?limit=0');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.code).toBe('invalid_argument');
  });

  it('answers one small page of a 10,000-entry inventory quickly', async () => {
    const inv = h.app.lifecycle.inventory;
    const now = Date.now();
    for (let i = 0; i < 9_998; i++) {
      const hex = i.toString(16).padStart(8, '0');
      inv.connection(identityFixture({ fingerprint: hex.repeat(8), serial: hex, subject: `CN=bulk-${i}`, notAfter: new Date(now + (i % 400) * DAY) }));
    }
    const started = Date.now();
    const res = await fetch(h.adminUrl + '/certs?limit=50&offset=100&sort=subject&q=bulk');
    const text = await res.text();
    const elapsed = Date.now() - started;
    const body = JSON.parse(text) as { clients: unknown[]; page: unknown };
    expect(body.page).toEqual({ offset: 100, limit: 50, matched: 9_998, total: 10_000 });
    expect(body.clients).toHaveLength(50);
    expect(text.length).toBeLessThan(100_000);
    expect(elapsed).toBeLessThan(3_000);
    const o = (await (await fetch(h.adminUrl + '/overview')).json()) as Record<string, any>;
    expect(o.timeline.items.length).toBe(500);
    expect(o.timeline.clientsNotDrawn).toBeGreaterThan(0);
  });
});

describe('the built CLI', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'certgate-dashboard-cli-'));
    await (await createTestPki()).writeTo(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves the dashboard files from dist/ (copied by the build)', async () => {
    const file = join(dir, 'certgate.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
        admin: { host: '127.0.0.1', port: 0 },
        watch: { enabled: false },
        routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', allow: [{ cn: 'a' }] }],
      }),
    );
    const cg = await startCertgate(file);
    try {
      for (const f of ['dashboard.js', 'dashboard.css']) {
        const res = await fetch(`http://127.0.0.1:${cg.adminPort}/dashboard/${f}`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe(readFileSync(join(ROOT, 'src/admin/dashboard-assets', f), 'utf8'));
      }
    } finally {
      await stopCli(cg.child);
    }
  });
});
