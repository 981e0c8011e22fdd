// The upstream head's header lines (rendered once per connection while a client repeats its
// headers) say exactly what upstreamHeaders' list says, and the memo renders anew on any change.
import { describe, expect, it } from 'vitest';
import { IdentityHeaderCache, upstreamHeaders, upstreamLines, UpstreamLinesMemo, type HeaderSettings } from '../../src/proxy/headers.js';
import { identityFromDer } from '../../src/identity/identity.js';
import { createTestPki } from '../helpers/pki.js';

const base: HeaderSettings = { xfcc: true, prefix: 'x-client-cert-', forwarded: true };

/** upstreamHeaders' list as header lines, with the request id where upstreamHeaders put it. */
function asLines(list: string[]): string {
  let t = '';
  for (let i = 0; i < list.length; i += 2) t += `${list[i]}: ${list[i + 1]}\r\n`;
  return t;
}

function render(l: ReturnType<typeof upstreamLines>, requestId: string): string {
  return l.client + (l.hasRequestId ? '' : `x-request-id: ${requestId}\r\n`) + l.own;
}

describe('upstream header lines', async () => {
  const pki = await createTestPki();
  const alice = await pki.client({ subject: 'CN=alice, O=Acme', san: { uri: ['spiffe://acme.test/a'] } });
  const id = identityFromDer(new Uint8Array(alice.cert.rawData));
  const cache = new IdentityHeaderCache(base);

  const cases: [string, string[]][] = [
    ['plain', ['Host', 'localhost', 'User-Agent', 'ua', 'Accept', '*/*']],
    ['no host', ['Accept', '*/*']],
    ['the client sends x-request-id', ['Host', 'h', 'X-Request-Id', 'mine']],
    ['spoofed identity and forwarding headers', ['Host', 'h', 'X-Client-Cert-CN', 'mallory', 'x-forwarded-client-cert', 'Hash=1', 'X-Forwarded-For', '6.6.6.6', 'x_client_cert_cn', 'm']],
    ['a header named in Connection', ['Host', 'h', 'Connection', 'keep-alive, X-Hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=5', 'TE', 'trailers']],
  ];

  it.each(cases)('says what upstreamHeaders says: %s', (_name, raw) => {
    const ih = cache.get(id);
    const list = upstreamHeaders(raw, ih, base, '10.0.0.1', 'rid');
    const l = upstreamLines(raw, ih, base, '10.0.0.1');
    expect(render(l, 'rid')).toBe(asLines(list));
    expect(l.hasHost).toBe(list.some((n, i) => i % 2 === 0 && n.toLowerCase() === 'host'));
  });

  it('is reused only while the headers, identity, settings and address are the same', () => {
    const memo = new UpstreamLinesMemo();
    const ih = cache.get(id);
    const raw = ['Host', 'h', 'X-Trace', 't1'];
    const first = memo.get(raw, ih, base, '10.0.0.1');
    // The same headers in a new array (each request has its own): the same lines.
    expect(memo.get([...raw], ih, base, '10.0.0.1')).toBe(first);
    // A spoofed header on the next request: rendered anew, and dropped.
    const spoofed = memo.get([...raw, 'X-Client-Cert-CN', 'mallory'], ih, base, '10.0.0.1');
    expect(spoofed).not.toBe(first);
    expect(spoofed.client).not.toContain('mallory');
    expect(memo.get(raw, ih, base, '10.0.0.1')).not.toBe(spoofed);
    // Another value, identity, settings object or client address: rendered anew.
    const again = memo.get(raw, ih, base, '10.0.0.1');
    expect(memo.get(['Host', 'h', 'X-Trace', 't2'], ih, base, '10.0.0.1').client).toContain('X-Trace: t2');
    memo.get(raw, ih, base, '10.0.0.1');
    expect(memo.get(raw, cache.certless(undefined), base, '10.0.0.1').own).not.toContain('x-client-cert-cn');
    expect(memo.get(raw, ih, { ...base, forwarded: false }, '10.0.0.1').own).not.toContain('x-forwarded-for');
    expect(memo.get(raw, ih, base, '10.0.0.2').own).toContain('x-forwarded-for: 10.0.0.2');
    expect(again.own).toContain('x-forwarded-for: 10.0.0.1');
    // The key is a copy: a list changed after it was used is not taken for the old one.
    const mutable = ['Host', 'h', 'X-Trace', 't1'];
    memo.get(mutable, ih, base, '10.0.0.1');
    mutable[3] = 't9';
    expect(memo.get(mutable, ih, base, '10.0.0.1').client).toContain('X-Trace: t9');
  });
});
