// Crash-safe files: the one inter-process lock and the one atomic write. This is the only code in
// src/ that creates files exclusively (O_EXCL) or replaces them atomically, so that every writer
// (CA index, revocation list, renewed key pairs, inventory, admin token) has the same guarantees.
//
// Lock: an O_EXCL lock file holding "pid hostname nonce". A lock is stale when its owner on this
// host is dead (kill -9 while holding it: broken at once) or when it is older than staleMs (an
// owner on another host, or a pid reused). A stale lock is renamed aside and its content checked
// before removal, and a holder removes only a lock with its own nonce, so nobody deletes a lock
// that someone else has just taken.
// Atomic write: temp file in the same directory, fsync, rename over the target, fsync of the
// directory: a reader or a crash sees the old content or the new, never half of it.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

export class LockTimeoutError extends Error {
  readonly code = 'CERTGATE_LOCK_TIMEOUT';
}

export interface LockOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** A lock older than this whose owner cannot be shown alive is broken (default 30 s). */
  staleMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The lock's content when it is stale (owner on this host dead, or older than staleMs). */
async function staleContent(lockPath: string, staleMs: number): Promise<string | undefined> {
  try {
    const [text, st] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    const [pid, host] = text.trim().split(' ');
    const ownerDead = host === hostname() && pid !== undefined && /^\d+$/.test(pid) && !processAlive(Number(pid));
    return ownerDead || Date.now() - st.mtimeMs > staleMs ? text : undefined;
  } catch {
    // Vanished or unreadable mid-write: let the next attempt decide.
    return undefined;
  }
}

/** Removes the stale lock that held `text`; a lock taken meanwhile by someone else is put back. */
async function breakLock(lockPath: string, text: string): Promise<void> {
  const aside = `${lockPath}.stale.${randomBytes(4).toString('hex')}`;
  try {
    await rename(lockPath, aside);
  } catch {
    return; // Gone already: another waiter broke it or its owner released it.
  }
  if ((await readFile(aside, 'utf8')) !== text) await link(aside, lockPath).catch(() => {});
  await rm(aside, { force: true });
}

/** Takes the lock once: its content (unique to this holder) when taken, undefined when held. */
async function tryLock(lockPath: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(lockPath, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw err;
  }
  const text = `${process.pid} ${hostname()} ${randomBytes(8).toString('hex')}\n`;
  try {
    await fh.writeFile(text);
    return text;
  } finally {
    await fh.close();
  }
}

/**
 * Runs fn while holding the lock file `lockPath` (its directory is created). Waits with jittered
 * exponential backoff (5 ms to 200 ms), without blocking the event loop; throws LockTimeoutError
 * after timeoutMs.
 */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T> | T, opts: LockOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const staleMs = opts.staleMs ?? 30_000;
  await mkdir(dirname(lockPath), { recursive: true, mode: 0o700 });
  let delay = 5;
  let mine: string | undefined;
  while ((mine = await tryLock(lockPath)) === undefined) {
    const stale = await staleContent(lockPath, staleMs);
    if (stale !== undefined) {
      await breakLock(lockPath, stale);
      continue;
    }
    if (Date.now() > deadline) throw new LockTimeoutError(`could not take the lock ${lockPath} (held by another certgate process?)`);
    await sleep(delay / 2 + Math.random() * delay);
    delay = Math.min(delay * 2, 200);
  }
  try {
    return await fn();
  } finally {
    // Only our own lock: if it was broken as stale, the file there now is someone else's.
    if ((await readFile(lockPath, 'utf8').catch(() => undefined)) === mine) await rm(lockPath, { force: true });
  }
}

const tempName = (path: string) => join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);

/** Writes and fsyncs a new file (O_EXCL) that a later rename will publish. */
async function writeTemp(tmp: string, data: string | Uint8Array, mode: number): Promise<void> {
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic there.
  }
}

export interface FileContent {
  readonly path: string;
  readonly data: string | Uint8Array;
  /** Permission bits of a newly written file (default 0o644). */
  readonly mode?: number;
}

/**
 * Replaces several files: every temp is written and fsynced before the first rename, then they
 * are renamed in the order given (a key before its certificate), then the directories fsynced.
 */
export async function writeFilesAtomic(files: readonly FileContent[]): Promise<void> {
  const temps = files.map((f) => tempName(f.path));
  try {
    for (const [i, f] of files.entries()) await writeTemp(temps[i]!, f.data, f.mode ?? 0o644);
    for (const [i, f] of files.entries()) await rename(temps[i]!, f.path);
  } finally {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
  }
  for (const dir of new Set(files.map((f) => dirname(f.path)))) await syncDir(dir);
}

/** temp file + fsync + rename + fsync of the directory: the new content survives a crash whole. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  return writeFilesAtomic([{ path, data, mode }]);
}

function writeTempSync(tmp: string, data: string | Uint8Array, mode: number): void {
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
}

function syncDirSync(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // See syncDir.
  }
}

/** writeFileAtomic for code that must finish before returning (a save at shutdown). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempName(path);
  try {
    writeTempSync(tmp, data, mode);
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
  syncDirSync(dirname(path));
}

/**
 * Creates `path` with this content only if it does not exist, whole or not at all (temp file, then
 * link(2), which fails when the name exists). False when the file was already there: two
 * processes starting at once agree on the first one's content.
 */
export function createFileExclusiveSync(path: string, data: string | Uint8Array, mode = 0o600): boolean {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempName(path);
  try {
    writeTempSync(tmp, data, mode);
    try {
      linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  syncDirSync(dirname(path));
  return true;
}
