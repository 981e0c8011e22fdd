// HTTP/2 streams get exactly what HTTP/1.1 requests get: identity from the connection, path and
// Host hygiene, policy, identity headers with spoofed ones stripped, the same JSON refusals, the
// access line (with the protocol); HTTP/1.1 keeps working on the same listener.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { creds, h2Once, h2Request, h2Session } from './client.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let bob: TestCert;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice, OU=payments, O=Acme', san: { uri: ['spiffe://acme.test/ns/prod/sa/alice'] } });
  bob = await pki.client({ subject: 'CN=bob, OU=support, O=Acme' });
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [
      { name: 'orders', match: { pathPrefix: '/orders', methods: ['GET', 'POST'] }, upstream: BACKEND, allow: [{ cn: 'alice' }] },
      { name: 'hosted', match: { host: 'localhost', pathPrefix: '/hosted' }, upstream: BACKEND, allow: [{ cn: 'alice' }] },
      { name: 'small', match: { pathPrefix: '/small' }, upstream: BACKEND, allow: [{ cn: 'alice' }], maxBodySize: 16 },
    ],
    extra: { listen: { host: '127.0.0.1', port: 0, http2: true }, log: { level: 'silent', access: true, accessFile: 'access.log' } },
  });
});

afterAll(async () => {
  await h?.close();
});

const port = () => h.port;

describe('ALPN on the mTLS listener', () => {
  it('negotiates h2 when offered and http/1.1 for clients that do not offer h2', async () => {
    const alpn = (protocols: string[]) =>
      new Promise<string | false>((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port: port(), ca: h.serverCa, ...creds(alice), servername: 'localhost', ALPNProtocols: protocols }, () => {
          resolve(s.alpnProtocol ?? false);
          s.destroy();
        });
        s.once('error', reject);
      });
    expect(await alpn(['h2', 'http/1.1'])).toBe('h2');
    expect(await alpn(['http/1.1'])).toBe('http/1.1');
    const r = await h.request('/orders/1', { client: creds(alice) });
    expect(r.status).toBe(200);
    expect(r.json.url).toBe('/orders/1');
  });
});

