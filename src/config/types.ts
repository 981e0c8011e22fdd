// The validated, frozen configuration: types inferred from the one schema (definition.ts), so
// that TypeScript fields are the YAML keys. Durations are milliseconds, sizes bytes, day-count
// keys days, paths absolute (resolved against the config file's folder).

import type { configShape, matcherShape } from './definition.js';
import type { Infer } from './schema.js';

export type Config = Infer<typeof configShape> & {
  /** Absolute path of the YAML file this came from. */
  readonly file: string;
  readonly dir: string;
};

export type RouteConfig = Config['routes'][number];
/** One allow/deny entry: all present fields must match. A list value means any of. */
export type MatcherSpec = Infer<typeof matcherShape>;
export type MatcherField = keyof MatcherSpec;
export type TlsVersion = Config['tls']['minVersion'];
export type RevocationMode = 'hard' | 'soft';
