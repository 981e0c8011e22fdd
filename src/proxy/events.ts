// What the proxy tells the rest of certgate (metrics, inventory) about connections, requests and
// reloads. Its own module so that lifecycle/ and server.ts both import it (no cycle).

import type { TLSSocket } from 'node:tls';
import type { ErrorCode } from '../errors.js';
import type { Identity } from '../identity/types.js';
import type { RevocationStatus } from '../revocation/types.js';
import type { Runtime } from '../runtime.js';
import type { PeerRefusal } from '../tls/authorization.js';

/** Hooks for metrics and the inventory; every one is optional and cheap when absent. */
export interface Observer {
  handshakeRefused?(r: PeerRefusal, socket: TLSSocket): void;
  /** A client completed the handshake and closed without a request (a scanner, a health check). */
  handshakeClosed?(socket: TLSSocket): void;
  connectionAccepted?(id: Identity, resumed: boolean): void;
  requestDone?(e: RequestEvent): void;
  revocationUnknown?(id: Identity, status: RevocationStatus): void;
  reloaded?(ok: boolean, rt: Runtime | undefined, errors: string[]): void;
}

/** One finished request (the request context itself, read only). */
export interface RequestEvent {
  readonly identity: Identity | undefined;
  /** The client's address (the PROXY header's behind a load balancer); '' if unknown. */
  readonly remote: string;
  /** The name of the route the request matched (also when it was refused on it). */
  readonly route: string | undefined;
  readonly status: number;
  readonly decision: 'allow' | ErrorCode;
  readonly durationMs: number;
  readonly upstreamMs: number | undefined;
  /** A request without a certificate that presented a key of the key file: its name. */
  readonly apiKey?: string | undefined;
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly errors: string[];
  readonly generation: number;
}
