// Config and material files as tests write them.

import { renameSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { ConfigError, formatConfigIssue } from '../../src/config/issues.js';
import { parseConfig } from '../../src/config/load.js';

/** Writes a file the way deploy tools do: a temp file beside it, then rename over it. */
export function atomicWrite(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.hrtime.bigint()}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** Writes a config object as YAML (atomically, so a watcher never reads half a file). */
export function writeYamlConfig(file: string, config: Record<string, unknown>): string {
  atomicWrite(file, stringify(config));
  return file;
}

/**
 * The config keys every test that starts certgate as a process writes alike: free ports on
 * loopback, the test PKI's files (pki.writeTo(dir)) and the admin API on.
 */
export const PROCESS_BASE = {
  listen: { host: '127.0.0.1', port: 0 },
  tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
  admin: { enabled: true, host: '127.0.0.1', port: 0 },
} as const;

/** The formatted issues (`file:line:col key: message`) a config text produces, or [] when valid. */
export function configIssues(text: string, file: string): string[] {
  try {
    parseConfig(text, file);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map(formatConfigIssue);
  }
}
