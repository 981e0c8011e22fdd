// A revocation acknowledged by the admin API survives kill -9 of the certgate process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { mtlsRequest } from '../helpers/certgate.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE_ARGS = ['--import', join(ROOT, 'test/helpers/register-ts.mjs'), join(ROOT, 'src/cli/main.ts')];

let pki: TestPki;
let dir: string;
let backend: EchoBackend;

function start(config: string): Promise<{ child: ChildProcess; port: number; adminPort: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, 'start', '--config', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const t = setTimeout(() => reject(new Error(`certgate did not start: ${out}`)), 20_000);
    const onData = (c: Buffer) => {
      out += c;
      const m = /"event":"listening".*?"port":(\d+).*?"adminPort":(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ child, port: Number(m[1]), adminPort: Number(m[2]) });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
}

function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-crash-'));
  backend = await startEchoBackend();
  const files = await pki.writeTo(dir);
  writeFileSync(
    join(dir, 'certgate.yaml'),
    stringify({
      listen: { host: '127.0.0.1', port: 0 },
      tls: { cert: files.serverCert, key: files.serverKey, clientCAs: [files.caBundle] },
      admin: { enabled: true, host: '127.0.0.1', port: 0 },
      log: { level: 'info', access: false },
      watch: { enabled: false },
      revocation: { dataDir: 'revocations' },
      routes: [{ name: 'app', match: { pathPrefix: '/' }, upstream: backend.url, allow: [{ o: 'certgate-test' }] }],
    }),
  );
});

afterAll(async () => {
  await backend?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('keeps an acknowledged revocation after kill -9 and a restart', async () => {
  const c = await pki.client();
  const creds = { cert: c.chainPem, key: c.keyPem };
  const config = join(dir, 'certgate.yaml');
  const first = await start(config);
  try {
    expect((await mtlsRequest(`https://127.0.0.1:${first.port}`, pki.rootPem, '/x', { client: creds })).status).toBe(200);
    const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    const res = await fetch(`http://127.0.0.1:${first.adminPort}/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ serial: c.serial, reason: 'crash test' }),
    });
    expect(res.status).toBe(201);
  } finally {
    await killHard(first.child);
  }
  const second = await start(config);
  try {
    const r = await mtlsRequest(`https://127.0.0.1:${second.port}`, pki.rootPem, '/x', { client: creds });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_revoked');
  } finally {
    await killHard(second.child);
  }
});
