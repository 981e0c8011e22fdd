import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ExpiryMonitor, certificateItem, crlItem, expiryFindings, type ExpiringItem } from '../../src/lifecycle/expiry.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCa, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

const DAY = 86_400_000;

interface Line {
  level: number;
  event: string;
  role: string;
  subject: string;
  threshold?: number;
  daysLeft: number;
  msg: string;
}

/** The lines a running certgate wrote to its log file so far (flushed first). */
function logLines(h: Harness): Line[] {
  h.app.loggers.flush();
  let text = '';
  try {
    text = readFileSync(join(h.dir, 'certgate.log'), 'utf8');
  } catch {
    // pino opens its file asynchronously: not there yet
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

function capture(): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Line);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

describe('expiry thresholds', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  const item = (subject: string, days: number, role = 'server'): ExpiringItem => ({ role, subject, notAfter: new Date(now + days * DAY) });

  it('puts each item in the smallest threshold it is inside, reports expired ones, and ignores the rest', () => {
    const f = expiryFindings([item('a', 20), item('b', 5), item('c', 0.5), item('d', 60), item('e', -1), item('f', 30)], [30, 7, 1], now);
    expect(f.map((x) => [x.item.subject, x.threshold, x.expired])).toEqual([
      ['a', 30, false],
      ['b', 7, false],
      ['c', 1, false],
      ['e', undefined, true],
      ['f', 30, false],
    ]);
  });

  it('logs one warning per certificate inside a threshold and an error per expired one, including CRL sources', async () => {
    const { log, lines } = capture();
    const m = new ExpiryMonitor({ log, warnDays: [30, 7, 1], checkEveryMs: 0, now: () => now });
    m.addSource(() => [item('CN=srv', 5), item('CN=ca', 20, 'ca'), item('CN=old', -2, 'ca'), item('CN=fine', 400, 'ca')]);
    m.addSource(() => [{ role: 'crl', subject: 'CN=issuing CA', validFrom: new Date(now - 6.5 * DAY), notAfter: new Date(now + 0.5 * DAY), source: '/etc/crl.pem' }]);
    m.check();
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => [l.level, l.event, l.subject, l.threshold])).toEqual([
      [40, 'cert_expiring', 'CN=srv', 7],
      [40, 'cert_expiring', 'CN=ca', 30],
      [50, 'cert_expired', 'CN=old', undefined],
      [40, 'crl_stale_soon', 'CN=issuing CA', undefined],
    ]);
    expect(lines[0]!.msg).toBe('server certificate CN=srv expires in 5 days (2030-01-06T00:00:00.000Z), within the 7-day threshold');
    expect(lines[3]!.msg).toMatch(/^CRL of CN=issuing CA goes stale in 0\.5 days/);
  });
});

