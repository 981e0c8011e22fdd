import { describe, expect, it } from 'vitest';
import { formatConfigIssue } from '../../src/config/issues.js';
import { ErrorCodes, errorBody, Refusal, type ErrorCode } from '../../src/errors.js';
import { headerSafe, upstreamHeaders } from '../../src/proxy/headers.js';

const settings = { xfcc: true, prefix: 'x-client-cert-', forwarded: true };
const ours = ['x-forwarded-client-cert', 'Hash=abc', 'x-client-cert-cn', 'alice'];

function names(out: string[]): string[] {
  return out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

describe('upstreamHeaders', () => {
  const dropped: [string, string][] = [
    ['X-Forwarded-Client-Cert', 'Hash=evil'],
    ['x-client-cert-cn', 'root'],
    ['X-CLIENT-CERT-ANYTHING', 'x'],
    ['x_client_cert_cn', 'root'],
    ['X_Forwarded_Client_Cert', 'x'],
    ['x-forwarded-for', '10.0.0.1'],
    ['X-Forwarded-Proto', 'http'],
    ['forwarded', 'for=10.0.0.1'],
    ['Proxy-Authorization', 'Basic x'],
    ['Keep-Alive', 'timeout=5'],
    ['TE', 'trailers'],
    ['Upgrade', 'h2c'],
    ['Expect', '100-continue'],
  ];
  it.each(dropped)('drops client-sent %s', (name, value) => {
    const out = upstreamHeaders(['Host', 'a', name, value], ours, settings, '127.0.0.1', 'rid');
    expect(out.filter((v) => v === value)).toHaveLength(0);
  });

  it('drops headers named in Connection but still sets ours', () => {
    const out = upstreamHeaders(['Host', 'a', 'Connection', 'x-secret, x-client-cert-cn, keep-alive', 'X-Secret', 's'], ours, settings, '1.2.3.4', 'rid');
    expect(names(out)).not.toContain('x-secret');
    expect(names(out)).not.toContain('connection');
    expect(out).toContain('alice');
    expect(names(out).filter((n) => n === 'x-client-cert-cn')).toHaveLength(1);
  });

  it('keeps ordinary headers in order, adds forwarding headers and a request id', () => {
    const out = upstreamHeaders(['Host', 'api', 'Accept', 'a', 'Accept', 'b', 'Content-Length', '3'], ours, settings, '1.2.3.4', 'rid-1');
    expect(out.slice(0, 8)).toEqual(['Host', 'api', 'Accept', 'a', 'Accept', 'b', 'Content-Length', '3']);
    expect(out).toEqual(expect.arrayContaining(['x-forwarded-for', '1.2.3.4', 'x-forwarded-proto', 'https', 'x-forwarded-host', 'api', 'x-request-id', 'rid-1']));
  });

  it('keeps the client request id when it sent one', () => {
    const out = upstreamHeaders(['Host', 'api', 'X-Request-Id', 'theirs'], ours, settings, '1.2.3.4', 'ours');
    expect(out).toContain('theirs');
    expect(out).not.toContain('ours');
  });

  it('sets no forwarding headers when headers.forwarded is false, and still strips the client ones', () => {
    const out = upstreamHeaders(['Host', 'api', 'X-Forwarded-For', '9.9.9.9'], ours, { ...settings, forwarded: false }, '1.2.3.4', 'r');
    expect(names(out)).not.toContain('x-forwarded-for');
  });
});

describe('headerSafe', () => {
  it('escapes non-ASCII and control characters as UTF-8 \\xx', () => {
    expect(headerSafe('CN=José')).toBe('CN=Jos\\c3\\a9');
    expect(headerSafe('a\r\nb')).toBe('a\\0d\\0ab');
    expect(headerSafe('plain')).toBe('plain');
  });
});

describe('the error table', () => {
  const entries = Object.entries(ErrorCodes) as [ErrorCode, { status: number; message: string }][];
  it.each(entries)('%s renders the JSON body with its status', (code, { status, message }) => {
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(600);
    expect(JSON.parse(errorBody(code, 'rid'))).toEqual({ error: { code, message, requestId: 'rid' } });
    const r = new Refusal(code);
    expect(r.status).toBe(status);
    expect(r.code).toBe(code);
  });
  it('formats config issues as file:line:col path: message', () => {
    expect(formatConfigIssue({ file: '/etc/x.yaml', line: 3, col: 7, path: 'routes[0].cnn', message: 'unknown key' })).toBe('/etc/x.yaml:3:7 routes[0].cnn: unknown key');
  });
});
