// Shared by `start` and `demo`: load the config, reporting every error with file:line:col.

import { loadConfig, unsupportedIssues } from '../config/load.js';
import type { Config } from '../config/types.js';
import { ConfigError, formatConfigIssue } from '../errors.js';

/** Loads and validates config; prints every error. Returns undefined on failure. */
export function loadOrReport(file: string, out: (line: string) => void = (l) => process.stderr.write(l + '\n')): Config | undefined {
  try {
    const config = loadConfig(file);
    const unsupported = unsupportedIssues(config);
    for (const i of unsupported) out(formatConfigIssue(i));
    return unsupported.length === 0 ? config : undefined;
  } catch (err) {
    if (err instanceof ConfigError) for (const i of err.issues) out(formatConfigIssue(i));
    else out(`${file}: ${(err as Error).message}`);
    return undefined;
  }
}
