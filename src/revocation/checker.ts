// The composite RevocationChecker: local list first (instant), then CRLs (files, URLs,
// distribution points), then OCSP. Answers are computed once per connection by the proxy and
// kept there; `epoch` moves on any source change so open connections are re-checked.

import type { Logger } from 'pino';
import type { Config, RevocationMode } from '../config/types.js';
import type { Identity } from '../identity/types.js';
import { metrics } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import { MaterialError, type TrustedCa } from '../tls/material.js';
import { X509Certificate } from 'node:crypto';
import { caInfo, fetchCrl, loadCrl, loadCrlFile, reasonName, type LoadedCrl } from './crl.js';
import { LocalRevocationList } from './local-list.js';
import { OcspClient, type OcspAnswer } from './ocsp.js';
import { GOOD, type RevocationChecker, type RevocationSource, type RevocationStatus } from './types.js';

type Status = RevocationStatus;
type MaybeAsync = Status | undefined | Promise<Status | undefined>;

/** Longest a timer may wait (setTimeout's limit); further-off events are re-armed later. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface UrlCrl {
  crl: LoadedCrl | undefined;
  timer: NodeJS.Timeout | undefined;
  inflight: Promise<void> | undefined;
  lastError: string | undefined;
  lastAttempt: number;
}

export interface CheckerOptions {
  /** Revocation settings, trust bundle and CRL files come from the runtime (and from the next
   *  one on every reload, through apply()). */
  readonly runtime: Runtime;
  readonly log: Logger;
  /** A cluster worker gets its list from the primary (replace()): no file of its own. */
  readonly localList?: LocalRevocationList;
  readonly now?: () => number;
}

export class CompositeRevocationChecker implements RevocationChecker {
  #epoch = 1;
  readonly #listeners: (() => void)[] = [];
  readonly #log: Logger;
  readonly #now: () => number;
  readonly local: LocalRevocationList;
  #rt: Runtime;
  #casByDn = new Map<string, TrustedCa[]>();
  #issuerCache = new Map<string, TrustedCa | null>();
  #parents = new Map<TrustedCa, TrustedCa | null>();
  /** issuer DN -> CRLs from files. */
  #fileCrls = new Map<string, LoadedCrl[]>();
  /** URL -> state, for configured URLs and distribution points alike. */
  #urlCrls = new Map<string, UrlCrl>();
  #configuredUrls = new Set<string>();
  #ocsp: OcspClient | undefined;
  #staleTimers: NodeJS.Timeout[] = [];
  #ocspSweep: NodeJS.Timeout | undefined;
  #ocspKey = '';
  #closed = false;

