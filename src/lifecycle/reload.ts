// Reload orchestration: load the config file, refuse restart-only changes, build a whole new
// Runtime beside the running one, and hand it back to be applied; on any error nothing changes
// and every error is reported (with its file:line:col when it comes from the config).

import type { Logger } from 'pino';
import { diffRestartOnly, loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { ConfigError, formatConfigIssue } from '../errors.js';
import type { ReloadResult } from '../proxy/events.js';
import type { PoolRegistry } from '../proxy/upstream.js';
import type { RevocationChecker } from '../revocation/types.js';
import { buildRuntime, type Runtime } from '../runtime.js';
import { MaterialError, materialConfigIssues } from '../tls/material.js';

export interface BuiltReload {
  readonly next: Runtime;
  /** Runs after the new runtime is in place (components that follow it). */
  readonly commit: () => void;
}

export function reloadRuntime(prev: Runtime, configFile: string, pools: PoolRegistry, revocation: RevocationChecker, log: Logger): ReloadResult | BuiltReload {
  const errors: string[] = [];
  try {
    const cfg = loadConfig(configFile);
    const fixed = diffRestartOnly(prev.config, cfg);
    if (fixed.length > 0) {
      errors.push(...fixed.map((k) => `${configFile}: ${k}: cannot change while running; restart certgate to apply it`));
    } else {
      const next = buildRuntime(cfg, pools);
      // CRL files are verified against the new trust bundle: a bad one fails the whole reload.
      const commitRevocation = revocation.prepare?.(cfg, next.tls.cas);
      return {
        next,
        commit: () => {
          commitRevocation?.();
          log.info({ event: 'reloaded', generation: next.generation }, 'configuration and TLS material reloaded');
        },
      };
    }
  } catch (err) {
    if (err instanceof ConfigError) errors.push(...err.issues.map(formatConfigIssue));
    else if (err instanceof MaterialError) errors.push(...materialConfigIssues(loadConfigQuietly(configFile) ?? prev.config, err).map(formatConfigIssue));
    else errors.push(`${configFile}: ${(err as Error).message}`);
  }
  for (const e of errors) log.error({ event: 'reload_failed' }, e);
  return { ok: false, errors, generation: prev.generation };
}

function loadConfigQuietly(file: string): Config | undefined {
  try {
    return loadConfig(file);
  } catch {
    return undefined;
  }
}
