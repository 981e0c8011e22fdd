// One HTTP/2 stream into the same request steps as an HTTP/1.1 request: its headers become the
// raw header list the steps read (`:authority` as Host, no pseudo-headers, cookie crumbs joined),
// then RequestSteps.handle does connection refusal, revocation, path and Host hygiene, admission,
// identity headers, forwarding and the access line. Node's compatibility request and response
// carry the surface the steps use (url, method, rawHeaders, socket, a readable body; writeHead
// with a raw header list, write, end, destroy, headersSent, writableLength, 'drain', 'close').

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { RequestContext } from '../proxy/context.js';
import { answerAsGrpc } from '../proxy/error-response.js';
import type { RequestSteps } from '../proxy/request.js';
import { connStateOf } from '../tls/connections.js';
import { isGrpcRequest } from './grpc.js';

export function admitStream(steps: RequestSteps, req: Http2ServerRequest, res: Http2ServerResponse): void {
  const stream = req.stream;
  // Reset by the client before admission: nothing was decided, nothing is forwarded or logged.
  if (stream.closed || stream.destroyed) return;
  const headers = requestHeaders(req.rawHeaders);
  const res1 = res as unknown as ServerResponse;
  if (isGrpcRequest(headers)) answerAsGrpc(res1, stream);
  const conn = connStateOf(stream.session!.socket);
  const ctx = new RequestContext(steps.state.runtime, conn, req as unknown as IncomingMessage, res1, steps.nextRequestId(), 'h2', headers);
  ctx.lengthless = !stream.endAfterHeaders;
  // A plain CONNECT has no :path to authorise (and extended CONNECT is not offered).
  if (req.method === 'CONNECT') return steps.refuse(ctx, 'bad_request', 'CONNECT is not supported over HTTP/2', false);
  steps.handle(ctx);
}

/**
 * The HTTP/2 request headers as an HTTP/1.1 raw list. `:authority` becomes `host`; a `host`
 * header that differs from it is kept as a second Host, which the request steps refuse (RFC 9113
 * 8.3.1), like a duplicate Host in HTTP/1.1. Cookie crumbs are joined with "; " (RFC 9113 8.2.3).
 */
export function requestHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  let authority: string | undefined;
  let cookie: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') authority = value;
      continue;
    }
    if (name === 'cookie') cookie = cookie === undefined ? value : cookie + '; ' + value;
    else if (name !== 'host' || value !== authority) out.push(name, value);
  }
  if (authority !== undefined) {
    // Pseudo-headers come first, so a host header equal to :authority was skipped above.
    out.push('host', authority);
  }
  if (cookie !== undefined) out.push('cookie', cookie);
  return out;
}
