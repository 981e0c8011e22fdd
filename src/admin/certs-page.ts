// One page of the client inventory for GET /certs: text filter, sort and offset/limit, so that a
// browser polling the dashboard gets 50 rows of a 10,000-entry inventory, not all of them. Pure.

import type { InventoryEntry } from '../lifecycle/inventory.js';

export const SORT_KEYS = ['notAfter', 'subject', 'spiffe', 'issuer', 'serial', 'firstSeen', 'lastSeen', 'requests'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export interface PageQuery {
  /** Case-insensitive substring of subject, SPIFFE ID, SANs, issuer, serial, fingerprint, routes. */
  readonly q: string;
  readonly sort: SortKey;
  readonly order: 'asc' | 'desc';
  readonly offset: number;
  readonly limit: number;
}

export const MAX_PAGE = 1000;

/** The query of a URL, or a message saying which parameter is wrong; undefined when none is set. */
export function pageQueryOf(params: URLSearchParams): PageQuery | string | undefined {
  if (!['q', 'sort', 'order', 'offset', 'limit'].some((k) => params.has(k))) return undefined;
  const sort = params.get('sort') ?? 'notAfter';
  if (!(SORT_KEYS as readonly string[]).includes(sort)) return `sort must be one of ${SORT_KEYS.join(', ')}`;
  const order = params.get('order') ?? 'asc';
  if (order !== 'asc' && order !== 'desc') return 'order must be asc or desc';
  const offset = Number(params.get('offset') ?? 0);
  if (!Number.isInteger(offset) || offset < 0) return 'offset must be a whole number >= 0';
  const limit = Number(params.get('limit') ?? 100);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) return `limit must be a whole number from 1 to ${MAX_PAGE}`;
  return { q: (params.get('q') ?? '').trim().toLowerCase(), sort: sort as SortKey, order, offset, limit };
}

function haystack(c: InventoryEntry): string {
  return [c.subject, c.spiffe ?? '', c.issuer, c.serial, c.fingerprint, ...c.san.dns, ...c.san.uri, ...c.san.email, ...c.san.ip, ...c.routes].join('\n').toLowerCase();
}

export interface ClientPage {
  readonly clients: readonly InventoryEntry[];
  readonly page: { readonly offset: number; readonly limit: number; readonly matched: number; readonly total: number };
}

export function pageClients(all: readonly InventoryEntry[], query: PageQuery): ClientPage {
  const matched = query.q === '' ? [...all] : all.filter((c) => haystack(c).includes(query.q));
  const key = query.sort;
  const sign = query.order === 'asc' ? 1 : -1;
  // ISO timestamps of the same form sort as strings; ties fall back to the fingerprint so that
  // pages do not overlap between two polls.
  matched.sort((a, b) => {
    const x = a[key] ?? '';
    const y = b[key] ?? '';
    // Plain comparison, not localeCompare: ten times faster on 10,000 entries, and stable.
    const d = typeof x === 'number' && typeof y === 'number' ? x - y : x < y ? -1 : x > y ? 1 : 0;
    return d !== 0 ? sign * d : a.fingerprint < b.fingerprint ? -1 : a.fingerprint > b.fingerprint ? 1 : 0;
  });
  return {
    clients: matched.slice(query.offset, query.offset + query.limit),
    page: { offset: query.offset, limit: query.limit, matched: matched.length, total: all.length },
  };
}
