// A revocation acknowledged by the admin API survives kill -9 of the certgate process.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { mtlsRequest } from '../helpers/certgate.js';
import { spawnCli, stopCli } from '../helpers/cli.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let dir: string;
let backend: EchoBackend;

async function start(config: string): Promise<{ child: ChildProcess; port: number; adminPort: number }> {
  const { child, match } = await spawnCli(['start', '--config', config], /"event":"listening".*?"port":(\d+).*?"adminPort":(\d+)/, { cwd: dir });
  return { child, port: Number(match[1]), adminPort: Number(match[2]) };
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
    await stopCli(first.child, 'SIGKILL');
  }
  const second = await start(config);
  try {
    const r = await mtlsRequest(`https://127.0.0.1:${second.port}`, pki.rootPem, '/x', { client: creds });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_revoked');
  } finally {
    await stopCli(second.child, 'SIGKILL');
  }
});
