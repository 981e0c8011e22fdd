// How certgate behaves toward plain http:// upstreams on the wire, pinned with a raw TCP upstream
// that reads the request bytes and writes hand-crafted HTTP/1.1 responses: response framing
// (Content-Length, chunked, close-delimited, bodiless answers, 1xx), keep-alive reuse, malformed
// or desync-shaped responses (502, the connection never reused), hop-by-hop headers, the request
// as the upstream receives it, timeouts and cancellation. Written against undici's Pool first, so
// that certgate's own HTTP/1.1 client (src/proxy/h1-pool.ts) was held to the same behaviour; the
// four tests that note undici's answer are where the own client does better.
// Each test gets a lane of its own (a route and a raw upstream nobody else uses), so connection
// counts start from zero and no keep-alive connection leaks from one test into the next.

import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchange, rawTls, startHarness, type Harness, type Reply, type RequestOpts } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor, within } from '../helpers/wait.js';

/** A request as the raw upstream read it off the wire. */
interface UpRequest {
  /** Which upstream connection (1, 2, ... in order of accept) carried it. */
  conn: number;
  method: string;
  target: string;
  version: string;
  /** Header lines in order, names lowercased, values trimmed. */
  headers: [string, string][];
  body: Buffer;
  chunked: boolean;
}

/** Raw bytes to write, or a function that answers (or doesn't) on the socket. */
type Responder = string | ((req: UpRequest, socket: Socket) => void);

const values = (r: UpRequest, name: string) => r.headers.filter(([n]) => n === name).map(([, v]) => v);

/** A Content-Length response with `extra` header lines (each ending in \r\n). */
const resp = (body: string, extra = '', status = '200 OK') => `HTTP/1.1 ${status}\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

/** What a request gets when no answer is queued: its own method and target, so answers can't be confused. */
const own = (r: Pick<UpRequest, 'method' | 'target'>) => `${r.method} ${r.target}`;

/** Parses one request at the start of `buf` (Content-Length or chunked body); undefined while incomplete. */
function parseRequest(buf: Buffer): { req: Omit<UpRequest, 'conn'>; used: number } | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [line = '', ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
  const [method = '', target = '', version = ''] = line.split(' ');
  const headers = lines.map((l): [string, string] => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]);
  const req = { method, target, version, headers, body: Buffer.alloc(0), chunked: false };
  let pos = end + 4;
  if (/chunked/i.test(values(req as UpRequest, 'transfer-encoding').join())) {
    req.chunked = true;
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', pos);
      if (eol < 0) return undefined;
      const size = parseInt(buf.subarray(pos, eol).toString('latin1'), 16); // stops at a ;extension
      if (size === 0) {
        pos = eol + 2;
        for (;;) {
          const e = buf.indexOf('\r\n', pos); // trailer lines, up to the empty one
          if (e < 0) return undefined;
          const empty = e === pos;
          pos = e + 2;
          if (empty) break;
        }
        break;
      }
      if (buf.length < eol + 2 + size + 2) return undefined;
      parts.push(buf.subarray(eol + 2, eol + 2 + size));
      pos = eol + 2 + size + 2;
    }
    req.body = Buffer.concat(parts);
  } else {
    const len = Number(values(req as UpRequest, 'content-length')[0] ?? 0);
    if (buf.length < pos + len) return undefined;
    req.body = Buffer.from(buf.subarray(pos, pos + len));
    pos += len;
  }
  return { req, used: pos };
}

/** A raw HTTP/1.1 upstream: answers requests from a queue, records them and its connections. */
class RawUpstream {
  readonly #server: Server = createServer((s) => this.#accept(s));
  readonly #queue: Responder[] = [];
  readonly #sockets = new Map<number, Socket>();
  port = 0;
  connections = 0;
  readonly closed = new Set<number>();
  readonly requests: UpRequest[] = [];
  /** Once: called on the first complete request head, before its body; it owns the socket from then on. */
  early: ((s: Socket) => void) | undefined = undefined;

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  /** Queues answers, one per request in arrival order; with the queue empty a request gets own(). */
  answer(...rs: Responder[]): this {
    this.#queue.push(...rs);
    return this;
  }
  socket(conn: number): Socket {
    return this.#sockets.get(conn)!;
  }
  #accept(s: Socket): void {
    const id = ++this.connections;
    this.#sockets.set(id, s);
    s.on('error', () => {});
    s.on('close', () => this.closed.add(id));
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const early = this.early;
      if (early !== undefined && buf.includes('\r\n\r\n')) {
        this.early = undefined;
        s.off('data', onData);
        return early(s);
      }
      for (let p = parseRequest(buf); p !== undefined && !s.destroyed; p = parseRequest(buf)) {
        buf = buf.subarray(p.used);
        const req = { ...p.req, conn: id };
        this.requests.push(req);
        const next = this.#queue.shift() ?? resp(own(req));
        if (typeof next === 'function') next(req, s);
        else s.write(next, 'latin1');
      }
    };
    s.on('data', onData);
  }
  async close(): Promise<void> {
    for (const s of this.#sockets.values()) s.destroy();
    await new Promise((r) => this.#server.close(r));
  }
}

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let refusedPort: number;
const LANES = 48;
const SHORT = 4; // lanes with a 300 ms upstream timeout
const lanes: RawUpstream[] = [];
const used = { normal: 0, short: 0 };

/** A route and raw upstream of the test's own: `p` is its path prefix. */
function lane(short = false): { up: RawUpstream; p: string } {
  const i = short ? used.short++ : SHORT + used.normal++;
  if (short ? i >= SHORT : i >= LANES) throw new Error('out of lanes: raise LANES or SHORT');
  return { up: lanes[i]!, p: `/l${i}` };
}

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice, OU=payments' });
  for (let i = 0; i < LANES; i++) lanes.push(await new RawUpstream().listen());
  const closedPort = await new RawUpstream().listen();
  refusedPort = closedPort.port;
  await closedPort.close();
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [
      { name: 'refused', match: { pathPrefix: '/refused' }, upstream: `http://127.0.0.1:${refusedPort}`, allow: [{ cn: 'alice' }] },
      ...lanes.map((u, i) => ({
        name: `l${i}`,
        match: { pathPrefix: `/l${i}` },
        upstream: u.url,
        allow: [{ cn: 'alice' }],
        ...(i < SHORT ? { timeouts: { upstream: '300ms' } } : {}),
      })),
    ],
  });
});

