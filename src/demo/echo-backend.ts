// The bundled demo backend: a plain HTTP server that echoes what it received as JSON, so that
// a user (and the tests) can see exactly which headers certgate forwarded.
//   GET .../slow?ms=N   answers after N ms       GET .../bytes?n=N   answers with N bytes
//   Upgrade: websocket  answers 101 and echoes raw bytes back

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoRecord {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  bodyBytes: number;
}

export interface EchoBackend {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  /** Every request received, newest last (tests assert on what reached the backend). */
  readonly received: EchoRecord[];
  close(): Promise<void>;
}

function query(req: IncomingMessage, key: string): number {
  const m = new RegExp(`[?&]${key}=(\\d+)`).exec(req.url ?? '');
  return m ? Number(m[1]) : 0;
}

export async function startEchoBackend(port = 0, host = '127.0.0.1', opts: { record?: boolean } = {}): Promise<EchoBackend> {
  const received: EchoRecord[] = [];
  const record = opts.record ?? true;
  const server = createServer((req, res) => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => (bodyBytes += c.length));
    req.on('end', () => {
      const rec: EchoRecord = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes };
      if (record) {
        received.push(rec);
        if (received.length > 1000) received.shift();
      }
      const send = () => {
        if (/\/bytes(\?|$)/.test(req.url ?? '')) {
          const n = query(req, 'n');
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
          const chunk = Buffer.alloc(64 * 1024, 0x61);
          let left = n;
          const pump = () => {
            while (left > 0) {
              const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
              left -= part.length;
              if (!res.write(part)) return void res.once('drain', pump);
            }
            res.end();
          };
          return pump();
        }
        const body = JSON.stringify(rec);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      const delay = /\/slow(\?|$)/.test(req.url ?? '') ? query(req, 'ms') : 0;
      if (delay > 0) setTimeout(send, delay);
      else send();
    });
  });
  server.on('upgrade', (req, socket, head) => {
    if (record) received.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: 0 });
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    port: addr.port,
    url: `http://${shownHost}:${addr.port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
