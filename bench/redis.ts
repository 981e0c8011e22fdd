// The bench's own redis-server for the fleet scenarios: a free loopback port, no persistence,
// pinned like the load generator when pinning is on. redis-server is Debian's `redis-server`
// package (test/helpers/ensure-system-deps.sh installs it); without it the scenarios say so.

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { cpuList } from './procs.js';

export const REDIS_PACKAGE = 'redis-server';

export interface BenchRedis {
  readonly port: number;
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Why the fleet scenarios cannot run here, or undefined when redis-server is on the PATH. */
export function redisMissing(): string | undefined {
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (r.error === undefined && r.status === 0) return undefined;
  return `redis-server is not installed: install Debian's ${REDIS_PACKAGE} package (sudo apt-get install -y ${REDIS_PACKAGE}, or run test/helpers/ensure-system-deps.sh as root)`;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

function pong(port: number): Promise<boolean> {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false });
  c.on('error', () => undefined);
  return c
    .connect()
    .then(() => c.ping())
    .then((r) => r === 'PONG', () => false)
    .finally(() => c.disconnect());
}

/** Starts redis-server in `dir` and waits (at most 15 s) until it answers PING. */
export async function startBenchRedis(dir: string, cpus?: number[]): Promise<BenchRedis> {
  const missing = redisMissing();
  if (missing !== undefined) throw new Error(missing);
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const pin = cpuList(cpus);
  const p = pin === undefined ? spawn('redis-server', args, { stdio: 'ignore' }) : spawn('taskset', ['-c', pin, 'redis-server', ...args], { stdio: 'ignore' });
  const stop = () =>
    new Promise<void>((r) => {
      if (p.exitCode !== null || p.signalCode !== null) return r();
      p.once('exit', () => r());
      p.kill('SIGKILL');
    });
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && p.exitCode === null) {
    if (await pong(port)) return { port, url: `redis://127.0.0.1:${port}/0`, pid: p.pid!, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`redis-server did not answer on 127.0.0.1:${port} within 15 s (exit code ${p.exitCode})`);
}
