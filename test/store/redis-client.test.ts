import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, instanceName } from '../../src/store/redis-client.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { parseConfig } from '../../src/config/load.js';
import { configIssues } from '../helpers/config.js';

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis?.stop());

describe('store.redis connection', () => {
  it('connects to the URL from the config and reconnects after Redis restarts', async () => {
    const r = createRedis({ url: redis.url, keyPrefix: 'certgate:' }, 'test');
    r.on('error', () => undefined);
    await r.connect();
    await r.set('certgate:probe', '1');
    expect(await redis.client().get('certgate:probe')).toBe('1');
    await redis.kill();
    await expect(r.get('certgate:probe')).rejects.toThrow();
    await redis.restart();
    const { waitFor } = await import('../helpers/wait.js');
    await waitFor(async () => (await r.ping().catch(() => undefined)) === 'PONG', { what: 'reconnect within the retry cap', deadline: 10_000 });
    r.disconnect();
  });

  it('names the instance after store.instance, else hostname:port', () => {
    expect(instanceName({ store: { instance: 'edge-1' }, listen: { port: 8443 } } as never)).toBe('edge-1');
    expect(instanceName({ store: {}, listen: { port: 8443 } } as never)).toMatch(/:8443$/);
  });
});

const MINIMAL = 'listen: {port: 8443}\ntls: {cert: s.pem, key: k.pem, clientCAs: ca.pem}\nroutes: [{name: r, upstream: "http://u:1", allow: [{cn: a}]}]\n';
const issues = (text: string): string[] => configIssues(text, '/etc/certgate/x.yaml');

describe('store config', () => {
  it('accepts a loopback Redis without a password and defaults the prefix', () => {
    const c = parseConfig(MINIMAL + 'store: {redis: {url: "redis://127.0.0.1:6379/2"}}\n', '/etc/certgate/x.yaml');
    expect(c.store.redis).toEqual({ url: 'redis://127.0.0.1:6379/2', keyPrefix: 'certgate:' });
  });
  it('refuses a non-loopback Redis without passwordFile, a password in the URL and other schemes, at the line of the url', () => {
    expect(issues(MINIMAL + 'store:\n  redis:\n    url: "redis://10.1.2.3:6379/0"\n')).toEqual([
      expect.stringMatching(/x\.yaml:6:\d+ store\.redis\.url: a Redis that is not on loopback needs store\.redis\.passwordFile/),
    ]);
    expect(issues(MINIMAL + 'store: {redis: {url: "redis://:secret@127.0.0.1:6379"}}\n')[0]).toMatch(/store\.redis\.url: must not contain a password/);
    expect(issues(MINIMAL + 'store: {redis: {url: "http://127.0.0.1:6379"}}\n')[0]).toMatch(/must use redis:\/\/ or rediss:\/\//);
  });
});
