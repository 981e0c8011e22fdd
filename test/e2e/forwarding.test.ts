import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { BACKEND, exchange, mtlsRequest, rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let second: EchoBackend;
let refusedPort: number;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice, OU=payments' });
  second = await startEchoBackend();
  // A port that refuses connections: bind, note it, close.
  const tmp: Server = createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
  refusedPort = (tmp.address() as AddressInfo).port;
  await new Promise((r) => tmp.close(r));
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [
      { name: 'multi', match: { host: ['localhost', 'api.test'], pathPrefix: '/multi' }, upstream: BACKEND, allow: [{ cn: 'alice' }] },
      { name: 'rr', match: { pathPrefix: '/rr' }, upstream: [BACKEND, second.url], allow: [{ cn: 'alice' }] },
      { name: 'failover', match: { pathPrefix: '/failover' }, upstream: [`http://127.0.0.1:${refusedPort}`, second.url], allow: [{ cn: 'alice' }] },
      { name: 'limited', match: { pathPrefix: '/limited' }, upstream: BACKEND, allow: [{ cn: 'alice' }], maxBodySize: '1kb' },
      { name: 'nows', match: { pathPrefix: '/nows' }, upstream: BACKEND, allow: [{ cn: 'alice' }], websocket: false },
      { name: 'based', match: { pathPrefix: '/based' }, upstream: `${second.url}/v1/`, allow: [{ cn: 'alice' }] },
      { name: 'all', upstream: BACKEND, allow: [{ cn: 'alice' }] },
    ],
  });
});

afterAll(async () => {
  await h?.close();
  await second?.close();
});

const creds = () => ({ cert: alice.chainPem, key: alice.keyPem });

