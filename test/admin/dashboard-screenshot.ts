// Regenerates docs/images/dashboard.png from a real certgate (the browser test's scene) in the
// system Chromium: `npm run docs:screenshot`.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { launchChromium, startDashboardScene } from './dashboard-scene.js';

it('writes docs/images/dashboard.png', async () => {
  const scene = await startDashboardScene();
  const chromium = await launchChromium({ width: 1360, height: 900 });
  try {
    const page = await chromium.context.newPage();
    await page.goto(`${scene.h.adminUrl}/dashboard`);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 30_000 });
    mkdirSync(join(ROOT, 'docs', 'images'), { recursive: true });
    const out = join(ROOT, 'docs', 'images', 'dashboard.png');
    await page.screenshot({ path: out, fullPage: true });
    expect(await page.locator('#clients tbody tr[data-fingerprint]').count()).toBe(scene.clients.length);
  } finally {
    await chromium.close();
    await scene.close();
  }
});
