// A listener that cannot bind stops the start: the process exits 1 with the message, closes what
// it had opened, and never says ready. For `start`, `demo` and cluster workers (real processes).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT } from '../helpers/cli.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let dir: string;
let taken: Server;
let takenPort: number;

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const s = await listenOn(0);
  const port = (s.address() as { port: number }).port;
  await close(s);
  return port;
}

/** The port can be bound again: the process left nothing listening on it. */
async function isFree(port: number): Promise<boolean> {
  try {
    await close(await listenOn(port));
    return true;
  } catch {
    return false;
  }
}

interface Run {
  code: number | null;
  stderr: string;
  /** From the failure message on stderr to the process exit. */
  exitAfterMessageMs: number;
  /** Every /readyz status seen while the process ran. */
  readyz: number[];
}

/** Runs the CLI, polling the admin /readyz until it exits (at most `deadlineMs`). */
function runUntilExit(args: string[], adminPort: number | undefined, message: RegExp, deadlineMs = 20_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let messageAt = 0;
    let exited = false;
    const readyz: number[] = [];
    child.stdout.resume();
    child.stderr.on('data', (c: Buffer) => {
      stderr += c;
      if (messageAt === 0 && message.test(stderr)) messageAt = Date.now();
    });
    const poll = async () => {
      while (!exited && adminPort !== undefined) {
        try {
          readyz.push((await fetch(`http://127.0.0.1:${adminPort}/readyz`, { signal: AbortSignal.timeout(1000) })).status);
        } catch {
          // not listening (yet, or any more)
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const polling = poll();
    const t = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
    child.on('exit', (code) => {
      exited = true;
      clearTimeout(t);
      const end = Date.now();
      void polling.then(() => resolve({ code, stderr, exitAfterMessageMs: messageAt === 0 ? Infinity : end - messageAt, readyz }));
    });
  });
}

function writeConfig(name: string, over: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    stringify({
      listen: { host: '127.0.0.1', port: 0 },
      tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
      watch: { enabled: true },
      log: { level: 'info', access: false },
      revocation: { dataDir: join(dir, `data-${name}`) },
      routes: [{ name: 'all', upstream: 'http://127.0.0.1:1', allow: [{ cn: 'alice' }] }],
      ...over,
    }),
  );
  return file;
}

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-bind-'));
  await pki.writeTo(dir);
  taken = await listenOn(0);
  takenPort = (taken.address() as { port: number }).port;
});

afterAll(async () => {
  if (taken) await close(taken);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a proxy port already in use', () => {
  it('makes `certgate start` exit 1 within a second with the message, closing the admin listener, never ready', async () => {
    const adminPort = await freePort();
    const file = writeConfig('start.yaml', { listen: { host: '127.0.0.1', port: takenPort }, admin: { enabled: true, host: '127.0.0.1', port: adminPort, tokenFile: join(dir, 'admin.token') } });
    const r = await runUntilExit(['start', '--config', file], adminPort, /EADDRINUSE/);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`proxy listener 127.0.0.1:${takenPort}`);
    expect(r.stderr).toContain('EADDRINUSE');
    expect(r.exitAfterMessageMs).toBeLessThan(1000);
    expect(r.readyz.filter((s) => s === 200)).toEqual([]);
    expect(await isFree(adminPort)).toBe(true);
  });

  it('makes a start with workers exit 1 (no respawn loop), closing the admin listener', async () => {
    const adminPort = await freePort();
    const file = writeConfig('workers.yaml', {
      listen: { host: '127.0.0.1', port: takenPort },
      admin: { enabled: true, host: '127.0.0.1', port: adminPort, tokenFile: join(dir, 'admin.token') },
      workers: 2,
    });
    const r = await runUntilExit(['start', '--config', file], adminPort, /EADDRINUSE/);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('EADDRINUSE');
    expect(r.exitAfterMessageMs).toBeLessThan(1000);
    expect(r.readyz.filter((s) => s === 200)).toEqual([]);
    expect(await isFree(adminPort)).toBe(true);
  });
});

describe('an admin port already in use', () => {
  it('makes `certgate start` exit 1 with the message, leaving the proxy port free', async () => {
    const proxyPort = await freePort();
    const file = writeConfig('admin.yaml', { listen: { host: '127.0.0.1', port: proxyPort }, admin: { enabled: true, host: '127.0.0.1', port: takenPort, tokenFile: join(dir, 'admin.token') } });
    const r = await runUntilExit(['start', '--config', file], undefined, /EADDRINUSE/);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`admin listener 127.0.0.1:${takenPort}`);
    expect(r.exitAfterMessageMs).toBeLessThan(1000);
    expect(await isFree(proxyPort)).toBe(true);
  });
});

describe('certgate demo', () => {
  it('exits 1 when its backend port is taken, leaving the proxy and admin ports free', async () => {
    const [proxyPort, adminPort] = [await freePort(), await freePort()];
    const file = writeConfig('demo1.yaml', { listen: { host: '127.0.0.1', port: proxyPort }, admin: { enabled: true, host: '127.0.0.1', port: adminPort, tokenFile: join(dir, 'admin.token') } });
    const r = await runUntilExit(['demo', '--config', file, '--certs', dir, '--backend-port', String(takenPort)], adminPort, /EADDRINUSE/);
    expect(r.code).toBe(1);
    expect(r.exitAfterMessageMs).toBeLessThan(1000);
    expect(await isFree(proxyPort)).toBe(true);
    expect(await isFree(adminPort)).toBe(true);
  });

  it('exits 1 when the proxy port is taken, closing the backend and admin listeners', async () => {
    const [backendPort, adminPort] = [await freePort(), await freePort()];
    const file = writeConfig('demo2.yaml', { listen: { host: '127.0.0.1', port: takenPort }, admin: { enabled: true, host: '127.0.0.1', port: adminPort, tokenFile: join(dir, 'admin.token') } });
    const r = await runUntilExit(['demo', '--config', file, '--certs', dir, '--backend-port', String(backendPort)], adminPort, /EADDRINUSE/);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`proxy listener 127.0.0.1:${takenPort}`);
    expect(r.exitAfterMessageMs).toBeLessThan(1000);
    expect(r.readyz.filter((s) => s === 200)).toEqual([]);
    expect(await isFree(backendPort)).toBe(true);
    expect(await isFree(adminPort)).toBe(true);
  });
});
