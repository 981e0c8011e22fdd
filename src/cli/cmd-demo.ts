// `npm start`: dev certificates (generated when absent), the echo backend, and certgate on the
// demo config, then ready-to-paste curl commands that fit that config (src/demo/hints.ts).

import { existsSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { writeDevCerts } from '../ca/dev-certs.js';
import { startEchoBackend } from '../demo/echo-backend.js';
import { demoHints, renderHints } from '../demo/hints.js';
import { startApp } from '../app.js';
import { loadTlsMaterial } from '../tls/material.js';
import { DEMO } from './commands.js';
import { parseCommand, wholeNumberFlag } from './flags.js';
import { loadOrReport } from './start.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(DEMO, argv);
  const backendPort = wholeNumberFlag('backend-port', values['backend-port'], 0);
  const certs = resolve(values.certs);
  if (!existsSync(resolve(certs, 'server.pem'))) {
    await writeDevCerts(certs);
    process.stdout.write(`generated dev certificates in ${relative(process.cwd(), certs) || certs}\n`);
  }
  const config = loadOrReport(values.config);
  if (config === undefined) return 1;
  const backend = await startEchoBackend(backendPort, '127.0.0.1', { record: false });
  const running = await startApp(config, { handleSignals: true }).catch(async (err: unknown) => {
    await backend.close();
    throw err;
  });
  process.once('exit', () => void backend.close());
  const host = ['127.0.0.1', '::1', '0.0.0.0', '::'].includes(config.listen.host) ? 'localhost' : config.listen.host;
  const hints = demoHints({ config, clientCas: loadTlsMaterial(config).cas, certsDir: certs, port: running.port });
  process.stdout.write(
    [
      '',
      `certgate is listening on https://${host}:${running.port} in front of the echo backend at ${backend.url}`,
      '',
      renderHints(hints),
      running.adminPort !== undefined ? `Admin API: http://${config.admin.host}:${running.adminPort}   Ctrl-C stops.` : 'Ctrl-C stops.',
      '',
    ].join('\n'),
  );
  return -1;
}
