// The fleet inventory with an instance running `workers: 2` beside a single-process one, on one
// real redis-server: each worker writes its own field (`i:INSTANCE#wN`), so requests of one client
// spread over both workers all count, in the other instance's GET /certs and in the cluster
// primary's, which names the instance (not its workers) and shows the other instance's clients too.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mtlsRequest } from '../helpers/certgate.js';
import { startCertgate, stopCli, type StartedCertgate } from '../helpers/cli.js';
import { writeYamlConfig } from '../helpers/config.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let redis: TestRedis;
let backend: EchoBackend;
let dir: string;
let w: StartedCertgate;
let b: StartedCertgate;

function config(name: string, workers: number): string {
  return writeYamlConfig(join(dir, `${name}.yaml`), {
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
    admin: { enabled: true, host: '127.0.0.1', port: 0, tokenFile: 'admin.token' },
    log: { level: 'info', access: false },
    watch: { enabled: false },
    workers,
    store: { instance: name, redis: { url: redis.url, keyPrefix: 'fleetw:' } },
    routes: [{ name: 'api', match: { pathPrefix: '/api' }, upstream: backend.url, allow: [{ cn: 'client-*' }] }],
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  redis = await startRedis();
  backend = await startEchoBackend();
  dir = mkdtempSync(join(tmpdir(), 'certgate-fleet-workers-'));
  await pki.writeTo(dir);
  writeFileSync(join(dir, 'admin.token'), 'a'.repeat(40) + '\n', { mode: 0o600 });
  [w, b] = await Promise.all([startCertgate(config('edge-w', 2), '"workers":2'), startCertgate(config('edge-b', 1))]);
}, 30_000);

afterAll(async () => {
  await Promise.allSettled([w, b].filter(Boolean).map((p) => stopCli(p.child)));
  await backend?.close();
  await redis?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** One request on a fresh connection (the cluster hands connections to its workers in turn). */
const call = (p: StartedCertgate, client: TestCert) => mtlsRequest(`https://127.0.0.1:${p.port}`, pki.rootPem, '/api/x', { client: { cert: client.chainPem, key: client.keyPem } });
interface Certs { fleet: boolean; instance: string; clients: { fingerprint: string; instances: string[]; requests: number }[] }
const certs = async (p: StartedCertgate): Promise<Certs> => (await (await fetch(`http://127.0.0.1:${p.adminPort}/certs`)).json()) as Certs;
const entry = (r: Certs, c: TestCert) => r.clients.find((e) => e.fingerprint === c.fingerprint256);

describe('fleet inventory with workers', () => {
  it('counts every worker\'s requests of one client, in the other instance\'s view and in the primary\'s', async () => {
    const c = await pki.client({ cn: 'client-w' });
    for (let i = 0; i < 6; i++) expect((await call(w, c)).status).toBe(200);
    // Both workers served it, each under a field of its own.
    const probe = redis.client();
    try {
      const fields = await waitFor(async () => {
        const f = (await probe.hkeys(`fleetw:inv:c:${c.fingerprint256}`)).filter((k) => k.startsWith('i:')).sort();
        return f.length === 2 ? f : undefined;
      }, { deadline: 3000, every: 100, what: 'one inventory field per worker' });
      expect(fields).toEqual(['i:edge-w#w1', 'i:edge-w#w2']);
    } finally {
      probe.disconnect();
    }

    const onB = await waitFor(async () => {
      const r = await certs(b);
      return entry(r, c)?.requests === 6 ? r : undefined;
    }, { deadline: 3000, every: 100, what: 'all 6 requests in the other instance\'s fleet view' });
    expect(entry(onB, c)).toMatchObject({ instances: ['edge-w'], requests: 6 });

    // A client seen only by the single-process instance shows in the primary's view as well.
    const other = await pki.client({ cn: 'client-b' });
    expect((await call(b, other)).status).toBe(200);
    const onW = await waitFor(async () => {
      const r = await certs(w);
      return entry(r, other)?.requests === 1 ? r : undefined;
    }, { deadline: 3000, every: 100, what: 'the other instance\'s client in the primary\'s GET /certs' });
    expect(onW).toMatchObject({ fleet: true, instance: 'edge-w' });
    expect(entry(onW, c)).toMatchObject({ instances: ['edge-w'], requests: 6 });
    expect(entry(onW, other)).toMatchObject({ instances: ['edge-b'], requests: 1 });
  }, 20_000);
});
