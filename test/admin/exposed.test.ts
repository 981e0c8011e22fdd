// Plain HTTP off loopback: the decision follows admin.host (a pure function of the address);
// the socket binds 127.0.0.1 because tests may not bind another address. The AdminServer is
// given the access computed from a config whose admin.host is 0.0.0.0, exactly as startApp does.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeAdmin, buildAdminAccess, isLoopbackHost, PLAIN_EXPOSED_WARNING, type AdminAccess } from '../../src/admin/access.js';
import { AdminServer } from '../../src/admin/server.js';
import { loadConfig } from '../../src/config/load.js';
import { createTestPki } from '../helpers/pki.js';

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true], ['127.10.0.3', true], ['localhost', true], ['::1', true], ['[::1]', true],
    ['0:0:0:0:0:0:0:1', true], ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false], ['::', false], ['10.0.0.5', false], ['192.168.1.1', false], ['::ffff:10.0.0.1', false],
    ['admin.example.com', false], ['128.0.0.1', false],
  ])('%s -> %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe('authorizeAdmin (pure)', () => {
  const plain = (exposedPlain: boolean, publicMetrics = true): AdminAccess => ({ tls: undefined, exposedPlain, publicMetrics, host: 'x', readToken: undefined });
  const none = { state: 'none' } as const;
  it.each([
    ['loopback read without token', plain(false), false, '/certs', undefined, true],
    ['loopback mutation without token', plain(false), true, '/revocations', undefined, 'unauthorized'],
    ['exposed read without token', plain(true), false, '/certs', undefined, 'unauthorized'],
    ['exposed read with read token', plain(true), false, '/certs', 'read', true],
    ['exposed mutation with read token', plain(true), true, '/revocations', 'read', 'admin_forbidden'],
    ['exposed mutation with token', plain(true), true, '/revocations', 'admin', true],
    ['exposed healthz', plain(true), false, '/healthz', undefined, true],
    ['exposed metrics, public', plain(true), false, '/metrics', undefined, true],
    ['exposed metrics, publicMetrics false', plain(true, false), false, '/metrics', undefined, 'unauthorized'],
  ] as const)('%s', (_name, access, mutation, path, token, expected) => {
    const v = authorizeAdmin({ mutation, path, cert: none, token }, access);
    expect(v.ok ? true : v.code).toBe(expected);
  });
});

describe('plain admin listener on a non-loopback admin.host', () => {
  let dir: string;
  const lines: { event?: string; msg?: string }[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
  let admin: AdminServer;
  let base: string;
  const TOKEN = 't'.repeat(32);
  const READ = 'r'.repeat(32);

  function configWith(admin: Record<string, unknown>) {
    const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      file,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
        admin: { port: 0, readTokenFile: 'read.token', ...admin },
        routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', allow: [{ cn: 'a' }] }],
      }),
    );
    return loadConfig(file);
  }
  const get = (path: string, token?: string, method = 'GET') =>
    fetch(base + path, { method, headers: token !== undefined ? { authorization: `Bearer ${token}` } : {} }).then(async (r) => {
      const text = await r.text();
      return { status: r.status, body: (r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as any };
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'certgate-exposed-'));
    await (await createTestPki()).writeTo(dir);
    writeFileSync(join(dir, 'read.token'), READ + '\n');
    const access = buildAdminAccess(configWith({ host: '0.0.0.0' }));
    expect(access.exposedPlain).toBe(true);
    admin = new AdminServer(log, { token: TOKEN, access });
    admin.route('GET', '/healthz', (r) => r.json(200, { status: 'ok' }));
    admin.route('GET', '/metrics', (r) => r.text(200, 'm 1\n'));
    admin.route('GET', '/certs', (r) => r.json(200, { clients: [] }));
    admin.route('POST', '/revocations', (r) => r.json(201, { actor: r.actor }));
    const addr = await admin.listen('127.0.0.1', 0);
    base = `http://127.0.0.1:${addr.port}`;
  });
  afterAll(async () => {
    await admin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('warns at start that the admin API is plain HTTP on a non-loopback address', () => {
    expect(lines.filter((l) => l.event === 'admin_exposed').map((l) => l.msg)).toEqual([PLAIN_EXPOSED_WARNING]);
  });

  it('requires a token for reads other than /healthz, /readyz and /metrics', async () => {
    expect((await get('/certs')).body.error.code).toBe('unauthorized');
    expect((await get('/certs')).status).toBe(401);
    expect((await get('/certs', READ)).status).toBe(200);
    expect((await get('/certs', TOKEN)).status).toBe(200);
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/metrics')).status).toBe(200);
  });

  it('refuses a mutation with the read token (403 admin_forbidden) and accepts the admin token', async () => {
    const r = await get('/revocations', READ, 'POST');
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('admin_forbidden');
    expect((await get('/revocations', TOKEN, 'POST')).status).toBe(201);
  });

  it('warns again at reload, and publicMetrics: false protects /metrics', async () => {
    admin.apply(buildAdminAccess(configWith({ host: '0.0.0.0', publicMetrics: false })));
    expect(lines.filter((l) => l.event === 'admin_exposed')).toHaveLength(2);
    expect((await get('/metrics')).status).toBe(401);
    expect((await get('/metrics', READ)).status).toBe(200);
  });

  it('does not warn and leaves reads open on a loopback admin.host', async () => {
    const loop = buildAdminAccess(configWith({ host: '127.0.0.1' }));
    expect(loop.exposedPlain).toBe(false);
    admin.apply(loop);
    expect(lines.filter((l) => l.event === 'admin_exposed')).toHaveLength(2);
    expect((await get('/certs')).status).toBe(200);
    expect((await get('/revocations', undefined, 'POST')).status).toBe(401);
  });
});
