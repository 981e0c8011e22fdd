// The HTTP/2 reference servers of a bench run (started by roles.ts): `bare-h2`, a bare
// node:http2 secure server with requestCert and the same certificates as `bare`, answering
// itself (the HTTP/2 floor); `backend-h2c`, cleartext HTTP/2, what certgate forwards gRPC to
// (`upstreamProtocol: h2c`). Both use the core stream API, Node's cheapest HTTP/2 path, and answer
// a gRPC call (`content-type: application/grpc...`) with one message and `grpc-status: 0`, and
// anything else with a small JSON body, after reading the request body.

import { readFileSync } from 'node:fs';
import { createSecureServer, createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { GRPC_REPLY } from './grpc-wire.js';

const SMALL = Buffer.from('{"ok":true}');
// respond() and sendTrailers() copy these: one object each for every stream.
const JSON_HEADERS = { ':status': 200, 'content-type': 'application/json', 'content-length': SMALL.length };
const GRPC_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
const GRPC_OK = { 'grpc-status': '0' };

function onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
  const grpc = (headers['content-type'] ?? '').startsWith('application/grpc');
  stream.on('error', noop);
  stream.on('data', noop);
  stream.on('end', () => {
    if (stream.destroyed) return;
    if (grpc) {
      stream.respond(GRPC_HEADERS, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(GRPC_OK));
      stream.end(GRPC_REPLY);
    } else {
      stream.respond(JSON_HEADERS);
      stream.end(SMALL);
    }
  });
}

function noop(): void {}

export function startH2Role(role: 'bare-h2' | 'backend-h2c', opts: { cert?: string; key?: string; ca?: string }): void {
  const server =
    role === 'bare-h2'
      ? createSecureServer({ cert: readFileSync(opts.cert!), key: readFileSync(opts.key!), ca: readFileSync(opts.ca!), requestCert: true, rejectUnauthorized: true })
      : createServer();
  server.on('stream', onStream);
  server.on('sessionError', noop);
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
  });
  process.on('SIGTERM', () => process.exit(0));
}
