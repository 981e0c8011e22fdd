// curl --http2 with a client certificate through certgate: the same answers as HTTP/1.1.

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

const run = promisify(execFile);
let pki: TestPki;
let h: Harness;

beforeAll(async () => {
  pki = await createTestPki();
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'app', match: { pathPrefix: '/app' }, upstream: BACKEND, allow: [{ cn: 'alice' }] }],
    extra: { listen: { host: '127.0.0.1', port: 0, http2: true } },
  });
  const alice = await pki.client({ cn: 'alice' });
  writeFileSync(join(h.dir, 'alice.pem'), alice.chainPem);
  writeFileSync(join(h.dir, 'alice-key.pem'), alice.keyPem);
  writeFileSync(join(h.dir, 'root.pem'), pki.rootPem);
});

afterAll(async () => {
  await h?.close();
});

async function curl(path: string, withCert: boolean): Promise<{ version: string; status: number; body: any }> {
  const cert = withCert ? ['--cert', join(h.dir, 'alice.pem'), '--key', join(h.dir, 'alice-key.pem')] : [];
  const { stdout } = await run('curl', ['-sS', '--http2', '--cacert', join(h.dir, 'root.pem'), ...cert, '--resolve', `localhost:${h.port}:127.0.0.1`, '-w', '\n%{http_version} %{http_code}', `https://localhost:${h.port}${path}`]);
  const nl = stdout.lastIndexOf('\n');
  const [version, status] = stdout.slice(nl + 1).split(' ');
  return { version: version!, status: Number(status), body: JSON.parse(stdout.slice(0, nl)) };
}

describe('curl --http2', () => {
  it('goes through over HTTP/2 with its client certificate and gets the JSON refusals without one', async () => {
    const ok = await curl('/app/1', true);
    expect(ok.version).toBe('2');
    expect(ok.status).toBe(200);
    expect(ok.body.headers['x-client-cert-cn']).toBe('alice');
    const refused = await curl('/app/1', false);
    expect(refused.version).toBe('2');
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('certificate_required');
  });
});
