// Requests without a client certificate: admitted only on routes with an `{ anonymous: true }` or
// `{ apiKey: NAME }` allow entry; every other route answers certificate_required, as it always did.
// Pure, like decide(): the caller checked the key against the key file (proxy/api-keys.ts) and
// passes the answer. A presented certificate never comes here, whatever was wrong with it.

import type { RouteConfig } from '../config/types.js';
import type { CompiledPolicy, CompiledRoute, Decision } from './compile.js';
import { matchRoute, type RequestFacts } from './decide.js';
import { compileAny, type StringMatcher } from './glob.js';

export type CertlessRefusal = 'certificate_required' | 'api_key_invalid' | 'api_key_expired';

/** What the key header held: a key of the file (by name), or why not. Undefined: no key header. */
export type KeyAnswer = { readonly name: string } | 'invalid' | 'expired';

export interface CertlessAccess {
  /** The decision of the first `{ anonymous: true }` entry: requests without certificate and without key. */
  readonly anonymous: Decision | undefined;
  /** The `{ apiKey }` entries (name globs and their decision), or undefined when the route takes no key. */
  readonly apiKey: readonly { readonly names: StringMatcher; readonly allowed: Decision }[] | undefined;
  readonly required: Decision;
  readonly invalid: Decision;
  readonly expired: Decision;
}

// Without a certificate, a path no route serves gets the same answer as a certificate-only route:
// unauthenticated clients learn nothing about which routes exist.
const REQUIRED: Decision = Object.freeze({ allow: false, code: 'certificate_required', route: undefined, rule: undefined });

/** `route.allowedBy` must be set: a certless admission names its allow entry like any other (rule hits, explain). */
export function compileCertless(allow: RouteConfig['allow'], route: CompiledRoute): CertlessAccess {
  const anonymous = allow.findIndex((e) => e.anonymous === true);
  const keyed = allow.flatMap((e, i) => (e.apiKey !== undefined && e.apiKey.length > 0 ? [Object.freeze({ names: compileAny(e.apiKey, 'plain'), allowed: route.allowedBy[i]! })] : []));
  const refused = (code: CertlessRefusal): Decision => Object.freeze({ allow: false, code, route, rule: undefined });
  return Object.freeze({
    anonymous: anonymous < 0 ? undefined : route.allowedBy[anonymous],
    apiKey: keyed.length > 0 ? Object.freeze(keyed) : undefined,
    required: refused('certificate_required'),
    invalid: refused('api_key_invalid'),
    expired: refused('api_key_expired'),
  });
}

const anyCertless = new WeakMap<CompiledPolicy, boolean>();

/** Whether any route admits requests without a certificate (else they are refused before admission, as always). */
export function admitsCertless(policy: CompiledPolicy): boolean {
  let v = anyCertless.get(policy);
  if (v === undefined) anyCertless.set(policy, (v = policy.routes.some((r) => r.certless.anonymous !== undefined || r.certless.apiKey !== undefined)));
  return v;
}

/**
 * The decision for a request that presented no certificate. A request carrying the key header is
 * decided as a key request, also where anonymous clients are allowed: a wrong key is refused.
 */
export function decideWithoutCertificate(req: RequestFacts, policy: CompiledPolicy, key: KeyAnswer | undefined): Decision {
  const route = matchRoute(policy, req);
  if (route === undefined) return REQUIRED;
  const c = route.certless;
  // A certificate-only route answers as it always did, before any route was looked at.
  if (c.anonymous === undefined && c.apiKey === undefined) return REQUIRED;
  if (route.hostMatch !== undefined && req.sni !== undefined && req.host !== req.sni) return route.misdirected;
  if (key === undefined) return c.anonymous ?? c.required;
  if (key === 'invalid') return c.invalid;
  if (key === 'expired') return c.expired;
  if (c.apiKey !== undefined) for (const k of c.apiKey) if (k.names(key.name)) return k.allowed;
  return route.denied;
}
