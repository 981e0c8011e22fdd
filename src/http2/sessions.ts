// The HTTP/2 side of the mTLS listener. TLS connections are routed by ALPN after the handshake:
// `h2` to a node:http2 server fed the TLS socket, anything else to the https server's own
// HTTP/1.1 connection handling, untouched (its header and request timeouts, maxHeaderSize and
// duplicate-Host refusal stay as they are). Per session: the limits Node does not enforce itself
// (reset and control-frame rates), idle timeouts, and the hooks revocation, reload and shutdown use.

import { constants, createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { RequestSteps } from '../proxy/request.js';
import { connStateOf } from '../tls/connections.js';
import { admitStream } from './streams.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM } = constants;

export type Http2Limits = Config['limits']['http2'];

/** Options for the https server when HTTP/2 is on: offer h2 first, HTTP/1.1 beside it. */
export const ALPN = { ALPNProtocols: ['h2', 'http/1.1'] };

/** Events counted per session and per second; past the limit the session gets ENHANCE_YOUR_CALM. */
class RateWindow {
  #start = 0;
  #count = 0;
  constructor(readonly max: number) {}
  /** Counts one event; true when the limit is passed in the current second. */
  hit(now: number): boolean {
    if (now - this.#start >= 1000) {
      this.#start = now;
      this.#count = 0;
    }
    return ++this.#count > this.max;
  }
}

export class Http2Sessions {
  readonly #server: Http2Server;
  readonly #limits: Http2Limits;
  readonly #log: Logger;

  constructor(tls: TlsServer, steps: RequestSteps, limits: Http2Limits, log: Logger) {
    this.#limits = limits;
    this.#log = log;
    this.#server = createServer({
      settings: {
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxHeaderListSize: limits.maxHeaderListSize,
        enablePush: false,
        // Extended CONNECT (WebSocket over HTTP/2, RFC 8441) is not offered.
        enableConnectProtocol: false,
      },
      maxHeaderListPairs: limits.maxHeaderPairs,
      maxSessionInvalidFrames: limits.maxInvalidFrames,
      maxSessionRejectedStreams: limits.maxRejectedStreams,
    });
    this.#server.on('session', this.#onSession);
    // Admission waits for the rest of the read: a stream opened and reset in the same packet
    // (rapid reset) is seen closed and never forwarded. CONNECT comes the same way, to be refused.
    const onStream = (req: Http2ServerRequest, res: Http2ServerResponse) => void setImmediate(admitStream, steps, req, res);
    this.#server.on('request', onStream);
    this.#server.on('connect', onStream);
    this.#server.on('sessionError', (err: Error) => this.#log.debug({ event: 'http2_session_error', err: err.message }, 'HTTP/2 session error'));
    routeByAlpn(tls, this.#server);
  }

  #onSession = (session: ServerHttp2Session): void => {
    const limits = this.#limits;
    const socket = session.socket as TLSSocket;
    // The HTTP/1.1 path's socket error handler is not installed on an h2 socket; the session reports.
    socket.on('error', () => {});
    const conn = connStateOf(socket);
    if (conn !== undefined) {
      conn.session = {
        // destroy() without an error sends GOAWAY NO_ERROR, then closes the socket.
        terminate: () => session.destroy(),
        drain: () => session.close(),
      };
    }
    const resets = new RateWindow(limits.maxResetsPerSecond);
    const control = new RateWindow(limits.maxControlFramesPerSecond);
    const calm = (kind: string) => {
      if (session.destroyed) return;
      this.#log.warn({ event: 'http2_flood', kind, remote: conn?.client?.address ?? socket.remoteAddress, subject: conn?.identity?.subject }, `HTTP/2 ${kind} rate over the limit: GOAWAY ENHANCE_YOUR_CALM`);
      session.destroy(new Error(`HTTP/2 ${kind} flood`), NGHTTP2_ENHANCE_YOUR_CALM);
    };
    session.on('ping', () => control.hit(Date.now()) && calm('ping'));
    session.on('remoteSettings', () => control.hit(Date.now()) && calm('settings'));
    session.on('stream', (stream: ServerHttp2Stream) => {
      stream.setTimeout(limits.streamIdleTimeout, () => stream.close(NGHTTP2_CANCEL));
      stream.once('close', () => {
        if (stream.rstCode !== NGHTTP2_NO_ERROR && resets.hit(Date.now())) calm('stream reset');
      });
    });
    session.setTimeout(limits.sessionIdleTimeout, () => session.destroy());
  };
}

/**
 * Puts a router in place of the https server's HTTP/1.1 connection listener (the one
 * https.createServer registered): h2 sockets go to the HTTP/2 server, the others where they
 * always went. Registered after certgate's own secureConnection listener, so that a session
 * starts on a connection whose state (identity, refusal) is already set.
 */
function routeByAlpn(tls: TlsServer, h2: Http2Server): void {
  const [http1] = tls.listeners('secureConnection') as ((s: TLSSocket) => void)[];
  if (http1 === undefined) throw new Error('https server without its connection listener');
  tls.removeListener('secureConnection', http1);
  tls.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') {
      if (!socket.destroyed) h2.emit('connection', socket);
    } else http1.call(tls, socket);
  });
}
