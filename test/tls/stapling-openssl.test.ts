// OCSP stapling against a real `openssl ocsp` responder (OpenSSL's own OCSP server, reading an
// OpenSSL CA index), not only certgate's in-process test responder: what certgate fetches,
// verifies and staples is what a stock responder serves, and `openssl s_client -status` reads it.
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type ConnectionOptions } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { freePort } from '../helpers/weak-server.js';
import { waitFor } from '../helpers/wait.js';
import { opensslSerial, opensslStatus } from '../helpers/sockets.js';

let pki: TestPki;
let dir: string;
let responder: ChildProcess;
let server: TestCert;
let h: Harness;

/** One line of an OpenSSL CA index (index.txt): status, expiry, revocation date, serial, file, subject. */
function indexLine(cert: X509Certificate): string {
  const d = new Date(cert.validTo);
  const p = (n: number) => String(n).padStart(2, '0');
  const expiry = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  let serial = BigInt('0x' + cert.serialNumber).toString(16).toUpperCase();
  if (serial.length % 2 === 1) serial = '0' + serial;
  return `V\t${expiry}\t\t${serial}\tunknown\t/CN=localhost\n`;
}

function statusHandshake(port: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    let staple: Buffer | null = null;
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.rootPem, requestOCSP: true } as ConnectionOptions);
    s.on('OCSPResponse', (r: Buffer) => (staple = r));
    s.once('secureConnect', () => {
      resolve(staple);
      s.destroy();
    });
    s.once('error', reject);
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-openssl-ocsp-'));
  const port = await freePort();
  server = await pki.serverCert({ ocspUrl: `http://127.0.0.1:${port}` });
  writeFileSync(join(dir, 'index.txt'), indexLine(new X509Certificate(server.certPem)));
  writeFileSync(join(dir, 'ca.pem'), pki.intermediate.certPem);
  writeFileSync(join(dir, 'ca-key.pem'), pki.intermediate.keyPem);
  responder = spawn(
    'openssl',
    ['ocsp', '-index', 'index.txt', '-port', String(port), '-rsigner', 'ca.pem', '-rkey', 'ca-key.pem', '-CA', 'ca.pem', '-ndays', '1', '-ignore_err'],
    { cwd: dir, stdio: 'ignore' },
  );
  h = await startHarness({
    tls: { serverCert: server.chainPem, serverKey: server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', upstream: BACKEND, allow: [{ subject: '*' }] }],
    admin: true,
    extra: { tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['clients-ca.pem'] }, log: { level: 'silent' } },
  });
});

afterAll(async () => {
  responder?.kill();
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('OCSP stapling with openssl ocsp as the responder', () => {
  it("staples the stock responder's answer, which openssl s_client reads as good for the server certificate", async () => {
    const staple = await waitFor(async () => (await statusHandshake(h.port)) ?? undefined, { what: 'a stapled response from openssl ocsp' });
    expect(staple.length).toBeGreaterThan(100);
    const out = await opensslStatus(h.port);
    expect(out).toContain('OCSP Response Status: successful');
    expect(out).toMatch(/Cert Status: good/);
    expect(out).toContain(`Serial Number: ${opensslSerial(server.certPem)}`);
  });

  it('shows the staple and its age on the server certificate in GET /certs', async () => {
    await waitFor(async () => (await statusHandshake(h.port)) ?? undefined, { what: 'a stapled response' });
    const body = (await (await fetch(`${h.adminUrl}/certs`)).json()) as { server: { subject: string; ocspStaple?: { ageSeconds: number } | null }[] };
    expect(body.server[0]!.ocspStaple).toEqual({ ageSeconds: expect.any(Number) });
    expect(body.server[0]!.ocspStaple!.ageSeconds).toBeGreaterThanOrEqual(0);
    expect(body.server[0]!.ocspStaple!.ageSeconds).toBeLessThan(3600);
  });
});
