// OCSP stapling of certgate's own server certificate: the response is fetched from the issuer's
// responder in the background (the OCSP code of src/revocation/ocsp.ts builds the request and
// verifies the answer), kept in memory and handed to every handshake that asks for it through
// the server's `OCSPRequest` event. A handshake never waits for the responder: without a
// current response it simply gets none. A failed refresh keeps the last good response until
// its nextUpdate.

import type { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { identityFromDer } from '../identity/identity.js';
import { metrics, onCollect } from '../metrics.js';
import { fetchBytes } from '../revocation/crl.js';
import { buildOcspRequest, parseOcspResponse } from '../revocation/ocsp.js';
import type { TlsMaterial, TrustedCa } from './material.js';

const MINUTE = 60_000;
/** Refresh interval when the response has no nextUpdate. */
const NO_NEXT_UPDATE_REFRESH_MS = 60 * MINUTE;
const MAX_REFRESH_MS = 12 * 60 * MINUTE;
/** First retry after a failed fetch; doubled up to MAX_RETRY_MS. */
const FIRST_RETRY_MS = 30_000;
const MAX_RETRY_MS = 10 * MINUTE;

export interface StaplerOptions {
  readonly leaf: X509Certificate;
  readonly issuer: X509Certificate;
  readonly url: string;
  readonly timeoutMs: number;
  readonly log: Logger;
  /** Shortest wait between two fetches (tests shorten it). */
  readonly minRefreshMs?: number;
  readonly now?: () => number;
}

interface Staple {
  readonly der: Buffer;
  readonly thisUpdate: number;
  readonly nextUpdate: number | undefined;
}

type OcspCallback = (err: Error | null, resp?: Buffer | null) => void;

/** Keeps a current OCSP response for one server certificate. */
export class Stapler {
  readonly #o: StaplerOptions;
  readonly #issuer: TrustedCa;
  readonly #serial: string;
  readonly #now: () => number;
  #staple: Staple | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retryMs = FIRST_RETRY_MS;
  #closed = false;
  #fetching: Promise<void> | undefined;

  constructor(o: StaplerOptions) {
    this.#o = o;
    this.#issuer = { file: '', pem: o.issuer.toString(), cert: o.issuer };
    this.#serial = identityFromDer(o.leaf.raw).serial;
    this.#now = o.now ?? Date.now;
  }

  get url(): string {
    return this.#o.url;
  }

  /** Fetches now (in the background) and keeps refreshing until close(). */
  start(): void {
    this.refresh();
  }

  /** One fetch; resolves when it is done (ok or not). Concurrent calls share it. */
  refresh(): Promise<void> {
    this.#fetching ??= this.#fetch().finally(() => (this.#fetching = undefined));
    return this.#fetching;
  }

  /** The DER response to staple, or undefined when none is current. */
  current(): Buffer | undefined {
    const s = this.#staple;
    if (s === undefined) return undefined;
    if (s.nextUpdate !== undefined && s.nextUpdate <= this.#now()) return undefined;
    return s.der;
  }

  /** Seconds since the stapled response's thisUpdate, or undefined when none is current. */
  ageSeconds(): number | undefined {
    return this.current() === undefined ? undefined : (this.#now() - this.#staple!.thisUpdate) / 1000;
  }

  /** The server's `OCSPRequest` handler: answers at once, from memory. */
  readonly onOcspRequest = (_cert: Buffer, _issuer: Buffer, cb: OcspCallback): void => cb(null, this.current() ?? null);

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  async #fetch(): Promise<void> {
    const { url, timeoutMs, log } = this.#o;
    try {
      const der = await fetchBytes(url, 'POST', buildOcspRequest(this.#serial, this.#issuer), 'application/ocsp-request', timeoutMs, 1024 * 1024);
      const answer = parseOcspResponse(der, this.#serial, this.#issuer, this.#now());
      if (answer.state === 'unknown') throw new Error(answer.detail);
      if (answer.state === 'revoked') log.error({ event: 'server_certificate_revoked', url }, `the responder says the server certificate is revoked (${answer.detail}); stapling that answer`);
      const thisUpdate = answer.state === 'good' ? answer.thisUpdate.getTime() : this.#now();
      const nextUpdate = answer.state === 'good' ? answer.nextUpdate?.getTime() : undefined;
      this.#staple = { der: Buffer.from(der), thisUpdate, nextUpdate };
      this.#retryMs = FIRST_RETRY_MS;
      // Halfway to nextUpdate: a responder outage then has the other half to end.
      this.#schedule(nextUpdate !== undefined ? (nextUpdate - this.#now()) / 2 : NO_NEXT_UPDATE_REFRESH_MS);
    } catch (err) {
      metrics.revocationFetchFailures.inc({ kind: 'ocsp_staple' });
      log.warn({ event: 'ocsp_staple_failed', url, keeping: this.current() !== undefined }, `OCSP stapling: ${(err as Error).message}`);
      const untilStale = this.#staple?.nextUpdate !== undefined ? this.#staple.nextUpdate - this.#now() : Infinity;
      this.#schedule(Math.min(this.#retryMs, untilStale / 2));
      this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
    }
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    const wait = Math.min(MAX_REFRESH_MS, Math.max(this.#o.minRefreshMs ?? MINUTE, ms));
    this.#timer = setTimeout(() => void this.refresh(), wait);
    this.#timer.unref();
  }
}

/** The OCSP URL of a certificate's AIA (http only: a responder over https would need its own trust). */
export function ocspUrlOf(cert: X509Certificate): string | undefined {
  return identityFromDer(cert.raw).ocspUrls.find((u) => u.startsWith('http://'));
}

/** The issuer of the leaf: from the served chain, else from the client CA bundles. */
function issuerOf(m: TlsMaterial): X509Certificate | undefined {
  const leaf = m.serverChain[0]!;
  const pool = [...m.serverChain.slice(1), ...m.cas.map((c) => c.cert)];
  return pool.find((c) => leaf.checkIssued(c) && leaf.verify(c.publicKey));
}

/**
 * Why stapling cannot run although tls.ocspStapling asks for it, or undefined. With the key
 * absent, stapling is on exactly when the certificate names a responder.
 */
export function staplingProblem(config: Config, m: TlsMaterial): string | undefined {
  if (config.tls.ocspStapling !== true) return undefined;
  if (ocspUrlOf(m.serverChain[0]!) === undefined) return 'tls.ocspStapling is on but the server certificate names no http OCSP responder (AIA); nothing will be stapled';
  if (issuerOf(m) === undefined) return 'tls.ocspStapling is on but the issuer of the server certificate is neither in tls.cert nor in tls.clientCAs; nothing will be stapled';
  return undefined;
}

/**
 * Stapling for the listener across reloads: one Stapler per server certificate, replaced when a
 * reload brings another certificate or responder, and the `OCSPRequest` handler to register once.
 */
export class ServerStapling {
  readonly #log: Logger;
  #stapler: Stapler | undefined;
  #key = '';
  readonly #unregister: () => void;

  constructor(log: Logger) {
    this.#log = log;
    this.#unregister = onCollect('certgate_ocsp_staple_age_seconds', () => {
      const age = this.#stapler?.ageSeconds();
      if (age === undefined) metrics.ocspStapleAge.reset();
      else metrics.ocspStapleAge.set(age);
    });
  }

  get stapler(): Stapler | undefined {
    return this.#stapler;
  }

  readonly onOcspRequest = (cert: Buffer, issuer: Buffer, cb: OcspCallback): void => {
    if (this.#stapler === undefined) cb(null, null);
    else this.#stapler.onOcspRequest(cert, issuer, cb);
  };

  apply(config: Config, m: TlsMaterial): void {
    const leaf = m.serverChain[0]!;
    const url = config.tls.ocspStapling === false ? undefined : ocspUrlOf(leaf);
    const issuer = url !== undefined ? issuerOf(m) : undefined;
    const key = url !== undefined && issuer !== undefined ? `${leaf.fingerprint256}|${url}` : '';
    if (key === this.#key) return;
    this.#stapler?.close();
    this.#stapler = undefined;
    this.#key = key;
    if (url === undefined || issuer === undefined) {
      const problem = staplingProblem(config, m);
      if (problem !== undefined) this.#log.warn({ event: 'ocsp_stapling_off' }, problem);
      return;
    }
    this.#stapler = new Stapler({ leaf, issuer, url, timeoutMs: config.revocation.ocsp.timeout, log: this.#log });
    this.#stapler.start();
  }

  close(): void {
    this.#stapler?.close();
    this.#unregister();
  }
}
