// The HTTP/2 load generator: node:http2 client sessions presenting the client certificate, each
// carrying `streams` request loops at once (a closed loop of connections x streams), plain GETs or
// gRPC unary calls framed by hand (grpc-wire.ts), so that the client side stays as cheap as
// Node's own HTTP/2 and the measurement is about the server. Same window as load.ts: a warm-up,
// then a measured window bounded in time and count.

import { connect, constants, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { sleep, windowEnd, type Endpoint, type LoadResult } from './load.js';
import { GRPC_REQUEST } from './grpc-wire.js';
import type { ClientCert } from './pki.js';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = constants;
const CONNECT_MS = 30_000;
/** A stream without a frame either way for this long is cancelled (a stalled server ends the run). */
const STREAM_IDLE_MS = 30_000;
const CLOSE_MS = 5_000;
const MAX_SAMPLES = 2_000_000;

export interface H2LoadSpec {
  readonly endpoint: Endpoint;
  readonly cert: ClientCert;
  /** HTTP/2 connections (sessions). */
  readonly connections: number;
  /** Streams in flight at once on each connection. */
  readonly streams: number;
  /** `get`: GET path, small response; `grpc`: a unary call to path, grpc-status 0 expected. */
  readonly call: 'get' | 'grpc';
  readonly path: string;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly maxRequests: number;
  readonly minRequests?: number;
  readonly onWindow?: (edge: 'start' | 'end') => void;
}

interface H2Outcome {
  status: number;
  bytes: number;
  grpcStatus: string | undefined;
}

function openSession(ep: Endpoint, cert: ClientCert): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    // Our own TLS socket: a session that did not negotiate h2 never takes it over, and
    // destroying the session would leave it open.
    const u = new URL(ep.origin);
    let raw: TLSSocket | undefined;
    const createConnection = () =>
      (raw = tlsConnect({ host: u.hostname, port: Number(u.port), ca: ep.ca, cert: cert.cert, key: cert.key, servername: 'localhost', rejectUnauthorized: true, ALPNProtocols: ['h2'] }));
    const s = connect(ep.origin, { createConnection });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`HTTP/2 connect to ${ep.origin} timed out`));
    }, CONNECT_MS);
    s.once('connect', () => {
      clearTimeout(timer);
      if (s.alpnProtocol === 'h2') return resolve(s);
      raw?.destroy();
      s.destroy();
      reject(new Error(`${ep.origin} negotiated ${String(s.alpnProtocol)}, not h2`));
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      raw?.destroy();
      reject(e);
    });
  });
}

/** One stream: request headers (and body), then status, trailers and body bytes counted. */
function exchange(s: ClientHttp2Session, headers: OutgoingHttpHeaders, body: Buffer | null): Promise<H2Outcome> {
  return new Promise((resolve, reject) => {
    const out: H2Outcome = { status: 0, bytes: 0, grpcStatus: undefined };
    const req = s.request(headers, { endStream: body === null });
    req.setTimeout(STREAM_IDLE_MS, () => req.close(NGHTTP2_CANCEL));
    req.on('response', (h) => {
      out.status = Number(h[':status']);
      // A trailers-only response (a refused gRPC call) carries grpc-status in its headers.
      if (h['grpc-status'] !== undefined) out.grpcStatus = String(h['grpc-status']);
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) out.grpcStatus = String(t['grpc-status']);
    });
    req.on('data', (c: Buffer) => (out.bytes += c.length));
    req.on('error', reject);
    req.on('close', () => {
      if (req.rstCode !== NGHTTP2_NO_ERROR) reject(new Error(`stream reset (${req.rstCode})`));
      else resolve(out);
    });
    if (body !== null) req.end(body);
  });
}

export async function runH2Load(spec: H2LoadSpec): Promise<LoadResult> {
  const result: LoadResult = { requests: 0, errors: 0, errorSamples: [], elapsedMs: 0, latencies: new Float64Array(0), bytesIn: 0, bytesOut: 0, connectionsOpened: 0, resumed: 0 };
  const lat = new Float64Array(Math.min(spec.maxRequests, MAX_SAMPLES));
  const grpc = spec.call === 'grpc';
  // http2 copies the headers of every request: one object serves them all.
  const headers: OutgoingHttpHeaders = grpc
    ? { ':method': 'POST', ':path': spec.path, 'content-type': 'application/grpc', te: 'trailers' }
    : { ':method': 'GET', ':path': spec.path };
  const body = grpc ? GRPC_REQUEST : null;
  let measuring = false;
  let stop = false;
  let counted = 0;
  const fail = (why: string) => {
    if (!measuring) return;
    result.errors++;
    if (result.errorSamples.length < 5) result.errorSamples.push(why);
  };
  const record = (t0: number, o: H2Outcome) => {
    if (!measuring) return;
    if (o.status !== 200) return fail(`HTTP ${o.status}`);
    if (grpc && o.grpcStatus !== '0') return fail(`grpc-status ${o.grpcStatus ?? 'missing'}`);
    if (counted < lat.length) lat[counted] = performance.now() - t0;
    counted++;
    result.requests++;
    result.bytesIn += o.bytes;
    result.bytesOut += body?.length ?? 0;
    if (result.requests >= spec.maxRequests) stop = true;
  };

  const opened = await Promise.allSettled(Array.from({ length: spec.connections }, () => openSession(spec.endpoint, spec.cert)));
  const sessions = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  const refused = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (refused !== undefined) {
    for (const s of sessions) s.destroy();
    throw refused.reason as Error;
  }
  let lost = 0;
  for (const s of sessions) s.once('close', () => !stop && lost++).on('error', (e) => fail(`session: ${e.message}`));
  const loop = async (s: ClientHttp2Session): Promise<void> => {
    while (!stop) {
      // A session the server closed fails every request at once: its loops end (counted as lost).
      if (s.closed || s.destroyed) return;
      const t0 = performance.now();
      try {
        record(t0, await exchange(s, headers, body));
      } catch (e) {
        fail((e as Error).message);
        // Failures settle without I/O: yield, so that the window's timers still run.
        await sleep(1);
      }
    }
  };
  const loops: Promise<void>[] = [];
  for (const s of sessions) for (let i = 0; i < spec.streams; i++) loops.push(loop(s));
  await sleep(spec.warmupMs);
  measuring = true;
  spec.onWindow?.('start');
  const t0 = performance.now();
  await windowEnd(t0, spec.durationMs, spec.minRequests ?? 0, () => result.requests, () => stop || lost === sessions.length, () => (stop = true));
  result.elapsedMs = performance.now() - t0;
  spec.onWindow?.('end');
  measuring = false;
  stop = true;
  await Promise.all(loops);
  if (lost > 0) {
    result.errors += lost;
    result.errorSamples.push(`${lost} HTTP/2 connection(s) closed by the server during the run`);
  }
  result.latencies = lat.subarray(0, Math.min(counted, lat.length));
  await Promise.all(sessions.map(closeSession));
  return result;
}

function closeSession(s: ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve();
    const timer = setTimeout(() => s.destroy(), CLOSE_MS);
    s.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
