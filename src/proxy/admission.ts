// Request admission: one pure function of (runtime, request facts, identity, revocation answer),
// shared by plain requests and upgrades (and later HTTP/2 streams). No I/O, no logging, no
// metrics: the caller does those from the answer. The order of the checks is part of the
// contract: revocation, path, EST, Host, framing, policy, then the route's revocation mode.

import { Refusal } from '../errors.js';
import type { Identity } from '../identity/types.js';
import type { CompiledRoute } from '../policy/compile.js';
import { decideWithoutCertificate, type KeyAnswer } from '../policy/certless.js';
import { decide, type Decision, type RequestFacts } from '../policy/decide.js';
import type { RevocationStatus } from '../revocation/types.js';
import type { Runtime } from '../runtime.js';
import { EST_PREFIX } from '../ca/est-route.js';
import { refusalFromVerifyError } from '../tls/authorization.js';

/** The answer for requests that belong to the EST endpoint (answered by certgate itself). */
export const EST = Symbol('certgate.est');

// Refusals that do not depend on the request are made once: refusing allocates nothing.
const REVOKED = new Refusal('certificate_revoked', undefined, true);
const BAD_PATH = new Refusal('bad_path');
const NO_CERTIFICATE = refusalFromVerifyError(undefined, false).message;
const BAD_HOST = new Refusal('bad_request', 'invalid or duplicate Host header', true);
/** Policy decisions are preallocated per route; so is the refusal made from each. */
const byDecision = new WeakMap<Decision, Refusal>();

function refusalOf(d: Exclude<Decision, { allow: true }>): Refusal {
  let r = byDecision.get(d);
  // Without a certificate on a route that needs one: the answer (and closed connection) it always got.
  if (r === undefined) byDecision.set(d, (r = d.code === 'certificate_required' ? new Refusal(d.code, NO_CERTIFICATE, true, d.route) : new Refusal(d.code, undefined, false, d.route)));
  return r;
}

/** What admission reads from a request (the request context has these fields). */
export interface AdmissionFacts extends Omit<RequestFacts, 'path'> {
  /** Canonical path, or undefined when the request path is not canonical. */
  readonly path: string | undefined;
  readonly badHost: boolean;
  readonly badEncoding: string | undefined;
  /** For log lines about the request (the request context has it). */
  readonly requestId?: string;
  /** Without a certificate: what the API key header held (undefined: no key header). */
  readonly key?: KeyAnswer | undefined;
}

/** Told every policy decision, for rule hits and shadow rules (proxy/policy-report.ts). */
export interface PolicyObserver {
  /** `id` undefined: a request without a certificate (anonymous or API key). */
  decided(facts: AdmissionFacts, id: Identity | undefined, d: Decision, rt: Runtime): void;
}

/**
 * The route to forward to, a Refusal, or EST. `estEnabled` says whether this listener answers EST.
 * `id` undefined: the client presented no certificate (only routes that admit that can allow it).
 * A route answer whose revocation status is unknown was allowed in soft mode (the caller counts it).
 */
export function admitRequest(rt: Runtime, facts: AdmissionFacts, id: Identity | undefined, rev: RevocationStatus | undefined, estEnabled: boolean, observer?: PolicyObserver): CompiledRoute | Refusal | typeof EST {
  if (rev !== undefined && rev.state === 'revoked') return REVOKED;
  const path = facts.path;
  if (path === undefined) return BAD_PATH;
  if (estEnabled && path.startsWith(EST_PREFIX)) {
    if (rev !== undefined && rev.state === 'unknown' && rev.defaultMode === 'hard') return new Refusal('revocation_unknown', `revocation status unknown (${rev.source})`);
    return EST;
  }
  if (facts.badHost) return BAD_HOST;
  if (facts.badEncoding !== undefined) return new Refusal('bad_request', `unsupported Transfer-Encoding "${facts.badEncoding}": only chunked is accepted`, true);
  const decision = id === undefined ? decideWithoutCertificate(facts as RequestFacts, rt.policy, facts.key) : decide(id, facts as RequestFacts, rt.policy);
  observer?.decided(facts, id, decision, rt);
  if (!decision.allow) return refusalOf(decision);
  const route = decision.route;
  if (rev !== undefined && rev.state === 'unknown' && (route.config.revocation ?? rev.defaultMode) === 'hard') {
    return new Refusal('revocation_unknown', `revocation status unknown (${rev.source})`, false, route);
  }
  return route;
}
