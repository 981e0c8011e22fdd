import { checkConfig } from '../config/check.js';
import { formatConfigIssue } from '../config/issues.js';
import { parseFlags, required } from './usage.js';

/** Every error of the config (schema, TLS files, CRL files) in one run; exit 1 if any. */
export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, '--config');
  const { config, issues, warnings } = checkConfig(file);
  for (const i of warnings) process.stderr.write(`warning: ${formatConfigIssue(i)}\n`);
  for (const i of issues) process.stderr.write(formatConfigIssue(i) + '\n');
  if (config === undefined) return 1;
  process.stdout.write(`${file}: ok (${config.routes.length} routes)\n`);
  return 0;
}
