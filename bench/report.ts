// The bench report: the shape of the JSON, the target checks (ratios within one run), the
// printed table, and the Markdown summary with a hand-written SVG chart.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Row {
  scenario: string;
  /** direct (plain HTTP backend), bare (node:https), certgate, certgate-nolog, certgate-many ... */
  target: string;
  run: number;
  requests: number;
  errors: number;
  errorSamples: string[];
  seconds: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  cpu: {
    /** utime+stime of the measured process (its workers included) over the window. */
    serverSeconds: number;
    serverPer1k: number;
    serverCoreUtil: number;
    /** The backend's CPU per 1,000 requests while it served this target (null for direct/bare). */
    backendPer1k: number | null;
    loadgenPer1k: number;
    loadgenCoreUtil: number;
  };
  mib: number | null;
  cpuPerMiB: { server: number; backend: number } | null;
  connectionsOpened: number | null;
  resumedRatio: number | null;
  peakRssMiB: number | null;
  vsDirect: { throughputRatio: number; addedP50Ms: number; addedP99Ms: number } | null;
  vsBare: { cpuRatio: number } | null;
}

export interface IdleRow {
  target: string;
  run: number;
  connections: number;
  errors: number;
  errorSamples: string[];
  rssBeforeMiB: number;
  rssAfterMiB: number;
  perConnectionKiB: number;
}

export interface Check {
  name: string;
  run: number;
  value: number;
  limit: number;
  ok: boolean;
  detail: string;
}

export interface BenchReport {
  meta: {
    date: string;
    node: string;
    cores: number;
    pinned: { loadgenAndBackend: number[]; server: number[] | 'all' } | null;
    procAvailable: boolean;
    options: Record<string, unknown>;
    wallSeconds: number;
  };
  rows: Row[];
  idle: IdleRow[];
  skipped: { scenario: string; reason: string }[];
  checks: Check[];
}

/** Every field a report row must carry (the smoke test checks them). */
export const ROW_FIELDS: readonly string[] = [
  'scenario', 'target', 'run', 'requests', 'errors', 'seconds', 'rps', 'latencyMs.p50', 'latencyMs.p90', 'latencyMs.p99', 'latencyMs.max',
  'cpu.serverSeconds', 'cpu.serverPer1k', 'cpu.loadgenPer1k', 'peakRssMiB',
];
export const IDLE_FIELDS: readonly string[] = ['target', 'run', 'connections', 'errors', 'rssBeforeMiB', 'rssAfterMiB', 'perConnectionKiB'];

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** The targets of issue 7, as ratios measured side by side in one run. */
export function computeChecks(rep: BenchReport): Check[] {
  const out: Check[] = [];
  const runs = [...new Set(rep.rows.map((r) => r.run).concat(rep.idle.map((r) => r.run)))].sort();
  const row = (scenario: string, target: string, run: number) => rep.rows.find((r) => r.scenario === scenario && r.target === target && r.run === run);
  for (const run of runs) {
    const ratio = (name: string, a: number | undefined, b: number | undefined, limit: number, detail: string) => {
      if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return;
      const value = r3(a / b);
      out.push({ name, run, value, limit, ok: value <= limit, detail });
    };
    const bareKa = row('keepalive', 'bare', run)?.cpu.serverPer1k;
    ratio('keepalive CPU/req vs bare (access log on)', row('keepalive', 'certgate', run)?.cpu.serverPer1k, bareKa, 2.0, 'certgate CPU s per 1k req / bare node:https');
    ratio('keepalive CPU/req vs bare (access log off)', row('keepalive', 'certgate-nolog', run)?.cpu.serverPer1k, bareKa, 2.0, 'same, access log off (informative)');
    for (const s of ['handshake-ecdsa', 'handshake-rsa']) {
      ratio(`${s} CPU/handshake vs bare`, row(s, 'certgate', run)?.cpu.serverPer1k, row(s, 'bare', run)?.cpu.serverPer1k, 1.15, 'one full mTLS handshake per request');
    }
    for (const s of ['large-body-up', 'large-body-down']) {
      const r = row(s, 'certgate', run);
      ratio(`${s} CPU/MiB vs backend`, r?.cpuPerMiB?.server, r?.cpuPerMiB?.backend, 4.0, "certgate CPU per MiB / the backend's own, same window");
    }
    const half = (t: string) => row('keepalive-half', t, run)?.cpu.serverPer1k;
    ratio('keepalive at half of peak: CPU/req vs bare (access log on)', half('certgate'), half('bare'), 2.0, 'same offered load for every target');
    ratio('keepalive at half of peak: CPU/req vs bare (access log off)', half('certgate-nolog'), half('bare'), 2.0, 'same, access log off (informative)');
    const addedP99 = row('keepalive-half', 'certgate', run)?.vsDirect?.addedP99Ms;
    if (addedP99 !== undefined && Number.isFinite(addedP99)) out.push({ name: 'keepalive at half of peak: p99 added vs direct (ms)', run, value: addedP99, limit: 2, ok: addedP99 <= 2, detail: 'latency certgate adds at half of its peak' });
    const ka = row('keepalive', 'certgate', run)?.cpu.serverPer1k;
    ratio('many-identities CPU/req vs keepalive', row('many-identities', 'certgate-many', run)?.cpu.serverPer1k, ka, 1.1, '1,000 identities, 200 routes, 1,000 allow rules');
    ratio('revocation CPU/req vs keepalive', row('revocation', 'certgate-revocation', run)?.cpu.serverPer1k, ka, 1.1, 'the same with a 100k-entry CRL loaded');
    // 1,000 connections cost more per request than 16 for any server (bare too): these two set
    // the rules and the revocation data apart from the connection pattern.
    const bareRatio = (s: string, t: string) => {
      const a = row(s, t, run)?.cpu.serverPer1k;
      const b = row(s, 'bare', run)?.cpu.serverPer1k;
      return a !== undefined && b !== undefined ? a / b : undefined;
    };
    ratio('many-identities x bare vs keepalive x bare', bareRatio('many-identities', 'certgate-many'), bareRatio('keepalive', 'certgate'), 1.1, 'each against the bare server in its own scenario');
    ratio('revocation CPU/req vs many-identities', row('revocation', 'certgate-revocation', run)?.cpu.serverPer1k, row('many-identities', 'certgate-many', run)?.cpu.serverPer1k, 1.1, 'same connections and policy, plus 100k CRL + local list');
    const idleOf = (t: string) => rep.idle.find((r) => r.target === t && r.run === run)?.perConnectionKiB;
    ratio('idle memory per connection vs bare', idleOf('certgate'), idleOf('bare'), 1.2, 'RSS growth per idle mTLS connection after one request');
    const errors = rep.rows.filter((r) => r.run === run).reduce((a, r) => a + r.errors, 0) + rep.idle.filter((r) => r.run === run).reduce((a, r) => a + r.errors, 0);
    out.push({ name: 'errors', run, value: errors, limit: 0, ok: errors === 0, detail: 'every scenario, every target' });
  }
  return out;
}

