// EST (RFC 7030) on the proxy listener: cacerts, simplereenroll (mTLS with the current
// certificate) and simpleenroll (a one-time enrollment token). Who may ask is decided here; what
// is signed and recorded is the authority's job.
//
// Identity rule for renewal: the new certificate's identity is copied from the presented,
// verified certificate (subject, URI/DNS/email/IP SANs). A CSR may leave its subject and SANs
// empty or repeat the presented ones exactly (RFC 7030 4.2.2); a CSR that asks for anything else
// is refused with 403 enrollment_refused. Renewal gives a new key: write policies on identities
// (CN, SPIFFE ID), not on fingerprints or serials.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { ErrorCodes, Refusal, type ErrorCode } from '../errors.js';
import { sendError } from '../proxy/error-response.js';
import type { Identity } from '../identity/types.js';
import { CertificateAuthority, type TokenIdentity } from './authority.js';
import { CsrError, parseCsr, sameValues, type RequestedNames } from './csr.js';
import { certsOnlyBase64 } from './pkcs7.js';
import { subjectName, type SubjectFields } from './pki.js';
import { rfc4514 } from '../identity/dn.js';
import { metrics } from '../metrics.js';
import { EST_PREFIX, type EstHandler, type EstOutcome } from './est-route.js';
import { LocalRateLimiter, type RateLimiter } from '../store/rate-limit.js';
import type { Store } from '../store/index.js';

export { EST_PREFIX, type EstHandler, type EstOutcome };

const KNOWN_OPS = new Set(['cacerts', 'simpleenroll', 'simplereenroll']);
const MAX_CSR_BYTES = 64 * 1024;
const HOUR = 3_600_000;
const DAY = 86_400_000;

type EstConfig = NonNullable<Config['est']>;

/** Start of the renewal window: renewWindowDays or the last fraction of the lifetime, whichever is wider. */
export function renewalOpensAt(notBefore: Date, notAfter: Date, cfg: Pick<EstConfig, 'renewWindowDays' | 'renewWindowFraction'>): number {
  const life = notAfter.getTime() - notBefore.getTime();
  const window = Math.max(cfg.renewWindowDays * DAY, cfg.renewWindowFraction * life);
  return notAfter.getTime() - window;
}

