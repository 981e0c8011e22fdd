// What an alert says, and the two bodies a webhook receives: certgate's JSON object (documented in
// docs/monitoring.md: receivers parse it, so its fields are public API) and Slack's
// incoming-webhook body. Pure: no I/O.

import type { ALERT_EVENTS } from '../config/definition.js';

export type AlertEvent = (typeof ALERT_EVENTS)[number];

/** One alert. Certificate fields are null for events that are not about one certificate. */
export interface Alert {
  readonly event: AlertEvent;
  readonly subject: string | null;
  readonly serial: string | null;
  readonly fingerprint: string | null;
  /** server, ca, client, crl, monitor (as in certgate_cert_not_after_seconds), or null. */
  readonly role: string | null;
  readonly notAfter: string | null;
  /** Days left to notAfter, one decimal; negative once expired. */
  readonly daysLeft: number | null;
  /** The warnDays threshold (days) this alert is for; null for everything but cert_expiring. */
  readonly threshold: number | null;
  /** Which certgate sends it (`hostname:port`). */
  readonly instance: string;
  readonly message: string;
  /** When certgate raised it (ISO 8601). */
  readonly time: string;
  /** Event-specific facts: the monitor's problems, the reload errors, the revocation entry. */
  readonly details: Readonly<Record<string, unknown>>;
}

export type AlertInput = Omit<Alert, 'instance' | 'time' | 'subject' | 'serial' | 'fingerprint' | 'role' | 'notAfter' | 'daysLeft' | 'threshold' | 'details'> &
  Partial<Pick<Alert, 'subject' | 'serial' | 'fingerprint' | 'role' | 'notAfter' | 'daysLeft' | 'threshold' | 'details'>>;

/** Every field present (null when it does not apply), so receivers need no existence checks. */
export function completeAlert(a: AlertInput, instance: string, now: number): Alert {
  return {
    event: a.event,
    subject: a.subject ?? null,
    serial: a.serial ?? null,
    fingerprint: a.fingerprint ?? null,
    role: a.role ?? null,
    notAfter: a.notAfter ?? null,
    daysLeft: a.daysLeft ?? null,
    threshold: a.threshold ?? null,
    instance,
    message: a.message,
    time: new Date(now).toISOString(),
    details: a.details ?? {},
  };
}

export function jsonBody(a: Alert): string {
  return JSON.stringify(a);
}

/**
 * Slack (and Mattermost) read `<...>` as links and mentions (`<!channel>`, `<@U123>`) and `&` as
 * the start of an entity: escaped as Slack documents. Mattermost also pings on a bare `@channel`,
 * so a zero-width space follows every `@`. Certificate text is attacker-chosen: all of it goes
 * through here.
 */
export function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/@/g, '@\u200b');
}

const ICON: Record<AlertEvent, string> = {
  cert_expiring: ':warning:',
  cert_expired: ':rotating_light:',
  crl_stale: ':warning:',
  monitor_problem: ':warning:',
  reload_failed: ':x:',
  revocation_changed: ':lock:',
  store_unavailable: ':rotating_light:',
};

export function slackBody(a: Alert): string {
  const text = `${ICON[a.event]} certgate ${slackEscape(a.instance)} ${a.event}: ${slackEscape(a.message)}`;
  const facts = [
    ['subject', a.subject],
    ['serial', a.serial],
    ['notAfter', a.notAfter],
    ['daysLeft', a.daysLeft === null ? null : String(a.daysLeft)],
  ].filter((f): f is [string, string] => f[1] !== null);
  // Blocks are optional for Slack; the plain `text` is what notifications and other receivers show.
  const blocks: unknown[] = [{ type: 'section', text: { type: 'mrkdwn', text } }];
  if (facts.length > 0) blocks.push({ type: 'context', elements: facts.map(([k, v]) => ({ type: 'mrkdwn', text: `${k}: ${slackEscape(v)}` })) });
  return JSON.stringify({ text, blocks });
}
