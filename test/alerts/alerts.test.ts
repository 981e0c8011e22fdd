// The alert rules on their own, with a clock the test moves: thresholds as time passes, CRLs,
// client certificates by when they were last seen, the store, and the retry schedule.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Alerts, type SeenClient } from '../../src/alerts/alerts.js';
import { slackEscape } from '../../src/alerts/events.js';
import { FileLedger } from '../../src/alerts/ledger.js';
import { retryDelay } from '../../src/alerts/webhook.js';
import type { Config } from '../../src/config/types.js';
import { expiryFindings, type ExpiringItem } from '../../src/lifecycle/expiry.js';
import { startReceiver, type Receiver } from './receiver.js';

const DAY = 86_400_000;
const T0 = Date.parse('2030-01-01T00:00:00Z');
const WARN = [30, 7, 1];

let receiver: Receiver;
let dir: string;
let now = T0;
let clients: SeenClient[] = [];

function config(events?: string[]): Config {
  return {
    alerts: { webhooks: [{ url: `${receiver.url}/h`, format: 'json', timeout: 5000, retries: 0, backoff: 10, ...(events ? { events } : {}) }], clientSeenWithin: 30 },
    expiry: { warnDays: WARN, checkEvery: 0 },
  } as unknown as Config;
}

function make(events?: string[]): Alerts {
  const a = new Alerts({ log: pino({ level: 'silent' }), ledger: new FileLedger(join(dir, 'sent.json'), { now: () => now }), clients: () => clients, now: () => now });
  a.configure(config(events));
  a.instance = 'test:1';
  return a;
}

const server: ExpiringItem = { role: 'server', subject: 'CN=srv', serial: '0a', fingerprint: 'ff'.repeat(32), notAfter: new Date(T0 + 20 * DAY) };

async function check(a: Alerts, items: ExpiringItem[]): Promise<void> {
  a.expiryChecked(expiryFindings(items, WARN, now), now);
  await a.idle();
}

beforeEach(async () => {
  receiver = await startReceiver();
  dir = mkdtempSync(join(tmpdir(), 'certgate-alerts-'));
  now = T0;
  clients = [];
});

afterEach(async () => {
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('expiry alerts over time', () => {
  it('sends each threshold once as the certificate gets closer, then expired, and nothing twice', async () => {
    const a = make();
    await check(a, [server]); // 20 days: inside 30
    await check(a, [server]);
    now = T0 + 14 * DAY; // 6 days: inside 7
    await check(a, [server]);
    now = T0 + 19.5 * DAY; // half a day: inside 1
    await check(a, [server]);
    now = T0 + 21 * DAY;
    await check(a, [server]);
    await check(a, [server]);
    expect(receiver.received.map((r) => [r.json.event, r.json.threshold])).toEqual([
      ['cert_expiring', 30],
      ['cert_expiring', 7],
      ['cert_expiring', 1],
      ['cert_expired', null],
    ]);
    await a.close();
  });

  it('at a first start inside several thresholds, alerts once for the smallest one; a later start remembers it', async () => {
    now = T0 + 19.5 * DAY;
    const a = make();
    await check(a, [server]);
    await a.close();
    const b = make();
    await check(b, [server]);
    await b.close();
    expect(receiver.received.map((r) => r.json.threshold)).toEqual([1]);
  });

  it('alerts about a CRL going stale and stale (not against warnDays), once each', async () => {
    const a = make();
    const crl: ExpiringItem = { role: 'crl', subject: 'CN=issuing CA', validFrom: new Date(T0 - 6.5 * DAY), notAfter: new Date(T0 + 0.5 * DAY), source: '/etc/ca.crl' };
    await check(a, [crl]);
    now = T0 + DAY;
    await check(a, [crl]);
    await check(a, [crl]);
    expect(receiver.received.map((r) => [r.json.event, r.json.details.stale, r.json.role])).toEqual([
      ['crl_stale', false, 'crl'],
      ['crl_stale', true, 'crl'],
    ]);
    expect(receiver.received[1]!.json.message).toBe('CRL of CN=issuing CA is stale since 2030-01-01T12:00:00.000Z: publish a new one');
    await a.close();
  });

  it('alerts about client certificates seen within clientSeenWithin only', async () => {
    const a = make();
    clients = [
      { fingerprint: 'aa', subject: 'CN=recent', serial: '01', notAfter: T0 + 3 * DAY, lastSeen: T0 - 29 * DAY },
      { fingerprint: 'bb', subject: 'CN=gone', serial: '02', notAfter: T0 + 3 * DAY, lastSeen: T0 - 31 * DAY },
    ];
    await check(a, []);
    expect(receiver.received.map((r) => [r.json.subject, r.json.role, r.json.threshold])).toEqual([['CN=recent', 'client', 7]]);
    await a.close();
  });
});

describe('other events', () => {
  it('sends store_unavailable once per outage', async () => {
    const a = make();
    a.storeUnavailable('redis', 'ECONNREFUSED');
    a.storeUnavailable('redis', 'ECONNREFUSED');
    await a.idle();
    a.storeAvailable('redis');
    await a.idle();
    a.storeUnavailable('redis', 'ETIMEDOUT');
    await a.idle();
    expect(receiver.received.map((r) => [r.json.event, r.json.details.reason])).toEqual([
      ['store_unavailable', 'ECONNREFUSED'],
      ['store_unavailable', 'ETIMEDOUT'],
    ]);
    await a.close();
  });

  it('claims nothing for an event no webhook wants, so a webhook that later wants it still gets it', async () => {
    const a = make(['reload_failed']);
    await check(a, [server]);
    expect(receiver.received).toHaveLength(0);
    a.configure(config());
    await check(a, [server]);
    expect(receiver.received.map((r) => r.json.threshold)).toEqual([30]);
    await a.close();
  });
});

describe('formats and schedule', () => {
  it('escapes Slack control characters and mentions', () => {
    expect(slackEscape('a & b <!here> <@U1|x> @channel')).toBe('a &amp; b &lt;!here&gt; &lt;@\u200bU1|x&gt; @\u200bchannel');
  });

  it('doubles the retry delay, with at most 20% jitter, capped at five minutes', () => {
    expect([1, 2, 3, 4].map((n) => retryDelay(1000, n, () => 0))).toEqual([1000, 2000, 4000, 8000]);
    expect(retryDelay(1000, 2, () => 1)).toBe(2400);
    expect(retryDelay(60_000, 10, () => 0)).toBe(300_000);
  });
});
