// GET /dashboard: one static page (HTML, JS, CSS under dashboard-assets/, readable source, no
// third-party code) that polls the admin JSON endpoints. The shell holds no data, so it is open
// like /healthz: a browser cannot send a bearer token on a navigation, and the page asks for the
// token when a JSON read is refused. Every piece of data comes through the protected reads.
// Certificate fields are attacker-chosen: the script inserts them only as text, and the CSP
// (no inline script or style, same origin only) would stop anything it missed.

import { readFileSync } from 'node:fs';
import { registerDashboardData, type DashboardSources } from './dashboard-data.js';
import type { AdminServer } from './server.js';

/** The build copies dashboard-assets/ beside the compiled module (package.json "build"). */
const ASSET_DIR = new URL('./dashboard-assets/', import.meta.url);

const ASSETS = [
  { path: '/dashboard', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/dashboard/dashboard.js', file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  { path: '/dashboard/dashboard.css', file: 'dashboard.css', type: 'text/css; charset=utf-8' },
  { path: '/dashboard/favicon.svg', file: 'favicon.svg', type: 'image/svg+xml' },
] as const;

/** Paths that serve no data: open like /healthz (access.ts). */
export const DASHBOARD_SHELL_PATHS: readonly string[] = ASSETS.map((a) => a.path);

export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** Reads the page's files once (a missing file fails the admin start, not the first visit). */
export function registerDashboardPage(admin: AdminServer): void {
  for (const a of ASSETS) {
    const body = readFileSync(new URL(a.file, ASSET_DIR));
    admin.route('GET', a.path, (r) => {
      r.res.writeHead(200, { ...DASHBOARD_HEADERS, 'content-type': a.type, 'content-length': body.length, 'x-request-id': r.requestId });
      r.res.end(body);
    });
  }
}

/** The page and the JSON it reads besides /certs and /revocations. */
export function registerDashboard(admin: AdminServer, sources: DashboardSources): void {
  registerDashboardPage(admin);
  registerDashboardData(admin, sources);
}
