// `npm start`: dev certificates (generated when absent), the echo backend, and certgate on the
// demo config, then a ready-to-paste curl command.

import { existsSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { writeDevCerts } from '../ca/dev-certs.js';
import { startEchoBackend } from '../demo/echo-backend.js';
import { startApp } from '../app.js';
import { loadOrReport } from './start.js';
import { parseFlags } from './usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    config: { type: 'string', short: 'c', default: 'config/certgate.yaml' },
    certs: { type: 'string', default: 'certs-dev' },
    'backend-port': { type: 'string', default: '9001' },
  });
  const certs = resolve(values.certs);
  if (!existsSync(resolve(certs, 'server.pem'))) {
    await writeDevCerts(certs);
    process.stdout.write(`generated dev certificates in ${relative(process.cwd(), certs) || certs}\n`);
  }
  const config = loadOrReport(values.config);
  if (config === undefined) return 1;
  const backend = await startEchoBackend(Number(values['backend-port']), '127.0.0.1', { record: false });
  const running = await startApp(config, { handleSignals: true }).catch(async (err: unknown) => {
    await backend.close();
    throw err;
  });
  process.once('exit', () => void backend.close());
  const c = relative(process.cwd(), certs) || '.';
  const host = config.listen.host === '127.0.0.1' || config.listen.host === '::1' ? 'localhost' : config.listen.host;
  process.stdout.write(
    [
      '',
      `certgate is listening on https://${host}:${running.port} in front of the echo backend at ${backend.url}`,
      '',
      'Call it as alice (allowed on /orders):',
      `  curl --cacert ${c}/root-ca.pem --cert ${c}/client-alice.pem --key ${c}/client-alice-key.pem https://${host}:${running.port}/orders/42`,
      '',
      'As mallory (refused with 403 identity_not_allowed), or with no certificate (401 certificate_required):',
      `  curl --cacert ${c}/root-ca.pem --cert ${c}/client-mallory.pem --key ${c}/client-mallory-key.pem https://${host}:${running.port}/orders/42`,
      `  curl --cacert ${c}/root-ca.pem https://${host}:${running.port}/orders/42`,
      '',
      `Admin API: http://${config.admin.host}:${config.admin.port}   Ctrl-C stops.`,
      '',
    ].join('\n'),
  );
  return -1;
}
