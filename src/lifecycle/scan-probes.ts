// The part of `certgate scan` that asks the server what else it would negotiate, as testssl.sh
// does with `-p -s -f`: each protocol version, each class of weak cipher suite offered alone,
// a key exchange without forward secrecy; and what a full handshake shows besides the chain: an
// OCSP staple, must-staple, the session ticket's lifetime hint.

import { connect, type ConnectionOptions } from 'node:tls';
import { children, readTlv } from '../util/der.js';
import { clientHello, sendHello, SSL3, TLS10, TLS11, TLS12, type HelloAnswer } from './scan-hello.js';

/** How much a finding matters; everything but `info` makes the endpoint unhealthy. */
export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';

export interface Finding {
  /** Stable name of the check, e.g. `protocol.tls1`, `cipher.cbc`, `chain.incomplete`. */
  readonly id: string;
  readonly severity: Severity;
  readonly message: string;
}

export const isProblem = (f: Finding): boolean => f.severity !== 'info';

/** The TLS 1.2-and-below suites the probes offer (IANA id, OpenSSL name). */
const SUITES: ReadonlyArray<readonly [number, string]> = [
  [0x0001, 'NULL-MD5'], [0x0002, 'NULL-SHA'], [0x0003, 'EXP-RC4-MD5'], [0x0004, 'RC4-MD5'], [0x0005, 'RC4-SHA'],
  [0x0006, 'EXP-RC2-CBC-MD5'], [0x0007, 'IDEA-CBC-SHA'], [0x0008, 'EXP-DES-CBC-SHA'], [0x0009, 'DES-CBC-SHA'],
  [0x000a, 'DES-CBC3-SHA'], [0x0011, 'EXP-EDH-DSS-DES-CBC-SHA'], [0x0012, 'EDH-DSS-DES-CBC-SHA'], [0x0013, 'EDH-DSS-DES-CBC3-SHA'],
  [0x0014, 'EXP-EDH-RSA-DES-CBC-SHA'], [0x0015, 'EDH-RSA-DES-CBC-SHA'], [0x0016, 'EDH-RSA-DES-CBC3-SHA'], [0x0017, 'EXP-ADH-RC4-MD5'],
  [0x0018, 'ADH-RC4-MD5'], [0x0019, 'EXP-ADH-DES-CBC-SHA'], [0x001a, 'ADH-DES-CBC-SHA'], [0x001b, 'ADH-DES-CBC3-SHA'],
  [0x002f, 'AES128-SHA'], [0x0032, 'DHE-DSS-AES128-SHA'], [0x0033, 'DHE-RSA-AES128-SHA'], [0x0034, 'ADH-AES128-SHA'],
  [0x0035, 'AES256-SHA'], [0x0038, 'DHE-DSS-AES256-SHA'], [0x0039, 'DHE-RSA-AES256-SHA'], [0x003a, 'ADH-AES256-SHA'],
  [0x003b, 'NULL-SHA256'], [0x003c, 'AES128-SHA256'], [0x003d, 'AES256-SHA256'], [0x0040, 'DHE-DSS-AES128-SHA256'],
  [0x0041, 'CAMELLIA128-SHA'], [0x0044, 'DHE-DSS-CAMELLIA128-SHA'], [0x0045, 'DHE-RSA-CAMELLIA128-SHA'], [0x0046, 'ADH-CAMELLIA128-SHA'],
  [0x0062, 'EXP1024-DES-CBC-SHA'], [0x0064, 'EXP1024-RC4-SHA'], [0x0067, 'DHE-RSA-AES128-SHA256'], [0x006a, 'DHE-DSS-AES256-SHA256'],
  [0x006b, 'DHE-RSA-AES256-SHA256'], [0x006c, 'ADH-AES128-SHA256'], [0x006d, 'ADH-AES256-SHA256'], [0x0084, 'CAMELLIA256-SHA'],
  [0x0087, 'DHE-DSS-CAMELLIA256-SHA'], [0x0088, 'DHE-RSA-CAMELLIA256-SHA'], [0x0089, 'ADH-CAMELLIA256-SHA'], [0x0096, 'SEED-SHA'],
  [0x009a, 'DHE-RSA-SEED-SHA'], [0x009c, 'AES128-GCM-SHA256'], [0x009d, 'AES256-GCM-SHA384'], [0x009e, 'DHE-RSA-AES128-GCM-SHA256'],
  [0x009f, 'DHE-RSA-AES256-GCM-SHA384'], [0x00a6, 'ADH-AES128-GCM-SHA256'], [0x00a7, 'ADH-AES256-GCM-SHA384'], [0x00ba, 'CAMELLIA128-SHA256'],
  [0x00be, 'DHE-RSA-CAMELLIA128-SHA256'], [0x00c0, 'CAMELLIA256-SHA256'], [0x00c4, 'DHE-RSA-CAMELLIA256-SHA256'],
  [0xc001, 'ECDH-ECDSA-NULL-SHA'], [0xc002, 'ECDH-ECDSA-RC4-SHA'], [0xc003, 'ECDH-ECDSA-DES-CBC3-SHA'], [0xc004, 'ECDH-ECDSA-AES128-SHA'],
  [0xc005, 'ECDH-ECDSA-AES256-SHA'], [0xc006, 'ECDHE-ECDSA-NULL-SHA'], [0xc007, 'ECDHE-ECDSA-RC4-SHA'], [0xc008, 'ECDHE-ECDSA-DES-CBC3-SHA'],
  [0xc009, 'ECDHE-ECDSA-AES128-SHA'], [0xc00a, 'ECDHE-ECDSA-AES256-SHA'], [0xc00b, 'ECDH-RSA-NULL-SHA'], [0xc00c, 'ECDH-RSA-RC4-SHA'],
  [0xc00d, 'ECDH-RSA-DES-CBC3-SHA'], [0xc00e, 'ECDH-RSA-AES128-SHA'], [0xc00f, 'ECDH-RSA-AES256-SHA'], [0xc010, 'ECDHE-RSA-NULL-SHA'],
  [0xc011, 'ECDHE-RSA-RC4-SHA'], [0xc012, 'ECDHE-RSA-DES-CBC3-SHA'], [0xc013, 'ECDHE-RSA-AES128-SHA'], [0xc014, 'ECDHE-RSA-AES256-SHA'],
  [0xc015, 'AECDH-NULL-SHA'], [0xc016, 'AECDH-RC4-SHA'], [0xc017, 'AECDH-DES-CBC3-SHA'], [0xc018, 'AECDH-AES128-SHA'],
  [0xc019, 'AECDH-AES256-SHA'], [0xc023, 'ECDHE-ECDSA-AES128-SHA256'], [0xc024, 'ECDHE-ECDSA-AES256-SHA384'],
  [0xc027, 'ECDHE-RSA-AES128-SHA256'], [0xc028, 'ECDHE-RSA-AES256-SHA384'], [0xc02b, 'ECDHE-ECDSA-AES128-GCM-SHA256'],
  [0xc02c, 'ECDHE-ECDSA-AES256-GCM-SHA384'], [0xc02f, 'ECDHE-RSA-AES128-GCM-SHA256'], [0xc030, 'ECDHE-RSA-AES256-GCM-SHA384'],
  [0xc050, 'ARIA128-GCM-SHA256'], [0xc051, 'ARIA256-GCM-SHA384'], [0xc072, 'ECDHE-ECDSA-CAMELLIA128-SHA256'],
  [0xc073, 'ECDHE-ECDSA-CAMELLIA256-SHA384'], [0xc076, 'ECDHE-RSA-CAMELLIA128-SHA256'], [0xc077, 'ECDHE-RSA-CAMELLIA256-SHA384'],
  [0xc09c, 'AES128-CCM'], [0xc09d, 'AES256-CCM'], [0xc09e, 'DHE-RSA-AES128-CCM'], [0xc09f, 'DHE-RSA-AES256-CCM'],
  [0xc0ac, 'ECDHE-ECDSA-AES128-CCM'], [0xc0ad, 'ECDHE-ECDSA-AES256-CCM'], [0xcca8, 'ECDHE-RSA-CHACHA20-POLY1305'],
  [0xcca9, 'ECDHE-ECDSA-CHACHA20-POLY1305'], [0xccaa, 'DHE-RSA-CHACHA20-POLY1305'],
];