describe('CRL staleness', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  const described = (thisUpdateDays: number, nextUpdateDays: number, source = 'crl-file') => ({
    source,
    origin: source === 'crl-url' ? 'http://crl.example/ca.crl' : '/etc/ca.crl',
    issuer: 'CN=issuing CA',
    thisUpdate: new Date(now + thisUpdateDays * DAY).toISOString(),
    nextUpdate: new Date(now + nextUpdateDays * DAY).toISOString(),
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('does not judge a CRL by warnDays: a fresh 7-day CRL is inside the 7-day threshold and gets no line', () => {
    expect(expiryFindings(crlItem(described(-0.1, 6.9)), [30, 7, 1], now)).toEqual([]);
    // Three quarters of its life used is still fine.
    expect(expiryFindings(crlItem(described(-5, 2)), [30, 7, 1], now)).toEqual([]);
  });

  it('warns about a CRL with less than a quarter of its validity left, unless certgate refreshes it from its URL', () => {
    const [f] = expiryFindings(crlItem(described(-6, 1)), [30, 7, 1], now);
    expect(f).toMatchObject({ expired: false, threshold: undefined, daysLeft: 1 });
    expect(expiryFindings(crlItem(described(-6, 1, 'crl-url')), [30, 7, 1], now)).toEqual([]);
  });

  it('reports a stale CRL (past its nextUpdate) as an error, from a file or a URL', async () => {
    const { log, lines } = capture();
    const m = new ExpiryMonitor({ log, warnDays: [7], checkEveryMs: 0, now: () => now });
    m.addSource(() => [...crlItem(described(-8, -1)), ...crlItem(described(-8, -1, 'crl-url'))]);
    expect(m.check().map((f) => f.expired)).toEqual([true, true]);
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => [l.level, l.event])).toEqual([
      [50, 'crl_stale'],
      [50, 'crl_stale'],
    ]);
    expect(lines[0]!.msg).toMatch(/^CRL of CN=issuing CA is stale since 2029-12-31T00:00:00\.000Z/);
  });

  it('checks a source added after start at once, and again every checkEvery', async () => {
    vi.useFakeTimers({ now });
    const { log, lines } = capture();
    const m = new ExpiryMonitor({ log, warnDays: [7], checkEveryMs: 3_600_000 });
    m.start();
    m.addSource(() => crlItem(described(-6, 1)));
    const staleSoon = () => lines.filter((l) => l.event === 'crl_stale_soon').length;
    await vi.advanceTimersByTimeAsync(0);
    expect(staleSoon()).toBe(1);
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(staleSoon()).toBe(2);
    m.stop();
  });
});

describe('expiry warnings of a running certgate', () => {
  let pki: TestPki;
  let server: TestCert;
  let shortCa: TestCa;
  let monthCa: TestCa;
  let h: Harness;
  let crlDir: string;

  beforeAll(async () => {
    pki = await createTestPki();
    server = await pki.serverCert({ days: 5 });
    shortCa = await pki.ca({ issuer: 'root', subject: 'CN=short-lived CA, O=certgate-test', days: 5 });
    monthCa = await pki.ca({ issuer: 'root', subject: 'CN=monthly CA, O=certgate-test', days: 20 });
    crlDir = mkdtempSync(join(tmpdir(), 'certgate-crl-'));
    const crl = await pki.crl({ nextUpdate: new Date(Date.now() + 5 * DAY) });
    writeFileSync(join(crlDir, 'intermediate.crl.pem'), crl.pem);
    h = await startHarness({
      tls: { serverCert: server.chainPem, serverKey: server.keyPem, caBundle: pki.caBundlePem + shortCa.certPem + monthCa.certPem },
      serverCa: pki.rootPem,
      routes: [{ name: 'any', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }],
      extra: {
        log: { level: 'info', access: false, file: 'certgate.log' },
        expiry: { warnDays: [30, 7, 1], checkEvery: '300ms' },
        revocation: { crl: { files: [join(crlDir, 'intermediate.crl.pem')] } },
      },
    });
  });

  afterAll(async () => {
    await h?.close();
    rmSync(crlDir, { recursive: true, force: true });
  });

  const warnings = (): Line[] => logLines(h).filter((l) => /^(cert_expiring|cert_expired|crl_stale|crl_stale_soon)$/.test(l.event));

  it('warns at start about the server certificate and every CA inside a threshold, with the threshold crossed, but not about a fresh CRL', async () => {
    const first = await waitFor(() => {
      const w = warnings();
      return w.length >= 3 ? w : undefined;
    }, { what: 'expiry warnings in the log' });
    const bySubject = new Map(first.map((l) => [l.subject, l]));
    expect(bySubject.get('CN=localhost,O=certgate-test')).toMatchObject({ level: 40, role: 'server', threshold: 7 });
    expect(bySubject.get('CN=localhost,O=certgate-test')!.daysLeft).toBeGreaterThan(4.8);
    expect(bySubject.get('CN=short-lived CA,O=certgate-test')).toMatchObject({ role: 'ca', threshold: 7 });
    expect(bySubject.get('CN=monthly CA,O=certgate-test')).toMatchObject({ role: 'ca', threshold: 30 });
    // The CRL's nextUpdate is 5 days away, inside the 7-day threshold, but it has its whole validity left.
    expect(bySubject.has('CN=certgate test intermediate CA,O=certgate-test')).toBe(false);
    expect(bySubject.has('CN=certgate test root CA,O=certgate-test')).toBe(false);
  });

  it('checks again every expiry.checkEvery', async () => {
    const count = () => warnings().filter((l) => l.role === 'server' && l.subject.startsWith('CN=localhost')).length;
    const before = count();
    await waitFor(() => count() >= before + 2, { what: 'a periodic check', every: 100 });
  });

  it('describes a certificate once, with the serial and fingerprint the gauges use', () => {
    const i = certificateItem('server', server.nodeCert, 'server.pem');
    expect(i).toMatchObject({ role: 'server', subject: 'CN=localhost,O=certgate-test', serial: server.serial, fingerprint: server.fingerprint256, source: 'server.pem' });
    expect(i.notAfter.getTime()).toBe(Date.parse(server.nodeCert.validTo));
  });
});

