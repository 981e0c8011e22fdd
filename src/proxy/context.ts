// The one object a request carries through the steps (facts -> admission -> forward or refuse ->
// access log) instead of positional lists. A class with every field set in the constructor, so
// that every request context has the same hidden class.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors.js';
import type { Identity } from '../identity/types.js';
import type { KeyAnswer } from '../policy/certless.js';
import type { CompiledRoute } from '../policy/compile.js';
import type { Runtime } from '../runtime.js';
import { clientAddressOf } from '../tls/client-address.js';
import type { ConnState } from '../tls/connections.js';
import type { RequestEvent } from './events.js';

/** `h2`: an HTTP/2 stream, through Node's compatibility request and response (src/http2/streams.ts). */
export type Protocol = 'http/1.1' | 'websocket' | 'h2';

export class RequestContext implements RequestEvent {
  /** Read once at the start: a reload mid-request does not change this request. */
  readonly rt: Runtime;
  readonly conn: ConnState | undefined;
  readonly req: IncomingMessage;
  /** Undefined for upgrades (they answer on the raw socket). */
  readonly res: ServerResponse | undefined;
  readonly requestId: string;
  readonly started: number;
  readonly protocol: Protocol;
  /** The client's address (ConnState.client: a PROXY header's behind a load balancer); '' if unknown. */
  readonly remote: string;
  /** The request's headers as a flat raw list; for HTTP/2, `:authority` as `host` and no pseudo-headers. */
  readonly headers: readonly string[];
  identity: Identity | undefined = undefined;
  /** Without a certificate: what the API key header held (undefined: no key header). */
  key: KeyAnswer | undefined = undefined;

  // Request facts, read in one pass (request-facts.ts).
  readonly method: string;
  readonly url: string;
  /** Canonical path without the query, or undefined when the path is not canonical. */
  path: string | undefined = undefined;
  /** Lowercased Host without port; the TLS server name when absent; undefined when neither. */
  host: string | undefined = undefined;
  /** Duplicate or malformed Host header. */
  badHost = false;
  readonly sni: string | undefined;
  contentLength: string | undefined = undefined;
  chunked = false;
  /** A Transfer-Encoding other than exactly `chunked`: refused, never forwarded. */
  badEncoding: string | undefined = undefined;
  /** HTTP/2: a body without content-length, ended by the stream; counted against the limit like a chunked one. */
  lengthless = false;

  // Outcome.
  /** The route matched (also when the request was refused on it). */
  matched: CompiledRoute | undefined = undefined;
  decision: 'allow' | ErrorCode = 'allow';
  status = 0;
  bytes = 0;
  durationMs = 0;
  upstreamMs: number | undefined = undefined;
  error: Error | undefined = undefined;
  /** The body passed the route's limit while streaming. */
  tooLarge = false;

  constructor(rt: Runtime, conn: ConnState | undefined, req: IncomingMessage, res: ServerResponse | undefined, requestId: string, protocol: Protocol, headers: readonly string[] = req.rawHeaders) {
    this.rt = rt;
    this.conn = conn;
    this.req = req;
    this.res = res;
    this.requestId = requestId;
    this.started = performance.now();
    this.protocol = protocol;
    this.remote = (conn?.client ?? clientAddressOf(req.socket))?.address ?? '';
    this.headers = headers;
    this.method = req.method ?? 'GET';
    this.url = req.url ?? '/';
    this.sni = conn?.sni;
  }

  get route(): string | undefined {
    return this.matched?.name;
  }

  /** The name of a key of the key file that the request presented (valid or expired). */
  apiKey: string | undefined = undefined;
}
