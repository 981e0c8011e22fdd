// The renewal client and daemon against a real certgate EST endpoint, with certificates that live
// a few seconds, so the daemon's schedule runs for real (no mocked clocks or TLS).
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, initAuthority } from '../../src/ca/authority.js';
import { renewOnce, runRenewDaemon, type DaemonEvent } from '../../src/ca/renew.js';
import { identityFromDer } from '../../src/identity/identity.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let ca: CertificateAuthority;
let dir: string;
let h: Harness;
let serverCa: string;

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-renew-'));
  ca = await initAuthority(join(dir, 'ca'), { keyAlg: 'P-384' });
  serverCa = join(dir, 'server-ca.pem');
  writeFileSync(serverCa, pki.rootPem);
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: ca.bundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'api', match: { pathPrefix: '/api' }, upstream: BACKEND, allow: [{ cn: 'svc-*' }] }],
    extra: { est: { enabled: true, caDir: join(dir, 'ca'), renewWindowDays: 0, renewWindowFraction: 0.5, rateLimitPerHour: 50, days: 30 } },
  });
});

afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function writeClient(name: string, ttlMs: number, keyAlg: 'P-256' | 'P-384' | 'RSA-2048' = 'P-256') {
  const r = await ca.issue({ subject: { cn: name }, san: { dns: [`${name}.internal`] }, ttlMs, keyAlg, source: 'test' });
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  writeFileSync(certFile, r.chainPem);
  writeFileSync(keyFile, r.keyPem!, { mode: 0o600 });
  return { certFile, keyFile, serial: r.serial };
}

const leaf = (f: string) => identityFromDer(new Uint8Array(new X509Certificate(readFileSync(f)).raw));

describe('certgate renew', () => {
  it('the daemon renews at the configured fraction of each lifetime, again and again, with a new key of the same algorithm', async () => {
    const c = await writeClient('svc-a', 3_000, 'P-384');
    const firstKey = readFileSync(c.keyFile, 'utf8');
    const events: DaemonEvent[] = [];
    const ac = new AbortController();
    const done = new Promise<void>((resolve) => {
      void runRenewDaemon({
        ...c,
        url: `https://127.0.0.1:${h.port}`,
        caFile: serverCa,
        at: 0.6,
        minRetryMs: 100,
        maxRetryMs: 400,
        signal: ac.signal,
        onEvent: (e) => {
          events.push(e);
          if (events.filter((x) => x.type === 'renewed').length === 2) ac.abort();
        },
      }).then(resolve);
    });
    await done;
    const renewed = events.filter((e): e is Extract<DaemonEvent, { type: 'renewed' }> => e.type === 'renewed');
    expect(renewed).toHaveLength(2);
    expect(events.filter((e) => e.type === 'failed')).toEqual([]);
    const id = leaf(c.certFile);
    expect(id.serial).toBe(renewed[1]!.serial);
    // Renewal keeps the lifetime: it does not creep by the clock-skew backdating.
    const first = await ca.entry(c.serial);
    const life = (e: { notBefore: Date | string; notAfter: Date | string }) => new Date(e.notAfter).getTime() - new Date(e.notBefore).getTime();
    expect(Math.abs(life(id) - life(first!))).toBeLessThanOrEqual(1_000);
    expect(id.subject).toBe('CN=svc-a');
    expect(id.dns).toEqual(['svc-a.internal']);
    expect(id.curve).toBe('P-384');
    expect(readFileSync(c.keyFile, 'utf8')).not.toBe(firstKey);
    expect(statSync(c.keyFile).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const reply = await h.request('/api/x', { client: { cert: readFileSync(c.certFile, 'utf8'), key: readFileSync(c.keyFile, 'utf8') } });
    expect(reply.status).toBe(200);
    expect(reply.json.headers['x-client-cert-cn']).toBe('svc-a');
  });

  it('backs off with jitter when certgate cannot be reached, and leaves the key and certificate untouched', async () => {
    const c = await writeClient('svc-b', 60_000);
    const before = [readFileSync(c.certFile, 'utf8'), readFileSync(c.keyFile, 'utf8')];
    const events: DaemonEvent[] = [];
    const ac = new AbortController();
    await runRenewDaemon({
      ...c,
      url: 'https://127.0.0.1:1',
      caFile: serverCa,
      at: 0.01,
      minRetryMs: 50,
      maxRetryMs: 200,
      signal: ac.signal,
      onEvent: (e) => {
        events.push(e);
        if (events.filter((x) => x.type === 'failed').length === 4) ac.abort();
      },
    });
    const failed = events.filter((e): e is Extract<DaemonEvent, { type: 'failed' }> => e.type === 'failed');
    expect(failed).toHaveLength(4);
    expect(failed[0]!.error.message).toMatch(/cannot reach/);
    for (const f of failed) expect(f.retryInMs).toBeLessThanOrEqual(200);
    expect([readFileSync(c.certFile, 'utf8'), readFileSync(c.keyFile, 'utf8')]).toEqual(before);
  });

  it('reports the refusal code when renewal is refused (outside the window) and keeps the files', async () => {
    const c = await writeClient('svc-c', 3_600_000);
    const before = readFileSync(c.certFile, 'utf8');
    await expect(renewOnce({ ...c, url: `https://127.0.0.1:${h.port}`, caFile: serverCa })).rejects.toMatchObject({ status: 403, refusal: 'enrollment_refused' });
    expect(readFileSync(c.certFile, 'utf8')).toBe(before);
  });
});
