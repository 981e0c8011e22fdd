// GET /overview and GET /refusals: what the dashboard needs besides /certs and /revocations, in
// one read: reload generation, store state, the expiry thresholds, a 90-day timeline of everything
// with an end date, OCSP cache and monitor state, and the refusals of the last hour.

import type { ExpiringItem } from '../lifecycle/expiry.js';
import { daysLeft } from '../lifecycle/inventory.js';
import type { Lifecycle } from '../lifecycle/lifecycle.js';
import type { Monitors } from '../lifecycle/monitors.js';
import type { AdminServer } from './server.js';

const DAY_MS = 86_400_000;
export const TIMELINE_DAYS = 90;
/** Expired items this far back are still drawn (left of today). */
export const TIMELINE_PAST_DAYS = 10;
/** Client certificates drawn on the timeline, soonest first; the rest are counted. */
export const TIMELINE_MAX_CLIENTS = 500;

/** Where shared state lives. One provider, so that another store kind only changes its source. */
export interface StoreState {
  readonly kind: string;
  readonly state: 'ok' | 'degraded' | 'unavailable';
  readonly detail?: string;
}

export interface DashboardSources {
  readonly lifecycle: Lifecycle;
  readonly monitors: Pick<Monitors, 'lastScans'>;
  readonly revocation: { describe(): { ocsp: unknown } };
  readonly generation: () => number;
  readonly warnDays: () => readonly number[];
  readonly store: () => StoreState;
}

export interface TimelineItem {
  readonly role: string;
  readonly subject: string;
  readonly notAfter: string;
  readonly daysLeft: number;
  readonly serial?: string | undefined;
  readonly fingerprint?: string | undefined;
  readonly source?: string | undefined;
}

function itemOf(i: ExpiringItem, now: number): TimelineItem {
  return { role: i.role, subject: i.subject, notAfter: i.notAfter.toISOString(), daysLeft: daysLeft(i.notAfter.getTime(), now), serial: i.serial, fingerprint: i.fingerprint, source: i.source };
}

/** Own certificates, CAs, CRLs and monitored endpoints, then the soonest client certificates. */
export function timeline(items: readonly ExpiringItem[], clients: Iterable<{ fingerprint: string; subject: string; serial: string; notAfter: number }>, now: number) {
  const from = now - TIMELINE_PAST_DAYS * DAY_MS;
  const to = now + TIMELINE_DAYS * DAY_MS;
  const own = items.filter((i) => i.notAfter.getTime() <= to).map((i) => itemOf(i, now));
  const soon: { fingerprint: string; subject: string; serial: string; notAfter: number }[] = [];
  for (const c of clients) if (c.notAfter <= to) soon.push(c);
  soon.sort((a, b) => a.notAfter - b.notAfter);
  const drawn = soon.slice(0, TIMELINE_MAX_CLIENTS).map((c) => ({
    role: 'client',
    subject: c.subject,
    notAfter: new Date(c.notAfter).toISOString(),
    daysLeft: daysLeft(c.notAfter, now),
    serial: c.serial,
    fingerprint: c.fingerprint,
  }));
  return {
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    items: [...own, ...drawn].sort((a, b) => (a.notAfter < b.notAfter ? -1 : a.notAfter > b.notAfter ? 1 : 0)),
    clientsNotDrawn: soon.length - drawn.length,
  };
}

export function overview(src: DashboardSources, now = Date.now()) {
  const inv = src.lifecycle.inventory;
  const warnDays = [...src.warnDays()].sort((a, b) => b - a);
  let expired = 0;
  let expiring = 0;
  const widest = (warnDays[0] ?? 0) * DAY_MS;
  for (const c of inv.notAfters()) {
    if (c.notAfter <= now) expired++;
    else if (c.notAfter - now <= widest) expiring++;
  }
  return {
    generatedAt: new Date(now).toISOString(),
    generation: src.generation(),
    store: src.store(),
    expiry: { warnDays },
    inventory: { total: inv.size, expired, expiring },
    timeline: timeline(src.lifecycle.expiry.items(), inv.notAfters(), now),
    ocsp: { ...(src.revocation.describe().ocsp as object), staple: src.lifecycle.ocspStapleAgeSeconds === undefined ? null : { ageSeconds: Math.round(src.lifecycle.ocspStapleAgeSeconds) } },
    monitors: src.monitors.lastScans().map((m) => ({
      address: m.address,
      scannedAt: m.scannedAt?.toISOString() ?? null,
      healthy: m.result?.healthy ?? null,
      daysLeft: m.result?.daysLeft ?? null,
      problems: m.result?.problems ?? [],
    })),
    refusals: src.lifecycle.refusals.summary(),
  };
}

export function registerDashboardData(admin: AdminServer, src: DashboardSources): void {
  admin.route('GET', '/overview', (r) => r.json(200, overview(src)));
  admin.route('GET', '/refusals', (r) => r.json(200, src.lifecycle.refusals.summary()));
}
