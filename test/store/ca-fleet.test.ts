// One CA for a fleet: two certgate processes with EST on, each with its own copy of the CA
// directory (keys), one Redis index. Over real TLS: a token used on A is refused on B, racing
// uses of one token on both let exactly one through, renewal rate limits count on both, and the
// CLI with --config sees and revokes what either instance issued.

import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, initAuthority } from '../../src/ca/authority.js';
import { createCsr } from '../../src/ca/csr.js';
import { certsFromPkcs7 } from '../../src/ca/pkcs7.js';
import { generateKeyPair } from '../../src/ca/pki.js';
import type { Store } from '../../src/store/index.js';
import { identityFromDer } from '../../src/identity/identity.js';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { mtlsRequest, type Reply } from '../helpers/certgate.js';
import { runCli, startCertgate, stopCli, type StartedCertgate } from '../helpers/cli.js';
import { writeYamlConfig } from '../helpers/config.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { openTestStore, startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

const MIN = 60_000;
const EST = '/.well-known/est/';
let pki: TestPki;
let redis: TestRedis;
let backend: EchoBackend;
let dir: string;
let a: StartedCertgate;
let b: StartedCertgate;
let configA: string;
let configB: string;
let store: Store;
let ca: CertificateAuthority;

function config(name: string, caDir: string): string {
  return writeYamlConfig(join(dir, `${name}.yaml`), {
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: [join(caDir, 'ca-bundle.pem')] },
    admin: { enabled: false },
    log: { level: 'info', access: false },
    watch: { enabled: false },
    store: { instance: name, redis: { url: redis.url, keyPrefix: 'one-ca:' } },
    est: { enabled: true, caDir, renewWindowDays: 0, renewWindowFraction: 0.5, rateLimitPerHour: 3, days: 30 },
    routes: [{ name: 'api', match: { pathPrefix: '/api' }, upstream: backend.url, allow: [{ cn: 'enrolled-*' }] }],
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  redis = await startRedis();
  backend = await startEchoBackend();
  dir = mkdtempSync(join(tmpdir(), 'certgate-fleet-ca-'));
  await pki.writeTo(dir);
  await initAuthority(join(dir, 'ca-a'), { intermediate: true });
  // B's host holds its own copy of the CA directory (same keys); the index is Redis's.
  cpSync(join(dir, 'ca-a'), join(dir, 'ca-b'), { recursive: true });
  configA = config('edge-a', join(dir, 'ca-a'));
  configB = config('edge-b', join(dir, 'ca-b'));
  [a, b] = await Promise.all([startCertgate(configA), startCertgate(configB)]);
  store = await openTestStore(redis.url, 'one-ca:', join(dir, 'cli-data'));
  ca = await CertificateAuthority.open(join(dir, 'ca-a'), { store });
});