const fmt = (x: number | null | undefined, d = 2): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

function table(header: string[], lines: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(header), w.map((n) => '-'.repeat(n)).join('  '), ...lines.map(line)].join('\n');
}

const HEAD = ['scenario', 'target', 'run', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'x direct', '+p99 ms', 'CPU s/1k', 'x bare', 'core%', 'loadgen%', 'MiB CPU s', 'resumed', 'RSS MiB', 'errors'];

function rowCells(r: Row): string[] {
  return [
    r.scenario, r.target, String(r.run), fmt(r.rps, 0), fmt(r.latencyMs.p50, 3), fmt(r.latencyMs.p90, 3), fmt(r.latencyMs.p99, 3), fmt(r.latencyMs.max, 1),
    fmt(r.vsDirect?.throughputRatio), fmt(r.vsDirect?.addedP99Ms, 3), fmt(r.cpu.serverPer1k, 3), fmt(r.vsBare?.cpuRatio), fmt(r.cpu.serverCoreUtil * 100, 0),
    fmt(r.cpu.loadgenCoreUtil * 100, 0), r.cpuPerMiB ? `${fmt(r.cpuPerMiB.server, 4)}/${fmt(r.cpuPerMiB.backend, 4)}` : '-', fmt(r.resumedRatio), fmt(r.peakRssMiB, 0), String(r.errors),
  ];
}

export function renderTable(rep: BenchReport): string {
  const parts = [table(HEAD, rep.rows.map(rowCells))];
  if (rep.idle.length > 0) {
    parts.push(table(['idle-memory', 'target', 'run', 'connections', 'RSS before MiB', 'RSS after MiB', 'KiB/conn', 'errors'],
      rep.idle.map((r) => ['idle', r.target, String(r.run), String(r.connections), fmt(r.rssBeforeMiB, 1), fmt(r.rssAfterMiB, 1), fmt(r.perConnectionKiB, 1), String(r.errors)])));
  }
  if (rep.checks.length > 0) {
    parts.push(table(['target check', 'run', 'value', 'limit', 'met'], rep.checks.map((c) => [c.name, String(c.run), fmt(c.value, 3), fmt(c.limit, 2), c.ok ? 'yes' : 'NO'])));
  }
  for (const s of rep.skipped) parts.push(`not run: ${s.scenario}: ${s.reason}`);
  return parts.join('\n\n');
}

