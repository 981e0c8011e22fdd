// Alerts that reach people: turns what certgate already evaluates (the expiry check's findings,
// the inventory's client certificates, monitor scans, failed reloads, revocation list changes,
// the store's state) into alerts, each sent once per certificate and threshold (the ledger), to
// every webhook that wants its event. Raising never waits for a receiver.

import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { expiryFindings, type ExpiringItem, type ExpiryFinding } from '../lifecycle/expiry.js';
import type { ScanResult } from '../lifecycle/scan.js';
import type { RevocationChange } from '../revocation/local-list.js';
import type { Runtime } from '../runtime.js';
import { completeAlert, type AlertEvent, type AlertInput } from './events.js';
import type { AlertLedger } from './ledger.js';
import { WebhookSender, type WebhookTarget } from './webhook.js';

const DAY_MS = 86_400_000;
/** Ledger levels below the thresholds: a CRL about to go stale, then stale or expired. */
const LEVEL_SOON = 0;
const LEVEL_EXPIRED = -1;

type AlertsConfig = Config['alerts'];

/** A client certificate as the inventory holds it. */
export interface SeenClient {
  readonly fingerprint: string;
  readonly subject: string;
  readonly serial: string;
  readonly notAfter: number;
  readonly lastSeen: number;
}

export interface AlertsOptions {
  readonly log: Logger;
  readonly ledger: AlertLedger;
  /** The inventory's client certificates (only those seen within clientSeenWithin alert). */
  readonly clients?: () => Iterable<SeenClient>;
  readonly now?: () => number;
  /** Evaluates but never sends (cluster workers other than the first: one sender per machine). */
  readonly silent?: boolean;
}

/** A webhook whose URL file cannot be read: the message names the file, never its content. */
export class AlertConfigError extends Error {
  readonly code = 'CERTGATE_ALERTS_CONFIG';
}

