// The mTLS admin listener (admin.tls) on real sockets: refusals as on the proxy, roles, the token
// beside certificates, revocation and expiry of admin certificates, reload of material and allow.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { BACKEND, mtlsRequest, startHarness, type Harness, type Reply } from '../helpers/certgate.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let adminPki: TestPki;
let h: Harness;
let files: string;
let ops: TestCert;
let viewer: TestCert;
let stranger: TestCert;
let logFile: string;
let adminOrigin: string;

const creds = (c: TestCert | undefined) => (c === undefined ? undefined : { cert: c.chainPem, key: c.keyPem });
const call = (path: string, o: { as?: TestCert; method?: string; body?: unknown; token?: string } = {}): Promise<Reply> =>
  mtlsRequest(adminOrigin, pki.rootPem, path, {
    client: creds(o.as),
    method: o.method ?? 'GET',
    headers: { 'content-type': 'application/json', ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}) },
    ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
  });

function adminSection(allow: unknown[], more: Record<string, unknown> = {}) {
  return {
    enabled: true,
    host: '127.0.0.1',
    port: 0,
    tokenFile: join(files, 'admin.token'),
    tls: { cert: join(files, 'admin-server.pem'), key: join(files, 'admin-server-key.pem'), clientCAs: join(files, 'admin-ca.pem'), allow, ...more },
  };
}

const ALLOW = [{ cn: 'ops' }, { cn: 'viewer', role: 'read' }];

beforeAll(async () => {
  pki = await createTestPki();
  adminPki = await pki.untrustedRoot();
  files = mkdtempSync(join(tmpdir(), 'certgate-admin-'));
  writeFileSync(join(files, 'admin-server.pem'), pki.server.chainPem);
  writeFileSync(join(files, 'admin-server-key.pem'), pki.server.keyPem);
  writeFileSync(join(files, 'admin-ca.pem'), adminPki.caBundlePem);
  writeFileSync(join(files, 'admin.token'), 'a'.repeat(40) + '\n', { mode: 0o600 });
  ops = await adminPki.client({ cn: 'ops' });
  viewer = await adminPki.client({ cn: 'viewer' });
  stranger = await adminPki.client({ cn: 'stranger' });
  logFile = join(files, 'certgate.log');
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'r', upstream: BACKEND, allow: [{ subject: '*' }] }],
    extra: { admin: adminSection(ALLOW), log: { level: 'info', access: false, file: logFile } },
  });
  adminOrigin = `https://127.0.0.1:${h.app.adminPort}`;
});

afterAll(async () => {
  await h?.close();
  rmSync(files, { recursive: true, force: true });
});

