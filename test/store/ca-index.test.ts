// The CA index and renewal rate limits on a real redis-server, as two instances see them: two CA
// directories (copies with the same keys, as two hosts hold them) over one Redis index, each
// with its own connections.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, initAuthority } from '../../src/ca/authority.js';
import { webcrypto } from 'node:crypto';
import { generateKeyPair } from '../../src/ca/pki.js';
import { x509 } from '../../src/x509.js';
import type { Store } from '../../src/store/index.js';
import { LocalRateLimiter } from '../../src/store/rate-limit.js';
import { RedisRateLimiter } from '../../src/store/rate-limit-redis.js';
import { createRedis } from '../../src/store/redis-client.js';
import { openTestStore, startRedis, type TestRedis } from '../helpers/redis.js';

let redis: TestRedis;
let dir: string;
const stores: Store[] = [];
let prefixSeq = 0;

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'certgate-ca-redis-'));
  await initAuthority(join(dir, 'ca-a'), { intermediate: true });
  cpSync(join(dir, 'ca-a'), join(dir, 'ca-b'), { recursive: true });
  await initAuthority(join(dir, 'other'));
});

afterAll(async () => {
  await Promise.allSettled(stores.map((s) => s.close()));
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function store(keyPrefix: string): Promise<Store> {
  const s = await openTestStore(redis.url, keyPrefix, join(dir, `data-${keyPrefix.replace(/\W/g, '')}`));
  stores.push(s);
  return s;
}

/** The same CA opened on "two instances": separate directories, separate connections, one Redis index. */
async function twoInstances(): Promise<[CertificateAuthority, CertificateAuthority, string]> {
  const prefix = `t${++prefixSeq}:`;
  const a = await CertificateAuthority.open(join(dir, 'ca-a'), { store: await store(prefix) });
  const b = await CertificateAuthority.open(join(dir, 'ca-b'), { store: await store(prefix) });
  return [a, b, prefix];
}

const newPublicKey = async () => new x509.PublicKey(await webcrypto.subtle.exportKey('spki', (await generateKeyPair('P-256')).publicKey));
const tokenId = { cn: 'enrolled-x', ou: [], uri: [], dns: [] };

describe('CA index in Redis', () => {
  it('lets exactly one of two instances racing with the same enrollment token enroll', async () => {
    const [a, b] = await twoInstances();
    const { token } = await a.createToken(tokenId, 60_000);
    const pub = await newPublicKey();
    const build = () => ({ subject: { cn: 'enrolled-x' }, publicKey: pub, source: 'est-enroll' });
    const results = await Promise.all([...Array(6)].map((_, i) => (i % 2 === 0 ? a : b).enrollWithToken(token, build)));
    expect(results.filter((r) => !('refused' in r))).toHaveLength(1);
    expect(results.filter((r) => 'refused' in r).map((r) => (r as { refused: string }).refused)).toEqual(Array(5).fill('this enrollment token has already been used'));
    expect((await b.list()).filter((e) => e.source === 'est-enroll')).toHaveLength(1);
  });

  it('refuses on one instance a token already used on the other', async () => {
    const [a, b] = await twoInstances();
    const { token } = await b.createToken(tokenId, 60_000);
    const build = async () => ({ subject: { cn: 'enrolled-x' }, publicKey: await newPublicKey(), source: 'est-enroll' });
    const req = await build();
    const first = await a.enrollWithToken(token, () => req);
    expect('refused' in first).toBe(false);
    expect(await b.enrollWithToken(token, () => req)).toEqual({ refused: 'this enrollment token has already been used' });
  });

  it('loses no update and repeats no serial or CRL number when both instances write at once', async () => {
    const [a, b, prefix] = await twoInstances();
    const c = createRedis({ url: redis.url, keyPrefix: '' }, 'inspect');
    await c.connect();
    const crlNumber = async () => (JSON.parse((await c.get(`${prefix}ca:index`))!) as { crlNumber: number }).crlNumber;
    const before = await crlNumber();
    const issued = await Promise.all([...Array(16)].map((_, i) => (i % 2 === 0 ? a : b).issue({ subject: { cn: `c${i}` }, source: 'test' })));
    const crls = await Promise.all([...Array(8)].map((_, i) => (i % 2 === 0 ? a : b).publishCrl({ out: join(dir, `crl-${i}.pem`) })));
    const list = await a.list();
    expect(list).toHaveLength(16);
    expect(new Set(list.map((e) => e.serial)).size).toBe(16);
    expect(new Set(issued.map((i) => i.serial))).toEqual(new Set(list.map((e) => e.serial)));
    // Each CRL got its own number: none was lost to the other instance's write.
    expect(await crlNumber()).toBe(before + 8);
    expect(crls).toHaveLength(8);
    c.disconnect();
  });

  it('sees on each instance what the other revoked', async () => {
    const [a, b] = await twoInstances();
    const i = await a.issue({ subject: { cn: 'to-revoke' }, source: 'test' });
    await b.revoke(i.serial, 'keyCompromise');
    expect((await a.entry(i.serial))?.revokedAt).toBeDefined();
  });

  it('seeds an empty store from the first CA directory that uses it, and refuses a CA with another root', async () => {
    const local = await CertificateAuthority.open(join(dir, 'other'));
    const before = await local.issue({ subject: { cn: 'from-the-file' }, source: 'test' });
    const s = await store('seed:');
    const fleet = await CertificateAuthority.open(join(dir, 'other'), { store: s });
    expect((await fleet.list()).map((e) => e.serial)).toEqual([before.serial]);
    await expect(CertificateAuthority.open(join(dir, 'ca-a'), { store: s })).rejects.toThrow(/another root CA/);
  });
});

describe('renewal rate limits in Redis', () => {
  it('counts attempts on every instance together', async () => {
    const conns = [createRedis({ url: redis.url, keyPrefix: '' }, 'rl-a'), createRedis({ url: redis.url, keyPrefix: '' }, 'rl-b')];
    await Promise.all(conns.map((c) => c.connect()));
    const [a, b] = conns.map((c) => new RedisRateLimiter(c, 'rl:', new LocalRateLimiter()));
    const now = Date.now();
    const hits = [await a!.hit('CN=x', 3, 3_600_000, now), await b!.hit('CN=x', 3, 3_600_000, now), await a!.hit('CN=x', 3, 3_600_000, now)];
    expect(hits).toEqual([true, true, true]);
    expect(await b!.hit('CN=x', 3, 3_600_000, now)).toBe(false);
    expect(await a!.hit('CN=y', 3, 3_600_000, now)).toBe(true);
    for (const c of conns) c.disconnect();
  });

  it('falls back to the local limit while Redis is out of reach', async () => {
    const c = createRedis({ url: 'redis://127.0.0.1:1/0', keyPrefix: '' }, 'rl-down');
    c.on('error', () => undefined);
    const l = new RedisRateLimiter(c, 'rl:', new LocalRateLimiter());
    const now = Date.now();
    expect([await l.hit('k', 2, 60_000, now), await l.hit('k', 2, 60_000, now), await l.hit('k', 2, 60_000, now)]).toEqual([true, true, false]);
    c.disconnect();
  });
});