afterAll(async () => {
  await h?.close();
  await Promise.all(lanes.map((u) => u.close()));
});

const creds = () => ({ cert: alice.chainPem, key: alice.keyPem });
/** One request on a fresh mTLS connection (undici client). */
const get = (path: string, o: RequestOpts = {}): Promise<Reply> => within(h.request(path, { client: creds(), ...o }), 10_000, `the answer to ${path}`);
/** One raw request (should say Connection: close); everything certgate sent until it closed. */
const raw = async (request: string, ms = 5000): Promise<string> => exchange(await rawTls(h.port, pki.rootPem, creds()), request, ms);
const GET = (path: string, method = 'GET') => `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;

/** A next request gets its own answer from the upstream, on connection `conn` when given. */
async function nextIsOwn(up: RawUpstream, p: string, conn: number | undefined): Promise<void> {
  const r = await get(`${p}/next`);
  expect(r.status).toBe(200);
  expect(r.text).toBe(`GET ${p}/next`);
  expect(up.requests.at(-1)!.target).toBe(`${p}/next`);
  if (conn !== undefined) expect(up.requests.at(-1)!.conn).toBe(conn);
}

const expect502 = (out: string) => {
  expect(out).toMatch(/^HTTP\/1.1 502 /);
  expect(out).toContain('"code":"upstream_unavailable"');
};

describe('response framing and keep-alive', () => {
  it('passes a Content-Length body intact and reuses one upstream connection for the next request', async () => {
    const { up, p } = lane();
    const body = 'x'.repeat(100_000) + 'END';
    up.answer(resp(body));
    const r = await get(`${p}/a`);
    expect(r.status).toBe(200);
    expect(r.text).toBe(body);
    await nextIsOwn(up, p, 1);
    expect(up.connections).toBe(1);
  });

  it('de-chunks a chunked body with chunk extensions and a trailer section, and reuses the connection', async () => {
    const { up, p } = lane();
    up.answer('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n7;a="b;c"\r\n, world\r\n0\r\nX-Sum: 42\r\n\r\n');
    const r = await get(`${p}/a`);
    expect(r.status).toBe(200);
    expect(r.text).toBe('hello, world');
    await nextIsOwn(up, p, 1);
    expect(up.connections).toBe(1);
  });

  it('reads a close-delimited body to the end, and the next request goes on a new connection', async () => {
    const { up, p } = lane();
    const body = 'y'.repeat(200_000) + 'END';
    up.answer((_r, s) => s.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n${body}`));
    const r = await get(`${p}/a`);
    expect(r.status).toBe(200);
    expect(r.text).toBe(body);
    await nextIsOwn(up, p, 2);
  });

  it('does not reuse a connection after Connection: close or an HTTP/1.0 answer, even when the upstream keeps it open', async () => {
    const { up, p } = lane();
    up.answer(resp('one', 'Connection: close\r\n'), 'HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\ntwo');
    expect((await get(`${p}/a`)).text).toBe('one');
    expect((await get(`${p}/b`)).text).toBe('two');
    await nextIsOwn(up, p, 3);
    await waitFor(() => up.closed.has(1) && up.closed.has(2), { what: 'certgate to close connections 1 and 2', deadline: 5000 });
  });

  // A HEAD's next request may go on a new connection (undici closed it after every HEAD, its
  // issue #258); a client that keeps it must read the next answer right.
  const bodiless: [string, string, string][] = [
    ['204 No Content', 'GET', 'HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n'],
    ['304 Not Modified', 'GET', 'HTTP/1.1 304 Not Modified\r\nETag: "e1"\r\n\r\n'],
    ['a HEAD answered with a Content-Length', 'HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'],
  ];
  const bodilessTest = async (method: string, answer: string) => {
    const { up, p } = lane();
    up.answer(answer);
    const out = await raw(GET(`${p}/a`, method));
    expect(out.slice(0, 12)).toBe(answer.slice(0, 12));
    expect(out.indexOf('\r\n\r\n') + 4).toBe(out.length); // nothing after the head
    expect(up.requests[0]!.method).toBe(method);
    await nextIsOwn(up, p, method === 'HEAD' ? undefined : 1);
  };
  it.each(bodiless)('passes %s without a body, and the next request gets its own answer', (_name, method, answer) => bodilessTest(method, answer));

  // RFC 9110 8.6: a 304 may carry the Content-Length of the representation it stands for.
  // (undici took it for the body's length and cut the client's connection with nothing sent.)
  it('passes a 304 Not Modified with a Content-Length without a body', () => bodilessTest('GET', 'HTTP/1.1 304 Not Modified\r\nETag: "e1"\r\nContent-Length: 10\r\n\r\n'));

  it('skips a 103 Early Hints before the final response and keeps the connection in step', async () => {
    const { up, p } = lane();
    up.answer('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n' + resp('final'));
    const r = await get(`${p}/a`);
    expect(r.status).toBe(200);
    expect(r.text).toBe('final');
    await nextIsOwn(up, p, 1);
  });

  // RFC 9110 15.2: a client MUST parse 1xx responses it did not expect. undici destroyed the
  // connection on any 100 ("bad response"), and certgate never sends Expect upstream, so an
  // upstream that answered 100 Continue on its own got its clients a 502.
  it('skips an unsolicited 100 Continue before the final response', async () => {
    const { up, p } = lane();
    up.answer('HTTP/1.1 100 Continue\r\n\r\n' + resp('final'));
    const r = await get(`${p}/a`);
    expect(r.status).toBe(200);
    expect(r.text).toBe('final');
  });
});

