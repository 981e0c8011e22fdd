// Expiry monitoring of everything certgate depends on: its server chain, every CA in the client
// trust bundles, and whatever other modules register (CRL nextUpdate, monitored endpoints).
// At start, after each reload and every expiry.checkEvery: one log line per item inside a
// threshold, so that an operator is reminded until the certificate is renewed.
// A CRL is judged by its own validity, not by warnDays: a CRL is published for a few days and
// replaced long before its nextUpdate, so a fresh one must not look like an expiring certificate.

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
  /** Start of validity (a CRL's thisUpdate): with notAfter, the item's lifetime. */
  readonly validFrom?: Date;
  /** Set when certgate itself fetches a new one before notAfter (a CRL URL). */
  readonly refreshedBy?: string;
}

export type ExpirySource = () => readonly ExpiringItem[];

export interface ExpiryFinding {
  readonly item: ExpiringItem;
  readonly daysLeft: number;
  /** The smallest threshold (days) the item is inside; undefined when it has expired, and for CRLs. */
  readonly threshold: number | undefined;
  /** For a CRL: stale (past nextUpdate). */
  readonly expired: boolean;
}

/** Below this share of its lifetime left, a CRL nobody refreshes for certgate is about to go stale. */
export const CRL_WARN_FRACTION = 0.25;

/** The revocation checker's description of a loaded CRL, as an expiry item (role `crl`). */
export function crlItem(c: { source: string; origin: string; issuer: string; thisUpdate: string; nextUpdate?: string }): ExpiringItem[] {
  if (c.nextUpdate === undefined) return [];
  return [
    {
      role: 'crl',
      subject: c.issuer,
      notAfter: new Date(c.nextUpdate),
      validFrom: new Date(c.thisUpdate),
      source: c.origin,
      ...(c.source === 'crl-url' ? { refreshedBy: c.origin } : {}),
    },
  ];
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

/**
 * Pure: which items need a line at `now`. Certificates: inside a threshold (warnDays sorted any
 * way) or expired. CRLs: stale, or with less than CRL_WARN_FRACTION of their lifetime
 * (nextUpdate - thisUpdate) left and no URL that certgate refreshes them from.
 */
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
    if (item.role === 'crl') {
      if (crlNearStale(item, msLeft)) out.push({ item, daysLeft, threshold: undefined, expired: false });
      continue;
    }
    const threshold = ascending.find((d) => daysLeft <= d);
    if (threshold !== undefined) out.push({ item, daysLeft, threshold, expired: false });
  }
  return out;
}

function crlNearStale(item: ExpiringItem, msLeft: number): boolean {
  if (item.refreshedBy !== undefined || item.validFrom === undefined) return false;
  const lifetime = item.notAfter.getTime() - item.validFrom.getTime();
  return lifetime > 0 && msLeft < lifetime * CRL_WARN_FRACTION;
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
  readonly #listeners = new Set<(findings: readonly ExpiryFinding[], now: number) => void>();
  #timer: NodeJS.Timeout | undefined;
  #started = false;

  constructor(opts: ExpiryMonitorOptions) {
    this.#log = opts.log;
    this.#warnDays = opts.warnDays;
    this.#everyMs = opts.checkEveryMs;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Other modules (revocation: CRL nextUpdate; monitors) add what they know about. A source added
   * after start() is checked at once, so that start reports the same as every later check.
   */
  addSource(source: ExpirySource): () => void {
    this.#sources.add(source);
    if (this.#started) this.#report(expiryFindings(this.#itemsOf([source]), this.#warnDays, this.#now()));
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

  get warnDays(): readonly number[] {
    return this.#warnDays;
  }

  /**
   * Called with the findings of every check (alerts hang off the same evaluation as the log
   * lines); a listener added after start() is called at once with a check of every source.
   */
  onCheck(listener: (findings: readonly ExpiryFinding[], now: number) => void): () => void {
    this.#listeners.add(listener);
    if (this.#started) {
      const now = this.#now();
      listener(expiryFindings(this.items(), this.#warnDays, now), now);
    }
    return () => this.#listeners.delete(listener);
  }

  items(): ExpiringItem[] {
    return this.#itemsOf(this.#sources);
  }

  #itemsOf(sources: Iterable<ExpirySource>): ExpiringItem[] {
    const all: ExpiringItem[] = [];
    for (const s of sources) {
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
    return this.#report(expiryFindings(this.items(), this.#warnDays, this.#now()));
  }

  #report(findings: ExpiryFinding[]): ExpiryFinding[] {
    const now = this.#now();
    for (const l of this.#listeners) {
      try {
        l(findings, now);
      } catch (err) {
        this.#log.error({ event: 'expiry_listener_failed', err }, 'an expiry listener failed');
      }
    }
    for (const f of findings) {
      const { item } = f;
      if (item.role === 'crl') {
        this.#reportCrl(f);
        continue;
      }
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
      const what = `${item.role} certificate ${item.subject}`;
      if (f.expired) this.#log.error(fields, `${what} expired on ${fields.notAfter}`);
      else this.#log.warn(fields, `${what} expires in ${fields.daysLeft} days (${fields.notAfter}), within the ${f.threshold}-day threshold`);
    }
    return findings;
  }

  #reportCrl(f: ExpiryFinding): void {
    const { item } = f;
    const fields = {
      event: f.expired ? 'crl_stale' : 'crl_stale_soon',
      role: item.role,
      subject: item.subject,
      source: item.source,
      thisUpdate: item.validFrom?.toISOString(),
      nextUpdate: item.notAfter.toISOString(),
      daysLeft: Math.floor(f.daysLeft * 10) / 10,
    };
    if (f.expired) this.#log.error(fields, `CRL of ${item.subject} is stale since ${fields.nextUpdate}: publish a new one`);
    else this.#log.warn(fields, `CRL of ${item.subject} goes stale in ${fields.daysLeft} days (${fields.nextUpdate}), less than a quarter of its validity left: publish a new one`);
  }

  /** Checks now and then every checkEveryMs; the timer never keeps the process alive. */
  start(): this {
    this.#started = true;
    this.check();
    if (this.#everyMs > 0 && this.#timer === undefined) {
      this.#timer = setInterval(() => this.check(), this.#everyMs);
      this.#timer.unref();
    }
    return this;
  }

  stop(): void {
    this.#started = false;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
