// The bench report: the shape of the JSON, the target checks (ratios within one run), the
// printed table, and the Markdown summary with a hand-written SVG chart.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ScenarioLoad, WindowLoad } from './machine.js';

export interface Row {
  scenario: string;
  /** direct (plain HTTP backend), bare (node:https), lean (node:https + undici dispatch), certgate, certgate-nolog ... */
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
  /** Against the lean proxy in the same scenario and run (certgate rows). */
  vsLean: { cpuRatio: number; cpuPerMiBRatio: number | null } | null;
  /** CPU used by processes outside the bench during this window. */
  machine: WindowLoad;
  /** certgate: bytes written on stdout per request (the access log line, when it goes there). */
  stdoutBytesPerRequest: number | null;
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
  /** null: informative, no target. */
  limit: number | null;
  ok: boolean | null;
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
    /** Where certgate's access log went, in words. */
    accessLog: string;
    wallSeconds: number;
  };
  rows: Row[];
  idle: IdleRow[];
  /** Load averages before/after each scenario and the worst share of other processes. */
  load: ScenarioLoad[];
  /** One line per scenario measured on a machine busy with other processes. */
  warnings: string[];
  skipped: { scenario: string; reason: string }[];
  checks: Check[];
}

/** Every field a report row must carry (the smoke test checks them). */
export const ROW_FIELDS: readonly string[] = [
  'scenario', 'target', 'run', 'requests', 'errors', 'seconds', 'rps', 'latencyMs.p50', 'latencyMs.p90', 'latencyMs.p99', 'latencyMs.max',
  'cpu.serverSeconds', 'cpu.serverPer1k', 'cpu.loadgenPer1k', 'peakRssMiB', 'machine.othersCores', 'machine.stealCores',
];
export const IDLE_FIELDS: readonly string[] = ['target', 'run', 'connections', 'errors', 'rssBeforeMiB', 'rssAfterMiB', 'perConnectionKiB'];

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * The targets, as ratios measured side by side in one run: issue 13's against the lean proxy
 * and bare node:https (keep-alive with the access log on, big bodies), issue 7's for the rest.
 * A check with a null limit is informative.
 */
