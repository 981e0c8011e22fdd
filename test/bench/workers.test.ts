// `workers: 2`: certgate on node:cluster as `certgate start` runs it (a real process tree). The
// primary's admin API revokes a certificate and every worker refuses it; TLS sessions resume on
// either worker (shared ticket keys); /metrics adds up every worker's counters.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { mtlsRequest, rawTls } from '../helpers/certgate.js';
import { spawnCli, stopCli } from '../helpers/cli.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

const TOKEN = 'workers-test-token-0123456789abcdef';

describe('certgate with workers: 2', () => {
  let pki: TestPki;
  let alice: TestCert;
  let bob: TestCert;
  let backend: EchoBackend;
  let proc: { child: ChildProcess; port: number; stop: () => Promise<void> };
  let dir: string;
  let origin: string;
  let admin: string;

  beforeAll(async () => {
    pki = await createTestPki();
    [alice, bob] = await Promise.all([pki.client({ cn: 'alice' }), pki.client({ cn: 'bob' })]);
    backend = await startEchoBackend();
    dir = mkdtempSync(join(tmpdir(), 'certgate-workers-'));
    const files = await pki.writeTo(dir);
    writeFileSync(join(dir, 'admin.token'), TOKEN + '\n', { mode: 0o600 });
    const cfg = {
      listen: { host: '127.0.0.1', port: 0 },
      tls: { cert: files.serverCert, key: files.serverKey, clientCAs: [files.caBundle] },
      admin: { enabled: true, host: '127.0.0.1', port: 0, tokenFile: join(dir, 'admin.token') },
      log: { level: 'info', access: false },
      watch: { enabled: false },
      revocation: { dataDir: join(dir, 'data') },
      inventory: { file: join(dir, 'inventory.json') },
      workers: 2,
      routes: [{ name: 'all', match: { pathPrefix: '/' }, upstream: backend.url, allow: [{ cn: ['alice', 'bob'] }] }],
    };
    writeFileSync(join(dir, 'certgate.yaml'), stringify(cfg));
    // The listening line of the primary, once both workers listen.
    const { child, match } = await spawnCli(['start', '--config', join(dir, 'certgate.yaml')], /^(?=.*"event":"listening")(?=.*"workers":2\b).*$/m);
    const listening = JSON.parse(match[0]) as { port: number; adminPort: number };
    proc = { child, port: listening.port, stop: () => stopCli(child) };
    const adminPort = listening.adminPort;
    origin = `https://127.0.0.1:${proc.port}`;
    admin = `http://127.0.0.1:${adminPort}`;
  });

  afterAll(async () => {
    await proc?.stop();
    await backend?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const get = (cert: TestCert) => mtlsRequest(origin, pki.rootPem, '/x', { client: { cert: cert.chainPem, key: cert.keyPem } });

  it('serves through both workers and resumes a TLS session on either (shared ticket keys)', async () => {
    let session: Buffer | undefined;
    const reused: boolean[] = [];
    // Round-robin: consecutive connections land on alternate workers.
    for (let i = 0; i < 4; i++) {
      const s = await new Promise<TLSSocket>((resolve, reject) => {
        const sock = connect({ host: '127.0.0.1', port: proc.port, ca: pki.rootPem, cert: alice.chainPem, key: alice.keyPem, servername: 'localhost', session });
        sock.once('secureConnect', () => resolve(sock));
        sock.once('error', reject);
      });
      const got = await new Promise<string>((resolve) => {
        let out = '';
        if (session === undefined) s.once('session', (t: Buffer) => (session = t));
        s.on('data', (c: Buffer) => {
          out += c.toString('latin1');
          if (out.includes('\r\n\r\n')) resolve(out);
        });
        s.write('GET /x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
      });
      expect(got.startsWith('HTTP/1.1 200')).toBe(true);
      reused.push(s.isSessionReused());
      s.destroy();
    }
    expect(reused).toEqual([false, true, true, true]);
  });

  it('a revocation through the primary is in force on every worker when the API answers: open and new connections refused', async () => {
    expect((await get(bob)).status).toBe(200);
    // Two keep-alive connections, one on each worker (round-robin), each after one request.
    const open = await Promise.all([0, 1].map(() => rawTls(proc.port, pki.rootPem, { cert: bob.chainPem, key: bob.keyPem })));
    for (const s of open) {
      const first = await new Promise<string>((resolve) => {
        s.once('data', (c: Buffer) => resolve(c.toString('latin1')));
        s.write('GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n');
      });
      expect(first.startsWith('HTTP/1.1 200')).toBe(true);
    }
    const closed = open.map((s) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve()))));
    const res = await fetch(`${admin}/revocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ fingerprint: bob.fingerprint256, reason: 'keyCompromise' }),
    });
    expect(res.status).toBe(201);
    // The primary answers 201 only once every worker has applied the revocation: no retry loop.
    const codes: unknown[] = [];
    for (let i = 0; i < 4; i++) codes.push((await get(bob)).json?.error?.code);
    expect(codes).toEqual(['certificate_revoked', 'certificate_revoked', 'certificate_revoked', 'certificate_revoked']);
    // Each worker closed its open connection of the revoked certificate (within a second).
    await Promise.race([Promise.all(closed), new Promise((_, reject) => setTimeout(() => reject(new Error('open connections not closed')), 1_000))]);
    // alice is untouched on both workers.
    for (let i = 0; i < 2; i++) expect((await get(alice)).status).toBe(200);
  });

  it('aggregates metrics across workers on the primary', async () => {
    const text = await (await fetch(`${admin}/metrics`)).text();
    const ok = [...text.matchAll(/^certgate_requests_total\{[^}]*status="200"[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    // 4 (sessions) + 1 + 2 (bob before) + 2 (alice after), spread over two workers.
    expect(ok).toBe(9);
  });

  it('serves GET /certs on the primary from every worker\'s inventory, merged per certificate', async () => {
    const res = await fetch(`${admin}/certs`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { server: unknown[]; clients: { fingerprint: string; requests: number; routes: string[] }[] };
    expect(body.server.length).toBeGreaterThan(0);
    const a = body.clients.find((c) => c.fingerprint === alice.fingerprint256);
    const b = body.clients.find((c) => c.fingerprint === bob.fingerprint256);
    // One entry per certificate, whichever workers saw it; request counts added up.
    expect(body.clients.filter((c) => c.fingerprint === alice.fingerprint256)).toHaveLength(1);
    expect(a?.routes).toEqual(['all']);
    expect(a!.requests).toBeGreaterThanOrEqual(6);
    expect(b!.requests).toBeGreaterThanOrEqual(3);
  });

  it('keeps one inventory file per worker slot, written at shutdown', async () => {
    await proc.stop();
    const files = readdirSync(dir).filter((f) => f.startsWith('inventory.json')).sort();
    expect(files).toEqual(['inventory.json.worker1', 'inventory.json.worker2']);
    const fps = files.flatMap((f) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { entries: { fingerprint: string }[] }).entries.map((e) => e.fingerprint));
    expect(fps).toContain(alice.fingerprint256);
  });
});
