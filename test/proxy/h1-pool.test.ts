// The upstream connection pool on its own, against a real HTTP/1.1 server on 127.0.0.1: what the
// proxy's exchange relies on between two requests on one kept-alive connection.
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H1Pool, type H1Handler, type H1Connection, type UpstreamError } from '../../src/proxy/h1-pool.js';
import { within } from '../helpers/wait.js';

let server: Server;
let port = 0;
let connections = 0;

beforeAll(async () => {
  // Answers every GET with 64 KiB, on the same connection.
  server = createServer((s) => {
    connections++;
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        buf = buf.slice(end + 4);
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n`);
        s.write(Buffer.alloc(65536, 0x61));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

/** One exchange; `pauseAtEnd` pauses the connection on the body's last bytes (a slow client) and never resumes it. */
function get(pool: H1Pool, pauseAtEnd: boolean): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    let conn: H1Connection | undefined;
    let status = 0;
    let bytes = 0;
    const handler: H1Handler = {
      onResponseHead: (s) => (status = s),
      onResponseBody: (c) => {
        bytes += c.length;
        if (pauseAtEnd && bytes === 65536) conn?.pause();
      },
      onResponseEnd: () => resolve({ status, bytes }),
      onUpstreamError: (e: UpstreamError) => reject(e),
    };
    conn = pool.send(handler, { head: 'GET / HTTP/1.1\r\nhost: x\r\n', body: null, chunked: false, noBody: false, timeoutMs: 10_000 });
  });
}

describe('the upstream connection pool', () => {
  it('reads the next response on a connection that was paused for a slow client when its last response ended', async () => {
    const pool = new H1Pool(`http://127.0.0.1:${port}`, { connectMs: 5000, keepAliveMs: 4000 });
    const before = connections;
    try {
      expect(await within(get(pool, true), 5000, 'the first response')).toEqual({ status: 200, bytes: 65536 });
      expect(await within(get(pool, false), 5000, 'the second response on the same connection')).toEqual({ status: 200, bytes: 65536 });
      expect(connections - before).toBe(1);
    } finally {
      await within(pool.close(), 5000, 'the pool to close');
    }
  });
});