export function renderMarkdown(rep: BenchReport, svgName = 'bench.svg'): string {
  const md: string[] = [];
  const m = rep.meta;
  md.push(`# certgate bench, ${m.date}`, '');
  md.push(`Node ${m.node}, ${m.cores} cores, ${m.pinned ? `load generator and backend pinned to CPU ${m.pinned.loadgenAndBackend.join(',')}, measured server on ${m.pinned.server === 'all' ? 'all CPUs' : 'CPU ' + m.pinned.server.join(',')}` : 'not pinned'}; options: \`${JSON.stringify(m.options)}\`.`, '');
  md.push(`![throughput and p99 per scenario](${svgName})`, '');
  md.push('CPU s/1k is the measured process\'s utime+stime per 1,000 requests (for `direct` the backend\'s). "x bare" divides it by the bare node:https server\'s in the same scenario and run; "x direct" is throughput relative to plain HTTP to the backend; "MiB CPU s" is certgate / backend CPU seconds per MiB.', '');
  md.push('| ' + HEAD.join(' | ') + ' |', '|' + HEAD.map((_, i) => (i < 2 ? '---' : '---:')).join('|') + '|');
  for (const r of rep.rows) md.push('| ' + rowCells(r).join(' | ') + ' |');
  if (rep.idle.length > 0) {
    md.push('', '| idle connections | target | run | RSS before MiB | RSS after MiB | KiB per connection | errors |', '|---|---|---:|---:|---:|---:|---:|');
    for (const r of rep.idle) md.push(`| ${r.connections} | ${r.target} | ${r.run} | ${fmt(r.rssBeforeMiB, 1)} | ${fmt(r.rssAfterMiB, 1)} | ${fmt(r.perConnectionKiB, 1)} | ${r.errors} |`);
  }
  if (rep.checks.length > 0) {
    md.push('', '| target | run | measured | limit | met |', '|---|---:|---:|---:|---|');
    for (const c of rep.checks) md.push(`| ${c.name} | ${c.run} | ${fmt(c.value, 3)} | ${fmt(c.limit, 2)} | ${c.ok ? 'yes' : '**no**'} |`);
  }
  for (const s of rep.skipped) md.push('', `Not run: **${s.scenario}**: ${s.reason}.`);
  return md.join('\n') + '\n';
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** Two panels of grouped bars (first run): requests/s and p99 latency, per scenario and target. */
export function renderSvg(rep: BenchReport): string {
  const rows = rep.rows.filter((r) => r.run === 1);
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  const targets = [...new Set(rows.map((r) => r.target))];
  const colours = ['#888888', '#4e79a7', '#e15759', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948'];
  const W = 960, panelH = 220, top = 40, left = 70, gap = 70;
  const H = top + 2 * panelH + gap + 60;
  const groupW = (W - left - 20) / Math.max(1, scenarios.length);
  const barW = Math.max(2, (groupW - 12) / Math.max(1, targets.length));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  const panel = (title: string, y0: number, value: (r: Row) => number) => {
    const max = Math.max(1e-9, ...rows.map(value).filter(Number.isFinite));
    out.push(`<text x="${left}" y="${y0 - 8}" font-size="13" font-weight="bold">${esc(title)}</text>`);
    out.push(`<line x1="${left}" y1="${y0 + panelH}" x2="${W - 20}" y2="${y0 + panelH}" stroke="#333"/>`);
    for (let k = 0; k <= 4; k++) {
      const y = y0 + panelH - (panelH * k) / 4;
      out.push(`<line x1="${left}" y1="${y}" x2="${W - 20}" y2="${y}" stroke="#ddd"/><text x="${left - 6}" y="${y + 4}" text-anchor="end">${fmt((max * k) / 4, max >= 100 ? 0 : 2)}</text>`);
    }
    scenarios.forEach((s, si) => {
      const gx = left + si * groupW + 6;
      targets.forEach((t, ti) => {
        const r = rows.find((x) => x.scenario === s && x.target === t);
        if (r === undefined) return;
        const v = value(r);
        if (!Number.isFinite(v)) return;
        const h = (panelH * v) / max;
        out.push(`<rect x="${(gx + ti * barW).toFixed(1)}" y="${(y0 + panelH - h).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${h.toFixed(1)}" fill="${colours[ti % colours.length]}"><title>${esc(`${s} ${t}: ${fmt(v, 3)}`)}</title></rect>`);
      });
      out.push(`<text x="${(gx + (groupW - 12) / 2).toFixed(1)}" y="${y0 + panelH + 14}" text-anchor="middle">${esc(s)}</text>`);
    });
  };
  panel('requests per second (higher is better)', top, (r) => r.rps);
  panel('p99 latency, ms (lower is better)', top + panelH + gap, (r) => r.latencyMs.p99);
  targets.forEach((t, ti) => {
    const x = left + ti * 130;
    out.push(`<rect x="${x}" y="${H - 22}" width="12" height="12" fill="${colours[ti % colours.length]}"/><text x="${x + 16}" y="${H - 12}">${esc(t)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export function writeOutputs(rep: BenchReport, outDir: string): { md: string; svg: string; json: string } {
  const svg = join(outDir, 'bench.svg');
  const md = join(outDir, 'bench.md');
  const json = join(outDir, 'bench.json');
  writeFileSync(svg, renderSvg(rep));
  writeFileSync(md, renderMarkdown(rep, 'bench.svg'));
  writeFileSync(json, JSON.stringify(rep, null, 2) + '\n');
  return { md, svg, json };
}
