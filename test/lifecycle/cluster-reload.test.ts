// Reload with workers: POST /reload on the primary answers after every worker applied it, with
// their real result (a real process tree, as `certgate start` runs it).

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { mtlsRequest } from '../helpers/certgate.js';
import { startCertgate, stopCli } from '../helpers/cli.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

const TOKEN = 'cluster-reload-token-0123456789abcdef';
let pki: TestPki;
let dir: string;
let file: string;
let backend: EchoBackend;
let child: ChildProcess;
let port: number;
let admin: string;
let alice: TestCert;

const config = (over: Record<string, unknown> = {}) =>
  stringify({
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
    admin: { enabled: true, host: '127.0.0.1', port: 0, tokenFile: join(dir, 'admin.token') },
    log: { level: 'info', access: false },
    watch: { enabled: false },
    revocation: { dataDir: join(dir, 'data') },
    workers: 2,
    routes: [{ name: 'all', upstream: backend.url, allow: [{ cn: 'nobody' }] }],
    ...over,
  });

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ cn: 'alice' });
  backend = await startEchoBackend();
  dir = mkdtempSync(join(tmpdir(), 'certgate-cluster-reload-'));
  await pki.writeTo(dir);
  writeFileSync(join(dir, 'admin.token'), TOKEN + '\n', { mode: 0o600 });
  file = join(dir, 'certgate.yaml');
  writeFileSync(file, config());
  const started = await startCertgate(file, '"workers":2');
  ({ child, port } = started);
  admin = `http://127.0.0.1:${started.adminPort}`;
}, 60_000);

afterAll(async () => {
  if (child !== undefined) await stopCli(child);
  await backend?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const postReload = async () => {
  const res = await fetch(`${admin}/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as { ok: boolean; errors: string[]; workers: number } };
};

describe('POST /reload with workers', () => {
  it('applies a new policy in every worker before answering 200', async () => {
    const get = () => mtlsRequest(`https://127.0.0.1:${port}`, pki.rootPem, '/x', { client: { cert: alice.chainPem, key: alice.keyPem } });
    expect((await get()).status).toBe(403);
    writeFileSync(file, config({ routes: [{ name: 'all', upstream: backend.url, allow: [{ cn: 'alice' }] }] }));
    const r = await postReload();
    expect(r.body).toMatchObject({ ok: true, workers: 2 });
    expect(r.status).toBe(200);
    // Round-robin: consecutive connections land on both workers.
    for (let i = 0; i < 4; i++) expect((await get()).status).toBe(200);
  });

  it('answers 422 with the workers\' errors when they refuse the new configuration', async () => {
    writeFileSync(file, config({ listen: { host: '127.0.0.1', port: 1 } }));
    const r = await postReload();
    expect(r.status).toBe(422);
    expect(r.body.ok).toBe(false);
    expect(r.body.errors.join('\n')).toContain('listen.port: cannot change while running');
  });
});
