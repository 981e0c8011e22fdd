// certgate inventory: flags and help in commands.ts.
// Reads GET /certs from a running certgate and prints its client certificates, soonest expiry first.

import type { ApiKeyUse, InventoryEntry } from '../lifecycle/inventory.js';
import { INVENTORY } from './commands.js';
import { durationFlag, parseCommand } from './flags.js';
import { loadConfig } from '../config/load.js';
import { adminRequest, adminTarget, unreachable } from './admin-client.js';

const DAY_MS = 86_400_000;

export async function run(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const { values } = parseCommand(INVENTORY, argv);
  const target = adminTarget(values, values.config !== undefined ? loadConfig(values.config) : undefined);
  const within = values['expiring-within'];
  const withinDays = within !== undefined ? durationFlag(INVENTORY, 'expiring-within', within) / DAY_MS : undefined;
  let res: { status: number; text: string };
  try {
    res = await adminRequest(target, 'GET', '/certs');
  } catch (err) {
    process.stderr.write(unreachable(target.url, err));
    return 1;
  }
  if (res.status !== 200) {
    process.stderr.write(`certgate: ${target.url}/certs answered ${res.status}: ${res.text}\n`);
    return 1;
  }
  const body = JSON.parse(res.text) as { clients: InventoryEntry[]; apiKeys?: ApiKeyUse[]; fleet?: boolean; instance?: string };
  if (body.fleet === false) process.stderr.write(`certgate: the fleet store is out of reach: only the clients of ${body.instance ?? 'this instance'} are listed\n`);
  const now = Date.now();
  let clients = body.clients
    .map((c) => ({ ...c, daysLeft: Math.floor((Date.parse(c.notAfter) - now) / DAY_MS) }))
    .sort((a, b) => Date.parse(a.notAfter) - Date.parse(b.notAfter));
  if (withinDays !== undefined) {
    const limit = now + withinDays * DAY_MS;
    clients = clients.filter((c) => Date.parse(c.notAfter) <= limit);
  }
  if (values.json) {
    out(JSON.stringify(clients, null, 2) + '\n');
    return 0;
  }
  out(inventoryTable(clients));
  if ((body.apiKeys ?? []).length > 0) out('\n' + apiKeyTable(body.apiKeys!));
  return 0;
}

/** API keys still in use: the clients that have yet to move to a certificate. */
export function apiKeyTable(keys: readonly ApiKeyUse[]): string {
  const header = ['API KEY (STILL IN USE)', 'REQUESTS', 'LAST USED', 'ROUTES', 'DECISION'];
  const rows = keys.map((k) => [k.name, String(k.requests), k.lastUsed.slice(0, 19).replace('T', ' '), shorten(k.routes.join(',') || '-', 40), k.lastDecision]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** A plain table: fixed columns, long values shortened so a row fits a terminal line. */
export function inventoryTable(clients: readonly InventoryEntry[]): string {
  // A fleet's inventory also says which instances saw each certificate.
  const fleet = clients.some((c) => c.instances !== undefined);
  const header = ['DAYS LEFT', 'NOT AFTER', 'SUBJECT', 'SERIAL', 'KEY', 'REQUESTS', 'LAST SEEN', 'ROUTES', 'REFUSED', ...(fleet ? ['INSTANCES'] : []), 'DECISION'];
  const rows = clients.map((c) => [
    c.daysLeft < 0 ? `expired` : String(c.daysLeft),
    c.notAfter.slice(0, 10),
    shorten(c.subject, 40),
    shorten(c.serial, 16),
    c.key,
    String(c.requests),
    c.lastSeen.slice(0, 19).replace('T', ' '),
    shorten(c.routes.join(',') || '-', 24),
    shorten((c.refused ?? []).join(',') || '-', 40),
    ...(fleet ? [shorten((c.instances ?? []).join(',') || '-', 40)] : []),
    c.lastDecision ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const lines = [line(header), ...rows.map(line)];
  if (rows.length === 0) lines.push('(no client certificates)');
  return lines.join('\n') + '\n';
}

function shorten(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + '…';
}
