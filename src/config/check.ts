// `certgate check`, start and reload: every problem a config has, in one pass. The schema's
// errors, then the files the config names (server certificate and key, client CA bundles, CRL
// files), each at the line of its key: a file that cannot be read is an error for that key and
// the checking carries on with the rest. The file checks are those start and reload run
// (src/tls/material.ts, src/revocation/checker.ts), called here, not repeated.

import { lintOwnCertificates } from '../lifecycle/lint.js';
import { mustStapleProblem } from '../lifecycle/must-staple.js';
import { loadCrlFiles } from '../revocation/checker.js';
import { staplingProblem } from '../tls/stapling.js';
import { loadTlsMaterial, materialConfigIssues, MaterialError, type TlsMaterial, type TrustedCa } from '../tls/material.js';
import { loadApiKeys } from '../proxy/api-keys.js';
import { ConfigError, sortIssues, type ConfigIssue } from './issues.js';
import { buildAdminAccess } from '../admin/access.js';
import { readConfig, readConfigFile, unsupportedIssues } from './load.js';
import type { Config } from './types.js';

export interface ConfigCheck {
  /** Set only when there is no issue: the config to run. */
  readonly config?: Config;
  /** Errors: the config must not be used. File order. */
  readonly issues: readonly ConfigIssue[];
  /** Findings that do not stop it (clientCertPolicy.ownCerts: warn, an incomplete server chain). */
  readonly warnings: readonly ConfigIssue[];
}

/** Runs `load`, turning a MaterialError into positioned issues (a ConfigError has them); other errors propagate. */
function collect<T>(config: Config, into: ConfigIssue[], load: () => T): { value?: T; err?: MaterialError } {
  try {
    return { value: load() };
  } catch (err) {
    if (err instanceof ConfigError) {
      into.push(...err.issues);
      return {};
    }
    if (!(err instanceof MaterialError)) throw err;
    into.push(...materialConfigIssues(config, err));
    return { err };
  }
}

/** Checks a config already read (possibly with schema issues) against the files it names. */
export function checkFiles(config: Config, schemaIssues: readonly ConfigIssue[] = []): { issues: ConfigIssue[]; warnings: ConfigIssue[]; material?: TlsMaterial } {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const broken = (prefix: string) => schemaIssues.some((i) => i.path === prefix || i.path.startsWith(`${prefix}.`) || i.path.startsWith(`${prefix}[`));
  const tls = config.tls as Partial<Config['tls']>;
  let material: TlsMaterial | undefined;
  let cas: readonly TrustedCa[] = [];
  // Files are checked where the schema gave a usable value (a key with an error is left out of
  // `config`): a missing tls.key is already reported, and reporting it twice would not help.
  if (tls.cert !== undefined && tls.key !== undefined) {
    // With tls.clientCAs broken, the certificate and key are still checked (against no CAs).
    const usable = tls.clientCAs !== undefined ? config : { ...config, tls: { ...config.tls, clientCAs: [] } };
    const r = collect(config, issues, () => loadTlsMaterial(usable));
    material = r.value;
    cas = r.value?.cas ?? r.err?.cas ?? [];
    const stapling = material !== undefined ? staplingProblem(config, material) : undefined;
    const mustStaple = material !== undefined ? mustStapleProblem(config, material.serverChain[0]!) : undefined;
    const found = [
      ...(material?.warnings ?? []),
      ...(stapling !== undefined ? [{ path: 'tls.ocspStapling', message: stapling }] : []),
      ...(mustStaple !== undefined ? [{ path: 'tls.cert', message: mustStaple }] : []),
    ];
    if (found.length > 0) warnings.push(...materialConfigIssues(config, new MaterialError(found)));
    if (material !== undefined && tls.clientCAs !== undefined && !broken('clientCertPolicy')) {
      const own = lintOwnCertificates(material, config);
      const found = own.length > 0 ? materialConfigIssues(config, new MaterialError(own)) : [];
      (config.clientCertPolicy.ownCerts === 'refuse' ? issues : warnings).push(...found);
    }
  }
  if ((config.revocation.crl as Partial<Config['revocation']['crl']>).files !== undefined) collect(config, issues, () => loadCrlFiles(config, cas));
  if ((config.admin?.tls !== undefined || config.admin?.readTokenFile !== undefined) && !broken('admin')) collect(config, issues, () => buildAdminAccess(config));
  if (config.apiKeys?.file !== undefined) collect(config, issues, () => loadApiKeys(config.apiKeys!.file));
  issues.push(...unsupportedIssues(config));
  return { issues, warnings, ...(material !== undefined ? { material } : {}) };
}

/**
 * Every error of the config file at `file`, in one pass: unreadable file, YAML, schema, TLS
 * files, CRL files, keys this version cannot honour. `config` is set when there is none.
 */
export function checkConfig(file: string): ConfigCheck {
  const { text, issues: fileIssues } = readConfigFile(file);
  if (text === undefined) return { issues: fileIssues, warnings: [] };
  const { config, issues: schemaIssues } = readConfig(text, file);
  if (config === undefined) return { issues: schemaIssues, warnings: [] };
  const files = checkFiles(config, schemaIssues);
  const issues = sortIssues([...schemaIssues, ...files.issues]);
  return issues.length === 0 ? { config, issues, warnings: files.warnings } : { issues, warnings: files.warnings };
}
