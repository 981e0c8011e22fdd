// WebSocket and other Upgrade requests go through http-proxy, after the same identity,
// revocation and policy decision as every request; only the sanitised headers are sent.

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import httpProxy from 'http-proxy';
import type { UpstreamTarget } from './upstream.js';

const proxy = httpProxy.createProxyServer({ ws: true, xfwd: false, changeOrigin: false });
const pending = new WeakMap<IncomingMessage, (err?: Error) => void>();

proxy.on('proxyReqWs', (proxyReq, req) => {
  const done = pending.get(req);
  if (done !== undefined) proxyReq.once('upgrade', () => done(undefined));
});

/** `headers` is the flat, already sanitised [name, value, ...] list for the upstream. */
export function proxyWebSocket(
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  target: UpstreamTarget,
  headers: readonly string[],
  done: (err?: Error) => void,
): void {
  const clean: Record<string, string> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    clean[name] = clean[name] === undefined ? headers[i + 1]! : `${clean[name]}, ${headers[i + 1]!}`;
  }
  // Hop-by-hop headers were stripped; an upgrade needs these two back.
  clean['connection'] = 'Upgrade';
  clean['upgrade'] = req.headers.upgrade ?? 'websocket';
  req.headers = clean;
  let once = false;
  const finish = (err?: Error) => {
    if (once) return;
    once = true;
    done(err);
  };
  pending.set(req, finish);
  proxy.ws(req, socket, head, { target: target.origin + target.basePath }, (err) => finish(err));
}
