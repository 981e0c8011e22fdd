// The one parser for durations and sizes, shared by the YAML config and the CLI flags, so that
// `30s`, `15m`, `7d` mean the same everywhere. A bare number has one meaning per caller, passed
// in explicitly (`bareUnit`), never guessed.

export const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export type DurationUnit = keyof typeof UNIT_MS;
/** setTimeout fires at once beyond this, so longer timer durations are refused, not clamped. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Milliseconds from `500ms`, `10s`, `5m`, `12h`, `1.5d`. A YAML number means milliseconds; a
 * string without a unit is refused unless the caller names what a bare number means
 * (`bareUnit`, e.g. days for a CLI flag documented so). undefined when it is not a duration.
 */
export function parseDuration(input: string | number, bareUnit?: DurationUnit): number | undefined {
  if (typeof input === 'number') {
    const unit = bareUnit ?? 'ms';
    const ok = Number.isFinite(input) && input >= 0 && (unit !== 'ms' || Number.isInteger(input));
    return ok ? Math.round(input * UNIT_MS[unit]) : undefined;
  }
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(input.trim());
  if (!m) return undefined;
  const unit = (m[2] as DurationUnit | undefined) ?? bareUnit;
  return unit === undefined ? undefined : Math.round(Number(m[1]) * UNIT_MS[unit]);
}

export const UNIT_BYTES = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 } as const;

/** Bytes from a number or `512b`, `16kb`, `10mb`, `1gb` (binary units: kb = kib = 1024). */
export function parseSize(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?$/i.exec(input.trim());
  if (!m) return undefined;
  const n = Math.floor(Number(m[1]) * UNIT_BYTES[(m[2]?.toLowerCase() ?? 'b') as keyof typeof UNIT_BYTES]);
  return Number.isSafeInteger(n) ? n : undefined;
}
