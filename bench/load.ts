// The load generator: undici clients presenting client certificates. A closed loop of
// `concurrency` request loops; keep-alive connections, or a new connection per request (full
// handshake or resumed session); a warm-up, then a measured window bounded in time and count.

import { Client, buildConnector, type Dispatcher } from 'undici';
import type { ClientCert } from './pki.js';

export interface Endpoint {
  /** http://127.0.0.1:port (direct) or https://127.0.0.1:port. */
  readonly origin: string;
  /** CA PEM that verifies the server (https only). */
  readonly ca?: string;
}

export type ConnMode = 'keepalive' | 'handshake' | 'resumed';

export interface LoadSpec {
  readonly endpoint: Endpoint;
  readonly mode: ConnMode;
  /** Client certificates; keep-alive connection i presents certs[i % certs.length]. */
  readonly certs: readonly ClientCert[];
  /** Request loops in flight at once. */
  readonly concurrency: number;
  /** Keep-alive connections (>= concurrency / pipelining); more than the loops spreads identities. */
  readonly connections: number;
  readonly pipelining: number;
  readonly method: 'GET' | 'POST';
  readonly path: (n: number) => string;
  readonly body?: Buffer;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly maxRequests: number;
  /**
   * The window goes on past durationMs until this many requests completed (at most
   * MIN_REQUESTS_GRACE_MS more): a smoke run on a starved machine still gets each target to serve.
   */
  readonly minRequests?: number;
  /** Offered load in requests/s (open loop, bounded by `concurrency`); 0 = as fast as it goes. */
  readonly rate?: number;
  /** Called at the start and the end of the measured window (CPU snapshots). */
  readonly onWindow?: (edge: 'start' | 'end') => void;
}

export interface LoadResult {
  requests: number;
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
  latencies: Float64Array;
  bytesIn: number;
  bytesOut: number;
  /** New TLS connections in the window, and how many of them resumed a session. */
  connectionsOpened: number;
  resumed: number;
}

interface Outcome {
  status: number;
  bytes: number;
}

/** One request with a minimal handler: no body stream objects, just counts. */
export function send(d: Dispatcher, opts: Dispatcher.DispatchOptions): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let bytes = 0;
    d.dispatch(opts, {
      onConnect() {},
      onHeaders(s: number) {
        status = s;
        return true;
      },
      onData(chunk: Buffer) {
        bytes += chunk.length;
        return true;
      },
      onComplete() {
        resolve({ status, bytes });
      },
      onError(err: Error) {
        reject(err);
      },
    } as Dispatcher.DispatchHandler);
  });
}

const LONG = 10 * 60_000;
export const MIN_REQUESTS_GRACE_MS = 30_000;
const MAX_SAMPLES = 2_000_000;

type Connector = ReturnType<typeof buildConnector>;

/** A TLS connector that counts resumed sessions; `sessions: 0` forces full handshakes. */
function countingConnector(ep: Endpoint, cert: ClientCert, sessions: number, stats: { opened: number; resumed: number }): Connector {
  const inner = buildConnector({ ca: ep.ca, cert: cert.cert, key: cert.key, servername: 'localhost', rejectUnauthorized: true, maxCachedSessions: sessions });
  return ((opts, cb) =>
    inner(opts, (err, socket) => {
      if (err === null && socket !== null) {
        stats.opened++;
        if ('isSessionReused' in socket && (socket as import('node:tls').TLSSocket).isSessionReused()) stats.resumed++;
      }
      cb(err, socket as never);
    })) as Connector;
}

