// The bench's fleet scenarios (issue 12) run: a tiny fleet-propagation and keepalive-redis
// through the real harness (two certgate processes on the bench's own real redis-server, and
// certgate with store.redis beside the file store's), every row with samples or requests and
// zero errors, their checks and the Fleet table; the measure also runs alone; and without
// redis-server the bench names the Debian package to install. No timing assertions: this
// machine's numbers say nothing here.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runFleetBench } from '../../bench/fleet.js';
import { DEFAULTS, FLEET_SCENARIOS, runBench } from '../../bench/harness.js';
import { computeChecks, renderMarkdown, renderTable, ROW_FIELDS, type BenchReport } from '../../bench/report.js';
import { ROOT } from '../helpers/cli.js';

function field(o: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v === null || v === undefined ? undefined : (v as Record<string, unknown>)[k]), o);
}

describe('bench fleet scenarios, a tiny run', () => {
  let rep: BenchReport;
  beforeAll(async () => {
    // The harness runs certgate and the reference servers from dist/ (test/helpers/build.ts builds it).
    rep = await runBench({
      ...DEFAULTS,
      scenarios: [...FLEET_SCENARIOS],
      durationMs: 300,
      warmupMs: 50,
      connections: 2,
      maxRequests: 200,
      // A starved machine may serve nothing in 300 ms: each target must serve some requests.
      minRequests: 5,
      fleetRevocations: 3,
      fleetMaxMs: 30_000,
      pin: false,
      log: () => {},
    });
    rep.checks = computeChecks(rep);
  }, 180_000);

  it('times every revocation from POST on A to B closing the connection, with no error', () => {
    const rows = rep.rows.filter((r) => r.scenario === 'fleet-propagation');
    expect(rows.map((r) => r.target)).toEqual(['certgate-fleet']);
    const r = rows[0]!;
    expect(r.errors, r.errorSamples.join('; ')).toBe(0);
    expect(r.requests).toBe(3);
    expect(r.latencyMs.p50).toBeGreaterThan(0);
    expect(r.latencyMs.p99).toBeGreaterThanOrEqual(r.latencyMs.p50);
    expect(r.cpu.serverSeconds).toBeGreaterThanOrEqual(0);
    for (const f of ROW_FIELDS) expect(field(r, f), f).not.toBeUndefined();
    const c = rep.checks.find((x) => x.name.startsWith('fleet-propagation p99') && x.run === 1);
    expect(c?.value).toBe(r.latencyMs.p99);
    expect(c?.limit).toBe(1000);
    expect(rep.meta.options).toMatchObject({ fleetRevocations: 3, fleetMaxMs: 30_000 });
  });

  it('runs keepalive against certgate with the Redis store beside the file store, with requests and no error', () => {
    const rows = rep.rows.filter((r) => r.scenario === 'keepalive-redis');
    expect(rows.map((r) => r.target)).toEqual(['bare', 'certgate', 'certgate-redis']);
    for (const r of rows) {
      expect(r.errors, `${r.target}: ${r.errorSamples.join('; ')}`).toBe(0);
      expect(r.requests, r.target).toBeGreaterThan(0);
      for (const f of ROW_FIELDS) expect(field(r, f), `${r.target}: ${f}`).not.toBeUndefined();
    }
    const c = rep.checks.find((x) => x.name === 'keepalive-redis: Redis store CPU/req vs file store (bound 1.05)' && x.run === 1);
    expect(c).toBeDefined();
    expect(c!.limit).toBeNull();
    expect(c!.value).toBeGreaterThan(0);
    expect(rep.checks.find((x) => x.name === 'errors')?.value).toBe(0);
  });

  it('shows both in the table and in bench.md', () => {
    const md = renderMarkdown(rep);
    expect(md).toContain('## Fleet (Redis store)');
    expect(md).toMatch(/\| fleet-propagation \| certgate-fleet \| 1 \| 3 \|/);
    expect(md).toMatch(/\| keepalive-redis \| 1 \|/);
    const table = renderTable(rep);
    expect(table).toContain('revocations');
    expect(table).toContain('Redis store ms/req');
  });
});

describe('fleet propagation bench, alone', () => {
  it('measures POST /revocations on A to B closing the connection, for every sample', async () => {
    const r = await runFleetBench(3);
    expect(r.errors).toBe(0);
    expect(r.samples).toBe(3);
    expect(r.p50Ms).toBeGreaterThan(0);
    expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
    expect(r.maxMs).toBeGreaterThanOrEqual(r.p99Ms);
  }, 120_000);
});

describe('npm run bench without redis-server', () => {
  it('does not run the fleet scenarios asked for, names the Debian package and fails', () => {
    const out = mkdtempSync(join(tmpdir(), 'certgate-bench-out-'));
    const empty = mkdtempSync(join(tmpdir(), 'certgate-no-path-'));
    try {
      // A PATH with nothing on it: no redis-server (node itself is run by its full path).
      const r = spawnSync(process.execPath, [join(ROOT, 'dist/bench/run.js'), '--scenario', FLEET_SCENARIOS.join(','), '--no-pin', '--out', out], {
        cwd: ROOT,
        env: { ...process.env, PATH: empty },
        encoding: 'utf8',
        timeout: 120_000,
      });
      expect(r.status, r.stderr).toBe(1);
      for (const s of FLEET_SCENARIOS) {
        expect(r.stdout).toContain(`not run: ${s}: redis-server is not installed: install Debian's redis-server package (sudo apt-get install -y redis-server`);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
      rmSync(empty, { recursive: true, force: true });
    }
  }, 150_000);
});
