// `certgate check` and start on the TLS profile keys and on the server chain: an unknown suite or
// curve is an error at its line, an incomplete chain a warning (an error with
// tls.requireCompleteChain), and the dev certificates serve a complete chain.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { writeDevCerts } from '../../src/ca/dev-certs.js';
import { checkConfig } from '../../src/config/check.js';
import { formatConfigIssue } from '../../src/config/issues.js';
import { BACKEND, startHarness } from '../helpers/certgate.js';
import { createTestPki, type TestCa, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let dir: string;
let subCa: TestCa;

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-tls-check-'));
  await pki.writeTo(dir);
  subCa = await pki.ca({ subject: 'CN=sub CA, O=certgate-test' });
  const underSub = await pki.serverCert({ issuer: subCa });
  const underRoot = await pki.serverCert({ issuer: 'root' });
  const files: Record<string, string> = {
    'leaf-only.pem': pki.server.certPem,
    'leaf-root.pem': pki.server.certPem + pki.root.certPem,
    'full.pem': pki.server.chainPem + pki.root.certPem,
    'under-sub-key.pem': underSub.keyPem,
    'under-sub-gap.pem': underSub.certPem + subCa.certPem,
    'under-sub-full.pem': underSub.chainPem,
    'under-root-key.pem': underRoot.keyPem,
    'under-root-leaf.pem': underRoot.certPem,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, tls: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    stringify({
      listen: { port: 0 },
      tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'], ...tls },
      routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', allow: [{ cn: 'a' }] }],
    }),
  );
  return file;
}

const format = (file: string, issues: Parameters<typeof formatConfigIssue>[0][]) => issues.map(formatConfigIssue).map((l) => l.slice(file.length));

