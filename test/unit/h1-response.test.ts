// The upstream response parser on its own: every valid response gives the same head and body
// however the bytes are split across reads, and every malformed one is an error (the connection
// is then never reused). The proxy-level behaviour is in test/e2e/upstream-wire.test.ts.
import { describe, expect, it } from 'vitest';
import { ResponseError, ResponseParser } from '../../src/proxy/h1-response.js';

interface Parsed {
  status: number;
  reason: string;
  headers: string[];
  body: string;
  done: boolean;
  keepAlive: boolean;
  trailing: boolean;
}

function parse(pieces: Buffer[], opts: { noBody?: boolean; end?: boolean; max?: number } = {}): Parsed {
  const out: Parsed = { status: 0, reason: '', headers: [], body: '', done: false, keepAlive: false, trailing: false };
  const p = new ResponseParser(
    {
      onResponseHead(status, reason, headers) {
        expect(out.status).toBe(0);
        out.status = status;
        out.reason = reason;
        out.headers = headers;
      },
      onResponseBody(chunk) {
        out.body += chunk.toString('latin1');
      },
    },
    opts.max ?? 16384,
  );
  p.expect(opts.noBody === true);
  for (const b of pieces) p.execute(b);
  if (opts.end === true) p.end();
  out.done = p.done;
  out.keepAlive = p.keepAlive;
  out.trailing = p.trailing;
  return out;
}

/** The response split at every byte offset into two reads, and byte by byte. */
function everySplit(raw: string, opts: { noBody?: boolean; end?: boolean } = {}): Parsed[] {
  const b = Buffer.from(raw, 'latin1');
  const all = [parse([b], opts)];
  for (let i = 1; i < b.length; i++) all.push(parse([b.subarray(0, i), b.subarray(i)], opts));
  all.push(parse([...b].map((x) => Buffer.from([x])), opts));
  return all;
}

