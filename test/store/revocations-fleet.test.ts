// Two (and three) real certgate processes sharing one real redis-server: revocation on one
// instance reaches the other's open connections, restarts load the list first, an outage loses
// nothing and stops nothing, a flushed Redis is re-published, and a deletion is never undone.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { mtlsRequest, rawTls } from '../helpers/certgate.js';
import { spawnCli, startCertgate, stopCli } from '../helpers/cli.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { closedWithin, oneResponse } from '../helpers/sockets.js';
import { waitFor } from '../helpers/wait.js';
import { freePort } from '../helpers/weak-server.js';

interface Instance {
  name: string;
  file: string;
  child: ChildProcess;
  port: number;
  admin: string;
  output: () => string;
}

let pki: TestPki;
let redis: TestRedis;
let backend: EchoBackend;
let dir: string;
let token: string;
let a: Instance;
let b: Instance;
const started: ChildProcess[] = [];

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nhost: localhost\r\n\r\n`;
const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });

function writeConfig(name: string, port = 0): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    stringify({
      listen: { host: '127.0.0.1', port },
      tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
      admin: { enabled: true, host: '127.0.0.1', port: 0, tokenFile: join(dir, 'admin.token') },
      log: { level: 'info', access: false },
      watch: { enabled: false },
      revocation: { dataDir: join(dir, `data-${name}`), recheck: '200ms' },
      store: { instance: name, redis: { url: redis.url, keyPrefix: 'fleet:' } },
      routes: [{ name: 'all', upstream: backend.url, allow: [{ o: 'certgate-test' }] }],
    }),
  );
  return file;
}

async function start(name: string): Promise<Instance> {
  const file = join(dir, `${name}.yaml`);
  const s = await startCertgate(file);
  started.push(s.child);
  return { name, file, child: s.child, port: s.port, admin: `http://127.0.0.1:${s.adminPort}`, output: s.output };
}

async function admin(i: Instance, method: string, path: string, body?: unknown) {
  const res = await fetch(i.admin + path, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as any };
}

async function metric(i: Instance, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${i.admin}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

const status = async (i: Instance, c: TestCert) => (await mtlsRequest(`https://127.0.0.1:${i.port}`, pki.rootPem, '/x', { client: creds(c) })).status;
const revokedOn = async (i: Instance, c: TestCert) => {
  const r = await mtlsRequest(`https://127.0.0.1:${i.port}`, pki.rootPem, '/x', { client: creds(c) });
  return r.status === 403 && r.json?.error?.code === 'certificate_revoked';
};
const ids = async (i: Instance) => ((await admin(i, 'GET', '/revocations')).json.revocations as { id: string }[]).map((e) => e.id);

/** An open mTLS connection that has been served once. */
async function openConnection(i: Instance, c: TestCert): Promise<TLSSocket> {
  const s = await rawTls(i.port, pki.rootPem, creds(c));
  expect(await oneResponse(s, GET('/before'))).toMatch(/^HTTP\/1.1 200/);
  return s;
}

const portRefuses = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });

beforeAll(async () => {
  pki = await createTestPki();
  redis = await startRedis();
  backend = await startEchoBackend();
  dir = mkdtempSync(join(tmpdir(), 'certgate-fleet-'));
  await pki.writeTo(dir);
  writeConfig('a');
  writeConfig('b');
  [a, b] = await Promise.all([start('a'), start('b')]);
  token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
}, 120_000);

// A test that fails during an outage must not leave the next one without Redis.
afterEach(() => redis?.restart());

