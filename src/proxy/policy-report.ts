// What the proxy records about each policy decision: the entry that decided (rule hits), and on
// routes with shadow rules the shadow's verdict beside the real one. Per request this bumps plain
// counters kept in the compiled route; prom-client sees them only when /metrics is scraped. The
// shadow verdict is memoised like the real one, and its difference logged once per certificate
// and route for each loaded policy (the metric counts every request).

import type { Logger } from 'pino';
import type { Identity } from '../identity/types.js';
import { metrics, onCollect } from '../metrics.js';
import { countSlot, SHADOW_RESULTS, shadowCountSlot, type CompiledPolicy, type Decision } from '../policy/compile.js';
import { memoRow, SHADOW_LOGGED, shadowVerdict, verdictAllows, verdictRule } from '../policy/decide.js';
import type { Runtime } from '../runtime.js';
import type { AdmissionFacts, PolicyObserver } from './admission.js';

/** Policies whose counters may hold counts not yet handed to prom-client. */
const live = new Set<CompiledPolicy>();
/** The policy of the last decision: a request on any other one (re)registers it. */
let last: CompiledPolicy | undefined;
/** Policies whose every rule already has a series (0 until used), so unused rules show. */
const announced = new WeakSet<CompiledPolicy>();

function flush(): void {
  for (const p of live) {
    const fresh = !announced.has(p);
    if (fresh) announced.add(p);
    for (const r of p.routes) {
      const c = r.counts;
      for (const e of [...r.deny, ...r.allow]) {
        const i = countSlot(r, e);
        if (c[i]! > 0 || fresh) metrics.policyRuleHits.labels(r.name, e.list, e.label).inc(c[i]!);
        c[i] = 0;
      }
      if (r.shadow === undefined) continue;
      for (let k = 0; k < SHADOW_RESULTS.length; k++) {
        const i = shadowCountSlot(r, k);
        if (c[i]! > 0 || fresh) metrics.policyShadow.labels(r.name, SHADOW_RESULTS[k]!).inc(c[i]!);
        c[i] = 0;
      }
    }
  }
  // A replaced policy is flushed once more, then dropped; a late request on it registers it again.
  for (const p of live) if (p !== last) live.delete(p);
}

onCollect('certgate_policy_rule_hits_total', flush);
onCollect('certgate_policy_shadow_total', flush);

const label = (allowed: boolean): string => (allowed ? 'allow' : 'identity_not_allowed');

export class PolicyReport implements PolicyObserver {
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  decided(facts: AdmissionFacts, id: Identity | undefined, d: Decision, rt: Runtime): void {
    const route = d.route;
    if (route === undefined) return;
    const policy = rt.policy;
    if (policy !== last) {
      last = policy;
      live.add(policy);
    }
    if (d.rule !== undefined) route.counts[countSlot(route, d.rule)]! += 1;
    // Shadow entries are certificate matchers: a request without a certificate has no shadow verdict.
    if (id === undefined || route.shadow === undefined || (!d.allow && d.code !== 'identity_not_allowed')) return;
    const row = memoRow(policy, id);
    const sv = shadowVerdict(row, route, id);
    const shadowAllows = verdictAllows(sv);
    const result = shadowAllows === d.allow ? 0 : d.allow ? 1 : 2;
    route.counts[shadowCountSlot(route, result)]! += 1;
    if (result === 0 || (sv & SHADOW_LOGGED) !== 0) return;
    row[route.shadowSlot] = sv | SHADOW_LOGGED;
    this.#log.info(
      {
        event: 'policy_shadow',
        reqId: facts.requestId,
        subject: id.subject,
        fingerprint: id.fingerprint,
        ...(id.spiffe !== undefined ? { spiffe: id.spiffe } : {}),
        route: route.name,
        decision: label(d.allow),
        rule: ruleName(d.rule),
        shadow: label(shadowAllows),
        shadowRule: ruleName(verdictRule(route.shadow, sv)),
        result: SHADOW_RESULTS[result],
      },
      `shadow policy of route ${route.name} ${result === 1 ? 'would refuse' : 'would allow'} this certificate (logged once per certificate and route)`,
    );
  }
}

function ruleName(e: { list: string; label: string } | undefined): string | null {
  return e === undefined ? null : `${e.list}[${e.label}]`;
}
