// In-process OCSP responder and CRL server on 127.0.0.1:0, serving real DER: the responder
// parses certgate's real OCSPRequest and signs its answer with the CA's (or a delegate's) key.
import { createHash, sign as cryptoSign, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BasicOCSPResponse,
  CertStatus,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  ResponderID,
  ResponseBytes,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  KeyHash,
  id_pkix_ocsp_basic,
} from '@peculiar/asn1-ocsp';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate, CRLReason } from '@peculiar/asn1-x509';

export type OcspState = 'good' | 'revoked' | 'unknown';

export interface Signer {
  certPem: string;
  keyPem: string;
}

export interface OcspResponder {
  url: string;
  /** serial (canonical hex) -> state; default 'good'. */
  states: Map<string, OcspState>;
  requests: number;
  signer: Signer;
  /** Certificates sent along in the response (a delegated responder's own cert). */
  includeCerts: string[];
  /** Seconds from now for nextUpdate; undefined: none. */
  nextUpdateIn: number | undefined;
  delayMs: number;
  close(): Promise<void>;
}

function serialHex(buf: ArrayBuffer): string {
  return Buffer.from(buf).toString('hex').replace(/^0+(?=.)/, '');
}

export async function startOcspResponder(signer: Signer): Promise<OcspResponder> {
  const r: OcspResponder = {
    url: '',
    states: new Map(),
    requests: 0,
    signer,
    includeCerts: [],
    nextUpdateIn: 3600,
    delayMs: 0,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      r.requests++;
      const ocspReq = AsnConvert.parse(Buffer.concat(chunks), OCSPRequest);
      const now = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
      const signerCert = new X509Certificate(r.signer.certPem);
      const signerAsn = AsnConvert.parse(signerCert.raw, Certificate);
      const keyHash = createHash('sha1').update(Buffer.from(signerAsn.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey)).digest();
      const responses = ocspReq.tbsRequest.requestList.map((q) => {
        const state = r.states.get(serialHex(q.reqCert.serialNumber)) ?? 'good';
        const certStatus =
          state === 'good' ? new CertStatus({ good: null })
          : state === 'revoked' ? new CertStatus({ revoked: new RevokedInfo({ revocationTime: now, revocationReason: new CRLReason(1) }) })
          : new CertStatus({ unknown: null });
        return new SingleResponse({
          certID: q.reqCert,
          certStatus,
          thisUpdate: now,
          ...(r.nextUpdateIn !== undefined ? { nextUpdate: new Date(Date.now() + r.nextUpdateIn * 1000) } : {}),
        });
      });
      const tbs = new ResponseData({
        responderID: new ResponderID({ byKey: new KeyHash(keyHash) }),
        producedAt: now,
        responses,
      });
      const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
      const signature = cryptoSign('sha256', tbsDer, r.signer.keyPem); // ECDSA: DER-encoded
      const basic = new BasicOCSPResponse({
        tbsResponseData: tbs,
        signatureAlgorithm: new AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.2' }),
        signature: new Uint8Array(signature).buffer,
        ...(r.includeCerts.length > 0 ? { certs: r.includeCerts.map((p) => AsnConvert.parse(new X509Certificate(p).raw, Certificate)) } : {}),
      });
      const body = Buffer.from(
        AsnConvert.serialize(
          new OCSPResponse({
            responseStatus: OCSPResponseStatus.successful,
            responseBytes: new ResponseBytes({ responseType: id_pkix_ocsp_basic, response: new OctetString(AsnConvert.serialize(basic)) }),
          }),
        ),
      );
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/ocsp-response', 'content-length': body.length });
        res.end(body);
      }, r.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ocsp`;
  r.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return r;
}

export interface CrlServer {
  url: string;
  der: Uint8Array | undefined;
  /** Answer 503 instead of the CRL. */
  failing: boolean;
  requests: number;
  close(): Promise<void>;
}

export async function startCrlServer(der?: Uint8Array): Promise<CrlServer> {
  const s: CrlServer = { url: '', der, failing: false, requests: 0, close: async () => {} };
  const server = createServer((req, res) => {
    s.requests++;
    if (s.failing || s.der === undefined) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pkix-crl', 'content-length': s.der.length });
    res.end(Buffer.from(s.der));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/intermediate.crl`;
  s.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return s;
}