afterAll(async () => {
  await Promise.allSettled([a, b].filter(Boolean).map((p) => stopCli(p.child)));
  await store?.close();
  await backend?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function csrBody(subject: string) {
  const keys = await generateKeyPair('P-256');
  return (await createCsr(keys, { subject })).replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
}

const post = (p: StartedCertgate, op: string, body: string, opts: { token?: string; client?: { cert: string; key: string } } = {}): Promise<Reply> =>
  mtlsRequest(`https://127.0.0.1:${p.port}`, pki.rootPem, EST + op, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/pkcs10', ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}) },
    ...(opts.client !== undefined ? { client: opts.client } : {}),
  });

async function tokenFor(cn: string, cfg = configA): Promise<string> {
  const r = await runCli(['ca', 'token', '--config', cfg, '--cn', cn]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

const serialOf = (r: Reply) => identityFromDer(new Uint8Array(new X509Certificate(certsFromPkcs7(r.text)[0]!).raw)).serial;

describe('one CA index for the fleet', () => {
  it('refuses on instance B an enrollment token already used on instance A', async () => {
    const token = await tokenFor('enrolled-one');
    const first = await post(a, 'simpleenroll', await csrBody('CN=enrolled-one'), { token });
    expect(first.status, first.text).toBe(200);
    const again = await post(b, 'simpleenroll', await csrBody('CN=enrolled-one'), { token });
    expect(again.status).toBe(403);
    expect(again.json.error).toMatchObject({ code: 'enrollment_refused', message: 'this enrollment token has already been used' });
  });

  it('lets exactly one of concurrent enrollments with one token on both instances succeed', async () => {
    // Created on B's side this time: the token is in the shared index, not in a directory.
    const token = await tokenFor('enrolled-race', configB);
    const bodies = await Promise.all([...Array(6)].map(() => csrBody('CN=enrolled-race')));
    const replies = await Promise.all(bodies.map((body, i) => post(i % 2 === 0 ? a : b, 'simpleenroll', body, { token })));
    expect(replies.map((r) => r.status).sort()).toEqual([200, 403, 403, 403, 403, 403]);
    const issued = (await ca.list()).filter((e) => e.subject === 'CN=enrolled-race');
    expect(issued).toHaveLength(1);
  });

  it('counts renewal attempts on both instances against one rate limit', async () => {
    const now = Date.now();
    // 10 minutes of life, issued 6 minutes ago: inside the renewal window (last half).
    const cur = await ca.issue({ subject: { cn: 'enrolled-renew' }, notBefore: new Date(now - 6 * MIN), notAfter: new Date(now + 4 * MIN), source: 'test' });
    const client = { cert: cur.chainPem, key: cur.keyPem! };
    const statuses: number[] = [];
    for (const p of [a, b, a, b]) statuses.push((await post(p, 'simplereenroll', await csrBody(''), { client })).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  it('`ca list --config` sees the certificates issued by both instances; `ca revoke --config` revokes for both', async () => {
    const onA = await post(a, 'simpleenroll', await csrBody('CN=enrolled-a'), { token: await tokenFor('enrolled-a') });
    const onB = await post(b, 'simpleenroll', await csrBody('CN=enrolled-b'), { token: await tokenFor('enrolled-b') });
    expect([onA.status, onB.status]).toEqual([200, 200]);
    const [serialA, serialB] = [serialOf(onA), serialOf(onB)];
    for (const cfg of [configA, configB]) {
      const list = await runCli(['ca', 'list', '--config', cfg, '--json']);
      expect(list.code, list.stderr).toBe(0);
      const serials = (JSON.parse(list.stdout) as { serial: string }[]).map((e) => e.serial);
      expect(serials).toEqual(expect.arrayContaining([serialA, serialB]));
    }
    // Revoked from A's side, at the CA: B's index says so too (B refuses its renewal).
    const rev = await runCli(['ca', 'revoke', '--config', configA, '--serial', serialB, '--reason', 'keyCompromise']);
    expect(rev.code, rev.stderr).toBe(0);
    expect((await ca.entry(serialB))?.revokedAt).toBeDefined();
    const table = await runCli(['ca', 'list', '--config', configB]);
    expect(table.stdout.split('\n').find((l) => l.startsWith(serialB))).toMatch(/revoked/);
  });

  // Last: Redis comes back empty (no persistence), which the tests above must not see.
  it('answers an enrollment 503 service_unavailable while Redis is out of reach, not 500', async () => {
    const token = await tokenFor('enrolled-outage');
    const downs = () => (a.output().match(/"event":"store_down"/g) ?? []).length;
    const before = downs();
    await redis.kill();
    try {
      await waitFor(() => downs() > before, { what: 'instance A to see Redis gone', deadline: 15_000 });
      const r = await post(a, 'simpleenroll', await csrBody('CN=enrolled-outage'), { token });
      expect(r.status, r.text).toBe(503);
      expect(r.json.error).toMatchObject({ code: 'service_unavailable', message: expect.stringMatching(/shared store \(Redis\).*out of reach/) });
      expect(r.json.error.requestId).toEqual(expect.any(String));
    } finally {
      await redis.restart();
    }
  });

  it('refuses --offline with a Redis store as a usage error (exit 2)', async () => {
    for (const args of [
      ['revoke', '--config', configA, '--offline', '--serial', '01', '--reason', 'keyCompromise'],
      ['revocations', 'list', '--config', configA, '--offline'],
      ['revocations', 'delete', 'abc', '--config', configA, '--offline'],
    ]) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/--offline cannot be used with a Redis store/);
    }
  });
});
