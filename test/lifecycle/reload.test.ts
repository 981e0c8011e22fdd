import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { Client } from 'undici';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, mtlsRequest, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCa, type TestCert, type TestPki } from '../helpers/pki.js';
import { atomicWrite } from '../helpers/config.js';
import { reloadCount } from '../helpers/metrics.js';
import { servedFingerprint } from '../helpers/sockets.js';
import { waitFor, within } from '../helpers/wait.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let caB: TestCa;
let carol: TestCert;
let other: TestPki;
let dave: TestCert;

const DAY = 86_400_000;
const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ cn: 'alice' });
  caB = await pki.ca({ issuer: 'root', subject: 'CN=certgate test CA B, O=certgate-test' });
  carol = await pki.client({ cn: 'carol', issuer: caB });
  other = await pki.untrustedRoot();
  dave = await other.client({ cn: 'dave' });
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem + caB.certPem + other.rootPem },
    serverCa: pki.rootPem,
    admin: true,
    routes: [{ name: 'any', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }],
  });
});

afterAll(async () => {
  await h?.close();
});

function editConfig(patch: (c: Record<string, unknown>) => void): void {
  const c = parse(readFileSync(h.configFile, 'utf8')) as Record<string, unknown>;
  patch(c);
  atomicWrite(h.configFile, stringify(c));
}

function rotateServerCert(c: TestCert): void {
  // Key first, then the cert: in between the two do not match, which is why reload checks both.
  atomicWrite(join(h.dir, 'server-key.pem'), c.keyPem);
  atomicWrite(join(h.dir, 'server.pem'), c.chainPem);
}

describe('hot reload', () => {
  it('rotates the server certificate 20 times under load with zero failed requests; new handshakes see each new cert', async () => {
    const keepAlive = new Client(h.origin, {
      connect: { ca: pki.rootPem, ...creds(alice), servername: 'localhost' },
      pipelining: 1,
    });
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const keepAliveLoop = async () => {
      while (running) {
        try {
          const r = await keepAlive.request({ path: '/load', method: 'GET' });
          await r.body.text();
          if (r.statusCode === 200) ok++;
          else failures.push(`keep-alive status ${r.statusCode}`);
        } catch (err) {
          failures.push(`keep-alive ${(err as Error).message}`);
        }
      }
    };
    const newConnLoop = async () => {
      while (running) {
        try {
          const r = await mtlsRequest(h.origin, pki.rootPem, '/load-new', { client: creds(alice) });
          if (r.status === 200) ok++;
          else failures.push(`new connection status ${r.status}`);
        } catch (err) {
          failures.push(`new connection ${(err as Error).message}`);
        }
      }
    };
    const loops = [keepAliveLoop(), keepAliveLoop(), newConnLoop()];
    const successBefore = await reloadCount('success');
    try {
      for (let i = 0; i < 20; i++) {
        const served = ok;
        const next = await pki.serverCert();
        rotateServerCert(next);
        const result = h.app.reload();
        expect(result.errors).toEqual([]);
        expect(result.ok).toBe(true);
        expect(await servedFingerprint(h.port, pki.rootPem)).toBe(next.fingerprint256);
        // Requests run between two reloads, however slow the machine.
        await waitFor(() => ok > served, { what: 'a request between two reloads' });
      }
    } finally {
      running = false;
      await Promise.all(loops);
      await keepAlive.close();
    }
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    expect((await reloadCount('success')) - successBefore).toBe(20);
  });

  const failing: [string, () => Promise<void>, RegExp][] = [
    ['a garbage certificate', async () => writeFileSync(join(h.dir, 'server.pem'), 'not a certificate\n'), /certgate\.yaml:\d+:\d+ tls\.cert: .*holds no PEM certificate/],
    ['a key that does not match the certificate', async () => atomicWrite(join(h.dir, 'server-key.pem'), (await pki.serverCert()).keyPem), /certgate\.yaml:\d+:\d+ tls\.key: .*does not match/],
    [
      'an expired server certificate',
      async () => rotateServerCert(await pki.serverCert({ notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) })),
      /certgate\.yaml:\d+:\d+ tls\.cert: the server certificate expired on .*allowExpiredServerCert/,
    ],
    [
      'an invalid policy',
      async () => editConfig((c) => ((c.routes as Record<string, unknown>[])[0]!.allow = [{ cnn: 'alice' }])),
      /certgate\.yaml:\d+:\d+ routes\[0\]\.allow\[0\]\.cnn: unknown key/,
    ],
    ['a change to listen.port (restart only)', async () => editConfig((c) => ((c.listen as Record<string, unknown>).port = 1)), /listen\.port: cannot change while running/],
  ];

  it.each(failing)('keeps the old material and counts a failure after a reload with %s', async (_name, breakIt, message) => {
    const good = { cert: readFileSync(join(h.dir, 'server.pem'), 'utf8'), key: readFileSync(join(h.dir, 'server-key.pem'), 'utf8'), config: readFileSync(h.configFile, 'utf8') };
    const servedBefore = await servedFingerprint(h.port, pki.rootPem);
    const generation = h.app.certgate.runtime.generation;
    const failuresBefore = await reloadCount('failure');
    await breakIt();
    try {
      const r = h.app.reload();
      expect(r.ok).toBe(false);
      expect(r.generation).toBe(generation);
      expect(r.errors.join('\n')).toMatch(message);
      expect((await reloadCount('failure')) - failuresBefore).toBe(1);
      expect(h.app.certgate.runtime.generation).toBe(generation);
      expect(await servedFingerprint(h.port, pki.rootPem)).toBe(servedBefore);
      expect((await h.request('/still-works', { client: creds(alice) })).status).toBe(200);
    } finally {
      writeFileSync(join(h.dir, 'server.pem'), good.cert);
      writeFileSync(join(h.dir, 'server-key.pem'), good.key);
      writeFileSync(h.configFile, good.config);
    }
  });

  it('answers POST /reload on the admin listener only with the bearer token, through the same reload', async () => {
    const denied = await fetch(`${h.adminUrl}/reload`, { method: 'POST' });
    expect(denied.status).toBe(401);
    const token = readFileSync(join(h.dir, 'admin.token'), 'utf8').trim();
    const generation = h.app.certgate.runtime.generation;
    const res = await fetch(`${h.adminUrl}/reload`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ok: boolean; generation: number };
    expect(body.ok).toBe(true);
    expect(body.generation).toBeGreaterThan(generation);
  });

  it('closes open connections whose chain relied on a CA removed by a reload, and keeps the others', async () => {
    const open = async (c: TestCert) => {
      const s = await new Promise<TLSSocket>((resolve, reject) => {
        const sock = connect({ host: '127.0.0.1', port: h.port, ca: pki.rootPem, ...creds(c), servername: 'localhost' }, () => resolve(sock));
        sock.once('error', reject);
      });
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      return { s, closed, get: (path: string) => roundTrip(s, path) };
    };
    const closedWithin = (c: { closed: Promise<void> }, what: string) => within(c.closed, 10_000, `${what} to close`);
    const a = await open(alice); // intermediate in the bundle
    const c = await open(carol); // CA B, in the bundle
    for (const x of [a, c]) expect(await x.get('/one')).toMatch(/^HTTP\/1\.1 200/);
    const bundle = join(h.dir, 'clients-ca.pem');
    const original = readFileSync(bundle, 'utf8');
    try {
      atomicWrite(bundle, pki.caBundlePem + other.rootPem);
      expect(h.app.reload().ok).toBe(true);
      // One pass re-checks every open connection: once c is closed, a has been judged too.
      await closedWithin(c, 'the connection that relied on CA B');
      expect(a.s.destroyed).toBe(false);
      expect(await a.get('/two')).toMatch(/^HTTP\/1\.1 200/);

      // A client that sends its own intermediate (only the root is in the bundle).
      const d = await open(dave);
      expect(await d.get('/two')).toMatch(/^HTTP\/1\.1 200/);
      atomicWrite(bundle, pki.caBundlePem);
      expect(h.app.reload().ok).toBe(true);
      await closedWithin(d, 'the connection under the removed root');
      expect(await a.get('/three')).toMatch(/^HTTP\/1\.1 200/);
      const r = await h.request('/three', { client: creds(dave) });
      expect(r.status).toBe(403);
      expect(r.json.error.code).toBe('certificate_untrusted');
    } finally {
      a.s.destroy();
      atomicWrite(bundle, original);
      h.app.reload();
    }
  });
});