describe('malformed responses', () => {
  const malformed: [string, Responder][] = [
    ['an invalid status code', 'HTTP/1.1 2OO OK\r\nX-Leak: 1\r\nContent-Length: 4\r\n\r\nLEAK'],
    ['a status line that is not HTTP', 'FOO\r\nX-Leak: 1\r\nContent-Length: 4\r\n\r\nLEAK'],
    ['two different Content-Length values', 'HTTP/1.1 200 OK\r\nX-Leak: 1\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nLEAK'],
    ['a Content-Length that is not a number', 'HTTP/1.1 200 OK\r\nX-Leak: 1\r\nContent-Length: 4x\r\n\r\nLEAK'],
    ['a transfer coding certgate could not tell the client about (gzip, chunked)', 'HTTP/1.1 200 OK\r\nX-Leak: 1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\nLEAK\r\n0\r\n\r\n'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nX-Leak 1\r\nContent-Length: 4\r\n\r\nLEAK'],
    ['a NUL in a header value', 'HTTP/1.1 200 OK\r\nX-Leak: a\0b\r\nContent-Length: 4\r\n\r\nLEAK'],
    ['a bare CR in a header value', 'HTTP/1.1 200 OK\r\nX-Leak: a\rb\r\nContent-Length: 4\r\n\r\nLEAK'],
    ['a response head over 64 KiB', `HTTP/1.1 200 OK\r\nX-Leak: ${'a'.repeat(70 * 1024)}\r\nContent-Length: 4\r\n\r\nLEAK`],
    // A fresh connection (the lane is new): nothing to retry on another one.
    ['a close before any byte', (_r, s) => s.end()],
  ];
  it.each(malformed)('answers %s with 502 upstream_unavailable, sends none of it, and drops the connection', async (_name, answer) => {
    const { up, p } = lane();
    up.answer(answer);
    const out = await raw(GET(`${p}/a`));
    expect502(out);
    expect(out.toLowerCase()).not.toContain('leak');
    await waitFor(() => up.closed.has(1), { what: 'the upstream connection closed', deadline: 5000 });
    await nextIsOwn(up, p, 2);
  });

  it('passes a response head of 12 KiB', async () => {
    const { up, p } = lane();
    up.answer(resp('ok', `X-Big: ${'b'.repeat(12 * 1024)}\r\n`));
    const r = await get(`${p}/a`);
    expect(r.status).toBe(200);
    expect(r.headers['x-big']).toHaveLength(12 * 1024);
  });

  // Once the head went to the client a 502 is no longer possible: the client must see the
  // response cut (an error reading it), never a complete one.
  it.each([
    ['as the first chunk', 'zz\r\nLEAK\r\n0\r\n\r\n'],
    ['after a good chunk', '5\r\nhello\r\n-1\r\nLEAK\r\n0\r\n\r\n'],
  ])('cuts the response at an invalid chunk size line %s, or answers 502', async (_name, chunks) => {
    const { up, p } = lane();
    up.answer(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`);
    const r = await get(`${p}/a`).catch((e: Error) => e);
    if (!(r instanceof Error)) {
      expect(r.status).toBe(502);
      expect(r.json.error.code).toBe('upstream_unavailable');
    }
    await waitFor(() => up.closed.has(1), { what: 'the upstream connection closed', deadline: 5000 });
    await nextIsOwn(up, p, 2);
  });

  // Content-Length with Transfer-Encoding is how response smuggling starts. Safe answers: 502,
  // or the chunked body (Transfer-Encoding wins) and the connection closed after it. Never the
  // first 4 bytes by the length with the rest left to be read as the next response.
  it('never reads a response with both Content-Length and Transfer-Encoding by its length, nor reuses its connection', async () => {
    const { up, p } = lane();
    up.answer('HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nchunks\r\n0\r\n\r\n' + resp('smuggled'));
    const out = await raw(GET(`${p}/a`));
    if (/^HTTP\/1.1 502 /.test(out)) expect502(out);
    else {
      expect(out).toMatch(/^HTTP\/1.1 200 /);
      expect(out).toContain('chunks');
    }
    expect(out).not.toContain('smuggled');
    await waitFor(() => up.closed.has(1), { what: 'the upstream connection closed', deadline: 5000 });
    await nextIsOwn(up, p, 2);
  });
});

describe('response splitting', () => {
  const injected = 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected';
  it.each([
    ['a Content-Length response', 'GET', resp('first')],
    ['a 204', 'GET', 'HTTP/1.1 204 No Content\r\n\r\n'],
    ['a HEAD answer with a Content-Length', 'HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'],
  ])('never gives the bytes after %s to the next request', async (_name, method, first) => {
    const { up, p } = lane();
    up.answer(first + injected);
    const out = await raw(GET(`${p}/a`, method));
    expect(out).toMatch(/^HTTP\/1.1 20[04] /);
    expect(out).not.toContain('injected');
    await nextIsOwn(up, p, undefined);
  });

  it('drops an idle connection on which the upstream sends an unsolicited response', async () => {
    const { up, p } = lane();
    expect((await get(`${p}/a`)).text).toBe(`GET ${p}/a`);
    up.socket(1).write(injected);
    await waitFor(() => up.closed.has(1), { what: 'certgate to close the connection', deadline: 5000 });
    await nextIsOwn(up, p, 2);
  });
});

describe('connections the upstream closes', () => {
  it('opens a new connection when the upstream closed an idle keep-alive one', async () => {
    const { up, p } = lane();
    up.answer((r, s) => {
      s.write(resp(own(r), 'Connection: keep-alive\r\nKeep-Alive: timeout=60\r\n'));
      setImmediate(() => s.end());
    });
    expect((await get(`${p}/a`)).text).toBe(`GET ${p}/a`);
    await waitFor(() => up.closed.has(1), { what: 'the idle connection closed', deadline: 5000 });
    await nextIsOwn(up, p, 2);
  });

  // The race of an upstream's idle timeout: the request went out on a kept-alive connection just
  // as the upstream closed it. Nothing was answered, so a GET is safe to send again on a new
  // connection (RFC 9112 9.3.1), as nginx and Go's transport do. (With undici, certgate
  // answered 502: "other side closed".)
  it('sends a GET again on a new connection when a reused one closes without answering', async () => {
    const { up, p } = lane();
    up.answer(resp('first'), (_r, s) => s.end());
    expect((await get(`${p}/a`)).text).toBe('first');
    await nextIsOwn(up, p, 2);
    expect(up.requests.map((r) => r.conn)).toEqual([1, 1, 2]);
  });
});

describe('response headers', () => {
  it('drops hop-by-hop headers and passes the others with their values, Set-Cookie lines in order', async () => {
    const { up, p } = lane();
    up.answer(
      'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=77, max=9\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n' +
        'TE: trailers\r\nTrailer: X-Checksum\r\nSet-Cookie: a=1; Path=/; HttpOnly\r\nX-Kept:  v=1; q="a, b"  \r\nSet-Cookie: b=2\r\n' +
        'Cache-Control: no-cache, private\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: 1\r\n\r\n',
    );
    const out = await raw(GET(`${p}/a`));
    const head = out.slice(0, out.indexOf('\r\n\r\n') + 2);
    expect(head).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    for (const name of ['keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer', 'x-checksum']) expect(head).not.toMatch(new RegExp(`^${name}:`, 'im'));
    // certgate's own framing and connection handling toward the client, not the upstream's.
    expect(head.match(/^connection: (.*)\r$/gim)).toEqual([expect.stringMatching(/close/i)]);
    expect(head.match(/^transfer-encoding:/gim)?.length ?? 0).toBeLessThanOrEqual(1);
    expect([...head.matchAll(/^set-cookie: (.*)\r$/gim)].map((m) => m[1])).toEqual(['a=1; Path=/; HttpOnly', 'b=2']);
    expect(head).toMatch(/^x-kept: v=1; q="a, b" *\r$/im); // leading space dropped (trailing: undici keeps it)
    expect(head).toMatch(/^cache-control: no-cache, private\r$/im);
  });

  // RFC 9110 7.6.1: a proxy MUST remove the fields a Connection header names. certgate does so
  // both ways.
  it('drops response headers that the upstream named in Connection', async () => {
    const { up, p } = lane();
    up.answer(resp('ok', 'Connection: keep-alive, X-Hop-Secret\r\nX-Hop-Secret: internal\r\n'));
    const r = await get(`${p}/a`);
    expect(r.status).toBe(200);
    expect(r.headers['x-hop-secret']).toBeUndefined();
  });
});

describe('the request as the upstream receives it', () => {
  it('has the method, the path with its query, and the client\'s Host, once', async () => {
    const { up, p } = lane();
    const out = await raw(`DELETE ${p}/a/b?x=1&y=%2F HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1.1 200 /);
    const r = up.requests[0]!;
    expect([r.method, r.target, r.version]).toEqual(['DELETE', `${p}/a/b?x=1&y=%2F`, 'HTTP/1.1']);
    expect(values(r, 'host')).toEqual(['localhost']);
  });

  it('gets a chunked upload complete, with its bytes identical', async () => {
    const { up, p } = lane();
    const out = await raw(`POST ${p}/up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1.1 200 /);
    const r = up.requests[0]!;
    expect(r.body.toString('latin1')).toBe('hello world');
    // Re-framed either way, but framed once: chunked without a length, or the exact length.
    if (r.chunked) expect(values(r, 'content-length')).toEqual([]);
    else expect(values(r, 'content-length')).toEqual(['11']);
    expect(values(r, 'transfer-encoding').length).toBeLessThanOrEqual(1);
  });

  it('gets obs-text in a header value as the very bytes the client sent (latin1, not re-encoded)', async () => {
    const { up, p } = lane();
    const s = await rawTls(h.port, pki.rootPem, creds());
    const out = await exchange(s, Buffer.from(`GET ${p}/a HTTP/1.1\r\nHost: localhost\r\nX-Latin: caf\xe9 \xa0x\r\nConnection: close\r\n\r\n`, 'latin1'), 5000);
    expect(out).toMatch(/^HTTP\/1.1 200 /);
    expect(Buffer.from(values(up.requests[0]!, 'x-latin')[0]!, 'latin1')).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xa0, 0x78]));
  });

  it('keeps the client\'s connection usable when the upstream answers before reading the whole upload', async () => {
    const { up, p } = lane();
    // The upstream stops reading after the head; once certgate's writes have backed up and it
    // paused the client's upload, the upstream answers 413. The upload must not stay paused after
    // the answer is complete, or the client's connection can never carry another request.
    let answer: (() => void) | undefined;
    up.early = (s) => {
      s.pause();
      answer = () => s.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!');
    };
    const size = 9 * 1024 * 1024; // under the default 10 MiB limit, over what loopback buffers hold
    const s = await rawTls(h.port, pki.rootPem, creds());
    let out = '';
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.on('data', (c: Buffer) => (out += c.toString('latin1')));
    s.write(`POST ${p}/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${size}\r\n\r\n`);
    s.write(Buffer.alloc(size, 0x7a));
    try {
      // certgate stopped reading the client: its upload backs up on the client's side.
      let last = -1;
      await waitFor(
        () => {
          const backed = answer !== undefined && s.writableLength > 0 && s.writableLength === last;
          last = s.writableLength;
          return backed;
        },
        { what: 'certgate to pause the upload', deadline: 10_000, every: 100 },
      );
      answer!();
      await waitFor(() => out.includes('too big!'), { what: 'the early 413', deadline: 10_000 });
      expect(out).toMatch(/^HTTP\/1.1 413 /);
      s.write(GET(`${p}/after`));
      await within(closed, 15_000, 'the answer to the next request on the same connection');
      expect(out).toContain(`GET ${p}/after`);
    } finally {
      s.destroy();
    }
  });

  it('gets a Content-Length upload with that length', async () => {
    const { up, p } = lane();
    const body = 'z'.repeat(1234);
    expect((await get(`${p}/up`, { method: 'POST', body })).status).toBe(200);
    const r = up.requests[0]!;
    expect(values(r, 'content-length')).toEqual(['1234']);
    expect(values(r, 'transfer-encoding')).toEqual([]);
    expect(r.body.toString('latin1')).toBe(body);
  });

  it('gets a 2 MiB upload byte-identical', async () => {
    const { up, p } = lane();
    const body = randomBytes(2 * 1024 * 1024);
    expect((await get(`${p}/up`, { method: 'PUT', body })).status).toBe(200);
    const r = up.requests[0]!;
    expect(r.body.length).toBe(body.length);
    expect(createHash('sha256').update(r.body).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('carries the request id, forwarding and identity headers exactly once, none of the client\'s spoofed ones', async () => {
    const { up, p } = lane();
    const spoofed =
      'X-Client-Cert-Subject: CN=mallory\r\nx-client-cert-cn: mallory\r\nx_client_cert_cn: mallory\r\nX-Forwarded-For: 6.6.6.6\r\n' +
      'X-Forwarded-Proto: http\r\nX-Forwarded-Client-Cert: Hash=mallory\r\n';
    const out = await raw(`GET ${p}/a HTTP/1.1\r\nHost: localhost\r\n${spoofed}Connection: close\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1.1 200 /);
    const r = up.requests[0]!;
    for (const name of ['x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-client-cert', 'x-client-cert-subject', 'x-client-cert-cn', 'x-client-cert-fingerprint']) {
      expect(values(r, name), name).toHaveLength(1);
    }
    expect(values(r, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(values(r, 'x-forwarded-proto')).toEqual(['https']);
    expect(values(r, 'x-client-cert-cn')).toEqual(['alice']);
    expect(values(r, 'x-client-cert-subject')[0]).toContain('CN=alice');
    expect(values(r, 'x_client_cert_cn')).toEqual([]);
    expect(r.headers.filter(([, v]) => /mallory|6\.6\.6\.6/.test(v))).toEqual([]);
  });
});

describe('timeouts and cancellation', () => {
  it('answers 504 upstream_timeout when the upstream never answers, and drops that connection', async () => {
    const { up, p } = lane(true);
    up.answer(() => {});
    const t0 = Date.now();
    const r = await get(`${p}/a`);
    const took = Date.now() - t0;
    expect(r.status).toBe(504);
    expect(r.json.error.code).toBe('upstream_timeout');
    expect(r.json.error.requestId).toEqual(expect.any(String));
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(5000);
    // A late answer on that connection must never become the next request's answer.
    await waitFor(() => up.closed.has(1), { what: 'the timed-out connection closed', deadline: 5000 });
    await nextIsOwn(up, p, 2);
  });

  it('cuts the client\'s response when the upstream stalls mid-body', async () => {
    const { up, p } = lane(true);
    up.answer('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b');
    const s = await rawTls(h.port, pki.rootPem, creds());
    const t0 = Date.now();
    const out = await exchange(s, GET(`${p}/a`), 8000);
    expect(Date.now() - t0).toBeLessThan(5000); // closed by certgate, not by our deadline
    expect(out).toMatch(/^HTTP\/1.1 200 /);
    expect(out).toContain('only ten b');
    expect(out.length - (out.indexOf('\r\n\r\n') + 4)).toBeLessThan(100);
    await waitFor(() => up.closed.has(1), { what: 'the stalled connection closed', deadline: 5000 });
  });

  it('does not time out the upstream while the client reads slowly, and still cuts a stall after the client caught up', async () => {
    const { up, p } = lane(true);
    const sent = 16 * 1024 * 1024;
    // More than loopback buffers hold, so that certgate must stop reading the upstream; then silence.
    up.answer((_r, s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${2 * sent}\r\n\r\n`);
      s.write(Buffer.alloc(sent, 0x62));
    });
    const s = await rawTls(h.port, pki.rootPem, creds());
    s.pause();
    s.write(GET(`${p}/slow-reader`));
    await waitFor(() => up.connections === 1 && up.socket(1).writableLength > 0, { what: 'certgate to stop reading the upstream', deadline: 5000 });
    // Three route timeouts with the client not reading: the upstream is not blamed for it.
    const pausedAt = Date.now();
    await waitFor(() => Date.now() - pausedAt > 900, { what: 'three upstream timeouts to pass', deadline: 5000, every: 50 });
    expect(up.closed.has(1)).toBe(false);
    let bytes = 0;
    let head = '';
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.on('data', (c: Buffer) => {
      if (head === '' ) head = c.subarray(0, 64).toString('latin1');
      bytes += c.length;
    });
    s.resume();
    // The upstream sends nothing more: the timeout, armed again, cuts the response.
    await within(closed, 8000, 'certgate to cut the stalled response');
    expect(head).toMatch(/^HTTP\/1.1 200 /);
    expect(bytes).toBeGreaterThan(sent);
    expect(bytes).toBeLessThan(sent + 4096);
    await waitFor(() => up.closed.has(1), { what: 'the stalled connection closed', deadline: 5000 });
  });

  it('closes the upstream connection when the client goes away mid-response', async () => {
    const { up, p } = lane();
    let timer: NodeJS.Timeout | undefined;
    up.answer((_r, s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n');
      const drip = () => {
        if (s.destroyed) return;
        s.write(Buffer.alloc(16 * 1024, 0x61));
        timer = setTimeout(drip, 20);
      };
      drip();
    });
    const s = await rawTls(h.port, pki.rootPem, creds());
    let got = 0;
    s.on('data', (c: Buffer) => (got += c.length));
    s.write(GET(`${p}/big`));
    try {
      await waitFor(() => got > 32 * 1024, { what: 'the first body bytes through certgate', deadline: 5000 });
      expect(up.closed.has(1)).toBe(false);
      s.destroy();
      await waitFor(() => up.closed.has(1), { what: 'the upstream connection closed', deadline: 5000 });
    } finally {
      clearTimeout(timer);
    }
  });

  it('answers 502 upstream_unavailable when the upstream refuses the connection', async () => {
    const r = await get('/refused/a');
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('upstream_unavailable');
  });
});
