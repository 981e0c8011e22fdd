// Revocation propagation across a fleet: two certgate processes sharing one redis-server. Each
// sample opens an mTLS connection to B (served once), revokes that certificate on A through the
// admin API and times until B closes the connection. The `fleet-propagation` scenario of
// `npm run bench` runs it (harness.ts); alone it prints p50/p99 as JSON:
//
//   npm run build --silent && node dist/bench/fleet.js [--count 200]

import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { projectRoot } from './harness.js';
import type { WindowLoad } from './machine.js';
import { createBenchPki, issueIdentities, type BenchPki, type ClientCert } from './pki.js';
import { freePort, startBenchRedis, type BenchRedis } from './redis.js';
import { startProc, type Proc } from './procs.js';
import { percentile, type Row } from './report.js';

export interface FleetResult {
  samples: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Two instances, A (admin API on) and B, with the same Redis store and prefix. */
export interface Fleet {
  readonly a: Proc;
  readonly b: Proc;
  readonly adminA: string;
  readonly token: string;
  stop(): Promise<void>;
}

/** What one measurement gave: a duration per revocation that propagated, and the failures. */
export interface Propagation {
  ms: number[];
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
}

/** A sample that takes longer than this is a failure (certgate promises 1 s). */
const SAMPLE_TIMEOUT_MS = 10_000;

const listening = (line: string): number | undefined => {
  const m = /"event":"listening".*?"port":(\d+)/.exec(line);
  return m === null ? undefined : Number(m[1]);
};

export async function startFleet(o: { dir: string; pki: BenchPki; backendUrl: string; redisUrl: string; keyPrefix: string; cpus?: { a?: number[]; b?: number[] } }): Promise<Fleet> {
  const root = projectRoot();
  const dir = join(o.dir, 'fleet');
  mkdirSync(dir, { recursive: true });
  const token = 'bench-fleet-admin-token-0123456789';
  writeFileSync(join(dir, 'admin.token'), token + '\n', { mode: 0o600 });
  const adminA = await freePort();
  const procs: Proc[] = [];
  const start = async (name: 'a' | 'b'): Promise<Proc> => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      stringify({
        listen: { host: '127.0.0.1', port: 0 },
        tls: { cert: o.pki.serverCertFile, key: o.pki.serverKeyFile, clientCAs: [o.pki.caFile] },
        admin: name === 'a' ? { enabled: true, host: '127.0.0.1', port: adminA, tokenFile: join(dir, 'admin.token') } : { enabled: false },
        log: { level: 'info', access: false },
        watch: { enabled: false },
        revocation: { dataDir: join(dir, `data-${name}`) },
        store: { instance: name, redis: { url: o.redisUrl, keyPrefix: o.keyPrefix } },
        routes: [{ name: 'all', upstream: o.backendUrl, allow: [{ o: 'bench' }] }],
      }),
    );
    const p = await startProc(`certgate-fleet-${name}`, [join(root, 'dist/src/cli/main.js'), 'start', '--config', file], listening, { timeoutMs: 60_000, cpus: o.cpus?.[name] });
    procs.push(p);
    return p;
  };
  const stop = async () => {
    await Promise.allSettled(procs.map((p) => p.stop()));
  };
  try {
    const a = await start('a');
    const b = await start('b');
    return { a, b, adminA: `http://127.0.0.1:${adminA}`, token, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** One sample: ms from POST /revocations on A to B closing the open connection. */
async function sample(fleet: Fleet, pki: BenchPki, c: ClientCert): Promise<number> {
  const s = connect({ host: '127.0.0.1', port: fleet.b.port, servername: 'localhost', ca: pki.caPem, cert: c.cert, key: c.key });
  const timer = setTimeout(() => s.destroy(new Error(`no answer, or B did not close the connection, within ${SAMPLE_TIMEOUT_MS / 1000} s`)), SAMPLE_TIMEOUT_MS);
  try {
    // One listener pair for the whole sample: first the answer, then the close after the revocation.
    let answered: (() => void) | undefined;
    let failed: ((e: Error) => void) | undefined;
    const closed = new Promise<number>((resolve, reject) => {
      s.once('close', () => (answered === undefined ? resolve(performance.now()) : failed?.(new Error('B closed the connection before answering'))));
      s.once('error', (e) => (answered === undefined ? reject(e) : failed?.(e)));
    });
    closed.catch(() => undefined);
    await new Promise<void>((resolve, reject) => {
      answered = resolve;
      failed = reject;
      let out = '';
      s.on('data', (d: Buffer) => {
        out += d.toString('latin1');
        if (!out.includes('\r\n\r\n')) return;
        if (out.startsWith('HTTP/1.1 200')) resolve();
        else reject(new Error(`B answered ${out.slice(0, out.indexOf('\r\n'))}`));
      });
      s.once('secureConnect', () => s.write('GET /fleet HTTP/1.1\r\nhost: localhost\r\n\r\n'));
    });
    answered = undefined;
    const t0 = performance.now();
    const res = await fetch(`${fleet.adminA}/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fleet.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ fingerprint: new X509Certificate(c.cert).fingerprint256, reason: 'bench' }),
    });
    if (res.status !== 201) throw new Error(`POST /revocations answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    return (await closed) - t0;
  } finally {
    clearTimeout(timer);
    s.destroy();
  }
}

/**
 * One revocation per certificate, one after another, until `certs` are used or `budgetMs` is
 * spent (the sample under way finishes). A failed sample is counted, not thrown; five in a row
 * end the measurement.
 */
export async function measurePropagation(fleet: Fleet, pki: BenchPki, certs: readonly ClientCert[], budgetMs: number): Promise<Propagation> {
  const out: Propagation = { ms: [], errors: 0, errorSamples: [], elapsedMs: 0 };
  const t0 = performance.now();
  let failedInARow = 0;
  for (const c of certs) {
    if (performance.now() - t0 >= budgetMs || failedInARow >= 5) break;
    try {
      out.ms.push(await sample(fleet, pki, c));
      failedInARow = 0;
    } catch (err) {
      out.errors++;
      failedInARow++;
      if (out.errorSamples.length < 5) out.errorSamples.push((err as Error).message);
    }
  }
  out.elapsedMs = performance.now() - t0;
  return out;
}

const round = (x: number, d: number) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);

/**
 * The report row of one measurement: "requests" are revocations that propagated, latency the
 * time from POST on A to B closing the connection, CPU that of B (per 1,000 revocations).
 */
export function propagationRow(scenario: string, run: number, p: Propagation, b: { cpuSeconds: number; peakRssMiB: number | null }, machine: WindowLoad): Row {
  const sorted = Float64Array.from(p.ms).sort();
  const secs = p.elapsedMs / 1000;
  const n = p.ms.length;
  return {
    scenario,
    target: 'certgate-fleet',
    run,
    requests: n,
    errors: p.errors,
    errorSamples: p.errorSamples,
    seconds: round(secs, 3),
    rps: round(n / secs, 1),
    latencyMs: { p50: round(percentile(sorted, 50), 3), p90: round(percentile(sorted, 90), 3), p99: round(percentile(sorted, 99), 3), max: round(sorted[n - 1] ?? NaN, 3) },
    cpu: { serverSeconds: round(b.cpuSeconds, 3), serverPer1k: round(n > 0 ? (b.cpuSeconds / n) * 1000 : NaN, 4), serverCoreUtil: round(b.cpuSeconds / secs, 3), backendPer1k: null, loadgenPer1k: NaN, loadgenCoreUtil: NaN },
    mib: null,
    cpuPerMiB: null,
    connectionsOpened: n + p.errors,
    resumedRatio: null,
    peakRssMiB: b.peakRssMiB,
    vsDirect: null,
    vsBare: null,
    vsLean: null,
    machine,
    stdoutBytesPerRequest: null,
  };
}

/** The measure alone: its own PKI, backend, redis-server and fleet. */
export async function runFleetBench(count: number, log: (m: string) => void = () => {}, budgetMs = 120_000): Promise<FleetResult> {
  const root = projectRoot();
  const dir = mkdtempSync(join(tmpdir(), 'certgate-bench-fleet-'));
  let backend: Proc | undefined;
  let redis: BenchRedis | undefined;
  let fleet: Fleet | undefined;
  try {
    const pki = await createBenchPki(dir, 0);
    const certs = await issueIdentities(pki, count, 'fleet');
    backend = await startProc('backend', [join(root, 'dist/bench/roles.js'), 'backend'], (l) => (JSON.parse(l) as { port?: number }).port);
    redis = await startBenchRedis(dir);
    fleet = await startFleet({ dir, pki, backendUrl: `http://127.0.0.1:${backend.port}`, redisUrl: redis.url, keyPrefix: 'bench:' });
    log(`two instances on one Redis: ${count} revocations`);
    const p = await measurePropagation(fleet, pki, certs, budgetMs);
    const sorted = Float64Array.from(p.ms).sort();
    const r1 = (v: number) => round(v, 1);
    return { samples: p.ms.length, errors: p.errors, p50Ms: r1(percentile(sorted, 50)), p99Ms: r1(percentile(sorted, 99)), maxMs: r1(sorted[sorted.length - 1] ?? NaN) };
  } finally {
    await fleet?.stop();
    await backend?.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('fleet.js')) {
  const { values } = parseArgs({ options: { count: { type: 'string', default: '200' } } });
  const count = Number(values.count);
  runFleetBench(count, (m) => process.stderr.write(m + '\n')).then(
    (r) => {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      if (r.errors > 0) process.exitCode = 1;
    },
    (err: Error) => {
      process.stderr.write(`fleet bench failed: ${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
