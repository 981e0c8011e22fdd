// Instructions per keep-alive mTLS request, counted by valgrind's callgrind in the server process:
// a figure that stays the same on a loaded machine (CPU time does not), for comparing a change
// before and after. Each target (bare node:https, the lean proxy, certgate with its access log
// on stdout) runs alone under callgrind with instrumentation off; the load generator and the
// backend run natively. After a warm-up (the JIT settles), each measured window is: zero the
// counters, send exactly N requests on C keep-alive connections, dump. The window's total
// instructions divided by N is the figure. The first window after instrumentation is switched on
// runs 4-36% high in every run (it is printed in brackets and not used); the figure is the median
// of the others, which mostly agree within 1-2% (when they do not, run again: see bench/RESULTS.md).
//
//   npm run build --silent && node dist/bench/instructions.js [--targets bare,lean,certgate]
//     [--warmup 6000] [--requests 2000] [--windows 4] [--connections 16] [--top 25] [--out DIR]
//
// The dumps stay in DIR (default bench/out/instructions/) for `callgrind_annotate`; --top N
// prints the N functions with the most self instructions per request (V8 builtins and C++ by
// name; JIT-compiled JavaScript appears as unnamed addresses: `node --cpu-prof` names those).
// --cpu-prof runs the targets natively under `node --cpu-prof` instead, with the same load, and
// prints the --top JavaScript functions by share of self time (shares, not times: a loaded machine
// changes the times, much less the shares).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { Client } from 'undici';
import { stringify } from 'yaml';
import { projectRoot } from './harness.js';
import { keepAliveClient, send, type Endpoint } from './load.js';
import { createBenchPki, type BenchPki } from './pki.js';

type TargetName = 'bare' | 'lean' | 'certgate' | 'certgate-nolog';
const TARGETS: readonly TargetName[] = ['bare', 'lean', 'certgate', 'certgate-nolog'];

interface Started {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly stderr: string[];
}

/** `cmd args`, resolved with the port read from its stdout; stdout is drained after. */
function start(cmd: string, args: string[], portOf: (line: string) => number | undefined, timeoutMs: number, cwd?: string): Promise<Started> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => {
    if (stderr.length < 300) stderr.push(l);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} did not start in ${timeoutMs} ms:\n${stderr.join('\n')}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before listening:\n${stderr.join('\n')}`));
    });
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      const port = portOf(line);
      if (port === undefined) return;
      clearTimeout(timer);
      rl.close();
      // The access log goes to this pipe: drained unread, as a container runtime reads it.
      child.stdout!.resume();
      child.removeAllListeners('exit');
      resolve({ child, pid: child.pid!, port, stderr });
    });
  });
}

function stop(s: Started): Promise<void> {
  return new Promise((res) => {
    if (s.child.exitCode !== null || s.child.signalCode !== null) return res();
    const kill = setTimeout(() => s.child.kill('SIGKILL'), 30_000);
    s.child.once('exit', () => {
      clearTimeout(kill);
      res();
    });
    s.child.kill('SIGTERM');
  });
}

function jsonPort(line: string): number | undefined {
  try {
    return (JSON.parse(line) as { port?: number }).port;
  } catch {
    return undefined;
  }
}

function listeningPort(line: string): number | undefined {
  if (!line.includes('"listening"')) return undefined;
  try {
    const o = JSON.parse(line) as { event?: string; port?: number };
    return o.event === 'listening' ? o.port : undefined;
  } catch {
    return undefined;
  }
}

/** The bench's keep-alive certgate: one route to the backend, access log on stdout (or off). */
function certgateConfig(dir: string, pki: BenchPki, backend: string, access: boolean): string {
  const file = join(dir, `certgate-${access ? 'log' : 'nolog'}.yaml`);
  writeFileSync(
    file,
    stringify({
      listen: { host: '127.0.0.1', port: 0 },
      tls: { cert: pki.serverCertFile, key: pki.serverKeyFile, clientCAs: [pki.caFile] },
      timeouts: { idle: '10m', headers: '30s' },
      limits: { maxConnections: 50_000, maxBodySize: '8MiB' },
      log: { level: 'info', access },
      admin: { enabled: false },
      watch: { enabled: false },
      workers: 1,
      routes: [{ name: 'api', match: { pathPrefix: '/' }, upstream: backend, allow: [{ o: ['bench'] }] }],
    }),
  );
  return file;
}

function control(pid: number, ...args: string[]): void {
  const r = spawnSync('callgrind_control', [...args, String(pid)], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(' ')} ${pid}: ${r.stderr || r.stdout}`);
}