const VALID: [string, string, Partial<Parsed>, { noBody?: boolean; end?: boolean }?][] = [
  ['a Content-Length body', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello', { status: 200, reason: 'OK', body: 'hello', keepAlive: true, headers: ['Content-Type', 'text/plain', 'Content-Length', '5'] }],
  ['a chunked body with extensions and trailers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n', { body: 'hello world', keepAlive: true, headers: [] }],
  ['an empty chunked body', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', { body: '', keepAlive: true }],
  ['a close-delimited body', 'HTTP/1.1 200 OK\r\nX: y\r\n\r\nuntil the end', { body: 'until the end', keepAlive: false }, { end: true }],
  ['a 204 with a Content-Length', 'HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n', { status: 204, body: '', keepAlive: true }],
  ['a 304', 'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n', { status: 304, body: '' }],
  ['a HEAD answer with a length and no body', 'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', { body: '', keepAlive: true }, { noBody: true }],
  ['1xx answers before the final one', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok', { status: 201, body: 'ok' }],
  ['Connection: close', 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok', { keepAlive: false, headers: ['Content-Length', '2'] }],
  ['HTTP/1.0', 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok', { keepAlive: false }],
  ['hop-by-hop headers and those named in Connection', 'HTTP/1.1 200 OK\r\nConnection: x-hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nUpgrade: h2c\r\nTrailer: x\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n', { headers: ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Length', '0'] }],
  ['no reason phrase', 'HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n', { status: 200, reason: '' }],
  ['equal duplicate lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok', { body: 'ok' }],
  ['NBSP kept: only SP and HTAB are optional whitespace', 'HTTP/1.1 200 OK\r\nX-N: \t\xa0v\xa0 \r\nContent-Length: 0\r\n\r\n', { headers: ['X-N', '\xa0v\xa0', 'Content-Length', '0'] }],
  ['hop-by-hop and framing names in any case', 'HTTP/1.1 200 OK\r\nKEEP-ALIVE: timeout=5\r\nPROXY-CONNECTION: x\r\nTe: t\r\ntRaIlEr: x\r\nUPGRADE: h2c\r\nTRANSFER-ENCODING: CHUNKED\r\nX-Kept: 1\r\n\r\n2\r\nok\r\n0\r\n\r\n', { body: 'ok', headers: ['X-Kept', '1'] }],
  ['a value with obs-text and a tab', 'HTTP/1.1 200 OK\r\nX-V: a\tb\xe9\r\nContent-Length: 0\r\n\r\n', { headers: ['X-V', 'a\tb\xe9', 'Content-Length', '0'] }],
];

describe('the upstream response parser', () => {
  it.each(VALID)('reads %s the same at every split', (_name, raw, want, opts) => {
    for (const got of everySplit(raw, opts)) {
      expect(got).toMatchObject({ ...want, done: true, trailing: false });
    }
  });

  const MALFORMED: [string, string][] = [
    ['a status line that is not HTTP/1.x', 'FOO 200 OK\r\n\r\n'],
    ['a status code with letters', 'HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n'],
    ['a status code under 100', 'HTTP/1.1 099 Low\r\n\r\n'],
    ['HTTP/2.0 on the wire', 'HTTP/2.0 200 OK\r\n\r\n'],
    ['no space after the code', 'HTTP/1.1 200OK\r\n\r\n'],
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['differing Content-Length values', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'],
    ['a Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello'],
    ['an empty Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n'],
    ['a Content-Length of 16 digits', 'HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n'],
    ['a negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'],
    ['chunked not last', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'],
    ['another transfer coding before chunked (the client could not be told)', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
    ['a transfer coding without chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz'],
    ['Transfer-Encoding twice', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['an invalid chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size too large', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n'],
    ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size line ending in a bare LF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 0\r\n\r\n'],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello'],
    ['an obs-folded header', 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n'],
    ['a NUL in a value', 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n'],
    ['a bare CR in a value', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n'],
    ['a bare LF between header lines', 'HTTP/1.1 200 OK\r\nX-A: a\nX-B: b\r\nContent-Length: 0\r\n\r\n'],
    ['101 to a plain request', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'],
    ['a DEL in a value', 'HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 0\r\n\r\n'],
    ['a control character in the reason phrase', 'HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n'],
    ['an empty header name', 'HTTP/1.1 200 OK\r\n: v\r\nContent-Length: 0\r\n\r\n'],
    ['a separator in a header name', 'HTTP/1.1 200 OK\r\nX@Y: 1\r\nContent-Length: 0\r\n\r\n'],
    ['a bare CR ending the last header line', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\r\n\r\n'],
    ['a control character in a 1xx head', 'HTTP/1.1 103 Early Hints\r\nLink: \x00\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
  ];

  it.each(MALFORMED)('refuses %s at every split', (_name, raw) => {
    const b = Buffer.from(raw, 'latin1');
    for (let i = 1; i <= b.length; i++) {
      expect(() => parse(i === b.length ? [b] : [b.subarray(0, i), b.subarray(i)]), `split at ${i}`).toThrow(ResponseError);
    }
  });

  it('refuses a head larger than the limit, also when it never ends', () => {
    const big = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(2000)}\r\nContent-Length: 0\r\n\r\n`;
    expect(() => parse([Buffer.from(big)], { max: 1024 })).toThrow(/larger than 1024/);
    const endless = Buffer.from(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(600)}`);
    expect(() => parse([endless, endless], { max: 1024 })).toThrow(/larger than 1024/);
    expect(parse([Buffer.from(big)], { max: 4096 }).status).toBe(200);
  });

  it('flags bytes after the end of a response (a smuggled second response)', () => {
    const got = parse([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected')]);
    expect(got).toMatchObject({ body: 'ok', done: true, trailing: true });
    const later = parse([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), Buffer.from('HTTP/1.1 200 OK\r\n')]);
    expect(later).toMatchObject({ body: 'ok', trailing: true });
  });

  it('an early close is an error, except for a close-delimited body', () => {
    expect(() => parse([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel')], { end: true })).toThrow(/before the response was complete/);
    expect(() => parse([], { end: true })).toThrow(/before a response/);
    expect(() => parse([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel')], { end: true })).toThrow(ResponseError);
  });

  it('reads the Keep-Alive timeout hint', () => {
    const p = new ResponseParser({ onResponseHead() {}, onResponseBody() {} }, 16384);
    p.expect(false);
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n'));
    expect(p.keepAliveHint).toBe(5000);
    expect(p.done).toBe(true);
  });
});
