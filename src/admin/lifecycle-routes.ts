// Admin endpoints of the certificate lifecycle: GET /metrics (Prometheus text) and GET /certs
// (server chain, trusted CAs and the client certificate inventory, with days left).

import type { Lifecycle } from '../lifecycle/lifecycle.js';
import { daysLeft } from '../lifecycle/inventory.js';
import { registry } from '../metrics.js';
import type { AdminServer } from './server.js';

export function registerLifecycleRoutes(admin: AdminServer, lifecycle: Lifecycle): void {
  admin.route('GET', '/metrics', async (r) => {
    r.text(200, await registry.metrics(), registry.contentType);
  });

  admin.route('GET', '/certs', (r) => {
    const now = Date.now();
    const own = lifecycle.runtimeCertificates.map((i) => ({
      role: i.role,
      subject: i.subject,
      serial: i.serial,
      fingerprint: i.fingerprint,
      source: i.source,
      notAfter: i.notAfter.toISOString(),
      daysLeft: daysLeft(i.notAfter.getTime(), now),
    }));
    let clients = lifecycle.inventory.list();
    const within = r.query.get('expiringWithinDays');
    if (within !== null) {
      const days = Number(within);
      if (!Number.isFinite(days)) return r.error('invalid_argument', 'expiringWithinDays must be a number of days');
      clients = clients.filter((c) => c.daysLeft <= days);
    }
    r.json(200, {
      generatedAt: new Date(now).toISOString(),
      server: own.filter((c) => c.role === 'server'),
      cas: own.filter((c) => c.role === 'ca'),
      clients,
    });
  });
}