describe('a stream gets what a request gets', () => {
  it('forwards an allowed identity with its identity headers and strips the ones the client sent', async () => {
    const r = await h2Once(port(), h.serverCa, creds(alice), '/orders/42?x=1', {
      headers: { 'x-client-cert-cn': 'mallory', 'x-forwarded-client-cert': 'Hash=evil', 'x-client_cert-subject': 'CN=evil', 'x-forwarded-for': '10.9.9.9' },
    });
    expect(r.status).toBe(200);
    expect(r.json.url).toBe('/orders/42?x=1');
    const got = r.json.headers;
    expect(got['x-client-cert-cn']).toBe('alice');
    expect(got['x-client-cert-fingerprint']).toBe(alice.fingerprint256);
    expect(got['x-forwarded-client-cert']).toContain(`Hash=${alice.fingerprint256}`);
    expect(got['x-forwarded-client-cert']).not.toContain('evil');
    expect(got['x-client_cert-subject']).toBeUndefined();
    expect(got['x-forwarded-for']).toBe('127.0.0.1');
    expect(got.host).toBe('localhost:' + port());
    expect(r.headers['x-request-id']).toBeUndefined();
  });

  it('refuses an identity the route does not allow with the same JSON refusal', async () => {
    const r = await h2Once(port(), h.serverCa, creds(bob), '/orders/1');
    expect(r.status).toBe(403);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.json.error.code).toBe('identity_not_allowed');
    expect(r.json.error.requestId).toBe(r.headers['x-request-id']);
  });

  it('refuses a client without a certificate with 401 certificate_required', async () => {
    const r = await h2Once(port(), h.serverCa, undefined, '/orders/1');
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe('certificate_required');
  });

  it.each(['/orders/../admin', '/orders/%2e%2e/admin', '/orders%2fx', '/orders//1', '/orders/a\\b'])('refuses the non-canonical :path %s with 400 bad_path', async (path) => {
    const before = h.backend.received.length;
    const r = await h2Once(port(), h.serverCa, creds(alice), path);
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('bad_path');
    expect(h.backend.received.length).toBe(before);
  });

  it('reads :authority as Host: a host route refuses a name that differs from SNI with 421', async () => {
    const ok = await h2Once(port(), h.serverCa, creds(alice), '/hosted/1');
    expect(ok.status).toBe(200);
    const r = await h2Once(port(), h.serverCa, creds(alice), '/hosted/1', { servername: 'other.example', headers: { ':authority': 'localhost' } });
    expect(r.status).toBe(421);
    expect(r.json.error.code).toBe('misdirected_request');
  });

  it('refuses a host header that differs from :authority with 400, as a duplicate Host', async () => {
    const r = await h2Once(port(), h.serverCa, creds(alice), '/orders/1', { headers: { ':authority': 'localhost', host: 'evil.example' } });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('bad_request');
  });

  it('streams a request body without content-length to the backend and refuses one over the route limit with 413', async () => {
    const r = await h2Once(port(), h.serverCa, creds(alice), '/orders/1', { method: 'POST', body: 'x'.repeat(50_000) });
    expect(r.status).toBe(200);
    expect(r.json.bodyBytes).toBe(50_000);
    const big = await h2Once(port(), h.serverCa, creds(alice), '/small', { method: 'POST', body: 'x'.repeat(100) });
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe('payload_too_large');
    const declared = await h2Once(port(), h.serverCa, creds(alice), '/small', { method: 'POST', headers: { 'content-length': '100' }, body: 'x'.repeat(100) });
    expect(declared.status).toBe(413);
  });

  it('joins cookie crumbs into one cookie header for the HTTP/1.1 upstream', async () => {
    const s = await h2Session(port(), h.serverCa, creds(alice));
    try {
      const req = s.request({ ':path': '/orders/c', cookie: ['a=1', 'b=2'] });
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (text += c));
      await new Promise((resolve) => req.on('end', resolve));
      expect(JSON.parse(text).headers.cookie).toBe('a=1; b=2');
    } finally {
      s.close();
    }
  });

  it('serves many concurrent streams on one connection, each admitted on its own', async () => {
    const s = await h2Session(port(), h.serverCa, creds(alice));
    try {
      const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => h2Request(s, i % 4 === 0 ? '/nowhere' : `/orders/${i}`)));
      replies.forEach((r, i) => expect(r.status).toBe(i % 4 === 0 ? 404 : 200));
    } finally {
      s.close();
    }
  });

  it('refuses a plain CONNECT stream', async () => {
    const s = await h2Session(port(), h.serverCa, creds(alice));
    try {
      const req = s.request({ ':method': 'CONNECT', ':authority': 'localhost:443' });
      const status = await new Promise<number>((resolve) => req.on('response', (hd) => resolve(Number(hd[':status']))));
      expect(status).toBe(400);
      req.close();
    } finally {
      s.close();
    }
  });

  it('writes an access line naming the protocol for streams, and none for HTTP/1.1 lines', async () => {
    const r = await h2Once(port(), h.serverCa, creds(alice), '/orders/logged');
    const id = r.json.headers['x-request-id'];
    const h1 = await h.request('/orders/h1', { client: creds(alice) });
    const h1id = h1.json.headers['x-request-id'];
    const lines = await waitFor(
      () => {
        const all = readFileSync(join(h.dir, 'access.log'), 'utf8').split('\n').filter((l) => l.includes(id) || l.includes(h1id));
        return all.length === 2 ? all.map((l) => JSON.parse(l)) : undefined;
      },
      { what: 'both access lines' },
    );
    const h2line = lines.find((l) => l.reqId === id);
    expect(h2line).toMatchObject({ protocol: 'h2', method: 'GET', path: '/orders/logged', route: 'orders', decision: 'allow', status: 200, subject: 'CN=alice,OU=payments,O=Acme' });
    expect(lines.find((l) => l.reqId === h1id).protocol).toBeUndefined();
  });
});
