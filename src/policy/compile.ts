// Compile the route table once per config load: globs become matchers, routes are indexed by
// their first path segment so that a request looks at a handful of candidates, not every route.

import type { Config, MatcherSpec, RouteConfig } from '../config/types.js';
import type { Identity } from '../identity/types.js';
import { compileCertless, type CertlessAccess, type CertlessRefusal } from './certless.js';
import { compileAny, type GlobFlavour, type StringMatcher } from './glob.js';

export type IdentityMatcher = (id: Identity) => boolean;

export interface CompiledRoute {
  readonly index: number;
  readonly name: string;
  readonly config: RouteConfig;
  readonly hostMatch: StringMatcher | undefined;
  /** '/' or a prefix without trailing slash, matched on segment boundaries. */
  readonly prefix: string;
  readonly methods: ReadonlySet<string> | undefined;
  readonly allow: readonly IdentityMatcher[];
  readonly deny: readonly IdentityMatcher[];
  /** Decisions are preallocated so that deciding allocates nothing. */
  readonly allowed: Decision;
  readonly denied: Decision;
  readonly misdirected: Decision;
  /** Who may come without a certificate (allow entries `anonymous`, `apiKey`). */
  readonly certless: CertlessAccess;
}

export type Decision =
  | { readonly allow: true; readonly route: CompiledRoute }
  | {
      readonly allow: false;
      readonly code: 'route_not_found' | 'identity_not_allowed' | 'misdirected_request' | CertlessRefusal;
      readonly route: CompiledRoute | undefined;
    };

export interface CompiledPolicy {
  readonly routes: readonly CompiledRoute[];
  /** Candidate routes (in config order) for a first path segment. */
  readonly bySegment: ReadonlyMap<string, readonly CompiledRoute[]>;
  /** Candidates for a first segment no route names: routes with prefix '/'. */
  readonly rootRoutes: readonly CompiledRoute[];
  /** Memo of identity -> per-route verdict (0 unknown, 1 allowed, 2 denied), for this policy only. */
  readonly verdicts: WeakMap<Identity, Uint8Array>;
}

const FLAVOUR: Record<keyof MatcherSpec, GlobFlavour> = {
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

/** One allow/deny entry: every field present must match (a multi-valued field: any value). */
export function compileMatcher(spec: MatcherSpec): IdentityMatcher {
  const checks: IdentityMatcher[] = [];
  for (const field of Object.keys(spec) as (keyof MatcherSpec)[]) {
    const patterns = spec[field];
    // Entries for requests without a certificate (anonymous, apiKey) match no certificate: certless.ts.
    if (patterns === undefined || !(field in FLAVOUR)) continue;
    const m = compileAny(patterns, FLAVOUR[field]);
    switch (field) {
      case 'cn':
      case 'o':
      case 'ou':
      case 'dns':
      case 'uri':
      case 'email':
        checks.push((id) => anyOf(id[field], m));
        break;
      case 'spiffe':
        checks.push((id) => id.spiffe !== undefined && m(id.spiffe));
        break;
      case 'fingerprint':
      case 'serial':
      case 'issuer':
      case 'subject':
        checks.push((id) => m(id[field]));
        break;
    }
  }
  // An empty entry is refused by config validation; if one slips through it matches nothing.
  if (checks.length === 0) return () => false;
  if (checks.length === 1) return checks[0]!;
  return (id) => checks.every((c) => c(id));
}

function firstSegment(prefix: string): string {
  const end = prefix.indexOf('/', 1);
  return end < 0 ? prefix.slice(1) : prefix.slice(1, end);
}

export function compilePolicy(config: Pick<Config, 'routes'>): CompiledPolicy {
  const routes: CompiledRoute[] = config.routes.map((r, index) => {
    const prefix = r.match.pathPrefix ?? '/';
    const route = {
      index,
      name: r.name,
      config: r,
      hostMatch: r.match.host && r.match.host.length > 0 ? compileAny(r.match.host, 'dns') : undefined,
      prefix: prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix,
      methods: r.match.methods && r.match.methods.length > 0 ? new Set(r.match.methods) : undefined,
      allow: Object.freeze(r.allow.map(compileMatcher)),
      deny: Object.freeze(r.deny.map(compileMatcher)),
    } as { -readonly [K in keyof CompiledRoute]: CompiledRoute[K] };
    route.allowed = Object.freeze({ allow: true, route });
    route.denied = Object.freeze({ allow: false, code: 'identity_not_allowed', route });
    route.misdirected = Object.freeze({ allow: false, code: 'misdirected_request', route });
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
    verdicts: new WeakMap(),
  });
}
