// Revocation propagation across a fleet: two certgate processes sharing one redis-server. Each
// sample opens an mTLS connection to B (served once), revokes that certificate on A through the
// admin API and times until B closes the connection. Prints p50/p99 as JSON.
//
//   npm run build --silent && node dist/bench/fleet.js [--count 200]

import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { projectRoot } from './harness.js';
import { createBenchPki, type BenchPki, type ClientCert } from './pki.js';
import { startProc, type Proc } from './procs.js';
import { percentile } from './report.js';

export interface FleetResult {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

async function startRedisServer(port: number, dir: string): Promise<ChildProcess> {
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const { Redis } = await import('ioredis');
  for (let i = 0; i < 100; i++) {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    const ok = await c.connect().then(() => true, () => false);
    c.disconnect();
    if (ok) return p;
    if (p.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  p.kill('SIGKILL');
  throw new Error('redis-server did not start (is it installed?)');
}

const listening = (line: string): number | undefined => {
  const m = /"event":"listening".*?"port":(\d+)/.exec(line);
  return m === null ? undefined : Number(m[1]);
};

/** One sample: ms from POST /revocations on A to B closing the open connection. */
async function sample(pki: BenchPki, c: ClientCert, bPort: number, aAdmin: string, token: string): Promise<number> {
  const s = connect({ host: '127.0.0.1', port: bPort, servername: 'localhost', ca: pki.caPem, cert: c.cert, key: c.key });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    let out = '';
    s.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (/\r\n\r\n/.test(out) && /^HTTP\/1.1 200/.test(out)) resolve();
    });
    s.once('secureConnect', () => s.write('GET /fleet HTTP/1.1\r\nhost: localhost\r\n\r\n'));
  });
  const closed = new Promise<number>((resolve) => s.once('close', () => resolve(performance.now())));
  const t0 = performance.now();
  const fingerprint = new X509Certificate(c.cert).fingerprint256;
  const res = await fetch(`${aAdmin}/revocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ fingerprint, reason: 'bench' }),
  });
  if (res.status !== 201) throw new Error(`POST /revocations answered ${res.status}: ${await res.text()}`);
  const deadline = setTimeout(() => s.destroy(new Error('B did not close the connection within 10 s')), 10_000);
  const t1 = await closed;
  clearTimeout(deadline);
  return t1 - t0;
}

export async function runFleetBench(count: number, log: (m: string) => void = () => {}): Promise<FleetResult> {
  const root = projectRoot();
  const dir = mkdtempSync(join(tmpdir(), 'certgate-bench-fleet-'));
  const procs: Proc[] = [];
  let redis: ChildProcess | undefined;
  try {
    const pki = await createBenchPki(dir, count);
    const backend = await startProc('backend', [join(root, 'dist/bench/roles.js'), 'backend'], (l) => (JSON.parse(l) as { port?: number }).port);
    procs.push(backend);
    const redisPort = await freePort();
    redis = await startRedisServer(redisPort, dir);
    const token = 'bench-fleet-admin-token-0123456789';
    writeFileSync(join(dir, 'admin.token'), token + '\n', { mode: 0o600 });
    const adminPorts = { a: await freePort(), b: await freePort() };
    const start = async (name: 'a' | 'b'): Promise<Proc> => {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(
        file,
        stringify({
          listen: { host: '127.0.0.1', port: 0 },
          tls: { cert: pki.serverCertFile, key: pki.serverKeyFile, clientCAs: [pki.caFile] },
          admin: { enabled: true, host: '127.0.0.1', port: adminPorts[name], tokenFile: join(dir, 'admin.token') },
          log: { level: 'info', access: false },
          watch: { enabled: false },
          revocation: { dataDir: join(dir, `data-${name}`) },
          store: { instance: name, redis: { url: `redis://127.0.0.1:${redisPort}/0`, keyPrefix: 'bench:' } },
          routes: [{ name: 'all', upstream: `http://127.0.0.1:${backend.port}`, allow: [{ o: 'bench' }] }],
        }),
      );
      const p = await startProc(`certgate-${name}`, [join(root, 'dist/src/cli/main.js'), 'start', '--config', file], listening, { timeoutMs: 60_000 });
      procs.push(p);
      return p;
    };
    await start('a');
    const b = await start('b');
    log(`two instances on one Redis: ${count} revocations`);
    const ms: number[] = [];
    for (const c of pki.identities.slice(0, count)) ms.push(await sample(pki, c, b.port, `http://127.0.0.1:${adminPorts.a}`, token));
    const sorted = Float64Array.from(ms).sort();
    const round = (v: number) => Math.round(v * 10) / 10;
    return { samples: ms.length, p50Ms: round(percentile(sorted, 50)), p99Ms: round(percentile(sorted, 99)), maxMs: round(sorted[sorted.length - 1] ?? 0) };
  } finally {
    await Promise.allSettled(procs.map((p) => p.stop()));
    redis?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('fleet.js')) {
  const { values } = parseArgs({ options: { count: { type: 'string', default: '200' } } });
  const count = Number(values.count);
  runFleetBench(count, (m) => process.stderr.write(m + '\n')).then(
    (r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'),
    (err: Error) => {
      process.stderr.write(`fleet bench failed: ${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
