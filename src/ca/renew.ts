// Client-side renewal over EST simplereenroll: a new key of the same algorithm, a CSR repeating
// the current identity, mTLS with the current certificate, then both files replaced atomically.
//
// Write order: both new files are written to temp files beside the targets and fsynced first;
// then the key is renamed over the old key and the cert over the old cert, back to back, and the
// directory is fsynced. A crash leaves either the old pair, the new pair, or (only if the crash
// falls between the two renames) the new key with the old cert; a reader never sees a partial
// file. Readers that must never see a mixed pair should reload on a change to the cert file,
// which is renamed last.
import { X509Certificate as NodeX509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Client } from 'undici';
import { createCsr } from './csr.js';
import { writeFilesAtomic } from '../util/files.js';
import { certsFromPkcs7 } from './pkcs7.js';
import { generateKeyPair, privateKeyToPem, type KeyAlg } from './pki.js';
import { identityFromDer } from '../identity/identity.js';

export interface RenewOptions {
  certFile: string;
  keyFile: string;
  /** Base URL of certgate (https://host:port) or the full simplereenroll URL. */
  url: string;
  /** CA PEM file to verify certgate's server certificate; default: the system store. */
  caFile?: string;
  /** TLS server name; default the URL's host name. */
  servername?: string;
  timeoutMs?: number;
}

export interface RenewResult {
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export class RenewError extends Error {
  readonly code = 'CERTGATE_RENEW_FAILED';
  /** HTTP status from certgate (0: no answer). */
  readonly status: number;
  /** The refusal code from certgate's JSON body, if any. */
  readonly refusal: string | undefined;
  /** Set when the CA refused only because its renewal window has not opened yet: not a failure. */
  readonly opensAt: Date | undefined;
  constructor(message: string, status = 0, refusal?: string, opensAt?: Date) {
    super(message);
    this.status = status;
    this.refusal = refusal;
    this.opensAt = opensAt;
  }
}

/** certgate's EST refusal before the window says `renewal opens at <ISO time> (...)`. */
function windowOpensAt(status: number, code: string | undefined, message: string): Date | undefined {
  if (status !== 403 || code !== 'enrollment_refused') return undefined;
  const m = /renewal opens at (\d{4}-\d\d-\d\dT[\d:.]+Z)/.exec(message);
  const at = m ? new Date(m[1]!) : undefined;
  return at !== undefined && !Number.isNaN(at.getTime()) ? at : undefined;
}

export function reenrollUrl(url: string): URL {
  const u = new URL(url);
  if (!u.pathname.includes('/.well-known/est/')) u.pathname = u.pathname.replace(/\/$/, '') + '/.well-known/est/simplereenroll';
  return u;
}

function keyAlgOf(keyPem: string): KeyAlg {
  const k = createPrivateKey(keyPem);
  if (k.asymmetricKeyType === 'ec') {
    const c = k.asymmetricKeyDetails?.namedCurve;
    if (c === 'prime256v1') return 'P-256';
    if (c === 'secp384r1') return 'P-384';
    throw new RenewError(`unsupported EC curve ${String(c)}`);
  }
  if (k.asymmetricKeyType === 'rsa') {
    const bits = k.asymmetricKeyDetails?.modulusLength;
    if (bits === 2048 || bits === 3072 || bits === 4096) return `RSA-${bits}`;
    throw new RenewError(`unsupported RSA key size ${String(bits)}`);
  }
  throw new RenewError(`unsupported key type ${String(k.asymmetricKeyType)}`);
}

/** Validity of the certificate in a PEM file (the first certificate: the leaf). */
export async function certValidity(certFile: string): Promise<{ notBefore: Date; notAfter: Date; serial: string }> {
  const c = new NodeX509Certificate(await readFile(certFile));
  return { notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo), serial: c.serialNumber.toLowerCase().replace(/^0+/, '') };
}

