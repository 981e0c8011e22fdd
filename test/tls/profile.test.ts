// The TLS profile of the listener on real sockets: AEAD-only TLS 1.2 by default, TLS 1.3 only
// with `modern`, and a client without a shared suite refused with a named reason.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '../../src/metrics.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;

beforeAll(async () => {
  pki = await createTestPki();
});

async function harness(tls: Record<string, unknown> = {}): Promise<Harness> {
  return startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', upstream: BACKEND, allow: [{ subject: '*' }] }],
    extra: {
      tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['clients-ca.pem'], ...tls },
      log: { level: 'warn', access: false, file: 'certgate.log' },
    },
  });
}

/** A real TLS handshake; resolves with the negotiated protocol and suite, or the client's error. */
function handshake(port: number, opts: ConnectionOptions): Promise<{ ok: true; protocol: string | null; cipher: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.rootPem, ...opts }, () => {
      const r = { ok: true as const, protocol: s.getProtocol(), cipher: s.getCipher().name };
      s.destroy();
      resolve(r);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, error: err.code ?? err.message }));
  });
}

const failures = async (reason: string) => (await metrics.handshakeFailures.get()).values.filter((v) => v.labels.reason === reason).reduce((n, v) => n + v.value, 0);

async function logged(h: Harness, reason: string): Promise<unknown> {
  return waitFor(() => {
    h.app.loggers.flush();
    let text = '';
    try {
      text = readFileSync(join(h.dir, 'certgate.log'), 'utf8');
    } catch {
      return undefined;
    }
    return text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.event === 'tls_error' && l.reason === reason);
  }, { what: `a tls_error log line with reason ${reason}` });
}

describe('the default (intermediate) profile', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('accepts a TLS 1.2 client offering only ECDHE-ECDSA-AES128-GCM-SHA256', async () => {
    const r = await handshake(h.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    expect(r).toEqual({ ok: true, protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  });

  it('accepts a TLS 1.2 client offering only ChaCha20-Poly1305, and TLS 1.3 with OpenSSL\'s suites', async () => {
    expect(await handshake(h.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' })).toMatchObject({ ok: true, cipher: 'ECDHE-ECDSA-CHACHA20-POLY1305' });
    expect(await handshake(h.port, {})).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
  });

  it('refuses a TLS 1.2 client offering only a CBC suite, and the log and metrics name it no_shared_cipher', async () => {
    const before = await failures('no_shared_cipher');
    const r = await handshake(h.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' });
    expect(r.ok).toBe(false);
    await waitFor(async () => (await failures('no_shared_cipher')) === before + 1, { what: 'the failure counted as no_shared_cipher' });
    expect(await logged(h, 'no_shared_cipher')).toMatchObject({ code: 'ERR_SSL_NO_SHARED_CIPHER' });
  });

  it('accepts no CBC suite from `openssl s_client`, whichever it offers, and a GCM one', async () => {
    const sClient = (cipher: string) =>
      new Promise<{ ok: boolean; out: string }>((resolve) => {
        const args = ['s_client', '-connect', `127.0.0.1:${h.port}`, '-servername', 'localhost', '-tls1_2', '-cipher', cipher, '-brief'];
        const child = execFile('openssl', args, { timeout: 15_000 }, (err, stdout, stderr) => resolve({ ok: err === null, out: stdout + stderr }));
        // End of input: s_client closes the connection once the handshake is done.
        child.stdin?.end();
      });
    // Every suite this OpenSSL has that is neither GCM, CCM nor ChaCha20 (CBC, RC4, 3DES, NULL).
    const cbc = await sClient('ALL:COMPLEMENTOFALL:!AESGCM:!AESCCM:!CHACHA20:!ARIAGCM:@SECLEVEL=0');
    expect(cbc.ok, cbc.out).toBe(false);
    expect(cbc.out).toMatch(/handshake failure|alert/i);
    const gcm = await sClient('ECDHE-ECDSA-AES256-GCM-SHA384');
    expect(gcm.ok, gcm.out).toBe(true);
    expect(gcm.out).toContain('ECDHE-ECDSA-AES256-GCM-SHA384');
  });
});

describe('tls.profile: modern', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ profile: 'modern' });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('refuses a client restricted to TLS 1.2, even with a GCM suite, naming the reason', async () => {
    const before = await failures('unsupported_protocol');
    const r = await handshake(h.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    expect(r.ok).toBe(false);
    await waitFor(async () => (await failures('unsupported_protocol')) === before + 1, { what: 'the failure counted as unsupported_protocol' });
    expect(await logged(h, 'unsupported_protocol')).toBeTruthy();
  });

  it('accepts TLS 1.3', async () => {
    expect(await handshake(h.port, {})).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
  });
});

describe('explicit tls.ciphers and tls.ecdhCurves', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384', ecdhCurves: 'X25519' });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('serve exactly the listed suite and curve at TLS 1.2, and keep TLS 1.3', async () => {
    expect(await handshake(h.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).toMatchObject({ ok: false });
    // prime256v1 stays in the client's list: at TLS 1.2 it also names the certificate's curve.
    expect(await handshake(h.port, { maxVersion: 'TLSv1.2', ecdhCurve: 'prime256v1' })).toMatchObject({ ok: false });
    expect(await handshake(h.port, { maxVersion: 'TLSv1.2', ecdhCurve: 'X25519:prime256v1' })).toMatchObject({ ok: true, cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384' });
    expect(await handshake(h.port, { ecdhCurve: 'secp384r1' })).toMatchObject({ ok: false });
    expect(await handshake(h.port, { ecdhCurve: 'X25519' })).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
  });
});
