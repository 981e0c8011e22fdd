// Endpoint scan: one TLS handshake to HOST:PORT, then a report of what the server presented
// (chain, expiry, hostname, weak algorithms, missing intermediates, TLS version, verification).
// Used by `certgate scan` and by the `monitors:` of a running certgate.

import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity, connect, rootCertificates, type PeerCertificate } from 'node:tls';
import { CLIENT_CERT_POLICY_DEFAULTS } from '../config/load.js';
import type { Config } from '../config/types.js';
import { identityFromDer } from '../identity/identity.js';
import { splitPem } from '../util/pem.js';
import { lintServerChain } from './lint.js';
import { hasMustStaple } from './must-staple.js';
import { isProblem, probeProtocolsAndSuites, probeSession, sessionFindings, type Finding, type ProbeReport } from './scan-probes.js';

const DAY_MS = 86_400_000;

export interface ScanTarget {
  readonly host: string;
  readonly port: number;
}

export interface ScanOptions {
  /** SNI and the name checked against the SANs; default the host (SNI only when not an IP). */
  readonly servername?: string;
  /** Client certificate and key (PEM), for servers that require one. */
  readonly cert?: string;
  readonly key?: string;
  /** Trusted CAs (PEM); default the system store. */
  readonly ca?: string;
  readonly timeoutMs?: number;
  /** A certificate expiring within this many days is a problem; default 7. */
  readonly warnDays?: number;
  /** Weak-algorithm rules (clientCertPolicy: key sizes, curves, signature algorithms). */
  readonly policy: Config['clientCertPolicy'];
  readonly now?: number;
  /**
   * Also probe protocols, cipher suite classes, stapling and session tickets (a dozen more
   * connections). `certgate scan` does, unless --quick; the monitors do not.
   */
  readonly probes?: boolean;
}

export interface ChainEntry {
  readonly subject: string;
  readonly issuer: string;
  readonly notAfter: string;
  readonly daysLeft: number;
  /** e.g. "EC P-256", "RSA 2048" */
  readonly key: string;
  readonly sigAlg: string;
  readonly fingerprint: string;
  readonly serial: string;
  /** true: the server sent it; false: completed from the trust store. */
  readonly sent: boolean;
}

export interface ScanResult {
  readonly address: string;
  readonly servername: string | undefined;
  readonly connected: boolean;
  readonly tlsVersion: string | undefined;
  readonly cipher: string | undefined;
  /** OpenSSL's verification: 'ok' or its code (e.g. CERT_HAS_EXPIRED). */
  readonly verification: string;
  readonly hostnameMatch: boolean | undefined;
  /** Days until the leaf expires (negative: expired). */
  readonly daysLeft: number | undefined;
  readonly chain: readonly ChainEntry[];
  readonly incompleteChain: boolean;
  readonly weak: readonly string[];
  /** Everything wrong, in words; empty when healthy. */
  readonly problems: readonly string[];
  /** Every finding with its severity (info ones are not problems); absent in a monitor's placeholder. */
  readonly findings?: readonly Finding[];
  /** With probes: the protocols and suite classes the server accepted. */
  readonly protocols?: ProbeReport['protocols'];
  readonly suites?: ProbeReport['suites'];
  readonly healthy: boolean;
}

/** `host:port`, `[::1]:port`; the port defaults to 443. Throws on anything else. */
export function parseAddress(text: string): ScanTarget {
  const m = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(text) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(text);
  const port = m?.[2] === undefined ? 443 : Number(m[2]);
  if (m === null || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`"${text}" is not HOST:PORT (e.g. api.example.com:443, 127.0.0.1:8443, [::1]:8443)`);
  }
  return { host: m[1]!, port };
}