describe('tls.ciphers and tls.ecdhCurves are checked against this OpenSSL', () => {
  it('reports an unknown suite in tls.ciphers at its line and column, naming it', () => {
    const file = write('bad-cipher.yaml', { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA257' });
    const r = checkConfig(file);
    expect(r.config).toBeUndefined();
    expect(format(file, [...r.issues])).toEqual([
      ':8:12 tls.ciphers: "ECDHE-ECDSA-AES128-GCM-SHA257" is not a cipher suite this OpenSSL knows (see `openssl ciphers -v`)',
    ]);
  });

  it('reports a misspelt alias and an unknown TLS 1.3 suite, and accepts aliases OpenSSL knows', () => {
    const file = write('bad-alias.yaml', { ciphers: 'HIHG:TLS_AES_512_GCM_SHA768:ECDHE+AESGCM:!aNULL:@STRENGTH' });
    expect(checkConfig(file).issues.map((i) => i.message)).toEqual([expect.stringContaining('"HIHG", "TLS_AES_512_GCM_SHA768" are not')]);
    expect(checkConfig(write('good-alias.yaml', { ciphers: 'ECDHE+AESGCM:!aNULL:@STRENGTH' })).issues).toEqual([]);
  });

  it('reports an unknown curve in tls.ecdhCurves and accepts known ones', () => {
    const file = write('bad-curve.yaml', { ecdhCurves: 'X25519:P-999' });
    const r = checkConfig(file);
    expect(format(file, [...r.issues])).toEqual([expect.stringMatching(/^:\d+:\d+ tls\.ecdhCurves: "P-999" is not a curve this OpenSSL knows/)]);
    expect(checkConfig(write('good-curve.yaml', { ecdhCurves: 'X25519:prime256v1:secp384r1' })).issues).toEqual([]);
  });

  it('refuses to start with an unknown suite instead of serving what OpenSSL falls back to', async () => {
    await expect(
      startHarness({
        tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
        serverCa: pki.rootPem,
        routes: [{ name: 'all', upstream: BACKEND, allow: [{ subject: '*' }] }],
        extra: { tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['clients-ca.pem'], ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:NOPE-CBC' }, log: { level: 'silent' } },
      }),
    ).rejects.toThrow(/tls\.ciphers: "NOPE-CBC" is not a cipher suite/);
  });
});

describe('the server certificate file must be a complete chain', () => {
  const chainWarnings = (file: string) => checkConfig(file).warnings.filter((w) => w.path === 'tls.cert').map((w) => w.message);

  it.each([
    ['leaf + intermediate', 'server.pem', 'server-key.pem'],
    ['leaf + intermediate + root', 'full.pem', 'server-key.pem'],
    ['leaf + sub CA + intermediate', 'under-sub-full.pem', 'under-sub-key.pem'],
  ])('is complete: %s', (_, cert, key) => {
    expect(chainWarnings(write(`ok-${cert}.yaml`, { cert, key }))).toEqual([]);
  });

  it.each([
    ['a leaf alone, issued by an intermediate', 'leaf-only.pem', 'server-key.pem'],
    ['a leaf alone, issued by a root', 'under-root-leaf.pem', 'under-root-key.pem'],
    ['a leaf and the root, without the intermediate between them', 'leaf-root.pem', 'server-key.pem'],
    ['a leaf and its sub CA, without the intermediate the client CA bundle shows above it', 'under-sub-gap.pem', 'under-sub-key.pem'],
  ])('is incomplete: %s (a warning at tls.cert; the config still runs)', (_, cert, key) => {
    const r = checkConfig(write(`gap-${cert}.yaml`, { cert, key }));
    expect(r.issues).toEqual([]);
    expect(r.config).toBeDefined();
    expect(r.warnings.map((w) => w.path)).toEqual(['tls.cert']);
    expect(r.warnings[0]!.message).toMatch(/is an incomplete chain: the issuer of ".+" \(".+"\) is not in the file/);
  });

  it('is refused with tls.requireCompleteChain: true', () => {
    const file = write('strict.yaml', { cert: 'leaf-only.pem', requireCompleteChain: true });
    const r = checkConfig(file);
    expect(r.config).toBeUndefined();
    expect(format(file, [...r.issues])).toEqual([expect.stringMatching(/^:\d+:\d+ tls\.cert: .*leaf-only\.pem is an incomplete chain.*\(tls\.requireCompleteChain is on\)$/)]);
    expect(checkConfig(write('strict-ok.yaml', { requireCompleteChain: true })).issues).toEqual([]);
  });
});

describe('the dev certificates', () => {
  it('serve a complete chain: a client trusting only the dev root verifies the listener, and the listener sends leaf + intermediate', async () => {
    const devDir = join(dir, 'dev');
    const dev = await writeDevCerts(devDir);
    const { readFileSync } = await import('node:fs');
    const read = (p: string) => readFileSync(p, 'utf8');
    expect(checkConfig(write('dev.yaml', { cert: dev.paths.server, key: dev.paths.serverKey, clientCAs: [dev.paths.caBundle], requireCompleteChain: true })).issues).toEqual([]);
    const h = await startHarness({
      tls: { serverCert: read(dev.paths.server), serverKey: read(dev.paths.serverKey), caBundle: read(dev.paths.caBundle) },
      serverCa: read(dev.paths.rootCa),
      routes: [{ name: 'all', upstream: BACKEND, allow: [{ subject: '*' }] }],
    });
    try {
      const authorized = await new Promise<boolean>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: h.port, servername: 'localhost', ca: read(dev.paths.rootCa), rejectUnauthorized: true }, () => {
          resolve(s.authorized);
          s.destroy();
        });
        s.once('error', reject);
      });
      expect(authorized).toBe(true);
      const shown = await new Promise<string>((resolve) => {
        const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${h.port}`, '-servername', 'localhost', '-showcerts'], { timeout: 15_000 }, (_e, out) => resolve(out));
        child.stdin?.end();
      });
      const subjects = [...shown.matchAll(/^\s*\d+ s:(.*)$/gm)].map((m) => m[1]);
      expect(subjects).toEqual([expect.stringContaining('localhost'), expect.stringContaining('certgate dev intermediate CA')]);
    } finally {
      await h.close();
    }
  });
});
