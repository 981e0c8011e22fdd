// The batched access log writer (src/log.ts) and the access line (src/proxy/access-log.ts):
// lines reach the destination in order, on their own within the flush interval at low traffic, at
// once past the size threshold, and all of them on flushSync; the line is the JSON pino wrote,
// with attacker-chosen fields escaped.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Identity } from '../../src/identity/types.js';
import { BatchedWriter, createLoggers } from '../../src/log.js';
import { AccessLog, jsonString } from '../../src/proxy/access-log.js';
import type { RequestContext } from '../../src/proxy/context.js';
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

describe('BatchedWriter (access log destination)', () => {
  it('writes a lone line within the flush interval, without more traffic', async () => {
    const file = join(tmp(), 'sub', 'access.log');
    fakeTimers();
    const f = new BatchedWriter(file);
    f.write('one\n');
    expect(readFileSync(file, 'utf8')).toBe('');
    vi.advanceTimersByTime(BatchedWriter.FLUSH_MS - 1);
    expect(readFileSync(file, 'utf8')).toBe('');
    vi.advanceTimersByTime(1);
    await waitFor(() => readFileSync(file, 'utf8') === 'one\n', { what: 'the line in the file' });
    f.close();
  });

  it('keeps every line, in order, across size-triggered writes and flushSync', async () => {
    const file = join(tmp(), 'access.log');
    fakeTimers();
    const f = new BatchedWriter(file);
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
      vi.advanceTimersByTime(BatchedWriter.FLUSH_MS);
      return readFileSync(file, 'utf8').length === all.length;
    }, { what: 'every line in the file' });
    f.close();
    expect(readFileSync(file, 'utf8')).toBe(all);
  });

  it('is what the access log writes to, and Loggers.flush empties it at shutdown', () => {
    const file = join(tmp(), 'access.log');
    const l = createLoggers({ level: 'silent', access: true, accessFile: file });
    new AccessLog(l).write(context({ requestId: 'r1', status: 200 }));
    l.flush();
    const line = JSON.parse(readFileSync(file, 'utf8').trim()) as { reqId: string; kind: string };
    expect(line.reqId).toBe('r1');
    expect(line.kind).toBe('access');
  });

  it('writes nothing when the access log is off', () => {
    expect(createLoggers({ level: 'silent', access: false }).access).toBeUndefined();
  });
});

function context(over: Partial<Record<keyof RequestContext, unknown>>): RequestContext {
  return {
    requestId: 'a1b2c3d4-1',
    remote: '192.0.2.1',
    method: 'GET',
    url: '/orders?id=1',
    identity: undefined,
    route: 'orders',
    decision: 'allow',
    status: 200,
    bytes: 17,
    durationMs: 0,
    started: performance.now(),
    error: undefined,
    ...over,
  } as unknown as RequestContext;
}

const alice = { subject: 'CN=alice,O=Acme', fingerprint: 'AB:CD:EF' } as Identity;

/** The line pino wrote for the same request (the format before the template). */
function pinoLine(ctx: RequestContext, time: string): string {
  let out = '';
  const base = pino({ level: 'info', base: { name: 'certgate', kind: 'access' }, timestamp: () => `,"time":"${time}"` }, { write: (s: string) => void (out = s) });
  const id = ctx.identity;
  const logger = id === undefined ? base : base.child({ subject: id.subject, fingerprint: id.fingerprint });
  const error = ctx.error;
  logger.info(
    {
      reqId: ctx.requestId,
      method: ctx.method,
      path: ctx.url,
      route: ctx.route,
      decision: ctx.decision,
      status: ctx.status,
      bytes: ctx.bytes,
      ms: Math.round(ctx.durationMs * 1000) / 1000,
      ...(error !== undefined ? { error: (error as NodeJS.ErrnoException).code ?? error.message } : {}),
      remote: ctx.remote,
    },
    'request',
  );
  return out;
}

describe('the access line', () => {
  const lines: string[] = [];
  const log = new AccessLog({ log: pino({ level: 'silent' }), access: { base: ',"name":"certgate","kind":"access"', write: (l) => void lines.push(l) }, flush() {}, async drain() {} });

  it('is byte for byte the line pino wrote, for every shape of request', () => {
    const cases: RequestContext[] = [
      context({}),
      context({ identity: alice }),
      context({ identity: alice, route: undefined, decision: 'route_not_found', status: 404, bytes: 0 }),
      context({ error: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), decision: 'upstream_unavailable', status: 502 }),
      context({ error: new Error('plain message') }),
    ];
    for (const c of cases) {
      lines.length = 0;
      log.write(c);
      const line = lines[0]!;
      const time = /"time":"([^"]+)"/.exec(line)![1]!;
      // durationMs was set by write(); pino renders the same context.
      expect(line).toBe(pinoLine(c, time));
    }
  });

  // The request id, method and route name are certgate's or checked by it; these fields are not.
  it('escapes quotes, backslashes, control characters and keeps non-ASCII in path, subject and error', () => {
    const nasty = 'a"b\\c\u0000\u0001\n\r\t\u001f\u007fé€😀\u2028\ud800"';
    const id = { subject: `CN=${nasty}`, fingerprint: 'AB:CD' } as Identity;
    lines.length = 0;
    log.write(context({ identity: id, url: `/x/${nasty}`, error: new Error(nasty) }));
    const line = lines[0]!;
    expect(line.endsWith('}\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(parsed).toMatchObject({ subject: `CN=${nasty}`, path: `/x/${nasty}`, error: nasty, kind: 'access', msg: 'request' });
    for (const s of ['', 'plain', '"', '\\', '\u0000', 'é', '\ud800', 'x\u2029']) expect(jsonString(s)).toBe(JSON.stringify(s));
  });
});

describe('the access line time', () => {
  it('is toISOString of the moment it was written, across milliseconds and seconds', () => {
    const lines: string[] = [];
    const log = new AccessLog({ log: pino({ level: 'silent' }), access: { base: ',"name":"certgate","kind":"access"', write: (l) => void lines.push(l) }, flush() {}, async drain() {} });
    vi.useFakeTimers({ toFake: ['Date'] });
    // Whole seconds, one- two- and three-digit milliseconds, the same millisecond twice, a new second.
    for (const t of [Date.UTC(2026, 10, 29, 6, 38, 25, 0), +7, +0, +38, +955, +1, +44, +1000, Date.UTC(1999, 11, 31, 23, 59, 59, 999)]) {
      vi.setSystemTime(t > 1e9 ? t : Date.now() + t);
      lines.length = 0;
      log.write(context({}));
      expect(/"time":"([^"]+)"/.exec(lines[0]!)![1]).toBe(new Date(Date.now()).toISOString());
    }
  });
});
