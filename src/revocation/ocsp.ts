// OCSP (RFC 6960): a real request over HTTP POST with undici, the response's signature verified
// (the issuer itself, or a delegated responder certificate with id-kp-OCSPSigning issued by it),
// thisUpdate/nextUpdate honoured, answers cached until nextUpdate, one request in flight per cert.

import { createHash, X509Certificate } from 'node:crypto';
import {
  BasicOCSPResponse,
  CertID,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  Request,
  TBSRequest,
  id_kp_OCSPSigning,
  id_pkix_ocsp_basic,
} from '@peculiar/asn1-ocsp';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate, ExtendedKeyUsage, id_ce_extKeyUsage } from '@peculiar/asn1-x509';
import { LRUCache } from 'lru-cache';
import type { Identity } from '../identity/types.js';
import { metrics } from '../metrics.js';
import type { TrustedCa } from '../tls/material.js';
import { caInfo, fetchBytes, reasonName, verifySignature } from './crl.js';

const SHA1 = '1.3.14.3.2.26';
/** Clock skew tolerated on thisUpdate. */
const SKEW_MS = 5 * 60_000;
/** How long an answer without nextUpdate is reused. */
const NO_NEXT_UPDATE_TTL_MS = 5 * 60_000;
/** Longest any answer is cached, whatever nextUpdate says. */
const MAX_TTL_MS = 24 * 3_600_000;

export type OcspAnswer =
  | { readonly state: 'good'; readonly thisUpdate: Date; readonly nextUpdate: Date | undefined }
  | { readonly state: 'revoked'; readonly reason: string; readonly detail: string }
  | { readonly state: 'unknown'; readonly detail: string };

export interface OcspOptions {
  readonly responder?: string;
  readonly timeoutMs: number;
  readonly cacheSize: number;
  readonly now?: () => number;
}

export class OcspError extends Error {
  readonly code = 'CERTGATE_OCSP_INVALID';
}

/** The CertID for a certificate (SHA-1, as every responder supports). */
function certIdFor(serialHex: string, issuer: TrustedCa): CertID {
  const info = caInfo(issuer);
  const even = serialHex.length % 2 ? '0' + serialHex : serialHex;
  const serial = Buffer.from(/^[89a-f]/.test(even) ? '00' + even : even, 'hex');
  return new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: SHA1, parameters: null }),
    issuerNameHash: new OctetString(createHash('sha1').update(info.name).digest()),
    issuerKeyHash: new OctetString(createHash('sha1').update(info.keyBits).digest()),
    serialNumber: toArrayBuffer(serial),
  });
}

export function buildOcspRequest(serialHex: string, issuer: TrustedCa): Uint8Array {
  const req = new OCSPRequest({ tbsRequest: new TBSRequest({ requestList: [new Request({ reqCert: certIdFor(serialHex, issuer) })] }) });
  return new Uint8Array(AsnConvert.serialize(req));
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

const eq = (a: ArrayBuffer | Uint8Array, b: ArrayBuffer | Uint8Array) => Buffer.from(a as ArrayBuffer).equals(Buffer.from(b as ArrayBuffer));

/**
 * Verifies a DER OCSPResponse for (serial, issuer) and returns what it says. Throws OcspError
 * for anything that is not a valid, signed, current answer about this certificate.
 */
export function parseOcspResponse(der: Uint8Array, serialHex: string, issuer: TrustedCa, now = Date.now()): OcspAnswer {
  let res: OCSPResponse;
  try {
    res = AsnConvert.parse(der, OCSPResponse);
  } catch (err) {
    throw new OcspError(`malformed OCSP response: ${(err as Error).message}`);
  }
  if (res.responseStatus !== OCSPResponseStatus.successful) {
    throw new OcspError(`responder answered ${OCSPResponseStatus[res.responseStatus] ?? res.responseStatus}`);
  }
  if (res.responseBytes === undefined || res.responseBytes.responseType !== id_pkix_ocsp_basic) throw new OcspError('not a basic OCSP response');
  const basic = AsnConvert.parse(res.responseBytes.response.buffer, BasicOCSPResponse);
  const tbs = basic.tbsResponseDataRaw ?? AsnConvert.serialize(basic.tbsResponseData);
  if (!signedByIssuerOrDelegate(basic, new Uint8Array(tbs), issuer, now)) {
    throw new OcspError('the OCSP response is not signed by the issuer or a responder it delegated to');
  }
  const want = certIdFor(serialHex, issuer);
  const single = basic.tbsResponseData.responses.find(
    (r) => eq(r.certID.serialNumber, want.serialNumber) && eq(r.certID.issuerKeyHash.buffer, want.issuerKeyHash.buffer) && r.certID.hashAlgorithm.algorithm === SHA1,
  );
  if (single === undefined) throw new OcspError('the OCSP response does not cover this certificate');
  if (single.thisUpdate.getTime() > now + SKEW_MS) throw new OcspError('the OCSP response is from the future (thisUpdate)');
  if (single.nextUpdate !== undefined && single.nextUpdate.getTime() <= now) throw new OcspError('the OCSP response is stale (past nextUpdate)');
  const st = single.certStatus;
  if (st.revoked !== undefined) {
    const reason = reasonName(st.revoked.revocationReason as number | undefined);
    return { state: 'revoked', reason, detail: `revoked at ${st.revoked.revocationTime.toISOString()} (OCSP)` };
  }
  if (st.good !== undefined) return { state: 'good', thisUpdate: single.thisUpdate, nextUpdate: single.nextUpdate };
  return { state: 'unknown', detail: 'the responder does not know this certificate' };
}

function signedByIssuerOrDelegate(basic: BasicOCSPResponse, tbs: Uint8Array, issuer: TrustedCa, now: number): boolean {
  const alg = basic.signatureAlgorithm.algorithm;
  const sig = new Uint8Array(basic.signature);
  if (verifySignature(alg, tbs, sig, issuer)) return true;
  for (const c of basic.certs ?? []) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(Buffer.from(AsnConvert.serialize(c)));
    } catch {
      continue;
    }
    // A delegated responder: issued (and signed) by the issuer, for OCSP signing, valid now.
    if (!cert.checkIssued(issuer.cert) || !cert.verify(issuer.cert.publicKey)) continue;
    if (!hasOcspSigning(c)) continue;
    if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) continue;
    if (verifySignature(alg, tbs, sig, { file: '', pem: '', cert })) return true;
  }
  return false;
}