/** Exactly n requests over the clients (one loop per client), every one answered 200. */
async function sendRequests(ep: Endpoint, clients: readonly Client[], n: number): Promise<void> {
  let left = n;
  const errors: string[] = [];
  await Promise.all(
    clients.map(async (c) => {
      while (left > 0) {
        left--;
        try {
          const o = await send(c, { origin: ep.origin, path: '/api/items/42', method: 'GET' });
          if (o.status !== 200) errors.push(`HTTP ${o.status}`);
        } catch (e) {
          errors.push((e as Error).message);
        }
      }
    }),
  );
  if (errors.length > 0) throw new Error(`${errors.length} of ${n} requests failed, e.g. ${errors[0]}`);
}

function totalOf(file: string): number {
  const m = /^totals:\s+(\d+)/m.exec(readFileSync(file, 'utf8')) ?? /^summary:\s+(\d+)/m.exec(readFileSync(file, 'utf8'));
  if (m === null) throw new Error(`no totals in ${file}`);
  return Number(m[1]);
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** The `top` functions of a V8 CPU profile by share of self samples (idle and GC named as V8 names them). */
function topProfiled(file: string, top: number): string[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  for (const id of p.samples) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') continue;
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + 1);
    total++;
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => `${((v / total) * 100).toFixed(2).padStart(6)}%  ${k}`);
}

/** V8's perf map of a process: start address, size and name of each JIT-compiled function. */
function perfMap(pid: number): { start: bigint; end: bigint; name: string }[] {
  let text: string;
  try {
    text = readFileSync(`/tmp/perf-${pid}.map`, 'utf8');
  } catch {
    return [];
  }
  const out: { start: bigint; end: bigint; name: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
    if (m !== null) out.push({ start: BigInt('0x' + m[1]), end: BigInt('0x' + m[1]) + BigInt('0x' + m[2]), name: m[3]! });
  }
  return out;
}

/** The `top` functions by self instructions, per request (JIT-compiled ones named from the perf map, summed by name). */
function topFunctions(file: string, pid: number, requests: number, top: number): string[] {
  const r = spawnSync('callgrind_annotate', ['--threshold=100', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const map = perfMap(pid);
  const self = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)$/.exec(line);
    if (m === null || m[2]!.includes('PROGRAM TOTALS')) continue;
    const ir = Number(m[1]!.replace(/,/g, ''));
    let name = m[2]!.replace(/^\?\?\?:/, '').replace(/ \[[^\]]*\]$/, '');
    if (/^0x[0-9a-f]+$/.test(name)) {
      const a = BigInt(name);
      // The last entry that covers the address: V8 may reuse code space for a later function.
      for (let i = map.length - 1; i >= 0; i--) {
        if (map[i]!.start <= a && a < map[i]!.end) {
          name = 'JS ' + map[i]!.name.replace(/file:\/\/\S*\/(node_modules|dist)\//, '$1/');
          break;
        }
      }
    }
    self.set(name, (self.get(name) ?? 0) + ir);
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ir]) => `${String(Math.round(ir / requests)).padStart(8)}  ${name.length > 140 ? name.slice(0, 137) + '...' : name}`);
}

/** The median of the windows after the first (the first alone when there is one). */
function figure(m: Measured): number {
  const w = (m.perRequest.length > 1 ? m.perRequest.slice(1) : [...m.perRequest]).sort((a, b) => a - b);
  const h = w.length >> 1;
  return w.length % 2 === 1 ? w[h]! : (w[h - 1]! + w[h]!) / 2;
}

interface Measured {
  target: TargetName;
  pid: number;
  perRequest: number[];
  files: string[];
}

