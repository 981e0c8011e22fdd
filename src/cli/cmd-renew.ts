// certgate renew: renew a client certificate over EST (once, or as a daemon). Flags, help and
// exit codes in commands.ts.
import { parseFraction, renewOnce, RenewError, runRenewDaemon, type DaemonOptions } from '../ca/renew.js';
import { RENEW } from './commands.js';
import { durationFlag, parseCommand } from './flags.js';
import { required, UsageError } from './usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(RENEW, argv);
  const at = parseFraction(values.at);
  if (at === undefined) throw new UsageError('--at must be a fraction of the lifetime between 0 and 1, e.g. 2/3, 0.7 or 70%');
  const opts: DaemonOptions = {
    certFile: required(values.cert, '--cert'),
    keyFile: required(values.key, '--key'),
    url: required(values.url, '--url'),
    ...(values.ca !== undefined ? { caFile: values.ca } : {}),
    ...(values.servername !== undefined ? { servername: values.servername } : {}),
    at,
    minRetryMs: durationFlag(RENEW, 'retry-min', values['retry-min']),
    maxRetryMs: durationFlag(RENEW, 'retry-max', values['retry-max']),
  };
  try {
    new URL(opts.url);
  } catch {
    throw new UsageError(`--url must be a URL such as https://127.0.0.1:8443, got "${opts.url}"`);
  }
  if (!values.daemon) return renewNow(opts);
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const line = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...o }) + '\n');
  await runRenewDaemon({
    ...opts,
    signal: ac.signal,
    onEvent: (e) => {
      if (e.type === 'scheduled') line({ event: 'scheduled', renewAt: e.at.toISOString(), notAfter: e.notAfter.toISOString() });
      else if (e.type === 'renewed') line({ event: 'renewed', serial: e.serial, notAfter: e.notAfter.toISOString() });
      else line({ event: 'renew_failed', error: e.error.message, status: e.error.status, retryInMs: e.retryInMs });
    },
  });
  return 0;
}

/** One attempt, for cron: "not due yet" is success, so a daily job stays green until it renews. */
async function renewNow(opts: DaemonOptions): Promise<number> {
  try {
    const r = await renewOnce(opts);
    process.stdout.write(`renewed: serial ${r.serial}, valid until ${r.notAfter.toISOString()}; wrote ${opts.certFile} and ${opts.keyFile}\n`);
    return 0;
  } catch (err) {
    if (err instanceof RenewError && err.opensAt !== undefined) {
      process.stdout.write(`not due yet: renewal opens at ${err.opensAt.toISOString()}; ${opts.certFile} unchanged\n`);
      return 0;
    }
    throw err;
  }
}
