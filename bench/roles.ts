// The reference servers of a bench run, each started as its own process so that its CPU
// time is measured alone: `backend` (plain HTTP, what certgate forwards to) and `bare` (a bare
// node:https server with requestCert that answers itself: Node's own TLS cost, the floor).
// Both answer `GET /bytes?n=N` with N bytes and anything else with a small JSON body after
// reading the request body. Their HTTP/2 counterparts (h2-roles.ts): `bare-h2` and `backend-h2c`.
// Prints {"port":N} on stdout once listening.

import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import { startH2Role } from './h2-roles.js';

const SMALL = Buffer.from('{"ok":true}');
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const IDLE_MS = 10 * 60_000;

function bytesWanted(url: string): number {
  if (!url.startsWith('/bytes?n=')) return -1;
  return Number(url.slice(9)) | 0;
}

/** Streams n bytes with backpressure, from one preallocated chunk. */
function sendBytes(res: ServerResponse, n: number): void {
  res.writeHead(200, ['content-type', 'application/octet-stream', 'content-length', String(n)]);
  let left = n;
  const pump = (): void => {
    while (left > 0) {
      const c = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= c.length;
      if (left === 0) {
        res.end(c);
        return;
      }
      if (!res.write(c)) {
        res.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const n = bytesWanted(req.url ?? '');
  if (n >= 0) {
    req.resume();
    sendBytes(res, n);
    return;
  }
  req.on('data', noop);
  req.on('end', () => {
    res.writeHead(200, ['content-type', 'application/json', 'content-length', String(SMALL.length)]);
    res.end(SMALL);
  });
}

function noop(): void {}

function main(): void {
  const [role, arg] = process.argv.slice(2);
  const opts = JSON.parse(arg ?? '{}') as { cert?: string; key?: string; ca?: string };
  if (role === 'bare-h2' || role === 'backend-h2c') {
    startH2Role(role, opts);
    return;
  }
  const server =
    role === 'bare'
      ? createHttps({ cert: readFileSync(opts.cert!), key: readFileSync(opts.key!), ca: readFileSync(opts.ca!), requestCert: true, rejectUnauthorized: true }, handle)
      : createHttp(handle);
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