const NAME = new Map(SUITES);
const suiteName = (id: number): string => NAME.get(id) ?? `0x${id.toString(16).padStart(4, '0')}`;

interface SuiteClass {
  readonly id: string;
  readonly severity: Severity;
  readonly what: string;
  readonly test: (name: string) => boolean;
}

const anonymous = (n: string) => /^(EXP-)?(ADH|AECDH)-/.test(n);
const isExport = (n: string) => /^EXP/.test(n) || /(^|-)DES-CBC-/.test(n);

/** The classes probed one by one, each offered alone (testssl.sh's "standard cipher categories" and forward secrecy). */
export const SUITE_CLASSES: readonly SuiteClass[] = [
  { id: 'cipher.null', severity: 'critical', what: 'NULL (unencrypted) suites', test: (n) => n.includes('NULL') },
  { id: 'cipher.anonymous', severity: 'critical', what: 'anonymous (unauthenticated) suites', test: anonymous },
  { id: 'cipher.export', severity: 'critical', what: 'export and single-DES suites', test: isExport },
  { id: 'cipher.rc4', severity: 'high', what: 'RC4 suites', test: (n) => n.includes('RC4') },
  { id: 'cipher.3des', severity: 'medium', what: '3DES suites (SWEET32)', test: (n) => n.includes('DES-CBC3') && !anonymous(n) },
  {
    id: 'cipher.cbc',
    severity: 'medium',
    what: 'CBC suites (obsolete; LUCKY13)',
    test: (n) => !/GCM|CCM|CHACHA20|NULL|RC4|DES|RC2/.test(n) && !anonymous(n),
  },
  {
    id: 'cipher.no-forward-secrecy',
    severity: 'medium',
    what: 'suites without forward secrecy (static RSA or ECDH key exchange)',
    test: (n) => !/^(ECDHE|DHE|EDH|ADH|AECDH|EXP)/.test(n) && !n.includes('NULL') && !n.includes('RC4'),
  },
];