export function keepAliveClient(ep: Endpoint, cert: ClientCert | undefined, pipelining = 1, connect?: Connector): Client {
  const tls = ep.origin.startsWith('https:');
  return new Client(ep.origin, {
    pipelining,
    keepAliveTimeout: LONG,
    keepAliveMaxTimeout: LONG,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
    connect: connect ?? (tls ? { ca: ep.ca, cert: cert?.cert, key: cert?.key, servername: 'localhost', rejectUnauthorized: true } : undefined),
  });
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const tls = spec.endpoint.origin.startsWith('https:');
  const stats = { opened: 0, resumed: 0 };
  const result: LoadResult = { requests: 0, errors: 0, errorSamples: [], elapsedMs: 0, latencies: new Float64Array(0), bytesIn: 0, bytesOut: 0, connectionsOpened: 0, resumed: 0 };
  const lat = new Float64Array(Math.min(spec.maxRequests, MAX_SAMPLES));
  let measuring = false;
  let stop = false;
  let counted = 0;
  let seq = 0;
  const bodyLen = spec.body?.length ?? 0;
  const fail = (why: string) => {
    if (!measuring) return;
    result.errors++;
    if (result.errorSamples.length < 5) result.errorSamples.push(why);
  };
  const opts = (n: number, reset: boolean): Dispatcher.DispatchOptions => ({
    origin: spec.endpoint.origin,
    path: spec.path(n),
    method: spec.method,
    headers: bodyLen > 0 ? ['content-type', 'application/octet-stream'] : undefined,
    body: spec.body ?? null,
    reset,
  });
  // With a rate, request n is due at start + n/rate: every target gets the same offered load.
  const rate = spec.rate ?? 0;
  const paceStart = performance.now();
  let paced = 0;
  const pace = async (): Promise<void> => {
    if (rate <= 0) return;
    const due = paceStart + (paced++ * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
  };
  const record = (t0: number, o: Outcome) => {
    if (!measuring) return;
    if (o.status < 200 || o.status >= 300) {
      fail(`HTTP ${o.status}`);
      return;
    }
    if (counted < lat.length) lat[counted] = performance.now() - t0;
    counted++;
    result.requests++;
    result.bytesIn += o.bytes;
    result.bytesOut += bodyLen;
    if (result.requests >= spec.maxRequests) stop = true;
  };

  const clients: Client[] = [];
  let loop: (i: number) => Promise<void>;
  if (spec.mode === 'keepalive') {
    for (let i = 0; i < spec.connections; i++) clients.push(keepAliveClient(spec.endpoint, spec.certs[i % spec.certs.length], spec.pipelining));
    // With more connections than loops, loop i walks the connections i, i+L, i+2L ... so that
    // two loops never queue on one connection.
    if (spec.connections > spec.concurrency) {
      await Promise.all(
        Array.from({ length: spec.concurrency }, async (_, i) => {
          for (let c = i; c < clients.length; c += spec.concurrency) await send(clients[c]!, opts(seq++, false)).catch((e: Error) => fail(e.message));
        }),
      );
    }
    loop = async (i) => {
      let c = i % clients.length;
      while (!stop) {
        await pace();
        if (stop) break;
        const t0 = performance.now();
        try {
          record(t0, await send(clients[c]!, opts(seq++, false)));
        } catch (e) {
          fail((e as Error).message);
        }
        if (spec.connections > spec.concurrency) {
          c += spec.concurrency;
          if (c >= clients.length) c = i % spec.concurrency;
        }
      }
    };
  } else {
    // One connector for all loops: for `resumed` they share its session cache.
    const connector = tls ? countingConnector(spec.endpoint, spec.certs[0]!, spec.mode === 'resumed' ? 100 : 0, stats) : undefined;
    loop = async () => {
      while (!stop) {
        const client = keepAliveClient(spec.endpoint, spec.certs[0], 1, connector);
        const t0 = performance.now();
        try {
          record(t0, await send(client, opts(seq++, true)));
        } catch (e) {
          fail((e as Error).message);
        }
        client.destroy().catch(() => {});
      }
    };
  }

  const loops: Promise<void>[] = [];
  for (let i = 0; i < spec.concurrency; i++) loops.push(loop(i));
  await sleep(spec.warmupMs);
  const base = { ...stats };
  measuring = true;
  spec.onWindow?.('start');
  const t0 = performance.now();
  await windowEnd(t0, spec.durationMs, spec.minRequests ?? 0, () => result.requests, () => stop, () => (stop = true));
  result.elapsedMs = performance.now() - t0;
  spec.onWindow?.('end');
  measuring = false;
  stop = true;
  await Promise.all(loops);
  result.connectionsOpened = stats.opened - base.opened;
  result.resumed = stats.resumed - base.resumed;
  result.latencies = lat.subarray(0, Math.min(counted, lat.length));
  await Promise.all(clients.map((c) => c.destroy().catch(() => {})));
  return result;
}

/**
 * Resolves when the window that began at t0 is over: durationMs passed and minRequests were
 * served (at most MIN_REQUESTS_GRACE_MS more), or `stopped()` (maxRequests reached). `halt`
 * runs at once when it ends, before any request loop runs again.
 */
export function windowEnd(t0: number, durationMs: number, minRequests: number, served: () => number, stopped: () => boolean, halt: () => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      halt();
      clearTimeout(end);
      clearInterval(poll);
      resolve();
    };
    const poll = setInterval(() => {
      if (stopped()) return done();
      const el = performance.now() - t0;
      if (el >= durationMs && (served() >= minRequests || el >= durationMs + MIN_REQUESTS_GRACE_MS)) done();
    }, 5);
    const end = setTimeout(() => {
      if (served() >= minRequests) done();
    }, durationMs);
  });
}

/** Opens n keep-alive mTLS connections, one request each, and leaves them open. */
export async function openIdle(ep: Endpoint, cert: ClientCert, n: number, concurrency: number): Promise<{ clients: Client[]; errors: number; samples: string[] }> {
  const clients: Client[] = [];
  let errors = 0;
  const samples: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const c = keepAliveClient(ep, cert);
        clients.push(c);
        try {
          const o = await send(c, { origin: ep.origin, path: '/idle', method: 'GET' });
          if (o.status !== 200) throw new Error(`HTTP ${o.status}`);
        } catch (e) {
          errors++;
          if (samples.length < 5) samples.push((e as Error).message);
        }
      }
    }),
  );
  return { clients, errors, samples };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
