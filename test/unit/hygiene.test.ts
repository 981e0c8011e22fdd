import { describe, expect, it } from 'vitest';
import { canonicalPath, hostOnly } from '../../src/proxy/hygiene.js';

describe('canonicalPath', () => {
  const refused = [
    '/a/../b', '/a/./b', '/..', '/.', '/a/..', '/a/.', '//a', '/a//b', '/a\\b', '/%2e%2e/x', '/%2E/x',
    '/a%2fb', '/a%2Fb', '/a%5cb', '/a%00b', '/a%zz', '/a%2', 'http://evil/x', '*', 'a/b', '/a#frag', '/a\u0000b', '/a b',
    '/x?y#z',
  ];
  it.each(refused)('refuses %j', (p) => expect(canonicalPath(p)).toBeUndefined());
  const accepted: [string, string][] = [
    ['/', '/'],
    ['/orders', '/orders'],
    ['/orders/1?x=1', '/orders/1'],
    ['/.well-known/est', '/.well-known/est'],
    ['/a..b/c.d', '/a..b/c.d'],
    ['/a%20b', '/a%20b'],
    ['/q?next=/../x&p=%2e%2f', '/q'],
  ];
  it.each(accepted)('accepts %j', (p, path) => expect(canonicalPath(p)).toBe(path));
});

describe('hostOnly', () => {
  it.each([
    ['API.example.com:8443', 'api.example.com'],
    ['localhost', 'localhost'],
    ['[::1]:8443', '::1'],
    ['127.0.0.1', '127.0.0.1'],
  ])('%s -> %s', (h, want) => expect(hostOnly(h)).toBe(want));
  it.each(['a b', 'x:y', '', '[::1', 'host:99999999'])('refuses %j', (h) => expect(hostOnly(h)).toBeUndefined());
});
