// Alerts of a running certgate, delivered to a real webhook receiver on 127.0.0.1: the JSON and
// Slack bodies, once per certificate and threshold across a reload and a restart, retries,
// the URL kept secret, a hanging receiver, failed reloads, revocation changes, event filters.

import { createServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LEDGER_FILE } from '../../src/alerts/wiring.js';
import { startApp } from '../../src/app.js';
import { checkConfig } from '../../src/config/check.js';
import { formatConfigIssue } from '../../src/config/issues.js';
import { loadConfig } from '../../src/config/load.js';
import { metrics } from '../../src/metrics.js';
import { appendRecords, entryFromInput } from '../../src/revocation/local-list.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { startReceiver, type Receiver } from './receiver.js';

const SECRET = 'SECRETTOKEN42';
const ROUTES = [{ name: 'any', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }];

let pki: TestPki;
let client: TestCert;
let receiver: Receiver;
const harnesses: Harness[] = [];

beforeAll(async () => {
  pki = await createTestPki();
  client = await pki.client({ cn: 'alice' });
});

afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  await receiver?.close();
});

async function start(alerts: Record<string, unknown>, opts: { server?: TestCert; extra?: Record<string, unknown>; admin?: boolean } = {}): Promise<Harness> {
  const server = opts.server ?? pki.server;
  const h = await startHarness({
    tls: { serverCert: server.chainPem, serverKey: server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: ROUTES,
    admin: opts.admin ?? false,
    extra: { log: { level: 'info', access: false, file: 'certgate.log' }, alerts, ...opts.extra },
  });
  harnesses.push(h);
  return h;
}

const idle = (h: Harness) => h.app.alerts.alerts.idle();

function logText(h: Harness): string {
  h.app.loggers.flush();
  try {
    return readFileSync(join(h.dir, 'certgate.log'), 'utf8');
  } catch {
    return '';
  }
}

async function alertCount(event: string, result: string): Promise<number> {
  return (await metrics.alerts.get()).values.find((v) => v.labels.event === event && v.labels.result === result)?.value ?? 0;
}

/** Breaks the config file so that the next reload fails (and raises reload_failed). */
function breakConfig(h: Harness): void {
  writeFileSync(h.configFile, readFileSync(h.configFile, 'utf8') + '\nnotAKey: 1\n');
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('expiry alerts', () => {
  it('sends one JSON alert for the smallest threshold crossed at start, none again after a reload or a restart, and one for a new smaller threshold', async () => {
    receiver = await startReceiver();
    const server = await pki.serverCert({ days: 5 });
    const h = await start({ webhooks: [{ url: `${receiver.url}/json` }] }, { server });
    await waitFor(() => receiver.received.length >= 1, { what: 'the start alert' });
    await idle(h);
    expect(receiver.received).toHaveLength(1);
    const a = receiver.received[0]!;
    expect(a.headers['content-type']).toBe('application/json');
    expect(a.json).toMatchObject({
      event: 'cert_expiring',
      role: 'server',
      subject: 'CN=localhost,O=certgate-test',
      serial: server.serial,
      fingerprint: server.fingerprint256,
      notAfter: new Date(server.nodeCert.validTo).toISOString(),
      threshold: 7,
      instance: `${hostname()}:${h.port}`,
    });
    expect(a.json.daysLeft).toBeGreaterThan(4.8);
    expect(a.json.daysLeft).toBeLessThanOrEqual(5);
    expect(a.json.message).toMatch(/^server certificate CN=localhost,O=certgate-test expires in 4\.9 days .*within the 7-day threshold$/);
    expect(Object.keys(a.json).sort()).toEqual(['daysLeft', 'details', 'event', 'fingerprint', 'instance', 'message', 'notAfter', 'role', 'serial', 'subject', 'threshold', 'time'].sort());

    expect(h.app.reload().ok).toBe(true);
    await idle(h);
    expect(receiver.received).toHaveLength(1);

    // A threshold below the one already sent: one more alert, for it.
    h.writeConfig((c) => (c.expiry = { warnDays: [30, 7, 6, 1] }));
    expect(h.app.reload().ok).toBe(true);
    await waitFor(() => receiver.received.length >= 2, { what: 'the 6-day alert' });
    await idle(h);
    expect(receiver.received.map((r) => r.json.threshold)).toEqual([7, 6]);

    // A restart reads what was sent from the ledger beside the revocation list.
    await h.app.stop();
    expect(existsSync(join(h.dir, 'data', LEDGER_FILE))).toBe(true);
    // (Logging to stdout: a log file still opening when the test removes its folder fails the run.)
    h.writeConfig((c) => (c.log = { level: 'silent', access: false }));
    const again = await startApp(loadConfig(h.configFile));
    try {
      await again.alerts.alerts.idle();
      expect(again.certgate.runtime.config.expiry.warnDays).toEqual([30, 7, 6, 1]);
      expect(receiver.received).toHaveLength(2);
    } finally {
      await again.stop();
    }
  });

  it('alerts about a client certificate seen recently, in a Slack body whose certificate text cannot ping anyone', async () => {
    receiver = await startReceiver();
    const h = await start({ webhooks: [{ url: `${receiver.url}/slack`, format: 'slack' }] });
    const nasty = await pki.client({ subject: { cn: '<!channel> & @here <@U123>', o: 'certgate-test' }, days: 3 });
    expect((await h.request('/hello', { client: { cert: nasty.certPem, key: nasty.keyPem } })).status).toBe(200);
    // The next expiry check (a reload runs one) sees the client in the inventory.
    expect(h.app.reload().ok).toBe(true);
    await waitFor(() => receiver.received.length >= 1, { what: 'the client alert' });
    await idle(h);
    expect(receiver.received).toHaveLength(1);
    const body = receiver.received[0]!.json as { text: string; blocks: { text?: { text: string }; elements?: { text: string }[] }[] };
    const texts = [body.text, ...body.blocks.flatMap((b) => [b.text?.text ?? '', ...(b.elements ?? []).map((e) => e.text)])];
    for (const t of texts) {
      expect(t).not.toMatch(/[<>]/);
      expect(t.replace(/&(amp|lt|gt);/g, '')).not.toContain('&');
      expect(t).not.toMatch(/@(here|channel|U123)/);
    }
    expect(body.text).toContain('cert_expiring: client certificate CN=');
    // The subject as RFC 4514 writes it (`\<`), then escaped for Slack.
    expect(body.text).toContain('CN=\\&lt;!channel\\&gt; &amp; @\u200bhere \\&lt;@\u200bU123\\&gt;,O=certgate-test');
    expect(body.text).toContain('within the 7-day threshold');
  });
});

describe('delivery', () => {
  it('retries with backoff when the receiver answers 500, and counts the alert as sent once', async () => {
    receiver = await startReceiver();
    receiver.script(500, 503, 200);
    const h = await start({ webhooks: [{ url: `${receiver.url}/hook`, backoff: '60ms', retries: 3 }] });
    const sent = await alertCount('reload_failed', 'sent');
    breakConfig(h);
    expect(h.app.reload().ok).toBe(false);
    await waitFor(() => receiver.received.length >= 3, { what: 'three attempts' });
    await idle(h);
    const [first, second, third] = receiver.received;
    expect(receiver.received).toHaveLength(3);
    expect(second!.body).toBe(first!.body);
    expect(third!.body).toBe(first!.body);
    expect(first!.json).toMatchObject({ event: 'reload_failed', subject: null, threshold: null });
    expect(first!.json.details.errors[0]).toMatch(/notAKey: unknown key/);
    // The first retry waits at least the backoff, the second at least twice it.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(60);
    expect(third!.at - second!.at).toBeGreaterThanOrEqual(120);
    expect(await alertCount('reload_failed', 'sent')).toBe(sent + 1);
  });

  it('keeps retrying an alert across a reload that leaves its webhook unchanged', async () => {
    receiver = await startReceiver();
    receiver.script(500, 200);
    const h = await start({ webhooks: [{ url: `${receiver.url}/hook`, backoff: '300ms', retries: 2 }] });
    breakConfig(h);
    expect(h.app.reload().ok).toBe(false);
    await waitFor(() => receiver.received.length >= 1, { what: 'the first attempt' });
    h.writeConfig(() => undefined);
    expect(h.app.reload().ok).toBe(true);
    await waitFor(() => receiver.received.length >= 2, { what: 'the retry after the reload' });
    expect(receiver.received[1]!.body).toBe(receiver.received[0]!.body);
  });

  it('gives up at once on a 4xx other than 429, and after the configured retries otherwise, counting both as failed', async () => {
    receiver = await startReceiver();
    receiver.script(400, 500, 500);
    const h = await start({ webhooks: [{ url: `${receiver.url}/hook`, backoff: '10ms', retries: 1 }] });
    const failed = await alertCount('reload_failed', 'failed');
    breakConfig(h);
    h.app.reload();
    await waitFor(() => receiver.received.length >= 1);
    await idle(h);
    expect(receiver.received).toHaveLength(1);
    h.app.reload();
    await waitFor(() => receiver.received.length >= 3);
    await idle(h);
    expect(receiver.received).toHaveLength(3);
    expect(await alertCount('reload_failed', 'failed')).toBe(failed + 2);
  });

  it('never writes the webhook URL into logs or errors', async () => {
    receiver = await startReceiver();
    receiver.script(500, 500, 500, 500);
    const dead = await freePort();
    const h = await start({
      webhooks: [
        { url: `${receiver.url}/services/T000/B000/${SECRET}?token=${SECRET}`, backoff: '10ms', retries: 1 },
        { url: `http://127.0.0.1:${dead}/services/${SECRET}`, backoff: '10ms', retries: 1 },
      ],
    });
    breakConfig(h);
    h.app.reload();
    await waitFor(() => receiver.received.length >= 2);
    await idle(h);
    await waitFor(() => logText(h).split('\n').filter((l) => l.includes('"alert_delivery_failed"')).length >= 4, { what: 'the failures in the log' });
    const log = logText(h);
    expect(log).toContain('ECONNREFUSED');
    expect(log).toContain('alerts.webhooks[1]');
    expect(log).not.toContain(SECRET);

    // A URL the schema refuses, and URL files that cannot be used: named by key and file, never by value.
    h.writeConfig((c) => (c.alerts = { webhooks: [{ url: `ftp://hooks.example/${SECRET}` }, { url: `${SECRET}` }] }));
    const issues = checkConfig(h.configFile).issues.map(formatConfigIssue);
    expect(issues.join('\n')).toMatch(/alerts\.webhooks\[0\]\.url: must be an http/);
    expect(issues.join('\n')).toMatch(/alerts\.webhooks\[1\]\.url: must be an http/);
    expect(issues.join('\n')).not.toContain(SECRET);
    expect(h.app.reload().errors.join('\n')).not.toContain(SECRET);

    writeFileSync(join(h.dir, 'hook.url'), `not a url ${SECRET}\n`);
    h.writeConfig((c) => (c.alerts = { webhooks: [{ urlFile: 'hook.url' }] }));
    expect(h.app.reload().ok).toBe(true);
    await waitFor(() => logText(h).includes('"alerts_config_failed"'), { what: 'the urlFile error' });
    // A start that fails must not leave a log file opening in a folder the test removes.
    h.writeConfig((c) => (c.log = { level: 'silent', access: false }));
    const startError = await startApp(loadConfig(h.configFile)).then(
      () => 'started',
      (err: Error) => err.message,
    );
    expect(startError).toMatch(/alerts\.webhooks\[0\]\.urlFile: .*hook\.url must hold one http/);
    expect(startError).not.toContain(SECRET);
    expect(logText(h)).not.toContain(SECRET);
  });

  it('keeps serving requests while the receiver hangs', async () => {
    receiver = await startReceiver();
    receiver.script('hang');
    const h = await start({ webhooks: [{ url: `${receiver.url}/slow`, timeout: '60s' }] });
    breakConfig(h);
    expect(h.app.reload().ok).toBe(false);
    await waitFor(() => receiver.open.length === 1, { what: 'the held alert request' });
    for (let i = 0; i < 3; i++) {
      expect((await h.request(`/r${i}`, { client: { cert: client.certPem, key: client.keyPem } })).status).toBe(200);
    }
    // The alert is still unanswered: the requests did not wait for it.
    expect(receiver.open).toHaveLength(1);
    expect(receiver.received).toHaveLength(1);
    // Stopping does not wait for the receiver either.
    await h.app.stop();
  });
});

describe('events', () => {
  const token = (h: Harness) => readFileSync(join(h.dir, 'admin.token'), 'utf8').trim();
  const admin = (h: Harness, method: string, path: string, body?: unknown) =>
    fetch(`${h.adminUrl}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token(h)}` },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });

  it('sends revocation_changed for entries added and removed through the admin API and by another writer', async () => {
    receiver = await startReceiver();
    const h = await start({ webhooks: [{ url: `${receiver.url}/audit` }] }, { admin: true });
    const r = await admin(h, 'POST', '/revocations', { serial: client.serial, reason: 'laptop lost' });
    expect(r.status).toBe(201);
    const entry = (await r.json()) as { id: string; actor: string };
    await waitFor(() => receiver.received.length >= 1, { what: 'the revoke alert' });
    expect(receiver.received[0]!.json).toMatchObject({
      event: 'revocation_changed',
      serial: client.serial,
      details: { action: 'revoke', id: entry.id, reason: 'laptop lost', actor: entry.actor },
    });
    expect(receiver.received[0]!.json.message).toBe(`certificate serial ${client.serial} revoked by ${entry.actor}: laptop lost`);

    expect((await admin(h, 'DELETE', `/revocations/${entry.id}`)).status).toBe(200);
    await waitFor(() => receiver.received.length >= 2, { what: 'the unrevoke alert' });
    expect(receiver.received[1]!.json).toMatchObject({ event: 'revocation_changed', details: { action: 'unrevoke', id: entry.id, actor: expect.stringContaining('token') } });

    // The offline CLI appends to the same file; the list picks it up and so do alerts.
    const offline = entryFromInput({ fingerprint: client.fingerprint256, reason: 'offline', actor: 'cli' });
    await appendRecords(join(h.dir, 'data'), [{ op: 'add', entry: offline }]);
    h.app.revocation.local.refresh();
    await waitFor(() => receiver.received.length >= 3, { what: 'the offline revoke alert' });
    expect(receiver.received[2]!.json).toMatchObject({ event: 'revocation_changed', fingerprint: client.fingerprint256, details: { action: 'revoke', actor: 'cli' } });
  });

  it('sends each webhook only the events it lists', async () => {
    receiver = await startReceiver();
    const server = await pki.serverCert({ days: 5 });
    const h = await start(
      {
        webhooks: [
          { url: `${receiver.url}/a`, events: ['reload_failed'] },
          { url: `${receiver.url}/b`, events: ['cert_expiring', 'revocation_changed'] },
        ],
      },
      { server, admin: true },
    );
    await waitFor(() => receiver.on('/b').length >= 1, { what: 'the expiry alert on /b' });
    expect((await admin(h, 'POST', '/revocations', { serial: client.serial, reason: 'filter test' })).status).toBe(201);
    breakConfig(h);
    expect(h.app.reload().ok).toBe(false);
    await waitFor(() => receiver.on('/a').length >= 1 && receiver.on('/b').length >= 2, { what: 'both webhooks' });
    await idle(h);
    expect(receiver.on('/a').map((r) => r.json.event)).toEqual(['reload_failed']);
    expect(receiver.on('/b').map((r) => r.json.event).sort()).toEqual(['cert_expiring', 'revocation_changed']);
  });

  it('sends monitor_problem once while a monitored endpoint keeps failing', async () => {
    receiver = await startReceiver();
    const dead = await freePort();
    const h = await start({ webhooks: [{ url: `${receiver.url}/mon` }] }, { extra: { monitors: [{ address: `127.0.0.1:${dead}`, interval: '100ms' }] } });
    await waitFor(() => receiver.received.length >= 1, { what: 'the monitor alert' });
    expect(receiver.received[0]!.json).toMatchObject({ event: 'monitor_problem', details: { address: `127.0.0.1:${dead}` } });
    // Two more failing scans: still one alert.
    for (let i = 0; i < 2; i++) {
      const last = h.app.monitors.results()[0];
      await waitFor(() => h.app.monitors.results()[0] !== last, { what: 'another scan' });
    }
    await idle(h);
    expect(receiver.received).toHaveLength(1);
  });
});

