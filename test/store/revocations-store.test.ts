// The Redis revocation store in-process, against a real redis-server: what it journals during an
// outage survives a restart and is pushed when Redis returns; the store_unavailable hook; the
// file store changes nothing.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import { metrics } from '../../src/metrics.js';
import { appendRecords, entryFromInput, readEntries } from '../../src/revocation/local-list.js';
import { openStore, type Store } from '../../src/store/index.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

let redis: TestRedis;
let dir: string;
const log = pino({ level: 'silent' });
const opened: Store[] = [];

const config = (dataDir: string, redisOn = true) =>
  ({
    listen: { host: '127.0.0.1', port: 0 },
    revocation: { dataDir, recheck: 100 },
    store: redisOn ? { instance: 'solo', redis: { url: redis.url, keyPrefix: 'unit:' } } : {},
  }) as unknown as Config;

async function open(c: Config): Promise<Store> {
  const s = await openStore(c, log);
  opened.push(s);
  return s;
}

const pending = async () => (await metrics.revocationsPending.get()).values[0]?.value;

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'certgate-store-'));
});

afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the store from the config', () => {
  it('is the file store without store.redis: nothing in /readyz, every write in force at once', async () => {
    const s = await open(config(join(dir, 'file'), false));
    expect(s.kind).toBe('file');
    expect(s.readiness()).toEqual({});
    const r = await s.revocations.add(entryFromInput({ serial: '01', reason: 'r' }));
    expect(r.propagated).toBe(true);
    expect(s.revocations.list.size).toBe(1);
  });

  it('journals changes made in an outage as pending, keeps them across a restart, and pushes them when Redis returns', async () => {
    const data = join(dir, 'outage');
    const first = await open(config(data));
    expect(first.readiness()).toEqual({ store: 'up' });
    let unavailable = 0;
    first.onStoreUnavailable(() => unavailable++);
    await redis.kill();
    await waitFor(() => first.readiness().store === 'down', { what: 'store down', deadline: 5000 });
    expect(unavailable).toBe(1);
    const e = entryFromInput({ serial: '02', reason: 'outage' });
    expect((await first.revocations.add(e)).propagated).toBe(false);
    // The offline CLI writes to the same journal: that change is pending too.
    const offline = entryFromInput({ serial: '03', reason: 'offline cli' });
    await appendRecords(data, [{ op: 'add', entry: offline }]);
    await waitFor(() => first.revocations.list.size === 2, { what: 'the offline entry picked up' });
    expect(await pending()).toBe(2);
    await first.close();

    // A restart during the outage serves from the journal and still knows what is pending.
    const second = await open(config(data));
    expect(second.readiness()).toEqual({ store: 'down' });
    expect(second.revocations.list.entries().map((x) => x.serial).sort()).toEqual(['2', '3']);
    expect([...readEntries(data).pending]).toEqual([`add:${e.id}`]);
    await redis.restart();
    const rc = redis.client();
    await waitFor(async () => Object.keys(await rc.hgetall('unit:rev:records')).length === 2, { what: 'both pushed', deadline: 5000 });
    await waitFor(async () => (await pending()) === 0, { what: 'nothing pending', deadline: 5000 });
    expect([...readEntries(data).pending]).toEqual([]);
    expect(second.readiness()).toEqual({ store: 'up' });
  }, 30_000);
});
