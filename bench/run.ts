// `npm run bench`: see README "Performance and the bench". Prints the table, writes JSON,
// Markdown and an SVG chart into bench/out/ (and the JSON also to --json FILE).

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULTS, projectRoot, runBench, SCENARIOS, type BenchOptions, type Scenario } from './harness.js';
import { HELP, OPTIONS } from './options.js';
import { computeChecks, renderTable, writeOutputs } from './report.js';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: OPTIONS });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const num = (v: string | undefined, d: number, min = 1): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`bad number: ${v}`);
    return n;
  };
  const scenarios = values.scenario === undefined ? [...SCENARIOS] : values.scenario.split(',').map((s) => s.trim());
  const accessLog = values['access-log'] ?? 'stdout';
  if (accessLog !== 'stdout' && accessLog !== 'file') throw new Error(`--access-log is stdout or file, not "${accessLog}"`);
  for (const s of scenarios) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario "${s}"; one of ${SCENARIOS.join(', ')}`);
  const opts: BenchOptions = {
    ...DEFAULTS,
    durationMs: num(values.duration, DEFAULTS.durationMs / 1000, 0.1) * 1000,
    warmupMs: num(values.warmup, DEFAULTS.warmupMs / 1000, 0) * 1000,
    connections: num(values.connections, DEFAULTS.connections),
    pipelining: num(values.pipelining, DEFAULTS.pipelining),
    h2Connections: num(values['h2-connections'], DEFAULTS.h2Connections),
    h2Streams: num(values['h2-streams'], DEFAULTS.h2Streams),
    fleetRevocations: num(values['fleet-revocations'], DEFAULTS.fleetRevocations),
    fleetMaxMs: num(values['fleet-seconds'], DEFAULTS.fleetMaxMs / 1000, 1) * 1000,
    scenarios: scenarios as Scenario[],
    repeat: num(values.repeat, DEFAULTS.repeat),
    workers: num(values.workers, DEFAULTS.workers),
    idleConnections: num(values.idle, DEFAULTS.idleConnections),
    maxRequests: num(values.requests, DEFAULTS.maxRequests),
    minRequests: num(values['min-requests'], DEFAULTS.minRequests, 0),
    pin: !values['no-pin'],
    accessLog,
    log: (l) => process.stderr.write(l + '\n'),
  };
  if (values.target !== undefined) opts.target = values.target;
  if (values['target-pid'] !== undefined) opts.targetPid = num(values['target-pid'], 0);
  if (values['target-ca'] !== undefined) opts.targetCa = readFileSync(values['target-ca'], 'utf8');
  if (values.cert !== undefined && values.key !== undefined) {
    opts.targetCert = { name: 'target-client', cert: readFileSync(values.cert, 'utf8'), key: readFileSync(values.key, 'utf8') };
  }
  if (values.pki !== undefined) opts.pkiDir = resolve(values.pki);
  if (values.profile !== undefined) opts.profileDir = resolve(values.profile);
  const t0 = Date.now();
  const rep = await runBench(opts);
  rep.meta.wallSeconds = Math.round((Date.now() - t0) / 100) / 10;
  rep.checks = computeChecks(rep);
  process.stdout.write('\n' + renderTable(rep) + '\n\n');
  const out = resolve(values.out ?? join(projectRoot(), 'bench', 'out'));
  mkdirSync(out, { recursive: true });
  const files = writeOutputs(rep, out);
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(rep, null, 2) + '\n');
  process.stdout.write(`wrote ${files.json}, ${files.md}, ${files.svg}${values.json ? `, ${values.json}` : ''} (${rep.meta.wallSeconds} s)\n`);
  const errors = rep.checks.filter((c) => c.name === 'errors').reduce((a, c) => a + c.value, 0);
  // A scenario asked for by name that could not run (e.g. redis-server missing) fails the run.
  if (values.scenario !== undefined && rep.skipped.length > 0) return 1;
  return errors === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(2);
  },
);
