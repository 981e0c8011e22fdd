// Config `monitors:` in a running certgate: endpoints scanned at start become metrics
// (certgate_monitor_healthy, certgate_cert_not_after_seconds{role="monitor"}) and a warning line.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

const DAY = 86_400_000;
let pki: TestPki;
let h: Harness;
let dir: string;
let healthy: string;
let broken: string;
let expired: TestCert;
const servers: Server[] = [];

async function serve(cert: string, key: string): Promise<string> {
  const s = createServer({ cert, key }, (sock) => sock.end());
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `127.0.0.1:${(s.address() as { port: number }).port}`;
}


beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-monitors-'));
  writeFileSync(join(dir, 'root.pem'), pki.rootPem);
  expired = await pki.serverCert({ notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) });
  healthy = await serve(pki.server.chainPem, pki.server.keyPem);
  broken = await serve(expired.chainPem, expired.keyPem);
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }],
    extra: {
      log: { level: 'info', access: false, file: join(dir, 'certgate.log') },
      monitors: [
        { address: healthy, servername: 'localhost', ca: join(dir, 'root.pem'), interval: '1h' },
        { address: broken, servername: 'localhost', ca: join(dir, 'root.pem'), interval: '1h' },
      ],
    },
  });
});

afterAll(async () => {
  await h?.close();
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('monitors', () => {
  it('scans every monitor at start and exports health and notAfter metrics', async () => {
    await waitFor(() => h.app.monitors.results().every((r) => r !== undefined), { what: 'every monitor to have a result' });
    const [ok, bad] = h.app.monitors.results();
    expect(ok!.healthy).toBe(true);
    expect(bad!.healthy).toBe(false);
    const text = await registry.metrics();
    expect(text).toContain(`certgate_monitor_healthy{address="${healthy}"} 1`);
    expect(text).toContain(`certgate_monitor_healthy{address="${broken}"} 0`);
    const notAfter = Math.floor(Date.parse(expired.nodeCert.validTo) / 1000);
    expect(text).toContain(`certgate_cert_not_after_seconds{role="monitor",subject="CN=localhost,O=certgate-test",serial="${expired.serial}",fingerprint="${expired.fingerprint256}"} ${notAfter}`);
    expect(text).toContain(`serial="${pki.server.serial}",fingerprint="${pki.server.fingerprint256}"} ${Math.floor(Date.parse(pki.server.nodeCert.validTo) / 1000)}`);
  });

  it('logs a warning line naming the broken endpoint and its problem', async () => {
    await waitFor(() => h.app.monitors.results().every((r) => r !== undefined), { what: 'every monitor to have a result' });
    h.app.loggers.flush();
    const lines = readFileSync(join(dir, 'certgate.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const warn = lines.find((l) => l.event === 'monitor_problem');
    expect(warn).toMatchObject({ level: 40, address: broken });
    expect(warn.problems.join('\n')).toMatch(/the server certificate expired on/);
    expect(lines.some((l) => l.event === 'monitor_problem' && l.address === healthy)).toBe(false);
  });

  it('stops scanning and drops its health series when the monitors are removed by a reload', async () => {
    h.writeConfig((cfg) => {
      cfg.monitors = [];
    });
    expect(h.app.reload().ok).toBe(true);
    expect(h.app.monitors.results()).toEqual([]);
    expect(await registry.metrics()).not.toContain('certgate_monitor_healthy{');
  });
});
