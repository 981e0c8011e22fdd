// Must-staple server certificates (TLS feature extension 1.3.6.1.5.5.7.1.24, status_request):
// `certgate check` warns when nothing can be stapled for one (no AIA OCSP URL, or stapling
// off), and `certgate scan` flags an endpoint that serves one without a staple.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { run } from '../../src/cli/cmd-scan.js';
import { checkConfig } from '../../src/config/check.js';
import { MUST_STAPLE_OID } from '../../src/lifecycle/must-staple.js';
import { INTERMEDIATE_TLS12_CIPHERS } from '../../src/tls/profile.js';
import { createTestPki, x509, type TestCert, type TestPki } from '../helpers/pki.js';

// TLSFeature ::= SEQUENCE OF INTEGER; 5 = status_request
const mustStaple = () => new x509.Extension(MUST_STAPLE_OID, false, new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05]));

let pki: TestPki;
let dir: string;
let noAia: TestCert;
let withAia: TestCert;
let plain: TestCert;
let server: Server | undefined;

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-must-staple-'));
  await pki.writeTo(dir);
  noAia = await pki.serverCert({ extensions: [mustStaple()] });
  withAia = await pki.serverCert({ extensions: [mustStaple()], ocspUrl: 'http://127.0.0.1:1/ocsp' });
  plain = await pki.serverCert({});
  for (const [name, c] of Object.entries({ 'no-aia': noAia, 'with-aia': withAia, plain })) {
    writeFileSync(join(dir, `${name}.pem`), c.chainPem);
    writeFileSync(join(dir, `${name}-key.pem`), c.keyPem);
  }
});

afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function mustStapleWarnings(name: string, tls: Record<string, unknown> = {}): string[] {
  const file = join(dir, `${name}-${Object.keys(tls).join('-')}.yaml`);
  writeFileSync(
    file,
    stringify({
      listen: { port: 0 },
      tls: { cert: `${name}.pem`, key: `${name}-key.pem`, clientCAs: ['ca-bundle.pem'], ...tls },
      routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', allow: [{ cn: 'a' }] }],
    }),
  );
  const r = checkConfig(file);
  expect(r.issues).toEqual([]);
  return r.warnings.filter((w) => /must-staple/.test(w.message)).map((w) => `${w.path}: ${w.message}`);
}

describe('must-staple', () => {
  it('certgate check warns when a must-staple certificate names no OCSP responder', () => {
    expect(mustStapleWarnings('no-aia')).toEqual([expect.stringMatching(/^tls\.cert: .*must-staple.*no http OCSP responder/)]);
  });

  it('certgate check warns when a must-staple certificate has a responder but tls.ocspStapling is false', () => {
    expect(mustStapleWarnings('with-aia', { ocspStapling: false })).toEqual([expect.stringMatching(/^tls\.cert: .*must-staple.*tls\.ocspStapling is false/)]);
  });

  it('certgate check says nothing about must-staple when it can staple, or when the certificate does not demand it', () => {
    expect(mustStapleWarnings('with-aia')).toEqual([]);
    expect(mustStapleWarnings('plain', { ocspStapling: false })).toEqual([]);
  });

  it('certgate scan flags (high) an endpoint that serves a must-staple certificate without a staple', async () => {
    server = createServer({ cert: noAia.chainPem, key: noAia.keyPem, minVersion: 'TLSv1.2', ciphers: INTERMEDIATE_TLS12_CIPHERS.join(':') }, (s) => s.end());
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    writeFileSync(join(dir, 'root.pem'), pki.rootPem);
    let out = '';
    const code = await run([`127.0.0.1:${(server.address() as { port: number }).port}`, '--servername', 'localhost', '--ca', join(dir, 'root.pem'), '--json'], { write: (t) => (out += t) });
    const r = JSON.parse(out).endpoints[0];
    expect(r.findings.filter((f: { id: string }) => f.id.startsWith('ocsp'))).toEqual([{ id: 'ocsp.must-staple', severity: 'high', message: expect.stringMatching(/must-staple.*stapled no response/) }]);
    expect(code).toBe(1);
  });
});
