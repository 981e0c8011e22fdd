// The leanest Node forwarding design we know, as a bench target: node:https with requestCert
// (same server certificate and CA as `bare` and certgate) in front of the same backend, each
// request handed to an undici Pool with `dispatch` and a raw handler. Raw header arrays both
// ways, no policy, no identity, no added headers, no logging, no metrics: what any HTTP-level
// Node proxy costs, so that certgate's own cost is the ratio to it. Prints {"port":N}.
//
//   node dist/bench/lean-proxy.js '{"cert":FILE,"key":FILE,"ca":FILE,"backend":"http://127.0.0.1:N"}'

import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Pool, type Dispatcher } from 'undici';

const IDLE_MS = 10 * 60_000;

/**
 * Hop-by-hop headers: undici refuses most of them in a request, and a proxy must not pass them
 * on either way. The only per-header work the design does (a length test first, as undici does).
 */
function hopByHop(name: string): boolean {
  const n = name.length;
  if (n !== 2 && n !== 7 && n !== 10 && n !== 16 && n !== 17) return false;
  const l = name.toLowerCase();
  return l === 'connection' || l === 'keep-alive' || l === 'transfer-encoding' || l === 'upgrade' || l === 'te' || l === 'proxy-connection';
}

/** Response side of one request: status and raw headers out as they came, body with backpressure. */
class Forward implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  constructor(res: ServerResponse) {
    this.#res = res;
  }
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!.toString('latin1');
      if (!hopByHop(k)) out.push(k, raw[i + 1]!.toString('latin1'));
    }
    this.#res.writeHead(status, out);
    this.#res.on('drain', resume);
    return true;
  }
  onData(chunk: Buffer): boolean {
    return this.#res.write(chunk);
  }
  onComplete(): void {
    this.#res.end();
  }
  onError(): void {
    if (this.#res.headersSent) this.#res.destroy();
    else this.#res.writeHead(502, ['content-length', '0']).end();
  }
}

function main(): void {
  const opts = JSON.parse(process.argv[2] ?? '{}') as { cert: string; key: string; ca: string; backend: string };
  const pool = new Pool(opts.backend, { keepAliveTimeout: 4_000, headersTimeout: 0, bodyTimeout: 0, pipelining: 1 });
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const raw = req.rawHeaders;
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) if (!hopByHop(raw[i]!)) headers.push(raw[i]!, raw[i + 1]!);
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    pool.dispatch({ path: req.url!, method: req.method as Dispatcher.HttpMethod, headers, body: hasBody ? req : null }, new Forward(res));
  };
  const server = createServer(
    { cert: readFileSync(opts.cert), key: readFileSync(opts.key), ca: readFileSync(opts.ca), requestCert: true, rejectUnauthorized: true },
    handle,
  );
  server.keepAliveTimeout = IDLE_MS;
  server.headersTimeout = IDLE_MS + 1000;
  server.requestTimeout = 0;
  server.maxConnections = 100_000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
  });
  process.on('SIGTERM', () => process.exit(0));
}

main();
