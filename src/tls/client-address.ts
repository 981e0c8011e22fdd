// Who the client is, network-wise: the address a PROXY protocol header named (behind a load
// balancer), else the TCP peer. Everything that logs, forwards or counts a client address reads it
// here (ConnState.client once a connection is admitted; clientAddressOf(socket) before that), never
// socket.remoteAddress, which behind a balancer is the balancer.

import type { Socket } from 'node:net';
import type { ClientAddress } from './proxy-protocol.js';

export type { ClientAddress } from './proxy-protocol.js';

const kClient = Symbol('certgate.clientAddress');
type Tagged = Socket & { [kClient]?: ClientAddress; _parent?: Tagged };

/** The first-bytes listener records the address once per accepted connection, before TLS. */
export function setClientAddress(accepted: Socket, client: ClientAddress): void {
  (accepted as Tagged)[kClient] = client;
}

/**
 * The client's address, for the accepted socket or the TLS socket over it (Node keeps the socket a
 * TLSSocket wraps as `_parent`). Undefined only for a socket that was never tagged and no longer
 * knows its peer (destroyed).
 */
export function clientAddressOf(socket: Socket): ClientAddress | undefined {
  const s = socket as Tagged;
  return s[kClient] ?? s._parent?.[kClient] ?? peerAddressOf(socket);
}

/** The TCP peer itself (the balancer, behind one). */
export function peerAddressOf(socket: Socket): ClientAddress | undefined {
  const address = socket.remoteAddress;
  if (address === undefined) return undefined;
  return { address, port: socket.remotePort ?? 0, family: socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4' };
}
