// Node's own HTTP/2 client over mTLS, for the HTTP/2 tests: a session, and one request on it with
// its status, headers, body and trailers collected.

import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { TestCert } from '../helpers/pki.js';

export interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders | undefined;
  text: string;
  json: any;
}

export const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });

/** An HTTP/2 session to certgate (ALPN h2 only), resolved once connected. */
export function h2Session(port: number, ca: string, client?: { cert: string; key: string }, servername = 'localhost'): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    // Another server name than the certificate's is for tests of the Host/SNI rule.
    const check = servername === 'localhost' ? {} : { checkServerIdentity: () => undefined };
    const s = connect(`https://127.0.0.1:${port}`, { ca, ...client, servername, ALPNProtocols: ['h2'], ...check });
    s.once('connect', () => {
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** One request on a session; the body, when given, is sent without content-length (HTTP/2 framing). */
export function h2Request(s: ClientHttp2Session, path: string, opts: { method?: string; headers?: OutgoingHttpHeaders; body?: string | Buffer } = {}): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const req = s.request({ ':path': path, ':method': opts.method ?? 'GET', ...opts.headers }, { endStream: opts.body === undefined });
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    let text = '';
    req.setEncoding('utf8');
    req.on('response', (h) => {
      status = Number(h[':status']);
      headers = h;
    });
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({ status, headers, trailers, text, json });
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.end(opts.body);
  });
}

/** One request on a fresh session, closed after. */
export async function h2Once(port: number, ca: string, client: { cert: string; key: string } | undefined, path: string, opts: Parameters<typeof h2Request>[2] & { servername?: string } = {}): Promise<H2Reply> {
  const s = await h2Session(port, ca, client, opts.servername);
  try {
    return await h2Request(s, path, opts);
  } finally {
    s.close();
  }
}
