// Crash-safe files for the CA: an O_EXCL lock file serialises writers (CLI runs and the server's
// EST endpoint), and every write goes to a temp file that is fsynced and renamed over the target,
// so a reader or a crash sees the old file or the new one, never half of one.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { hostname } from 'node:os';

export class LockTimeoutError extends Error {
  readonly code = 'CERTGATE_CA_LOCKED';
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

/** True when the lock's owner is gone (same host, dead pid) or the lock is older than staleMs. */
async function isStale(lockPath: string, staleMs: number): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    const [pid, host] = text.split(' ');
    if (host?.trim() === hostname() && pid !== undefined && /^\d+$/.test(pid) && !processAlive(Number(pid))) return true;
    return Date.now() - st.mtimeMs > staleMs;
  } catch {
    // Vanished or unreadable mid-write: let the next attempt decide.
    return false;
  }
}

/**
 * Runs fn while holding `lockPath`, created with O_EXCL ('wx'). Waits with jittered exponential
 * backoff; breaks a stale lock (dead owner, or older than staleMs) by renaming it away first, so
 * two waiters cannot both break it and both enter.
 */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const staleMs = opts.staleMs ?? 30_000;
  let delay = 5;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid} ${hostname()}\n`);
      } finally {
        await fh.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await isStale(lockPath, staleMs)) {
      const aside = `${lockPath}.stale.${randomBytes(4).toString('hex')}`;
      // Only one breaker wins the rename; the others find the lock gone or fresh again.
      await rename(lockPath, aside).then(() => rm(aside, { force: true }), () => {});
      continue;
    }
    if (Date.now() > deadline) throw new LockTimeoutError(`could not take the lock ${lockPath} (held by another certgate process?)`);
    await sleep(delay / 2 + Math.random() * delay);
    delay = Math.min(delay * 2, 200);
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}

/** temp file + fsync + rename + fsync of the directory: the new content survives a crash whole. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  await writeTemp(tmp, data, mode);
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dirname(path));
}

/** Writes and fsyncs a new file (O_EXCL) that a later rename will publish. */
export async function writeTemp(tmp: string, data: string | Uint8Array, mode: number): Promise<void> {
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

export async function syncDir(dir: string): Promise<void> {
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
