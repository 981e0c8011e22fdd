// Compile the route table once per config load: globs become matchers, routes are indexed by
// their first path segment so that a request looks at a handful of candidates, not every route.
// An allow/deny entry is a list of named checks: the proxy asks the entry as a whole, explain and
// test ask each check (trace.ts), so both run the same matchers.

import type { Config, MatcherSpec, RouteConfig } from '../config/types.js';
import type { Identity } from '../identity/types.js';
import { compileCertless, type CertlessAccess, type CertlessRefusal } from './certless.js';
import { compileAny, type GlobFlavour, type StringMatcher } from './glob.js';

export type IdentityMatcher = (id: Identity) => boolean;

/** One condition of an entry: a certificate field and the patterns it must match. */
export interface Check {
  /** The entry key it comes from: `cn`, `spiffe`, ... */
  readonly field: string;
  readonly patterns: readonly string[];
  readonly test: IdentityMatcher;
  /** The identity's values of the field (for explain); never called by the proxy. */
  readonly values: (id: Identity) => readonly string[];
  /** Whether one value matches the patterns (for explain). */
  readonly matchValue: StringMatcher;
}

export type ListName = 'allow' | 'deny';

/** One allow/deny entry: every check must pass. */
export interface CompiledEntry {
  readonly list: ListName;
  readonly index: number;
  readonly name: string | undefined;
  /** `name`, else the index: the `rule` label of certgate_policy_rule_hits_total. */
  readonly label: string;
  readonly checks: readonly Check[];
  readonly matches: IdentityMatcher;
}

/** An allow list and a deny list (a route's policy, or its shadow). */
export interface CompiledLists {
  readonly allow: readonly CompiledEntry[];
  readonly deny: readonly CompiledEntry[];
}

export type RefusalCode = 'route_not_found' | 'identity_not_allowed' | 'misdirected_request' | CertlessRefusal;

export type Decision =
  | { readonly allow: true; readonly route: CompiledRoute; readonly rule: CompiledEntry }
  | {
      readonly allow: false;
      readonly code: RefusalCode;
      readonly route: CompiledRoute | undefined;
      /** The deny entry that matched; undefined when no allow entry did (or no route/host). */
      readonly rule: CompiledEntry | undefined;
    };

export interface CompiledRoute extends CompiledLists {
  readonly index: number;
  readonly name: string;
  readonly config: RouteConfig;
  readonly hostMatch: StringMatcher | undefined;
  /** '/' or a prefix without trailing slash, matched on segment boundaries. */
  readonly prefix: string;
  readonly methods: ReadonlySet<string> | undefined;
  readonly shadow: CompiledLists | undefined;
  /** Index of this route's shadow verdict in a memo row; -1 without shadow. */
  readonly shadowSlot: number;
  /** Decisions are preallocated (one per entry) so that deciding allocates nothing. */
  readonly allowedBy: readonly Decision[];
  readonly deniedBy: readonly Decision[];
  /** Refused because no allow entry matched. */
  readonly denied: Decision;
  readonly misdirected: Decision;
  /**
   * Plain counters the proxy bumps per request and metrics hand to prom-client when scraped:
   * deny entries, then allow entries, then the shadow results (see SHADOW_RESULTS).
   */
  readonly counts: Float64Array;
  /** Who may come without a certificate (allow entries `anonymous`, `apiKey`). */
  readonly certless: CertlessAccess;
}

export interface CompiledPolicy {
  readonly routes: readonly CompiledRoute[];
  /** Candidate routes (in config order) for a first path segment. */
  readonly bySegment: ReadonlyMap<string, readonly CompiledRoute[]>;
  /** Candidates for a first segment no route names: routes with prefix '/'. */
  readonly rootRoutes: readonly CompiledRoute[];
  /** Length of a memo row: one verdict per route, then one per route with a shadow. */
  readonly slots: number;
  /** Memo of identity -> verdict per slot (decide.ts encodes them), for this policy only. */
  readonly verdicts: WeakMap<Identity, Uint32Array>;
}

/** certgate_policy_shadow_total `result` values, in `counts` order after the entries. */
export const SHADOW_RESULTS = ['agree', 'would_deny', 'would_allow'] as const;
export type ShadowResult = (typeof SHADOW_RESULTS)[number];

const FLAVOUR: Record<Exclude<keyof MatcherSpec, 'name'>, GlobFlavour> = {
  cn: 'plain',
  o: 'plain',
  ou: 'plain',
  dns: 'dns',
  uri: 'path',
  spiffe: 'path',
  email: 'email',
  fingerprint: 'plain',
  serial: 'plain',
  issuer: 'plain',
  subject: 'plain',
};

function anyOf(values: readonly string[], m: StringMatcher): boolean {
  for (let i = 0; i < values.length; i++) if (m(values[i]!)) return true;
  return false;
}

const NONE: readonly string[] = Object.freeze([]);

