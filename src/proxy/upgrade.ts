// Upgrade requests (WebSocket): the same admission as every request, then http-proxy with only
// the sanitised headers. Refusals are written on the raw socket by the one error writer.

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ErrorCodes, Refusal, type ErrorCode } from '../errors.js';
import type { RevocationStatus } from '../revocation/types.js';
import { refusalFromVerifyError } from '../tls/authorization.js';
import { connStateOf } from '../tls/connections.js';
import { EST } from './admission.js';
import { RequestContext } from './context.js';
import { rawErrorResponse } from './error-response.js';
import { upstreamHeaders } from './headers.js';
import { readRequestFacts } from './request-facts.js';
import { identityHeadersOf, isCertless, type RequestSteps } from './request.js';
import { admitsCertless } from '../policy/certless.js';
import type { Identity } from '../identity/types.js';
import type { ConnState } from '../tls/connections.js';
import { proxyWebSocket } from './websocket.js';
import type { Runtime } from '../runtime.js';
import type { Logger } from 'pino';

export function handleUpgrade(steps: RequestSteps, rt: Runtime, log: Logger, req: IncomingMessage, socket: Socket, head: Buffer): void {
  const conn = connStateOf(socket);
  const ctx = new RequestContext(rt, conn, req, undefined, steps.nextRequestId(), 'websocket');
  if (conn !== undefined) conn.upgraded = true;
  const refuse = (code: ErrorCode, message?: string) => {
    socket.end(rawErrorResponse(code, ctx.requestId, message));
    ctx.decision = code;
    ctx.status = ErrorCodes[code].status;
    steps.finish(ctx);
  };
  // A connection refused after the handshake (revoked, CA removed, weak after a reload) stays refused.
  if (conn === undefined || conn.identity === undefined || conn.refusal !== undefined) {
    // No certificate at all: the routes that admit anonymous or API-key clients decide, as for plain requests.
    if (conn !== undefined && isCertless(conn) && admitsCertless(rt.policy)) {
      readRequestFacts(ctx, req.rawHeaders, conn);
      steps.checkKey(ctx);
      return proceed(conn, undefined, undefined);
    }
    if (conn?.refusalPending === true) steps.state.reportRefusal(socket as TLSSocket, conn);
    const r = conn?.refusal ?? refusalFromVerifyError(undefined, false);
    return refuse(r.code, r.message);
  }
  const id = (ctx.identity = conn.identity);
  if (Date.now() >= conn.validUntil) return refuse('certificate_expired');
  readRequestFacts(ctx, req.rawHeaders, conn);
  function proceed(conn: ConnState, id: Identity | undefined, rev: RevocationStatus | undefined): void {
    const a = steps.admit(ctx, conn, id, rev);
    if (a instanceof Refusal) {
      ctx.matched = a.route;
      if (a.code === 'certificate_required' && conn.refusalPending === true) steps.state.reportRefusal(socket as TLSSocket, conn);
      return refuse(a.code, a.message);
    }
    if (a === EST) return refuse('bad_request', 'EST does not take upgrades');
    const route = (ctx.matched = a);
    if (!route.config.websocket) return refuse('bad_request', 'this route does not accept upgrades');
    const group = rt.upstreams[route.index]!;
    const target = group.pick(Date.now());
    if (target === undefined) return refuse('upstream_unavailable');
    const headers = upstreamHeaders(req.rawHeaders, identityHeadersOf(ctx, id), rt.config.headers, ctx.remote, ctx.requestId);
    proxyWebSocket(req, socket, head, target, headers, (err) => {
      if (err !== undefined) {
        group.markDown(target, Date.now());
        log.warn({ event: 'upstream_error', code: 'upstream_unavailable', reqId: ctx.requestId, route: route.name }, `upstream ${target.origin} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
        return refuse('upstream_unavailable');
      }
      ctx.status = 101;
      steps.finish(ctx);
    });
  }
  const rev = steps.revocationOf(conn, id);
  if (rev !== undefined && 'then' in rev) rev.then((s) => proceed(conn, id, s), () => refuse('revocation_unknown'));
  else proceed(conn, id, rev);
}
