import { LineCounter, parseDocument, type YAMLMap } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configShape } from '../../src/config/definition.js';
import { formatConfigIssue } from '../../src/config/issues.js';
import { parseConfig, RESTART_ONLY } from '../../src/config/load.js';
import { keyRows, object, optional, readRoot, valueAt, withDefault } from '../../src/config/schema.js';
import { parseDuration } from '../../src/util/duration.js';
import { duration, str } from '../../src/config/values.js';
import { Ctx } from '../../src/config/yaml.js';
import { configIssues } from '../helpers/config.js';

const FILE = '/etc/certgate/x.yaml';
const MINIMAL = 'listen: {port: 8443}\ntls: {cert: s.pem, key: k.pem, clientCAs: ca.pem}\nroutes: [{name: r, upstream: "http://u:1", allow: [{cn: a}]}]\n';

const issues = (text: string): string[] => configIssues(text, FILE);

const shape = {
  debounce: withDefault(duration, 250, 'Wait this long.', { aliases: ['debounceMs'] }),
  name: optional(str, 'A name.'),
};

/** Reads `text` with a one-off shape, as parseConfig reads the real one. */
function readWith(_s: typeof shape, text: string) {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false });
  const ctx = new Ctx(FILE, '/etc/certgate', lc, doc);
  const value = readRoot(ctx, doc.contents as YAMLMap, 0, object(shape));
  return { value, issues: ctx.issues.map(formatConfigIssue) };
}

describe('the config schema', () => {
  it('accepts an old spelling of a key as the key itself', () => {
    expect(readWith(shape, 'debounceMs: 2s\n')).toEqual({ value: { debounce: 2000 }, issues: [] });
    expect(readWith(shape, 'debounce: 2s\n')).toEqual({ value: { debounce: 2000 }, issues: [] });
  });

  it('refuses a key given under both its spellings, and hints at old spellings too', () => {
    expect(readWith(shape, 'debounce: 1s\ndebounceMs: 2s\n').issues).toEqual(['/etc/certgate/x.yaml:2:1 debounceMs: duplicate key (first set at line 1)']);
    expect(readWith(shape, 'debounceMx: 1s\n').issues).toEqual(['/etc/certgate/x.yaml:1:1 debounceMx: unknown key (did you mean "debounceMs"?)']);
  });

  it('marks as restart-only exactly the keys a reload refuses', () => {
    expect(RESTART_ONLY).toEqual([
      'listen.host', 'listen.port', 'listen.http2',
      ...['maxConcurrentStreams', 'maxHeaderListSize', 'maxHeaderPairs', 'maxResetsPerSecond', 'maxControlFramesPerSecond', 'maxInvalidFrames', 'maxRejectedStreams', 'streamIdleTimeout', 'sessionIdleTimeout'].map((k) => `limits.http2.${k}`),
      'admin.enabled', 'admin.host', 'admin.port', 'revocation.dataDir', 'store.instance', 'store.redis', 'workers']);
  });

  it.each(['30s', '15m', '7d', '1500ms', 2500])('accepts %j for every duration key', (value) => {
    const durations = keyRows(configShape).filter((r) => r.key.type.name === 'duration');
    expect(durations.length).toBeGreaterThan(10);
    for (const { path } of durations) {
      const yaml = path.startsWith('routes[].')
        ? MINIMAL.replace('allow: [{cn: a}]', `allow: [{cn: a}], ${nested(path.slice('routes[].'.length), value)}`)
        : path.startsWith('monitors[].')
          ? `${MINIMAL}monitors: [{address: "h:1", ${nested(path.slice('monitors[].'.length), value)}}]\n`
          : path.startsWith('alerts.webhooks[].')
            ? `${MINIMAL}alerts: {webhooks: [{url: "http://h/x", ${nested(path.slice('alerts.webhooks[].'.length), value)}}]}\n`
            : `${MINIMAL}${nested(path, value)}\n`.replace(/^(\w+): \{(.*)\}$/m, '$1: {$2}');
      expect(issues(merge(yaml)), `${path}: ${value}`).toEqual([]);
      // TypeScript fields are the YAML keys: the value is found under the same path.
      expect(valueAt(parseConfig(merge(yaml), FILE), path.replace('[]', '.0')), path).toBe(parseDuration(value));
    }
  });

  it.each([
    ['expiry: {warnDays: [7d, 30, 1d]}', (c: ReturnType<typeof parseConfig>) => c.expiry.warnDays, [30, 7, 1]],
    ['clientCertPolicy: {maxValidityDays: 90d}', (c: ReturnType<typeof parseConfig>) => c.clientCertPolicy.maxValidityDays, 90],
    ['clientCertPolicy: {maxValidityDays: 90}', (c: ReturnType<typeof parseConfig>) => c.clientCertPolicy.maxValidityDays, 90],
    ['est: {caDir: ca, renewWindowDays: 240h, days: 14d}', (c: ReturnType<typeof parseConfig>) => [c.est?.renewWindowDays, c.est?.days], [10, 14]],
    ['est: {caDir: ca, renewWindowDays: 5, days: "45"}', (c: ReturnType<typeof parseConfig>) => [c.est?.renewWindowDays, c.est?.days], [5, 45]],
  ])('reads day-count keys as numbers or 7d-style durations: %s', (extra, get, expected) => {
    expect(get(parseConfig(`${MINIMAL}${extra}\n`, FILE))).toEqual(expected);
  });

  it('refuses a day count that is not whole days', () => {
    expect(issues(`${MINIMAL}expiry: {warnDays: [12h]}\n`)).toEqual([
      '/etc/certgate/x.yaml:4:21 expiry.warnDays[0]: must be a whole number of days >= 0, such as 7 or 7d, got "12h"',
    ]);
    expect(issues(`${MINIMAL}clientCertPolicy: {maxValidityDays: 0}\n`)).toEqual([
      '/etc/certgate/x.yaml:4:37 clientCertPolicy.maxValidityDays: must be a whole number of days >= 1, such as 7 or 7d, got 0',
    ]);
  });
});

/** `a.b.c`, v -> `a: {b: {c: v}}` (flow style). */
function nested(path: string, value: string | number): string {
  const parts = path.split('.');
  return parts.reduceRight<string>((inner, k, i) => (i === parts.length - 1 ? `${k}: ${value}` : `${k}: {${inner}}`), '');
}

/** Merges duplicate top-level flow maps that nested() may add next to MINIMAL's (`tls:`). */
function merge(yaml: string): string {
  const lines = yaml.trimEnd().split('\n');
  const byKey = new Map<string, string[]>();
  const order: string[] = [];
  for (const line of lines) {
    const m = /^(\w+): \{(.*)\}$/.exec(line);
    if (!m) {
      order.push(line);
      continue;
    }
    if (!byKey.has(m[1]!)) {
      byKey.set(m[1]!, []);
      order.push(`\u0000${m[1]}`);
    }
    byKey.get(m[1]!)!.push(m[2]!);
  }
  return order.map((l) => (l.startsWith('\u0000') ? `${l.slice(1)}: {${byKey.get(l.slice(1))!.join(', ')}}` : l)).join('\n') + '\n';
}