function fieldCheck(field: keyof typeof FLAVOUR, patterns: readonly string[]): Check {
  const m = compileAny(patterns, FLAVOUR[field]);
  const base = { field, patterns: Object.freeze([...patterns]), matchValue: m };
  switch (field) {
    case 'cn':
    case 'o':
    case 'ou':
    case 'dns':
    case 'uri':
    case 'email':
      return { ...base, test: (id) => anyOf(id[field], m), values: (id) => id[field] };
    case 'spiffe':
      return { ...base, test: (id) => id.spiffe !== undefined && m(id.spiffe), values: (id) => (id.spiffe === undefined ? NONE : [id.spiffe]) };
    case 'fingerprint':
    case 'serial':
    case 'issuer':
    case 'subject':
      return { ...base, test: (id) => m(id[field]), values: (id) => [id[field]] };
  }
}

/** The checks of one entry, in the order its fields are written; `name` is a label, not a check. */
export function compileChecks(spec: MatcherSpec): Check[] {
  const checks: Check[] = [];
  for (const field of Object.keys(spec) as (keyof MatcherSpec)[]) {
    const patterns = spec[field];
    // `name` is a label; `anonymous` and `apiKey` entries match no certificate (certless.ts).
    if (field === 'name' || patterns === undefined || !(field in FLAVOUR) || typeof patterns === 'string') continue;
    checks.push(Object.freeze(fieldCheck(field, patterns)));
  }
  return checks;
}

/** The one matcher of a list of checks: all must pass. */
export function allOf(checks: readonly Check[]): IdentityMatcher {
  // An empty entry is refused by config validation; if one slips through it matches nothing.
  if (checks.length === 0) return () => false;
  if (checks.length === 1) return checks[0]!.test;
  return (id) => {
    for (let i = 0; i < checks.length; i++) if (!checks[i]!.test(id)) return false;
    return true;
  };
}

/** One allow/deny entry: every field present must match (a multi-valued field: any value). */
export function compileMatcher(spec: MatcherSpec): IdentityMatcher {
  return allOf(compileChecks(spec));
}

function compileEntries(list: ListName, specs: readonly MatcherSpec[]): readonly CompiledEntry[] {
  return Object.freeze(
    specs.map((spec, index) => {
      const checks = Object.freeze(compileChecks(spec));
      return Object.freeze({ list, index, name: spec.name, label: spec.name ?? String(index), checks, matches: allOf(checks) });
    }),
  );
}

export function compileLists(l: { readonly allow: readonly MatcherSpec[]; readonly deny: readonly MatcherSpec[] }): CompiledLists {
  return Object.freeze({ allow: compileEntries('allow', l.allow), deny: compileEntries('deny', l.deny) });
}

function firstSegment(prefix: string): string {
  const end = prefix.indexOf('/', 1);
  return end < 0 ? prefix.slice(1) : prefix.slice(1, end);
}

export function compilePolicy(config: Pick<Config, 'routes'>): CompiledPolicy {
  let shadows = 0;
  const routes: CompiledRoute[] = config.routes.map((r, index) => {
    const prefix = r.match.pathPrefix ?? '/';
    const lists = compileLists(r);
    const shadow = r.shadow === undefined ? undefined : compileLists(r.shadow);
    const route = {
      index,
      name: r.name,
      config: r,
      hostMatch: r.match.host && r.match.host.length > 0 ? compileAny(r.match.host, 'dns') : undefined,
      prefix: prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix,
      methods: r.match.methods && r.match.methods.length > 0 ? new Set(r.match.methods) : undefined,
      allow: lists.allow,
      deny: lists.deny,
      shadow,
      shadowSlot: shadow === undefined ? -1 : config.routes.length + shadows++,
      counts: new Float64Array(lists.deny.length + lists.allow.length + (shadow === undefined ? 0 : SHADOW_RESULTS.length)),
    } as { -readonly [K in keyof CompiledRoute]: CompiledRoute[K] };
    route.allowedBy = Object.freeze(lists.allow.map((rule) => Object.freeze({ allow: true, route, rule })));
    route.deniedBy = Object.freeze(lists.deny.map((rule) => Object.freeze({ allow: false, code: 'identity_not_allowed', route, rule })));
    route.denied = Object.freeze({ allow: false, code: 'identity_not_allowed', route, rule: undefined });
    route.misdirected = Object.freeze({ allow: false, code: 'misdirected_request', route, rule: undefined });
    route.certless = compileCertless(r.allow, route);
    return Object.freeze(route);
  });
  const rootRoutes = routes.filter((r) => r.prefix === '/');
  const bySegment = new Map<string, CompiledRoute[]>();
  for (const r of routes) {
    if (r.prefix === '/') continue;
    const seg = firstSegment(r.prefix);
    if (!bySegment.has(seg)) bySegment.set(seg, []);
  }
  for (const [seg, list] of bySegment) {
    for (const r of routes) if (r.prefix === '/' || firstSegment(r.prefix) === seg) list.push(r);
  }
  return Object.freeze({
    routes: Object.freeze(routes),
    bySegment,
    rootRoutes: Object.freeze(rootRoutes),
    slots: routes.length + shadows,
    verdicts: new WeakMap(),
  });
}

/** Where an entry's hit counter is in its route's `counts`. */
export function countSlot(route: CompiledRoute, rule: CompiledEntry): number {
  return rule.list === 'deny' ? rule.index : route.deny.length + rule.index;
}

/** Where a shadow result's counter is in its route's `counts`. */
export function shadowCountSlot(route: CompiledRoute, result: number): number {
  return route.deny.length + route.allow.length + result;
}