function formatAddress(t: ScanTarget): string {
  return isIP(t.host) === 6 ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

let systemAnchors: X509Certificate[] | undefined;

function anchorsOf(caPem: string | undefined): X509Certificate[] {
  if (caPem !== undefined) return splitPem(caPem, 'CERTIFICATE').map((p) => new X509Certificate(p));
  return (systemAnchors ??= rootCertificates.map((p) => new X509Certificate(p)));
}

const issuedBy = (cert: X509Certificate, ca: X509Certificate): boolean => cert.checkIssued(ca) && cert.verify(ca.publicKey);
const selfSigned = (c: X509Certificate): boolean => c.checkIssued(c);

export async function scanEndpoint(target: ScanTarget, opts: ScanOptions): Promise<ScanResult> {
  const address = formatAddress(target);
  const servername = opts.servername ?? (isIP(target.host) ? undefined : target.host);
  const now = opts.now ?? Date.now();
  const warnDays = opts.warnDays ?? 7;
  let socket: Handshake;
  try {
    socket = await handshake(target, servername, opts);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const problem = `connect failed: ${e.code ?? ''}${e.code ? ' ' : ''}${e.message}`.trim();
    return {
      address, servername, connected: false, tlsVersion: undefined, cipher: undefined, verification: 'not verified', hostnameMatch: undefined,
      daysLeft: undefined, chain: [], incompleteChain: false, weak: [], problems: [problem], findings: [{ id: 'connect', severity: 'critical', message: problem }], healthy: false,
    };
  }
  {
    const problems: string[] = [];
    const findings: Finding[] = [];
    const flag = (id: string, message: string, severity: Finding['severity'] = 'high') => void findings.push({ id, severity, message });
    const verification = socket.verification;
    const leaf = socket.leaf;
    if (leaf === undefined) {
      problems.push('the server presented no certificate');
      return {
        address, servername, connected: true, tlsVersion: socket.tlsVersion, cipher: socket.cipher, verification,
        hostnameMatch: false, daysLeft: undefined, chain: [], incompleteChain: false, weak: [], problems,
        findings: [{ id: 'certificate.none', severity: 'critical', message: problems[0]! }], healthy: false,
      };
    }
    // What the server sent, from the issuer links Node keeps (peer-sent certificates only).
    const sent: X509Certificate[] = [leaf];
    for (let cur = leaf, next = cur.issuerCertificate; next !== undefined && sent.length < 16; cur = next, next = cur.issuerCertificate) {
      if (next.fingerprint256 === cur.fingerprint256) break;
      sent.push(next);
    }
    // Completed from the trust store, to a root where possible.
    const anchors = anchorsOf(opts.ca);
    const completed: X509Certificate[] = [];
    let last = sent[sent.length - 1]!;
    let incompleteChain = false;
    if (!selfSigned(last)) {
      for (let i = 0; i < 8; i++) {
        const issuer = anchors.find((a) => issuedBy(last, a));
        if (issuer === undefined) {
          // Nobody we know issued the last certificate the server sent: the intermediate it
          // should have sent is missing, or the CA is simply not trusted.
          if (completed.length === 0) incompleteChain = verification === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' || verification === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE';
          break;
        }
        // Reaching the trust anchors through an intermediate the server did not send.
        if (completed.length === 0 && !selfSigned(issuer)) incompleteChain = true;
        completed.push(issuer);
        if (selfSigned(issuer)) break;
        last = issuer;
      }
    }
    const entry = (c: X509Certificate, wasSent: boolean): ChainEntry => {
      const id = identityFromDer(new Uint8Array(c.raw));
      return {
        subject: id.subject,
        issuer: id.issuer,
        notAfter: id.notAfter.toISOString(),
        daysLeft: Math.floor((id.notAfter.getTime() - now) / DAY_MS),
        key: `${id.keyType}${id.curve ? ` ${id.curve}` : id.keyBits ? ` ${id.keyBits}` : ''}`,
        sigAlg: id.sigAlg,
        fingerprint: id.fingerprint,
        serial: id.serial,
        sent: wasSent,
      };
    };
    const chain = [...sent.map((c) => entry(c, true)), ...completed.map((c) => entry(c, false))];
    const daysLeft = chain[0]!.daysLeft;

    const expiredAt = Date.parse(leaf.validTo);
    if (expiredAt <= now) flag('expiry', `the server certificate expired on ${new Date(expiredAt).toISOString()}`);
    else if (expiredAt - now < warnDays * DAY_MS) flag('expiry', `the server certificate expires in ${daysLeft} days (${new Date(expiredAt).toISOString()})`);
    if (Date.parse(leaf.validFrom) > now) flag('expiry', `the server certificate is not valid before ${new Date(leaf.validFrom).toISOString()}`);
    for (const c of chain.slice(1)) {
      if (Date.parse(c.notAfter) <= now) flag('expiry.chain', `chain certificate ${c.subject} expired on ${c.notAfter}`);
      else if (c.daysLeft < warnDays) flag('expiry.chain', `chain certificate ${c.subject} expires in ${c.daysLeft} days`);
    }
    const nameToCheck = servername ?? target.host;
    const idErr = checkServerIdentity(nameToCheck, socket.peer);
    const hostnameMatch = idErr === undefined;
    if (idErr !== undefined) flag('hostname', `hostname mismatch: ${idErr.message}`);
    if (incompleteChain) {
      const top = chain[sent.length - 1]!;
      flag('chain.incomplete', `incomplete chain: the server did not send the intermediate CA certificate that issued ${top.subject} (issuer ${top.issuer})`);
    }
    if (verification !== 'ok' && !(verification === 'CERT_HAS_EXPIRED' && expiredAt <= now)) flag('chain.trust', `verification failed: ${verification}`);
    const weak = lintServerChain([...sent, ...completed], opts.policy).map((f) => `${f.what}: ${f.violation.reason}`);
    for (const w of weak) flag('key.weak', `weak: ${w}`);
    const top = chain[0]!;
    flag('key', `server key ${top.key}, signature ${top.sigAlg}`, 'info');
    let probed: ProbeReport | undefined;
    if (opts.probes === true) {
      const t = { host: target.host, port: target.port, servername: servername !== undefined && isIP(servername) === 0 ? servername : undefined, timeoutMs: opts.timeoutMs ?? 5000 };
      const creds = { ...(opts.cert !== undefined ? { cert: opts.cert } : {}), ...(opts.key !== undefined ? { key: opts.key } : {}) };
      const [report, session] = await Promise.all([probeProtocolsAndSuites(t), probeSession(t, creds)]);
      probed = report;
      findings.push(...report.findings, ...sessionFindings(session, hasMustStaple(new Uint8Array(leaf.raw))));
    }
    problems.push(...findings.filter(isProblem).map((f) => f.message));
    return {
      address, servername, connected: true, tlsVersion: socket.tlsVersion, cipher: socket.cipher, verification,
      hostnameMatch, daysLeft, chain, incompleteChain, weak, problems, findings,
      ...(probed !== undefined ? { protocols: probed.protocols, suites: probed.suites } : {}), healthy: problems.length === 0,
    };
  }
}

/** What the handshake showed, taken at secureConnect (the server may close right after). */
interface Handshake {
  readonly verification: string;
  readonly leaf: X509Certificate | undefined;
  readonly peer: PeerCertificate;
  readonly tlsVersion: string | undefined;
  readonly cipher: string | undefined;
}

function handshake(target: ScanTarget, servername: string | undefined, opts: ScanOptions): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: target.host,
      port: target.port,
      ...(servername !== undefined && isIP(servername) === 0 ? { servername } : {}),
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      ...(opts.cert !== undefined ? { cert: opts.cert } : {}),
      ...(opts.key !== undefined ? { key: opts.key } : {}),
      // The hostname is checked (and reported) on its own, not folded into authorizationError.
      checkServerIdentity: () => undefined,
      // Verification is read and reported, not enforced: a broken endpoint must still be described.
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no TLS handshake within ${opts.timeoutMs ?? 5000} ms`), { code: 'ETIMEDOUT' }));
    }, opts.timeoutMs ?? 5000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      socket.on('error', () => {}); // late errors after the report is taken are irrelevant
      // Before getPeerX509Certificate: on a client socket Node 20's getPeerX509Certificate takes
      // the leaf out of OpenSSL's peer chain, after which getPeerCertificate() returns {}.
      const peer = socket.getPeerCertificate();
      resolve({
        verification: socket.authorized ? 'ok' : String(socket.authorizationError ?? 'UNKNOWN'),
        leaf: socket.getPeerX509Certificate(),
        peer,
        tlsVersion: socket.getProtocol() ?? undefined,
        cipher: socket.getCipher()?.name,
      });
      // Politely (close_notify and FIN), so that the server sees a client that went away, not
      // a failed handshake; a server that never closes its side is cut off after a second.
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
  });
}

/** Several endpoints at once (bounded, so a long list does not open hundreds of sockets). */
export async function scanAll(targets: readonly ScanTarget[], opts: ScanOptions, concurrency = 8): Promise<ScanResult[]> {
  const out: ScanResult[] = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const i = next++;
      out[i] = await scanEndpoint(targets[i]!, opts);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rendering

export function renderScanText(results: readonly ScanResult[]): string {
  const rows = [['ENDPOINT', 'STATUS', 'TLS', 'DAYS LEFT', 'VERIFY', 'HOSTNAME', 'SUBJECT']];
  for (const r of results) {
    rows.push([
      r.address,
      r.healthy ? 'ok' : 'PROBLEM',
      r.tlsVersion ?? '-',
      r.daysLeft === undefined ? '-' : String(r.daysLeft),
      r.verification,
      r.hostnameMatch === undefined ? '-' : r.hostnameMatch ? 'match' : 'MISMATCH',
      r.chain[0]?.subject ?? '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  let out = rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
  for (const r of results) {
    out += `\n${r.address}${r.servername ? ` (servername ${r.servername})` : ''}\n`;
    r.chain.forEach((c, i) => {
      out += `  ${i} ${c.subject}${c.sent ? '' : '  [from trust store]'}\n`;
      out += `    issuer ${c.issuer}\n    notAfter ${c.notAfter} (${c.daysLeft} days)  key ${c.key}  sig ${c.sigAlg}\n`;
    });
    // Probe results first: the verdict ("healthy" or the problems) stays the last lines.
    if (r.protocols !== undefined) {
      const offered = Object.entries(r.protocols).filter(([, v]) => v === true).map(([k]) => k);
      out += `  protocols offered: ${offered.join(' ') || 'none'}\n`;
      for (const f of (r.findings ?? []).filter((x) => x.severity === 'info')) out += `  info: ${f.message}\n`;
    }
    out += r.problems.length === 0 ? '  healthy\n' : r.problems.map((p) => `  problem: ${p}\n`).join('');
  }
  return out;
}

/** clientCertPolicy's defaults: what `certgate scan` calls weak without a config. */
export const defaultScanPolicy: Readonly<Config['clientCertPolicy']> = CLIENT_CERT_POLICY_DEFAULTS;
