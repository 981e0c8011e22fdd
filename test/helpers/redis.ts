// A real redis-server for the fleet tests: started on a free loopback port in a temp folder,
// no persistence, stopped after the test. Killing and restarting it (same port) is how tests
// make an outage; FLUSHALL is how they make a Redis that "came back empty".

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { Config } from '../../src/config/types.js';
import { openStore, type Store } from '../../src/store/index.js';
import { freePort } from './weak-server.js';
import { waitFor } from './wait.js';

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** A fresh client for inspecting or changing keys from the test. */
  client(): Redis;
  /** SIGKILL: an outage as instances see one. */
  kill(): Promise<void>;
  /** Starts again on the same port (empty: no persistence); nothing when it is running. */
  restart(): Promise<void>;
  flushAll(): Promise<void>;
  stop(): Promise<void>;
}

function pong(port: number): Promise<boolean> {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  c.on('error', () => undefined);
  return c
    .connect()
    .then(() => c.ping())
    .then((r) => r === 'PONG')
    .catch(() => false)
    .finally(() => c.disconnect());
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'certgate-redis-'));
  const clients: Redis[] = [];
  let proc: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    if (proc !== undefined && proc.exitCode === null) return; // already running
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes'], {
      stdio: 'ignore',
    });
    proc = p;
    const exited = new Promise<never>((_, reject) => p.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before answering; is Debian's redis-server installed?`))));
    exited.catch(() => undefined);
    await Promise.race([waitFor(() => pong(port), { what: `redis-server on port ${port}`, deadline: 15_000 }), exited]);
  };
  const kill = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (p === undefined || p.exitCode !== null) return;
    await new Promise<void>((r) => {
      p.once('exit', () => r());
      p.kill('SIGKILL');
    });
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    client: () => {
      const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    kill,
    restart: launch,
    flushAll: async () => {
      const c = new Redis({ port, host: '127.0.0.1' });
      await c.flushall();
      c.disconnect();
    },
    stop: async () => {
      for (const c of clients) c.disconnect();
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The store a CLI or a test opens on this Redis (the rest of the config is not read). */
export async function openTestStore(url: string, keyPrefix: string, dataDir: string): Promise<Store> {
  const config = { store: { redis: { url, keyPrefix } }, listen: { port: 0 }, revocation: { dataDir, recheck: 0 } } as unknown as Config;
  return openStore(config, pino({ enabled: false }), { requireConnection: true });
}
