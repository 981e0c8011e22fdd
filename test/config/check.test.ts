import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { checkConfig } from '../../src/config/check.js';
import { formatConfigIssue } from '../../src/config/issues.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let dir: string;

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-checkconfig-'));
  await pki.writeTo(dir);
  writeFileSync(join(dir, 'intermediate.crl'), (await pki.crl()).pem);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, config: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    stringify({
      listen: { port: 0 },
      tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
      routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', allow: [{ cn: 'a' }] }],
      ...config,
    }),
  );
  return file;
}

const lines = (file: string) => checkConfig(file).issues.map(formatConfigIssue).map((l) => l.slice(file.length));

describe('checkConfig', () => {
  it('returns the config when the schema, the TLS files and the CRL files are all good', () => {
    const r = checkConfig(write('good.yaml', { revocation: { crl: { files: ['intermediate.crl'] } } }));
    expect(r.issues).toEqual([]);
    expect(r.config?.revocation.crl.files).toEqual([join(dir, 'intermediate.crl')]);
  });

  it('checks CRL files against the CAs that loaded when the server key is missing', () => {
    const file = write('nokey.yaml', { tls: { cert: 'server.pem', key: 'gone.pem', clientCAs: ['ca-bundle.pem'] }, revocation: { crl: { files: ['intermediate.crl', 'gone.crl'] } } });
    const r = checkConfig(file);
    expect(r.config).toBeUndefined();
    expect(r.issues.map((i) => i.path)).toEqual(['tls.key', 'revocation.crl.files[1]']);
  });

  it('reports a key with a schema error once, and checks the files of the other keys', () => {
    const file = write('badcas.yaml', { tls: { cert: 'server.pem', key: 'gone.pem', clientCAs: [] }, revocation: { crl: { files: ['gone.crl'] } } });
    expect(lines(file)).toEqual([
      `:5:8 tls.key: cannot read ${join(dir, 'gone.pem')}: ENOENT`,
      ':6:14 tls.clientCAs: must not be empty, got a list',
      `:15:9 revocation.crl.files[0]: cannot read ${join(dir, 'gone.crl')}: ENOENT`,
    ]);
  });

  it('reports a file that cannot be read as an error at (file)', () => {
    const missing = join(dir, 'nope.yaml');
    expect(checkConfig(missing).issues.map(formatConfigIssue)).toEqual([`${missing}:1:1 (file): file not found`]);
  });

  it('checks the admin.tls files with the other errors, under their admin keys', () => {
    const file = write('admintls.yaml', {
      tls: { cert: 'server.pem', key: 'gone.pem', clientCAs: ['ca-bundle.pem'] },
      admin: { tls: { cert: 'server.pem', key: 'gone-too.pem', clientCAs: 'ca-bundle.pem', allow: [{ cn: 'ops' }] } },
    });
    expect(checkConfig(file).issues.map((i) => i.path)).toEqual(['tls.key', 'admin.tls.key']);
  });
});

describe('reload and check', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
      serverCa: pki.rootPem,
      routes: [{ name: 'r', upstream: BACKEND, allow: [{ cn: 'alice' }] }],
    });
  });
  afterAll(() => h?.close());

  it('name every error the same way, with the full path of the file, and reload reports all of them at once', () => {
    h.writeConfig((c) => {
      (c.tls as Record<string, unknown>).key = 'gone.pem';
      c.timeouts = { idle: 'soon' };
      c.revocation = { crl: { files: ['gone.crl'] } };
    });
    const r = h.app.reload();
    expect(r.ok).toBe(false);
    const check = checkConfig(h.configFile).issues.map(formatConfigIssue);
    expect(check).toHaveLength(3);
    expect(r.errors).toEqual(check);
    for (const e of r.errors) expect(e.startsWith(`${h.configFile}:`)).toBe(true);
  });

  it('refuses a restart-only change at the line of its key', () => {
    h.writeConfig((c) => {
      (c.tls as Record<string, unknown>).key = 'server-key.pem';
      delete c.timeouts;
      delete c.revocation;
      (c.listen as Record<string, unknown>).port = 1;
    });
    const r = h.app.reload();
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual([expect.stringMatching(new RegExp(`^${h.configFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+ listen\\.port: cannot change while running; restart certgate to apply it$`))]);
  });
});