describe('forwarding', () => {
  it('answers 421 misdirected_request when Host names another host of a host-bound route than the SNI', async () => {
    const s = await rawTls(h.port, pki.rootPem, creds(), 'localhost');
    const out = await exchange(s, 'GET /multi HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1.1 421/);
    expect(out).toContain('"code":"misdirected_request"');
    const ok = await exchange(await rawTls(h.port, pki.rootPem, creds(), 'localhost'), 'GET /multi HTTP/1.1\r\nHost: localhost:443\r\nConnection: close\r\n\r\n');
    expect(ok).toMatch(/^HTTP\/1.1 200/);
  });

  it('lets the Host alone decide when there is no SNI (IP literal)', async () => {
    const s = await new Promise<ReturnType<typeof tlsConnect>>((resolve, reject) => {
      const sock = tlsConnect({ host: '127.0.0.1', port: h.port, ca: pki.rootPem, ...creds(), checkServerIdentity: () => undefined }, () => resolve(sock));
      sock.once('error', reject);
    });
    const out = await exchange(s, 'GET /multi HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1.1 200/);
  });

  it('puts the upstream URL\'s base path before the request path, query kept', async () => {
    const r = await h.request('/based/items?q=1', { client: creds() });
    expect(r.status).toBe(200);
    expect(r.json.url).toBe('/v1/based/items?q=1');
  });

  it('spreads requests round-robin over the targets of a route', async () => {
    const before1 = h.backend.received.length;
    const before2 = second.received.length;
    for (let i = 0; i < 6; i++) expect((await h.request('/rr', { client: creds() })).status).toBe(200);
    expect(h.backend.received.length - before1).toBe(3);
    expect(second.received.length - before2).toBe(3);
  });

  it('retries an idempotent request on another target when the first refuses the connection', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await h.request('/failover', { client: creds() });
      expect(r.status).toBe(200);
    }
  });

  it('streams a 1 MiB upload and download through', async () => {
    const up = await h.request('/all/upload', { client: creds(), method: 'POST', body: Buffer.alloc(1024 * 1024, 1) });
    expect(up.status).toBe(200);
    expect(up.json.bodyBytes).toBe(1024 * 1024);
    const down = await h.request('/all/bytes?n=1048576', { client: creds() });
    expect(down.status).toBe(200);
    expect(down.text.length).toBe(1024 * 1024);
  });

  it('forwards HEAD and keeps the connection usable afterwards', async () => {
    const s = await rawTls(h.port, pki.rootPem, creds());
    const out = await new Promise<string>((resolve) => {
      let acc = '';
      s.on('data', (c: Buffer) => {
        acc += c.toString('latin1');
        if (acc.includes('"bodyBytes"')) resolve(acc);
      });
      s.write('HEAD /all/x HTTP/1.1\r\nHost: localhost\r\n\r\nGET /all/y HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      setTimeout(() => resolve(acc), 10_000);
    });
    s.destroy();
    const responses = out.split('HTTP/1.1 ').filter(Boolean);
    expect(responses).toHaveLength(2);
    expect(responses[0]).toMatch(/^200/);
    // The HEAD response carries the GET's length but no body: the next response follows at once.
    expect(responses[0]).toMatch(/content-length: \d+/i);
    expect(responses[0]!.endsWith('\r\n\r\n')).toBe(true);
    expect(responses[1]).toMatch(/^200/);
    expect(responses[1]).toContain('"url":"/all/y"');
  });

  it('answers Expect: 100-continue itself and forwards the body', async () => {
    const s = await rawTls(h.port, pki.rootPem, creds());
    const out = await new Promise<string>((resolve) => {
      let acc = '';
      s.on('data', (c: Buffer) => {
        acc += c.toString('latin1');
        if (acc.startsWith('HTTP/1.1 100') && !acc.includes('hello')) s.write('hello');
        if (acc.includes('"bodyBytes"')) resolve(acc);
      });
      s.write('POST /all/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
      setTimeout(() => resolve(acc), 10_000);
    });
    s.destroy();
    expect(out).toMatch(/^HTTP\/1.1 100 Continue/);
    expect(out).toContain('HTTP/1.1 200');
    expect(out).toContain('"bodyBytes":5');
  });

  it('refuses a chunked body that grows past the route limit with 413', async () => {
    const s = await rawTls(h.port, pki.rootPem, creds());
    const chunk = 'a'.repeat(600);
    const out = await exchange(
      s,
      `POST /limited HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`,
    );
    expect(out).toMatch(/^HTTP\/1.1 413/);
    expect(out).toContain('"code":"payload_too_large"');
  });

  it('proxies a WebSocket upgrade after the same identity and policy checks', async () => {
    const s = await rawTls(h.port, pki.rootPem, creds());
    const got = await new Promise<string>((resolve) => {
      let out = '';
      s.on('data', (c: Buffer) => {
        out += c.toString('latin1');
        if (out.includes('\r\n\r\n') && !out.includes('ping-from-client')) s.write('ping-from-client');
        if (out.includes('ping-from-client')) resolve(out);
      });
      s.write('GET /all/ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Client-Cert-Cn: root\r\n\r\n');
      setTimeout(() => resolve(out), 10_000);
    });
    s.destroy();
    expect(got).toMatch(/^HTTP\/1.1 101/);
    expect(got).toContain('ping-from-client');
    const rec = h.backend.received.at(-1)!;
    expect(rec.url).toBe('/all/ws');
    expect(rec.headers['x-client-cert-cn']).toBe('alice');
  });

  it('refuses a WebSocket upgrade from an identity the route does not allow', async () => {
    const bob = await pki.client({ cn: 'bob' });
    const s = await rawTls(h.port, pki.rootPem, { cert: bob.chainPem, key: bob.keyPem });
    const out = await exchange(s, 'GET /all/ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1.1 403/);
    expect(out).toContain('"code":"identity_not_allowed"');
  });

  it('refuses TLS 1.1 clients (minimum TLS 1.2)', async () => {
    await expect(
      new Promise((resolve, reject) => {
        const sock = tlsConnect({ host: '127.0.0.1', port: h.port, ca: pki.rootPem, ...creds(), servername: 'localhost', minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }, () => resolve(sock));
        sock.once('error', reject);
      }),
    ).rejects.toThrow();
  });

  it('refuses renegotiation', async () => {
    const s = await new Promise<ReturnType<typeof tlsConnect>>((resolve, reject) => {
      const sock = tlsConnect({ host: '127.0.0.1', port: h.port, ca: pki.rootPem, ...creds(), servername: 'localhost', maxVersion: 'TLSv1.2' }, () => resolve(sock));
      sock.once('error', reject);
    });
    const result = await new Promise<Error | null>((resolve) => {
      s.once('error', (e) => resolve(e));
      const ok = s.renegotiate({}, (err) => resolve(err ?? null));
      if (!ok) resolve(new Error('renegotiate refused locally'));
    });
    s.destroy();
    expect(result).toBeInstanceOf(Error);
  });
});

/** A certgate of its own for one test: one allow-alice route, `extra` config on top. */
async function withHarness(extra: Record<string, unknown>, fn: (h: Harness) => Promise<void>): Promise<void> {
  const own = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', upstream: BACKEND, allow: [{ cn: 'alice' }] }],
    extra,
  });
  try {
    await fn(own);
  } finally {
    await own.close();
  }
}

describe('tls.refuse: handshake', () => {
  it('resets a connection without a certificate right after the handshake instead of answering', async () => {
    await withHarness({ tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['clients-ca.pem'], refuse: 'handshake' } }, async (h2) => {
      await expect(mtlsRequest(h2.origin, pki.rootPem, '/')).rejects.toThrow();
      expect((await h2.request('/', { client: creds() })).status).toBe(200);
    });
  });
});

