// certgate renew: renew a client certificate over EST (once, or as a daemon).
import { parseFraction, renewOnce, runRenewDaemon, type DaemonOptions } from '../ca/renew.js';
import { parseDuration } from './cmd-ca.js';
import { parseFlags, required, UsageError } from './usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    cert: { type: 'string' },
    key: { type: 'string' },
    url: { type: 'string' },
    ca: { type: 'string' },
    servername: { type: 'string' },
    at: { type: 'string' },
    daemon: { type: 'boolean' },
    'retry-min': { type: 'string' },
    'retry-max': { type: 'string' },
  });
  const at = values.at !== undefined ? parseFraction(values.at) : 2 / 3;
  if (at === undefined) throw new UsageError('--at must be a fraction of the lifetime between 0 and 1, e.g. 2/3, 0.7 or 70%');
  const opts: DaemonOptions = {
    certFile: required(values.cert, '--cert'),
    keyFile: required(values.key, '--key'),
    url: required(values.url, '--url'),
    ...(values.ca !== undefined ? { caFile: values.ca } : {}),
    ...(values.servername !== undefined ? { servername: values.servername } : {}),
    at,
    ...(values['retry-min'] !== undefined ? { minRetryMs: parseDuration(values['retry-min']) } : {}),
    ...(values['retry-max'] !== undefined ? { maxRetryMs: parseDuration(values['retry-max']) } : {}),
  };
  try {
    new URL(opts.url);
  } catch {
    throw new UsageError(`--url must be a URL such as https://127.0.0.1:8443, got "${opts.url}"`);
  }
  if (!values.daemon) {
    const r = await renewOnce(opts);
    process.stdout.write(`renewed: serial ${r.serial}, valid until ${r.notAfter.toISOString()}; wrote ${opts.certFile} and ${opts.keyFile}\n`);
    return 0;
  }
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
