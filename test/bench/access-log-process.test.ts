// The access log on stdout of a real certgate process: every line reaches the pipe when the
// process is stopped with SIGTERM right after its requests, and a pipe nobody reads costs
// dropped (and counted) lines, never a stuck request.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { CLI, ROOT } from '../helpers/cli.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { PROCESS_BASE } from '../helpers/config.js';

let pki: TestPki;
let alice: TestCert;
let backend: EchoBackend;
const dirs: string[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice, O=Acme' });
  backend = await startEchoBackend();
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await backend?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Started {
  child: ChildProcess;
  port: number;
  adminPort: number;
  exited: Promise<number | null>;
  output: () => string;
}

/** certgate with both its logs on stdout (the container default), once it listens. */
async function start(): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-accessproc-'));
  dirs.push(dir);
  await pki.writeTo(dir);
  const file = join(dir, 'certgate.yaml');
  writeFileSync(
    file,
    stringify({
      ...PROCESS_BASE,
      watch: { enabled: false },
      routes: [{ name: 'all', upstream: backend.url, allow: [{ o: 'Acme' }] }],
    }),
  );
  const child = spawn(process.execPath, [CLI, 'start', '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  const listening = await waitFor(() => /"event":"listening".*/.exec(out)?.[0], { what: 'the listening line', deadline: 20_000, every: 25 });
  return { child, exited, output: () => out, port: Number(/"port":(\d+)/.exec(listening)![1]), adminPort: Number(/"adminPort":(\d+)/.exec(listening)![1]) };
}

function client(port: number): Pool {
  return new Pool(`https://127.0.0.1:${port}`, {
    connections: 4,
    connect: { ca: pki.rootPem, cert: alice.chainPem, key: alice.keyPem, servername: 'localhost', rejectUnauthorized: true },
  });
}

async function get(pool: Pool, path: string): Promise<number> {
  const r = await pool.request({ path, method: 'GET' });
  await r.body.dump();
  return r.statusCode;
}

describe('access log on stdout (real process)', () => {
  it('loses no line when SIGTERM comes right after the requests', async () => {
    const s = await start();
    const pool = client(s.port);
    const n = 300;
    const statuses = await Promise.all(Array.from({ length: n }, (_, i) => get(pool, `/sigterm/${i}`)));
    expect(statuses.every((x) => x === 200)).toBe(true);
    await pool.close();
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    const lines = s.output().split('\n').filter((l) => l.includes('"kind":"access"'));
    expect(lines).toHaveLength(n);
    const paths = new Set(lines.map((l) => (JSON.parse(l) as { path: string }).path));
    for (let i = 0; i < n; i++) expect(paths.has(`/sigterm/${i}`)).toBe(true);
  });

  it('keeps answering when nobody reads stdout, dropping and counting lines', async () => {
    const s = await start();
    // Nobody reads: the pipe and the reader's small buffer fill, then every write waits.
    s.child.stdout!.removeAllListeners('data');
    s.child.stdout!.pause();
    const pool = client(s.port);
    // Long paths make long lines, so that the writer's bound is reached in a few hundred requests.
    const long = '/' + 'p'.repeat(8000);
    const started = Date.now();
    for (let round = 0; round < 4; round++) {
      const statuses = await Promise.all(Array.from({ length: 150 }, (_, i) => get(pool, `${long}/${round}-${i}`)));
      expect(statuses.every((x) => x === 200)).toBe(true);
    }
    const dropped = await waitFor(
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${s.adminPort}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
        const v = Number(/^certgate_access_log_dropped_total (\d+)/m.exec(text)?.[1] ?? 0);
        return v > 0 ? v : undefined;
      },
      { what: 'the dropped-lines counter', every: 50 },
    );
    expect(dropped).toBeGreaterThan(0);
    // Still answering, and promptly.
    expect(await get(pool, '/after')).toBe(200);
    expect(Date.now() - started).toBeLessThan(15_000);
    await pool.close();
    // Shutdown is bounded too: the stalled batch is given up after a second.
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });
});
