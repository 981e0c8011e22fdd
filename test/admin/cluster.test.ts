// With workers, the mTLS admin listener runs in the cluster primary (a real process tree, as
// `certgate start` runs it): refusals, roles, revocation reaching the workers, and a reload of
// the admin allow list.

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

let pki: TestPki;
let adminPki: TestPki;
let dir: string;
let file: string;
let backend: EchoBackend;
let child: ChildProcess;
let port: number;
let admin: string;
let ops: TestCert;
let viewer: TestCert;
let alice: TestCert;

const config = (allow: unknown[]) =>
  stringify({
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
    admin: {
      enabled: true,
      host: '127.0.0.1',
      port: 0,
      tokenFile: join(dir, 'admin.token'),
      tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: 'admin-ca.pem', allow },
    },
    log: { level: 'info', access: false },
    watch: { enabled: false },
    revocation: { dataDir: join(dir, 'data') },
    workers: 2,
    routes: [{ name: 'all', upstream: backend.url, allow: [{ cn: 'alice' }] }],
  });

const call = (path: string, as: TestCert | undefined, method = 'GET', body?: unknown) =>
  mtlsRequest(admin, pki.rootPem, path, {
    method,
    ...(as !== undefined ? { client: { cert: as.chainPem, key: as.keyPem } } : {}),
    headers: { 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });

beforeAll(async () => {
  pki = await createTestPki();
  adminPki = await pki.untrustedRoot();
  ops = await adminPki.client({ cn: 'ops' });
  viewer = await adminPki.client({ cn: 'viewer' });
  alice = await pki.client({ cn: 'alice' });
  backend = await startEchoBackend();
  dir = mkdtempSync(join(tmpdir(), 'certgate-admin-cluster-'));
  await pki.writeTo(dir);
  writeFileSync(join(dir, 'admin-ca.pem'), adminPki.caBundlePem);
  file = join(dir, 'certgate.yaml');
  writeFileSync(file, config([{ cn: 'ops' }, { cn: 'viewer', role: 'read' }]));
  const started = await startCertgate(file, '"workers":2');
  ({ child, port } = started);
  admin = `https://127.0.0.1:${started.adminPort}`;
}, 60_000);

afterAll(async () => {
  if (child !== undefined) await stopCli(child);
  await backend?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('mTLS admin listener in the cluster primary', () => {
  it('refuses without a certificate and gives a read certificate GET but not mutations', async () => {
    expect((await call('/certs', undefined)).json.error.code).toBe('certificate_required');
    expect((await call('/certs', viewer)).status).toBe(200);
    expect((await call('/metrics', viewer)).status).toBe(200);
    const r = await call('/revocations', viewer, 'POST', { fingerprint: alice.fingerprint256, reason: 'keyCompromise' });
    expect(r.json.error.code).toBe('admin_forbidden');
  });

  it('an admin certificate revokes without the token, and every worker refuses the revoked client', async () => {
    const origin = `https://127.0.0.1:${port}`;
    expect((await mtlsRequest(origin, pki.rootPem, '/', { client: { cert: alice.chainPem, key: alice.keyPem } })).status).toBe(200);
    const r = await call('/revocations', ops, 'POST', { fingerprint: alice.fingerprint256, reason: 'keyCompromise' });
    expect(r.status, r.text).toBe(201);
    expect(r.json.actor).toContain('CN=ops');
    // Several fresh connections: whichever worker takes each, it refuses.
    for (let i = 0; i < 4; i++) {
      const refused = await mtlsRequest(origin, pki.rootPem, '/', { client: { cert: alice.chainPem, key: alice.keyPem } });
      expect(refused.json.error.code).toBe('certificate_revoked');
    }
  });

  it('a reload removes an identity from admin.tls.allow: refused after', async () => {
    writeFileSync(file, config([{ cn: 'ops' }]));
    const reload = await call('/reload', ops, 'POST');
    expect(reload.status, reload.text).toBe(200);
    expect((await call('/certs', viewer)).json.error.code).toBe('identity_not_allowed');
    expect((await call('/certs', ops)).status).toBe(200);
  });
});
