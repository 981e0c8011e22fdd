// One bench run: certificates, the backend, the bare node:https server, the lean proxy and
// certgate (each its own process, pinned when taskset exists), every scenario against every
// target side by side, repeated, then the report. The HTTP/2 scenarios add bare node:http2, an
// h2c gRPC backend and certgate with `listen.http2: true`; the fleet scenarios their own
// redis-server, two instances on one store (fleet.ts) and certgate with `store.redis` on. Used by
// bench/run.ts and the tests.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { openIdle, runLoad, sleep, type ConnMode, type Endpoint, type LoadResult } from './load.js';
import { runH2Load } from './load-h2.js';
import { GRPC_PATH, GRPC_PREFIX } from './grpc-wire.js';
import { createBenchPki, issueIdentities, writeCrl, type BenchPki, type ClientCert } from './pki.js';
import { randomSerial } from '../src/ca/pki.js';
import { appendRecords, entryFromInput } from '../src/revocation/local-list.js';
import { cpuSnapshot, loadAverages, loadWarnings, windowLoad, type ScenarioLoad } from './machine.js';
import { CORES, cpuSeconds, hasTaskset, peakRssBytes, pinSelf, procAvailable, rssBytes, startProc, type Proc } from './procs.js';
import { percentile, type BenchReport, type IdleRow, type Row } from './report.js';
import { measurePropagation, propagationRow, startFleet } from './fleet.js';
import { redisMissing, startBenchRedis, type BenchRedis } from './redis.js';

export const SCENARIOS = [
  'keepalive',
  'keepalive-half',
  'handshake-ecdsa',
  'handshake-rsa',
  'resumed',
  'large-body-up',
  'large-body-down',
  'many-identities',
  'revocation',
  'idle-memory',
  'h2-streams',
  'grpc-unary',
  'keepalive-h2listen',
  'fleet-propagation',
  'keepalive-redis',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Issue 14's scenarios: HTTP/2 targets (bare node:http2, certgate with `listen.http2: true`). */
export const H2_SCENARIOS: readonly Scenario[] = ['h2-streams', 'grpc-unary', 'keepalive-h2listen'];

/** Issue 12's scenarios: certgate with a Redis store, on the bench's own redis-server. */
export const FLEET_SCENARIOS: readonly Scenario[] = ['fleet-propagation', 'keepalive-redis'];

export interface BenchOptions {
  durationMs: number;
  warmupMs: number;
  /** Keep-alive connections (and request loops); fewer for new-connection scenarios. */
  connections: number;
  pipelining: number;
  /** HTTP/2 scenarios: connections, and streams in flight on each. */
  h2Connections: number;
  h2Streams: number;
  scenarios: Scenario[];
  repeat: number;
  workers: number;
  idleConnections: number;
  maxRequests: number;
  /** Windows go on past durationMs until each target served this many (bounded; smoke runs). */
  minRequests: number;
  identities: number;
  routes: number;
  crlEntries: number;
  /** Entries preloaded into the local (instant) revocation list for the revocation scenario. */
  localRevocations: number;
  /** fleet-propagation: revocations per run, and the most time a run may take (ms). */
  fleetRevocations: number;
  fleetMaxMs: number;
  pin: boolean;
  /**
   * Where certgate's access log goes. `stdout` (the default, what a container does): a pipe the
   * harness drains, as a container runtime reads its log pipe. `file`: `log.accessFile`.
   */
  accessLog: 'stdout' | 'file';
  /** Another mTLS endpoint to aim the same load at (and its process id, for its CPU). */
  target?: string;
  targetPid?: number;
  targetCa?: string;
  targetCert?: ClientCert;
  /** Write a V8 CPU profile of every certgate process into this folder (node --cpu-prof). */
  profileDir?: string;
  /** Folder for the run's certificates (kept, reused); default a temp folder, removed. */
  pkiDir?: string;
  log: (line: string) => void;
}

export const DEFAULTS: Omit<BenchOptions, 'log'> = {
  durationMs: 1000,
  warmupMs: 250,
  connections: 16,
  pipelining: 1,
  h2Connections: 4,
  h2Streams: 32,
  scenarios: [...SCENARIOS],
  repeat: 1,
  workers: 1,
  idleConnections: 2000,
  maxRequests: 1_000_000,
  minRequests: 0,
  identities: 1000,
  routes: 200,
  crlEntries: 100_000,
  localRevocations: 10_000,
  fleetRevocations: 200,
  fleetMaxMs: 60_000,
  pin: true,
  accessLog: 'stdout',
};

/** The project root, from bench/ (vitest) or dist/bench/ (compiled). */
export function projectRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.endsWith(join('dist', 'bench')) ? resolve(here, '../..') : resolve(here, '..');
}

