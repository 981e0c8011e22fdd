// PROXY protocol on the real listener: a load balancer's header (v1 or v2) ahead of real mTLS, and
// what downstream sees (X-Forwarded-For at the backend, the access line, the logs, the inventory);
// who may and who must send one; a header that never completes. 127.0.0.1 is the balancer in the
// first harness (trusted) and an ordinary client in the second (trusted: 10.0.0.0/8 only).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '../../src/metrics.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

const HANDSHAKE_MS = 1500;
const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

let pki: TestPki;
let alice: TestCert;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice' });
});

function harness(trusted: string[]): Promise<Harness> {
  return startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', upstream: BACKEND, allow: [{ cn: 'alice' }] }],
    admin: true,
    extra: {
      listen: { host: '127.0.0.1', port: 0, proxyProtocol: { trusted } },
      timeouts: { handshake: `${HANDSHAKE_MS}ms` },
      log: { level: 'info', access: true, file: 'certgate.log', accessFile: 'access.log' },
    },
  });
}

// --- headers ----------------------------------------------------------------------------------

const v1 = (src: string, port = 51234) => Buffer.from(`PROXY ${src.includes(':') ? 'TCP6' : 'TCP4'} ${src} ${src.includes(':') ? '::1' : '127.0.0.1'} ${port} 443\r\n`, 'latin1');

function v2(command: 'proxy' | 'local', src?: string, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  let famProto = 0x00;
  let addr = Buffer.alloc(0);
  if (src !== undefined && !src.includes(':')) {
    famProto = 0x11;
    addr = Buffer.alloc(12);
    src.split('.').forEach((x, i) => (addr[i] = Number(x)));
    [127, 0, 0, 1].forEach((x, i) => (addr[4 + i] = x));
    addr.writeUInt16BE(40000, 8);
    addr.writeUInt16BE(443, 10);
  } else if (src !== undefined) {
    famProto = 0x21;
    addr = Buffer.alloc(36);
    Buffer.from(expand(src), 'hex').copy(addr, 0);
    addr[31] = 1;
    addr.writeUInt16BE(40000, 32);
    addr.writeUInt16BE(443, 34);
  }
  const body = Buffer.concat([addr, tlvs]);
  const head = Buffer.from([command === 'proxy' ? 0x21 : 0x20, famProto, 0, 0]);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIG, head, body]);
}

/** `2001:db8::7` as 32 hex digits. */
function expand(a: string): string {
  const [l = '', r = ''] = a.split('::');
  const g = (s: string) => (s === '' ? [] : s.split(':'));
  const groups = [...g(l), ...Array<string>(8 - g(l).length - g(r).length).fill('0'), ...g(r)];
  return groups.map((x) => x.padStart(4, '0')).join('');
}

// --- clients ----------------------------------------------------------------------------------

type Delivery = 'own packet' | 'with the ClientHello' | 'split';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rawConnect(port: number): Promise<Socket> {
  const raw = connect(port, '127.0.0.1');
  raw.setNoDelay(true);
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  return raw;
}

/**
 * A TLS client behind a PROXY header, delivered as a balancer might: in its own packet, in the
 * same write as the ClientHello, or in pieces with pauses between them (separate reads).
 */
async function tlsBehindHeader(port: number, header: Buffer, delivery: Delivery, client: TestCert | null = alice): Promise<TLSSocket> {
  const raw = await rawConnect(port);
  let prefix: Buffer | undefined;
  // The pauses let the server read each piece on its own, the header apart from the ClientHello.
  if (delivery === 'with the ClientHello') prefix = header;
  else if (delivery === 'own packet') {
    raw.write(header);
    await tick(40);
  } else {
    const cuts = [Math.floor(header.length / 3), Math.floor((2 * header.length) / 3), header.length];
    let from = 0;
    for (const to of cuts) {
      raw.write(header.subarray(from, to));
      from = to;
      await tick(40);
    }
  }
  // The TLS client writes through this stream, so that its first record can share a write with the header.
  const wire = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      const out = prefix === undefined ? chunk : Buffer.concat([prefix, chunk]);
      prefix = undefined;
      raw.write(out, cb);
    },
    read() {
      raw.resume();
    },
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on('data', (c: Buffer) => {
    if (!wire.push(c)) raw.pause();
  });
  raw.on('end', () => wire.push(null));
  raw.on('close', () => wire.destroy());
  raw.on('error', (e) => wire.destroy(e));
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ socket: wire, ca: pki.rootPem, servername: 'localhost', ...(client ? { cert: client.chainPem, key: client.keyPem } : {}) }, () => resolve(s));
    s.once('error', reject);
  });
}

/** One request (Connection: close) and the whole response. */
function get(s: TLSSocket, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString('latin1')));
    s.once('error', reject);
    s.once('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0);
      resolve({ status, body: out.slice(out.indexOf('\r\n\r\n') + 4) });
    });
    s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  });
}

