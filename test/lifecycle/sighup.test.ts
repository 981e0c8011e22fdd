// The real process: SIGHUP reloads, and `certgate inventory` (the built CLI) reads a running
// certgate's admin listener.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { mtlsRequest } from '../helpers/certgate.js';
import { runCli, startCertgate, stopCli } from '../helpers/cli.js';
import { atomicWrite, PROCESS_BASE } from '../helpers/config.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { servedFingerprint } from '../helpers/sockets.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let dir: string;
let backend: EchoBackend;
let child: ChildProcess;
let output: () => string;
let port: number;
let adminPort: number;
let alice: TestCert;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice, O=Acme', days: 12 });
  dir = mkdtempSync(join(tmpdir(), 'certgate-hup-'));
  await pki.writeTo(dir);
  backend = await startEchoBackend();
  const file = join(dir, 'certgate.yaml');
  writeFileSync(
    file,
    stringify({
      ...PROCESS_BASE,
      watch: { enabled: false },
      routes: [{ name: 'all', upstream: backend.url, allow: [{ o: 'Acme' }] }],
    }),
  );
  const started = await startCertgate(file, '"adminPort":\\d+');
  ({ child, output, port } = started);
  adminPort = started.adminPort!;
});

afterAll(async () => {
  if (child !== undefined) await stopCli(child);
  await backend?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the running process', () => {
  it('reloads the server certificate on SIGHUP', async () => {
    expect(await servedFingerprint(port, pki.rootPem)).toBe(pki.server.fingerprint256);
    const next = await pki.serverCert();
    atomicWrite(join(dir, 'server-key.pem'), next.keyPem);
    atomicWrite(join(dir, 'server.pem'), next.chainPem);
    child.kill('SIGHUP');
    await waitFor(async () => (await servedFingerprint(port, pki.rootPem)) === next.fingerprint256, { what: 'the new certificate after SIGHUP' });
    // The log line may reach the pipe after the new certificate is served.
    await waitFor(() => /"event":"reloaded"/.test(output()), { what: 'the reloaded log line' });
    expect(child.exitCode).toBe(null);
  });

  it('certgate inventory prints what the running proxy has seen', async () => {
    expect((await mtlsRequest(`https://127.0.0.1:${port}`, pki.rootPem, '/x', { client: { cert: alice.chainPem, key: alice.keyPem } })).status).toBe(200);
    const r = await runCli(['inventory', '--admin', `http://127.0.0.1:${adminPort}`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^DAYS LEFT\s+NOT AFTER\s+SUBJECT/);
    expect(lines[1]).toMatch(/^11\s+\S+\s+CN=alice,O=Acme\s+\S+\s+EC P-256\s+1\s+.*\sall\s+-\s+allow$/);
    const json = await runCli(['inventory', '--admin', `http://127.0.0.1:${adminPort}`, '--json']);
    expect(JSON.parse(json.stdout)[0]).toMatchObject({ subject: 'CN=alice,O=Acme', fingerprint: alice.fingerprint256, requests: 1 });
  });
});
