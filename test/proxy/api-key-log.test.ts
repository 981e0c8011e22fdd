// API-key use is logged at most once a minute per key, with the reminder that keys are being
// retired, and the key itself never reaches a log line (only its name).
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics.js';
import { ApiKeyUsage } from '../../src/proxy/api-keys.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert } from '../helpers/pki.js';

interface Line {
  event?: string;
  apiKey?: string;
  expired?: boolean;
  msg: string;
  [k: string]: unknown;
}

function capture(): { log: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  return { log, lines };
}

const MINUTE = 60_000;

describe('ApiKeyUsage (clock passed in)', () => {
  it('logs each key at most once a minute, the next use after a full minute logged again', () => {
    const { log, lines } = capture();
    const usage = new ApiKeyUsage(log);
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    for (const dt of [0, 1, 30_000, MINUTE - 1]) usage.used('billing', false, 'legacy', t0 + dt);
    expect(lines).toHaveLength(1);
    usage.used('billing', false, 'legacy', t0 + MINUTE);
    expect(lines).toHaveLength(2);
    // The minute restarts at the last logged use, not at the first one.
    usage.used('billing', false, 'legacy', t0 + 2 * MINUTE - 1);
    expect(lines).toHaveLength(2);
    usage.used('billing', false, 'legacy', t0 + 2 * MINUTE);
    expect(lines).toHaveLength(3);
  });

  it('keeps one minute per key: another key used meanwhile is logged', () => {
    const { log, lines } = capture();
    const usage = new ApiKeyUsage(log);
    const t0 = 1_000_000;
    usage.used('billing', false, undefined, t0);
    usage.used('reports', false, undefined, t0 + 1);
    usage.used('billing', false, undefined, t0 + 2);
    usage.used('reports', false, undefined, t0 + 3);
    expect(lines.map((l) => l.apiKey)).toEqual(['billing', 'reports']);
  });

  it('says keys are being retired and the client must move to a certificate, as a warning naming the key', () => {
    const { log, lines } = capture();
    const usage = new ApiKeyUsage(log);
    usage.used('billing', false, 'legacy', 0);
    usage.used('old-reports', true, undefined, 0);
    expect(lines[0]).toMatchObject({ level: 40, event: 'api_key_used', apiKey: 'billing', route: 'legacy', expired: false });
    expect(lines[0]!.msg).toMatch(/API keys are being retired: move this client to a client certificate/);
    expect(lines[0]!.msg).toContain('"billing"');
    expect(lines[1]).toMatchObject({ level: 40, event: 'api_key_used', apiKey: 'old-reports', expired: true });
    expect(lines[1]!.msg).toMatch(/expired API key "old-reports".*refused.*must move to a client certificate/);
  });

  it('counts every use, logged or not', async () => {
    const { log } = capture();
    const usage = new ApiKeyUsage(log);
    const count = async () => Number((await registry.getSingleMetricAsString('certgate_api_key_requests_total')).match(/\{name="counted"\} (\d+)/)?.[1] ?? 0);
    const before = await count();
    for (let i = 0; i < 5; i++) usage.used('counted', false, undefined, i);
    expect(await count()).toBe(before + 5);
  });
});

describe('API keys through the proxy, with every log line written to a file at debug level', () => {
  const sha = (k: string) => createHash('sha256').update(k).digest('hex');
  const KEY = 'k-billing-secret-0123456789abcdef';
  const EXPIRED = 'k-reports-secret-0123456789abcdef';
  const WRONG = 'k-guessed-secret-0123456789abcdef';
  let h: Harness | undefined;
  let alice: TestCert;
  let logFile: string;
  let accessFile: string;

  beforeAll(async () => {
    const pki = await createTestPki();
    alice = await pki.client({ cn: 'alice' });
    const dir = mkdtempSync(join(tmpdir(), 'certgate-keylog-'));
    const keyFile = join(dir, 'api-keys.yaml');
    logFile = join(dir, 'certgate.log');
    accessFile = join(dir, 'access.log');
    writeFileSync(keyFile, [`- { name: legacy-billing, sha256: ${sha(KEY)}, expires: 2999-01-01 }`, `- { name: legacy-reports, sha256: ${sha(EXPIRED)}, expires: 2020-01-01 }`].join('\n'));
    h = await startHarness({
      tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
      serverCa: pki.rootPem,
      extra: { apiKeys: { file: keyFile }, log: { level: 'debug', access: true, file: logFile, accessFile } },
      routes: [
        { name: 'legacy', match: { pathPrefix: '/legacy' }, upstream: BACKEND, allow: [{ apiKey: 'legacy-*' }, { cn: 'alice' }] },
        { name: 'private', match: { pathPrefix: '/private' }, upstream: BACKEND, allow: [{ cn: 'nobody' }] },
      ],
    });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('logs the key\'s name once for several uses within a minute, and no line holds a key', async () => {
    const proxy = h!;
    const creds = { cert: alice.chainPem, key: alice.keyPem };
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await proxy.request(`/legacy/${i}`, { headers: { 'x-api-key': KEY } })).status);
    statuses.push((await proxy.request('/legacy/expired', { headers: { 'x-api-key': EXPIRED } })).status);
    statuses.push((await proxy.request('/legacy/wrong', { headers: { 'x-api-key': WRONG } })).status);
    statuses.push((await proxy.request('/private', { headers: { 'x-api-key': KEY } })).status);
    statuses.push((await proxy.request('/legacy/cert', { client: creds, headers: { 'x-api-key': WRONG } })).status);
    statuses.push((await proxy.request('/legacy/last', { headers: { 'x-api-key': KEY } })).status);
    expect(statuses).toEqual([200, 200, 200, 401, 401, 401, 200, 200]);
    // Stopping flushes both logs: everything certgate wrote about these requests is in the files.
    h = undefined;
    await proxy.close();
    const log = readFileSync(logFile, 'utf8');
    const access = readFileSync(accessFile, 'utf8');
    expect(access.trim().split('\n')).toHaveLength(8);
    for (const secret of [KEY, EXPIRED, WRONG]) {
      expect(log).not.toContain(secret);
      expect(access).not.toContain(secret);
    }
    const uses = log.trim().split('\n').map((l) => JSON.parse(l) as Line).filter((l) => l.event === 'api_key_used');
    expect(uses.map((l) => [l.apiKey, l.expired])).toEqual([['legacy-billing', false], ['legacy-reports', true]]);
    expect(uses[0]!.msg).toMatch(/being retired/);
  });
});