describe('limits.maxConnections', () => {
  it('refuses connections beyond the cap', async () => {
    await withHarness({ limits: { maxConnections: 2 } }, async (h3) => {
      const a = await rawTls(h3.port, pki.rootPem, creds());
      const b = await rawTls(h3.port, pki.rootPem, creds());
      await expect(rawTls(h3.port, pki.rootPem, creds())).rejects.toThrow();
      a.destroy();
      b.destroy();
    });
  });
});

describe('timeouts.headers', () => {
  it('cuts off a client that sends its headers too slowly with 408 request_timeout', async () => {
    await withHarness({ timeouts: { headers: '500ms', request: '1s' } }, async (h4) => {
      const s = await rawTls(h4.port, pki.rootPem, creds());
      const t0 = Date.now();
      // Headers started, never finished (slowloris).
      const out = await exchange(s, 'GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n', 5000);
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(out).toMatch(/^HTTP\/1.1 408/);
      expect(out).toContain('"code":"request_timeout"');
      expect(h4.backend.received.length).toBe(0);
    });
  });
});

describe('timeouts.handshake', () => {
  it('closes a connection that never completes the TLS handshake', async () => {
    await withHarness({ timeouts: { handshake: '500ms' } }, async (h5) => {
      const { connect } = await import('node:net');
      const t0 = Date.now();
      const closedAfter = await new Promise<number>((resolve) => {
        const s = connect(h5.port, '127.0.0.1');
        s.on('error', () => {});
        s.once('close', () => resolve(Date.now() - t0));
        setTimeout(() => {
          s.destroy();
          resolve(Infinity);
        }, 5000);
      });
      expect(closedAfter).toBeLessThan(2500);
    });
  });
});

describe('timeouts.idle', () => {
  it('closes an idle keep-alive connection after the idle timeout, and one that never sends a request', async () => {
    await withHarness({ timeouts: { idle: '500ms' } }, async (h6) => {
      const closedWithin = (s: Awaited<ReturnType<typeof rawTls>>) =>
        new Promise<number>((resolve) => {
          const t0 = Date.now();
          s.once('close', () => resolve(Date.now() - t0));
          setTimeout(() => resolve(Infinity), 4000);
        });
      const used = await rawTls(h6.port, pki.rootPem, creds());
      const answered = new Promise<void>((resolve) => used.once('data', () => resolve()));
      used.write('GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await answered;
      const silent = await rawTls(h6.port, pki.rootPem, creds());
      const [a, b] = await Promise.all([closedWithin(used), closedWithin(silent)]);
      expect(a).toBeLessThan(2500);
      expect(b).toBeLessThan(2500);
    });
  });
});