describe('mTLS admin listener: refusals as on the proxy', () => {
  it('refuses a request without a client certificate with 401 certificate_required', async () => {
    const r = await call('/certs');
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe('certificate_required');
  });

  it('refuses a certificate that does not chain to admin.tls.clientCAs with 403 certificate_untrusted', async () => {
    const proxyClient = await pki.client({ cn: 'ops' });
    const r = await call('/certs', { as: proxyClient });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_untrusted');
  });

  it('refuses a trusted certificate that matches no allow entry with 403 identity_not_allowed', async () => {
    const r = await call('/revocations', { as: stranger });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('identity_not_allowed');
  });

  it('refuses an expired admin certificate with 403 certificate_expired', async () => {
    const old = await adminPki.client({ cn: 'ops', notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    const r = await call('/certs', { as: old });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_expired');
  });

  it('does not accept a bad certificate even with a valid token', async () => {
    const r = await call('/certs', { as: stranger, token: 'a'.repeat(40) });
    expect(r.json.error.code).toBe('identity_not_allowed');
  });
});

describe('mTLS admin listener: roles and the token', () => {
  it('lets an admin certificate mutate without the token, and the audit line names its subject and fingerprint', async () => {
    const victim = await pki.client({ cn: 'victim' });
    const r = await call('/revocations', { as: ops, method: 'POST', body: { fingerprint: victim.fingerprint256, reason: 'keyCompromise' } });
    expect(r.status, r.text).toBe(201);
    expect(r.json.actor).toContain('CN=ops');
    const line = await waitFor(
      () => {
        h.app.loggers.flush();
        const lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
        return lines.find((l) => l.event === 'audit' && l.action === 'revoke' && l.id === r.json.id);
      },
      { what: 'the audit line of the revocation' },
    );
    expect(line.actor).toContain('CN=ops');
    expect(line.actor.replace(/:/g, '').toLowerCase()).toContain(ops.fingerprint256);
    expect((await call('/certs', { as: ops })).status).toBe(200);
  });

  it('lets a read certificate use GET endpoints but refuses mutations with 403 admin_forbidden', async () => {
    expect((await call('/revocations', { as: viewer })).status).toBe(200);
    expect((await call('/metrics', { as: viewer })).status).toBe(200);
    const r = await call('/revocations', { as: viewer, method: 'POST', body: { serial: '01' } });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('admin_forbidden');
    expect((await call('/reload', { as: viewer, method: 'POST' })).json.error.code).toBe('admin_forbidden');
  });

  it('keeps /healthz and /readyz open to probes without a certificate, and /metrics behind one', async () => {
    expect((await call('/healthz')).status).toBe(200);
    expect((await call('/readyz')).status).toBe(200);
    expect((await call('/metrics')).json.error.code).toBe('certificate_required');
  });

  it('accepts the bearer token without a certificate by default', async () => {
    const r = await call('/revocations', { method: 'POST', token: 'a'.repeat(40), body: { serial: 'abcd01', reason: 'superseded' } });
    expect(r.status, r.text).toBe(201);
    expect(r.json.actor).toMatch(/^token@/);
  });

  it('refuses a revoked admin certificate, also on a connection opened before the revocation', async () => {
    const doomed = await adminPki.client({ cn: 'ops' });
    expect((await call('/certs', { as: doomed })).status).toBe(200);
    const r = await call('/revocations', { as: ops, method: 'POST', body: { fingerprint: doomed.fingerprint256, reason: 'keyCompromise' } });
    expect(r.status, r.text).toBe(201);
    const after = await call('/certs', { as: doomed });
    expect(after.status).toBe(403);
    expect(after.json.error.code).toBe('certificate_revoked');
  });
});

describe('mTLS admin listener: reload', () => {
  it('applies a new allow list, tokenAlso: false and new TLS material on reload', async () => {
    expect((await call('/certs', { as: viewer })).status).toBe(200);
    const newServer = await pki.serverCert({ cn: 'admin-reloaded' });
    writeFileSync(join(files, 'admin-server.pem'), newServer.chainPem);
    writeFileSync(join(files, 'admin-server-key.pem'), newServer.keyPem);
    h.writeConfig((c) => {
      c.admin = adminSection([{ cn: 'ops' }], { tokenAlso: false });
    });
    const result = h.app.reload();
    expect(result).toMatchObject({ ok: true });
    const r = await call('/certs', { as: viewer });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('identity_not_allowed');
    const t = await call('/certs', { token: 'a'.repeat(40) });
    expect(t.status).toBe(401);
    expect(t.json.error.code).toBe('certificate_required');
    expect((await call('/certs', { as: ops })).status).toBe(200);
    const served = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: h.app.adminPort!, ca: pki.rootPem, servername: 'localhost', cert: ops.chainPem, key: ops.keyPem }, () => {
        resolve(s.getPeerX509Certificate()!.fingerprint256);
        s.destroy();
      });
      s.once('error', reject);
    });
    expect(served).toBe(newServer.nodeCert.fingerprint256);
  });

  it('refuses a reload that switches the admin listener between plain HTTP and mTLS', () => {
    h.writeConfig((c) => {
      c.admin = { enabled: true, host: '127.0.0.1', port: 0, tokenFile: join(files, 'admin.token') };
    });
    const r = h.app.reload();
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(/admin\.tls: cannot change while running/);
  });
});
