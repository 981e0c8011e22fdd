// The policy decision: a pure function of (identity, request facts, compiled policy).
// No I/O, no clock, no await. Results per (identity, route) are memoised in the policy because
// a certificate's permissions cannot change while the compiled policy stays the same.

import type { Identity } from '../identity/types.js';
import type { CompiledPolicy, CompiledRoute, Decision } from './compile.js';

export interface RequestFacts {
  readonly method: string;
  /** Lowercased Host without port, or undefined when absent. */
  readonly host: string | undefined;
  /** The path without the query string, already checked to be canonical. */
  readonly path: string;
  /** Lowercased TLS SNI, or undefined (IP literal, or none sent). */
  readonly sni: string | undefined;
}

export type { Decision } from './compile.js';

const NOT_FOUND: Decision = Object.freeze({ allow: false, code: 'route_not_found', route: undefined });

function pathMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47; /* '/' */
}

function firstSegmentOf(path: string): string {
  const end = path.indexOf('/', 1);
  return end < 0 ? path.slice(1) : path.slice(1, end);
}

/** First route whose host, path prefix and method match; identity plays no part here. */
export function matchRoute(policy: CompiledPolicy, req: RequestFacts): CompiledRoute | undefined {
  const candidates = policy.bySegment.get(firstSegmentOf(req.path)) ?? policy.rootRoutes;
  for (let i = 0; i < candidates.length; i++) {
    const r = candidates[i]!;
    if (r.methods !== undefined && !r.methods.has(req.method)) continue;
    if (r.hostMatch !== undefined && (req.host === undefined || !r.hostMatch(req.host))) continue;
    if (pathMatches(r.prefix, req.path)) return r;
  }
  return undefined;
}

/** deny wins over allow; no allow entry matching means denied (default deny). */
function identityAllowed(route: CompiledRoute, id: Identity): boolean {
  for (const d of route.deny) if (d(id)) return false;
  for (const a of route.allow) if (a(id)) return true;
  return false;
}

export function decide(id: Identity, req: RequestFacts, policy: CompiledPolicy): Decision {
  const route = matchRoute(policy, req);
  if (route === undefined) return NOT_FOUND;
  // A route bound to a host must be reached on a connection for that host: Host and SNI agree.
  if (route.hostMatch !== undefined && req.sni !== undefined && req.host !== req.sni) {
    return route.misdirected;
  }
  let verdicts = policy.verdicts.get(id);
  if (verdicts === undefined) policy.verdicts.set(id, (verdicts = new Uint8Array(policy.routes.length)));
  let v = verdicts[route.index]!;
  if (v === 0) verdicts[route.index] = v = identityAllowed(route, id) ? 1 : 2;
  return v === 1 ? route.allowed : route.denied;
}