  constructor(opts: CheckerOptions) {
    this.#log = opts.log.child({ component: 'revocation' });
    this.#now = opts.now ?? Date.now;
    this.#rt = opts.runtime;
    this.local = opts.localList ?? new LocalRevocationList({ dataDir: this.#cfg.dataDir, pollMs: this.#cfg.recheck });
    metrics.localRevocations.set(this.local.size);
    this.local.onChange(() => {
      metrics.localRevocations.set(this.local.size);
      this.#changed('local list');
    });
    this.#commit(opts.runtime);
  }

  get #cfg(): Config['revocation'] {
    return this.#rt.config.revocation;
  }

  get epoch(): number {
    return this.#epoch;
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /** Fetches configured CRL URLs once (bounded by their timeouts); start-up waits for it. */
  async ready(): Promise<void> {
    const all = Promise.allSettled([...this.#configuredUrls].map((u) => this.#refreshUrl(u)));
    // Retries continue in the background; start-up waits no longer than about two timeouts.
    let t: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((r) => (t = setTimeout(r, 2 * this.#cfg.crl.timeout + 500)))]);
    clearTimeout(t);
  }

  /** After a reload: the new runtime's sources (CRL files already read and verified against its
   *  trust bundle when it was built) replace the old ones; open connections are checked again. */
  apply(next: Runtime): void {
    this.#commit(next);
    this.#changed('reload');
    void this.ready();
  }

  check(id: Identity): Status | Promise<Status> {
    const entry = this.local.lookup(id);
    if (entry !== undefined) {
      return { state: 'revoked', source: 'local', reason: entry.reason, detail: `local revocation ${entry.id} by ${entry.actor} at ${entry.createdAt}` };
    }
    const crl = this.#crlStatus(id);
    const finish = (c: Status | undefined): Status | Promise<Status> => {
      if (c !== undefined && c.state !== 'unknown') return c;
      const o = this.#ocspStatus(id);
      if (o === undefined) return c ?? GOOD;
      if ('then' in o) return o.then((s) => combine(c, s));
      return combine(c, o);
    };
    if (crl !== undefined && 'then' in crl) return crl.then(finish);
    return finish(crl);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.local.close();
    for (const t of this.#staleTimers) clearTimeout(t);
    for (const u of this.#urlCrls.values()) if (u.timer) clearTimeout(u.timer);
    if (this.#ocspSweep) clearInterval(this.#ocspSweep);
  }

  /** What is loaded, for the admin API and logs. */
  describe(): {
    crls: { source: string; origin: string; issuer: string; thisUpdate: string; nextUpdate?: string; entries: number }[];
    local: number;
    ocsp: { enabled: boolean; cached: number; cacheSize: number };
  } {
    const crls = [...this.#fileCrls.values()].flat().concat([...this.#urlCrls.values()].flatMap((u) => (u.crl ? [u.crl] : [])));
    return {
      crls: crls.map((c) => ({
        source: c.source,
        origin: c.origin,
        issuer: c.issuer,
        thisUpdate: c.thisUpdate.toISOString(),
        ...(c.nextUpdate ? { nextUpdate: c.nextUpdate.toISOString() } : {}),
        entries: c.revoked.size,
      })),
      local: this.local.size,
      ocsp: { enabled: this.#ocsp !== undefined, cached: this.#ocsp?.cacheState.size ?? 0, cacheSize: this.#ocsp?.cacheState.max ?? 0 },
    };
  }

  // --- CRLs ----------------------------------------------------------------------------------

  /** File and configured-URL CRLs issued by this DN. */
  #crlsOf(issuerDn: string): LoadedCrl[] {
    const fromFiles = this.#fileCrls.get(issuerDn);
    const fromUrls: LoadedCrl[] = [];
    for (const u of this.#configuredUrls) {
      const c = this.#urlCrls.get(u)?.crl;
      if (c !== undefined && c.issuer === issuerDn) fromUrls.push(c);
    }
    return fromFiles !== undefined ? fromFiles.concat(fromUrls) : fromUrls;
  }

  /** An intermediate listed in its own issuer's CRL takes every certificate below it down. */
  #issuingCaRevoked(id: Identity): Status | undefined {
    if (this.#fileCrls.size === 0 && this.#configuredUrls.size === 0) return undefined;
    let ca = this.#issuerOf(id);
    for (let depth = 0; ca !== undefined && depth < 8; depth++) {
      const info = caInfo(ca);
      if (info.selfSigned) return undefined;
      for (const c of this.#crlsOf(info.issuerDn)) {
        const reason = c.revoked.get(info.serial);
        if (reason !== undefined && reason !== 8) {
          return { state: 'revoked', source: c.source, reason: reasonName(reason), detail: `the issuing CA ${info.dn} is listed in CRL ${c.origin}` };
        }
      }
      ca = this.#parentOf(ca, info.issuerDn);
    }
    return undefined;
  }

  /** The trusted CA that signed a CA (verified once per CA and trust bundle). */
  #parentOf(ca: TrustedCa, issuerDn: string): TrustedCa | undefined {
    let p = this.#parents.get(ca);
    if (p === undefined) {
      p = this.#casByDn.get(issuerDn)?.find((c) => ca.cert.checkIssued(c.cert) && ca.cert.verify(c.cert.publicKey)) ?? null;
      this.#parents.set(ca, p);
    }
    return p ?? undefined;
  }

  #crlStatus(id: Identity): MaybeAsync {
    const caRevoked = this.#issuingCaRevoked(id);
    if (caRevoked !== undefined) return caRevoked;
    const all = this.#crlsOf(id.issuer);
    if (all.length > 0) return this.#fromCrls(id, all);
    if (this.#cfg.crl.distributionPoints && id.crlUrls.length > 0) return this.#fromDistributionPoints(id);
    return undefined;
  }

  #fromCrls(id: Identity, crls: readonly LoadedCrl[]): Status {
    const now = this.#now();
    let unknown: Status | undefined;
    let good = false;
    for (const c of crls) {
      if (c.issuer !== id.issuer) continue;
      const reason = c.revoked.get(id.serial);
      if (reason !== undefined && reason !== 8) {
        return { state: 'revoked', source: c.source, reason: reasonName(reason), detail: `listed in CRL ${c.origin}` };
      }
      if (c.nextUpdate !== undefined && c.nextUpdate.getTime() <= now) {
        unknown ??= {
          state: 'unknown',
          source: c.source,
          detail: `CRL ${c.origin} is stale (nextUpdate ${c.nextUpdate.toISOString()})`,
          defaultMode: this.#modeOf(c.source),
        };
      } else good = true;
    }
    return good ? GOOD : (unknown ?? GOOD);
  }

  #fromDistributionPoints(id: Identity): MaybeAsync {
    const urls = id.crlUrls.filter((u) => u.startsWith('http://') || u.startsWith('https://'));
    if (urls.length === 0) return undefined;
    const url = urls[0]!;
    const state = this.#urlCrls.get(url);
    const answer = (): Status => {
      const c = this.#urlCrls.get(url)?.crl;
      if (c === undefined || c.issuer !== id.issuer) {
        return { state: 'unknown', source: 'crl-url', detail: `CRL ${url}: ${this.#urlCrls.get(url)?.lastError ?? 'not available'}`, defaultMode: this.#modeOf('crl-url') };
      }
      return this.#fromCrls(id, [c]);
    };
    if (state?.crl !== undefined) return answer();
    // Not fetched yet (or failed): one fetch at a time per URL, and not more often than every 5 s.
    if (state?.inflight !== undefined) return state.inflight.then(answer);
    if (state !== undefined && this.#now() - state.lastAttempt < 5_000) return answer();
    return this.#refreshUrl(url).then(answer);
  }

  #refreshUrl(url: string): Promise<void> {
    let st = this.#urlCrls.get(url);
    if (st === undefined) {
      st = { crl: undefined, timer: undefined, inflight: undefined, lastError: undefined, lastAttempt: 0 };
      this.#urlCrls.set(url, st);
    }
    if (st.inflight !== undefined) return st.inflight;
    const s = st;
    s.lastAttempt = this.#now();
    s.inflight = (async () => {
      try {
        const der = await fetchCrl(url, { timeoutMs: this.#cfg.crl.timeout, maxBytes: this.#cfg.crl.maxSize });
        const crl = loadCrl(der, this.#rt.tls.cas, 'crl-url', url);
        const changed = s.crl === undefined || s.crl.thisUpdate.getTime() !== crl.thisUpdate.getTime() || s.crl.revoked.size !== crl.revoked.size;
        s.crl = crl;
        s.lastError = undefined;
        this.#recordCrl(crl);
        this.#armStale(crl);
        if (changed) this.#changed(`CRL ${url}`);
      } catch (err) {
        // Keep the last good CRL; it turns stale (unknown) on its own at nextUpdate.
        s.lastError = (err as Error).message;
        metrics.revocationFetchFailures.inc({ kind: 'crl' });
        this.#log.warn({ event: 'crl_fetch_failed', url, err: s.lastError, keptLastGood: s.crl !== undefined }, 'CRL fetch failed');
      } finally {
        s.inflight = undefined;
        this.#scheduleRefresh(url, s);
      }
    })();
    return s.inflight;
  }

  #scheduleRefresh(url: string, s: UrlCrl): void {
    if (this.#closed) return;
    if (s.timer) clearTimeout(s.timer);
    let wait = this.#cfg.crl.refresh;
    const next = s.crl?.nextUpdate?.getTime();
    if (next !== undefined) {
      // Fetch ahead of nextUpdate: a tenth of the time left, at most a minute, early.
      const left = next - this.#now();
      wait = Math.min(wait, Math.max(1_000, left - Math.min(60_000, left / 10)));
    }
    if (s.lastError !== undefined) wait = Math.min(wait, 30_000);
    s.timer = setTimeout(() => void this.#refreshUrl(url), Math.min(wait, MAX_TIMER_MS));
    s.timer.unref();
  }

  /** At nextUpdate a CRL turns stale: bump the epoch so open connections see it. */
  #armStale(c: LoadedCrl): void {
    if (c.nextUpdate === undefined) return;
    const ms = c.nextUpdate.getTime() - this.#now() + 1;
    if (ms <= 0 || ms > MAX_TIMER_MS) return;
    const t = setTimeout(() => this.#changed(`CRL ${c.origin} reached nextUpdate`), ms);
    t.unref();
    this.#staleTimers.push(t);
  }

  #recordCrl(c: LoadedCrl): void {
    const labels = { issuer: c.issuer, source: c.source };
    metrics.crlAge.set(labels, Math.round((this.#now() - c.thisUpdate.getTime()) / 1000));
    if (c.nextUpdate) metrics.crlNextUpdate.set(labels, Math.round(c.nextUpdate.getTime() / 1000));
  }

  // --- OCSP ----------------------------------------------------------------------------------

  #ocspStatus(id: Identity): Status | Promise<Status> | undefined {
    if (this.#ocsp === undefined || this.#ocsp.responderFor(id) === undefined) return undefined;
    const issuer = this.#issuerOf(id);
    if (issuer === undefined) {
      return { state: 'unknown', source: 'ocsp', detail: `issuer ${id.issuer} is not in the trust bundle`, defaultMode: this.#modeOf('ocsp') };
    }
    const a = this.#ocsp.check(id, issuer);
    return 'then' in a ? a.then((x) => this.#fromOcsp(x)) : this.#fromOcsp(a);
  }

  #fromOcsp(a: OcspAnswer): Status {
    if (a.state === 'good') return GOOD;
    if (a.state === 'revoked') return { state: 'revoked', source: 'ocsp', reason: a.reason, detail: a.detail };
    return { state: 'unknown', source: 'ocsp', detail: a.detail, defaultMode: this.#modeOf('ocsp') };
  }

  /** The trusted CA that issued a leaf: by issuer DN, then Authority Key Identifier/signature. */
  #issuerOf(id: Identity): TrustedCa | undefined {
    const key = `${id.issuer}|${id.authorityKeyId ?? ''}`;
    const cached = this.#issuerCache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    const named = this.#casByDn.get(id.issuer) ?? [];
    let found: TrustedCa | undefined;
    if (named.length === 1) found = named[0];
    else if (named.length > 1) {
      const leaf = new X509Certificate(id.der);
      found = named.find((ca) => leaf.verify(ca.cert.publicKey));
    }
    this.#issuerCache.set(key, found ?? null);
    return found;
  }

  // --- state ---------------------------------------------------------------------------------

  #modeOf(source: RevocationSource): RevocationMode {
    if (source === 'crl-file') return this.#cfg.crl.mode ?? 'hard';
    if (source === 'crl-url') return this.#cfg.crl.mode ?? 'soft';
    if (source === 'ocsp') return this.#cfg.ocsp.mode ?? 'soft';
    return 'hard';
  }

  #commit(rt: Runtime): void {
    const config = rt.config;
    const cas = rt.tls.cas;
    const files = rt.revocation.crlFiles;
    this.#rt = rt;
    this.#casByDn = new Map();
    for (const ca of cas) {
      const dn = caInfo(ca).dn;
      const l = this.#casByDn.get(dn);
      if (l) l.push(ca);
      else this.#casByDn.set(dn, [ca]);
    }
    this.#issuerCache = new Map();
    this.#parents = new Map();
    for (const t of this.#staleTimers) clearTimeout(t);
    this.#staleTimers = [];
    const byIssuer = new Map<string, LoadedCrl[]>();
    for (const c of files) {
      const l = byIssuer.get(c.issuer);
      if (l) l.push(c);
      else byIssuer.set(c.issuer, [c]);
      this.#recordCrl(c);
      this.#armStale(c);
    }
    this.#fileCrls = byIssuer;
    for (const u of this.#urlCrls.values()) if (u.crl) this.#armStale(u.crl);
    // URLs no longer configured stop refreshing; distribution points stay cached.
    for (const u of this.#configuredUrls) {
      if (!config.revocation.crl.urls.includes(u)) {
        const st = this.#urlCrls.get(u);
        if (st?.timer) clearTimeout(st.timer);
        this.#urlCrls.delete(u);
      }
    }
    this.#configuredUrls = new Set(config.revocation.crl.urls);
    const o = config.revocation.ocsp;
    const key = JSON.stringify([o, config.revocation.recheck]);
    const same = this.#ocspKey === key;
    this.#ocspKey = key;
    // A reload that leaves OCSP settings alone keeps the cached answers.
    if (same && this.#ocsp !== undefined) return;
    this.#ocsp = o.enabled
      ? new OcspClient({ ...(o.responder !== undefined ? { responder: o.responder } : {}), timeoutMs: o.timeout, cacheSize: o.cacheSize, now: this.#now })
      : undefined;
    // Open connections hold their OCSP answer; when answers pass nextUpdate they are asked again.
    if (this.#ocspSweep) clearInterval(this.#ocspSweep);
    this.#ocspSweep = undefined;
    if (this.#ocsp !== undefined) {
      const ocsp = this.#ocsp;
      this.#ocspSweep = setInterval(() => {
        if (ocsp.purgeExpired()) this.#changed('OCSP answers reached nextUpdate');
      }, Math.max(100, config.revocation.recheck));
      this.#ocspSweep.unref();
    }
  }

  #changed(why: string): void {
    this.#epoch++;
    this.#log.info({ event: 'revocation_changed', why, epoch: this.#epoch }, 'revocation sources changed; re-checking open connections');
    for (const l of this.#listeners) {
      try {
        l();
      } catch (err) {
        this.#log.error({ event: 'revocation_listener_failed', err }, 'revocation change listener failed');
      }
    }
  }
}

/** Reads every configured CRL file; a bad one is a config-level error naming the file's key. */
export function loadCrlFiles(config: Config, cas: readonly TrustedCa[]): LoadedCrl[] {
  const out: LoadedCrl[] = [];
  const issues: { path: string; message: string }[] = [];
  config.revocation.crl.files.forEach((file, i) => {
    try {
      out.push(...loadCrlFile(file, cas));
    } catch (err) {
      issues.push({ path: `revocation.crl.files[${i}]`, message: (err as Error).message });
    }
  });
  if (issues.length > 0) throw new MaterialError(issues);
  return out;
}

/** Revoked wins; a definite good beats unknown; of two unknowns the CRL's (usually hard) is kept. */
function combine(crl: Status | undefined, ocsp: Status): Status {
  if (ocsp.state === 'revoked') return ocsp;
  if (ocsp.state === 'good') return GOOD;
  return crl ?? ocsp;
}