afterAll(async () => {
  await Promise.all(started.map((c) => stopCli(c)));
  await backend?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('revocations in a fleet sharing one Redis', () => {
  it('says store up in /readyz and certgate_store_up', async () => {
    for (const i of [a, b]) {
      const r = await admin(i, 'GET', '/readyz');
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ status: 'ready', store: 'up' });
      expect(await metric(i, 'certgate_store_up')).toBe(1);
    }
  });

  it('closes the open connection on B within a second of a revocation on A, and B refuses new ones with 403 certificate_revoked', async () => {
    const c = await pki.client();
    const s = await openConnection(b, c);
    const closed = closedWithin(s, 3000);
    const r = await admin(a, 'POST', '/revocations', { serial: c.serial, reason: 'laptop lost' });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ serial: c.serial, reason: 'laptop lost' });
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(1000);
    expect(await revokedOn(b, c)).toBe(true);
    expect(await ids(b)).toContain(r.json.id);
    // B measured how long the change took to reach it.
    expect(await metric(b, 'certgate_store_propagation_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(await metric(a, 'certgate_revocations_pending')).toBe(0);
  });

  it('propagates a DELETE: B lets the certificate in again', async () => {
    const c = await pki.client();
    const r = await admin(a, 'POST', '/revocations', { fingerprint: c.fingerprint256, reason: 'mistake' });
    await waitFor(() => revokedOn(b, c), { what: 'the revocation on B', deadline: 5000 });
    expect((await admin(b, 'DELETE', `/revocations/${r.json.id}`)).status).toBe(200);
    await waitFor(async () => (await status(a, c)) === 200, { what: 'the deletion on A', deadline: 2000 });
    expect(await ids(a)).not.toContain(r.json.id);
  });

  it('loads the whole list before a restarted instance opens its listener', async () => {
    await stopCli(b.child);
    const c = await pki.client();
    expect((await admin(a, 'POST', '/revocations', { serial: c.serial, reason: 'while B was stopped' })).status).toBe(201);
    b = await start('b');
    // The very first request after "listening" is already refused.
    expect(await revokedOn(b, c)).toBe(true);
    expect((await admin(b, 'GET', '/readyz')).json).toMatchObject({ status: 'ready', store: 'up' });
  }, 60_000);

  it('keeps serving through a Redis outage: 202 propagated:false, applied on A at once, reaching B within 5 s of Redis returning', async () => {
    const c = await pki.client();
    const onB = await openConnection(b, c);
    await redis.kill();
    for (const i of [a, b]) {
      await waitFor(async () => (await admin(i, 'GET', '/readyz')).json.store === 'down', { what: `store down on ${i.name}`, deadline: 5000 });
      const r = await admin(i, 'GET', '/readyz');
      expect(r.status).toBe(200);
      expect(await metric(i, 'certgate_store_up')).toBe(0);
    }
    await waitFor(() => /"event":"store_down"/.test(a.output()), { what: 'the log line /"event":"store_down"/', deadline: 5000 });
    const r = await admin(a, 'POST', '/revocations', { serial: c.serial, reason: 'during the outage' });
    expect(r.status).toBe(202);
    expect(r.json).toMatchObject({ propagated: false, serial: c.serial, id: expect.any(String) });
    expect(await revokedOn(a, c)).toBe(true);
    expect(await metric(a, 'certgate_revocations_pending')).toBe(1);
    // B keeps serving the connection it had: it cannot know yet.
    expect(await oneResponse(onB, GET('/still'))).toMatch(/^HTTP\/1.1 200/);
    const closed = closedWithin(onB, 8000);
    await redis.restart();
    const back = Date.now();
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(Date.now() - back).toBeLessThan(5000);
    expect(await revokedOn(b, c)).toBe(true);
    await waitFor(async () => (await metric(a, 'certgate_revocations_pending')) === 0, { what: 'nothing pending on A', deadline: 5000 });
    await waitFor(async () => (await admin(b, 'GET', '/readyz')).json.store === 'up', { what: 'store up on B', deadline: 5000 });
  }, 60_000);

  it('re-publishes what the instances hold when Redis comes back empty', async () => {
    const c = await pki.client();
    const r = await admin(a, 'POST', '/revocations', { serial: c.serial, reason: 'before the flush' });
    expect(r.status).toBe(201);
    const held = await ids(a);
    await redis.flushAll();
    const rc = redis.client();
    await waitFor(async () => {
      const inRedis = Object.keys(await rc.hgetall('fleet:rev:records'));
      return held.every((id) => inRedis.includes(id));
    }, { what: 'every entry back in Redis', deadline: 5000 });
    await waitFor(() => /"event":"store_generation_changed"/.test(a.output() + b.output()), { what: 'the log line /"event":"store_generation_changed"/', deadline: 5000 });
    expect(await ids(b)).toEqual(expect.arrayContaining(held));
  });

  it('never brings back an entry deleted while an instance was cut off, even through a flushed Redis', async () => {
    const c = await pki.client();
    const r = await admin(a, 'POST', '/revocations', { serial: c.serial, reason: 'to be deleted' });
    await waitFor(async () => (await ids(b)).includes(r.json.id), { what: 'the entry on B', deadline: 5000 });
    await stopCli(b.child);
    expect((await admin(a, 'DELETE', `/revocations/${r.json.id}`)).status).toBe(200);
    // B's journal still holds the entry; Redis forgets everything; B starts first and pushes it.
    await redis.flushAll();
    b = await start('b');
    const rc = redis.client();
    await waitFor(async () => JSON.parse((await rc.hget('fleet:rev:records', r.json.id)) ?? '{}').op === 'remove', {
      what: 'the tombstone back in Redis',
      deadline: 5000,
    });
    await waitFor(async () => !(await ids(b)).includes(r.json.id), { what: 'the entry gone on B', deadline: 5000 });
    expect(await ids(a)).not.toContain(r.json.id);
    expect(await status(b, c)).toBe(200);
  }, 60_000);

  it('starts with Redis down from the local copy; with no local copy it waits for Redis before opening the proxy listener', async () => {
    const c = await pki.client();
    expect((await admin(a, 'POST', '/revocations', { serial: c.serial, reason: 'known before the outage' })).status).toBe(201);
    await waitFor(() => revokedOn(b, c), { what: 'the revocation on B', deadline: 5000 });
    await stopCli(b.child);
    await redis.kill();
    b = await start('b');
    await waitFor(() => /"event":"store_start_local_copy"/.test(b.output()), { what: 'the log line /"event":"store_start_local_copy"/', deadline: 5000 });
    expect(await revokedOn(b, c)).toBe(true);
    expect((await admin(b, 'GET', '/readyz')).json).toMatchObject({ status: 'ready', store: 'down' });

    const port = await freePort();
    writeConfig('c', port);
    const waiting = await spawnCli(['start', '--config', join(dir, 'c.yaml')], /"event":"store_waiting"/);
    started.push(waiting.child);
    expect(await portRefuses(port)).toBe(true);
    await redis.restart();
    await waitFor(() => /"event":"listening"/.test(waiting.output()), { what: 'C listening once Redis is back', deadline: 10_000 });
    const cInst: Instance = { name: 'c', file: '', child: waiting.child, port, admin: '', output: waiting.output };
    // Redis came back empty (no persistence): A and B re-publish, and C learns it by subscription.
    await waitFor(() => revokedOn(cInst, c), { what: 'the revocation on C', deadline: 5000 });
  }, 60_000);
});