const ALL_SUITE_IDS = SUITES.map(([id]) => id);

const PROTOCOLS: ReadonlyArray<{ readonly version: number; readonly label: string; readonly id: string; readonly severity: Severity }> = [
  { version: SSL3, label: 'SSLv3', id: 'protocol.ssl3', severity: 'critical' },
  { version: TLS10, label: 'TLSv1', id: 'protocol.tls1', severity: 'medium' },
  { version: TLS11, label: 'TLSv1.1', id: 'protocol.tls1_1', severity: 'medium' },
];

export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
  readonly servername: string | undefined;
  readonly timeoutMs: number;
}

export interface ProbeReport {
  /** Protocol versions the server negotiates when offered alone (SSLv3 … TLSv1.3). */
  readonly protocols: Readonly<Record<string, boolean | undefined>>;
  /** Per suite class: the suite the server picked when offered only that class, or null. */
  readonly suites: Readonly<Record<string, string | null | undefined>>;
  readonly findings: readonly Finding[];
}

const hello = (t: ProbeTarget, version: number, suites: readonly number[]): Promise<HelloAnswer> =>
  sendHello(t.host, t.port, clientHello(version, suites, t.servername), t.timeoutMs);

/** Protocols and suite classes, one bare ClientHello each (a few at a time). */
export async function probeProtocolsAndSuites(t: ProbeTarget): Promise<ProbeReport> {
  const findings: Finding[] = [];
  const protocols: Record<string, boolean | undefined> = {};
  const suites: Record<string, string | null | undefined> = {};
  const legacy = await Promise.all(PROTOCOLS.map(async (p) => ({ p, a: await hello(t, p.version, ALL_SUITE_IDS) })));
  for (const { p, a } of legacy) {
    protocols[p.label] = a.kind === 'inconclusive' ? undefined : a.kind === 'accepted' && a.version === p.version;
    if (protocols[p.label] === true) findings.push({ id: p.id, severity: p.severity, message: `${p.label} is offered` });
    if (a.kind === 'inconclusive') findings.push({ id: p.id, severity: 'info', message: `${p.label}: no answer (${a.reason})` });
  }
  const tls12 = await hello(t, TLS12, ALL_SUITE_IDS);
  protocols['TLSv1.2'] = tls12.kind === 'inconclusive' ? undefined : tls12.kind === 'accepted' && tls12.version === TLS12;
  protocols['TLSv1.3'] = await offersTls13(t);
  if (protocols['TLSv1.2'] !== true && protocols['TLSv1.3'] !== true) findings.push({ id: 'protocol.none', severity: 'high', message: 'neither TLSv1.2 nor TLSv1.3 is offered' });
  else if (protocols['TLSv1.3'] !== true) findings.push({ id: 'protocol.tls1_3', severity: 'info', message: 'TLSv1.3 is not offered' });

  const answers = await Promise.all(SUITE_CLASSES.map(async (c) => ({ c, a: await hello(t, TLS12, ALL_SUITE_IDS.filter((id) => c.test(suiteName(id)))) })));
  for (const { c, a } of answers) {
    suites[c.id] = a.kind === 'accepted' ? suiteName(a.suite) : a.kind === 'refused' ? null : undefined;
    if (a.kind === 'accepted') findings.push({ id: c.id, severity: c.severity, message: `${c.what} offered (the server chose ${suiteName(a.suite)} at ${versionLabel(a.version)})` });
    if (a.kind === 'inconclusive') findings.push({ id: c.id, severity: 'info', message: `${c.what}: no answer (${a.reason})` });
  }
  return { protocols, suites, findings };
}

