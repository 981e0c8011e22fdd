import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAdminToken } from '../../src/admin/auth.js';
import { createFileExclusiveSync, LockTimeoutError, withFileLock, writeFileAtomic, writeFileAtomicSync, writeFilesAtomic } from '../../src/util/files.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'certgate-files-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const exitedPid = () =>
  new Promise<number>((resolve) => {
    const c = spawn(process.execPath, ['-e', '0']);
    c.once('exit', () => resolve(c.pid!));
  });

describe('withFileLock', () => {
  it('lets one holder in at a time among many concurrent waiters, and removes the lock after', async () => {
    const lock = join(dir, 'contended.lock');
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        withFileLock(lock, async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setImmediate(r));
          order.push(i);
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(order.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(() => statSync(lock)).toThrow();
  });

  it('excludes another process holding the same lock file, and enters once it is released', async () => {
    const lock = join(dir, 'cross.lock');
    const log = join(dir, 'cross.log');
    // Another process takes the lock (O_EXCL, as withFileLock does), writes, and releases.
    const child = spawn(process.execPath, ['-e', `
      const fs = require('fs');
      fs.writeFileSync(${JSON.stringify(lock)}, process.pid + ' ' + require('os').hostname() + '\\n', { flag: 'wx' });
      process.stdout.write('locked');
      setTimeout(() => { fs.appendFileSync(${JSON.stringify(log)}, 'child\\n'); fs.unlinkSync(${JSON.stringify(lock)}); }, 300);
    `]);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await new Promise((resolve) => child.stdout.once('data', resolve));
    const t0 = Date.now();
    await withFileLock(lock, () => writeFileSync(log, readFileSync(log, 'utf8') + 'parent\n'));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    await exited;
    expect(readFileSync(log, 'utf8')).toBe('child\nparent\n');
  });

  it('breaks a lock left behind by a dead process at once, but waits for a live holder', async () => {
    const lock = join(dir, 'dead.lock');
    writeFileSync(lock, `${await exitedPid()} ${hostname()}\n`);
    expect(await withFileLock(lock, async () => 'entered', { timeoutMs: 2_000 })).toBe('entered');
    expect(() => statSync(lock)).toThrow();

    writeFileSync(lock, `${process.pid} ${hostname()}\n`);
    await expect(withFileLock(lock, async () => 'entered', { timeoutMs: 150 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(readFileSync(lock, 'utf8')).toBe(`${process.pid} ${hostname()}\n`);
    rmSync(lock);
  });

  it('breaks a lock older than the stale limit whose owner it cannot check, and not a younger one', async () => {
    const lock = join(dir, 'old.lock');
    writeFileSync(lock, '1 some-other-host\n');
    await expect(withFileLock(lock, async () => 'entered', { timeoutMs: 150, staleMs: 30_000 })).rejects.toBeInstanceOf(LockTimeoutError);
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    expect(await withFileLock(lock, async () => 'entered', { timeoutMs: 2_000, staleMs: 30_000 })).toBe('entered');
  });

  it('a holder whose lock was broken as stale does not remove the next holder\'s lock', async () => {
    const lock = join(dir, 'slow.lock');
    let releaseSlow!: () => void;
    let slowDone!: Promise<void>;
    await new Promise<void>((resolve) => {
      slowDone = withFileLock(lock, () => {
        resolve();
        return new Promise<void>((r) => (releaseSlow = r));
      });
    });
    // Make the slow holder's lock look abandoned: another host's, a minute old.
    writeFileSync(lock, '1 some-other-host\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    let releaseNext!: () => void;
    const nextInside = new Promise<void>((resolve) => {
      void withFileLock(lock, () => {
        resolve();
        return new Promise<void>((r) => (releaseNext = r));
      }, { staleMs: 30_000 });
    });
    await nextInside;
    const nextLock = readFileSync(lock, 'utf8');
    releaseSlow();
    await slowDone;
    // The slow holder has finished; the next holder's lock is still there.
    await expect(withFileLock(lock, async () => 'entered', { timeoutMs: 100 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(readFileSync(lock, 'utf8')).toBe(nextLock);
    releaseNext();
  });
});

const leftoversIn = (d: string) => readdirSync(d).filter((f) => f.endsWith('.tmp'));

describe('atomic writes', () => {
  const leftovers = leftoversIn;

  it('replaces a file whole with the given mode and leaves no temp file', async () => {
    const d = mkdtempSync(join(dir, 'w-'));
    const f = join(d, 'index.json');
    writeFileSync(f, 'old');
    await writeFileAtomic(f, 'new content', 0o600);
    expect(readFileSync(f, 'utf8')).toBe('new content');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    writeFileAtomicSync(join(d, 'sync', 'inv.json'), '{}', 0o640);
    expect(readFileSync(join(d, 'sync', 'inv.json'), 'utf8')).toBe('{}');
    expect(statSync(join(d, 'sync', 'inv.json')).mode & 0o777).toBe(0o640);
    expect(leftovers(d)).toEqual([]);
  });

  it('a reader racing many writers only ever sees one whole version', async () => {
    const d = mkdtempSync(join(dir, 'race-'));
    const f = join(d, 'data');
    const versions = Array.from({ length: 30 }, (_, i) => String(i).repeat(20_000));
    writeFileSync(f, versions[0]!);
    let reading = true;
    const seen = new Set<string>();
    const reader = (async () => {
      while (reading) {
        seen.add(readFileSync(f, 'utf8'));
        await new Promise((r) => setImmediate(r));
      }
    })();
    await Promise.all(versions.map((v) => writeFileAtomic(f, v)));
    reading = false;
    await reader;
    for (const s of seen) expect(versions).toContain(s);
    expect(leftovers(d)).toEqual([]);
  });

  it('writes several files with every temp ready before the first rename, in the order given', async () => {
    const d = mkdtempSync(join(dir, 'pair-'));
    await writeFilesAtomic([{ path: join(d, 'key.pem'), data: 'k', mode: 0o600 }, { path: join(d, 'cert.pem'), data: 'c' }]);
    expect(readFileSync(join(d, 'key.pem'), 'utf8')).toBe('k');
    expect(statSync(join(d, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(d, 'cert.pem')).mode & 0o777).toBe(0o644);
    // A target that cannot be written (a directory in its place) leaves no temp behind.
    await expect(writeFilesAtomic([{ path: join(d, 'key.pem'), data: 'k2' }, { path: d, data: 'x' }])).rejects.toThrow();
    expect(leftovers(d)).toEqual([]);
  });

  it('creates a file exclusively: the first content wins and a second creation is refused', () => {
    const d = mkdtempSync(join(dir, 'excl-'));
    const f = join(d, 'sub', 'admin.token');
    expect(createFileExclusiveSync(f, 'first\n', 0o600)).toBe(true);
    expect(createFileExclusiveSync(f, 'second\n', 0o600)).toBe(false);
    expect(readFileSync(f, 'utf8')).toBe('first\n');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(leftovers(join(d, 'sub'))).toEqual([]);
  });
});

describe('admin token file', () => {
  it('is created once, 0600; a later start reads the same token; a too-short one is replaced', () => {
    const d = mkdtempSync(join(dir, 'token-'));
    const f = join(d, 'secrets', 'admin.token');
    const t = ensureAdminToken(f);
    expect(t.length).toBeGreaterThanOrEqual(32);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(ensureAdminToken(f)).toBe(t);
    writeFileSync(f, 'short\n');
    const t2 = ensureAdminToken(f);
    expect(t2).not.toBe('short');
    expect(readFileSync(f, 'utf8')).toBe(t2 + '\n');
    expect(leftoversIn(join(d, 'secrets'))).toEqual([]);
  });
});
