// Admin endpoints of the certificate lifecycle: GET /metrics (Prometheus text) and GET /certs
// (server chain, trusted CAs and the client certificate inventory, with days left). With a
// Redis store the inventory is the fleet's (every instance's clients, merged per certificate),
// or this instance's with `"fleet": false` while Redis is out of reach.

import type { Lifecycle } from '../lifecycle/lifecycle.js';
import { daysLeft, type ApiKeyUse, type InventoryEntry } from '../lifecycle/inventory.js';
import { registry } from '../metrics.js';
import { pageClients, pageQueryOf } from './certs-page.js';
import type { FleetInventory } from '../store/inventory-redis.js';
import type { AdminRequest, AdminServer } from './server.js';

export function registerLifecycleRoutes(admin: AdminServer, lifecycle: Lifecycle, fleet?: FleetInventory): void {
  admin.route('GET', '/metrics', async (r) => {
    r.text(200, await registry.metrics(), registry.contentType);
  });

  admin.route('GET', '/certs', async (r) => {
    if (fleet === undefined) return sendCerts(r, [certsReport(lifecycle)]);
    const view = await fleet.clients();
    sendCerts(r, [{ ...certsReport(lifecycle), clients: view.clients, fleet: view.fleet, instance: view.instance }]);
  });
}

export interface CertsReport {
  readonly generatedAt: string;
  readonly server: readonly unknown[];
  readonly cas: readonly unknown[];
  readonly clients: readonly InventoryEntry[];
  /** API keys still in use (requests without a certificate), most recently used first. */
  readonly apiKeys?: readonly ApiKeyUse[];
  /** With a Redis store: true when `clients` is every instance's, false when only this one's (Redis out of reach). */
  readonly fleet?: boolean;
  readonly instance?: string;
}

/** What GET /certs shows for one process: its own certificates and its client inventory. */
export function certsReport(lifecycle: Lifecycle, now = Date.now()): CertsReport {
  const own = lifecycle.runtimeCertificates.map((i) => ({
    role: i.role,
    subject: i.subject,
    serial: i.serial,
    fingerprint: i.fingerprint,
    source: i.source,
    notAfter: i.notAfter.toISOString(),
    daysLeft: daysLeft(i.notAfter.getTime(), now),
  }));
  // The staple belongs to the leaf, the first server item.
  const staple = lifecycle.ocspStapleAgeSeconds;
  const server = own.filter((c) => c.role === 'server').map((c, i) => (i === 0 ? { ...c, ocspStaple: staple === undefined ? null : { ageSeconds: Math.round(staple) } } : c));
  return {
    generatedAt: new Date(now).toISOString(),
    server,
    cas: own.filter((c) => c.role === 'ca'),
    clients: lifecycle.inventory.list(),
    apiKeys: lifecycle.inventory.apiKeys(),
  };
}

/**
 * Several processes' reports as one (cluster workers share a listener, so a client can appear
 * in several inventories): counts add up, first/last seen widen, routes and refusals join.
 */
export function mergeCertsReports(reports: readonly CertsReport[]): CertsReport {
  const byFp = new Map<string, InventoryEntry>();
  for (const rep of reports) {
    for (const c of rep.clients) {
      const prev = byFp.get(c.fingerprint);
      if (prev === undefined) {
        byFp.set(c.fingerprint, c);
        continue;
      }
      const later = prev.lastSeen >= c.lastSeen ? prev : c;
      byFp.set(c.fingerprint, {
        ...later,
        firstSeen: prev.firstSeen <= c.firstSeen ? prev.firstSeen : c.firstSeen,
        connections: prev.connections + c.connections,
        requests: prev.requests + c.requests,
        routes: [...new Set([...prev.routes, ...c.routes])].sort(),
        refused: [...new Set([...prev.refused, ...c.refused])].sort(),
        ...(prev.instances !== undefined || c.instances !== undefined ? { instances: [...new Set([...(prev.instances ?? []), ...(c.instances ?? [])])].sort() } : {}),
      });
    }
  }
  const keys = new Map<string, ApiKeyUse>();
  for (const k of reports.flatMap((r) => r.apiKeys ?? [])) {
    const prev = keys.get(k.name);
    keys.set(k.name, prev === undefined ? k : {
      ...(prev.lastUsed >= k.lastUsed ? prev : k),
      requests: prev.requests + k.requests,
      firstUsed: prev.firstUsed <= k.firstUsed ? prev.firstUsed : k.firstUsed,
      routes: [...new Set([...prev.routes, ...k.routes])].sort(),
    });
  }
  const first = reports[0];
  return {
    generatedAt: new Date().toISOString(),
    server: first?.server ?? [],
    cas: first?.cas ?? [],
    clients: [...byFp.values()].sort((a, b) => a.daysLeft - b.daysLeft || a.subject.localeCompare(b.subject)),
    apiKeys: [...keys.values()].sort((a, b) => (a.lastUsed < b.lastUsed ? 1 : -1)),
  };
}

/**
 * Answers GET /certs from reports, honouring ?expiringWithinDays=N and, when any of q, sort,
 * order, offset, limit is given, answering one page of clients with a `page` object (certs-page.ts).
 */
export function sendCerts(r: AdminRequest, reports: readonly CertsReport[]): void {
  const merged = reports.length === 1 ? reports[0]! : mergeCertsReports(reports);
  const query = pageQueryOf(r.query);
  if (typeof query === 'string') return r.error('invalid_argument', query);
  const within = r.query.get('expiringWithinDays');
  let clients = merged.clients;
  if (within !== null) {
    const days = Number(within);
    if (!Number.isFinite(days)) return r.error('invalid_argument', 'expiringWithinDays must be a number of days');
    clients = clients.filter((c) => c.daysLeft <= days);
  }
  if (query === undefined) return r.json(200, within === null ? merged : { ...merged, clients });
  r.json(200, { ...merged, ...pageClients(clients, query) });
}
