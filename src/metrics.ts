// Every metric certgate exports, defined in one place. Metric names are public API: never
// renamed. Modules increment what they own; /metrics renders the registry (aggregated across
// workers by the primary when `workers` > 1).

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LabelCounts, RequestCounts, RouteHistogram } from './metrics-local.js';

export const registry = new Registry();

type Collect = () => void;
const scrapeHooks = new Map<string, Set<Collect>>();

/**
 * Registers work that computes a gauge when it is scraped (expiry gauges, open connections),
 * so that nothing is computed per request. Returns the unregister function.
 */
export function onCollect(metricName: string, fn: Collect): () => void {
  let set = scrapeHooks.get(metricName);
  if (set === undefined) scrapeHooks.set(metricName, (set = new Set()));
  set.add(fn);
  return () => set.delete(fn);
}

function collectHooks(name: string): Collect {
  return () => {
    for (const fn of scrapeHooks.get(name) ?? []) fn();
  };
}

/** certgate_requests_total counted in plain numbers per request, handed to prom-client when scraped. */
export const requestCounts: RequestCounts = new RequestCounts(() => metrics.requests);

/** certgate_api_key_requests_total, per key name, counted the same way. */
export const apiKeyCounts: LabelCounts = new LabelCounts(() => metrics.apiKeyRequests);

