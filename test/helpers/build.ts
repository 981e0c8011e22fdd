// vitest globalSetup: tests that run the CLI or the bench harness use the built dist/. `npm test`
// builds first; a file run on its own (`npx vitest run test/...`) gets the build here when a
// source is newer than dist/. A failed build fails the run with tsc's errors, never silently.

import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT } from './cli.js';

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (/\.(ts|js|css|html)$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

export default function setup(): void {
  const sources = Math.max(newestSource(join(ROOT, 'src')), newestSource(join(ROOT, 'bench')), statSync(join(ROOT, 'tsconfig.json')).mtimeMs);
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= sources) return;
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`the build (tsc -p tsconfig.build.json) failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  // As package.json's build does: the dashboard's page is served from beside the compiled module.
  cpSync(join(ROOT, 'src', 'admin', 'dashboard-assets'), join(ROOT, 'dist', 'src', 'admin', 'dashboard-assets'), { recursive: true });
}
