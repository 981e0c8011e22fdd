import { startApp } from '../app.js';
import { loadOrReport } from './start.js';
import { parseFlags, required } from './usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, '--config');
  const config = loadOrReport(file);
  if (config === undefined) return 1;
  await startApp(config, { handleSignals: true });
  return -1;
}
