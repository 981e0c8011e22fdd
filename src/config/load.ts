// YAML -> validated, frozen Config, read with the one schema (definition.ts). Every problem is
// collected in one pass and thrown together as one ConfigError.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LineCounter, isMap, isScalar, parseDocument } from 'yaml';
import { configShape, configType } from './definition.js';
import { ConfigError, sortIssues, type ConfigIssue } from './issues.js';
import { defaultsOf, readRoot, restartPaths, valueAt } from './schema.js';
import type { Config } from './types.js';
import { bad, isNull, offsetOf, parseYamlFile } from './yaml.js';

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Reads a config with every problem found, without throwing. With problems, `config` is what
 * could be read (keys with errors left out), for checks that go on (TLS files, CRL files); it
 * must not be used to run. Without YAML syntax errors there is always a config.
 */
export function readConfig(text: string, file: string): { config?: Config; issues: ConfigIssue[] } {
  const { ctx, contents } = parseYamlFile(text, file);
  if (contents === undefined) return { issues: ctx.issues };
  if (!isMap(contents) && !isNull(contents)) bad(ctx, { node: contents, at: offsetOf(contents, 0), path: '(root)' }, 'the config must be a map');
  const values = readRoot(ctx, isMap(contents) ? contents : undefined, isMap(contents) ? offsetOf(contents, 0) : 0, configType);
  return { config: deepFreeze({ ...values, file: ctx.file, dir: ctx.dir }), issues: sortIssues(ctx.issues) };
}

/**
 * Parses and validates a config. `file` is the path the text came from: relative paths inside
 * are resolved against its folder. Throws ConfigError listing every problem.
 */
export function parseConfig(text: string, file: string): Config {
  const { config, issues } = readConfig(text, file);
  if (config === undefined || issues.length > 0) throw new ConfigError(issues);
  return config;
}

/** The text of a config file, or the issue at `(file)` saying why it cannot be read. */
export function readConfigFile(file: string): { text?: string; issues: ConfigIssue[] } {
  const abs = resolve(file);
  try {
    return { text: readFileSync(abs, 'utf8'), issues: [] };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'file not found' : e.code === 'EISDIR' ? 'is a directory, not a file' : `cannot be read (${e.code ?? e.message})`;
    return { issues: [{ file: abs, line: 1, col: 1, path: '(file)', message: why }] };
  }
}

/** Reads and parses a config file; an unreadable file is a ConfigError at `(file)`. */
export function loadConfig(file: string): Config {
  const { text, issues } = readConfigFile(file);
  if (text === undefined) throw new ConfigError(issues);
  return parseConfig(text, resolve(file));
}

/** Keys marked restart-only in the schema. */
export const RESTART_ONLY: readonly string[] = restartPaths(configShape);

/** Restart-only keys that differ between two configs (a reload refuses them). */
export function diffRestartOnly(a: Config, b: Config): string[] {
  return RESTART_ONLY.filter((p) => JSON.stringify(valueAt(a, p)) !== JSON.stringify(valueAt(b, p)));
}

/** The reload refusal for each restart-only key that `next` changes, at the key's line in next's file. */
export function restartOnlyIssues(prev: Config, next: Config): ConfigIssue[] {
  // Plain HTTP or mTLS is the kind of admin listener; its files and allow list may change.
  const adminKind = (prev.admin.tls === undefined) !== (next.admin.tls === undefined) ? ['admin.tls'] : [];
  return [...diffRestartOnly(prev, next), ...adminKind].map((path) => ({
    file: next.file,
    ...positionOf(next, path),
    path,
    message: 'cannot change while running; restart certgate to apply it',
  }));
}

/**
 * Where a key of a loaded config stands in its file, for errors found after validation (a cert
 * file that cannot be read, a key that does not match). Re-reads the file: only on the error path.
 */
export function positionOf(config: Config, keyPath: string): { line: number; col: number } {
  try {
    const text = readFileSync(config.file, 'utf8');
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false });
    const segments = keyPath.split(/\.|\[(\d+)\]/).filter((s) => s !== undefined && s !== '').map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    // Walk down as far as the path exists, so a missing leaf points at its parent.
    for (let n = segments.length; n > 0; n--) {
      const node = doc.getIn(segments.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node?.range !== undefined) return lc.linePos(node.range[0]);
      const parentMap = n === 1 ? doc.contents : doc.getIn(segments.slice(0, n - 1), true);
      if (isMap(parentMap)) {
        const pair = parentMap.items.find((p) => isScalar(p.key) && p.key.value === segments[n - 1]);
        const range = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
        if (range !== undefined) return lc.linePos(range[0]);
      }
    }
  } catch {
    // The file changed or vanished since it was loaded: fall back to its top.
  }
  return { line: 1, col: 1 };
}

/**
 * Keys that parse but that this version cannot honour yet (none at the moment; admin.tls was
 * the last). Refusing them at start and in `check` beats silently running without them.
 */
export function unsupportedIssues(_config: Config): ConfigIssue[] {
  return [];
}

/** clientCertPolicy when the config says nothing; also what `certgate scan` calls weak. */
export const CLIENT_CERT_POLICY_DEFAULTS = deepFreeze(
  defaultsOf(configShape.clientCertPolicy.type.fields!) as Omit<Config['clientCertPolicy'], 'maxValidityDays'>,
) as Readonly<Config['clientCertPolicy']>;
