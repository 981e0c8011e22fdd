// The dashboard in a real browser: certgate with real certificates and real requests, the page
// opened in the system Chromium (headless, through playwright-core), and what an operator sees
// checked in the DOM. A screenshot is kept in test-artifacts/ (gitignored).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { identityFixture } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { launchChromium, startDashboardScene, type Scene } from './dashboard-scene.js';

const ARTEFACTS = join(ROOT, 'test-artifacts');
const HOSTILE = '<img src=x onerror=window.__pwned=1>';
/** RFC 4514 escapes < and > with a backslash; `\<img ...` would still be a tag to an HTML parser. */
const HOSTILE_SHOWN = '<img src=x onerror=window.__pwned=1';
const DAY_MS = 86_400_000;

let scene: Scene;
let chromium: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const problems: string[] = [];

beforeAll(async () => {
  scene = await startDashboardScene({ hostileSubject: HOSTILE });
  chromium = await launchChromium();
  page = await chromium.context.newPage();
  // CSP violations reach the console as errors ("Refused to ..."); so do failed scripts.
  page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && problems.push(`console ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => r.status() >= 400 && problems.push(`HTTP ${r.status()}: ${r.url()}`));
  await page.goto(`${scene.h.adminUrl}/dashboard`);
  await page.waitForSelector('body[data-loaded="true"]', { timeout: 30_000 });
});

afterAll(async () => {
  await chromium?.close();
  await scene?.close();
});

const byName = (name: string) => scene.clients.find((c) => c.name === name)!;
const rowOf = (fp: string) => page.locator(`#clients tbody tr[data-fingerprint="${fp}"]`);

describe('the dashboard in Chromium', () => {
  it('lists every client certificate that made a request, with its days left', async () => {
    for (const c of scene.clients) {
      const row = rowOf(c.cert.fingerprint256);
      await expect(row.count(), c.name).resolves.toBe(1);
      expect(await row.locator('td.days').textContent(), c.name).toMatch(new RegExp(`^${c.daysLeft}(revoked)?$`));
      expect(await row.locator('td.subject').textContent()).toContain(c.name === 'hostile' ? HOSTILE_SHOWN : `CN=${c.name}`);
    }
    // Inside the 7-day threshold, and revoked, are highlighted.
    expect(await rowOf(byName('billing-worker').cert.fingerprint256).getAttribute('class')).toMatch(/\bexpiring\b/);
    expect((await rowOf(byName('batch-export').cert.fingerprint256).getAttribute('class')) ?? '').not.toMatch(/expiring|expired|revoked/);
    expect(await rowOf(byName('legacy-client').cert.fingerprint256).getAttribute('class')).toMatch(/\brevoked\b/);
    await mkdirOk();
    await page.screenshot({ path: join(ARTEFACTS, 'dashboard.png'), fullPage: true });
  });

  it('draws the certificate expiring in 5 days inside the 7-day warning band, after today and past the 1-day band', async () => {
    const fp = byName('billing-worker').cert.fingerprint256;
    const mark = (await page.locator(`svg.timeline g.mark.role-client[data-fingerprint="${fp}"] circle`).boundingBox())!;
    const band7 = (await page.locator('svg.timeline rect.band[data-threshold="7"]').boundingBox())!;
    const band1 = (await page.locator('svg.timeline rect.band[data-threshold="1"]').boundingBox())!;
    const today = (await page.locator('svg.timeline line.today').boundingBox())!;
    const x = mark.x + mark.width / 2;
    expect(x).toBeGreaterThan(band1.x + band1.width);
    expect(x).toBeLessThan(band7.x + band7.width);
    expect(x).toBeGreaterThan(today.x);
    expect(await page.locator(`svg.timeline g.mark[data-fingerprint="${fp}"]`).getAttribute('class')).toMatch(/expiring warn-1/);
    // Beyond 90 days (a client, the CAs): not on the timeline; the others are, in their own lanes.
    await expect(page.locator('svg.timeline g.mark.role-ca').count()).resolves.toBe(0);
    await expect(page.locator(`svg.timeline g.mark[data-fingerprint="${byName('batch-export').cert.fingerprint256}"]`).count()).resolves.toBe(0);
    for (const role of ['server', 'crl', 'monitor']) await expect(page.locator(`svg.timeline g.mark.role-${role}`).count(), role).resolves.toBeGreaterThan(0);
  });

  it('filters the table by text: subject, SPIFFE ID', async () => {
    const shown = () => page.locator('#clients tbody tr[data-fingerprint]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-fingerprint')));
    await page.fill('#filter', 'billing');
    await waitFor(async () => (await shown()).length === 1, { deadline: 10_000, what: 'the filtered table' });
    expect(await shown()).toEqual([byName('billing-worker').cert.fingerprint256]);
    await page.fill('#filter', 'sa/reporting');
    await waitFor(async () => (await shown())[0] === byName('reporting').cert.fingerprint256, { deadline: 10_000, what: 'the SPIFFE filter' });
    expect(await shown()).toHaveLength(1);
    await page.fill('#filter', 'no-such-client');
    await waitFor(async () => (await shown()).length === 0, { deadline: 10_000, what: 'an empty result' });
    await page.fill('#filter', '');
    await waitFor(async () => (await shown()).length === scene.clients.length, { deadline: 10_000, what: 'the unfiltered table' });
  });

  it('shows a subject made of markup as text, never as an element', async () => {
    const cell = rowOf(byName('hostile').cert.fingerprint256).locator('td.subject');
    expect(await cell.textContent()).toContain(HOSTILE_SHOWN);
    await expect(cell.locator('img').count()).resolves.toBe(0);
    await expect(page.locator('img').count()).resolves.toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
  });

  it('shows own certificates, CRLs, OCSP, monitors, revocations, refusals, the generation and the store', async () => {
    expect(await page.textContent('#generation')).toBe('2');
    expect(await page.textContent('#store')).toBe('file (ok)');
    await expect(page.locator('#own tbody tr').count()).resolves.toBeGreaterThanOrEqual(3);
    expect(await page.textContent('#own tbody')).toContain('CN=localhost');
    expect(await page.locator('#crls tbody tr td').last().textContent()).toBe('1');
    expect(await page.textContent('#ocsp')).toContain('Client checks off');
    expect(await page.textContent('#monitors tbody')).toContain(`127.0.0.1:${scene.h.port}`);
    expect(await page.locator('#monitors tbody tr td').nth(1).textContent()).toBe('yes');
    const revocation = await page.textContent('#revocations tbody');
    expect(revocation).toContain('keyCompromise');
    expect(revocation).toContain('token@');
    expect(await page.textContent('#revocation-counts')).toBe('1 in the local list; 1 serials listed in 1 CRL.');
    const refusals = Object.fromEntries(
      await page.locator('#refusals tbody tr[data-code]').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-code'), Number(r.children[1]!.textContent)])),
    );
    expect(refusals).toEqual({ identity_not_allowed: 1, certificate_required: 1, certificate_revoked: 1 });
  });

  it('pages a 10,000-entry inventory and filters it within a second or two', async () => {
    const inv = scene.h.app.lifecycle.inventory;
    const now = Date.now();
    for (let i = 0; i < 10_000; i++) {
      const hex = i.toString(16).padStart(8, '0');
      inv.connection(identityFixture({ fingerprint: hex.repeat(8), serial: hex, subject: `CN=bulk-${i}, O=fleet`, notAfter: new Date(now + (20 + (i % 300)) * DAY_MS) }));
    }
    const total = 10_000 + scene.clients.length;
    await waitFor(async () => (await page.textContent('#clients-count')) === `${total} certificates`, { deadline: 15_000, what: 'the next poll' });
    await page.click('#next');
    await waitFor(async () => (await page.textContent('#page-info')) === `51–100 of ${total}`, { deadline: 15_000, what: 'the second page of the large inventory' });
    await expect(page.locator('#clients tbody tr').count()).resolves.toBe(50);
    const started = Date.now();
    await page.fill('#filter', 'bulk-9999,');
    await waitFor(async () => (await page.textContent('#clients-count')) === `1 of ${total} certificates match`, { deadline: 15_000, what: 'the filtered large inventory' });
    // 200 ms of that is the typing debounce; the rest is one /certs page and 50 rows.
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(page.locator('#clients tbody tr').count()).resolves.toBe(1);
    expect(await page.textContent('#timeline-note')).toMatch(/more client certificates expire within 90 days/);
  });

  it('loaded without a console error, CSP violation or failed request', () => {
    expect(problems).toEqual([]);
  });
});

async function mkdirOk(): Promise<void> {
  mkdirSync(ARTEFACTS, { recursive: true });
}
