// `certgate start --config FILE`: load, build, listen; SIGHUP reloads; SIGTERM drains and exits 0.

import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { ConfigError, formatConfigIssue } from '../errors.js';
import { createLoggers, type Loggers } from '../log.js';
import { Certgate } from '../server.js';
import { MaterialError, materialConfigIssues } from '../tls/material.js';

export interface Running {
  readonly certgate: Certgate;
  readonly config: Config;
  readonly loggers: Loggers;
  readonly port: number;
  stop(): Promise<void>;
}

/** Loads and validates config and TLS material; prints every error. Returns undefined on failure. */
export function loadOrReport(file: string, out: (line: string) => void = (l) => process.stderr.write(l + '\n')): Config | undefined {
  try {
    return loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) for (const i of err.issues) out(formatConfigIssue(i));
    else out(`${file}: ${(err as Error).message}`);
    return undefined;
  }
}

export async function startCertgate(config: Config, opts: { handleSignals?: boolean } = {}): Promise<Running> {
  const loggers = createLoggers(config.log);
  let certgate: Certgate;
  try {
    certgate = new Certgate({ config, loggers });
  } catch (err) {
    if (err instanceof MaterialError) {
      throw new Error(materialConfigIssues(config, err).map(formatConfigIssue).join('\n'));
    }
    throw err;
  }
  const addr = await certgate.listen();
  loggers.log.info({ event: 'listening', host: addr.address, port: addr.port, routes: config.routes.length }, 'certgate listening');
  const stop = () => certgate.shutdown();
  if (opts.handleSignals) {
    process.on('SIGHUP', () => certgate.reload());
    const onTerm = () => {
      void stop().then(() => process.exit(0));
    };
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onTerm);
  }
  return { certgate, config, loggers, port: addr.port, stop };
}
