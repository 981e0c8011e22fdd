import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExpiryMonitor, certificateItem, expiryFindings, type ExpiringItem } from '../../src/lifecycle/expiry.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCa, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from './lifecycle-util.js';

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
    m.addSource(() => [{ role: 'crl', subject: 'CN=issuing CA', notAfter: new Date(now + 0.5 * DAY), source: '/etc/crl.pem' }]);
    m.check();
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => [l.level, l.event, l.subject, l.threshold])).toEqual([
      [40, 'cert_expiring', 'CN=srv', 7],
      [40, 'cert_expiring', 'CN=ca', 30],
      [50, 'cert_expired', 'CN=old', undefined],
      [40, 'cert_expiring', 'CN=issuing CA', 1],
    ]);
    expect(lines[0]!.msg).toBe('server certificate CN=srv expires in 5 days (2030-01-06T00:00:00.000Z), within the 7-day threshold');
    expect(lines[3]!.msg).toMatch(/^CRL of CN=issuing CA expires in 0\.5 days/);
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

  const warnings = (): Line[] => {
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
      .map((l) => JSON.parse(l) as Line)
      .filter((l) => l.event === 'cert_expiring' || l.event === 'cert_expired');
  };

  it('warns at start about the server certificate, every CA and CRL nextUpdate inside a threshold, with the threshold crossed', async () => {
    const first = await waitFor('expiry warnings in the log', () => {
      const w = warnings();
      return w.length >= 4 ? w : undefined;
    });
    const bySubject = new Map(first.map((l) => [l.subject, l]));
    expect(bySubject.get('CN=localhost,O=certgate-test')).toMatchObject({ level: 40, role: 'server', threshold: 7 });
    expect(bySubject.get('CN=localhost,O=certgate-test')!.daysLeft).toBeGreaterThan(4.8);
    expect(bySubject.get('CN=short-lived CA,O=certgate-test')).toMatchObject({ role: 'ca', threshold: 7 });
    expect(bySubject.get('CN=monthly CA,O=certgate-test')).toMatchObject({ role: 'ca', threshold: 30 });
    expect(bySubject.get('CN=certgate test intermediate CA,O=certgate-test')).toMatchObject({ role: 'crl', threshold: 7 });
    expect(bySubject.get('CN=certgate test intermediate CA,O=certgate-test')!.msg).toMatch(/^CRL of CN=certgate test intermediate CA,O=certgate-test expires in 4\.9 days/);
    expect(bySubject.has('CN=certgate test root CA,O=certgate-test')).toBe(false);
  });

  it('checks again every expiry.checkEvery', async () => {
    const count = () => warnings().filter((l) => l.role === 'server' && l.subject.startsWith('CN=localhost')).length;
    const before = count();
    await waitFor('a periodic check', () => count() >= before + 2, 3000, 100);
  });

  it('describes a certificate once, with the serial and fingerprint the gauges use', () => {
    const i = certificateItem('server', server.nodeCert, 'server.pem');
    expect(i).toMatchObject({ role: 'server', subject: 'CN=localhost,O=certgate-test', serial: server.serial, fingerprint: server.fingerprint256, source: 'server.pem' });
    expect(i.notAfter.getTime()).toBe(Date.parse(server.nodeCert.validTo));
  });
});
