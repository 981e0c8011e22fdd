// `certgate demo` prints curl commands that fit the config in use: every printed request is sent
// to a real certgate started from that config, and must get the status the hint promises.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app.js';
import { initAuthority } from '../../src/ca/authority.js';
import { devCertPaths, writeDevCerts } from '../../src/ca/dev-certs.js';
import { loadConfig } from '../../src/config/load.js';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { demoHints, renderHints, type DemoHint } from '../../src/demo/hints.js';
import { loadTlsMaterial } from '../../src/tls/material.js';
import { mtlsRequest } from '../helpers/certgate.js';
import { spawnCli } from '../helpers/cli.js';
import { WALKTHROUGH_CONFIG } from '../helpers/docs.js';

const ROOT = resolve(import.meta.dirname, '../..');
let dir: string;
let backend: EchoBackend;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'certgate-demo-'));
  await writeDevCerts(join(dir, 'certs-dev'));
  backend = await startEchoBackend(0, '127.0.0.1', { record: false });
});

afterAll(async () => {
  await backend?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The YAML with OS-chosen ports, the test's backend and no logs; everything else as written. */
function writeConfig(folder: string, yaml: string): string {
  const doc = parse(yaml) as Record<string, any>;
  doc.listen.port = 0;
  if (doc.admin) doc.admin.port = 0;
  for (const r of doc.routes) r.upstream = backend.url;
  doc.log = { level: 'silent', access: false };
  mkdirSync(join(dir, folder), { recursive: true });
  const file = join(dir, folder, 'certgate.yaml');
  writeFileSync(file, stringify(doc));
  return file;
}

/** Starts certgate on the config, computes the hints, and sends every request they print. */
async function hintsAgainstRunningProxy(file: string): Promise<DemoHint[]> {
  const config = loadConfig(file);
  const app = await startApp(config);
  try {
    const certsDir = join(dir, 'certs-dev');
    const hints = demoHints({ config, clientCas: loadTlsMaterial(config).cas, certsDir, port: app.port, cwd: dir });
    const clients = devCertPaths(certsDir).clients;
    for (const h of hints.filter((x) => x.request !== undefined)) {
      const r = h.request!;
      const c = r.client !== undefined ? clients[r.client] : undefined;
      const reply = await mtlsRequest(`https://127.0.0.1:${app.port}`, readFileSync(devCertPaths(certsDir).rootCa, 'utf8'), r.path, {
        method: r.method,
        ...(c !== undefined ? { client: { cert: readFileSync(c.cert, 'utf8'), key: readFileSync(c.key, 'utf8') } } : {}),
      });
      expect(reply.status, `${h.text} ${h.curl}`).toBe(r.expect);
    }
    return hints;
  } finally {
    await app.stop();
  }
}

// docs/ca.md's walkthrough config, read from the doc (test/docs/commands.test.ts runs the walkthrough itself).
const WALKTHROUGH = WALKTHROUGH_CONFIG;

describe('certgate demo hints', () => {
  it('for config/certgate.yaml: a working curl per route for a dev client it allows, mallory refused everywhere, 401 without a certificate', async () => {
    const file = writeConfig('config', readFileSync(join(ROOT, 'config/certgate.yaml'), 'utf8'));
    const hints = await hintsAgainstRunningProxy(file);
    const text = renderHints(hints);
    expect(text).toContain('Route "orders" (/orders): allowed for alice, bob. As alice:');
    expect(text).toContain('Route "admin-api" (/admin): allowed for alice. As alice:');
    expect(text).toContain('Route "default" (/): allowed for alice, bob. As alice:');
    expect(text).toContain('As mallory (trusted, but refused on every route with 403 identity_not_allowed):');
    expect(text).toContain('curl --cacert certs-dev/root-ca.pem --cert certs-dev/client-alice.pem --key certs-dev/client-alice-key.pem https://localhost:');
    expect(hints.map((h) => h.request?.expect)).toEqual([200, 200, 200, 403, 401]);
  });

  it('for the walkthrough config: no dev-client commands (none is trusted there), a template, and the 401 without a certificate', async () => {
    await initAuthority(join(dir, 'ca-demo', 'ca'), { intermediate: true });
    const file = writeConfig('ca-demo', WALKTHROUGH);
    const hints = await hintsAgainstRunningProxy(file);
    const text = renderHints(hints);
    expect(text).not.toMatch(/client-(alice|bob|mallory)|\/orders/);
    expect(text).toContain('None of the dev client certificates in certs-dev is trusted by tls.clientCAs');
    expect(text).toContain('--cert CERT.pem --key KEY.pem https://localhost:');
    expect(text).toContain('/billing');
    expect(hints.filter((h) => h.request !== undefined).map((h) => h.request!.expect)).toEqual([401]);
  });

  it('a route that only some trusted dev clients may use names them, and a refused one is shown on that route', async () => {
    const file = writeConfig(
      'mixed',
      stringify({
        listen: { host: '127.0.0.1', port: 8443 },
        tls: { cert: '../certs-dev/server.pem', key: '../certs-dev/server-key.pem', clientCAs: '../certs-dev/ca-bundle.pem' },
        admin: { enabled: false },
        routes: [
          { name: 'writes', match: { pathPrefix: '/w', methods: ['POST'] }, upstream: 'http://127.0.0.1:9001', allow: [{ cn: 'bob' }] },
          { name: 'reads', match: { pathPrefix: '/' }, upstream: 'http://127.0.0.1:9001', allow: [{ subject: '*' }] },
        ],
      }),
    );
    const hints = await hintsAgainstRunningProxy(file);
    const text = renderHints(hints);
    expect(text).toContain('Route "writes" (/w): allowed for bob. As bob:');
    expect(text).toContain('-X POST');
    expect(text).toContain('Route "reads" (/): allowed for alice, bob, mallory. As alice:');
    expect(text).toMatch(/As alice \(trusted, but refused on route "writes" with 403/);
  });
});

describe('the certgate demo command', () => {

  it('prints the hints of the walkthrough config, not the default alice/mallory ones', async () => {
    const file = join(dir, 'ca-demo', 'certgate.yaml');
    const { child, output } = await spawnCli(['demo', '--config', file, '--certs', join(dir, 'certs-dev'), '--backend-port', '0'], /Ctrl-C stops/, { cwd: dir });
    try {
      expect(output()).toContain('None of the dev client certificates in certs-dev is trusted by tls.clientCAs');
      expect(output()).not.toMatch(/client-alice|client-mallory|\/orders/);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }, 30_000);
});
