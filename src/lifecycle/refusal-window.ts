// Refusals of the last hour by error code, for the dashboard: one bucket per minute in a ring of
// 60, fed by the request observer. A refusal costs a division, a compare and a Map bump; nothing
// is allocated per request except the first refusal of a code in a minute.

const MINUTE_MS = 60_000;
export const REFUSAL_WINDOW_MINUTES = 60;

interface Bucket {
  /** Minutes since the epoch this bucket holds; -1 when unused. */
  minute: number;
  readonly counts: Map<string, number>;
}

export interface RefusalSummary {
  readonly windowMinutes: number;
  readonly total: number;
  /** Code -> count over the window, most frequent first. */
  readonly byCode: Record<string, number>;
  /** Oldest first, one entry per minute that had refusals (ISO start of the minute). */
  readonly perMinute: readonly { readonly minute: string; readonly byCode: Record<string, number> }[];
}

export class RefusalWindow {
  readonly #buckets: Bucket[] = Array.from({ length: REFUSAL_WINDOW_MINUTES }, () => ({ minute: -1, counts: new Map() }));
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  add(code: string): void {
    const minute = Math.floor(this.#now() / MINUTE_MS);
    const b = this.#buckets[minute % REFUSAL_WINDOW_MINUTES]!;
    if (b.minute !== minute) {
      b.minute = minute;
      b.counts.clear();
    }
    b.counts.set(code, (b.counts.get(code) ?? 0) + 1);
  }

  /** The last REFUSAL_WINDOW_MINUTES minutes, the current one included. */
  summary(): RefusalSummary {
    const current = Math.floor(this.#now() / MINUTE_MS);
    const live = this.#buckets.filter((b) => b.minute > current - REFUSAL_WINDOW_MINUTES && b.minute <= current && b.counts.size > 0).sort((a, b) => a.minute - b.minute);
    const totals = new Map<string, number>();
    for (const b of live) for (const [code, n] of b.counts) totals.set(code, (totals.get(code) ?? 0) + n);
    const byCode = Object.fromEntries([...totals].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
    return {
      windowMinutes: REFUSAL_WINDOW_MINUTES,
      total: [...totals.values()].reduce((a, n) => a + n, 0),
      byCode,
      perMinute: live.map((b) => ({ minute: new Date(b.minute * MINUTE_MS).toISOString(), byCode: Object.fromEntries(b.counts) })),
    };
  }
}
