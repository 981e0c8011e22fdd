// Shared by `start` and `demo`: load the config, reporting every error with file:line:col.

import { checkConfig } from '../config/check.js';
import { formatConfigIssue } from '../config/issues.js';
import type { Config } from '../config/types.js';

/** Loads and checks the config (schema, TLS and CRL files) in one pass; prints every error. */
export function loadOrReport(file: string, out: (line: string) => void = (l) => process.stderr.write(l + '\n')): Config | undefined {
  const { config, issues } = checkConfig(file);
  for (const i of issues) out(formatConfigIssue(i));
  return config;
}
