// The docs/ca.md walkthrough, step by step, with the real CLI in separate
// processes: init a CA, issue a client certificate, call the proxy with it, renew it with the
// daemon (short-lived certificates), revoke it (admin API at once, CRL on reload); plus 8
// concurrent `ca issue` processes and CSR signing under the naming policy.
import type { ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCsr } from '../../src/ca/csr.js';
import { generateKeyPair } from '../../src/ca/pki.js';
import { identityFromDer } from '../../src/identity/identity.js';
import { x509 } from '../../src/x509.js';
import { BACKEND, mtlsRequest, startHarness, type Harness } from '../helpers/certgate.js';
import { startApp } from '../../src/app.js';
import { writeDevCerts } from '../../src/ca/dev-certs.js';
import { loadConfig } from '../../src/config/load.js';
import { startEchoBackend } from '../../src/demo/echo-backend.js';
import { launchCli, runCli } from '../helpers/cli.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { WALKTHROUGH_CONFIG } from '../helpers/docs.js';

const certgate = (...args: string[]) => runCli(args);

const mode = (p: string) => statSync(p).mode & 0o777;
const leafOf = (pemFile: string) => identityFromDer(new Uint8Array(new X509Certificate(readFileSync(pemFile)).raw));

let pki: TestPki;
let dir: string;
let D: string;
let h: Harness;
let serverCaFile: string;

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-ca-cli-'));
  D = join(dir, 'ca');
  serverCaFile = join(dir, 'server-ca.pem');
  writeFileSync(serverCaFile, pki.rootPem);
  // Step 1: init a CA (also warms the transpile cache the later processes use).
  const init = await certgate('ca', 'init', '--dir', D, '--intermediate');
  expect(init.code, init.stderr).toBe(0);
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: readFileSync(join(D, 'ca-bundle.pem'), 'utf8') },
    serverCa: pki.rootPem,
    admin: true,
    routes: [{ name: 'api', match: { pathPrefix: '/api' }, upstream: BACKEND, allow: [{ spiffe: 'spiffe://example.org/ns/prod/sa/*' }] }],
    extra: {
      est: { enabled: true, caDir: D, renewWindowDays: 0, renewWindowFraction: 0.5, rateLimitPerHour: 20, days: 30 },
      revocation: { crl: { files: [join(D, 'crl.pem')] } },
    },
  });
});

afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('certgate ca walkthrough', () => {
  it('init writes the CA with private keys (0600), a trust bundle and an empty signed CRL', () => {
    expect(mode(join(D, 'root-ca-key.pem'))).toBe(0o600);
    expect(mode(join(D, 'intermediate-ca-key.pem'))).toBe(0o600);
    expect(readFileSync(join(D, 'ca-bundle.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const crl = new x509.X509Crl(readFileSync(join(D, 'crl.pem'), 'utf8'));
    expect(crl.entries).toHaveLength(0);
  });

  it('issues a client certificate (clientAuth, 30 days, key 0600) that the proxy accepts with its identity', async () => {
    const r = await certgate('ca', 'issue', '--dir', D, '--cn', 'alice', '--ou', 'payments', '--uri', 'spiffe://example.org/ns/prod/sa/alice', '--out', join(dir, 'alice'));
    expect(r.code, r.stderr).toBe(0);
    expect(mode(join(dir, 'alice-key.pem'))).toBe(0o600);
    const id = leafOf(join(dir, 'alice.pem'));
    expect(id.eku).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(id.serial).toMatch(/^[89a-f][0-9a-f]{31}$/);
    expect(Math.round((id.notAfter.getTime() - Date.now()) / 86_400_000)).toBe(30);
    const reply = await h.request('/api/hello', { client: { cert: readFileSync(join(dir, 'alice.pem'), 'utf8'), key: readFileSync(join(dir, 'alice-key.pem'), 'utf8') } });
    expect(reply.status).toBe(200);
    expect(reply.json.headers['x-client-cert-subject']).toBe('CN=alice,OU=payments');
    const list = await certgate('ca', 'list', '--dir', D, '--json');
    expect(JSON.parse(list.stdout).find((e: { serial: string }) => e.serial === id.serial)).toMatchObject({ state: 'valid', subject: 'CN=alice,OU=payments' });
  });

  it('the renewal daemon renews a short-lived certificate through EST, keeping its identity', async () => {
    // Long enough to survive process start-up on a busy machine; renewal at half of it.
    const r = await certgate('ca', 'issue', '--dir', D, '--cn', 'bob', '--uri', 'spiffe://example.org/ns/prod/sa/bob', '--ttl', '14s', '--out', join(dir, 'bob'));
    expect(r.code, r.stderr).toBe(0);
    const first = leafOf(join(dir, 'bob.pem'));
    const daemon = launchCli([
      'renew', '--cert', join(dir, 'bob.pem'), '--key', join(dir, 'bob-key.pem'),
      '--url', `https://127.0.0.1:${h.port}`, '--ca', serverCaFile, '--at', '0.55', '--daemon', '--retry-min', '300ms', '--retry-max', '1s',
    ]);
    try {
      const events = await collect(daemon, (lines) => lines.some((l) => l.event === 'renewed'), 25_000);
      expect(events.filter((e) => e.event === 'renew_failed')).toEqual([]);
      const now = leafOf(join(dir, 'bob.pem'));
      expect(now.serial).not.toBe(first.serial);
      expect(now.subject).toBe(first.subject);
      expect(now.uri).toEqual(first.uri);
      expect(mode(join(dir, 'bob-key.pem'))).toBe(0o600);
      const reply = await h.request('/api/hello', { client: { cert: readFileSync(join(dir, 'bob.pem'), 'utf8'), key: readFileSync(join(dir, 'bob-key.pem'), 'utf8') } });
      expect(reply.status).toBe(200);
      expect(reply.json.headers['x-client-cert-san-uri']).toBe('spiffe://example.org/ns/prod/sa/bob');
      const entry = JSON.parse(readFileSync(join(D, 'index.json'), 'utf8')).certs.find((e: { serial: string }) => e.serial === now.serial);
      expect(entry.source).toBe('est-reenroll');
    } finally {
      daemon.kill('SIGTERM');
    }
  });

  it('revoke with --admin refuses the certificate at the running proxy at once and lists it in the CRL', async () => {
    const alice = leafOf(join(dir, 'alice.pem'));
    const client = { cert: readFileSync(join(dir, 'alice.pem'), 'utf8'), key: readFileSync(join(dir, 'alice-key.pem'), 'utf8') };
    const r = await certgate('ca', 'revoke', '--dir', D, '--serial', alice.serial, '--reason', 'keyCompromise', '--admin', h.adminUrl, '--token-file', join(h.dir, 'admin.token'));
    expect(r.code, r.stderr).toBe(0);
    const refused = await h.request('/api/hello', { client });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('certificate_revoked');
    const crl = new x509.X509Crl(readFileSync(join(D, 'crl.pem'), 'utf8'));
    expect(crl.entries.map((e) => e.serialNumber.replace(/^0+/, ''))).toContain(alice.serial);
    const list = JSON.parse((await certgate('ca', 'list', '--dir', D, '--json')).stdout);
    expect(list.find((e: { serial: string }) => e.serial === alice.serial)).toMatchObject({ state: 'revoked', reason: 'keyCompromise' });
  });

  it('revoke without --admin reaches the proxy through the published CRL on reload', async () => {
    const r = await certgate('ca', 'issue', '--dir', D, '--cn', 'carol', '--uri', 'spiffe://example.org/ns/prod/sa/carol', '--out', join(dir, 'carol'));
    expect(r.code, r.stderr).toBe(0);
    const client = { cert: readFileSync(join(dir, 'carol.pem'), 'utf8'), key: readFileSync(join(dir, 'carol-key.pem'), 'utf8') };
    expect((await h.request('/api/hello', { client })).status).toBe(200);
    const carol = leafOf(join(dir, 'carol.pem'));
    expect((await certgate('ca', 'revoke', '--dir', D, '--serial', carol.serial, '--reason', 'superseded')).code).toBe(0);
    expect(h.app.reload().ok).toBe(true);
    const refused = await h.request('/api/hello', { client });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('certificate_revoked');
  });

  it('a one-time token from `ca token` enrolls a first certificate once', async () => {
    const t = await certgate('ca', 'token', '--dir', D, '--cn', 'dora', '--uri', 'spiffe://example.org/ns/prod/sa/dora', '--ttl', '15m');
    expect(t.code, t.stderr).toBe(0);
    const token = t.stdout.trim();
    expect(token).toMatch(/^cgt_[A-Za-z0-9_-]{43}$/);
    expect(readFileSync(join(D, 'index.json'), 'utf8')).not.toContain(token);
    const csr = (await createCsr(await generateKeyPair(), { subject: 'CN=dora', uri: ['spiffe://example.org/ns/prod/sa/dora'] })).replace(/-----[A-Z ]+-----|\s+/g, '');
    const enroll = () => h.request('/.well-known/est/simpleenroll', { method: 'POST', body: csr, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/pkcs10' } });
    expect((await enroll()).status).toBe(200);
    expect((await enroll()).status).toBe(403);
  });

  it('8 concurrent `ca issue` processes get 8 distinct serials and an intact index', async () => {
    const before = JSON.parse(readFileSync(join(D, 'index.json'), 'utf8')).certs.length;
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) => certgate('ca', 'issue', '--dir', D, '--cn', `worker-${i}`, '--out', join(dir, `worker-${i}`))),
    );
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const serials = Array.from({ length: 8 }, (_, i) => leafOf(join(dir, `worker-${i}.pem`)).serial);
    expect(new Set(serials).size).toBe(8);
    const index = JSON.parse(readFileSync(join(D, 'index.json'), 'utf8'));
    expect(index.certs).toHaveLength(before + 8);
    for (const s of serials) expect(index.certs.filter((e: { serial: string }) => e.serial === s)).toHaveLength(1);
    expect(() => statSync(join(D, 'index.lock'))).toThrow();
  });

  it('signs a CSR whose names the naming policy allows and refuses one it does not', async () => {
    const ok = await createCsr(await generateKeyPair(), { subject: 'CN=eve,OU=payments', uri: ['spiffe://example.org/ns/prod/sa/eve'] });
    writeFileSync(join(dir, 'eve.csr'), ok);
    const r = await certgate('ca', 'issue', '--dir', D, '--csr', join(dir, 'eve.csr'), '--out', join(dir, 'eve'));
    expect(r.code, r.stderr).toBe(0);
    expect(leafOf(join(dir, 'eve.pem')).subject).toBe('CN=eve,OU=payments');
    const bad = await createCsr(await generateKeyPair(), { subject: 'CN=eve', dns: ['admin.example.org'] });
    writeFileSync(join(dir, 'bad.csr'), bad);
    const refused = await certgate('ca', 'issue', '--dir', D, '--csr', join(dir, 'bad.csr'), '--out', join(dir, 'bad'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/dns "admin.example.org" is not allowed/);
    expect(() => statSync(join(dir, 'bad.pem'))).toThrow();
  });
});

// docs/ca.md's walkthrough config, read from the doc (test/docs/commands.test.ts runs the walkthrough itself).
const README_CONFIG = WALKTHROUGH_CONFIG;

describe('the README walkthrough, in its own folder layout', () => {
  it('steps 1-3: init, issue, the config passes certgate check, and the certificate is let through', async () => {
    const root = join(dir, 'clone');
    await writeDevCerts(join(root, 'certs-dev'));
    const at = (...args: string[]) => runCli(args, { cwd: root });
    expect((await at('ca', 'init', '--dir', 'ca-demo/ca', '--intermediate')).code).toBe(0);
    const issue = await at('ca', 'issue', '--dir', 'ca-demo/ca', '--cn', 'billing-api', '--ou', 'payments', '--uri', 'spiffe://example.org/ns/prod/sa/billing-api', '--out', 'ca-demo/billing-api');
    expect(issue.code, issue.stderr).toBe(0);
    writeFileSync(join(root, 'ca-demo', 'certgate.yaml'), README_CONFIG);
    const check = await at('check', '--config', 'ca-demo/certgate.yaml');
    expect(check.code, check.stdout + check.stderr).toBe(0);
    // Same file, with ports chosen by the OS so that the test never collides with a running demo.
    const backend = await startEchoBackend(0, '127.0.0.1');
    const cfg = README_CONFIG.replace('port: 8443', 'port: 0').replace('port: 9443', 'port: 0').replace('127.0.0.1:9001', `127.0.0.1:${backend.port}`);
    writeFileSync(join(root, 'ca-demo', 'certgate.yaml'), cfg + 'log: { level: silent, access: false }\n');
    const app = await startApp(loadConfig(join(root, 'ca-demo', 'certgate.yaml')));
    try {
      const r = await mtlsRequest(`https://127.0.0.1:${app.port}`, readFileSync(join(root, 'certs-dev', 'root-ca.pem'), 'utf8'), '/billing/invoices', {
        client: { cert: readFileSync(join(root, 'ca-demo', 'billing-api.pem'), 'utf8'), key: readFileSync(join(root, 'ca-demo', 'billing-api-key.pem'), 'utf8') },
      });
      expect(r.status).toBe(200);
      expect(r.json.headers['x-client-cert-subject']).toBe('CN=billing-api,OU=payments');
    } finally {
      await app.stop();
      await backend.close();
    }
  });
});

/** Reads the daemon's JSON lines until `done` says so (or the time runs out). */
function collect(child: ChildProcess, done: (lines: Record<string, unknown>[]) => boolean, ms: number): Promise<Record<string, unknown>[]> {
  return new Promise((resolveLines, reject) => {
    const lines: Record<string, unknown>[] = [];
    let buf = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`daemon did not finish in ${ms} ms: ${JSON.stringify(lines)} ${err}`)), ms);
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          lines.push({ raw: line });
        }
      }
      if (done(lines)) {
        clearTimeout(timer);
        resolveLines(lines);
      }
    });
  });
}
