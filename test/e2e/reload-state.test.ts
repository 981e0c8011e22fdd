// Mutable state lives outside the Runtime snapshot and survives a reload: upstream health.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let refusedPort: number;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice' });
  // A port that refuses connections: bind, note it, close.
  const tmp: Server = createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
  refusedPort = (tmp.address() as AddressInfo).port;
  await new Promise((r) => tmp.close(r));
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    // The refused target first: a fresh round-robin starts with it.
    routes: [{ name: 'pair', upstream: [`http://127.0.0.1:${refusedPort}`, BACKEND], allow: [{ cn: 'alice' }] }],
  });
});

afterAll(async () => {
  await h?.close();
});

// A POST with a body is never retried on another target: where it goes is what it gets.
const post = () => h.request('/p', { method: 'POST', body: 'x', client: { cert: alice.chainPem, key: alice.keyPem } });

describe('upstream health across a reload', () => {
  it('keeps skipping a target that refused connections after the configuration is reloaded', async () => {
    expect((await post()).status).toBe(502); // the refused target, now marked down
    expect((await post()).status).toBe(200);
    h.writeConfig((cfg) => {
      cfg.log = { ...(cfg.log as object), level: 'warn' };
    });
    const r = h.app.reload();
    expect(r.ok).toBe(true);
    expect(r.generation).toBeGreaterThan(1);
    expect((await post()).status).toBe(200);
    expect((await post()).status).toBe(200);
  });
});
