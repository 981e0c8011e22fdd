import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend } from '../../src/demo/echo-backend.js';
import { mtlsRequest } from '../helpers/certgate.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { createTestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

describe('certgate CLI', () => {
  it('prints help and version', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('certgate start --config FILE');
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^certgate \d+\.\d+\.\d+/);
  });

  it('exits 2 with a usage error for unknown subcommands and flags', async () => {
    const sub = await runCli(['frobnicate']);
    expect(sub.code).toBe(2);
    expect(sub.stderr).toContain('unknown command "frobnicate"');
    const flag = await runCli(['check', '--config', 'x.yaml', '--bogus']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--bogus');
    const missing = await runCli(['check']);
    expect(missing.code).toBe(2);
  });

  it('check prints every config error with file, line, column and key path, and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      [
        'listen: { host: 127.0.0.1, port: 8443 }',
        'tls: { cert: a.pem, key: b.pem, clientCAs: [c.pem] }',
        'routes:',
        '  - name: orders',
        '    upstream: http://127.0.0.1:9001',
        '    allow:',
        '      - cnn: billing',
        '  - name: orders',
        '    upstream: ftp://x',
        '',
      ].join('\n'),
    );
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:7:9 routes\\[0\\]\\.allow\\[0\\]\\.cnn: unknown key`));
    expect(r.stderr).toContain('routes[1].upstream');
    expect(r.stderr).toContain('routes[1].name');
  });

  it('check reports unreadable TLS files with the line of their key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-cli-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, stringify({ listen: { port: 8443 }, tls: { cert: 'missing.pem', key: 'k.pem', clientCAs: ['ca.pem'] }, routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', allow: [{ cn: 'a' }] }] }));
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/c\.yaml:\d+:\d+ tls\.cert: cannot read .*missing\.pem: ENOENT/);
  });

  it('dev-certs writes a hierarchy with private keys readable by the owner only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-dev-'));
    const r = await runCli(['dev-certs', '--out', dir]);
    expect(r.code).toBe(0);
    for (const f of ['root-ca.pem', 'intermediate-ca.pem', 'ca-bundle.pem', 'server.pem', 'client-alice.pem', 'client-bob.pem', 'client-mallory.pem']) {
      expect(readFileSync(join(dir, f), 'utf8')).toContain('BEGIN CERTIFICATE');
    }
    expect(statSync(join(dir, 'server-key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'client-alice-key.pem')).mode & 0o777).toBe(0o600);
  });

  it('drains on SIGTERM: the in-flight request finishes, new connections are refused, exit 0', async () => {
    const pki = await createTestPki();
    const dir = mkdtempSync(join(tmpdir(), 'certgate-term-'));
    await pki.writeTo(dir);
    const alice = await pki.client({ cn: 'alice' });
    const backend = await startEchoBackend();
    const file = join(dir, 'certgate.yaml');
    writeFileSync(
      file,
      stringify({
        listen: { host: '127.0.0.1', port: 0 },
        tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
        admin: { enabled: false },
        timeouts: { shutdown: '5s' },
        routes: [{ name: 'all', upstream: backend.url, allow: [{ cn: 'alice' }] }],
      }),
    );
    const { child, output } = await spawnCli(['start', '--config', file], /"event":"listening".*"port":(\d+)/);
    const port = Number(/"event":"listening".*?"port":(\d+)/.exec(output())![1]);
    const origin = `https://127.0.0.1:${port}`;
    const creds = { cert: alice.chainPem, key: alice.keyPem };
    const inflight = mtlsRequest(origin, pki.rootPem, '/slow?ms=800', { client: creds });
    await waitFor(() => backend.received.some((r) => r.url.startsWith('/slow')), { what: 'the slow request to reach the backend' });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await waitFor(() => output().includes('"event":"draining"'), { what: 'certgate to stop accepting' });
    await expect(mtlsRequest(origin, pki.rootPem, '/', { client: creds })).rejects.toThrow();
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(await exited).toBe(0);
    expect(output()).toContain('"event":"stopped"');
    await backend.close();
  });
});

describe('admin.tls', () => {
  it('is accepted by check now that the mTLS admin listener exists', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-cli-'));
    const file = join(dir, 'c.yaml');
    const pki = await createTestPki();
    await pki.writeTo(dir);
    writeFileSync(
      file,
      stringify({
        listen: { port: 0 },
        tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
        admin: { port: 0, tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: 'ca-bundle.pem', allow: [{ cn: 'ops' }] } },
        routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', allow: [{ cn: 'a' }] }],
      }),
    );
    const r = await runCli(['check', '--config', file]);
    expect(r.stderr).not.toMatch(/admin\.tls/);
    expect(r.code).toBe(0);
  });
});
