// The fleet's alert ledger on a real redis-server: one instance sends each alert, a more urgent
// threshold is claimed again once, and an outage falls back to the instance's file ledger.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileLedger } from '../../src/alerts/ledger.js';
import { RedisAlertLedger } from '../../src/store/alert-ledger-redis.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

let redis: TestRedis;
let dir: string;
const conns: Redis[] = [];
beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'certgate-ledger-'));
});
afterAll(async () => {
  for (const c of conns) c.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function instance(name: string): Promise<{ ledger: RedisAlertLedger; local: FileLedger }> {
  const c = new Redis({ port: redis.port, host: '127.0.0.1', maxRetriesPerRequest: 0, enableOfflineQueue: false });
  c.on('error', () => undefined);
  conns.push(c);
  await waitFor(async () => (await c.ping().catch(() => '')) === 'PONG', { what: 'the ledger connection' });
  const local = new FileLedger(join(dir, `${name}.json`));
  return { ledger: new RedisAlertLedger(c, 'fleet:', local), local };
}

describe('the fleet alert ledger (Redis)', () => {
  it('lets exactly one of two instances claim an alert, and each more urgent threshold once', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const end = Date.now() + 10 * 86_400_000;
    const first = await Promise.all([a.ledger.claim('cert_expiring|fp1', 30, end), b.ledger.claim('cert_expiring|fp1', 30, end)]);
    expect(first.filter(Boolean)).toHaveLength(1);
    expect(await a.ledger.claim('cert_expiring|fp1', 30, end)).toBe(false);
    // The 7-day threshold is more urgent: claimed once more, by one instance.
    const second = await Promise.all([b.ledger.claim('cert_expiring|fp1', 7, end), a.ledger.claim('cert_expiring|fp1', 7, end)]);
    expect(second.filter(Boolean)).toHaveLength(1);
    // Kept in Redis with an expiry, not forever.
    const ttl = await redis.client().pttl('fleet:alert:cert_expiring|fp1');
    expect(ttl).toBeGreaterThan(300 * 86_400_000);
    await a.ledger.release('cert_expiring|fp1');
    expect(await b.ledger.claim('cert_expiring|fp1', 7, end)).toBe(true);
  });

  it('falls back to the instance\'s file ledger while Redis is out of reach', async () => {
    const a = await instance('outage');
    const end = Date.now() + 86_400_000;
    await redis.kill();
    try {
      expect(await a.ledger.claim('monitor_problem|x', 0, end)).toBe(true);
      expect(await a.ledger.claim('monitor_problem|x', 0, end)).toBe(false);
      expect(a.local.size).toBe(1);
    } finally {
      await redis.restart();
    }
  });
});
