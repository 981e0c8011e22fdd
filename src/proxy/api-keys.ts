// API keys for clients that have not moved to certificates yet. The key file lists
// `- { name, sha256, expires }` (the SHA-256 of the key in hex, never the key); it is read with
// the config's schema reader, so its errors carry `file:line:col`, and read again on every reload
// (a bad file fails the reload and the running keys stay). A presented key is hashed and compared
// with every entry in constant time; the key itself is never logged or stored.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { isSeq } from 'yaml';
import { ConfigError, sortIssues } from '../config/issues.js';
import { list, object, required, refine, scalar } from '../config/schema.js';
import { routeName, str } from '../config/values.js';
import { bad, offsetOf, parseYamlFile, scalarOf } from '../config/yaml.js';
import { apiKeyCounts } from '../metrics.js';
import type { KeyAnswer } from '../policy/certless.js';
import { MaterialError } from '../tls/material.js';

export interface ApiKeyEntry {
  readonly name: string;
  readonly hash: Buffer;
  /** Milliseconds: the key is refused from this instant on. */
  readonly expires: number;
  /** The answer for this key, made once. */
  readonly answer: { readonly name: string };
}

const sha256Hex = refine(str, (s, fail) => {
  const hex = s.replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : fail('must be the SHA-256 of the key in hex (64 hex digits), never the key itself');
}, 'sha256 hex');

/** `2025-06-30` (00:00 UTC that day) or an ISO 8601 date and time with a zone. */
const instant = scalar<number>('date', (ctx, v) => {
  const s = scalarOf(v.node);
  const ok = typeof s === 'string' && /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(s);
  const ms = ok ? Date.parse(s) : NaN;
  return Number.isNaN(ms) ? bad(ctx, v, 'must be a date such as 2025-06-30 or 2025-06-30T12:00:00Z') : ms;
});

const keyList = list(
  object(
    {
      name: required(routeName, 'Who holds the key (shown in logs, metrics, the inventory and to the upstream).'),
      sha256: required(sha256Hex, 'SHA-256 of the key, hex.'),
      expires: required(instant, 'From this date on the key is refused (api_key_expired).'),
    },
    { expect: 'a map with name, sha256 and expires' },
  ),
  {
    check: (values, items, ctx) => {
      const seen = new Map<string, string>();
      values.forEach((k, i) => {
        if (k === undefined) return;
        for (const [what, v] of [['name', k.name], ['sha256', k.sha256]] as const) {
          const first = seen.get(`${what}:${v}`);
          if (first !== undefined) ctx.report(items[i]!.at, `${items[i]!.path}.${what}`, `duplicate ${what} (first at ${first})`);
          else seen.set(`${what}:${v}`, items[i]!.path);
        }
      });
    },
  },
);

/** Parses a key file's text; throws ConfigError with every problem, positioned in that file. */
export function parseApiKeys(text: string, file: string): ApiKeyEntry[] {
  const { ctx, contents: root } = parseYamlFile(text, file);
  if (ctx.issues.length > 0) throw new ConfigError(ctx.issues);
  // An empty file is an empty list: every key retired.
  type Read = NonNullable<ReturnType<typeof keyList.read>>;
  const keys: Read | undefined = root === null || scalarOf(root) === null ? [] : isSeq(root) ? keyList.read(ctx, { node: root, at: offsetOf(root, 0), path: '' }) : bad(ctx, { node: root, at: offsetOf(root, 0), path: '(root)' }, 'the key file must be a list of { name, sha256, expires }');
  if (ctx.issues.length > 0 || keys === undefined) throw new ConfigError(sortIssues(ctx.issues));
  return keys.map((k) => Object.freeze({ name: k.name, hash: Buffer.from(k.sha256, 'hex'), expires: k.expires, answer: Object.freeze({ name: k.name }) }));
}

/** Reads `apiKeys.file`; an unreadable file is an error at that key of the config. */
export function loadApiKeys(file: string): ApiKeyTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MaterialError([{ path: 'apiKeys.file', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  return new ApiKeyTable(parseApiKeys(text, file));
}

export class ApiKeyTable {
  readonly entries: readonly ApiKeyEntry[];
  constructor(entries: readonly ApiKeyEntry[]) {
    this.entries = entries;
  }

  /** The key's entry by hash, every entry compared (no early exit), then its expiry. */
  check(key: string, now: number): KeyAnswer {
    const h = createHash('sha256').update(key, 'utf8').digest();
    let found: ApiKeyEntry | undefined;
    for (const e of this.entries) if (timingSafeEqual(h, e.hash) && found === undefined) found = e;
    if (found === undefined) return 'invalid';
    return now >= found.expires ? 'expired' : found.answer;
  }

  /** The name of the entry a key matches (expired or not); the rare path, for the log and the inventory. */
  nameOf(key: string): string | undefined {
    const h = createHash('sha256').update(key, 'utf8').digest();
    let found: string | undefined;
    for (const e of this.entries) if (timingSafeEqual(h, e.hash) && found === undefined) found = e.name;
    return found;
  }
}

/**
 * The key header of a request, from the raw headers: undefined when absent. Sent twice (or
 * empty) it cannot name one key: `''`, which matches no entry.
 */
export function keyHeaderValue(raw: readonly string[], header: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length !== header.length || n.toLowerCase() !== header) continue;
    if (value !== undefined) return '';
    value = raw[i + 1]!;
  }
  return value;
}

const LOG_EVERY_MS = 60_000;

/** Counts every key use and logs each key at most once a minute, with the retirement reminder. */
export class ApiKeyUsage {
  readonly #log: Logger;
  readonly #lastLogged = new Map<string, number>();
  constructor(log: Logger) {
    this.#log = log;
  }

  used(name: string, expired: boolean, route: string | undefined, now: number): void {
    apiKeyCounts.inc(name);
    const last = this.#lastLogged.get(name);
    if (last !== undefined && now - last < LOG_EVERY_MS) return;
    this.#lastLogged.set(name, now);
    this.#log.warn(
      { event: 'api_key_used', apiKey: name, route, expired },
      expired
        ? `expired API key "${name}" was presented and refused; this client must move to a client certificate`
        : `API key "${name}" used; API keys are being retired: move this client to a client certificate`,
    );
  }
}
