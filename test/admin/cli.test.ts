// The CLI against a real mTLS admin listener: an admin certificate issued by `certgate ca issue
// --profile admin`, then revoke / revocations / inventory / ca revoke --admin with --cert/--key/--ca
// and with admin.client from --config.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { runCli } from '../helpers/cli.js';

let pki: TestPki;
let h: Harness;
let dir: string;
let caDir: string;
let url: string;
let tlsFlags: string[];
let readFlags: string[];

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-admin-cli-'));
  caDir = join(dir, 'ca');
  expect((await runCli(['ca', 'init', '--dir', caDir])).code).toBe(0);
  const issued = await runCli(['ca', 'issue', '--dir', caDir, '--cn', 'alice', '--profile', 'admin', '--out', join(dir, 'alice')]);
  expect(issued.code, issued.stderr).toBe(0);
  expect(issued.stdout).toContain('admin.tls.allow entry: { ou: certgate-admin, cn: "alice" }');
  expect((await runCli(['ca', 'issue', '--dir', caDir, '--cn', 'bob', '--profile', 'admin', '--out', join(dir, 'bob')])).code).toBe(0);
  const alice = new X509Certificate(readFileSync(join(dir, 'alice.pem')));
  expect(alice.subject).toContain('OU=certgate-admin');
  writeFileSync(join(dir, 'admin-server.pem'), pki.server.chainPem);
  writeFileSync(join(dir, 'admin-server-key.pem'), pki.server.keyPem);
  writeFileSync(join(dir, 'server-root.pem'), pki.rootPem);
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'r', upstream: BACKEND, allow: [{ subject: '*' }] }],
    extra: {
      admin: {
        enabled: true,
        host: '127.0.0.1',
        port: 0,
        tokenFile: join(dir, 'admin.token'),
        tls: {
          cert: join(dir, 'admin-server.pem'),
          key: join(dir, 'admin-server-key.pem'),
          clientCAs: join(caDir, 'ca-bundle.pem'),
          allow: [{ ou: 'certgate-admin', cn: 'alice' }, { ou: 'certgate-admin', cn: 'bob', role: 'read' }],
          tokenAlso: false,
        },
      },
    },
  });
  url = `https://127.0.0.1:${h.app.adminPort}`;
  tlsFlags = ['--admin', url, '--cert', join(dir, 'alice.pem'), '--key', join(dir, 'alice-key.pem'), '--ca', join(dir, 'server-root.pem')];
  readFlags = ['--admin', url, '--cert', join(dir, 'bob.pem'), '--key', join(dir, 'bob-key.pem'), '--ca', join(dir, 'server-root.pem')];
}, 60_000);

afterAll(async () => {
  await h?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('CLI over the mTLS admin listener', () => {
  it('revoke, revocations list and revocations delete work with --cert/--key/--ca', async () => {
    const r = await runCli(['revoke', '--serial', '0a0b0c', '--reason', 'keyCompromise', ...tlsFlags]);
    expect(r.code, r.stderr).toBe(0);
    const entry = JSON.parse(r.stdout);
    expect(entry.actor).toContain('CN=alice');
    const list = await runCli(['revocations', 'list', ...readFlags]);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).revocations.map((e: { id: string }) => e.id)).toContain(entry.id);
    const del = await runCli(['revocations', 'delete', entry.id, ...tlsFlags]);
    expect(del.code, del.stderr).toBe(0);
  });

  it('a read-only certificate cannot revoke (admin_forbidden), and no certificate at all is refused', async () => {
    const r = await runCli(['revoke', '--serial', '0a0b0d', '--reason', 'keyCompromise', ...readFlags]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('admin_forbidden');
    const none = await runCli(['revocations', 'list', '--admin', url, '--ca', join(dir, 'server-root.pem')]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('certificate_required');
  });

  it('inventory reads GET /certs with a client certificate', async () => {
    const r = await runCli(['inventory', '--json', ...readFlags]);
    expect(r.code, r.stderr).toBe(0);
    expect(Array.isArray(JSON.parse(r.stdout))).toBe(true);
  });

  it('revoke and inventory take the admin URL and client certificate from admin.client in --config', async () => {
    const cfg = join(dir, 'cli.yaml');
    writeFileSync(
      cfg,
      stringify({
        listen: { port: 8443 },
        tls: { cert: 'admin-server.pem', key: 'admin-server-key.pem', clientCAs: ['ca/ca-bundle.pem'] },
        admin: { client: { url, cert: 'alice.pem', key: 'alice-key.pem', ca: 'server-root.pem' } },
        routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', allow: [{ cn: 'a' }] }],
      }),
    );
    const r = await runCli(['revoke', '--fingerprint', 'ab'.repeat(32), '--reason', 'superseded', '--config', cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect((await runCli(['inventory', '--config', cfg])).code).toBe(0);
  });

  it('ca revoke --admin reaches the mTLS admin listener with --cert/--key/--ca', async () => {
    expect((await runCli(['ca', 'issue', '--dir', caDir, '--cn', 'carol', '--out', join(dir, 'carol')])).code).toBe(0);
    const serial = new X509Certificate(readFileSync(join(dir, 'carol.pem'))).serialNumber;
    const r = await runCli(['ca', 'revoke', '--dir', caDir, '--serial', serial, '--reason', 'keyCompromise', ...tlsFlags]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`revoked at ${url} too`);
    const list = await runCli(['revocations', 'list', ...readFlags]);
    expect(list.stdout.toLowerCase()).toContain(serial.toLowerCase().replace(/^0+/, ''));
  });
});
