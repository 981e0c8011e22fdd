import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestPki } from '../helpers/pki.js';


describe('certgate check', () => {
  it('reports a wrong type, a typo\'d key, a missing key file and a missing CRL file in one run, each at its key, and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-check-'));
    await (await createTestPki()).writeTo(dir);
    const file = join(dir, 'certgate.yaml');
    writeFileSync(
      file,
      [
        'listen: {port: 0}',
        'tls:',
        '  cert: server.pem',
        '  key: missing-key.pem',
        '  clientCAs: [ca-bundle.pem]',
        'timeouts: {idle: soon}',
        'routes:',
        '  - name: r',
        '    upstream: http://127.0.0.1:1',
        '    allow: [{cnn: a}]',
        'revocation:',
        '  crl: {files: [missing.crl]}',
        '',
      ].join('\n'),
    );
    // Run from another folder: the file is named by its full path whatever the working directory.
    const r = await runCli(['check', '--config', file], { cwd: tmpdir() });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([
      `${file}:4:8 tls.key: cannot read ${join(dir, 'missing-key.pem')}: ENOENT`,
      `${file}:6:18 timeouts.idle: must be a duration such as 500ms, 10s, 5m, 12h or 1d (a number means milliseconds), got "soon"`,
      `${file}:10:14 routes[0].allow[0].cnn: unknown key (did you mean "cn"?)`,
      `${file}:12:17 revocation.crl.files[0]: cannot read ${join(dir, 'missing.crl')}: ENOENT`,
    ]);
  });

  it('prints ok for a config whose files are all good', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-check-'));
    await (await createTestPki()).writeTo(dir);
    const file = join(dir, 'certgate.yaml');
    writeFileSync(file, 'listen: {port: 0}\ntls: {cert: server.pem, key: server-key.pem, clientCAs: ca-bundle.pem}\nroutes: [{name: r, upstream: "http://127.0.0.1:1", allow: [{cn: a}]}]\n');
    const r = await runCli(['check', '--config', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${file}: ok (1 routes)\n`);
  });
});
