// The admin listener's access built from a config file, for a process without a Runtime (the
// cluster primary): every error as a config issue, like a reload's.

import { checkConfig } from '../config/check.js';
import { formatConfigIssue } from '../config/issues.js';
import type { Config } from '../config/types.js';
import { MaterialError, materialConfigIssues } from '../tls/material.js';
import { buildAdminAccess, type AdminAccess } from './access.js';

/** The access, or the errors (formatted `file:line:col key: message`). */
export function adminAccessOf(config: Config): AdminAccess | string[] {
  try {
    return buildAdminAccess(config);
  } catch (err) {
    if (err instanceof MaterialError) return materialConfigIssues(config, err).map(formatConfigIssue);
    throw err;
  }
}

/** Reads the file again (a reload): its admin section, checked. */
export function adminAccessFromFile(file: string): AdminAccess | string[] {
  const checked = checkConfig(file);
  if (checked.config === undefined) return checked.issues.map(formatConfigIssue);
  return adminAccessOf(checked.config);
}
