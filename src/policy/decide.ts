// The policy decision: a pure function of (identity, request facts, compiled policy).
// No I/O, no clock, no await. Results per (identity, route) are memoised in the policy because
// a certificate's permissions cannot change while the compiled policy stays the same.

import type { Identity } from '../identity/types.js';
import type { CompiledLists, CompiledPolicy, CompiledRoute, Decision } from './compile.js';

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

const NOT_FOUND: Decision = Object.freeze({ allow: false, code: 'route_not_found', route: undefined, rule: undefined });

export function pathMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47; /* '/' */
}

export function methodMatches(r: CompiledRoute, method: string): boolean {
  return r.methods === undefined || r.methods.has(method);
}

export function hostMatches(r: CompiledRoute, host: string | undefined): boolean {
  return r.hostMatch === undefined || (host !== undefined && r.hostMatch(host));
}

/** A host-bound route must be reached on a connection for that host: Host and SNI agree. */
export function misdirected(r: CompiledRoute, req: RequestFacts): boolean {
  return r.hostMatch !== undefined && req.sni !== undefined && req.host !== req.sni;
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
    if (methodMatches(r, req.method) && hostMatches(r, req.host) && pathMatches(r.prefix, req.path)) return r;
  }
  return undefined;
}

// A verdict is one number, so that the memo is a typed array: 0 not known yet, 1 refused because
// no allow entry matched, 2+2i refused by deny[i], 3+2i allowed by allow[i]. A shadow verdict
// may carry SHADOW_LOGGED once its difference from the real one has been logged.
export const NO_ALLOW_MATCHED = 1;
export const SHADOW_LOGGED = 0x80000000;

/** deny wins over allow; no allow entry matching means refused (default deny). */
export function verdictOf(lists: CompiledLists, id: Identity): number {
  const deny = lists.deny;
  for (let i = 0; i < deny.length; i++) if (deny[i]!.matches(id)) return 2 + 2 * i;
  const allow = lists.allow;
  for (let i = 0; i < allow.length; i++) if (allow[i]!.matches(id)) return 3 + 2 * i;
  return NO_ALLOW_MATCHED;
}

export function verdictAllows(v: number): boolean {
  const x = v & ~SHADOW_LOGGED;
  return x >= 3 && (x & 1) === 1;
}

/** The entry a verdict names (of `lists`), or undefined for "no allow entry matched". */
export function verdictRule(lists: CompiledLists, v: number) {
  const x = (v & ~SHADOW_LOGGED) >>> 0;
  if (x < 2) return undefined;
  return (x & 1) === 1 ? lists.allow[(x - 3) >> 1] : lists.deny[(x - 2) >> 1];
}

/** This identity's memo row under this policy (created on first sight). */
export function memoRow(policy: CompiledPolicy, id: Identity): Uint32Array {
  let row = policy.verdicts.get(id);
  if (row === undefined) policy.verdicts.set(id, (row = new Uint32Array(policy.slots)));
  return row;
}

/** The route's verdict for the identity, memoised in `row`. */
export function routeVerdict(row: Uint32Array, route: CompiledRoute, id: Identity): number {
  let v = row[route.index]!;
  if (v === 0) row[route.index] = v = verdictOf(route, id);
  return v;
}

/** The route's shadow verdict (with SHADOW_LOGGED if set), memoised; the route must have a shadow. */
export function shadowVerdict(row: Uint32Array, route: CompiledRoute, id: Identity): number {
  let v = row[route.shadowSlot]!;
  if (v === 0) row[route.shadowSlot] = v = verdictOf(route.shadow!, id);
  return v;
}

function decisionOf(route: CompiledRoute, v: number): Decision {
  if (v === NO_ALLOW_MATCHED) return route.denied;
  return (v & 1) === 1 ? route.allowedBy[(v - 3) >> 1]! : route.deniedBy[(v - 2) >> 1]!;
}

export function decide(id: Identity, req: RequestFacts, policy: CompiledPolicy): Decision {
  const route = matchRoute(policy, req);
  if (route === undefined) return NOT_FOUND;
  if (misdirected(route, req)) return route.misdirected;
  return decisionOf(route, routeVerdict(memoRow(policy, id), route, id));
}
