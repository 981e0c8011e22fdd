// Reload orchestration: load the config file, refuse restart-only changes, build a whole new
// Runtime beside the running one, then apply it to every component in order (the proxy listener
// first, then revocation, monitors, lifecycle) and log. On any error nothing changes and every
// error is reported (with its file:line:col when it comes from the config).

import type { Logger } from 'pino';
import { checkConfig } from '../config/check.js';
import { ConfigError, formatConfigIssue } from '../config/issues.js';
import { restartOnlyIssues } from '../config/load.js';
import type { Config } from '../config/types.js';
import type { Observer, ReloadResult } from '../proxy/events.js';
import type { PoolRegistry } from '../proxy/upstream.js';
import { buildRuntime, type Runtime } from '../runtime.js';
import { MaterialError, materialConfigIssues } from '../tls/material.js';

/** A component that follows the runtime: re-configured from each new runtime, never patched. */
export interface FollowsRuntime {
  apply(next: Runtime, prev: Runtime): void;
  /** A reload that changed nothing (alerts). */
  failed?(errors: readonly string[]): void;
}

export interface ReloadSpec {
  readonly configFile: string;
  /** Applied to the loaded config before anything else (a cluster worker's own adjustments). */
  readonly adjust?: (c: Config) => Config;
  readonly current: Runtime;
  /** Pools and upstream health: mutable state shared by every runtime. */
  readonly pools: PoolRegistry;
  /** In order; the first one swaps the runtime reference. */
  readonly components: readonly FollowsRuntime[];
  readonly log: Logger;
  readonly observer?: Observer;
}

export function reload(spec: ReloadSpec): ReloadResult {
  const { configFile, current: prev, log } = spec;
  const built = build(prev, configFile, spec.pools, spec.adjust ?? ((c) => c));
  if (Array.isArray(built)) {
    for (const e of built) log.error({ event: 'reload_failed' }, e);
    spec.observer?.reloaded?.(false, undefined, built);
    for (const c of spec.components) c.failed?.(built);
    return { ok: false, errors: built, generation: prev.generation };
  }
  const next = built;
  for (const c of spec.components) c.apply(next, prev);
  log.info({ event: 'reloaded', generation: next.generation }, 'configuration and TLS material reloaded');
  spec.observer?.reloaded?.(true, next, []);
  return { ok: true, errors: [], generation: next.generation };
}

/** The new runtime, or every error that prevents it (all of them, in one pass). */
function build(prev: Runtime, configFile: string, pools: PoolRegistry, adjust: (c: Config) => Config): Runtime | string[] {
  const checked = checkConfig(configFile);
  if (checked.config === undefined) return checked.issues.map(formatConfigIssue);
  const cfg = adjust(checked.config);
  const fixed = restartOnlyIssues(prev.config, cfg);
  if (fixed.length > 0) return fixed.map(formatConfigIssue);
  try {
    return buildRuntime(cfg, pools);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map(formatConfigIssue);
    if (err instanceof MaterialError) return materialConfigIssues(cfg, err).map(formatConfigIssue);
    return [`${configFile}: ${(err as Error).message}`];
  }
}