const versionLabel = (v: number): string => PROTOCOLS.find((p) => p.version === v)?.label ?? (v === TLS12 ? 'TLSv1.2' : `0x${v.toString(16)}`);

/** TLS 1.3 needs a key share, so it is asked with Node's own client (any version it accepts is told by the handshake). */
function offersTls13(t: ProbeTarget): Promise<boolean | undefined> {
  return new Promise((resolve) => {
    const socket = connect({
      host: t.host,
      port: t.port,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ...(t.servername !== undefined ? { servername: t.servername } : {}),
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
    });
    const finish = (v: boolean | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(undefined), t.timeoutMs);
    socket.once('secureConnect', () => finish(socket.getProtocol() === 'TLSv1.3'));
    // A refusal of the version comes as a protocol_version alert or a closed connection.
    socket.once('error', (err: NodeJS.ErrnoException) => finish(/ECONNREFUSED|ETIMEDOUT/.test(err.code ?? '') ? undefined : false));
  });
}

export interface SessionFacts {
  readonly stapled: boolean;
  /** Seconds, from the first session ticket; undefined when the server issued none. */
  readonly ticketLifetimeHint: number | undefined;
}

/**
 * One full handshake asking for an OCSP staple, then a short wait for a session ticket (TLS 1.3
 * sends them right after the handshake): resolved by the first ticket, the server closing, or
 * `ticketWaitMs`.
 */
export function probeSession(t: ProbeTarget, creds: { cert?: string; key?: string; ca?: string }, ticketWaitMs = 500): Promise<SessionFacts | undefined> {
  return new Promise((resolve) => {
    let stapled = false;
    let connected = false;
    const socket = connect({
      host: t.host,
      port: t.port,
      ...(t.servername !== undefined ? { servername: t.servername } : {}),
      ...creds,
      // In Node's documentation, missing from @types/node 20.
      requestOCSP: true,
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
    } as ConnectionOptions);
    const finish = (hint: number | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(connected ? { stapled, ticketLifetimeHint: hint } : undefined);
    };
    let timer = setTimeout(() => finish(undefined), t.timeoutMs);
    socket.on('OCSPResponse', (r: Buffer | null) => (stapled ||= r !== null && r.length > 0));
    socket.once('secureConnect', () => {
      connected = true;
      clearTimeout(timer);
      timer = setTimeout(() => finish(undefined), ticketWaitMs);
    });
    socket.on('session', (s: Buffer) => finish(ticketLifetimeHint(s)));
    socket.on('data', () => {});
    socket.once('close', () => finish(undefined));
    socket.once('error', () => finish(undefined));
  });
}

/** tlsext_tick_lifetime_hint ([9] EXPLICIT INTEGER) of OpenSSL's DER-encoded SSL_SESSION. */
export function ticketLifetimeHint(session: Uint8Array): number | undefined {
  try {
    const top = readTlv(session, 0);
    for (const c of children(session, top)) {
      if (c.tag !== 0xa9) continue;
      const int = children(session, c)[0];
      if (int === undefined || int.tag !== 0x02) return undefined;
      let v = 0;
      for (let i = int.body; i < int.end; i++) v = v * 256 + session[i]!;
      return v;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

const DAY_S = 86_400;

/** Findings about stapling, must-staple and the ticket lifetime. */
export function sessionFindings(facts: SessionFacts | undefined, mustStaple: boolean): Finding[] {
  const out: Finding[] = [];
  if (facts === undefined) return [{ id: 'session', severity: 'info', message: 'no second handshake: stapling and session tickets not checked' }];
  if (mustStaple && !facts.stapled) out.push({ id: 'ocsp.must-staple', severity: 'high', message: 'the certificate demands OCSP stapling (must-staple) but the server stapled no response; clients that honour it refuse the connection' });
  else out.push({ id: 'ocsp.stapling', severity: 'info', message: facts.stapled ? `OCSP stapling offered${mustStaple ? ' (must-staple certificate)' : ''}` : 'OCSP stapling not offered' });
  const hint = facts.ticketLifetimeHint;
  if (hint === undefined) out.push({ id: 'session.ticket', severity: 'info', message: 'no session ticket issued' });
  else if (hint > 7 * DAY_S) out.push({ id: 'session.ticket', severity: 'medium', message: `session ticket lifetime hint ${hint} s: more than the 7 days RFC 8446 allows` });
  else if (hint > DAY_S) out.push({ id: 'session.ticket', severity: 'low', message: `session ticket lifetime hint ${hint} s: more than a day (a stolen ticket key decrypts that much traffic)` });
  else out.push({ id: 'session.ticket', severity: 'info', message: `session ticket lifetime hint ${hint} s` });
  return out;
}
