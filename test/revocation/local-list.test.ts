import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Identity } from '../../src/identity/types.js';
import { appendRecords, entryFromInput, LocalRevocationList, normaliseDn, readEntries, RevocationInputError } from '../../src/revocation/local-list.js';

const id = (serial: string, issuer: string, fingerprint = 'f'.repeat(64)) => ({ serial, issuer, fingerprint }) as Identity;
const ISSUER = 'CN=certgate test intermediate CA,O=certgate-test';

describe('local revocation list', () => {
  it('canonicalises serials, fingerprints and issuer DNs from any common form', () => {
    expect(entryFromInput({ serial: '0x00:AB:CD', reason: 'r' }).serial).toBe('abcd');
    expect(entryFromInput({ fingerprint: 'AB:'.repeat(31) + 'AB', reason: 'r' }).fingerprint).toBe('ab'.repeat(32));
    expect(normaliseDn('cn=certgate test intermediate CA, o=certgate-test')).toBe(ISSUER);
    expect(normaliseDn('CN=x, EMAILADDRESS=a@b, serialnumber=7')).toBe('CN=x,emailAddress=a@b,serialNumber=7');
    expect(normaliseDn('CN=a\\, b,O=c')).toBe('CN=a\\, b,O=c');
    for (const bad of [{ serial: 'xy', reason: 'r' }, { fingerprint: 'abc', reason: 'r' }, { serial: '01' }, { reason: 'r' }, { serial: '01', fingerprint: 'ab'.repeat(32), reason: 'r' }, { serial: '01', issuer: 'nonsense', reason: 'r' }]) {
      expect(() => entryFromInput(bad), JSON.stringify(bad)).toThrow(RevocationInputError);
    }
  });

  it('matches by fingerprint, by issuer+serial, and by serial alone (any issuer)', async () => {
    const list = new LocalRevocationList({ dataDir: undefined });
    const changes: number[] = [];
    list.onChange(() => changes.push(list.size));
    await list.addDurably(entryFromInput({ fingerprint: 'a'.repeat(64), reason: 'fp' }));
    await list.addDurably(entryFromInput({ serial: '10', issuer: ISSUER, reason: 'pair' }));
    await list.addDurably(entryFromInput({ serial: '20', reason: 'any' }));
    expect(list.lookup(id('99', ISSUER, 'a'.repeat(64)))?.reason).toBe('fp');
    expect(list.lookup(id('10', ISSUER))?.reason).toBe('pair');
    expect(list.lookup(id('10', 'CN=other CA'))).toBeUndefined();
    expect(list.lookup(id('20', 'CN=other CA'))?.reason).toBe('any');
    expect(changes).toEqual([1, 2, 3]);
    list.replace([]);
    expect(list.lookup(id('10', ISSUER))).toBeUndefined();
  });

  it('persists adds and removes, and another list on the same directory sees both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-list-'));
    const a = new LocalRevocationList({ dataDir: dir });
    const b = new LocalRevocationList({ dataDir: dir });
    const e = await a.addDurably(entryFromInput({ serial: '10', reason: 'r' }));
    await a.addDurably(entryFromInput({ serial: '11', reason: 'r' }));
    expect((await a.removeDurably(e.id, 'test'))?.id).toBe(e.id);
    expect(await a.removeDurably(e.id, 'test')).toBeUndefined();
    b.refresh();
    expect(b.entries().map((x) => x.serial)).toEqual(['11']);
    expect(readFileSync(join(dir, 'revocations.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
  });

  it('keeps a dated tombstone so that a removed id never comes back, and tracks records pending for the shared store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-list-'));
    const list = new LocalRevocationList({ dataDir: dir });
    const e = await list.addDurably(entryFromInput({ serial: '10', reason: 'r' }), { pending: true });
    expect([...list.pendingKeys()]).toEqual([`add:${e.id}`]);
    await list.removeDurably(e.id, 'ops', { pending: true });
    expect([...list.pendingKeys()]).toEqual([`remove:${e.id}`]);
    // A stale add of the same entry (from an instance that was cut off) changes nothing.
    expect(await list.merge([{ op: 'add', entry: e }])).toEqual([]);
    await appendRecords(dir, [{ op: 'add', entry: e }]);
    list.refresh();
    expect(list.entries()).toEqual([]);
    expect(list.tombstones()).toEqual([{ id: e.id, at: expect.any(String), actor: 'ops' }]);
    await list.markSynced([`remove:${e.id}`]);
    // All of it survives a restart.
    const again = new LocalRevocationList({ dataDir: dir });
    expect(again.entries()).toEqual([]);
    expect(again.records()).toEqual([{ op: 'remove', id: e.id, at: expect.any(String), actor: 'ops' }]);
    expect([...again.pendingKeys()]).toEqual([]);
  });

  async function holdLockInChild(dir: string, serial: string, ms: number) {
    const other = JSON.stringify({ op: 'add', entry: entryFromInput({ serial, reason: 'other process', actor: 'child' }) });
    // Another process (the CLI, say) takes the lock, holds it, appends, releases.
    const child = spawn(process.execPath, ['-e', `
      const fs = require('fs'); const dir = ${JSON.stringify(dir)};
      fs.writeFileSync(dir + '/revocations.lock', 'child', { flag: 'wx' });
      process.stdout.write('locked');
      setTimeout(() => { fs.appendFileSync(dir + '/revocations.jsonl', ${JSON.stringify(other)} + '\\n'); fs.unlinkSync(dir + '/revocations.lock'); }, ${ms});
    `]);
    await new Promise((resolve) => child.stdout.once('data', resolve));
    // Wrapped: an async function returning a bare promise would wait for it.
    return { exited: new Promise((resolve) => child.once('exit', resolve)) };
  }

  it('makes a writer wait for another process holding the O_EXCL lock, so neither write is lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-lock-'));
    const { exited } = await holdLockInChild(dir, 'aa', 300);
    const t0 = Date.now();
    await appendRecords(dir, [{ op: 'add', entry: entryFromInput({ serial: 'bb', reason: 'server', actor: 'server' }) }]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    await exited;
    expect([...readEntries(dir).entries.values()].map((e) => e.serial)).toEqual(['aa', 'bb']);
  });

  it('lets the server wait for the lock without blocking its event loop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-lock-'));
    const list = new LocalRevocationList({ dataDir: dir });
    const { exited } = await holdLockInChild(dir, 'cc', 300);
    let ticked = false;
    setTimeout(() => (ticked = true), 50);
    const added = list.addDurably(entryFromInput({ serial: 'dd', reason: 'admin' }));
    expect(ticked).toBe(false);
    await added;
    expect(ticked).toBe(true);
    await exited;
    expect(list.entries().map((e) => e.serial)).toEqual(['cc', 'dd']);
  });

  it('takes over at once a lock left by a writer killed with kill -9 while holding it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-lock-'));
    const child = spawn(process.execPath, ['-e', `
      const fs = require('fs');
      fs.writeFileSync(${JSON.stringify(join(dir, 'revocations.lock'))}, process.pid + ' ' + require('os').hostname() + '\\n', { flag: 'wx' });
      process.stdout.write('locked');
      setInterval(() => {}, 1000);
    `]);
    await new Promise((resolve) => child.stdout.once('data', resolve));
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGKILL');
    });
    const t0 = Date.now();
    await appendRecords(dir, [{ op: 'add', entry: entryFromInput({ serial: 'ee', reason: 'after crash' }) }]);
    // Well under the 3 s stale limit: the dead owner was recognised, not waited out.
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect([...readEntries(dir).entries.values()].map((e) => e.serial)).toEqual(['ee']);
  });
});