/** ioredis's own errors for a connection that is gone, before the store's link has noticed. */
function redisConnectionError(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return e.name === 'MaxRetriesPerRequestError' || /^(Stream isn't writeable|Connection is closed)/.test(e.message ?? '');
}

export class EstServer implements EstHandler {
  readonly #ca: CertificateAuthority;
  readonly #cfg: EstConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  /** Renewal attempts per identity per hour: in memory, or fleet-wide with a Redis store. */
  readonly #limits: RateLimiter;
  readonly #cacerts: string;
  /** With a Redis store: it is out of reach (the CA index lives there), so a failure is a 503. */
  #storeDown: () => boolean = () => false;

  constructor(ca: CertificateAuthority, cfg: EstConfig, log: Logger, now: () => number = Date.now, limits: RateLimiter = new LocalRateLimiter()) {
    this.#ca = ca;
    this.#limits = limits;
    this.#cfg = cfg;
    this.#log = log.child({ component: 'est' });
    this.#now = now;
    this.#cacerts = certsOnlyBase64(ca.bundlePem);
  }

  static async open(cfg: EstConfig, log: Logger, store?: Pick<Store, 'caIndex' | 'rateLimits' | 'link'>): Promise<EstServer> {
    const ca = await CertificateAuthority.open(cfg.caDir, store !== undefined ? { store } : {});
    const server = new EstServer(ca, cfg, log, Date.now, store?.rateLimits);
    const link = store?.link;
    if (link !== undefined) server.#storeDown = () => !link.up;
    return server;
  }

  async handle(req: IncomingMessage, res: ServerResponse, id: Identity | undefined, requestId: string, cfg: EstConfig = this.#cfg): Promise<EstOutcome> {
    const op = (req.url ?? '').slice(EST_PREFIX.length).split('?')[0] ?? '';
    const out = await this.#handle(op, req, res, id, requestId, cfg);
    metrics.estRequests.inc({ operation: KNOWN_OPS.has(op) ? op : 'other', outcome: out.decision });
    return out;
  }

  async #handle(op: string, req: IncomingMessage, res: ServerResponse, id: Identity | undefined, requestId: string, cfg: EstConfig): Promise<EstOutcome> {
    try {
      if (op === 'cacerts') {
        if (req.method !== 'GET') throw new Refusal('method_not_allowed');
        return this.#sendPkcs7(res, requestId, this.#cacerts);
      }
      if (op === 'simplereenroll') {
        if (req.method !== 'POST') throw new Refusal('method_not_allowed');
        return await this.#reenroll(req, res, id, requestId, cfg);
      }
      if (op === 'simpleenroll') {
        if (req.method !== 'POST') throw new Refusal('method_not_allowed');
        return await this.#enroll(req, res, id, requestId, cfg);
      }
      throw new Refusal('not_found', `EST operation "${op}" is not supported (cacerts, simpleenroll, simplereenroll)`);
    } catch (err) {
      const r = err instanceof Refusal ? err
        : err instanceof CsrError ? new Refusal('bad_request', err.message)
        : undefined;
      if (r === undefined && (this.#storeDown() || redisConnectionError(err))) {
        this.#log.warn({ event: 'est_store_unavailable', reqId: requestId, op, err: (err as Error).message }, 'EST request failed: the shared store is out of reach');
        return this.#sendError(res, requestId, 'service_unavailable', 'the shared store (Redis) that holds the CA index is out of reach; try again shortly');
      }
      if (r === undefined) {
        this.#log.error({ event: 'est_error', reqId: requestId, err }, 'EST request failed');
        return this.#sendError(res, requestId, 'internal_error');
      }
      this.#log.warn({ event: 'est_refused', reqId: requestId, op, code: r.code, subject: id?.subject, serial: id?.serial }, r.message);
      return this.#sendError(res, requestId, r.code, r.message);
    }
  }

  async #reenroll(req: IncomingMessage, res: ServerResponse, id: Identity | undefined, requestId: string, cfg: EstConfig): Promise<EstOutcome> {
    if (id === undefined) throw new Refusal('certificate_required', 'renewal requires the current client certificate');
    if (!this.#ca.issued(id.der)) throw new Refusal('enrollment_refused', 'the presented certificate was not issued by this CA');
    const entry = await this.#ca.entry(id.serial);
    if (entry === undefined) throw new Refusal('enrollment_refused', 'the presented certificate is not in the CA index');
    if (entry.revokedAt !== undefined) throw new Refusal('certificate_revoked', 'the presented certificate has been revoked');
    const now = this.#now();
    const opens = renewalOpensAt(id.notBefore, id.notAfter, cfg);
    if (now < opens) {
      throw new Refusal('enrollment_refused', `renewal opens at ${new Date(opens).toISOString()} (the certificate expires ${id.notAfter.toISOString()})`);
    }
    if (!(await this.#limits.hit(`${id.subject}\n${id.uri.join(',')}`, cfg.rateLimitPerHour, HOUR, now))) {
      throw new Refusal('too_many_requests', `at most ${cfg.rateLimitPerHour} renewals per hour per identity`);
    }
    const csr = await parseCsr(await readBody(req));
    const mismatch = identityMismatch(csr.names, { subject: id.subject, uri: id.uri, dns: id.dns, email: id.email, ip: id.ip });
    if (mismatch !== undefined) throw new Refusal('enrollment_refused', `the request asks for a different identity than the presented certificate (${mismatch})`);
    // Exactly the presented certificate's lifetime (capped at est.days), so that it does not
    // creep from one renewal to the next; backdated a little for clock skew, like every issue.
    const life = Math.min(cfg.days * DAY, id.notAfter.getTime() - id.notBefore.getTime());
    const notBefore = new Date(Math.floor((now - Math.min(60_000, life / 10)) / 1000) * 1000);
    const issued = await this.#ca.issue({
      subject: id.subject,
      san: { uri: id.uri, dns: id.dns, email: id.email, ip: id.ip },
      publicKey: csr.publicKey,
      notBefore,
      notAfter: new Date(notBefore.getTime() + life),
      source: 'est-reenroll',
      renewedFrom: id.serial,
    });
    // Defence in depth: the subject must have survived re-encoding byte for byte in meaning.
    if (rfc4514(issued.cert.subjectName) !== id.subject) {
      throw new Error(`renewed subject ${rfc4514(issued.cert.subjectName)} differs from ${id.subject}`);
    }
    this.#log.info({ event: 'est_renewed', reqId: requestId, subject: id.subject, oldSerial: id.serial, serial: issued.serial, notAfter: issued.entry.notAfter }, 'certificate renewed');
    return this.#sendPkcs7(res, requestId, certsOnlyBase64(issued.chainPem));
  }

  async #enroll(req: IncomingMessage, res: ServerResponse, id: Identity | undefined, requestId: string, cfg: EstConfig): Promise<EstOutcome> {
    const auth = req.headers.authorization;
    if (auth === undefined || !/^Bearer \S+$/.test(auth)) throw new Refusal('unauthorized', 'first enrollment requires "Authorization: Bearer <enrollment token>"');
    const csr = await parseCsr(await readBody(req));
    // The token is spent only together with the certificate it pays for: a request refused for
    // its names, or any failure to issue, leaves it usable.
    const issued = await this.#ca.enrollWithToken(auth.slice(7), (got) => {
      const mismatch = identityMismatch(csr.names, tokenNames(got));
      if (mismatch !== undefined) return { refused: `the request asks for a different identity than the enrollment token (${mismatch})` };
      return { subject: tokenSubject(got), san: { uri: got.uri, dns: got.dns }, publicKey: csr.publicKey, ttlMs: cfg.days * DAY, source: 'est-enroll' };
    });
    if ('refused' in issued) throw new Refusal('enrollment_refused', issued.refused);
    this.#log.info({ event: 'est_enrolled', reqId: requestId, subject: issued.entry.subject, serial: issued.serial, presented: id?.serial }, 'certificate enrolled with a token');
    return this.#sendPkcs7(res, requestId, certsOnlyBase64(issued.chainPem));
  }

  #sendPkcs7(res: ServerResponse, requestId: string, body: string): EstOutcome {
    res.writeHead(200, [
      'content-type', 'application/pkcs7-mime; smime-type=certs-only',
      'content-transfer-encoding', 'base64',
      'content-length', String(Buffer.byteLength(body)),
      'x-request-id', requestId,
      'cache-control', 'no-store',
    ]);
    res.end(body);
    return { status: 200, decision: 'allow' };
  }

  #sendError(res: ServerResponse, requestId: string, code: ErrorCode, message?: string): EstOutcome {
    const extra = code === 'unauthorized' ? ['www-authenticate', 'Bearer'] : code === 'too_many_requests' ? ['retry-after', '3600'] : undefined;
    sendError(res, requestId, code, message, false, extra);
    return { status: ErrorCodes[code].status, decision: code };
  }
}