export function computeChecks(rep: BenchReport): Check[] {
  const out: Check[] = [];
  const runs = [...new Set(rep.rows.map((r) => r.run).concat(rep.idle.map((r) => r.run)))].sort((a, b) => a - b);
  const row = (scenario: string, target: string, run: number) => rep.rows.find((r) => r.scenario === scenario && r.target === target && r.run === run);
  for (const run of runs) {
    const ratio = (name: string, a: number | null | undefined, b: number | null | undefined, limit: number | null, detail: string) => {
      if (a === undefined || b === undefined || a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return;
      const value = r3(a / b);
      out.push({ name, run, value, limit, ok: limit === null ? null : value <= limit, detail });
    };
    const cpu = (s: string, t: string) => row(s, t, run)?.cpu.serverPer1k;
    const perMiB = (s: string, t: string) => row(s, t, run)?.cpuPerMiB?.server;
    for (const [s, label] of [['keepalive', 'keepalive'], ['keepalive-half', 'keepalive at half of peak']] as const) {
      const load = s === 'keepalive' ? 'closed loop' : 'same offered load for every target';
      ratio(`${label}: CPU/req vs lean (access log on)`, cpu(s, 'certgate'), cpu(s, 'lean'), 1.2, `certgate / node:https + undici dispatch, ${load}`);
      ratio(`${label}: CPU/req vs bare (access log on)`, cpu(s, 'certgate'), cpu(s, 'bare'), 2.0, `certgate / bare node:https, ${load}`);
      ratio(`${label}: CPU/req vs lean (access log off)`, cpu(s, 'certgate-nolog'), cpu(s, 'lean'), null, 'what the access log costs, against the above');
      ratio(`${label}: CPU/req vs bare (access log off)`, cpu(s, 'certgate-nolog'), cpu(s, 'bare'), null, 'same');
      ratio(`${label}: lean CPU/req vs bare`, cpu(s, 'lean'), cpu(s, 'bare'), null, 'what forwarding itself costs in Node');
    }
    const addedP99 = row('keepalive-half', 'certgate', run)?.vsDirect?.addedP99Ms;
    if (addedP99 !== undefined && Number.isFinite(addedP99)) out.push({ name: 'keepalive at half of peak: p99 added vs direct (ms)', run, value: addedP99, limit: 2, ok: addedP99 <= 2, detail: 'latency certgate adds at half of its peak' });
    for (const s of ['handshake-ecdsa', 'handshake-rsa']) {
      ratio(`${s} CPU/handshake vs bare`, cpu(s, 'certgate'), cpu(s, 'bare'), 1.15, 'one full mTLS handshake per request');
      ratio(`${s} CPU/handshake vs lean`, cpu(s, 'certgate'), cpu(s, 'lean'), null, 'the same against the lean proxy');
    }
    for (const s of ['large-body-up', 'large-body-down']) {
      ratio(`${s} CPU/MiB vs lean`, perMiB(s, 'certgate'), perMiB(s, 'lean'), 1.5, 'certgate CPU per MiB streamed / the lean proxy\'s');
      const r = row(s, 'certgate', run);
      ratio(`${s} CPU/MiB vs backend`, r?.cpuPerMiB?.server, r?.cpuPerMiB?.backend, 4.0, "certgate CPU per MiB / the backend's own, same window");
    }
    const ka = cpu('keepalive', 'certgate');
    ratio('many-identities CPU/req vs keepalive', cpu('many-identities', 'certgate-many'), ka, 1.1, '1,000 identities, 200 routes, 1,000 allow rules');
    ratio('revocation CPU/req vs keepalive', cpu('revocation', 'certgate-revocation'), ka, 1.1, 'the same with a 100k-entry CRL loaded');
    // 1,000 connections cost more per request than 16 for any server (bare too): these two set
    // the rules and the revocation data apart from the connection pattern.
    const bareRatio = (s: string, t: string) => {
      const a = cpu(s, t);
      const b = cpu(s, s === 'h2-streams' || s === 'grpc-unary' ? 'bare-h2' : 'bare');
      return a !== undefined && b !== undefined ? a / b : undefined;
    };
    ratio('many-identities x bare vs keepalive x bare', bareRatio('many-identities', 'certgate-many'), bareRatio('keepalive', 'certgate'), 1.1, 'each against the bare server in its own scenario');
    ratio('revocation CPU/req vs many-identities', cpu('revocation', 'certgate-revocation'), cpu('many-identities', 'certgate-many'), 1.1, 'same connections and policy, plus 100k CRL + local list');
    // Issue 14, informative: HTTP/2 against bare node:http2 answering itself, and HTTP/1.1 through
    // a listener that also offers h2 against the same certgate without it.
    ratio('h2-streams: CPU/req vs bare node:http2', cpu('h2-streams', 'certgate-h2'), cpu('h2-streams', 'bare-h2'), null, 'many streams on few HTTP/2 connections, forwarded to the HTTP/1.1 backend');
    ratio('grpc-unary: CPU/call vs bare node:http2', cpu('grpc-unary', 'certgate-h2'), cpu('grpc-unary', 'bare-h2'), null, 'gRPC unary calls, forwarded to an h2c gRPC backend');
    ratio('h2-streams x bare-h2 vs keepalive x bare', bareRatio('h2-streams', 'certgate-h2'), bareRatio('keepalive', 'certgate'), null, 'what HTTP/2 costs certgate beyond what it costs Node');
    ratio('keepalive (HTTP/1.1) with listen.http2 on vs off', cpu('keepalive-h2listen', 'certgate-h2listen'), cpu('keepalive-h2listen', 'certgate'), null, 'about 1: offering h2 leaves the HTTP/1.1 path unchanged');
    // Issue 12: revocation reaches every instance within a second; the Redis store costs nothing per request.
    const fleet = row('fleet-propagation', 'certgate-fleet', run);
    if (fleet !== undefined && fleet.requests > 0) {
      const p99 = fleet.latencyMs.p99;
      out.push({ name: 'fleet-propagation p99: POST /revocations on A to B closing (ms)', run, value: p99, limit: 1000, ok: p99 <= 1000, detail: 'two instances on one redis-server' });
    }
    ratio('keepalive-redis: Redis store CPU/req vs file store (bound 1.05)', cpu('keepalive-redis', 'certgate-redis'), cpu('keepalive-redis', 'certgate'), null, "issue 12's bound (5%): nothing touches Redis per request");
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

const HEAD = ['scenario', 'target', 'run', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'x direct', '+p99 ms', 'CPU s/1k', 'x bare', 'x lean', 'core%', 'loadgen%', 'MiB CPU s', 'resumed', 'RSS MiB', 'errors'];

function rowCells(r: Row): string[] {
  return [
    r.scenario, r.target, String(r.run), fmt(r.rps, 0), fmt(r.latencyMs.p50, 3), fmt(r.latencyMs.p90, 3), fmt(r.latencyMs.p99, 3), fmt(r.latencyMs.max, 1),
    fmt(r.vsDirect?.throughputRatio), fmt(r.vsDirect?.addedP99Ms, 3), fmt(r.cpu.serverPer1k, 3), fmt(r.vsBare?.cpuRatio), fmt(r.vsLean?.cpuRatio), fmt(r.cpu.serverCoreUtil * 100, 0),
    fmt(r.cpu.loadgenCoreUtil * 100, 0), r.cpuPerMiB ? `${fmt(r.cpuPerMiB.server, 4)}/${fmt(r.cpuPerMiB.backend, 4)}` : '-', fmt(r.resumedRatio), fmt(r.peakRssMiB, 0), String(r.errors),
  ];
}

const met = (c: Check): string => (c.ok === null ? 'info' : c.ok ? 'yes' : 'NO');

/** certgate beside the lean proxy and bare node:https: CPU per request (per MiB for big bodies). */
function leanLines(rep: BenchReport): string[][] {
  const out: string[][] = [];
  for (const r of rep.rows) {
    if (!r.target.startsWith('certgate') || r.vsLean === null) continue;
    const same = (t: string) => rep.rows.find((x) => x.scenario === r.scenario && x.run === r.run && x.target === t);
    const bare = same('bare');
    const lean = same('lean')!;
    const big = r.cpuPerMiB !== null && lean.cpuPerMiB !== null;
    const v = (x: Row | undefined) => (x === undefined ? NaN : big ? (x.cpuPerMiB?.server ?? NaN) * 1000 : x.cpu.serverPer1k);
    out.push([
      r.scenario, r.target, String(r.run), big ? 'ms/MiB' : 'ms/req', fmt(v(bare), 3), fmt(v(lean), 3), fmt(v(r), 3),
      fmt(v(r) / v(lean)), fmt(v(r) / v(bare)), fmt(v(lean) / v(bare)),
    ]);
  }
  return out;
}
/** The HTTP/2 scenarios: certgate beside bare node:http2, and HTTP/1.1 with listen.http2 on beside off. */
function h2Lines(rep: BenchReport): string[][] {
  const pairs = [['h2-streams', 'bare-h2', 'certgate-h2'], ['grpc-unary', 'bare-h2', 'certgate-h2'], ['keepalive-h2listen', 'certgate', 'certgate-h2listen']] as const;
  const out: string[][] = [];
  for (const [s, ref, t] of pairs) {
    for (const r of rep.rows.filter((x) => x.scenario === s && x.target === t)) {
      const b = rep.rows.find((x) => x.scenario === s && x.run === r.run && x.target === ref);
      const v = (x: Row | undefined) => x?.cpu.serverPer1k ?? NaN;
      out.push([s, t, String(r.run), ref, fmt(b?.rps, 0), fmt(r.rps, 0), fmt(v(b), 3), fmt(v(r), 3), fmt(v(r) / v(b))]);
    }
  }
  return out;
}
const H2_HEAD = ['scenario', 'target', 'run', 'against', 'its req/s', 'req/s', 'its ms/req', 'ms/req', 'CPU ratio'];

/** The fleet scenarios: propagation per run, and CPU per request with the Redis store beside the file store. */
function fleetLines(rep: BenchReport): { propagation: string[][]; redis: string[][] } {
  const propagation = rep.rows
    .filter((r) => r.scenario === 'fleet-propagation')
    .map((r) => [r.scenario, r.target, String(r.run), String(r.requests), fmt(r.latencyMs.p50, 1), fmt(r.latencyMs.p90, 1), fmt(r.latencyMs.p99, 1), fmt(r.latencyMs.max, 1), String(r.errors)]);
  const redis: string[][] = [];
  for (const r of rep.rows.filter((x) => x.scenario === 'keepalive-redis' && x.target === 'certgate-redis')) {
    const f = rep.rows.find((x) => x.scenario === r.scenario && x.run === r.run && x.target === 'certgate');
    redis.push([r.scenario, String(r.run), fmt(f?.rps, 0), fmt(r.rps, 0), fmt(f?.cpu.serverPer1k, 3), fmt(r.cpu.serverPer1k, 3), fmt(r.cpu.serverPer1k / (f?.cpu.serverPer1k ?? NaN), 3)]);
  }
  return { propagation, redis };
}
const FLEET_HEAD = ['scenario', 'target', 'run', 'revocations', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors'];
const REDIS_HEAD = ['scenario', 'run', 'file store req/s', 'Redis store req/s', 'file store ms/req', 'Redis store ms/req', 'ratio (bound 1.05)'];

const LEAN_HEAD = ['scenario', 'certgate', 'run', 'unit', 'bare', 'lean', 'certgate', 'x lean', 'x bare', 'lean x bare'];

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/**
 * Each target check across runs: value per run, their median, and how many runs met it. With
 * many short runs (`--repeat 9 --duration 1`), the targets alternate window by window, and the
 * median is the figure that a slow drift of the machine (a shared VM's neighbours) moves least.
 */
function summaryLines(rep: BenchReport): { head: string[]; lines: string[][] } {
  const runs = [...new Set(rep.checks.map((c) => c.run))].sort((a, b) => a - b);
  const names = [...new Set(rep.checks.map((c) => c.name))];
  const lines = names.map((n) => {
    const cs = runs.map((run) => rep.checks.find((c) => c.name === n && c.run === run));
    const limit = cs.find((c) => c !== undefined)?.limit ?? null;
    const judged = cs.filter((c): c is Check => c !== undefined && c.ok !== null);
    const m = median(cs.filter((c): c is Check => c !== undefined && Number.isFinite(c.value)).map((c) => c.value));
    const medianCell = m === undefined ? '-' : `${fmt(m, 3)}${limit !== null && !(m <= limit) ? ' x' : ''}`;
    return [n, limit === null ? '-' : fmt(limit, 2), ...cs.map((c) => (c === undefined ? '-' : `${fmt(c.value, 3)}${c.ok === false ? ' x' : ''}`)), medianCell, limit === null ? 'info' : `${judged.filter((c) => c.ok).length}/${judged.length}`];
  });
  return { head: ['target', 'limit', ...runs.map((r) => `run ${r}`), 'median', 'met in'], lines };
}

const loadLines = (rep: BenchReport): string[][] =>
  rep.load.map((l) => [l.scenario, l.before.join(' '), l.after.join(' '), fmt(l.othersCoresMax, 2), fmt(l.stealCoresMax, 2)]);
const LOAD_HEAD = ['scenario', 'load avg before (1 5 15 min)', 'load avg after', 'others cores (max)', 'steal cores (max)'];

export function renderTable(rep: BenchReport): string {
  const parts = [table(HEAD, rep.rows.map(rowCells))];
  const lean = leanLines(rep);
  if (lean.length > 0) parts.push(table(LEAN_HEAD, lean));
  const h2 = h2Lines(rep);
  if (h2.length > 0) parts.push(table(H2_HEAD, h2));
  const fleet = fleetLines(rep);
  if (fleet.propagation.length > 0) parts.push(table(FLEET_HEAD, fleet.propagation));
  if (fleet.redis.length > 0) parts.push(table(REDIS_HEAD, fleet.redis));
  if (rep.idle.length > 0) {
    parts.push(table(['idle-memory', 'target', 'run', 'connections', 'RSS before MiB', 'RSS after MiB', 'KiB/conn', 'errors'],
      rep.idle.map((r) => ['idle', r.target, String(r.run), String(r.connections), fmt(r.rssBeforeMiB, 1), fmt(r.rssAfterMiB, 1), fmt(r.perConnectionKiB, 1), String(r.errors)])));
  }
  if (rep.load.length > 0) parts.push(table(LOAD_HEAD, loadLines(rep)));
  if (rep.checks.length > 0) {
    parts.push(table(['target check', 'run', 'value', 'limit', 'met'], rep.checks.map((c) => [c.name, String(c.run), fmt(c.value, 3), fmt(c.limit, 2), met(c)])));
  }
  for (const s of rep.skipped) parts.push(`not run: ${s.scenario}: ${s.reason}`);
  if (rep.warnings.length > 0) parts.push(rep.warnings.join('\n'));
  return parts.join('\n\n');
}

function mdTable(head: string[], lines: string[][], leftCols = 2): string[] {
  return ['| ' + head.join(' | ') + ' |', '|' + head.map((_, i) => (i < leftCols ? '---' : '---:')).join('|') + '|', ...lines.map((l) => '| ' + l.join(' | ') + ' |')];
}

export function renderMarkdown(rep: BenchReport, svgName = 'bench.svg'): string {
  const md: string[] = [];
  const m = rep.meta;
  md.push(`# certgate bench, ${m.date}`, '');
  md.push(`Node ${m.node}, ${m.cores} cores, ${m.pinned ? `load generator and backend pinned to CPU ${m.pinned.loadgenAndBackend.join(',')}, measured server on ${m.pinned.server === 'all' ? 'all CPUs' : 'CPU ' + m.pinned.server.join(',')}` : 'not pinned'}; access log: ${m.accessLog}; options: \`${JSON.stringify(m.options)}\`.`, '');
  for (const w of rep.warnings) md.push(`**${w}.**`, '');
  md.push(`![throughput and p99 per scenario](${svgName})`, '');
  if (rep.checks.length > 0) {
    const sum = summaryLines(rep);
    md.push('## Targets', '', 'Each a ratio inside one run; "x" marks a run that missed it, "info" rows have no target.', '');
    md.push(...mdTable(sum.head, sum.lines, 1), '');
  }
  const lean = leanLines(rep);
  if (lean.length > 0) {
    md.push('## certgate beside the lean proxy', '');
    md.push('CPU of the measured process per request (per MiB for big bodies), in ms: bare node:https answering itself, the lean proxy (node:https + undici `Pool.dispatch`, raw headers, no features) and certgate, same backend, certificates, pinning and load.', '');
    md.push(...mdTable(LEAN_HEAD, lean, 2), '');
  }
  const h2 = h2Lines(rep);
  if (h2.length > 0) {
    md.push('## HTTP/2', '');
    md.push('CPU of the measured process per request, in ms: certgate with `listen.http2: true` against bare node:http2 answering itself (`h2-streams`: many streams on few connections, forwarded to the HTTP/1.1 backend; `grpc-unary`: gRPC unary calls, forwarded to an h2c backend), and certgate over HTTP/1.1 with `listen.http2: true` against the same without it (`keepalive-h2listen`, about 1).', '');
    md.push(...mdTable(H2_HEAD, h2, 4), '');
  }
  const fleet = fleetLines(rep);
  if (fleet.propagation.length > 0 || fleet.redis.length > 0) {
    md.push('## Fleet (Redis store)', '');
    md.push('`fleet-propagation`: two certgate instances on the bench\'s own redis-server, same `store.redis.keyPrefix`; each sample opens a connection to B, revokes its certificate with `POST /revocations` on A and times until B closes that connection. `keepalive-redis`: the keepalive load against certgate with the file store and with `store.redis` on, CPU of the measured process per request in ms (nothing touches Redis per request: the bound is 1.05).', '');
    if (fleet.propagation.length > 0) md.push(...mdTable(FLEET_HEAD, fleet.propagation, 2), '');
    if (fleet.redis.length > 0) md.push(...mdTable(REDIS_HEAD, fleet.redis, 1), '');
  }
  md.push('## Every window', '');
  md.push('CPU s/1k is the measured process\'s utime+stime per 1,000 requests (for `direct` the backend\'s). "x bare" and "x lean" divide it by the bare node:https server\'s and the lean proxy\'s in the same scenario and run; "x direct" is throughput relative to plain HTTP to the backend; "MiB CPU s" is server / backend CPU seconds per MiB.', '');
  md.push(...mdTable(HEAD, rep.rows.map(rowCells)));
  if (rep.idle.length > 0) {
    md.push('', '| idle connections | target | run | RSS before MiB | RSS after MiB | KiB per connection | errors |', '|---|---|---:|---:|---:|---:|---:|');
    for (const r of rep.idle) md.push(`| ${r.connections} | ${r.target} | ${r.run} | ${fmt(r.rssBeforeMiB, 1)} | ${fmt(r.rssAfterMiB, 1)} | ${fmt(r.perConnectionKiB, 1)} | ${r.errors} |`);
  }
  if (rep.load.length > 0) {
    md.push('', '## Machine load', '', 'Load averages before and after each scenario; "others" is the CPU that processes outside the bench used during its worst window (from /proc/stat), "steal" what the hypervisor took.', '');
    md.push(...mdTable(LOAD_HEAD, loadLines(rep), 1));
  }
  if (rep.checks.length > 0) {
    md.push('', '| target | run | measured | limit | met |', '|---|---:|---:|---:|---|');
    for (const c of rep.checks) md.push(`| ${c.name} | ${c.run} | ${fmt(c.value, 3)} | ${fmt(c.limit, 2)} | ${c.ok === null ? 'info' : c.ok ? 'yes' : '**no**'} |`);
  }
  for (const s of rep.skipped) md.push('', `Not run: **${s.scenario}**: ${s.reason}.`);
  return md.join('\n') + '\n';
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** Two panels of grouped bars (first run): requests/s and p99 latency, per scenario and target. */
export function renderSvg(rep: BenchReport): string {
  // Propagation is not a request rate: its figures are in the Fleet table.
  const rows = rep.rows.filter((r) => r.run === 1 && r.scenario !== 'fleet-propagation');
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
  if (rep.warnings.length > 0) out.push(`<text x="${left}" y="14" fill="#c00">${esc(`machine busy with other processes in ${rep.warnings.length} scenario(s): figures are noise`)}</text>`);
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
