// The decision with its reasons, for `certgate explain` and `certgate test`: which routes matched
// the request and why the others did not, and for the chosen route every entry with each field
// that matched or failed. The decision itself comes from decide() (the proxy's code); the trace
// asks the same compiled checks one by one, and refuses to answer if the two ever disagree.

import type { Identity } from '../identity/types.js';
import type { CompiledEntry, CompiledLists, CompiledPolicy, CompiledRoute, Decision } from './compile.js';
import { decide, hostMatches, methodMatches, misdirected, pathMatches, verdictAllows, verdictOf, verdictRule, type RequestFacts } from './decide.js';

export interface CheckTrace {
  readonly field: string;
  readonly patterns: readonly string[];
  /** The identity's values of the field. */
  readonly values: readonly string[];
  /** The values that matched a pattern. */
  readonly matching: readonly string[];
  readonly ok: boolean;
}

export interface EntryTrace {
  readonly list: 'allow' | 'deny';
  readonly index: number;
  readonly name: string | undefined;
  readonly label: string;
  readonly matched: boolean;
  /** This entry made the decision. */
  readonly decided: boolean;
  readonly checks: readonly CheckTrace[];
}

export interface RouteTrace {
  readonly index: number;
  readonly name: string;
  readonly state: 'matched' | 'no match' | 'not tried';
  /** Why it did not match. */
  readonly why: readonly string[];
}

export interface ListsTrace {
  readonly deny: readonly EntryTrace[];
  readonly allow: readonly EntryTrace[];
  readonly allowed: boolean;
  /** The entry that decided, or undefined: no allow entry matched. */
  readonly rule: CompiledEntry | undefined;
}

export interface PolicyTrace {
  readonly routes: readonly RouteTrace[];
  readonly decision: Decision;
  /** The chosen route's lists (undefined without a route, or when Host and SNI disagree). */
  readonly lists: ListsTrace | undefined;
  /** The chosen route's shadow lists, when it has them. */
  readonly shadow: ListsTrace | undefined;
}

function list(values: readonly string[]): string {
  return `[${values.join(', ')}]`;
}

/** Why a route does not match the request: one reason per part (method, host, path). */
export function routeMismatch(r: CompiledRoute, req: RequestFacts): string[] {
  const why: string[] = [];
  if (!methodMatches(r, req.method)) why.push(`method ${req.method} is not one of ${list([...r.methods!])}`);
  if (!hostMatches(r, req.host)) {
    const hosts = list(r.config.match.host ?? []);
    why.push(req.host === undefined ? `no Host; the route needs one of ${hosts}` : `host ${req.host} is not one of ${hosts}`);
  }
  if (!pathMatches(r.prefix, req.path)) why.push(`path ${req.path} is not under ${r.prefix}`);
  return why;
}

function traceEntry(e: CompiledEntry, id: Identity, decided: CompiledEntry | undefined): EntryTrace {
  const checks = e.checks.map((c): CheckTrace => {
    const values = c.values(id);
    const matching = values.filter((v) => c.matchValue(v));
    return { field: c.field, patterns: c.patterns, values, matching, ok: c.test(id) };
  });
  const matched = checks.length > 0 && checks.every((c) => c.ok);
  if (matched !== e.matches(id)) throw new Error(`internal error: the trace of ${e.list}[${e.index}] disagrees with the policy engine`);
  return { list: e.list, index: e.index, name: e.name, label: e.label, matched, decided: e === decided, checks };
}

/** Every entry of both lists, with the verdict the engine (verdictOf) reaches. */
export function traceLists(lists: CompiledLists, id: Identity): ListsTrace {
  const v = verdictOf(lists, id);
  const rule = verdictRule(lists, v);
  return {
    deny: lists.deny.map((e) => traceEntry(e, id, rule)),
    allow: lists.allow.map((e) => traceEntry(e, id, rule)),
    allowed: verdictAllows(v),
    rule,
  };
}

export function traceDecision(id: Identity, req: RequestFacts, policy: CompiledPolicy): PolicyTrace {
  const decision = decide(id, req, policy);
  let chosen: CompiledRoute | undefined;
  const routes = policy.routes.map((r): RouteTrace => {
    if (chosen !== undefined) return { index: r.index, name: r.name, state: 'not tried', why: [] };
    const why = routeMismatch(r, req);
    if (why.length === 0) chosen = r;
    return { index: r.index, name: r.name, state: why.length === 0 ? 'matched' : 'no match', why };
  });
  if (chosen !== decision.route) throw new Error('internal error: the route trace disagrees with the policy engine');
  const lists = chosen === undefined || misdirected(chosen, req) ? undefined : traceLists(chosen, id);
  if (lists !== undefined && (lists.allowed !== decision.allow || lists.rule !== decision.rule)) {
    throw new Error('internal error: the entry trace disagrees with the policy engine');
  }
  const shadow = lists !== undefined && chosen!.shadow !== undefined ? traceLists(chosen!.shadow, id) : undefined;
  return { routes, decision, lists, shadow };
}
