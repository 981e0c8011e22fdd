// A real webhook receiver on 127.0.0.1: records every POST and answers with the statuses a test
// scripts ('hang' keeps the request open until close()).

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly json: any;
  /** performance.now() when the body was complete. */
  readonly at: number;
}

export interface Receiver {
  readonly url: string;
  readonly received: Received[];
  /** Requests whose answer is held back ('hang'). */
  readonly open: ServerResponse[];
  /** Statuses for the next requests, in order; then 200. */
  script(...answers: (number | 'hang')[]): void;
  on(path: string): Received[];
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const open: ServerResponse[] = [];
  const answers: (number | 'hang')[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      received.push({ path: req.url ?? '', headers: req.headers, body, json, at: performance.now() });
      const a = answers.shift() ?? 200;
      if (a === 'hang') {
        open.push(res);
        return;
      }
      res.writeHead(a, { 'content-type': 'text/plain' }).end(a === 200 ? 'ok' : 'no');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    open,
    script: (...a) => answers.push(...a),
    on: (path) => received.filter((r) => r.path === path),
    close: async () => {
      for (const r of open.splice(0)) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
