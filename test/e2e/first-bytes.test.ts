// What happens before TLS: the first bytes of a connection decide who answers it.
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '../../src/metrics.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice' });
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', upstream: BACKEND, allow: [{ cn: 'alice' }] }],
    admin: true,
  });
});

afterAll(async () => {
  await h?.close();
});

/** Sends raw bytes on a plain TCP connection and collects everything until the server closes it. */
function plainExchange(port: number, data: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const s = connect(port, '127.0.0.1', () => s.write(data));
    const t = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, 5000);
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.on('error', () => {});
    s.once('close', () => {
      clearTimeout(t);
      resolve({ text, closed: true });
    });
  });
}

describe('plain HTTP sent to the TLS port', () => {
  it('answers 400 in plain HTTP saying the port speaks TLS, then closes', async () => {
    const r = await plainExchange(h.port, 'GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(r.closed).toBe(true);
    expect(r.text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(r.text.toLowerCase()).toContain('content-type: text/plain');
    const body = r.text.slice(r.text.indexOf('\r\n\r\n') + 4);
    expect(body).toContain('speaks TLS');
    expect(body).toContain('https://');
  });

  it('still serves TLS clients on the same port', async () => {
    const r = await h.request('/x', { client: { cert: alice.chainPem, key: alice.keyPem } });
    expect(r.status).toBe(200);
  });

  it('closes a connection that sends neither TLS nor HTTP without answering', async () => {
    const r = await plainExchange(h.port, '\x00\x01\x02garbage');
    expect(r.closed).toBe(true);
    expect(r.text).toBe('');
  });
});

describe('the admin API', () => {
  it('sends x-request-id with its JSON errors, like the proxy', async () => {
    const res = await fetch(`${h.adminUrl}/no-such-endpoint`);
    expect(res.status).toBe(404);
    const id = res.headers.get('x-request-id');
    expect(id).toBeTruthy();
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(((await res.json()) as { error: { requestId: string } }).error.requestId).toBe(id);
  });
});

const total = async (m: { get(): Promise<{ values: { value: number }[] }> }) => (await m.get()).values.reduce((n, v) => n + v.value, 0);

describe('a client that completes the handshake and closes (a scanner)', () => {
  it('`certgate scan` of the listener is counted as closed after the handshake, not as a handshake failure', async () => {
    const failures = await total(metrics.handshakeFailures);
    const closed = await total(metrics.handshakeClosed);
    // --quick: the one handshake; the probes' refused ClientHellos are handshake failures by design.
    const r = await runCli(['scan', `127.0.0.1:${h.port}`, '--servername', 'localhost', '--quick'], { timeoutMs: 20_000 });
    expect(r.stdout + r.stderr).toContain('127.0.0.1');
    await waitFor(async () => (await total(metrics.handshakeClosed)) === closed + 1, { what: 'the scan counted as closed after the handshake', deadline: 5000, every: 20 });
    expect(await total(metrics.handshakeFailures)).toBe(failures);
  });

  it('counts a connection whose presented certificate is refused as a handshake failure, even when it sends no request', async () => {
    const rogue = await (await pki.untrustedRoot()).client({ subject: 'CN=alice' });
    const failures = await total(metrics.handshakeFailures);
    const closed = await total(metrics.handshakeClosed);
    await new Promise<void>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: h.port, servername: 'localhost', ca: pki.rootPem, cert: rogue.chainPem, key: rogue.keyPem }, () => {
        s.end();
      });
      s.on('error', reject);
      s.once('close', () => resolve());
    });
    await waitFor(async () => (await total(metrics.handshakeFailures)) === failures + 1, { what: 'the refused certificate counted as a handshake failure', deadline: 5000, every: 20 });
    expect(await total(metrics.handshakeClosed)).toBe(closed);
  });

  it('still counts a connection without a certificate that makes a request as a handshake failure', async () => {
    const failures = await total(metrics.handshakeFailures);
    const r = await h.request('/x');
    expect(r.status).toBe(401);
    expect(await total(metrics.handshakeFailures)).toBe(failures + 1);
  });
});