interface Target {
  readonly name: string;
  readonly endpoint: Endpoint;
  /** The process whose CPU is the figure: the server, or the backend for `direct`. */
  readonly pid: number | undefined;
  readonly proc?: Proc;
}

interface CertgateVariant {
  access: boolean;
  accessLog: 'stdout' | 'file';
  manyRoutes: boolean;
  crl?: string;
  workers: number;
  /** `listen.http2: true`. */
  http2?: boolean;
  /** An h2c gRPC upstream: a route for the bench's gRPC service in front of the others. */
  grpcUpstream?: string;
  /** `store.redis` with this URL and prefix (the file store when absent). */
  redis?: { url: string; keyPrefix: string };
}

/** Whether the revocation engine (CRL files) is part of this build. */
export async function revocationAvailable(): Promise<string | undefined> {
  const { existsSync } = await import('node:fs');
  const root = projectRoot();
  if (!existsSync(join(root, 'src', 'revocation', 'crl.ts')) && !existsSync(join(root, 'dist', 'src', 'revocation', 'crl.js'))) {
    return 'the revocation engine (src/revocation: CRL files, local list) is not in this build yet';
  }
  return undefined;
}

function routesFor(v: CertgateVariant, backend: string, routes: number): unknown[] {
  const grpc = v.grpcUpstream === undefined ? [] : [{ name: 'grpc', match: { pathPrefix: GRPC_PREFIX }, upstream: v.grpcUpstream, upstreamProtocol: 'h2c', allow: [{ o: ['bench'] }] }];
  if (!v.manyRoutes) return [...grpc, { name: 'api', match: { pathPrefix: '/' }, upstream: backend, allow: [{ o: ['bench'] }] }];
  // `routes` routes of 5 allow entries each: four that match nobody, then the one that matches.
  const out: unknown[] = [];
  for (let i = 0; i < routes; i++) {
    out.push({
      name: `r${i}`,
      match: { pathPrefix: `/r${i}` },
      upstream: backend,
      deny: [{ cn: [`blocked-${i}`] }],
      allow: [{ cn: [`svc-${i}-a`] }, { cn: [`svc-${i}-b`], ou: ['ops'] }, { spiffe: [`spiffe://bench/svc/${i}`] }, { dns: [`svc-${i}.internal`] }, { o: ['bench'], ou: ['team-*'] }],
    });
  }
  return out;
}

function writeCertgateConfig(dir: string, name: string, pki: BenchPki, backend: string, v: CertgateVariant, routes: number): string {
  const cfg: Record<string, unknown> = {
    listen: { host: '127.0.0.1', port: 0, ...(v.http2 === true ? { http2: true } : {}) },
    tls: { cert: pki.serverCertFile, key: pki.serverKeyFile, clientCAs: [pki.caFile] },
    // Idle connections must outlive the idle-memory window.
    timeouts: { idle: '10m', headers: '30s' },
    limits: { maxConnections: 50_000, maxBodySize: '8MiB' },
    // The main log (stdout) tells the port; the access log goes there too unless `file`.
    log: { level: 'info', access: v.access, ...(v.accessLog === 'file' ? { accessFile: join(dir, `${name}-access.log`) } : {}) },
    admin: { enabled: false },
    watch: { enabled: false },
    workers: v.workers,
    routes: routesFor(v, backend, routes),
  };
  if (v.crl !== undefined) cfg.revocation = { dataDir: join(dir, `${name}-data`), crl: { files: [v.crl] } };
  if (v.redis !== undefined) {
    cfg.revocation = { dataDir: join(dir, `${name}-data`) };
    cfg.store = { instance: name, redis: v.redis };
  }
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(cfg));
  return file;
}

