import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseXfcc } from '../../src/proxy/xfcc.js';
import { BACKEND, exchange, rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let bob: TestCert;
let mallory: TestCert;

const DAY = 86_400_000;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice, OU=payments, O=Acme', san: { uri: ['spiffe://acme.test/ns/prod/sa/alice'], dns: ['alice.acme.test'] } });
  bob = await pki.client({ subject: 'CN=bob, OU=support, O=Acme' });
  mallory = await pki.client({ subject: 'CN=mallory, OU=guests, O=Acme' });
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [
      { name: 'orders', match: { pathPrefix: '/orders', methods: ['GET', 'POST'] }, upstream: BACKEND, allow: [{ spiffe: 'spiffe://acme.test/ns/prod/sa/*' }] },
      { name: 'support', match: { pathPrefix: '/support' }, upstream: BACKEND, allow: [{ ou: 'support' }, { cn: 'alice' }], deny: [{ serial: bob.serial }] },
      { name: 'hosted', match: { host: 'localhost', pathPrefix: '/hosted' }, upstream: BACKEND, allow: [{ cn: 'alice' }] },
      { name: 'small', match: { pathPrefix: '/small' }, upstream: BACKEND, allow: [{ cn: 'alice' }], maxBodySize: 16 },
      { name: 'down', match: { pathPrefix: '/down' }, upstream: 'http://127.0.0.1:1', allow: [{ cn: 'alice' }] },
      { name: 'slow', match: { pathPrefix: '/slow' }, upstream: BACKEND, allow: [{ cn: 'alice' }], timeouts: { upstream: '300ms' } },
    ],
  });
});

afterAll(async () => {
  await h?.close();
});

const creds = (c: TestCert, chain = true) => ({ cert: chain ? c.chainPem : c.certPem, key: c.keyPem });

