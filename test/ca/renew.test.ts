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
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

/** The renew command as cron runs it: a real process, its exit code and output. */
function certgate(...args: string[]): Promise<CliResult> {
  return runCli(args);
}

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

  it('tells the daemon when the window opens, so it waits for it instead of backing off', async () => {
    const c = await writeClient('svc-d', 3_600_000);
    const events: DaemonEvent[] = [];
    const ac = new AbortController();
    await runRenewDaemon({
      ...c,
      url: `https://127.0.0.1:${h.port}`,
      caFile: serverCa,
      at: 0.01,
      minRetryMs: 50,
      maxRetryMs: 200,
      signal: ac.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'failed') ac.abort();
      },
    });
    const failed = events.find((e): e is Extract<DaemonEvent, { type: 'failed' }> => e.type === 'failed')!;
    // The window (est.renewWindowFraction 0.5) opens about 30 minutes after issue.
    expect(failed.error.opensAt!.getTime()).toBeGreaterThan(Date.now() + 25 * 60_000);
    expect(failed.retryInMs).toBeGreaterThan(25 * 60_000);
  });
});

describe('certgate renew without --daemon (cron)', () => {
  it('before the renewal window: exit 0, one line saying when it opens, files untouched', async () => {
    const c = await writeClient('svc-e', 3_600_000);
    const before = [readFileSync(c.certFile, 'utf8'), readFileSync(c.keyFile, 'utf8')];
    const r = await certgate('renew', '--cert', c.certFile, '--key', c.keyFile, '--url', `https://127.0.0.1:${h.port}`, '--ca', serverCa);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const m = /^not due yet: renewal opens at (\S+); (\S+) unchanged\n$/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(m![2]).toBe(c.certFile);
    const notAfter = leaf(c.certFile).notAfter.getTime();
    const opens = Date.parse(m![1]!);
    expect(opens).toBeGreaterThan(Date.now());
    expect(opens).toBeLessThan(notAfter);
    expect([readFileSync(c.certFile, 'utf8'), readFileSync(c.keyFile, 'utf8')]).toEqual(before);
  }, 30_000);

  it('inside the window: renews and exits 0', async () => {
    // Issued 50 minutes ago for an hour: est.renewWindowFraction 0.5 opened the window 20 minutes ago.
    const now = Date.now();
    const r0 = await ca.issue({ subject: { cn: 'svc-f' }, notBefore: new Date(now - 50 * 60_000), notAfter: new Date(now + 10 * 60_000), source: 'test' });
    const certFile = join(dir, 'svc-f.pem');
    const keyFile = join(dir, 'svc-f-key.pem');
    writeFileSync(certFile, r0.chainPem);
    writeFileSync(keyFile, r0.keyPem!, { mode: 0o600 });
    const r = await certgate('renew', '--cert', certFile, '--key', keyFile, '--url', `https://127.0.0.1:${h.port}`, '--ca', serverCa);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^renewed: serial [0-9a-f]+, valid until /);
    expect(leaf(certFile).serial).not.toBe(r0.serial);
  }, 30_000);

  it('a real failure exits 1: unreachable, or refused for another reason than the window', async () => {
    const c = await writeClient('svc-g', 3_600_000);
    const unreachable = await certgate('renew', '--cert', c.certFile, '--key', c.keyFile, '--url', 'https://127.0.0.1:1', '--ca', serverCa);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach/);
    // A certificate this CA did not issue (the test PKI's): refused, and not a "not due yet".
    const other = await pki.client({ cn: 'svc-h' });
    writeFileSync(join(dir, 'other.pem'), other.chainPem);
    writeFileSync(join(dir, 'other-key.pem'), other.keyPem, { mode: 0o600 });
    const refused = await certgate('renew', '--cert', join(dir, 'other.pem'), '--key', join(dir, 'other-key.pem'), '--url', `https://127.0.0.1:${h.port}`, '--ca', serverCa);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/renewal refused: 403/);
    const usage = await certgate('renew', '--cert', c.certFile);
    expect(usage.code).toBe(2);
  }, 60_000);
});
