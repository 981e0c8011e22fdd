// OCSP stapling of the server certificate, against a real OCSP responder on 127.0.0.1 (the
// in-process responder of test/helpers/responders.ts, signing real DER with the CA key) and
// real TLS clients that ask for the status.
import { X509Certificate } from 'node:crypto';
import { createServer, connect, type ConnectionOptions, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '../../src/metrics.js';
import { Stapler } from '../../src/tls/stapling.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { startOcspResponder, type OcspResponder } from '../helpers/responders.js';
import { opensslSerial, opensslStatus } from '../helpers/sockets.js';

let pki: TestPki;
let responder: OcspResponder;
let server: TestCert;

beforeAll(async () => {
  pki = await createTestPki();
  responder = await startOcspResponder({ certPem: pki.intermediate.certPem, keyPem: pki.intermediate.keyPem });
  server = await pki.serverCert({ ocspUrl: responder.url });
});

afterAll(async () => {
  await responder?.close();
});

/** A handshake asking for the certificate status: the stapled response (or null) and how long it took. */
function statusHandshake(port: number): Promise<{ staple: Buffer | null; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let staple: Buffer | null = null;
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.rootPem, requestOCSP: true } as ConnectionOptions);
    s.on('OCSPResponse', (r: Buffer) => (staple = r));
    s.once('secureConnect', () => {
      resolve({ staple, ms: performance.now() - t0 });
      s.destroy();
    });
    s.once('error', reject);
  });
}

function harness(tls: Record<string, unknown> = {}): Promise<Harness> {
  return startHarness({
    tls: { serverCert: server.chainPem, serverKey: server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', upstream: BACKEND, allow: [{ subject: '*' }] }],
    extra: { tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['clients-ca.pem'], ...tls }, log: { level: 'silent' } },
  });
}

describe('certgate staples its certificate\'s OCSP status by default when the certificate names a responder', () => {
  let h: Harness;
  beforeAll(async () => {
    responder.delayMs = 0;
    responder.nextUpdateIn = 3600;
    h = await harness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('hands a client that asks (requestOCSP) a response that openssl reads as good for this certificate', async () => {
    const got = await waitFor(async () => (await statusHandshake(h.port)).staple ?? undefined, { what: 'a stapled response', deadline: 5000 });
    expect(got.length).toBeGreaterThan(100);
    const out = await opensslStatus(h.port);
    expect(out).toContain('OCSP Response Status: successful');
    expect(out).toMatch(/Cert Status: good/);
    expect(out).toContain(`Serial Number: ${opensslSerial(server.certPem)}`);
  });

  it('exports the staple\'s age since thisUpdate', async () => {
    const { values } = await metrics.ocspStapleAge.get();
    expect(values).toHaveLength(1);
    // The test responder dates thisUpdate one minute back.
    expect(values[0]!.value).toBeGreaterThanOrEqual(59);
    expect(values[0]!.value).toBeLessThan(600);
  });
});

describe('tls.ocspStapling: false', () => {
  it('asks no responder and staples nothing', async () => {
    const before = responder.requests;
    const h = await harness({ ocspStapling: false });
    try {
      expect((await statusHandshake(h.port)).staple).toBeNull();
      expect(responder.requests).toBe(before);
    } finally {
      await h.close();
    }
  });
});

describe('the stapler', () => {
  let tlsServer: Server;
  let port: number;
  let stapler: Stapler | undefined;
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    tlsServer = createServer({ cert: server.chainPem, key: server.keyPem });
    tlsServer.on('OCSPRequest', (c: Buffer, i: Buffer, cb: (e: Error | null, r?: Buffer | null) => void) => (stapler ? stapler.onOcspRequest(c, i, cb) : cb(null, null)));
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    port = (tlsServer.address() as AddressInfo).port;
  });
  afterAll(async () => {
    stapler?.close();
    await new Promise((r) => tlsServer.close(r));
  });

  const make = (opts: { minRefreshMs?: number; now?: () => number } = {}) => {
    stapler?.close();
    stapler = new Stapler({ leaf: new X509Certificate(server.certPem), issuer: pki.intermediate.nodeCert, url: responder.url, timeoutMs: 5000, log, ...opts });
    return stapler;
  };

  it('never delays a handshake on a slow responder: the handshake completes at once, without a staple', async () => {
    responder.delayMs = 3000;
    const s = make();
    s.start();
    const r = await statusHandshake(port);
    expect(r.staple).toBeNull();
    expect(r.ms).toBeLessThan(1500);
    responder.delayMs = 0;
    await s.refresh();
  });

  it('refreshes before nextUpdate on its own', async () => {
    responder.delayMs = 0;
    responder.nextUpdateIn = 2;
    const before = responder.requests;
    const s = make({ minRefreshMs: 50 });
    s.start();
    await waitFor(() => responder.requests >= before + 2, { what: 'a second fetch before nextUpdate', deadline: 5000 });
    expect(s.current()).toBeDefined();
    responder.nextUpdateIn = 3600;
  });

  it('keeps the last good response when a refresh fails, until that response\'s nextUpdate', async () => {
    let now = Date.now();
    const s = make({ now: () => now });
    await s.refresh();
    const good = s.current();
    expect(good).toBeDefined();
    responder.states.set(server.serial, 'unknown');
    try {
      const before = responder.requests;
      await s.refresh();
      expect(responder.requests).toBe(before + 1);
      expect(s.current()).toEqual(good);
      expect((await statusHandshake(port)).staple).toEqual(good);
      now += 3601_000;
      expect(s.current()).toBeUndefined();
      expect((await statusHandshake(port)).staple).toBeNull();
    } finally {
      responder.states.delete(server.serial);
    }
  });
});
