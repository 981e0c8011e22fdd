import { startApp } from '../app.js';
import { loadOrReport } from './start.js';
import { START } from './commands.js';
import { parseCommand } from './flags.js';
import { required } from './usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(START, argv);
  const file = required(values.config, '--config');
  const config = loadOrReport(file);
  if (config === undefined) return 1;
  if (config.workers > 1) {
    // node:cluster runs this same command in every worker: the primary forks, workers serve.
    const { isClusterWorker, startPrimary, startWorker } = await import('../cluster.js');
    if (isClusterWorker()) await startWorker(config);
    else await startPrimary(config, { handleSignals: true });
    return -1;
  }
  await startApp(config, { handleSignals: true });
  return -1;
}