describe('session tickets', () => {
  it('resumes a TLS session across a reload (ticket keys are kept) but not across a key rotation', async () => {
    const handshake = (session?: Buffer) =>
      new Promise<{ reused: boolean; session: Buffer; status: string }>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: h.port, ca: pki.rootPem, ...creds(alice), servername: 'localhost', ...(session ? { session } : {}) });
        let ticket: Buffer | undefined;
        s.on('session', (t: Buffer) => (ticket = t));
        s.once('error', reject);
        s.once('secureConnect', async () => {
          const reused = s.isSessionReused();
          const status = (await roundTrip(s, '/resume')).split('\r\n')[0]!;
          // A resumed TLS 1.3 session gets no new ticket; the old one stays usable.
          if (!reused) await waitFor(() => ticket, { what: 'a session ticket', every: 10 });
          s.destroy();
          resolve({ reused, session: ticket ?? session!, status });
        });
      });
    const first = await handshake();
    expect(first.reused).toBe(false);
    rotateServerCert(await pki.serverCert());
    expect(h.app.reload().ok).toBe(true);
    const second = await handshake(first.session);
    expect(second.reused).toBe(true);
    expect(second.status).toBe('HTTP/1.1 200 OK');
    h.app.lifecycle.tickets.rotate();
    const third = await handshake(second.session);
    expect(third.reused).toBe(false);
    expect(third.status).toBe('HTTP/1.1 200 OK');
  });
});

describe('start with an expired server certificate', () => {
  it('is refused with a clear message unless tls.allowExpiredServerCert is set', async () => {
    const expired = await pki.serverCert({ notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    const opts = {
      tls: { serverCert: expired.chainPem, serverKey: expired.keyPem, caBundle: pki.caBundlePem },
      serverCa: pki.rootPem,
      routes: [{ name: 'any', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }],
    };
    await expect(startHarness(opts)).rejects.toThrow(/certgate\.yaml:\d+:\d+ tls\.cert: the server certificate expired on .* set tls\.allowExpiredServerCert: true/);
    const allowed = await startHarness({
      ...opts,
      extra: { tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['clients-ca.pem'], allowExpiredServerCert: true } },
    });
    try {
      expect(await servedFingerprint(allowed.port, pki.rootPem).catch((e: Error) => e.message)).toMatch(/expired/i);
    } finally {
      await allowed.close();
    }
  });
});

/** One keep-alive request on an open socket; resolves with the response head and body. */
function roundTrip(s: TLSSocket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString('latin1');
      const end = out.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = /content-length: (\d+)/i.exec(out.slice(0, end));
      if (len && out.length >= end + 4 + Number(len[1])) {
        s.off('data', onData);
        resolve(out);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  });
}
