import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app.js';
import { run as revokeCli, runRevocations } from '../../src/cli/cmd-revoke.js';
import { UsageError } from '../../src/cli/usage.js';
import { metrics } from '../../src/metrics.js';
import { loadConfig } from '../../src/config/load.js';
import { appendRecords, entryFromInput, LocalRevocationList } from '../../src/revocation/local-list.js';
import { BACKEND, exchange, rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { closedWithin, oneResponse } from '../helpers/sockets.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let h: Harness;
let token: string;

const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });
const GET = (path: string) => `GET ${path} HTTP/1.1\r\nhost: localhost\r\n\r\n`;

async function admin(method: string, path: string, body?: unknown, auth = true) {
  const res = await fetch(h.adminUrl + path, {
    method,
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${token}` } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as any };
}

beforeAll(async () => {
  pki = await createTestPki();
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    admin: true,
    routes: [{ name: 'app', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }],
    extra: { revocation: { dataDir: 'revocations', recheck: '100ms' } },
  });
  token = readFileSync(join(h.dir, 'admin.token'), 'utf8').trim();
});

afterAll(async () => {
  await h?.close();
});

describe('instant revocation through the admin API', () => {
  it('closes the open keep-alive connection of a certificate revoked by serial within a second', async () => {
    const c = await pki.client();
    const s = await rawTls(h.port, pki.rootPem, creds(c));
    expect(await oneResponse(s, GET('/before'))).toMatch(/^HTTP\/1.1 200/);
    // Serial in another common form: uppercase with colons and a leading 00.
    const colons = ('00' + c.serial).toUpperCase().match(/../g)!.join(':');
    const r = await admin('POST', '/revocations', { serial: colons, issuer: 'CN=certgate test intermediate CA, O=certgate-test', reason: 'laptop lost' });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ serial: c.serial, issuer: 'CN=certgate test intermediate CA,O=certgate-test', reason: 'laptop lost', actor: expect.stringContaining('token') });
    const ms = await closedWithin(s, 1500);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(1000);
  });

  it('never forwards a request that races the revocation on an open connection', async () => {
    const c = await pki.client();
    const s = await rawTls(h.port, pki.rootPem, creds(c));
    expect(await oneResponse(s, GET('/before'))).toMatch(/^HTTP\/1.1 200/);
    const revoking = admin('POST', '/revocations', { fingerprint: c.fingerprint256, reason: 'race' });
    // Refused (403 certificate_revoked, then closed) if it arrives first, else it finds the socket gone.
    await new Promise((r) => setImmediate(r));
    const after = exchange(s, GET('/after-race'), 10_000);
    expect((await revoking).status).toBe(201);
    const out = await after;
    expect(s.destroyed).toBe(true);
    // Whichever wins, one of three outcomes: refused, closed unanswered, or answered 200.
    const outcome = out === '' ? 'closed' : /^HTTP\/1.1 (\d{3})/.exec(out)?.[1];
    expect(['closed', '200', '403']).toContain(outcome);
    // Forwarded exactly when answered 200 (authorised before the revocation was stored).
    expect(h.backend.received.some((x) => x.url === '/after-race')).toBe(outcome === '200');
    // A refusal names the revocation.
    expect(out.includes('"code":"certificate_revoked"')).toBe(outcome === '403');
  });

  it('answers a request that finds the revocation first with 403 certificate_revoked, then closes', async () => {
    const c = await pki.client();
    const s = await rawTls(h.port, pki.rootPem, creds(c));
    expect(await oneResponse(s, GET('/before'))).toMatch(/^HTTP\/1.1 200/);
    // A slow request keeps the connection busy, so it is not closed at once; the next request
    // arrives after the revocation and must be refused, not forwarded.
    // Slow enough that the revocation lands while it is in flight, however loaded the machine.
    const all = exchange(s, GET('/slow?ms=1500'), 10_000);
    await waitFor(() => h.backend.received.some((x) => x.url === '/slow?ms=1500'), { what: 'the slow request at the backend' });
    expect((await admin('POST', '/revocations', { serial: c.serial, reason: 'pipelined' })).status).toBe(201);
    s.write(GET('/after-revocation'));
    const out = await all;
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(h.backend.received.some((x) => x.url === '/after-revocation')).toBe(false);
    const second = out.slice(out.indexOf('HTTP/1.1', 5));
    expect(second).toMatch(/^HTTP\/1.1 403[\s\S]*"code":"certificate_revoked"/);
    expect(s.destroyed).toBe(true);
  });

  it('closes a busy connection right after its in-flight response, within a second', async () => {
    const c = await pki.client();
    const s = await rawTls(h.port, pki.rootPem, creds(c));
    const inflight = oneResponse(s, GET('/slow?ms=300'));
    await waitFor(() => h.backend.received.some((x) => x.url === '/slow?ms=300'), { what: 'the slow request at the backend' });
    const closed = closedWithin(s, 1500);
    expect((await admin('POST', '/revocations', { fingerprint: c.fingerprint256.toUpperCase().match(/../g)!.join(':'), reason: 'key leaked' })).status).toBe(201);
    expect(await inflight).toMatch(/^HTTP\/1.1 200/);
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(1000);
  });

  it('refuses new connections of a revoked certificate with 403 certificate_revoked', async () => {
    const c = await pki.client();
    expect((await h.request('/x', { client: creds(c) })).status).toBe(200);
    await admin('POST', '/revocations', { serial: c.serial, reason: 'superseded' });
    const r = await h.request('/x', { client: creds(c) });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_revoked');
  });

  it('counts refusals by source and refuses a WebSocket upgrade of a revoked certificate', async () => {
    const count = async () => (await metrics.revocationRefusals.get()).values.find((v) => v.labels.source === 'local')?.value ?? 0;
    const c = await pki.client();
    await admin('POST', '/revocations', { serial: c.serial, reason: 'ws' });
    const before = await count();
    expect((await h.request('/x', { client: creds(c) })).status).toBe(403);
    expect(await count()).toBe(before + 1);
    const s = await rawTls(h.port, pki.rootPem, creds(c));
    const out = await exchange(s, 'GET /ws HTTP/1.1\r\nhost: localhost\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 1000);
    expect(out).toMatch(/^HTTP\/1.1 403[\s\S]*"code":"certificate_revoked"/);
    expect(await count()).toBe(before + 2);
  });

  it('refuses an unauthenticated mutation with 401 and changes nothing', async () => {
    const c = await pki.client();
    const before = (await admin('GET', '/revocations')).json.revocations.length;
    const r = await admin('POST', '/revocations', { serial: c.serial, reason: 'x' }, false);
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe('unauthorized');
    expect((await admin('GET', '/revocations')).json.revocations.length).toBe(before);
    expect((await h.request('/x', { client: creds(c) })).status).toBe(200);
  });

  it('rejects malformed input with 400 invalid_argument', async () => {
    for (const body of [{ serial: 'xyz', reason: 'r' }, { fingerprint: 'abcd', reason: 'r' }, { serial: '01' }, { reason: 'r' }, { serial: '01', reason: 'r', extra: 1 }]) {
      const r = await admin('POST', '/revocations', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.code).toBe('invalid_argument');
    }
  });

  it('lists entries and deletes a mistaken one, letting the certificate in again', async () => {
    const c = await pki.client();
    const added = (await admin('POST', '/revocations', { serial: c.serial, reason: 'mistake' })).json;
    expect((await admin('GET', '/revocations')).json.revocations.map((e: { id: string }) => e.id)).toContain(added.id);
    expect((await h.request('/x', { client: creds(c) })).status).toBe(403);
    expect((await admin('DELETE', `/revocations/${added.id}`, undefined, false)).status).toBe(401);
    expect((await admin('DELETE', `/revocations/${added.id}`)).status).toBe(200);
    expect((await admin('DELETE', `/revocations/${added.id}`)).status).toBe(404);
    expect((await h.request('/x', { client: creds(c) })).status).toBe(200);
  });

  it('picks up an entry written by the offline CLI under the lock, and closes its connection', async () => {
    const c = await pki.client();
    const s = await rawTls(h.port, pki.rootPem, creds(c));
    expect(await oneResponse(s, GET('/x'))).toMatch(/^HTTP\/1.1 200/);
    const closed = closedWithin(s, 2000);
    appendRecords(join(h.dir, 'revocations'), [{ op: 'add', entry: entryFromInput({ serial: c.serial, reason: 'offline', actor: 'cli' }) }]);
    expect(await closed).toBeGreaterThanOrEqual(0);
    expect((await h.request('/x', { client: creds(c) })).json.error.code).toBe('certificate_revoked');
  });

  it('refuses a resumed TLS session of a revoked client', async () => {
    const c = await pki.client();
    const first = await rawTls(h.port, pki.rootPem, creds(c));
    const session = await new Promise<Buffer>((resolve) => {
      first.once('session', resolve);
      first.write(GET('/x'));
    });
    first.destroy();
    await admin('POST', '/revocations', { serial: c.serial, reason: 'resumption test' });
    const resumed = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca: pki.rootPem, ...creds(c), servername: 'localhost', session }, () => resolve(s));
      s.once('error', reject);
    });
    expect(resumed.isSessionReused()).toBe(true);
    const out = await exchange(resumed, GET('/x'), 1000);
    expect(out).toMatch(/^HTTP\/1.1 403[\s\S]*"code":"certificate_revoked"/);
  });
});

/** Runs a CLI entry point in-process, capturing what it prints. */
async function cli(fn: (argv: string[]) => Promise<number>, argv: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const orig = process.stdout.write.bind(process.stdout);
  const origErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((c: string) => ((out += c), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string) => ((out += c), true)) as typeof process.stderr.write;
  try {
    return { code: await fn(argv), out };
  } finally {
    process.stdout.write = orig;
    process.stderr.write = origErr;
  }
}

describe('certgate revoke', () => {
  it('revokes through the admin API with the token file, and the next request fails', async () => {
    const c = await pki.client();
    expect((await h.request('/x', { client: creds(c) })).status).toBe(200);
    const r = await cli(revokeCli, ['--serial', c.serial, '--reason', 'cli test', '--admin', h.adminUrl, '--token-file', join(h.dir, 'admin.token')]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ serial: c.serial, reason: 'cli test' });
    expect((await h.request('/x', { client: creds(c) })).json.error.code).toBe('certificate_revoked');
    const list = await cli(runRevocations, ['list', '--admin', h.adminUrl]);
    expect(list.code).toBe(0);
    expect(list.out).toContain(c.serial);
  });

  it('fails (exit 1) without a valid token, and writes offline with --offline --config', async () => {
    const c = await pki.client();
    writeFileSync(join(h.dir, 'wrong.token'), 'not-the-token-at-all\n');
    const bad = await cli(revokeCli, ['--fingerprint', c.fingerprint256, '--reason', 'x', '--admin', h.adminUrl, '--token-file', join(h.dir, 'wrong.token')]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('unauthorized');
    const off = await cli(revokeCli, ['--fingerprint', c.fingerprint256, '--reason', 'offline', '--offline', '--config', h.configFile]);
    expect(off.code).toBe(0);
    h.app.revocation.local.refresh();
    expect((await h.request('/x', { client: creds(c) })).json.error.code).toBe('certificate_revoked');
  });

  it('refuses ambiguous or incomplete flags as usage errors', async () => {
    await expect(revokeCli(['--serial', '01', '--fingerprint', 'ab', '--reason', 'r'])).rejects.toThrow(UsageError);
    await expect(revokeCli(['--serial', '01'])).rejects.toThrow(UsageError);
    await expect(revokeCli(['--reason', 'r'])).rejects.toThrow(UsageError);
    await expect(revokeCli(['--serial', 'zz', '--reason', 'r', '--offline', '--data-dir', h.dir])).rejects.toThrow(/hexadecimal/);
  });
});

describe('durability', () => {
  it('keeps revocations across a restart (new app, same dataDir)', async () => {
    const c = await pki.client();
    await admin('POST', '/revocations', { serial: c.serial, reason: 'restart test' });
    const app2 = await startApp(loadConfig(h.configFile));
    try {
      const r = await (await import('../helpers/certgate.js')).mtlsRequest(`https://127.0.0.1:${app2.port}`, pki.rootPem, '/x', { client: creds(c) });
      expect(r.status).toBe(403);
      expect(r.json.error.code).toBe('certificate_revoked');
    } finally {
      await app2.stop();
    }
  });

  it('ignores a torn last line left by a crash mid-write and keeps every complete entry', async () => {
    const { mkdtempSync, appendFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'certgate-rev-'));
    await appendRecords(dir, [{ op: 'add', entry: entryFromInput({ serial: 'ab', reason: 'a' }) }]);
    appendFileSync(join(dir, 'revocations.jsonl'), '{"op":"add","entry":{"id":"torn","ser');
    const list = new LocalRevocationList({ dataDir: dir });
    expect(list.entries().map((e) => e.serial)).toEqual(['ab']);
    await list.addDurably(entryFromInput({ serial: 'cd', reason: 'b' }));
    expect(new LocalRevocationList({ dataDir: dir }).entries().map((e) => e.serial)).toEqual(['ab', 'cd']);
  });
});