function listeningPort(line: string): number | undefined {
  if (!line.includes('"listening"')) return undefined;
  try {
    const o = JSON.parse(line) as { event?: string; port?: number };
    return o.event === 'listening' && typeof o.port === 'number' ? o.port : undefined;
  } catch {
    return undefined;
  }
}

function jsonPort(line: string): number | undefined {
  try {
    return (JSON.parse(line) as { port?: number }).port;
  } catch {
    return undefined;
  }
}

interface ScenarioPlan {
  mode: ConnMode;
  method: 'GET' | 'POST';
  path: (n: number) => string;
  body?: Buffer;
  certs: readonly ClientCert[];
  concurrency: number;
  connections: number;
  pipelining: number;
  /** For large-body: MiB per request in the direction that counts. */
  mib: number;
  /** Offered requests/s, the same for every target; 0 = closed loop, as fast as it goes. */
  rate?: number;
  /** HTTP/2 load (load-h2.ts): `connections` sessions of `streams` loops each. */
  h2?: { call: 'get' | 'grpc'; streams: number };
  /** The backend whose CPU is reported beside the server's (default: the HTTP/1.1 backend). */
  backend?: Proc;
}

const MIB = 1024 * 1024;

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const log = o.log;
  const root = projectRoot();
  const dir = o.pkiDir ?? mkdtempSync(join(tmpdir(), 'certgate-bench-'));
  mkdirSync(dir, { recursive: true });
  const procs: Proc[] = [];
  let redis: BenchRedis | undefined;
  const pinning = o.pin && hasTaskset() && CORES >= 2;
  // Load generator and backend on core 0, the server measured on the last core (alone).
  const loadCpus = pinning ? [0] : undefined;
  const serverCpus = pinning ? [CORES - 1] : undefined;
  if (pinning) pinSelf(loadCpus);
  const started = Date.now();
  try {
    const wantsMany = o.scenarios.includes('many-identities') || o.scenarios.includes('revocation');
    log(`certificates: CA, server, ECDSA + RSA clients${wantsMany ? `, ${o.identities} identities` : ''}`);
    const pki = await createBenchPki(dir, wantsMany ? o.identities : 0);
    const backend = await startProc('backend', [join(root, 'dist/bench/roles.js'), 'backend'], jsonPort, { cpus: loadCpus });
    procs.push(backend);
    const backendUrl = `http://127.0.0.1:${backend.port}`;
    const bare = await startProc('bare', [join(root, 'dist/bench/roles.js'), 'bare', JSON.stringify({ cert: pki.serverCertFile, key: pki.serverKeyFile, ca: pki.caFile })], jsonPort, {
      cpus: serverCpus,
    });
    procs.push(bare);
    // Profiled beside certgate with --profile: the lean design is what certgate's profile is read against.
    const leanProf = o.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.profileDir, '--cpu-prof-name', `lean-${Date.now()}.cpuprofile`];
    const leanT = once(async (): Promise<Target> => {
      const lean = await startProc('lean', [...leanProf, join(root, 'dist/bench/lean-proxy.js'), JSON.stringify({ cert: pki.serverCertFile, key: pki.serverKeyFile, ca: pki.caFile, backend: backendUrl })], jsonPort, {
        cpus: serverCpus,
      });
      procs.push(lean);
      return { name: 'lean', endpoint: { origin: `https://127.0.0.1:${lean.port}`, ca: pki.caPem }, pid: lean.pid };
    });
    const certgateCpus = o.workers > 1 ? undefined : serverCpus;
    const startCertgate = async (name: string, variant: Omit<CertgateVariant, 'accessLog'>): Promise<Target> => {
      const v = { ...variant, accessLog: o.accessLog };
      const file = writeCertgateConfig(dir, name, pki, backendUrl, v, o.routes);
      const prof = o.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.profileDir, '--cpu-prof-name', `${name}-${Date.now()}.cpuprofile`];
      const p = await startProc(name, [...prof, join(root, 'dist/src/cli/main.js'), 'start', '--config', file], listeningPort, { cpus: certgateCpus, timeoutMs: 60_000 });
      procs.push(p);
      return { name, endpoint: { origin: `https://127.0.0.1:${p.port}`, ca: pki.caPem }, pid: p.pid, proc: p };
    };
    const stopTarget = async (t: Target) => {
      if (t.proc === undefined) return;
      await t.proc.stop();
      procs.splice(procs.indexOf(t.proc), 1);
    };

    const direct: Target = { name: 'direct', endpoint: { origin: backendUrl }, pid: backend.pid };
    const bareT: Target = { name: 'bare', endpoint: { origin: `https://127.0.0.1:${bare.port}`, ca: pki.caPem }, pid: bare.pid };
    const certgate = await startCertgate('certgate', { access: true, manyRoutes: false, workers: o.workers });
    // HTTP/2 (issue 14): started when an HTTP/2 scenario first needs them.
    let h2cBackend: Proc | undefined;
    const bareH2T = once(async (): Promise<Target> => {
      const p = await startProc('bare-h2', [join(root, 'dist/bench/roles.js'), 'bare-h2', JSON.stringify({ cert: pki.serverCertFile, key: pki.serverKeyFile, ca: pki.caFile })], jsonPort, { cpus: serverCpus });
      procs.push(p);
      return { name: 'bare-h2', endpoint: { origin: `https://127.0.0.1:${p.port}`, ca: pki.caPem }, pid: p.pid };
    });
    const certgateH2T = once(async (): Promise<Target> => {
      h2cBackend = await startProc('backend-h2c', [join(root, 'dist/bench/roles.js'), 'backend-h2c'], jsonPort, { cpus: loadCpus });
      procs.push(h2cBackend);
      return startCertgate('certgate-h2', { access: true, manyRoutes: false, workers: o.workers, http2: true, grpcUpstream: `http://127.0.0.1:${h2cBackend.port}` });
    });
    // The fleet scenarios' redis-server, beside the load generator (nothing per request goes to it).
    const redisT = once(async () => (redis = await startBenchRedis(dir, loadCpus)));
    const external: Target | undefined =
      o.target === undefined ? undefined : { name: 'external', endpoint: { origin: o.target, ca: o.targetCa ?? pki.caPem }, pid: o.targetPid };

    const rows: Row[] = [];
    const idle: IdleRow[] = [];
    const skipped: { scenario: string; reason: string }[] = [];
    const load: ScenarioLoad[] = [];
    const upBody = Buffer.alloc(MIB, 0x62);
    const conc = o.connections;
    const few = Math.max(1, Math.min(conc, 8));
    const h2Plan: ScenarioPlan = { mode: 'keepalive', method: 'GET', path: () => '/', certs: [pki.ecdsa], concurrency: o.h2Connections * o.h2Streams, connections: o.h2Connections, pipelining: 1, mib: 0 };
    const plans: Record<Exclude<Scenario, 'idle-memory' | 'fleet-propagation'>, () => ScenarioPlan> = {
      keepalive: () => ({ mode: 'keepalive', method: 'GET', path: () => '/api/items/42', certs: [pki.ecdsa], concurrency: conc * o.pipelining, connections: conc, pipelining: o.pipelining, mib: 0 }),
      // Every target at half of certgate's keep-alive peak from this run: CPU per request at an
      // equal offered load (the closed loop gives each target a different load, and CPU per
      // request depends on load), and the latency certgate adds at half of peak.
      'keepalive-half': () => ({ ...plans.keepalive(), rate: halfPeak() }),
      'handshake-ecdsa': () => ({ mode: 'handshake', method: 'GET', path: () => '/api/items/42', certs: [pki.ecdsa], concurrency: few, connections: few, pipelining: 1, mib: 0 }),
      'handshake-rsa': () => ({ mode: 'handshake', method: 'GET', path: () => '/api/items/42', certs: [pki.rsa], concurrency: few, connections: few, pipelining: 1, mib: 0 }),
      resumed: () => ({ mode: 'resumed', method: 'GET', path: () => '/api/items/42', certs: [pki.ecdsa], concurrency: few, connections: few, pipelining: 1, mib: 0 }),
      'large-body-up': () => ({ mode: 'keepalive', method: 'POST', path: () => '/upload', body: upBody, certs: [pki.ecdsa], concurrency: 4, connections: 4, pipelining: 1, mib: 1 }),
      'large-body-down': () => ({ mode: 'keepalive', method: 'GET', path: () => `/bytes?n=${MIB}`, certs: [pki.ecdsa], concurrency: 4, connections: 4, pipelining: 1, mib: 1 }),
      'many-identities': () => ({ mode: 'keepalive', method: 'GET', path: (n) => `/r${n % o.routes}/items/42`, certs: pki.identities, concurrency: conc, connections: Math.max(conc, pki.identities.length), pipelining: 1, mib: 0 }),
      revocation: () => plans['many-identities'](),
      'h2-streams': () => ({ ...h2Plan, path: () => '/api/items/42', h2: { call: 'get', streams: o.h2Streams } }),
      'grpc-unary': () => ({ ...h2Plan, method: 'POST', path: () => GRPC_PATH, h2: { call: 'grpc', streams: o.h2Streams }, backend: h2cBackend }),
      'keepalive-h2listen': () => plans.keepalive(),
      'keepalive-redis': () => plans.keepalive(),
    };

    const halfPeak = (): number => {
      const peaks = rows.filter((r) => r.scenario === 'keepalive' && r.target === 'certgate').map((r) => r.rps);
      return Math.max(50, Math.round((peaks.length > 0 ? Math.max(...peaks) : 1000) / 2));
    };
    const measure = async (scenario: string, t: Target, plan: ScenarioPlan, run: number): Promise<Row> => {
      let cpu0 = 0, be0 = 0, lg0 = process.cpuUsage(), m0 = cpuSnapshot(o.targetPid), out0 = 0;
      let cpu1 = 0, be1 = 0, lg1 = lg0, m1 = m0, out1 = 0;
      const backendPid = (plan.backend ?? backend).pid;
      const onWindow = (edge: 'start' | 'end') => {
        if (edge === 'start') {
          cpu0 = t.pid === undefined ? NaN : cpuSeconds(t.pid);
          be0 = cpuSeconds(backendPid);
          lg0 = process.cpuUsage();
          m0 = cpuSnapshot(o.targetPid);
          out0 = t.proc?.stdoutBytes() ?? 0;
        } else {
          m1 = cpuSnapshot(o.targetPid);
          out1 = t.proc?.stdoutBytes() ?? 0;
          cpu1 = t.pid === undefined ? NaN : cpuSeconds(t.pid);
          be1 = cpuSeconds(backendPid);
          lg1 = process.cpuUsage();
        }
      };
      const window = { warmupMs: o.warmupMs, durationMs: o.durationMs, maxRequests: o.maxRequests, minRequests: o.minRequests, onWindow };
      const res: LoadResult =
        plan.h2 !== undefined
          ? await runH2Load({ ...window, endpoint: t.endpoint, cert: plan.certs[0]!, connections: plan.connections, streams: plan.h2.streams, call: plan.h2.call, path: plan.path(0) })
          : await runLoad({
              ...window,
              endpoint: t.endpoint,
              mode: plan.mode,
              certs: t.name === 'external' && o.targetCert ? [o.targetCert] : plan.certs,
              concurrency: plan.concurrency,
              connections: plan.connections,
              pipelining: plan.pipelining,
              method: plan.method,
              path: plan.path,
              body: plan.body,
              rate: plan.rate ?? 0,
            });
      // certgate writes its access lines in batches, at least every 100 ms: count the window's lines once they are out.
      if (t.name.startsWith('certgate') && t.proc !== undefined) out1 = await new Promise<number>((r) => setTimeout(() => r(t.proc!.stdoutBytes()), 250));
      const secs = res.elapsedMs / 1000;
      const cpu = cpu1 - cpu0;
      const beCpu = be1 - be0;
      const lgCpu = (lg1.user - lg0.user + lg1.system - lg0.system) / 1e6;
      const per1k = (x: number) => (res.requests > 0 ? (x / res.requests) * 1000 : NaN);
      const mib = plan.mib * res.requests;
      const sorted = Float64Array.from(res.latencies).sort();
      const row: Row = {
        scenario,
        target: t.name,
        run,
        requests: res.requests,
        errors: res.errors,
        errorSamples: res.errorSamples,
        seconds: round(secs, 3),
        rps: round(res.requests / secs, 1),
        latencyMs: { p50: round(percentile(sorted, 50), 3), p90: round(percentile(sorted, 90), 3), p99: round(percentile(sorted, 99), 3), max: round(sorted.length ? sorted[sorted.length - 1]! : NaN, 3) },
        cpu: {
          serverSeconds: round(cpu, 3),
          serverPer1k: round(per1k(cpu), 4),
          serverCoreUtil: round(cpu / secs, 3),
          backendPer1k: isBare(t.name) || t.name === 'direct' ? null : round(per1k(beCpu), 4),
          loadgenPer1k: round(per1k(lgCpu), 4),
          loadgenCoreUtil: round(lgCpu / secs, 3),
        },
        mib: plan.mib > 0 ? mib : null,
        cpuPerMiB: plan.mib > 0 ? { server: round(cpu / mib, 5), backend: round(beCpu / mib, 5) } : null,
        connectionsOpened: plan.mode === 'keepalive' ? null : res.connectionsOpened,
        resumedRatio: plan.mode === 'keepalive' || t.name === 'direct' ? null : round(res.connectionsOpened > 0 ? res.resumed / res.connectionsOpened : 0, 3),
        peakRssMiB: t.pid === undefined ? null : round(peakRssBytes(t.pid) / MIB, 1),
        vsDirect: null,
        vsBare: null,
        vsLean: null,
        machine: windowLoad(m0, m1, secs),
        stdoutBytesPerRequest: t.name.startsWith('certgate') && res.requests > 0 ? round((out1 - out0) / res.requests, 1) : null,
      };
      log(
        `  ${scenario.padEnd(16)} ${t.name.padEnd(16)} run ${run}: ${row.rps} req/s, p99 ${row.latencyMs.p99} ms, ` +
          `CPU ${row.cpu.serverPer1k} s/1k req, errors ${row.errors}`,
      );
      return row;
    };

    for (const scenario of o.scenarios) {
      const before = loadAverages();
      const firstRow = rows.length;
      if (scenario === 'idle-memory') {
        // Fresh processes: a server that already served the other scenarios has heap slack
        // that would absorb the new connections and flatter whichever ran more before.
        for (let run = 1; run <= o.repeat; run++) {
          const freshBare = await startProc('bare-idle', [join(root, 'dist/bench/roles.js'), 'bare', JSON.stringify({ cert: pki.serverCertFile, key: pki.serverKeyFile, ca: pki.caFile })], jsonPort, { cpus: serverCpus });
          procs.push(freshBare);
          const freshCertgate = await startCertgate('certgate-idle', { access: true, manyRoutes: false, workers: o.workers });
          const pairs: Target[] = [
            { name: 'bare', endpoint: bareT.endpoint, pid: freshBare.pid, proc: freshBare },
            { ...freshCertgate, name: 'certgate' },
            ...(external ? [external] : []),
          ];
          for (const t of run % 2 === 0 ? pairs.reverse() : pairs) {
            const ep = t.name === 'bare' ? { origin: `https://127.0.0.1:${freshBare.port}`, ca: pki.caPem } : t.endpoint;
            idle.push(await measureIdle({ ...t, endpoint: ep }, pki.ecdsa, o.idleConnections, run, log));
          }
          await stopTarget({ ...freshCertgate });
          await freshBare.stop();
          procs.splice(procs.indexOf(freshBare), 1);
        }
        load.push({ scenario, before, after: loadAverages(), othersCoresMax: 0, stealCoresMax: 0 });
        continue;
      }
      if (FLEET_SCENARIOS.includes(scenario)) {
        const why = redisMissing();
        if (why !== undefined) {
          skipped.push({ scenario, reason: why });
          log(`  ${scenario}: not run: ${why}`);
          continue;
        }
      }
      if (scenario === 'fleet-propagation') {
        const r = await redisT();
        // B, whose CPU is reported, on the measured core; A (where revocations are made) with the load generator.
        const fleet = await startFleet({ dir, pki, backendUrl, redisUrl: r.url, keyPrefix: 'bench-fleet:', cpus: { a: loadCpus, b: serverCpus } });
        try {
          for (let run = 1; run <= o.repeat; run++) {
            const certs = await issueIdentities(pki, o.fleetRevocations, `fleet-${run}`);
            const m0 = cpuSnapshot(o.targetPid);
            const c0 = cpuSeconds(fleet.b.pid);
            const p = await measurePropagation(fleet, pki, certs, o.fleetMaxMs);
            const row = propagationRow(scenario, run, p, { cpuSeconds: cpuSeconds(fleet.b.pid) - c0, peakRssMiB: round(peakRssBytes(fleet.b.pid) / MIB, 1) }, windowLoad(m0, cpuSnapshot(o.targetPid), p.elapsedMs / 1000));
            rows.push(row);
            log(`  ${scenario.padEnd(16)} ${row.target.padEnd(16)} run ${run}: ${row.requests} revocations, p50 ${row.latencyMs.p50} ms, p99 ${row.latencyMs.p99} ms, errors ${row.errors}`);
          }
        } finally {
          await fleet.stop();
        }
        const mine = rows.slice(firstRow);
        load.push({ scenario, before, after: loadAverages(), othersCoresMax: Math.max(0, ...mine.map((x) => x.machine.othersCores).filter(Number.isFinite)), stealCoresMax: Math.max(0, ...mine.map((x) => x.machine.stealCores).filter(Number.isFinite)) });
        continue;
      }
      const targets: Target[] = [];
      const extra: Target[] = [];
      if (scenario === 'h2-streams' || scenario === 'grpc-unary') {
        targets.push(await bareH2T(), await certgateH2T());
      } else if (scenario === 'keepalive-h2listen') {
        // HTTP/1.1 (the load generator offers only http/1.1 in ALPN) through a listener that also offers h2.
        targets.push(bareT, certgate);
        extra.push(await startCertgate('certgate-h2listen', { access: true, manyRoutes: false, workers: o.workers, http2: true }));
      } else if (scenario === 'keepalive-redis') {
        // The file store's certgate beside one with store.redis on: the same requests, nothing per request in Redis.
        targets.push(bareT, certgate);
        const r = await redisT();
        extra.push(await startCertgate('certgate-redis', { access: true, manyRoutes: false, workers: o.workers, redis: { url: r.url, keyPrefix: 'bench-keepalive:' } }));
      } else if (scenario === 'keepalive' || scenario === 'keepalive-half') {
        targets.push(direct, bareT, await leanT(), certgate);
        extra.push(await startCertgate('certgate-nolog', { access: false, manyRoutes: false, workers: o.workers }));
      } else if (scenario === 'many-identities') {
        targets.push(direct, bareT, await leanT());
        extra.push(await startCertgate('certgate-many', { access: true, manyRoutes: true, workers: o.workers }));
      } else if (scenario === 'revocation') {
        const why = await revocationAvailable();
        if (why !== undefined) {
          skipped.push({ scenario, reason: why });
          log(`  ${scenario}: not run: ${why}`);
          continue;
        }
        targets.push(direct, bareT, await leanT());
        log(`  writing a CRL of ${o.crlEntries} entries`);
        const crl = await writeCrl(pki, o.crlEntries);
        // The local list, as `certgate revoke --offline` would have left it (none of them ours).
        const records = Array.from({ length: o.localRevocations }, () => ({ op: 'add' as const, entry: entryFromInput({ serial: randomSerial(), reason: 'bench', actor: 'bench' }) }));
        if (records.length > 0) await appendRecords(join(dir, 'certgate-revocation-data'), records);
        extra.push(await startCertgate('certgate-revocation', { access: true, manyRoutes: true, crl, workers: o.workers }));
      } else {
        targets.push(direct, bareT, await leanT(), certgate);
      }
      targets.push(...extra);
      // The external endpoint is compared on the HTTP/1.1 scenarios only.
      if (external && !H2_SCENARIOS.includes(scenario)) targets.push(external);
      const plan = plans[scenario]();
      // Even runs go in reverse order, so that a drift in machine load does not favour one side.
      for (let run = 1; run <= o.repeat; run++) {
        for (const t of run % 2 === 0 ? [...targets].reverse() : targets) rows.push(await measure(scenario, t, plan, run));
      }
      for (const t of extra) await stopTarget(t);
      const mine = rows.slice(firstRow);
      load.push({
        scenario,
        before,
        after: loadAverages(),
        othersCoresMax: Math.max(0, ...mine.map((r) => r.machine.othersCores).filter(Number.isFinite)),
        stealCoresMax: Math.max(0, ...mine.map((r) => r.machine.stealCores).filter(Number.isFinite)),
      });
    }

    for (const r of rows) {
      const d = rows.find((x) => x.scenario === r.scenario && x.run === r.run && x.target === 'direct');
      const b = rows.find((x) => x.scenario === r.scenario && x.run === r.run && isBare(x.target));
      if (d !== undefined && r !== d) {
        r.vsDirect = { throughputRatio: round(r.rps / d.rps, 3), addedP50Ms: round(r.latencyMs.p50 - d.latencyMs.p50, 3), addedP99Ms: round(r.latencyMs.p99 - d.latencyMs.p99, 3) };
      }
      if (b !== undefined && r !== b && r.target !== 'direct' && !isBare(r.target)) r.vsBare = { cpuRatio: round(r.cpu.serverPer1k / b.cpu.serverPer1k, 3) };
      const l = rows.find((x) => x.scenario === r.scenario && x.run === r.run && x.target === 'lean');
      if (l !== undefined && r !== l && r.target !== 'direct' && !isBare(r.target)) {
        r.vsLean = {
          cpuRatio: round(r.cpu.serverPer1k / l.cpu.serverPer1k, 3),
          cpuPerMiBRatio: r.cpuPerMiB !== null && l.cpuPerMiB !== null ? round(r.cpuPerMiB.server / l.cpuPerMiB.server, 3) : null,
        };
      }
    }
    return {
      meta: {
        date: new Date(started).toISOString(),
        node: process.version,
        cores: CORES,
        pinned: pinning ? { loadgenAndBackend: loadCpus!, server: o.workers > 1 ? 'all' : serverCpus! } : null,
        procAvailable,
        options: { durationMs: o.durationMs, warmupMs: o.warmupMs, connections: o.connections, pipelining: o.pipelining, h2Connections: o.h2Connections, h2Streams: o.h2Streams, fleetRevocations: o.fleetRevocations, fleetMaxMs: o.fleetMaxMs, repeat: o.repeat, workers: o.workers, idleConnections: o.idleConnections, identities: o.identities, routes: o.routes, crlEntries: o.crlEntries, localRevocations: o.localRevocations, accessLog: o.accessLog, target: o.target ?? null },
        accessLog: o.accessLog === 'file' ? 'certgate: log.accessFile (batched file writes)' : 'certgate: stdout, a pipe drained by the harness (as a container runtime reads its log pipe)',
        wallSeconds: 0,
      },
      rows,
      idle,
      load,
      warnings: loadWarnings(load, CORES),
      skipped,
      checks: [],
    } satisfies BenchReport;
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await redis?.stop();
    if (o.pkiDir === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

async function measureIdle(t: Target, cert: ClientCert, n: number, run: number, log: (l: string) => void): Promise<IdleRow> {
  const pid = t.pid;
  // Warm: code loaded and compiled, pools and caches made, before the baseline is taken.
  const warm = await openIdle(t.endpoint, cert, 50, 10);
  await Promise.all(warm.clients.map((c) => c.destroy().catch(() => {})));
  await sleep(500);
  const before = pid === undefined ? NaN : rssBytes(pid);
  const { clients, errors, samples } = await openIdle(t.endpoint, cert, n, 32);
  await sleep(1500);
  const after = pid === undefined ? NaN : rssBytes(pid);
  await Promise.all(clients.map((c) => c.destroy().catch(() => {})));
  await sleep(300);
  const row: IdleRow = {
    target: t.name,
    run,
    connections: n,
    errors,
    errorSamples: samples,
    rssBeforeMiB: round(before / MIB, 2),
    rssAfterMiB: round(after / MIB, 2),
    perConnectionKiB: round((after - before) / n / 1024, 2),
  };
  log(`  idle-memory      ${t.name.padEnd(16)} run ${run}: ${n} connections, ${row.perConnectionKiB} KiB each (RSS ${row.rssBeforeMiB} -> ${row.rssAfterMiB} MiB), errors ${errors}`);
  return row;
}

/** The server answering itself that a scenario's rows are set against: node:https, or node:http2 in the HTTP/2 scenarios. */
function isBare(target: string): boolean {
  return target === 'bare' || target === 'bare-h2';
}

/** A start-up that runs at most once, when first asked for. */
function once<T>(start: () => Promise<T>): () => Promise<T> {
  let started: Promise<T> | undefined;
  return () => (started ??= start());
}

export function round(x: number, digits: number): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
