// Config `monitors:`: endpoints certgate does not serve itself (upstreams, other services),
// scanned at start and then every `interval`, off the request path. Results become metrics
// (certgate_monitor_healthy, and certgate_cert_not_after_seconds{role="monitor"} through the
// expiry monitor's sources) and a warning line whenever an endpoint has a problem.

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { metrics } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import type { ExpiringItem } from './expiry.js';
import { parseAddress, scanEndpoint, type ScanResult } from './scan.js';

type MonitorConfig = Config['monitors'][number];

export interface MonitorsOptions {
  readonly log: Logger;
  readonly policy: Config['clientCertPolicy'];
  /** Days before expiry that count as a problem (default: the smallest expiry.warnDays, or 7). */
  readonly warnDays?: number;
  readonly timeoutMs?: number;
  /** Called after every scan (tests, and anything else that wants the full report). */
  readonly onResult?: (m: MonitorConfig, r: ScanResult) => void;
}

interface Slot {
  readonly config: MonitorConfig;
  timer: NodeJS.Timeout | undefined;
  last: ScanResult | undefined;
  scannedAt: Date | undefined;
  items: readonly ExpiringItem[];
  wasHealthy: boolean | undefined;
}

export class Monitors {
  #slots: Slot[] = [];
  #opts: MonitorsOptions;
  #key = '';
  #stopped = false;

  constructor(opts: MonitorsOptions) {
    this.#opts = opts;
  }

  /** At start and after every reload: the runtime's monitors and clientCertPolicy. */
  apply(rt: Runtime): void {
    this.configure(rt.config.monitors, { policy: rt.config.clientCertPolicy });
  }

  /** Starts (or, after a reload that changed them, restarts) the monitors; first scan at once. */
  configure(monitors: Config['monitors'], opts: Partial<MonitorsOptions> = {}): void {
    this.#opts = { ...this.#opts, ...opts };
    const key = JSON.stringify(monitors);
    if (key === this.#key && !this.#stopped) return;
    this.#clear();
    this.#stopped = false;
    this.#key = key;
    this.#slots = monitors.map((config) => ({ config, timer: undefined, last: undefined, scannedAt: undefined, items: [], wasHealthy: undefined }));
    for (const slot of this.#slots) this.#schedule(slot, 0);
  }

  /** Certificates seen on the monitored endpoints, for expiry warnings and the notAfter gauge. */
  items(): ExpiringItem[] {
    return this.#slots.flatMap((s) => s.items);
  }

  /** The latest report per monitor (undefined before its first scan ends). */
  results(): (ScanResult | undefined)[] {
    return this.#slots.map((s) => s.last);
  }

  /** Each monitor with its latest report and when that scan ended (the dashboard). */
  lastScans(): { address: string; scannedAt: Date | undefined; result: ScanResult | undefined }[] {
    return this.#slots.map((s) => ({ address: s.config.address, scannedAt: s.scannedAt, result: s.last }));
  }

  stop(): void {
    this.#stopped = true;
    this.#clear();
  }

  #clear(): void {
    for (const s of this.#slots) {
      if (s.timer !== undefined) clearTimeout(s.timer);
      metrics.monitorHealthy.remove(s.config.address);
    }
    this.#slots = [];
  }

  #schedule(slot: Slot, ms: number): void {
    slot.timer = setTimeout(() => void this.#run(slot), ms);
    slot.timer.unref();
  }

  async #run(slot: Slot): Promise<void> {
    const m = slot.config;
    let result: ScanResult;
    try {
      const ca = m.ca !== undefined ? await readFile(m.ca, 'utf8') : undefined;
      result = await scanEndpoint(parseAddress(m.address), {
        ...(m.servername !== undefined ? { servername: m.servername } : {}),
        ...(ca !== undefined ? { ca } : {}),
        policy: this.#opts.policy,
        warnDays: this.#opts.warnDays ?? 7,
        timeoutMs: this.#opts.timeoutMs ?? 10_000,
      });
    } catch (err) {
      // Reading the CA file failed, or the address no longer parses: a problem like any other.
      result = {
        address: m.address, servername: m.servername, connected: false, tlsVersion: undefined, cipher: undefined, verification: 'not verified',
        hostnameMatch: undefined, daysLeft: undefined, chain: [], incompleteChain: false, weak: [], problems: [(err as Error).message], healthy: false,
      };
    }
    if (!this.#slots.includes(slot)) return; // stopped or reconfigured while scanning
    slot.last = result;
    slot.scannedAt = new Date();
    // Keep the last known certificates when a scan cannot connect: their expiry still matters.
    if (result.chain.length > 0) {
      slot.items = result.chain.map((c) => ({
        role: 'monitor',
        subject: c.subject,
        notAfter: new Date(c.notAfter),
        serial: c.serial,
        fingerprint: c.fingerprint,
        source: m.address,
      }));
    }
    metrics.monitorHealthy.labels(m.address).set(result.healthy ? 1 : 0);
    const log = this.#opts.log;
    if (!result.healthy) {
      log.warn(
        { event: 'monitor_problem', address: m.address, servername: m.servername, daysLeft: result.daysLeft, problems: result.problems },
        `monitored endpoint ${m.address} has problems: ${result.problems.join('; ')}`,
      );
    } else if (slot.wasHealthy === false) {
      log.info({ event: 'monitor_recovered', address: m.address, daysLeft: result.daysLeft }, `monitored endpoint ${m.address} is healthy again`);
    } else {
      log.debug({ event: 'monitor_ok', address: m.address, daysLeft: result.daysLeft }, 'monitored endpoint healthy');
    }
    slot.wasHealthy = result.healthy;
    this.#opts.onResult?.(m, result);
    this.#schedule(slot, m.interval);
  }
}
