// The bench harness itself works: a very short run of every scenario through the real harness
// (real certgate, backend and bare node:https processes), zero errors, every report field.
// No timing assertions: this machine's numbers say nothing here.

import { describe, expect, it, beforeAll } from 'vitest';
import { DEFAULTS, revocationAvailable, runBench, SCENARIOS } from '../../bench/harness.js';
import { computeChecks, IDLE_FIELDS, renderMarkdown, renderSvg, renderTable, ROW_FIELDS, type BenchReport } from '../../bench/report.js';

function field(o: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v === null || v === undefined ? undefined : (v as Record<string, unknown>)[k]), o);
}

describe('bench smoke run', () => {
  let rep: BenchReport;
  beforeAll(async () => {
    // The harness runs certgate and its reference servers from dist/ (test/helpers/build.ts builds it).
    rep = await runBench({
      ...DEFAULTS,
      // maxRequests ends each window on a fast machine; the long window is for a loaded one
      // (at 250 ms, and at 1.5 s for the large bodies, a busy machine measured no request at all).
      durationMs: 5000,
      warmupMs: 50,
      connections: 4,
      maxRequests: 300,
      idleConnections: 200,
      identities: 40,
      routes: 20,
      crlEntries: 1000,
      localRevocations: 100,
      pin: false,
      log: () => {},
    });
    rep.checks = computeChecks(rep);
  }, 300_000);

  it('runs every scenario against direct, bare and certgate with zero errors', async () => {
    const ran = new Set(rep.rows.map((r) => r.scenario));
    const notRunnable = await revocationAvailable();
    for (const s of SCENARIOS) {
      if (s === 'idle-memory') continue;
      if (s === 'revocation' && notRunnable !== undefined) {
        expect(rep.skipped).toContainEqual({ scenario: 'revocation', reason: notRunnable });
        continue;
      }
      expect(ran.has(s), s).toBe(true);
      const targets = rep.rows.filter((r) => r.scenario === s).map((r) => r.target);
      expect(targets).toContain('direct');
      expect(targets).toContain('bare');
      expect(targets.some((t) => t.startsWith('certgate'))).toBe(true);
    }
    for (const r of rep.rows) {
      expect(r.errors, `${r.scenario}/${r.target}: ${r.errorSamples.join('; ')}`).toBe(0);
      expect(r.requests, `${r.scenario}/${r.target}`).toBeGreaterThan(0);
    }
    expect(rep.checks.filter((c) => c.name === 'errors').every((c) => c.value === 0)).toBe(true);
  });

  it('reports every field of every row, idle memory for bare and certgate, and resumption', () => {
    for (const r of rep.rows) for (const f of ROW_FIELDS) expect(field(r, f), `${r.scenario}/${r.target}: ${f}`).not.toBeUndefined();
    for (const r of rep.rows.filter((x) => x.target !== 'direct')) expect(r.vsDirect, `${r.scenario}/${r.target}`).not.toBeNull();
    for (const r of rep.rows.filter((x) => x.target !== 'direct' && x.target !== 'bare')) expect(r.vsBare?.cpuRatio).toBeTypeOf('number');
    for (const r of rep.rows.filter((x) => x.scenario.startsWith('large-body') && x.target === 'certgate')) {
      expect(r.cpuPerMiB?.server).toBeTypeOf('number');
      expect(r.cpuPerMiB?.backend).toBeTypeOf('number');
    }
    // Resumed connections really resume, handshakes really do not.
    for (const r of rep.rows.filter((x) => x.scenario === 'resumed' && x.target !== 'direct')) expect(r.resumedRatio!).toBeGreaterThan(0.5);
    for (const r of rep.rows.filter((x) => x.scenario.startsWith('handshake') && x.target !== 'direct')) expect(r.resumedRatio).toBe(0);
    expect(rep.idle.map((r) => r.target).sort()).toEqual(['bare', 'certgate']);
    for (const r of rep.idle) {
      for (const f of IDLE_FIELDS) expect(field(r, f), f).not.toBeUndefined();
      expect(r.errors).toBe(0);
      expect(r.connections).toBe(200);
    }
  });

  it('renders the table, the Markdown summary and an SVG chart', () => {
    expect(renderTable(rep)).toContain('keepalive');
    const md = renderMarkdown(rep);
    expect(md).toContain('| keepalive | certgate |');
    expect(md).toContain('bench.svg');
    const svg = renderSvg(rep);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('requests per second');
    expect(svg).toContain('p99 latency');
  });
});
