// A deliberately weak TLS server for scan tests: `openssl s_server` on 127.0.0.1 with TLS 1.0 to
// 1.2, one CBC suite with static RSA key exchange (AES128-SHA) and ECDHE AEAD suites. OpenSSL 3
// refuses TLS 1.0/1.1 at its default security level; `@SECLEVEL=0` lets it offer them.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKEND, startHarness, type Harness } from './certgate.js';
import { createTestPki, type TestPki } from './pki.js';
import { waitFor } from './wait.js';

export interface WeakServer {
  readonly port: number;
  stop(): void;
}

/** A port nothing listens on right now (s_server needs a fixed one). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const accepting = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port }, () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });

/** certFile must hold an RSA certificate: static RSA key exchange (AES128-SHA) needs one. */
export async function startWeakServer(certFile: string, keyFile: string): Promise<WeakServer> {
  const port = await freePort();
  const proc: ChildProcess = spawn(
    'openssl',
    ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', certFile, '-key', keyFile, '-min_protocol', 'TLSv1', '-no_tls1_3',
      '-cipher', 'AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0', '-www', '-quiet'],
    { stdio: 'ignore' },
  );
  await waitFor(() => accepting(port), { what: `openssl s_server on port ${port}` });
  return { port, stop: () => void proc.kill() };
}

/** Two endpoints to scan side by side: certgate with its defaults, and a weak s_server (RSA). */
export interface ScanTargets {
  readonly pki: TestPki;
  readonly dir: string;
  /** The test root CA, written to a file for `--ca`. */
  readonly rootFile: string;
  readonly certgate: Harness;
  readonly weak: WeakServer;
  close(): Promise<void>;
}

export async function startScanTargets(prefix: string): Promise<ScanTargets> {
  const pki = await createTestPki();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const rootFile = join(dir, 'root.pem');
  writeFileSync(rootFile, pki.rootPem);
  // RSA: static RSA key exchange (AES128-SHA) needs an RSA certificate.
  const rsa = await pki.serverCert({ keyAlg: 'RSA-2048' });
  writeFileSync(join(dir, 'chain.pem'), rsa.chainPem);
  writeFileSync(join(dir, 'key.pem'), rsa.keyPem);
  const certgate = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', upstream: BACKEND, allow: [{ subject: '*' }] }],
  });
  const weak = await startWeakServer(join(dir, 'chain.pem'), join(dir, 'key.pem'));
  return {
    pki, dir, rootFile, certgate, weak,
    async close() {
      weak.stop();
      await certgate.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
