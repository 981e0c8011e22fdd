// The fleet inventory's writes on a real redis-server: batched (nothing per request), retried
// after a failure with the latest values, bounded by the inventory while Redis is away.

import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityFromDer } from '../../src/identity/identity.js';
import type { Identity } from '../../src/identity/types.js';
import { Inventory } from '../../src/lifecycle/inventory.js';
import { FleetInventory } from '../../src/store/inventory-redis.js';
import { createRedis } from '../../src/store/redis-client.js';
import { createTestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

let redis: TestRedis;
let ids: Identity[];
const log = pino({ level: 'silent' });

beforeAll(async () => {
  redis = await startRedis();
  const pki = await createTestPki();
  ids = await Promise.all([1, 2, 3].map(async (i) => identityFromDer(new Uint8Array((await pki.client({ cn: `c${i}` })).nodeCert.raw))));
});

afterAll(() => redis?.stop());

const req = (identity: Identity) => ({ identity, route: 'r', status: 200, decision: 'allow', durationMs: 1, upstreamMs: 1, remote: '127.0.0.1' }) as const;

async function evalCalls(): Promise<number> {
  const info = await redis.client().info('commandstats');
  return Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

function fleetOn(inv: Inventory, prefix: string) {
  const conn = createRedis({ url: redis.url, keyPrefix: prefix }, 'inv-test');
  conn.on('error', () => undefined);
  const fleet = new FleetInventory({ redis: conn, keyPrefix: prefix, inventory: inv, instance: () => 'me', maxEntries: () => 10, log });
  return { conn, fleet };
}

describe('fleet inventory writes', () => {
  it('writes a thousand requests of two certificates as one Redis call at the flush, none before', async () => {
    const inv = new Inventory({ maxEntries: 10 });
    const { conn, fleet } = fleetOn(inv, 'batch:');
    await conn.connect();
    await redis.client().config('RESETSTAT');
    for (let i = 0; i < 1000; i++) inv.request(req(ids[i % 2]!));
    expect(await evalCalls()).toBe(0);
    await fleet.flush();
    expect(await evalCalls()).toBe(1);
    const view = await fleet.clients();
    expect(view.fleet).toBe(true);
    expect(view.clients.map((c) => c.requests).sort()).toEqual([500, 500]);
    conn.disconnect();
  });

  it('writes again, with the latest values, what a flush could not write while Redis was down; pending entries stay bounded', async () => {
    const inv = new Inventory({ maxEntries: 2 });
    const { conn, fleet } = fleetOn(inv, 'retry:');
    await conn.connect();
    await redis.kill();
    for (const id of ids) inv.request(req(id));
    await fleet.flush();
    // maxEntries 2: three certificates seen, two pending (the evicted one is not kept for Redis).
    inv.request(req(ids[2]!));
    const pending = inv.takeChanges();
    expect(pending.map((r) => r.subject).sort()).toEqual([ids[1]!.subject, ids[2]!.subject].sort());
    inv.markChanged(pending.map((r) => r.fingerprint));
    await redis.restart();
    await waitFor(async () => (await conn.ping().catch(() => undefined)) === 'PONG', { deadline: 10_000, what: 'reconnected' });
    await fleet.flush();
    const r = redis.client();
    const stored = await r.hget(`retry:inv:c:${ids[2]!.fingerprint}`, 'i:me');
    expect(JSON.parse(stored!)).toMatchObject({ requests: 2 });
    conn.disconnect();
  });
});