/** One renewal: returns the new certificate's serial and validity; throws RenewError. */
export async function renewOnce(opts: RenewOptions): Promise<RenewResult> {
  const [certPem, keyPem, ca] = await Promise.all([
    readFile(opts.certFile, 'utf8'),
    readFile(opts.keyFile, 'utf8'),
    opts.caFile !== undefined ? readFile(opts.caFile, 'utf8') : Promise.resolve(undefined),
  ]);
  const current = identityFromDer(new Uint8Array(new NodeX509Certificate(certPem).raw));
  const keys = await generateKeyPair(keyAlgOf(keyPem));
  const csr = await createCsr(keys, { subject: current.subject, uri: current.uri, dns: current.dns });
  const body = csr.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const url = reenrollUrl(opts.url);
  const client = new Client(url.origin, {
    connect: {
      cert: certPem,
      key: keyPem,
      ...(ca !== undefined ? { ca } : {}),
      // undici sends the URL's host name as SNI (and none for an IP literal) unless told otherwise.
      ...(opts.servername !== undefined ? { servername: opts.servername } : {}),
      rejectUnauthorized: true,
    },
    headersTimeout: opts.timeoutMs ?? 30_000,
    bodyTimeout: opts.timeoutMs ?? 30_000,
  });
  let status: number;
  let text: string;
  try {
    const res = await client.request({
      path: url.pathname + url.search,
      method: 'POST',
      headers: { 'content-type': 'application/pkcs10', 'content-transfer-encoding': 'base64' },
      body,
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throw new RenewError(`cannot reach ${url.href}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    await client.close().catch(() => {});
  }
  if (status !== 200) {
    let code: string | undefined;
    let message = text.slice(0, 300);
    try {
      const j = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = j.error?.code;
      message = j.error?.message ?? message;
    } catch {
      // not our JSON: keep the raw text
    }
    throw new RenewError(`renewal refused: ${status}${code !== undefined ? ` ${code}` : ''}: ${message}`, status, code, windowOpensAt(status, code, message));
  }
  const certs = certsFromPkcs7(text);
  const spki = Buffer.from(await globalThis.crypto.subtle.exportKey('spki', keys.publicKey));
  const leafIdx = certs.findIndex((p) => new NodeX509Certificate(p).publicKey.export({ type: 'spki', format: 'der' }).equals(spki));
  if (leafIdx < 0) throw new RenewError('the answer does not contain a certificate for the new key');
  const leafPem = certs[leafIdx]!;
  const leaf = new NodeX509Certificate(leafPem);
  const got = identityFromDer(new Uint8Array(leaf.raw));
  if (got.subject !== current.subject || got.uri.join() !== current.uri.join()) {
    throw new RenewError(`the new certificate names ${got.subject}, not ${current.subject}`);
  }
  const chain = [leafPem, ...certs.filter((_, i) => i !== leafIdx).filter((p) => !isSelfSigned(p))].map((p) => p.trim() + '\n').join('');
  await replacePair(opts.keyFile, await privateKeyToPem(keys.privateKey), opts.certFile, chain);
  return { serial: got.serial, notBefore: got.notBefore, notAfter: got.notAfter };
}

function isSelfSigned(pem: string): boolean {
  const c = new NodeX509Certificate(pem);
  return c.subject === c.issuer && c.verify(c.publicKey);
}

/** Both temps written and fsynced, then key renamed, then cert (see the header comment). */
export async function replacePair(keyFile: string, keyPem: string, certFile: string, certPem: string): Promise<void> {
  await writeFilesAtomic([{ path: keyFile, data: keyPem, mode: 0o600 }, { path: certFile, data: certPem, mode: 0o644 }]);
}

export interface DaemonOptions extends RenewOptions {
  /** Renew when this fraction of the lifetime has passed (default 2/3). */
  at?: number;
  /** First retry delay after a failure (default 10 s); doubles up to maxRetryMs, with full jitter. */
  minRetryMs?: number;
  maxRetryMs?: number;
  signal?: AbortSignal;
  onEvent?: (e: DaemonEvent) => void;
}

export type DaemonEvent =
  | { type: 'scheduled'; at: Date; notAfter: Date }
  | { type: 'renewed'; serial: string; notAfter: Date }
  | { type: 'failed'; error: RenewError; retryInMs: number };

/** Longest single timer Node allows; longer waits are chained. */
const MAX_TIMER = 2 ** 31 - 1;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, Math.min(Math.max(0, ms), MAX_TIMER));
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Parses "2/3", "0.66" or "66%". */
export function parseFraction(s: string): number | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  const v = m ? Number(m[1]) / Number(m[2]) : s.trim().endsWith('%') ? Number(s.trim().slice(0, -1)) / 100 : Number(s);
  return Number.isFinite(v) && v > 0 && v < 1 ? v : undefined;
}

/**
 * Renews at `at` of each certificate's lifetime, forever (until the signal aborts). On failure it
 * retries with jittered exponential backoff, never later than shortly before expiry.
 */
export async function runRenewDaemon(opts: DaemonOptions): Promise<void> {
  const at = opts.at ?? 2 / 3;
  const minRetry = opts.minRetryMs ?? 10_000;
  const maxRetry = opts.maxRetryMs ?? 15 * 60_000;
  let failures = 0;
  while (!opts.signal?.aborted) {
    const v = await certValidity(opts.certFile);
    const life = v.notAfter.getTime() - v.notBefore.getTime();
    const due = v.notBefore.getTime() + at * life;
    if (failures === 0) {
      opts.onEvent?.({ type: 'scheduled', at: new Date(due), notAfter: v.notAfter });
      await sleep(due - Date.now(), opts.signal);
      if (opts.signal?.aborted) return;
    }
    try {
      const r = await renewOnce(opts);
      failures = 0;
      opts.onEvent?.({ type: 'renewed', serial: r.serial, notAfter: r.notAfter });
    } catch (err) {
      const e = err instanceof RenewError ? err : new RenewError((err as Error).message);
      failures++;
      const cap = Math.min(maxRetry, minRetry * 2 ** (failures - 1));
      // Full jitter, so that a fleet renewing at once does not retry in lockstep. Before the
      // CA's window opens (--at earlier than its window), wait for the window, not the backoff.
      const untilOpen = e.opensAt !== undefined ? e.opensAt.getTime() - Date.now() : 0;
      const wait = untilOpen > 0 ? untilOpen + Math.random() * minRetry : minRetry / 2 + Math.random() * (cap - minRetry / 2);
      opts.onEvent?.({ type: 'failed', error: e, retryInMs: Math.round(wait) });
      await sleep(wait, opts.signal);
    }
  }
}