/** Writes bytes on a plain TCP connection; resolves with what came back once the server closed it, and how long that took. */
async function rawExchange(port: number, pieces: Buffer[], gapMs = 0, deadlineMs = 10_000): Promise<{ text: string; closed: boolean; ms: number }> {
  const raw = await rawConnect(port);
  const t0 = Date.now();
  let text = '';
  raw.on('data', (c: Buffer) => (text += c.toString('latin1')));
  raw.on('error', () => {});
  const closed = new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), deadlineMs);
    raw.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
  void (async () => {
    for (const p of pieces) {
      if (raw.destroyed) return;
      raw.write(p);
      if (gapMs > 0) await tick(gapMs);
    }
  })();
  const ok = await closed;
  raw.destroy();
  return { text, closed: ok, ms: Date.now() - t0 };
}

// --- what downstream saw ----------------------------------------------------------------------

const refusals = async (reason: string) => (await metrics.proxyProtocolRefusals.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

function lines(h: Harness, file: string): Record<string, unknown>[] {
  h.app.loggers.flush();
  let text = '';
  try {
    text = readFileSync(join(h.dir, file), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function logged(h: Harness, file: string, match: Record<string, unknown>, what: string): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined;
  await waitFor(() => (found = lines(h, file).find((l) => Object.entries(match).every(([k, v]) => l[k] === v))) !== undefined, { what, deadline: 5000, every: 50 });
  return found!;
}

/** The x-forwarded-for the backend received for the request to this unique path. */
function forwardedFor(h: Harness, path: string): string | string[] | undefined {
  const rec = h.backend.received.find((r) => r.url === path);
  if (rec === undefined) throw new Error(`the backend never received ${path}`);
  return rec.headers['x-forwarded-for'];
}

// ------------------------------------------------------------------------------------------------

describe('behind a trusted load balancer (127.0.0.1 trusted)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness(['10.0.0.0/8', '127.0.0.1/32', '::1/128']);
  });
  afterAll(async () => {
    await h?.close();
  });

  it.each<[string, Buffer, Delivery, string]>([
    ['v1 TCP4, in its own packet', v1('203.0.113.7'), 'own packet', '203.0.113.7'],
    ['v1 TCP6, in the same write as the ClientHello', v1('2001:db8::17'), 'with the ClientHello', '2001:db8::17'],
    ['v1, split across packets', v1('198.51.100.23'), 'split', '198.51.100.23'],
    ['v2 TCP4, in its own packet', v2('proxy', '203.0.113.8'), 'own packet', '203.0.113.8'],
    ['v2 TCP6 with TLVs, in the same write as the ClientHello', v2('proxy', '2001:db8::7', Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32, 0xea, 0x00, 0x03, 1, 2, 3])), 'with the ClientHello', '2001:db8::7'],
    ['v2, split across packets', v2('proxy', '198.51.100.24'), 'split', '198.51.100.24'],
  ])('%s: the backend sees the header\'s address in X-Forwarded-For, and so does the access log', async (name, header, delivery, client) => {
    const path = `/pp/${encodeURIComponent(name)}`;
    const r = await get(await tlsBehindHeader(h.port, header, delivery), path);
    expect(r.status).toBe(200);
    expect(forwardedFor(h, path)).toBe(client);
    const line = await logged(h, 'access.log', { path }, 'the access line');
    expect(line).toMatchObject({ remote: client, subject: expect.stringContaining('CN=alice'), status: 200 });
  });

  it('shows the header\'s address in the inventory', async () => {
    const r = await get(await tlsBehindHeader(h.port, v1('192.0.2.99'), 'own packet'), '/pp/inventory');
    expect(r.status).toBe(200);
    await waitFor(async () => {
      const { clients } = (await (await fetch(`${h.adminUrl}/certs`)).json()) as { clients: { subject: string; lastAddress?: string }[] };
      return clients.find((c) => c.subject.includes('CN=alice'))?.lastAddress === '192.0.2.99';
    }, { what: 'the inventory entry with the header address', deadline: 5000, every: 50 });
  });

  it('uses the socket address for v2 LOCAL and v1 UNKNOWN (the balancer\'s own connections)', async () => {
    const local = await get(await tlsBehindHeader(h.port, v2('local'), 'own packet'), '/pp/local');
    expect(local.status).toBe(200);
    expect(forwardedFor(h, '/pp/local')).toBe('127.0.0.1');
    const unknown = await get(await tlsBehindHeader(h.port, Buffer.from('PROXY UNKNOWN\r\n'), 'with the ClientHello'), '/pp/unknown');
    expect(unknown.status).toBe(200);
    expect(forwardedFor(h, '/pp/unknown')).toBe('127.0.0.1');
  });

  it('logs a refused handshake with the header\'s address', async () => {
    const r = await get(await tlsBehindHeader(h.port, v1('203.0.113.50'), 'own packet', null), '/pp/no-cert');
    expect(r.status).toBe(401);
    const line = await logged(h, 'certgate.log', { event: 'handshake_refused', remote: '203.0.113.50' }, 'the handshake_refused line');
    expect(line.code).toBe('certificate_required');
  });

  it('answers plain HTTP after the header with the 400 saying the port speaks TLS, and logs the header\'s address', async () => {
    const r = await rawExchange(h.port, [Buffer.concat([v1('203.0.113.60'), Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')])]);
    expect(r.closed).toBe(true);
    expect(r.text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(r.text).toContain('speaks TLS');
    await logged(h, 'certgate.log', { event: 'plain_http_on_tls_port', remote: '203.0.113.60' }, 'the plain_http_on_tls_port line');
  });

  it('closes a connection from a trusted peer that sends no header (TLS straight away), and logs and counts it', async () => {
    const before = await refusals('missing');
    const err = await new Promise<Error | undefined>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca: pki.rootPem, servername: 'localhost', cert: alice.chainPem, key: alice.keyPem }, () => {
        s.destroy();
        resolve(undefined);
      });
      s.once('error', resolve);
    });
    expect(err, 'the handshake must not complete').toBeInstanceOf(Error);
    expect(await refusals('missing')).toBe(before + 1);
    await logged(h, 'certgate.log', { event: 'proxy_protocol_refused', reason: 'missing', peer: '127.0.0.1' }, 'the refusal line');
  });

  it('closes a connection whose header is invalid, without answering', async () => {
    const before = await refusals('invalid');
    const r = await rawExchange(h.port, [Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 99999 443\r\n'), Buffer.from([0x16, 3, 1])]);
    expect(r).toMatchObject({ closed: true, text: '' });
    expect(await refusals('invalid')).toBe(before + 1);
    const line = await logged(h, 'certgate.log', { event: 'proxy_protocol_refused', reason: 'invalid' }, 'the refusal line');
    expect(line.detail).toContain('ports');
  });

  it('closes a header that never completes within timeouts.handshake, even while its bytes trickle in', async () => {
    const before = await refusals('timeout');
    // One byte every 200 ms: an inactivity timeout would never fire; the header's deadline does.
    const trickle = [...'PROXY TCP4 203.0.113.7 127.0.0.1 51234 443'].map((c) => Buffer.from(c));
    const r = await rawExchange(h.port, trickle, 200, HANDSHAKE_MS + 5000);
    expect(r.closed).toBe(true);
    expect(r.text).toBe('');
    expect(r.ms).toBeGreaterThanOrEqual(HANDSHAKE_MS - 100);
    expect(r.ms).toBeLessThan(HANDSHAKE_MS + 3000);
    expect(await refusals('timeout')).toBe(before + 1);
  });
});

describe('a peer that is not trusted (trusted: 10.0.0.0/8; the client is 127.0.0.1)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness(['10.0.0.0/8']);
  });
  afterAll(async () => {
    await h?.close();
  });

  it.each<[string, Buffer]>([
    ['v1', v1('203.0.113.7')],
    ['v2', v2('proxy', '203.0.113.7')],
  ])('is closed when it sends a %s header, without an answer; logged and counted as untrusted', async (_v, header) => {
    const before = await refusals('untrusted');
    const r = await rawExchange(h.port, [header, Buffer.from([0x16, 3, 1, 0, 5])]);
    expect(r).toMatchObject({ closed: true, text: '' });
    expect(await refusals('untrusted')).toBe(before + 1);
    await logged(h, 'certgate.log', { event: 'proxy_protocol_refused', reason: 'untrusted', peer: '127.0.0.1' }, 'the refusal line');
  });

  it('is served as usual without a header, with its own address forwarded', async () => {
    const r = await h.request('/direct', { client: { cert: alice.chainPem, key: alice.keyPem } });
    expect(r.status).toBe(200);
    expect(forwardedFor(h, '/direct')).toBe('127.0.0.1');
    expect(await logged(h, 'access.log', { path: '/direct' }, 'the access line')).toMatchObject({ remote: '127.0.0.1' });
  });

  it('still gets the plain-HTTP 400 for a request that starts like a header (POST, PROPFIND)', async () => {
    for (const req of ['POST / HTTP/1.1\r\nHost: x\r\n\r\n', 'PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n']) {
      const r = await rawExchange(h.port, [Buffer.from(req)]);
      expect(r.text, req).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    }
  });

  it('is trusted after a reload adds it, for new connections', async () => {
    h.writeConfig((c) => {
      c.listen = { host: '127.0.0.1', port: 0, proxyProtocol: { trusted: ['10.0.0.0/8', '127.0.0.1'] } };
    });
    expect(h.app.reload()).toMatchObject({ ok: true });
    const r = await get(await tlsBehindHeader(h.port, v2('proxy', '203.0.113.77'), 'own packet'), '/pp/after-reload');
    expect(r.status).toBe(200);
    expect(forwardedFor(h, '/pp/after-reload')).toBe('203.0.113.77');
  });
});
