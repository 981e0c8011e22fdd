// The facts admission needs from a request, read in one pass over the raw headers (Node's lazily
// built req.headers object is never needed): canonical path, Host, body framing.

import type { ConnState } from '../tls/connections.js';
import type { RequestContext } from './context.js';
import { canonicalPath, hostOnly } from './hygiene.js';

export function readRequestFacts(ctx: RequestContext, raw: readonly string[], conn: ConnState): void {
  ctx.path = canonicalPath(ctx.url);
  let host: string | undefined;
  let duplicateHost = false;
  let encoding: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length === 4) {
      if (n.toLowerCase() === 'host') {
        if (host !== undefined) duplicateHost = true;
        host = raw[i + 1]!;
      }
    } else if (n.length === 14) {
      if (n.toLowerCase() === 'content-length') ctx.contentLength = raw[i + 1]!;
    } else if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') encoding = raw[i + 1]!;
  }
  ctx.chunked = encoding !== undefined;
  // Anything but plain `chunked` (xchunked, gzip, a list) frames the body in a way the parser
  // and the upstream may read differently: a smuggling vector, refused.
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'chunked') ctx.badEncoding = encoding;
  if (duplicateHost) {
    ctx.badHost = true;
    return;
  }
  // Without a Host header (HTTP/1.0) the TLS server name stands in for it.
  if (host === undefined) {
    ctx.host = ctx.sni;
    return;
  }
  // Clients repeat the same Host on every request: normalise it once per connection.
  if (conn.hostRaw !== host) {
    conn.hostRaw = host;
    conn.hostNorm = hostOnly(host);
  }
  if (conn.hostNorm === undefined) ctx.badHost = true;
  else ctx.host = conn.hostNorm === '' ? ctx.sni : conn.hostNorm;
}