describe('authentication and policy', () => {
  it('forwards an allowed identity to the backend with its verified identity headers', async () => {
    const r = await h.request('/orders/42?x=1', { client: creds(alice) });
    expect(r.status).toBe(200);
    expect(r.json.url).toBe('/orders/42?x=1');
    const headers = r.json.headers;
    expect(headers['x-client-cert-cn']).toBe('alice');
    expect(headers['x-client-cert-subject']).toBe('CN=alice,OU=payments,O=Acme');
    expect(headers['x-client-cert-san-uri']).toBe('spiffe://acme.test/ns/prod/sa/alice');
    expect(headers['x-client-cert-fingerprint']).toBe(alice.fingerprint256);
    expect(headers['x-client-cert-serial']).toBe(alice.serial);
    const xfcc = parseXfcc(headers['x-forwarded-client-cert']);
    expect(xfcc).toHaveLength(1);
    expect(Object.fromEntries(xfcc[0]!.map((p) => [p.key, p.value]))).toMatchObject({
      Hash: alice.fingerprint256,
      Subject: 'CN=alice,OU=payments,O=Acme',
      URI: 'spiffe://acme.test/ns/prod/sa/alice',
      DNS: 'alice.acme.test',
    });
    expect(headers['x-forwarded-proto']).toBe('https');
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('refuses a trusted identity that no allow entry matches with 403 identity_not_allowed', async () => {
    const before = h.backend.received.length;
    const r = await h.request('/orders/1', { client: creds(mallory) });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('identity_not_allowed');
    expect(r.json.error.requestId).toBe(r.headers['x-request-id']);
    expect(h.backend.received.length).toBe(before);
  });

  it('lets deny win over allow', async () => {
    expect((await h.request('/support', { client: creds(bob) })).json.error.code).toBe('identity_not_allowed');
    expect((await h.request('/support', { client: creds(alice) })).status).toBe(200);
  });

  it('answers 404 route_not_found when no route matches, and never matches /orders-admin to /orders', async () => {
    const r = await h.request('/orders-admin', { client: creds(alice) });
    expect(r.status).toBe(404);
    expect(r.json.error.code).toBe('route_not_found');
  });

  it('accepts a client that does not send its intermediate (the bundle has it)', async () => {
    expect((await h.request('/orders/1', { client: creds(alice, false) })).status).toBe(200);
  });

  it('refuses a client without a certificate with 401 certificate_required', async () => {
    const r = await h.request('/orders/1');
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe('certificate_required');
    expect(r.headers['connection']).toBe('close');
  });

  it('refuses a certificate from an untrusted CA with the same subject as a trusted one', async () => {
    const evil = await pki.untrustedRoot({ sameNames: true });
    const fake = await evil.client({ subject: 'CN=alice, OU=payments, O=Acme', san: { uri: ['spiffe://acme.test/ns/prod/sa/alice'] } });
    const before = h.backend.received.length;
    const r = await h.request('/orders/1', { client: creds(fake) });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_untrusted');
    expect(h.backend.received.length).toBe(before);
  });

  it('refuses expired and not-yet-valid certificates with their own codes', async () => {
    const expired = await pki.client({ cn: 'alice', notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    const future = await pki.client({ cn: 'alice', notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) });
    expect((await h.request('/orders/1', { client: creds(expired) })).json.error.code).toBe('certificate_expired');
    expect((await h.request('/orders/1', { client: creds(future) })).json.error.code).toBe('certificate_not_yet_valid');
  });
});

describe('identity headers cannot be spoofed', () => {
  it('drops every client-sent identity header, in any case and count, and via underscores', async () => {
    const r = await h.request('/orders/1', {
      client: creds(alice),
      headers: {
        'X-Forwarded-Client-Cert': 'Hash=evil;Subject="CN=root"',
        'x-client-cert-cn': ['root', 'admin'],
        'X-CLIENT-CERT-EXTRA': 'evil',
        x_client_cert_subject: 'CN=root',
        'x_forwarded_client_cert': 'Hash=evil',
        'X-Forwarded-For': '10.0.0.1',
        'x-forwarded-host': 'evil.example',
      },
    });
    expect(r.status).toBe(200);
    const raw: string[] = r.json.rawHeaders;
    const names = raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.filter((n) => n === 'x-forwarded-client-cert')).toHaveLength(1);
    expect(names.filter((n) => n === 'x-client-cert-cn')).toHaveLength(1);
    expect(names).not.toContain('x-client-cert-extra');
    expect(names.some((n) => n.includes('_'))).toBe(false);
    expect(r.json.headers['x-client-cert-cn']).toBe('alice');
    expect(r.json.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(r.json.headers['x-forwarded-host']).not.toBe('evil.example');
  });

  it('still sends our identity headers when the client names them in Connection', async () => {
    const s = await rawTls(h.port, pki.rootPem, creds(alice));
    const out = await exchange(
      s,
      'GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close, x-client-cert-cn, x-forwarded-client-cert, x-forwarded-for\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1.1 200/);
    const body = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4));
    expect(body.headers['x-client-cert-cn']).toBe('alice');
    expect(body.headers['x-forwarded-client-cert']).toContain(alice.fingerprint256);
    expect(body.headers['x-forwarded-for']).toBe('127.0.0.1');
  });
});

describe('request hygiene', () => {
  const tricks = ['/orders/../support', '/orders/./1', '/orders/%2e%2e/support', '/orders%2f1', '/orders\\1', '//orders/1', '/orders/%00', '/orders/%5c'];
  it.each(tricks)('refuses %j with 400 bad_path and forwards nothing', async (path) => {
    const before = h.backend.received.length;
    const s = await rawTls(h.port, pki.rootPem, creds(alice));
    const out = await exchange(s, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1.1 400/);
    expect(out).toContain('"code":"bad_path"');
    expect(h.backend.received.length).toBe(before);
  });

  it('refuses two Host headers with 400', async () => {
    const s = await rawTls(h.port, pki.rootPem, creds(alice));
    const out = await exchange(s, 'GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nHost: evil\r\nConnection: close\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1.1 400/);
    expect(out).toContain('"code":"bad_request"');
  });

  it('refuses Content-Length together with Transfer-Encoding with a JSON 400', async () => {
    const before = h.backend.received.length;
    const s = await rawTls(h.port, pki.rootPem, creds(alice));
    const out = await exchange(
      s,
      'POST /orders/1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /support HTTP/1.1\r\nHost: localhost\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1.1 400/);
    expect(out).toContain('"code":"bad_request"');
    expect(h.backend.received.length).toBe(before);
  });

  it('answers oversized headers with 431 headers_too_large', async () => {
    const s = await rawTls(h.port, pki.rootPem, creds(alice));
    const out = await exchange(s, `GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1.1 431/);
    expect(out).toContain('"code":"headers_too_large"');
  });

  it('answers 421 misdirected_request when Host differs from SNI on a host-bound route', async () => {
    const r = await h.request('/hosted', { client: creds(alice), headers: { host: 'localhost' }, servername: 'localhost' });
    expect(r.status).toBe(200);
    const s = await rawTls(h.port, pki.rootPem, creds(alice), 'localhost');
    const out = await exchange(s, 'GET /hosted HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n');
    // 'other.test' matches no host-bound route: it falls through to no route at all.
    expect(out).toMatch(/^HTTP\/1.1 404/);
  });

  it('refuses a body larger than the route limit with 413 payload_too_large', async () => {
    const r = await h.request('/small', { client: creds(alice), method: 'POST', body: 'x'.repeat(100) });
    expect(r.status).toBe(413);
    expect(r.json.error.code).toBe('payload_too_large');
  });
});

describe('upstream failures', () => {
  it('answers 502 upstream_unavailable when the upstream refuses connections', async () => {
    const r = await h.request('/down', { client: creds(alice) });
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('upstream_unavailable');
    // The upstream's address is for the log, not for clients.
    expect(r.text).not.toContain('127.0.0.1');
  });
  it('answers 504 upstream_timeout when the upstream is too slow', async () => {
    const r = await h.request('/slow?ms=2000', { client: creds(alice) });
    expect(r.status).toBe(504);
    expect(r.json.error.code).toBe('upstream_timeout');
    expect(r.text).not.toContain('127.0.0.1');
  });
});

describe('several requests on one connection', () => {
  /** The pipelined responses in `out`, each read by its Content-Length. */
  function responses(out: string): { status: number; body: any }[] {
    const all: { status: number; body: any }[] = [];
    let at = 0;
    while (at < out.length) {
      const end = out.indexOf('\r\n\r\n', at);
      if (end < 0) break;
      const head = out.slice(at, end);
      const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)![1]);
      all.push({ status: Number(head.slice(9, 12)), body: JSON.parse(out.slice(end + 4, end + 4 + len)) });
      at = end + 4 + len;
    }
    return all;
  }

  it("filters every request's headers anew when they change, and gives each its own request id", async () => {
    const s = await rawTls(h.port, pki.rootPem, creds(alice));
    const same = 'GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nX-Trace: t1\r\n\r\n';
    const out = await exchange(
      s,
      same +
        same +
        // Spoofed identity and forwarding headers, and a header named in Connection, on the third.
        'GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nX-Trace: t1\r\nX-Client-Cert-CN: mallory\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: x-trace\r\n\r\n' +
        'GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nX-Trace: t1\r\nConnection: close\r\n\r\n',
    );
    const r = responses(out);
    expect(r.map((x) => x.status)).toEqual([200, 200, 200, 200]);
    const hs = r.map((x) => x.body.headers);
    for (const x of hs) {
      expect(x['x-client-cert-cn']).toBe('alice');
      expect(x['x-forwarded-for']).toBe('127.0.0.1');
      expect(x['x-forwarded-client-cert']).toContain(alice.fingerprint256);
    }
    expect(hs.map((x) => x['x-trace'])).toEqual(['t1', 't1', undefined, 't1']);
    // The first two are the same request: the same headers but for the request id.
    const { 'x-request-id': id0, ...rest0 } = hs[0];
    const { 'x-request-id': id1, ...rest1 } = hs[1];
    expect(rest1).toEqual(rest0);
    expect(new Set(hs.map((x) => x['x-request-id'])).size).toBe(4);
    expect(id0).not.toBe(id1);
  });
});