afterAll(async () => {
  await receiver?.close();
});

describe('monitored endpoints', () => {
  it('alerts about an expiring certificate of a monitored endpoint after its scan, not at the next expiry check', async () => {
    receiver = await startReceiver();
    const cert = await pki.serverCert({ days: 5 });
    const tls = createTlsServer({ cert: cert.chainPem, key: cert.keyPem }, (s) => s.end());
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const caDir = mkdtempSync(join(tmpdir(), 'certgate-monitor-'));
    try {
      const address = `127.0.0.1:${(tls.address() as { port: number }).port}`;
      const ca = join(caDir, 'monitor-ca.pem');
      writeFileSync(ca, pki.rootPem);
      const h = await start(
        { webhooks: [{ url: `${receiver.url}/mon`, events: ['cert_expiring'] }] },
        { extra: { expiry: { checkEvery: '1h' }, monitors: [{ address, servername: 'localhost', ca, interval: '1h' }] } },
      );
      await waitFor(() => receiver.received.length >= 1, { what: 'the monitor certificate alert' });
      await idle(h);
      expect(receiver.received.map((r) => r.json)).toEqual([
        expect.objectContaining({ event: 'cert_expiring', role: 'monitor', fingerprint: cert.fingerprint256, threshold: 7 }),
      ]);
    } finally {
      tls.close();
      rmSync(caDir, { recursive: true, force: true });
    }
  });
});
