// The fleet inventory with two certgate processes on one real redis-server: a client seen by one
// instance is in the other's GET /certs (and `certgate inventory --config`) within 2 s, merged per
// certificate with the instances named; the fleet view keeps the admin protection (B's admin
// listener is mTLS with a read-only viewer); with Redis down each instance answers with its own
// clients and says so, and what it saw meanwhile reaches the fleet once Redis is back.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mtlsRequest, type Reply } from '../helpers/certgate.js';
import { runCli, startCertgate, stopCli, type StartedCertgate } from '../helpers/cli.js';
import { writeYamlConfig } from '../helpers/config.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let adminPki: TestPki;
let redis: TestRedis;
let backend: EchoBackend;
let dir: string;
let a: StartedCertgate;
let b: StartedCertgate;
let viewer: TestCert;
let configB: string;

function config(name: string, admin: Record<string, unknown>, file = join(dir, `${name}.yaml`)): string {
  return writeYamlConfig(file, {
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
    admin: { enabled: true, host: '127.0.0.1', port: 0, tokenFile: 'admin.token', ...admin },
    log: { level: 'info', access: false },
    watch: { enabled: false },
    store: { instance: name, redis: { url: redis.url, keyPrefix: 'fleet:' } },
    routes: [{ name: 'api', match: { pathPrefix: '/api' }, upstream: backend.url, allow: [{ cn: 'client-*' }] }],
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  adminPki = await pki.untrustedRoot();
  redis = await startRedis();
  backend = await startEchoBackend();
  dir = mkdtempSync(join(tmpdir(), 'certgate-fleet-inv-'));
  await pki.writeTo(dir);
  viewer = await adminPki.client({ cn: 'viewer' });
  writeFileSync(join(dir, 'admin.token'), 'a'.repeat(40) + '\n', { mode: 0o600 });
  writeFileSync(join(dir, 'admin-ca.pem'), adminPki.caBundlePem);
  writeFileSync(join(dir, 'viewer.pem'), viewer.chainPem);
  writeFileSync(join(dir, 'viewer-key.pem'), viewer.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'server-root.pem'), pki.rootPem);
  const configA = config('edge-a', {});
  const adminB = (client: Record<string, unknown>) => ({
    tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: 'admin-ca.pem', allow: [{ cn: 'viewer', role: 'read' }] },
    client: { cert: 'viewer.pem', key: 'viewer-key.pem', ca: 'server-root.pem', ...client },
  });
  configB = config('edge-b', adminB({}));
  [a, b] = await Promise.all([startCertgate(configA), startCertgate(configB)]);
  // What an operator's copy of B's config says: where B's admin API is (its port was 0).
  configB = config('edge-b', adminB({ url: `https://127.0.0.1:${b.adminPort}` }), join(dir, 'edge-b-cli.yaml'));
});

