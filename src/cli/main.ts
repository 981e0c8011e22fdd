#!/usr/bin/env node
// The certgate command: wiring only; each subcommand lives in its own file.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './usage.js';

const HELP = `certgate: an mTLS reverse proxy that authenticates clients by certificate

Usage:
  certgate start --config FILE         run the proxy (SIGHUP reloads, SIGTERM drains and exits)
  certgate check --config FILE         validate config and TLS material; print every error
  certgate dev-certs --out DIR [--force]
                                       write a dev root CA, intermediate, server and client certs
  certgate demo --config FILE          dev certs if absent + echo backend + proxy (npm start)
  certgate inventory --admin URL [--expiring-within 30d] [--json]
                                       client certificates seen by a running certgate, soonest expiry first
  certgate scan HOST:PORT... [--servername N] [--cert C --key K] [--ca CA] [--json]
                                       TLS endpoint report: chain, expiry, hostname, weak algorithms,
                                       missing intermediates, TLS version; exit 1 on any problem
  certgate ca init|issue|list|revoke|crl|token --dir D ...
                                       a small issuing CA (certgate ca --help)
  certgate renew --cert C --key K --url URL [--ca CA] [--at 2/3] [--daemon]
                                       renew a client certificate over EST (mTLS), atomically
  certgate revoke (--serial S [--issuer DN] | --fingerprint F) --reason R
                 [--config FILE | --admin URL --token-file F] [--offline [--data-dir D]]
                                       revoke a client certificate now (admin API, or the durable list offline)
  certgate revocations list | delete ID [same flags as revoke]
                                       show or remove local revocation entries
  certgate --help | --version

Exit codes: 0 ok, 1 failure (bad config, runtime error), 2 usage error.
`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  start: async () => (await import('./cmd-start.js')).run,
  check: async () => (await import('./cmd-check.js')).run,
  'dev-certs': async () => (await import('./cmd-dev-certs.js')).run,
  demo: async () => (await import('./cmd-demo.js')).run,
  ca: async () => (await import('./cmd-ca.js')).run,
  renew: async () => (await import('./cmd-renew.js')).run,
  inventory: async () => (await import('./cmd-inventory.js')).run,
  scan: async () => (await import('./cmd-scan.js')).run,
  revoke: async () => (await import('./cmd-revoke.js')).run,
  revocations: async () => (await import('./cmd-revoke.js')).runRevocations,
};

function version(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    try {
      return (JSON.parse(readFileSync(join(here, up, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // try the next level: src/ and dist/src/ sit at different depths
    }
  }
  return 'unknown';
}

export async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === '--version' || sub === '-v') {
    process.stdout.write(`certgate ${version()}\n`);
    return 0;
  }
  const load = commands[sub];
  try {
    if (load === undefined) throw new UsageError(`unknown command "${sub}"`);
    return await (await load())(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`certgate: ${err.message}\n\n${HELP}`);
      return 2;
    }
    process.stderr.write(`certgate: ${(err as Error).message}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// Long-running commands return -1 and keep the process alive.
if (code >= 0) process.exitCode = code;
