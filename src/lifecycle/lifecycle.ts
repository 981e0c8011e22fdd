// Certificate lifecycle around one Certgate: metrics and inventory (through the Observer), expiry
// warnings and gauges, the file watcher, ticket key rotation, inventory persistence.
// app.ts creates it after the proxy and stops it after the drain.

import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { metrics, onCollect } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import type { Observer, ReloadResult } from '../proxy/events.js';
import { ExpiryMonitor, runtimeCertificates, type ExpiringItem } from './expiry.js';
import { Inventory } from './inventory.js';
import { LifecycleObserver } from './observe.js';
import { RefusalWindow } from './refusal-window.js';
import type { TicketKeyRotator } from './ticket-keys.js';
import { ReloadWatcher, watchedFiles } from './watch.js';

const DAY_MS = 86_400_000;
/** Upper bounds (days) of certgate_client_certs_expiring{within}; 'expired' and 'later' besides. */
const EXPIRY_BUCKETS = [1, 7, 30, 90] as const;
const INVENTORY_SAVE_MS = 60_000;

/** What the lifecycle needs of the proxy listener (Certgate). */
export interface LifecycleTarget {
  readonly runtime: Runtime;
  readonly openConnections: number;
  /** Age of the OCSP response stapled for the server certificate; undefined when none is. */
  readonly ocspStapleAgeSeconds: number | undefined;
  setObserver(o: Observer): void;
  setTicketKeys(keys: Buffer): void;
}

export interface LifecycleOptions {
  readonly certgate: LifecycleTarget;
  readonly config: Config;
  readonly log: Logger;
  /** The one reload: SIGHUP, POST /reload and the watcher call it. */
  readonly reload: () => ReloadResult;
  readonly tickets: TicketKeyRotator;
}

export class Lifecycle {
  readonly inventory: Inventory;
  readonly expiry: ExpiryMonitor;
  readonly watcher: ReloadWatcher | undefined;
  readonly tickets: TicketKeyRotator;
  readonly refusals = new RefusalWindow();
  readonly #certgate: LifecycleTarget;
  readonly #log: Logger;
  /** Fixed at start (its save timer starts with the process); a cluster worker's has a slot suffix. */
  readonly #inventoryFile: string | undefined;
  /** Parsed once per runtime generation, not per scrape. */
  #runtimeItems: ExpiringItem[];
  #saveTimer: NodeJS.Timeout | undefined;
  readonly #cleanup: (() => void)[] = [];

  constructor(opts: LifecycleOptions) {
    const { certgate, config, log } = opts;
    this.#certgate = certgate;
    this.#inventoryFile = config.inventory.file;
    this.#log = log;
    this.tickets = opts.tickets;
    this.inventory = new Inventory({ maxEntries: config.inventory.maxEntries });
    if (config.inventory.file !== undefined) {
      try {
        const n = this.inventory.load(config.inventory.file);
        if (n > 0) log.info({ event: 'inventory_loaded', entries: n, file: config.inventory.file }, 'client certificate inventory loaded');
      } catch (err) {
        log.warn({ event: 'inventory_load_failed', err: (err as Error).message }, 'starting with an empty inventory');
      }
    }
    this.#runtimeItems = runtimeCertificates(certgate.runtime);
    this.expiry = new ExpiryMonitor({ log, warnDays: config.expiry.warnDays, checkEveryMs: config.expiry.checkEvery });
    this.expiry.addSource(() => this.#runtimeItems);

    this.watcher = config.watch.enabled
      ? new ReloadWatcher({ log, debounceMs: config.watch.debounce, reload: opts.reload, configFile: config.file })
      : undefined;
    this.watcher?.setFiles(watchedFiles(config));

    certgate.setObserver(new LifecycleObserver({ inventory: this.inventory, refusals: this.refusals }));
    this.#cleanup.push(this.tickets.onRotate((keys) => certgate.setTicketKeys(keys)));
    this.tickets.start();

    metrics.reloads.labels('success').inc(0);
    metrics.reloads.labels('failure').inc(0);
    this.#cleanup.push(
      onCollect('certgate_open_connections', () => metrics.openConnections.set(certgate.openConnections)),
      onCollect('certgate_cert_not_after_seconds', () => this.#collectNotAfter()),
      onCollect('certgate_client_certs_expiring', () => this.#collectBuckets()),
    );

    this.expiry.start();
    if (config.inventory.file !== undefined) {
      this.#saveTimer = setInterval(() => this.#save(), INVENTORY_SAVE_MS);
      this.#saveTimer.unref();
    }
  }

  /** Server chain and CA items of the running runtime. */
  get runtimeCertificates(): readonly ExpiringItem[] {
    return this.#runtimeItems;
  }

  get ocspStapleAgeSeconds(): number | undefined {
    return this.#certgate.ocspStapleAgeSeconds;
  }

  /** After a reload (Certgate.follow): everything here reads the new runtime. */
  apply(rt: Runtime): void {
    this.#runtimeItems = runtimeCertificates(rt);
    this.inventory.setMaxEntries(rt.config.inventory.maxEntries);
    this.watcher?.setFiles(watchedFiles(rt.config));
    this.expiry.configure(rt.config.expiry.warnDays, rt.config.expiry.checkEvery);
    this.expiry.check();
  }

  #collectNotAfter(): void {
    const g = metrics.certNotAfter;
    g.reset();
    for (const i of this.expiry.items()) {
      g.labels(i.role, i.subject, i.serial ?? '', i.fingerprint ?? '').set(Math.floor(i.notAfter.getTime() / 1000));
    }
    // Bounded cardinality: only the N soonest-expiring client certificates get their own series.
    const n = this.#certgate.runtime.config.inventory.perClientSeries;
    if (n <= 0) return;
    const clients = [...this.inventory.notAfters()];
    if (clients.length > n) clients.sort((a, b) => a.notAfter - b.notAfter).length = n;
    for (const c of clients) g.labels('client', c.subject, c.serial, c.fingerprint).set(Math.floor(c.notAfter / 1000));
  }

  #collectBuckets(): void {
    const now = Date.now();
    const counts = new Map<string, number>([['expired', 0], ...EXPIRY_BUCKETS.map((b) => [String(b), 0] as [string, number]), ['later', 0]]);
    for (const c of this.inventory.notAfters()) {
      const days = (c.notAfter - now) / DAY_MS;
      const bucket = days <= 0 ? 'expired' : String(EXPIRY_BUCKETS.find((b) => days <= b) ?? 'later');
      counts.set(bucket, counts.get(bucket)! + 1);
    }
    for (const [within, n] of counts) metrics.clientCertsByExpiry.labels(within).set(n);
  }

  #save(): void {
    const file = this.#inventoryFile;
    if (file === undefined) return;
    try {
      this.inventory.save(file);
    } catch (err) {
      this.#log.warn({ event: 'inventory_save_failed', file, err: (err as Error).message }, 'cannot save the inventory');
    }
  }

  /** After the drain: stop timers and watches, write the inventory one last time. */
  stop(): void {
    this.watcher?.close();
    this.expiry.stop();
    this.tickets.stop();
    if (this.#saveTimer !== undefined) clearInterval(this.#saveTimer);
    for (const c of this.#cleanup.splice(0)) c();
    this.#save();
  }
}
