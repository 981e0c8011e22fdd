// Waiting for a condition instead of sleeping: a loaded machine makes any fixed sleep either too
// short (flaky) or too long (slow). The deadline is generous because it is only reached on failure.
// Real time even under vi.useFakeTimers: the clock and timer are taken before a test can fake them.

const realNow = Date.now.bind(Date);
const realSetTimeout = globalThis.setTimeout.bind(globalThis);
const realClearTimeout = globalThis.clearTimeout.bind(globalThis);

export interface WaitOptions {
  /** Milliseconds before giving up (default 10 s). */
  readonly deadline?: number;
  /** Milliseconds between two checks (default 20). */
  readonly every?: number;
  /** Named in the timeout error. */
  readonly what?: string;
}

/** Resolves with the condition's first truthy value; rejects once the deadline has passed. */
export async function waitFor<T>(condition: () => Promise<T | undefined | null | false> | T | undefined | null | false, opts: WaitOptions = {}): Promise<T> {
  const deadline = opts.deadline ?? 10_000;
  const until = realNow() + deadline;
  for (;;) {
    const v = await condition();
    if (v !== undefined && v !== null && v !== false) return v;
    if (realNow() > until) throw new Error(`timed out after ${deadline} ms waiting for ${opts.what ?? String(condition)}`);
    await new Promise((r) => realSetTimeout(r, opts.every ?? 20));
  }
}

/** Resolves with the promise's value, or rejects when it does not settle within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => realClearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = realSetTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}
