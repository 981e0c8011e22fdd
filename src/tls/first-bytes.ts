// The listener in front of TLS: reads the first bytes of each connection (within the handshake
// timeout) and decides what speaks. A TLS ClientHello goes to the https server (bytes put back,
// then `emit('connection')`); plain HTTP gets a short plain-text 400 saying the port speaks TLS
// (as nginx does), then close. PROXY protocol and other first-byte routing plug in here.

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import { PLAIN_HTTP_ON_TLS_PORT } from '../proxy/error-response.js';

/** TLS record type 22 (handshake): every ClientHello starts with it. */
const TLS_HANDSHAKE = 0x16;

export interface FirstBytesOptions {
  /** Where TLS connections go; it never listens itself. */
  readonly tls: TlsServer;
  /** How long a connection may stay silent before its first byte. */
  readonly timeoutMs: number;
  readonly maxConnections: number;
  /** A plain-HTTP request on this port (for a log line). */
  readonly onPlainHttp?: (socket: Socket) => void;
}

export class FirstBytesListener {
  readonly #server: Server;
  readonly #opts: FirstBytesOptions;
  /** Connections whose first bytes have not arrived yet (closed at shutdown). */
  readonly #waiting = new Set<Socket>();

  constructor(opts: FirstBytesOptions) {
    this.#opts = opts;
    this.#server = createServer({ pauseOnConnect: false }, this.#onConnection);
    this.#server.maxConnections = opts.maxConnections;
  }

  get server(): Server {
    return this.#server;
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host, port, exclusive: false }, () => {
        this.#server.off('error', reject);
        // The https server is fed connections instead of listening: its 'listening' starts Node's
        // per-connection header and request timeout checks.
        this.#opts.tls.emit('listening');
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting; resolves when every connection accepted here has closed. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#waiting) s.destroy();
    return closed;
  }

  #onConnection = (socket: Socket): void => {
    this.#waiting.add(socket);
    socket.setTimeout(this.#opts.timeoutMs, () => socket.destroy());
    socket.on('error', destroySocket);
    socket.once('readable', () => this.#onFirstBytes(socket));
    socket.once('close', () => this.#waiting.delete(socket));
  };

  #onFirstBytes(socket: Socket): void {
    this.#waiting.delete(socket);
    socket.setTimeout(0);
    socket.off('error', destroySocket);
    const first = socket.read() as Buffer | null;
    if (first === null) {
      socket.destroy();
      return;
    }
    socket.unshift(first);
    if (first[0] === TLS_HANDSHAKE) {
      this.#opts.tls.emit('connection', socket);
      return;
    }
    if (looksLikeHttp(first)) {
      this.#opts.onPlainHttp?.(socket);
      socket.on('error', destroySocket);
      socket.end(PLAIN_HTTP_ON_TLS_PORT);
      // The client may keep sending; what it sent is never read.
      socket.resume();
      return;
    }
    socket.destroy();
  }
}

function destroySocket(this: Socket): void {
  this.destroy();
}

/** An HTTP/1.x request line starts with an upper-case method token. */
function looksLikeHttp(b: Buffer): boolean {
  const c = b[0]!;
  return c >= 0x41 && c <= 0x5a;
}