/** The webhooks of a config, URL files read; throws AlertConfigError. */
export function webhookTargets(cfg: AlertsConfig): WebhookTarget[] {
  return cfg.webhooks.map((w, i) => {
    const name = `alerts.webhooks[${i}]`;
    let url = w.url;
    if (url === undefined) {
      let text: string;
      try {
        text = readFileSync(w.urlFile!, 'utf8');
      } catch (err) {
        throw new AlertConfigError(`${name}.urlFile: cannot read ${w.urlFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      url = text.trim();
      let u: URL | undefined;
      try {
        u = new URL(url);
      } catch {
        u = undefined;
      }
      if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
        throw new AlertConfigError(`${name}.urlFile: ${w.urlFile} must hold one http:// or https:// URL (its content is not shown: webhook URLs are secrets)`);
      }
    }
    return {
      name,
      url,
      format: w.format,
      events: w.events === undefined ? undefined : new Set(w.events),
      timeoutMs: w.timeout,
      retries: w.retries,
      backoffMs: w.backoff,
    };
  });
}

const round1 = (n: number): number => Math.floor(n * 10) / 10;

const targetKey = (t: WebhookTarget): string => JSON.stringify({ ...t, events: t.events === undefined ? null : [...t.events].sort() });

export class Alerts {
  readonly #log: Logger;
  readonly #ledger: AlertLedger;
  readonly #clients: () => Iterable<SeenClient>;
  readonly #now: () => number;
  readonly #silent: boolean;
  #senders: WebhookSender[] = [];
  #seenWithinDays = 30;
  #warnDays: readonly number[] = [];
  #instance = '';
  readonly #pending = new Set<Promise<void>>();

  constructor(opts: AlertsOptions) {
    this.#log = opts.log;
    this.#ledger = opts.ledger;
    this.#clients = opts.clients ?? (() => []);
    this.#now = opts.now ?? Date.now;
    this.#silent = opts.silent === true;
  }

  /** Which certgate the alerts name (`hostname:port`). */
  set instance(v: string) {
    this.#instance = v;
  }

  /** Webhooks and thresholds from a config; throws AlertConfigError (then nothing changed). */
  configure(config: Config): void {
    const targets = this.#silent ? [] : webhookTargets(config.alerts);
    // An unchanged webhook keeps its sender, and with it the alerts queued or waiting to be retried;
    // those of a changed or removed one are dropped with it (it may be gone on purpose).
    const old = new Map(this.#senders.map((s) => [targetKey(s.target), s]));
    this.#senders = targets.map((t) => {
      const same = old.get(targetKey(t));
      old.delete(targetKey(t));
      return same ?? new WebhookSender(t, this.#log);
    });
    this.#seenWithinDays = config.alerts.clientSeenWithin;
    this.#warnDays = config.expiry.warnDays;
    for (const s of old.values()) void s.close();
  }

  /** After a reload: a URL file that cannot be read keeps the previous webhooks. */
  apply(next: Runtime): void {
    try {
      this.configure(next.config);
    } catch (err) {
      this.#log.error({ event: 'alerts_config_failed', err: (err as Error).message }, 'alerts keep their previous webhooks');
    }
  }

  failed(errors: readonly string[]): void {
    this.#raise({ event: 'reload_failed', message: `reload failed, the running configuration is unchanged: ${errors[0] ?? 'unknown error'}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`, details: { errors } });
  }

  /** Every expiry check (start, reload, expiry.checkEvery): its findings, then the client certificates. */
  expiryChecked(findings: readonly ExpiryFinding[], now: number): void {
    for (const f of findings) this.#finding(f);
    const since = now - this.#seenWithinDays * DAY_MS;
    const items: ExpiringItem[] = [];
    for (const c of this.#clients()) {
      if (c.lastSeen < since) continue;
      items.push({ role: 'client', subject: c.subject, serial: c.serial, fingerprint: c.fingerprint, notAfter: new Date(c.notAfter) });
    }
    for (const f of expiryFindings(items, this.#warnDays, now)) this.#finding(f);
  }

  /**
   * After each scan of a monitored endpoint: its certificates' expiry, and an alert when it starts
   * failing (again only after it recovered).
   */
  monitorResult(address: string, r: ScanResult): void {
    // Its certificates at once, rather than at the next expiry check (up to expiry.checkEvery later).
    const now = this.#now();
    const items = r.chain.map((c): ExpiringItem => ({ role: 'monitor', subject: c.subject, notAfter: new Date(c.notAfter), serial: c.serial, fingerprint: c.fingerprint, source: address }));
    for (const f of expiryFindings(items, this.#warnDays, now)) this.#finding(f);
    const key = `monitor|${address}`;
    if (r.healthy) {
      this.#track(this.#ledger.release(key));
      return;
    }
    this.#raise(
      { event: 'monitor_problem', message: `monitored endpoint ${address} has problems: ${r.problems.join('; ')}`, daysLeft: r.daysLeft ?? null, details: { address, problems: r.problems } },
      { key, level: LEVEL_SOON, endsAt: this.#now() },
    );
  }

  revocationChanged(c: RevocationChange): void {
    const e = c.entry;
    const what = e.fingerprint !== undefined ? `fingerprint ${e.fingerprint}` : `serial ${e.serial}${e.issuer !== undefined ? ` of ${e.issuer}` : ''}`;
    const actor = c.action === 'revoke' ? e.actor : c.actor;
    const message = c.action === 'revoke'
      ? `certificate ${what} revoked by ${e.actor}: ${e.reason}`
      : `revocation of ${what} removed${actor !== undefined ? ` by ${actor}` : ''}`;
    this.#raise({
      event: 'revocation_changed',
      message,
      serial: e.serial ?? null,
      fingerprint: e.fingerprint ?? null,
      details: { action: c.action, id: e.id, issuer: e.issuer ?? null, reason: e.reason, actor: actor ?? null },
    });
  }

  /** The shared store (Redis) cannot be reached: once per outage, until storeAvailable(). */
  storeUnavailable(store: string, reason: string): void {
    this.#raise({ event: 'store_unavailable', message: `the ${store} store is unreachable (${reason}): serving from the local copy`, details: { store, reason } }, { key: `store|${store}`, level: LEVEL_SOON, endsAt: this.#now() });
  }

  storeAvailable(store: string): void {
    this.#track(this.#ledger.release(`store|${store}`));
  }

  /** Resolves when every alert raised so far is claimed and queued (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Resolves when every alert raised so far has been delivered or given up on. */
  async idle(): Promise<void> {
    await this.settled();
    await Promise.all(this.#senders.map((s) => s.idle()));
  }

  async close(): Promise<void> {
    await this.settled();
    await Promise.allSettled(this.#senders.map((s) => s.close()));
    await this.#ledger.close();
  }

  #finding(f: ExpiryFinding): void {
    const { item } = f;
    const daysLeft = round1(f.daysLeft);
    const notAfter = item.notAfter.toISOString();
    const key = item.role === 'crl' ? `crl|${item.subject}|${notAfter}` : `cert|${item.role}|${item.fingerprint ?? `${item.subject}|${item.serial ?? ''}|${notAfter}`}`;
    const cert = { subject: item.subject, serial: item.serial ?? null, fingerprint: item.fingerprint ?? null, role: item.role, notAfter, daysLeft };
    const claim = { key, endsAt: item.notAfter.getTime() };
    if (item.role === 'crl') {
      const message = f.expired
        ? `CRL of ${item.subject} is stale since ${notAfter}: publish a new one`
        : `CRL of ${item.subject} goes stale in ${daysLeft} days (${notAfter}), less than a quarter of its validity left: publish a new one`;
      this.#raise({ event: 'crl_stale', message, ...cert, details: { stale: f.expired, source: item.source ?? null } }, { ...claim, level: f.expired ? LEVEL_EXPIRED : LEVEL_SOON });
      return;
    }
    const what = `${item.role} certificate ${item.subject}`;
    if (f.expired) {
      this.#raise({ event: 'cert_expired', message: `${what} expired on ${notAfter}`, ...cert }, { ...claim, level: LEVEL_EXPIRED });
    } else if (f.threshold !== undefined) {
      this.#raise(
        { event: 'cert_expiring', message: `${what} expires in ${daysLeft} days (${notAfter}), within the ${f.threshold}-day threshold`, ...cert, threshold: f.threshold },
        { ...claim, level: f.threshold },
      );
    }
  }

  /** Claims the alert in the ledger (when it has a key) and queues it on every webhook that wants it. */
  #raise(input: AlertInput, claim?: { key: string; level: number; endsAt: number }): void {
    if (!this.#wanted(input.event)) return;
    if (claim === undefined) {
      this.#deliver(input);
      return;
    }
    this.#track(
      this.#ledger.claim(claim.key, claim.level, claim.endsAt).then((fresh) => {
        if (fresh) this.#deliver(input);
      }),
    );
  }

  #wanted(event: AlertEvent): boolean {
    return this.#senders.some((s) => s.wants(event));
  }

  #deliver(input: AlertInput): void {
    const alert = completeAlert(input, this.#instance, this.#now());
    for (const s of this.#senders) s.send(alert);
  }

  #track(p: Promise<void>): void {
    const t = p.catch((err: Error) => this.#log.error({ event: 'alerts_ledger_failed', err: err.message }, 'alert ledger failed'));
    this.#pending.add(t);
    void t.finally(() => this.#pending.delete(t));
  }
}
