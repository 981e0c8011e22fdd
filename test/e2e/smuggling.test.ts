// Request framing the parser and an upstream could read differently is refused with 400 and
// never forwarded; well-formed chunked bodies go through, re-framed by certgate.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, exchange, rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ cn: 'alice' });
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', upstream: BACKEND, allow: [{ cn: 'alice' }] }],
  });
});

afterAll(async () => {
  await h?.close();
});

const send = async (req: string) => {
  const before = h.backend.received.length;
  const s = await rawTls(h.port, pki.rootPem, { cert: alice.chainPem, key: alice.keyPem });
  const out = await exchange(s, req, 3000);
  return { out, forwarded: h.backend.received.slice(before) };
};

describe('request smuggling', () => {
  const refused: [string, string][] = [
    ['two Content-Length headers', 'POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello'],
    ['a Content-Length list', 'POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello'],
    ['Content-Length with Transfer-Encoding', 'POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ['Transfer-Encoding chunked, identity', 'POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ['an unknown Transfer-Encoding', 'POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ['Transfer-Encoding twice', 'POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ['an obs-folded header', 'GET /a HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n'],
    ['a space before the colon', 'GET /a HTTP/1.1\r\nHost : localhost\r\nConnection: close\r\n\r\n'],
  ];
  it.each(refused)('refuses %s with 400 bad_request and forwards nothing', async (_name, req) => {
    const { out, forwarded } = await send(req);
    expect(out).toMatch(/^HTTP\/1.1 400/);
    expect(out).toContain('"code":"bad_request"');
    expect(forwarded).toHaveLength(0);
  });

  it('forwards a well-formed chunked body, re-framed', async () => {
    const { out, forwarded } = await send('POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(forwarded).toHaveLength(1);
    expect(forwarded[0]!.bodyBytes).toBe(5);
  });
});