export const metrics = {
  apiKeyRequests: new Counter({
    name: 'certgate_api_key_requests_total',
    help: 'Requests without a client certificate that presented a key of apiKeys.file, by key name (keys being retired)',
    labelNames: ['name'] as const,
    registers: [registry],
    collect: (): void => apiKeyCounts.flush(),
  }),
  requests: new Counter({
    name: 'certgate_requests_total',
    help: 'Requests by route, status and decision (allow or an error code)',
    labelNames: ['route', 'status', 'decision'] as const,
    registers: [registry],
    collect: (): void => requestCounts.flush(),
  }),
  handshakeFailures: new Counter({
    name: 'certgate_handshake_failures_total',
    help: 'Connections refused after the TLS handshake, by reason (error code) and OpenSSL verify code',
    labelNames: ['code', 'reason'] as const,
    registers: [registry],
  }),
  handshakeClosed: new Counter({
    name: 'certgate_handshake_closed_total',
    help: 'Clients that completed the TLS handshake and closed without sending a request (scanners, health checks); not handshake failures',
    registers: [registry],
  }),
  connections: new Counter({
    name: 'certgate_connections_total',
    help: 'Accepted mTLS connections, by whether the TLS session was resumed',
    labelNames: ['resumed'] as const,
    registers: [registry],
  }),
  upstreamLatency: new RouteHistogram({
    name: 'certgate_upstream_latency_seconds',
    help: 'Time from dispatch to the end of the upstream response',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }),
  reloads: new Counter({
    name: 'certgate_reloads_total',
    help: 'Reloads by result (success, failure)',
    labelNames: ['result'] as const,
    registers: [registry],
  }),
  certNotAfter: new Gauge({
    name: 'certgate_cert_not_after_seconds',
    help: 'notAfter (unix seconds) of certificates certgate depends on: role is server, ca, client, crl, monitor',
    labelNames: ['role', 'subject', 'serial', 'fingerprint'] as const,
    registers: [registry],
    collect: collectHooks('certgate_cert_not_after_seconds'),
    // Every worker reports the same dates: summing them across workers would be nonsense.
    aggregator: 'max',
  }),
  clientCertsByExpiry: new Gauge({
    name: 'certgate_client_certs_expiring',
    help: 'Client certificates in the inventory by days to expiry bucket (expired, 1, 7, 30, 90, later)',
    labelNames: ['within'] as const,
    registers: [registry],
    collect: collectHooks('certgate_client_certs_expiring'),
    // Each worker has its own inventory and a client may be in several: max is a lower bound, sum would count it N times.
    aggregator: 'max',
  }),
  revocationRefusals: new Counter({
    name: 'certgate_revocation_refusals_total',
    help: 'Requests and connections refused because the certificate is revoked, by source',
    labelNames: ['source'] as const,
    registers: [registry],
  }),
  revocationSoftFailures: new Counter({
    name: 'certgate_revocation_soft_failures_total',
    help: 'Revocation status unknown but allowed (soft mode), by source',
    labelNames: ['source'] as const,
    registers: [registry],
  }),
  crlAge: new Gauge({
    name: 'certgate_crl_age_seconds',
    help: 'Seconds since thisUpdate of each loaded CRL',
    labelNames: ['issuer', 'source'] as const,
    registers: [registry],
  }),
  crlNextUpdate: new Gauge({
    name: 'certgate_crl_next_update_seconds',
    help: 'nextUpdate (unix seconds) of each loaded CRL',
    labelNames: ['issuer', 'source'] as const,
    registers: [registry],
  }),
  revocationFetchFailures: new Counter({
    name: 'certgate_revocation_fetch_failures_total',
    help: 'Failed CRL or OCSP fetches, by kind (crl, ocsp)',
    labelNames: ['kind'] as const,
    registers: [registry],
  }),
  ocspCache: new Counter({
    name: 'certgate_ocsp_cache_total',
    help: 'OCSP cache lookups by result (hit, miss)',
    labelNames: ['result'] as const,
    registers: [registry],
  }),
  localRevocations: new Gauge({
    name: 'certgate_local_revocations',
    help: 'Entries in the local (instant) revocation list',
    registers: [registry],
  }),
  storeUp: new Gauge({
    name: 'certgate_store_up',
    help: 'Whether the shared store (store.redis) is reachable and in sync: 1 up, 0 down (absent with the file store)',
    registers: [registry],
  }),
  storePropagation: new Histogram({
    name: 'certgate_store_propagation_seconds',
    help: 'Time from a revocation change being stored in Redis (by any instance) to its being applied on this one',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }),
  revocationsPending: new Gauge({
    name: 'certgate_revocations_pending',
    help: 'Revocation changes in the local journal not yet stored in the shared store',
    registers: [registry],
  }),
  estRequests: new Counter({
    name: 'certgate_est_requests_total',
    help: 'EST requests (cacerts, simpleenroll, simplereenroll) by outcome (issued/served, or an error code)',
    labelNames: ['operation', 'outcome'] as const,
    registers: [registry],
  }),
  weakCertRefusals: new Counter({
    name: 'certgate_weak_certificate_refusals_total',
    help: 'Client certificates refused by clientCertPolicy, by rule',
    labelNames: ['rule'] as const,
    registers: [registry],
  }),
  proxyProtocolRefusals: new Counter({
    name: 'certgate_proxy_protocol_refusals_total',
    help: 'Connections closed before TLS over the PROXY protocol header: untrusted (a header from a peer not in listen.proxyProtocol.trusted), missing, invalid, timeout',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  monitorHealthy: new Gauge({
    name: 'certgate_monitor_healthy',
    help: 'Endpoints in config monitors: 1 when the last scan found no problem, 0 otherwise',
    labelNames: ['address'] as const,
    registers: [registry],
  }),
  ocspStapleAge: new Gauge({
    name: 'certgate_ocsp_staple_age_seconds',
    help: 'Age (now minus thisUpdate) of the OCSP response stapled for the server certificate; absent when none is stapled',
    registers: [registry],
    collect: collectHooks('certgate_ocsp_staple_age_seconds'),
    aggregator: 'max',
  }),
  accessLogDropped: new Counter({
    name: 'certgate_access_log_dropped_total',
    help: 'Access log lines dropped because their destination did not keep up (a stalled pipe or disk)',
    registers: [registry],
    collect: collectHooks('certgate_access_log_dropped_total'),
  }),
  policyRuleHits: new Counter({
    name: 'certgate_policy_rule_hits_total',
    help: 'Requests decided by each allow/deny entry, by route, list and rule (the entry\'s name, else its index)',
    labelNames: ['route', 'list', 'rule'] as const,
    registers: [registry],
    collect: collectHooks('certgate_policy_rule_hits_total'),
  }),
  policyShadow: new Counter({
    name: 'certgate_policy_shadow_total',
    help: 'Requests on routes with shadow rules, by route and result: agree, would_deny (allowed, the shadow refuses), would_allow (refused, the shadow allows)',
    labelNames: ['route', 'result'] as const,
    registers: [registry],
    collect: collectHooks('certgate_policy_shadow_total'),
  }),
  alerts: new Counter({
    name: 'certgate_alerts_total',
    help: 'Alert deliveries to webhooks by event and result (sent; failed: gave up after the retries; dropped: queue full)',
    labelNames: ['event', 'result'] as const,
    registers: [registry],
  }),
  openConnections: new Gauge({
    name: 'certgate_open_connections',
    help: 'Open client connections on the proxy listener',
    registers: [registry],
    collect: collectHooks('certgate_open_connections'),
  }),
};