async function measure(
  target: TargetName,
  o: { pki: BenchPki; backend: string; dir: string; out: string; warmup: number; requests: number; windows: number; connections: number; cpuProf: boolean },
): Promise<Measured> {
  const root = projectRoot();
  const tls = JSON.stringify({ cert: o.pki.serverCertFile, key: o.pki.serverKeyFile, ca: o.pki.caFile });
  const stamp = `${target}-${Date.now()}`;
  // --perf-basic-prof: V8 writes /tmp/perf-PID.map, which names the JIT-compiled functions that
  // callgrind only knows by address (read by --top).
  const vg = ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${join(o.out, stamp)}.%p.out`, process.execPath, '--perf-basic-prof'];
  const [script, portOf] =
    target === 'bare'
      ? [[join(root, 'dist/bench/roles.js'), 'bare', tls], jsonPort]
      : target === 'lean'
        ? [[join(root, 'dist/bench/lean-proxy.js'), JSON.stringify({ ...JSON.parse(tls), backend: o.backend })], jsonPort]
        : [[join(root, 'dist/src/cli/main.js'), 'start', '--config', certgateConfig(o.dir, o.pki, o.backend, target === 'certgate')], listeningPort];
  if (o.cpuProf) {
    const prof = ['--cpu-prof', '--cpu-prof-dir', o.out, '--cpu-prof-name', `${stamp}.cpuprofile`];
    const s = await start(process.execPath, [...prof, ...script], portOf, 60_000);
    const ep: Endpoint = { origin: `https://127.0.0.1:${s.port}`, ca: o.pki.caPem };
    const clients = Array.from({ length: o.connections }, () => keepAliveClient(ep, o.pki.ecdsa));
    try {
      await sendRequests(ep, clients, o.warmup + o.windows * o.requests);
    } finally {
      await Promise.all(clients.map((c) => c.destroy().catch(() => {})));
      await stop(s);
    }
    return { target, pid: s.pid, perRequest: [], files: [join(o.out, `${stamp}.cpuprofile`)] };
  }
  // In the output folder: --perf-basic-prof also writes an isolate-*-v8.log into the working directory.
  const s = await start('valgrind', [...vg, ...script], portOf, 300_000, o.out);
  const ep: Endpoint = { origin: `https://127.0.0.1:${s.port}`, ca: o.pki.caPem };
  const clients = Array.from({ length: o.connections }, () => keepAliveClient(ep, o.pki.ecdsa));
  const perRequest: number[] = [];
  const files: string[] = [];
  try {
    await sendRequests(ep, clients, o.warmup);
    control(s.pid, '-i', 'on');
    for (let w = 1; w <= o.windows; w++) {
      control(s.pid, '-z');
      await sendRequests(ep, clients, o.requests);
      control(s.pid, '-d');
      const file = readdirSync(o.out)
        .filter((f) => f.startsWith(`${stamp}.${s.pid}.out.`))
        .map((f) => join(o.out, f))
        .sort((a, b) => Number(a.slice(a.lastIndexOf('.') + 1)) - Number(b.slice(b.lastIndexOf('.') + 1)))
        .at(-1)!;
      files.push(file);
      perRequest.push(totalOf(file) / o.requests);
    }
  } finally {
    await Promise.all(clients.map((c) => c.destroy().catch(() => {})));
    await stop(s);
  }
  return { target, pid: s.pid, perRequest, files };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      targets: { type: 'string', default: 'bare,lean,certgate' },
      warmup: { type: 'string', default: '6000' },
      requests: { type: 'string', default: '2000' },
      windows: { type: 'string', default: '4' },
      connections: { type: 'string', default: '16' },
      top: { type: 'string', default: '0' },
      'cpu-prof': { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const targets = values.targets.split(',').map((t) => t.trim()) as TargetName[];
  for (const t of targets) if (!TARGETS.includes(t)) throw new Error(`unknown target "${t}"; one of ${TARGETS.join(', ')}`);
  const root = projectRoot();
  const out = values.out ?? join(root, 'bench', 'out', 'instructions');
  mkdirSync(out, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'certgate-instr-'));
  const n = (s: string) => Math.max(1, Number(s) | 0);
  const backendProc = await start(process.execPath, [join(root, 'dist/bench/roles.js'), 'backend'], jsonPort, 30_000);
  try {
    const pki = await createBenchPki(dir, 0);
    const o = { pki, backend: `http://127.0.0.1:${backendProc.port}`, dir, out, warmup: n(values.warmup), requests: n(values.requests), windows: n(values.windows), connections: n(values.connections), cpuProf: values['cpu-prof'] };
    const results: Measured[] = [];
    for (const t of targets) {
      process.stderr.write(`${t}: ${o.cpuProf ? 'node --cpu-prof' : 'under callgrind'}, ${o.warmup} warm-up requests, then ${o.windows} x ${o.requests}\n`);
      const m = await measure(t, o);
      if (o.cpuProf) {
        process.stdout.write(`\n${t}: top ${Number(values.top) || 25} functions by self time, % of non-idle samples (${m.files[0]})\n`);
        for (const l of topProfiled(m.files[0]!, Number(values.top) || 25)) process.stdout.write(l + '\n');
        continue;
      }
      results.push(m);
      const [first, ...rest] = m.perRequest.map((x) => Math.round(x).toLocaleString('en'));
      process.stdout.write(`${t.padEnd(15)} instructions/request: median ${Math.round(figure(m)).toLocaleString('en')}  windows [${first}] ${rest.join('  ')}\n`);
    }
    const of = (t: TargetName) => {
      const r = results.find((x) => x.target === t);
      return r === undefined ? undefined : figure(r);
    };
    const [bare, lean] = [of('bare'), of('lean')];
    for (const r of results) {
      const x = figure(r);
      const ratios = [lean !== undefined && r.target !== 'lean' ? `${(x / lean).toFixed(2)}x lean` : '', bare !== undefined && r.target !== 'bare' ? `${(x / bare).toFixed(2)}x bare` : ''].filter(Boolean);
      if (ratios.length > 0) process.stdout.write(`${r.target.padEnd(15)} ${ratios.join(', ')}\n`);
    }
    const top = Number(values.top) | 0;
    if (top > 0) {
      for (const r of results) {
        process.stdout.write(`\n${r.target}: top ${top} functions, self instructions per request (${r.files.at(-1)})\n`);
        for (const l of topFunctions(r.files.at(-1)!, r.pid, o.requests, top)) process.stdout.write(l + '\n');
      }
    }
  } finally {
    await stop(backendProc);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
