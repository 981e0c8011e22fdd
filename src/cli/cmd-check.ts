import { formatConfigIssue } from '../errors.js';
import { lintOwnCertificates } from '../lifecycle/lint.js';
import { loadCrlFiles } from '../revocation/checker.js';
import { loadTlsMaterial, materialConfigIssues, MaterialError } from '../tls/material.js';
import { loadOrReport } from './start.js';
import { parseFlags, required } from './usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, '--config');
  const config = loadOrReport(file);
  if (config === undefined) return 1;
  try {
    const material = loadTlsMaterial(config);
    // CRL files must be signed by a CA in the (now loaded) trust bundle, as at start.
    loadCrlFiles(config, material.cas);
    // clientCertPolicy.ownCerts: refuse fails the check as it fails start; warn only prints.
    const own = lintOwnCertificates(material, config);
    if (own.length > 0 && config.clientCertPolicy.ownCerts === 'refuse') throw new MaterialError(own);
    const warnings = own.length > 0 ? materialConfigIssues(config, new MaterialError(own)) : [];
    for (const i of warnings) process.stderr.write(`warning: ${formatConfigIssue(i)}\n`);
  } catch (err) {
    if (!(err instanceof MaterialError)) throw err;
    for (const i of materialConfigIssues(config, err)) process.stderr.write(formatConfigIssue(i) + '\n');
    return 1;
  }
  process.stdout.write(`${file}: ok (${config.routes.length} routes)\n`);
  return 0;
}
