import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ReloadResult } from '../../src/server.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { atomicWrite } from '../helpers/config.js';
import { reloadCount } from '../helpers/metrics.js';
import { servedFingerprint } from '../helpers/sockets.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;
const results: ReloadResult[] = [];
const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ cn: 'alice' });
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'orders', match: { pathPrefix: '/orders' }, upstream: BACKEND, allow: [{ cn: 'alice' }] }],
    extra: { watch: { enabled: true, debounce: '50ms' } },
  });
  h.app.lifecycle.watcher!.onReload((r) => results.push(r));
});

afterAll(async () => {
  await h?.close();
});

const served = () => servedFingerprint(h.port, pki.rootPem);
const untilServed = (fp: string) => waitFor(async () => (await served()) === fp, { what: `the server to present ${fp.slice(0, 12)}`, every: 50 });

describe('file watcher', () => {
  it('watches the directories of the config, cert, key and CA files, not the files', () => {
    expect(h.app.lifecycle.watcher!.directories).toEqual([h.dir]);
  });

  it('reloads after an atomic rename of the server certificate and key', async () => {
    const failures = await reloadCount('failure');
    const next = await pki.serverCert();
    atomicWrite(join(h.dir, 'server-key.pem'), next.keyPem);
    atomicWrite(join(h.dir, 'server.pem'), next.chainPem);
    await untilServed(next.fingerprint256);
    await h.app.lifecycle.watcher!.idle();
    expect(await reloadCount('failure')).toBe(failures);
    expect((await h.request('/orders', { client: creds(alice) })).status).toBe(200);
  });

  it('waits for the key when the certificate lands first, without reporting a failure', async () => {
    const failures = await reloadCount('failure');
    const before = await served();
    const next = await pki.serverCert();
    // The watcher's debounce and retry timers are faked: the test decides when they fire.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      atomicWrite(join(h.dir, 'server.pem'), next.chainPem);
      await waitFor(() => vi.getTimerCount() > 0, { what: 'the watcher to see the new certificate' });
      // Past the debounce and two retries (250 ms each): the watcher has judged the material
      // half-written at least twice, and still serves the old certificate.
      await vi.advanceTimersByTimeAsync(50 + 2 * 250);
      expect(await served()).toBe(before);
      atomicWrite(join(h.dir, 'server-key.pem'), next.keyPem);
      await waitFor(async () => {
        await vi.advanceTimersByTimeAsync(50);
        return (await served()) === next.fingerprint256;
      }, { what: 'the new certificate once the key landed' });
      // The key's own change event: a second reload of the same material.
      await waitFor(async () => {
        await vi.advanceTimersByTimeAsync(50);
        return vi.getTimerCount() === 0;
      }, { what: 'the watcher to settle' });
      await h.app.lifecycle.watcher!.idle();
    } finally {
      vi.useRealTimers();
    }
    expect(await reloadCount('failure')).toBe(failures);
  });

  it('reports a failure and keeps the old certificate when the key never matches', async () => {
    const failures = await reloadCount('failure');
    const before = await served();
    const good = readFileSync(join(h.dir, 'server-key.pem'), 'utf8');
    results.length = 0;
    atomicWrite(join(h.dir, 'server-key.pem'), (await pki.serverCert()).keyPem);
    const r = await waitFor(() => results[0], { what: 'the watcher to give up', every: 50 });
    expect(r.ok).toBe(false);
    expect(r.errors.join('\n')).toMatch(/certgate\.yaml:\d+:\d+ tls\.key: .*does not match/);
    expect((await reloadCount('failure')) - failures).toBe(1);
    expect(await served()).toBe(before);
    atomicWrite(join(h.dir, 'server-key.pem'), good);
    await waitFor(() => results.find((x) => x.ok), { what: 'the good key to be reloaded', every: 50 });
  });

  it('reloads the policy when the YAML config changes', async () => {
    expect((await h.request('/invoices', { client: creds(alice) })).status).toBe(404);
    const c = parse(readFileSync(h.configFile, 'utf8')) as { routes: Record<string, unknown>[] };
    c.routes.push({ name: 'invoices', match: { pathPrefix: '/invoices' }, upstream: h.backend.url, allow: [{ cn: 'alice' }] });
    atomicWrite(h.configFile, stringify(c));
    await waitFor(async () => (await h.request('/invoices', { client: creds(alice) })).status === 200, { what: 'the new route', every: 50 });
  });

  it('follows a Kubernetes-style symlink swap of the ..data directory', async () => {
    const v1 = join(h.dir, '..v1');
    const v2 = join(h.dir, '..v2');
    mkdirSync(v1);
    mkdirSync(v2);
    const current = await served();
    const currentCert = readFileSync(join(h.dir, 'server.pem'), 'utf8');
    const currentKey = readFileSync(join(h.dir, 'server-key.pem'), 'utf8');
    writeFileSync(join(v1, 'server.pem'), currentCert);
    writeFileSync(join(v1, 'server-key.pem'), currentKey);
    symlinkSync('..v1', join(h.dir, '..data'));
    results.length = 0;
    for (const f of ['server.pem', 'server-key.pem']) {
      rmSync(join(h.dir, f));
      symlinkSync(join('..data', f), join(h.dir, f));
    }
    // Replacing the files with symlinks is a change: the watcher reloads the same material.
    await waitFor(() => results.length > 0, { what: 'the reload after the symlink swap' });
    await h.app.lifecycle.watcher!.idle();
    expect(results.every((r) => r.ok)).toBe(true);
    expect(await served()).toBe(current);
    const next = await pki.serverCert();
    writeFileSync(join(v2, 'server.pem'), next.chainPem);
    writeFileSync(join(v2, 'server-key.pem'), next.keyPem);
    // What kubelet's atomic writer does: a new ..data symlink renamed over the old one.
    symlinkSync('..v2', join(h.dir, '..data_tmp'));
    renameSync(join(h.dir, '..data_tmp'), join(h.dir, '..data'));
    await untilServed(next.fingerprint256);
  });
});
