// The listener in front of TLS: reads the first bytes of each connection (within the handshake
// timeout) and decides what speaks. With `listen.proxyProtocol`, a PROXY protocol header comes
// first: a trusted peer (the load balancer) must send one and the client address it names is
// recorded (client-address.ts); any other peer that sends one is refused. Then a TLS ClientHello
// goes to the https server (bytes put back, then `emit('connection')`); plain HTTP gets a short
// plain-text 400 saying the port speaks TLS (as nginx does), then close.

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { metrics } from '../metrics.js';
import { PLAIN_HTTP_ON_TLS_PORT } from '../proxy/error-response.js';
import { clientAddressOf, peerAddressOf, setClientAddress } from './client-address.js';
import { parseProxyHeader, startsWithProxySignature, TrustedPeers } from './proxy-protocol.js';

/** TLS record type 22 (handshake): every ClientHello starts with it. */
const TLS_HANDSHAKE = 0x16;

export type ProxyRefusal = 'untrusted' | 'missing' | 'invalid' | 'timeout';

const REFUSAL_MESSAGES: Record<ProxyRefusal, string> = {
  untrusted: 'PROXY protocol header from a peer not in listen.proxyProtocol.trusted: closed',
  missing: 'a trusted peer (listen.proxyProtocol.trusted) connected without a PROXY protocol header: closed',
  invalid: 'invalid PROXY protocol header: closed',
  timeout: 'no complete PROXY protocol header within timeouts.handshake: closed',
};

export interface FirstBytesOptions {
  /** Where TLS connections go; it never listens itself. */
  readonly tls: TlsServer;
  /** timeouts.handshake, limits.maxConnections and listen.proxyProtocol are read from it. */
  readonly config: Config;
  readonly log: Logger;
}

/** What a reload may change; each connection keeps the settings it was accepted with. */
interface Settings {
  /** The whole time allowed before the first byte of TLS: a PROXY header may not trickle in. */
  readonly timeoutMs: number;
  /** Undefined: PROXY protocol off. */
  readonly trusted: TrustedPeers | undefined;
}

export class FirstBytesListener {
  readonly #server: Server;
  readonly #tls: TlsServer;
  readonly #log: Logger;
  #settings!: Settings;
  /** Connections whose first bytes have not arrived yet (closed at shutdown). */
  readonly #waiting = new Set<Socket>();

  constructor(opts: FirstBytesOptions) {
    this.#tls = opts.tls;
    this.#log = opts.log;
    this.#server = createServer({ pauseOnConnect: false }, this.#onConnection);
    this.apply(opts.config);
  }

  get server(): Server {
    return this.#server;
  }

  /** At start and on reload: new connections get the new trusted list and timeout. */
  apply(config: Config): void {
    const pp = config.listen.proxyProtocol;
    this.#settings = { timeoutMs: config.timeouts.handshake, trusted: pp === undefined ? undefined : new TrustedPeers(pp.trusted) };
    this.#server.maxConnections = config.limits.maxConnections;
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host, port, exclusive: false }, () => {
        this.#server.off('error', reject);
        // The https server is fed connections instead of listening: its 'listening' starts Node's
        // per-connection header and request timeout checks.
        this.#tls.emit('listening');
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
    const peer = peerAddressOf(socket);
    if (peer === undefined) {
      socket.destroy();
      return;
    }
    setClientAddress(socket, peer);
    const { timeoutMs, trusted } = this.#settings;
    // undefined: PROXY protocol off; true: the peer must send a header; false: it must not.
    const mustSendHeader = trusted?.has(peer.address);
    let headerPending = mustSendHeader !== undefined;
    let buffered: Buffer | undefined;

    const finish = (): void => {
      clearTimeout(timer);
      this.#waiting.delete(socket);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', destroySocket);
    };
    const refuse = (reason: ProxyRefusal, detail?: string): void => {
      finish();
      metrics.proxyProtocolRefusals.inc({ reason });
      this.#log.warn({ event: 'proxy_protocol_refused', reason, peer: peer.address, detail }, REFUSAL_MESSAGES[reason]);
      socket.destroy();
    };
    const onEnd = (): void => {
      finish();
      socket.destroy();
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) buffered = buffered === undefined ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered === undefined) return;
      if (headerPending) {
        if (mustSendHeader === true) {
          const r = parseProxyHeader(buffered);
          if (r.state === 'incomplete') return;
          if (r.state === 'absent') return refuse('missing');
          if (r.state === 'invalid') return refuse('invalid', r.reason);
          if (r.source !== undefined) setClientAddress(socket, r.source);
          buffered = buffered.length > r.length ? buffered.subarray(r.length) : undefined;
        } else {
          const sig = startsWithProxySignature(buffered);
          if (sig === undefined) return;
          if (sig) return refuse('untrusted');
        }
        headerPending = false;
        // The header came alone: the ClientHello follows in its own packet.
        if (buffered === undefined) return;
      }
      finish();
      this.#dispatch(socket, buffered);
    };

    this.#waiting.add(socket);
    const timer = setTimeout(() => {
      if (headerPending && (mustSendHeader === true || buffered !== undefined)) refuse('timeout', buffered === undefined ? 'nothing received' : `${buffered.length} bytes received`);
      else onEnd();
    }, timeoutMs);
    socket.on('error', destroySocket);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', () => {
      clearTimeout(timer);
      this.#waiting.delete(socket);
    });
  };

  /** The client's own first bytes (after any PROXY header): TLS, plain HTTP, or neither. */
  #dispatch(socket: Socket, first: Buffer): void {
    socket.unshift(first);
    if (first[0] === TLS_HANDSHAKE) {
      this.#tls.emit('connection', socket);
      return;
    }
    if (looksLikeHttp(first)) {
      this.#log.info({ event: 'plain_http_on_tls_port', remote: clientAddressOf(socket)?.address }, 'plain HTTP sent to the TLS port: answered 400');
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