describe('CRL staleness warnings of a running certgate', () => {
  let pki: TestPki;
  let h: Harness;
  let crlDir: string;
  const INTERMEDIATE = 'CN=certgate test intermediate CA,O=certgate-test';
  const ROOT = 'CN=certgate test root CA,O=certgate-test';

  beforeAll(async () => {
    pki = await createTestPki();
    crlDir = mkdtempSync(join(tmpdir(), 'certgate-crl-'));
    const now = Date.now();
    // What certgate's CA publishes: valid 7 days, just published.
    const fresh = await pki.crl({ thisUpdate: new Date(now - 0.1 * DAY), nextUpdate: new Date(now + 6.9 * DAY) });
    // Published 6 days ago for 7 days: a seventh of its validity left.
    const old = await pki.crl({ issuer: 'root', thisUpdate: new Date(now - 6 * DAY), nextUpdate: new Date(now + DAY) });
    writeFileSync(join(crlDir, 'intermediate.crl.pem'), fresh.pem);
    writeFileSync(join(crlDir, 'root.crl.pem'), old.pem);
    h = await startHarness({
      tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
      serverCa: pki.rootPem,
      routes: [{ name: 'any', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }],
      extra: {
        log: { level: 'info', access: false, file: 'certgate.log' },
        // Long enough that only start and reload check during the test.
        expiry: { warnDays: [30, 7, 1], checkEvery: '1h' },
        revocation: { crl: { files: [join(crlDir, 'intermediate.crl.pem'), join(crlDir, 'root.crl.pem')] } },
      },
    });
  });

  afterAll(async () => {
    await h?.close();
    rmSync(crlDir, { recursive: true, force: true });
  });

  const crlLines = (): Line[] => logLines(h).filter((l) => l.role === 'crl');

  it('warns at start and at every reload about the CRL close to stale, and never about the fresh one', async () => {
    const atStart = await waitFor(() => {
      const l = crlLines();
      return l.length >= 1 ? l : undefined;
    }, { what: 'the CRL warning at start' });
    expect(atStart.map((l) => [l.level, l.event, l.subject])).toEqual([[40, 'crl_stale_soon', ROOT]]);
    expect(h.app.reload().ok).toBe(true);
    const afterReload = await waitFor(() => {
      const l = crlLines();
      return l.length >= 2 ? l : undefined;
    }, { what: 'the CRL warning after the reload' });
    expect(afterReload.map((l) => [l.level, l.event, l.subject])).toEqual([
      [40, 'crl_stale_soon', ROOT],
      [40, 'crl_stale_soon', ROOT],
    ]);
    expect(afterReload.some((l) => l.subject === INTERMEDIATE)).toBe(false);
  });
});
