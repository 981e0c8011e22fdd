// The bench harness itself works: a very short run of every scenario through the real harness
// (real certgate, backend, bare node:https and lean proxy processes), zero errors, every report
// field, the lean column and the ratio checks, the machine's load. No timing assertions: this
// machine's numbers say nothing here.

import { describe, expect, it, beforeAll } from 'vitest';
import { DEFAULTS, FLEET_SCENARIOS, H2_SCENARIOS, projectRoot, revocationAvailable, runBench, SCENARIOS } from '../../bench/harness.js';
import { loadWarnings, OTHERS_WARN_CORES } from '../../bench/machine.js';
import { computeChecks, IDLE_FIELDS, renderMarkdown, renderSvg, renderTable, ROW_FIELDS, type BenchReport } from '../../bench/report.js';

// The HTTP/2 and fleet scenarios have their own targets and tests (h2.test.ts, fleet.test.ts).
const HTTP1_SCENARIOS = SCENARIOS.filter((s) => !H2_SCENARIOS.includes(s) && !FLEET_SCENARIOS.includes(s));

function field(o: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v === null || v === undefined ? undefined : (v as Record<string, unknown>)[k]), o);
}

describe('bench smoke run', () => {
  let rep: BenchReport;
  beforeAll(async () => {
    // The harness runs certgate and its reference servers from dist/ (test/helpers/build.ts builds it).
    rep = await runBench({
      ...DEFAULTS,
      scenarios: HTTP1_SCENARIOS,
      // maxRequests ends each window on a fast machine; the long window is for a loaded one
      // (at 250 ms, and at 1.5 s for the large bodies, a busy machine measured no request at all).
      durationMs: 5000,
      warmupMs: 50,
      connections: 4,
      maxRequests: 300,
      // A starved machine may serve nothing in 250 ms: each target must serve some requests.
      minRequests: 5,
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

  it('runs every scenario against direct, bare, the lean proxy and certgate with zero errors', async () => {
    const ran = new Set(rep.rows.map((r) => r.scenario));
    const notRunnable = await revocationAvailable();
    for (const s of HTTP1_SCENARIOS) {
      if (s === 'idle-memory') continue;
      if (s === 'revocation' && notRunnable !== undefined) {
        expect(rep.skipped).toContainEqual({ scenario: 'revocation', reason: notRunnable });
        continue;
      }
      expect(ran.has(s), s).toBe(true);
      const targets = rep.rows.filter((r) => r.scenario === s).map((r) => r.target);
      expect(targets).toContain('direct');
      expect(targets).toContain('bare');
      expect(targets).toContain('lean');
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

  it('puts the lean proxy beside certgate: per-row ratios and the issue 13 checks with their limits', () => {
    for (const r of rep.rows.filter((x) => x.target.startsWith('certgate'))) expect(r.vsLean?.cpuRatio, `${r.scenario}/${r.target}`).toBeTypeOf('number');
    for (const r of rep.rows.filter((x) => x.scenario.startsWith('large-body') && x.target === 'certgate')) expect(r.vsLean?.cpuPerMiBRatio).toBeTypeOf('number');
    for (const r of rep.rows.filter((x) => x.target === 'lean' || x.target === 'bare' || x.target === 'direct')) expect(r.vsLean).toBeNull();
    const limits: [string, number][] = [
      ['keepalive: CPU/req vs lean (access log on)', 1.2],
      ['keepalive: CPU/req vs bare (access log on)', 2.0],
      ['keepalive at half of peak: CPU/req vs lean (access log on)', 1.2],
      ['keepalive at half of peak: CPU/req vs bare (access log on)', 2.0],
      ['large-body-up CPU/MiB vs lean', 1.5],
      ['large-body-down CPU/MiB vs lean', 1.5],
    ];
    for (const [name, limit] of limits) {
      const c = rep.checks.find((x) => x.name === name && x.run === 1);
      expect(c, name).toBeDefined();
      expect(c!.limit).toBe(limit);
      expect(c!.ok).toBe(c!.value <= limit);
    }
    const info = rep.checks.find((x) => x.name === 'keepalive: lean CPU/req vs bare');
    expect(info?.limit).toBeNull();
    expect(info?.ok).toBeNull();
    const md = renderMarkdown(rep);
    expect(md).toContain('| keepalive | lean |');
    expect(md).toContain('## certgate beside the lean proxy');
    expect(md).toMatch(/\| keepalive \| certgate \| 1 \| ms\/req \|/);
    expect(md).toMatch(/\| large-body-down \| certgate \| 1 \| ms\/MiB \|/);
    expect(md).toContain('| keepalive: CPU/req vs lean (access log on) | 1.20 |');
    expect(renderTable(rep)).toContain('x lean');
    expect(renderSvg(rep)).toContain('>lean</text>');
  });

  it("writes certgate's access log to its stdout pipe, and nothing per request with the log off", () => {
    expect(rep.meta.accessLog).toContain('stdout');
    const on = rep.rows.find((r) => r.scenario === 'keepalive' && r.target === 'certgate')!;
    const off = rep.rows.find((r) => r.scenario === 'keepalive' && r.target === 'certgate-nolog')!;
    // One JSON line per request; the pipe is read asynchronously, so only roughly.
    expect(on.stdoutBytesPerRequest!).toBeGreaterThan(50);
    expect(off.stdoutBytesPerRequest!).toBeLessThan(1);
  });

  it("records the machine's load per scenario and per window, and warns when others were busy", () => {
    const measured = [...new Set(rep.rows.map((r) => r.scenario))].concat(rep.idle.length > 0 ? ['idle-memory'] : []);
    expect(rep.load.map((l) => l.scenario).sort()).toEqual(measured.sort());
    for (const l of rep.load) {
      expect(l.before).toHaveLength(3);
      expect(l.after).toHaveLength(3);
      for (const x of [...l.before, ...l.after, l.othersCoresMax]) expect(x).toBeGreaterThanOrEqual(0);
    }
    for (const r of rep.rows) expect(r.machine.othersCores, `${r.scenario}/${r.target}`).toBeGreaterThanOrEqual(0);
    expect(rep.warnings).toEqual(loadWarnings(rep.load, rep.meta.cores));
    const busy = { scenario: 'keepalive', before: [3, 2, 1], after: [4, 2, 1], othersCoresMax: OTHERS_WARN_CORES + 0.5, stealCoresMax: 0 };
    const quiet = { ...busy, scenario: 'resumed', othersCoresMax: 0.01 };
    const lines = loadWarnings([busy, quiet], 2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^WARNING: keepalive: other processes used up to 0\.70 of 2 cores .*noise$/);
    const md = renderMarkdown({ ...rep, warnings: lines });
    expect(md).toContain(`**${lines[0]}.**`);
    expect(md).toContain('## Machine load');
  });
});

describe('npm run bench -- --help', () => {
  it('names every option the bench accepts', async () => {
    const { HELP, OPTIONS } = await import('../../bench/options.js');
    for (const [name, o] of Object.entries(OPTIONS)) {
      expect(HELP, name).toContain(`--${name}`);
      if ('short' in o) expect(HELP).toContain(`-${o.short}, --${name}`);
    }
    for (const s of SCENARIOS) expect(HELP).toContain(s);
  });
});