function tokenNames(t: TokenIdentity): { subject: string; uri: readonly string[]; dns: readonly string[]; email: readonly string[]; ip: readonly string[] } {
  return { subject: rfc4514(subjectName(tokenSubject(t))), uri: t.uri, dns: t.dns, email: [], ip: [] };
}

function tokenSubject(t: TokenIdentity): SubjectFields {
  return { cn: t.cn, ...(t.ou.length > 0 ? { ou: t.ou } : {}) };
}

/** Undefined when the request's names are empty or equal to `want`; otherwise what differs. */
function identityMismatch(
  got: RequestedNames,
  want: { subject: string; uri: readonly string[]; dns: readonly string[]; email: readonly string[]; ip: readonly string[] },
): string | undefined {
  if (got.subject !== '' && got.subject !== want.subject) return `subject "${got.subject}", expected "${want.subject}"`;
  const sans = got.uri.length + got.dns.length + got.email.length + got.ip.length;
  if (sans === 0) return undefined;
  for (const k of ['uri', 'dns', 'email', 'ip'] as const) {
    if (!sameValues(got[k], want[k])) return `${k} SAN [${got[k].join(', ')}], expected [${want[k].join(', ')}]`;
  }
  return undefined;
}

async function readBody(req: IncomingMessage): Promise<Uint8Array> {
  const cl = Number(req.headers['content-length'] ?? 0);
  if (cl > MAX_CSR_BYTES) throw new Refusal('payload_too_large', `a certificate request is at most ${MAX_CSR_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_CSR_BYTES) throw new Refusal('payload_too_large', `a certificate request is at most ${MAX_CSR_BYTES} bytes`);
    chunks.push(c);
  }
  if (n === 0) throw new Refusal('bad_request', 'the request body must be a base64 PKCS#10 certificate request');
  return new Uint8Array(Buffer.concat(chunks));
}