afterAll(async () => {
  await Promise.allSettled([a, b].filter(Boolean).map((p) => stopCli(p.child)));
  await backend?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const call = (p: StartedCertgate, client: TestCert) => mtlsRequest(`https://127.0.0.1:${p.port}`, pki.rootPem, '/api/x', { client: { cert: client.chainPem, key: client.keyPem } });
/** B's admin API over mTLS as the read-only viewer (or with no certificate). */
const certsOnB = (as: TestCert | null = viewer): Promise<Reply> =>
  mtlsRequest(`https://127.0.0.1:${b.adminPort}`, pki.rootPem, '/certs', as === null ? {} : { client: { cert: as.chainPem, key: as.keyPem } });
const entryOf = (r: Reply, c: TestCert) => (r.json?.clients as { fingerprint: string; instances?: string[]; requests: number }[] | undefined)?.find((e) => e.fingerprint === c.fingerprint256);

describe('fleet inventory', () => {
  it('shows a client seen by instance A in B\'s GET /certs within 2 s, merged with B\'s own sightings', async () => {
    const c = await pki.client({ cn: 'client-1', days: 5 });
    expect((await call(a, c)).status).toBe(200);
    const seen = Date.now();
    const onB = await waitFor(async () => {
      const r = await certsOnB();
      // A flush can fall between the connection and its request: wait for the request too.
      return entryOf(r, c)?.requests === 1 ? r : undefined;
    }, { deadline: 2000, every: 100, what: 'the client seen on A in B\'s GET /certs' });
    expect(Date.now() - seen).toBeLessThan(2000);
    expect(onB.json).toMatchObject({ fleet: true, instance: 'edge-b' });
    expect(entryOf(onB, c)).toMatchObject({ instances: ['edge-a'], requests: 1, subject: 'CN=client-1,O=certgate-test' });

    expect((await call(b, c)).status).toBe(200);
    const both = await waitFor(async () => {
      const e = entryOf(await certsOnB(), c);
      return e?.instances?.length === 2 && e.requests === 2 ? e : undefined;
    }, { deadline: 2000, every: 100, what: 'both instances on the entry' });
    expect(both).toMatchObject({ instances: ['edge-a', 'edge-b'], requests: 2 });
  });

  it('applies expiring-soon filters to the fleet view, and `certgate inventory --config` against B lists A\'s clients', async () => {
    const soon = await pki.client({ cn: 'client-soon', days: 2 });
    const later = await pki.client({ cn: 'client-later', days: 60 });
    expect((await call(a, soon)).status).toBe(200);
    expect((await call(a, later)).status).toBe(200);
    await waitFor(async () => entryOf(await certsOnB(), later) !== undefined, { deadline: 2000, every: 100, what: 'A\'s clients on B' });
    const filtered = await mtlsRequest(`https://127.0.0.1:${b.adminPort}`, pki.rootPem, '/certs?expiringWithinDays=10', { client: { cert: viewer.chainPem, key: viewer.keyPem } });
    expect(entryOf(filtered, soon)).toBeDefined();
    expect(entryOf(filtered, later)).toBeUndefined();

    const cli = await runCli(['inventory', '--config', configB, '--expiring-within', '10d']);
    expect(cli.code, cli.stderr).toBe(0);
    const [header, ...rows] = cli.stdout.trim().split('\n');
    expect(header).toMatch(/INSTANCES/);
    expect(rows.find((r) => r.includes('CN=client-soon'))).toMatch(/edge-a/);
    expect(rows.some((r) => r.includes('CN=client-later'))).toBe(false);
    const json = await runCli(['inventory', '--config', configB, '--json']);
    expect((JSON.parse(json.stdout) as { subject: string; instances: string[] }[]).find((e) => e.subject === 'CN=client-later,O=certgate-test')?.instances).toEqual(['edge-a']);
  });

  it('keeps the admin protection on the fleet view: a read-only admin certificate reads it, no certificate is refused', async () => {
    const none = await certsOnB(null);
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('certificate_required');
    const stranger = await (await pki.untrustedRoot()).client({ cn: 'viewer' });
    expect((await certsOnB(stranger)).status).toBe(403);
    const ok = await certsOnB(viewer);
    expect(ok.status).toBe(200);
    expect(ok.json.fleet).toBe(true);
  });

  it('answers with this instance\'s clients and "fleet": false while Redis is down, and flushes what it saw once Redis is back', async () => {
    await redis.kill();
    try {
      const down = await certsOnB();
      expect(down.status).toBe(200);
      expect(down.json.fleet).toBe(false);
      const during = await pki.client({ cn: 'client-outage' });
      expect((await call(a, during)).status).toBe(200);
      const r = (await (await fetch(`http://127.0.0.1:${a.adminPort}/certs`)).json()) as { fleet: boolean; instance: string; clients: { fingerprint: string; instances: string[] }[] };
      expect(r.fleet).toBe(false);
      expect(r.instance).toBe('edge-a');
      expect(r.clients.find((e) => e.fingerprint === during.fingerprint256)?.instances).toEqual(['edge-a']);
      await redis.restart();
      // Redis came back empty: the client seen during the outage reaches B, and so does one
      // seen before it (re-sent because the store lost it).
      const r2 = await waitFor(async () => {
        const v = await certsOnB();
        return entryOf(v, during) !== undefined && v.json.clients.some((e: { subject: string }) => e.subject === 'CN=client-1,O=certgate-test') ? v : undefined;
      }, { deadline: 5000, every: 200, what: 'the clients of A on B after Redis returns' });
      expect(r2.json.fleet).toBe(true);
    } finally {
      if ((await redis.client().ping().catch(() => undefined)) !== 'PONG') await redis.restart();
    }
  });
});