function hasOcspSigning(c: Certificate): boolean {
  const ext = c.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_extKeyUsage);
  if (ext === undefined) return false;
  try {
    return AsnConvert.parse(ext.extnValue.buffer, ExtendedKeyUsage).includes(id_kp_OCSPSigning);
  } catch {
    return false;
  }
}

/** Lookups by certificate with a bounded cache and shared in-flight requests. */
export class OcspClient {
  readonly #opts: OcspOptions;
  readonly #cache: LRUCache<string, OcspAnswer> | undefined;
  readonly #inflight = new Map<string, Promise<OcspAnswer>>();

  constructor(opts: OcspOptions) {
    this.#opts = opts;
    this.#cache = opts.cacheSize > 0 ? new LRUCache<string, OcspAnswer>({ max: opts.cacheSize, ttlAutopurge: false, allowStale: false }) : undefined;
  }

  /** The responder URL for a certificate: the configured one, else its AIA OCSP URL. */
  responderFor(id: Identity): string | undefined {
    return this.#opts.responder ?? id.ocspUrls.find((u) => u.startsWith('http://') || u.startsWith('https://'));
  }

  /** A cached answer, or a promise of a fresh one. Never rejects. */
  check(id: Identity, issuer: TrustedCa): OcspAnswer | Promise<OcspAnswer> {
    const key = `${issuer.cert.fingerprint256}|${id.serial}`;
    const hit = this.#cache?.get(key);
    if (hit !== undefined) {
      metrics.ocspCache.inc({ result: 'hit' });
      return hit;
    }
    metrics.ocspCache.inc({ result: 'miss' });
    let p = this.#inflight.get(key);
    if (p === undefined) {
      p = this.#fetch(id, issuer, key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    return p;
  }

  async #fetch(id: Identity, issuer: TrustedCa, key: string): Promise<OcspAnswer> {
    const url = this.responderFor(id);
    if (url === undefined) return { state: 'unknown', detail: 'no OCSP responder for this certificate' };
    const now = this.#opts.now ?? Date.now;
    try {
      const body = buildOcspRequest(id.serial, issuer);
      const der = await fetchBytes(url, 'POST', body, 'application/ocsp-request', this.#opts.timeoutMs, 1024 * 1024);
      const t = now();
      const answer = parseOcspResponse(der, id.serial, issuer, t);
      if (answer.state !== 'unknown') {
        const ttl = answer.state === 'good' && answer.nextUpdate !== undefined ? answer.nextUpdate.getTime() - t : NO_NEXT_UPDATE_TTL_MS;
        if (ttl > 0) this.#cache?.set(key, answer, { ttl: Math.min(ttl, MAX_TTL_MS) });
      }
      return answer;
    } catch (err) {
      metrics.revocationFetchFailures.inc({ kind: 'ocsp' });
      return { state: 'unknown', detail: `OCSP ${url}: ${(err as Error).message}` };
    }
  }

  clear(): void {
    this.#cache?.clear();
  }

  /** Answers cached now and the most kept, for the dashboard. */
  get cacheState(): { size: number; max: number } {
    return { size: this.#cache?.size ?? 0, max: this.#cache?.max ?? 0 };
  }

  /** Drops answers past their nextUpdate; true when any was dropped (cheap: one pass, no I/O). */
  purgeExpired(): boolean {
    return this.#cache?.purgeStale() ?? false;
  }
}
