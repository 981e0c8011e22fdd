// Expiry monitoring of everything certgate depends on: its server chain, every CA in the client
// trust bundles, and whatever other modules register (CRL nextUpdate, monitored endpoints).
// At start, after each reload and every expiry.checkEvery: one log line per item inside a
// threshold, so that an operator is reminded until the certificate is renewed.

import type { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { identityFromDer } from '../identity/identity.js';
import type { Runtime } from '../runtime.js';

const DAY_MS = 86_400_000;

/** Anything with an end date: a certificate, a CRL (nextUpdate), a monitored endpoint's cert. */
export interface ExpiringItem {
  /** server, ca, crl, monitor, ...: also the `role` label of certgate_cert_not_after_seconds. */
  readonly role: string;
  /** RFC 4514 subject (or the CRL issuer). */
  readonly subject: string;
  readonly notAfter: Date;
  readonly serial?: string;
  readonly fingerprint?: string;
  /** Where it came from: a file path or a URL, for the log line. */
  readonly source?: string;
}

export type ExpirySource = () => readonly ExpiringItem[];

export interface ExpiryFinding {
  readonly item: ExpiringItem;
  readonly daysLeft: number;
  /** The smallest threshold (days) the item is inside; undefined when it has expired. */
  readonly threshold: number | undefined;
  readonly expired: boolean;
}

/** Describes a parsed certificate once (at load), never per request. */
export function certificateItem(role: string, cert: X509Certificate, source?: string): ExpiringItem {
  const id = identityFromDer(new Uint8Array(cert.raw));
  return {
    role,
    subject: id.subject,
    notAfter: id.notAfter,
    serial: id.serial,
    fingerprint: id.fingerprint,
    ...(source !== undefined ? { source } : {}),
  };
}

/** The server chain and every CA of a runtime. */
export function runtimeCertificates(rt: Runtime): ExpiringItem[] {
  return [
    ...rt.tls.serverChain.map((c) => certificateItem('server', c, rt.config.tls.cert)),
    ...rt.tls.cas.map((c) => certificateItem('ca', c.cert, c.file)),
  ];
}

/** Pure: which items are inside a threshold (warnDays sorted any way) or expired at `now`. */
export function expiryFindings(items: readonly ExpiringItem[], warnDays: readonly number[], now: number): ExpiryFinding[] {
  const ascending = [...warnDays].sort((a, b) => a - b);
  const out: ExpiryFinding[] = [];
  for (const item of items) {
    const msLeft = item.notAfter.getTime() - now;
    const daysLeft = msLeft / DAY_MS;
    if (msLeft <= 0) {
      out.push({ item, daysLeft, threshold: undefined, expired: true });
      continue;
    }
    const threshold = ascending.find((d) => daysLeft <= d);
    if (threshold !== undefined) out.push({ item, daysLeft, threshold, expired: false });
  }
  return out;
}

export interface ExpiryMonitorOptions {
  readonly log: Logger;
  readonly warnDays: readonly number[];
  readonly checkEveryMs: number;
  readonly now?: () => number;
}

export class ExpiryMonitor {
  readonly #log: Logger;
  #warnDays: readonly number[];
  #everyMs: number;
  readonly #now: () => number;
  readonly #sources = new Set<ExpirySource>();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: ExpiryMonitorOptions) {
    this.#log = opts.log;
    this.#warnDays = opts.warnDays;
    this.#everyMs = opts.checkEveryMs;
    this.#now = opts.now ?? Date.now;
  }

  /** Other modules (revocation: CRL nextUpdate; monitors) add what they know about. */
  addSource(source: ExpirySource): () => void {
    this.#sources.add(source);
    return () => this.#sources.delete(source);
  }

  /** New thresholds or interval after a reload. */
  configure(warnDays: readonly number[], checkEveryMs: number): void {
    this.#warnDays = warnDays;
    if (checkEveryMs !== this.#everyMs) {
      this.#everyMs = checkEveryMs;
      if (this.#timer !== undefined) {
        this.stop();
        this.start();
      }
    }
  }

  items(): ExpiringItem[] {
    const all: ExpiringItem[] = [];
    for (const s of this.#sources) {
      try {
        all.push(...s());
      } catch (err) {
        this.#log.error({ event: 'expiry_source_failed', err }, 'an expiry source failed');
      }
    }
    return all;
  }

  /** Logs one line per item inside a threshold (warn) or expired (error); returns the findings. */
  check(): ExpiryFinding[] {
    const findings = expiryFindings(this.items(), this.#warnDays, this.#now());
    for (const f of findings) {
      const { item } = f;
      const fields = {
        event: f.expired ? 'cert_expired' : 'cert_expiring',
        role: item.role,
        subject: item.subject,
        serial: item.serial,
        fingerprint: item.fingerprint,
        source: item.source,
        notAfter: item.notAfter.toISOString(),
        daysLeft: Math.floor(f.daysLeft * 10) / 10,
        threshold: f.threshold,
      };
      const what = item.role === 'crl' ? `CRL of ${item.subject}` : `${item.role} certificate ${item.subject}`;
      if (f.expired) this.#log.error(fields, `${what} expired on ${fields.notAfter}`);
      else this.#log.warn(fields, `${what} expires in ${fields.daysLeft} days (${fields.notAfter}), within the ${f.threshold}-day threshold`);
    }
    return findings;
  }

  /** Checks now and then every checkEveryMs; the timer never keeps the process alive. */
  start(): this {
    this.check();
    if (this.#everyMs > 0 && this.#timer === undefined) {
      this.#timer = setInterval(() => this.check(), this.#everyMs);
      this.#timer.unref();
    }
    return this;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
