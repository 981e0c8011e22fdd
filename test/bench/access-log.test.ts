// The batched access log file (src/log.ts): lines reach the file in order, on their own within
// the flush interval at low traffic, at once past the size threshold, and all of them on flushSync.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BatchedFile, createLoggers } from '../../src/log.js';
import { waitFor } from '../helpers/wait.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'certgate-access-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
// The flush timer is faked; the file writes themselves are real I/O, awaited with waitFor.
const fakeTimers = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });

describe('BatchedFile (access log destination)', () => {
  it('writes a lone line within the flush interval, without more traffic', async () => {
    const file = join(tmp(), 'sub', 'access.log');
    fakeTimers();
    const f = new BatchedFile(file);
    f.write('one\n');
    expect(readFileSync(file, 'utf8')).toBe('');
    vi.advanceTimersByTime(BatchedFile.FLUSH_MS - 1);
    expect(readFileSync(file, 'utf8')).toBe('');
    vi.advanceTimersByTime(1);
    await waitFor(() => readFileSync(file, 'utf8') === 'one\n', { what: 'the line in the file' });
    f.close();
  });

  it('keeps every line, in order, across size-triggered writes and flushSync', async () => {
    const file = join(tmp(), 'access.log');
    fakeTimers();
    const f = new BatchedFile(file);
    const lines: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const l = `{"n":${i},"pad":"${'x'.repeat(40)}"}\n`;
      lines.push(l);
      f.write(l);
    }
    // Past 64 KiB a write has started without waiting for the timer (which never fires here).
    await waitFor(() => readFileSync(file, 'utf8').length > 0, { what: 'a size-triggered write' });
    f.write('last\n');
    const all = lines.join('') + 'last\n';
    // Each look lets one flush interval pass, until the timer-driven writes have written the rest.
    await waitFor(() => {
      vi.advanceTimersByTime(BatchedFile.FLUSH_MS);
      return readFileSync(file, 'utf8').length === all.length;
    }, { what: 'every line in the file' });
    f.close();
    expect(readFileSync(file, 'utf8')).toBe(all);
  });

  it('is what the access logger writes to, and Loggers.flush empties it at shutdown', () => {
    const file = join(tmp(), 'access.log');
    const l = createLoggers({ level: 'silent', access: true, accessFile: file });
    l.access.info({ reqId: 'r1', status: 200 }, 'request');
    l.flush();
    const line = JSON.parse(readFileSync(file, 'utf8').trim()) as { reqId: string; kind: string };
    expect(line.reqId).toBe('r1');
    expect(line.kind).toBe('access');
  });
});
