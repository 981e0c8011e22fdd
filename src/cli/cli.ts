// The certgate command: finds the command in the table, answers --help from it, and maps
// errors to exit codes (0 ok, 1 failure, 2 usage error). Each command lives in its own file.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CA, CHECK, COMMANDS, DEMO, DEV_CERTS, EXPLAIN, INVENTORY, isGroup, RENEW, REVOCATIONS, REVOKE, SCAN, START, TEST } from './commands.js';
import { asksForHelp, HelpRequested, renderGroupHelp, renderHelp, synopsisOf, type CommandSpec, type GroupSpec } from './flags.js';
import { UsageError } from './usage.js';

type Command = (argv: string[]) => Promise<number>;

/** The code behind each table entry, loaded only when used. */
const RUNNERS = new Map<CommandSpec | GroupSpec, () => Promise<Command>>([
  [START, async () => (await import('./cmd-start.js')).run],
  [CHECK, async () => (await import('./cmd-check.js')).run],
  [EXPLAIN, async () => (await import('./explain.js')).run],
  [TEST, async () => (await import('./policy-test.js')).run],
  [DEV_CERTS, async () => (await import('./cmd-dev-certs.js')).run],
  [DEMO, async () => (await import('./cmd-demo.js')).run],
  [INVENTORY, async () => (await import('./cmd-inventory.js')).run],
  [SCAN, async () => (await import('./cmd-scan.js')).run],
  [CA, async () => (await import('./cmd-ca.js')).run],
  [RENEW, async () => (await import('./cmd-renew.js')).run],
  [REVOKE, async () => (await import('./cmd-revoke.js')).run],
  [REVOCATIONS, async () => (await import('./cmd-revoke.js')).runRevocations],
]);

export function topHelp(): string {
  const lines = ['certgate: an mTLS reverse proxy that authenticates clients by certificate', '', 'Usage:'];
  for (const c of COMMANDS) {
    const synopsis = isGroup(c)
      ? [`certgate ${c.name} ${Object.keys(c.subcommands).join('|')} ...`]
      : synopsisOf(c).map((l) => l.replace(/^(Usage: | {7})/, ''));
    lines.push(...synopsis.map((s) => `  ${s}`), `      ${c.summary}`);
  }
  lines.push('  certgate --help | --version', '', '"certgate COMMAND --help" shows the options of each command.', '', 'Exit codes: 0 ok, 1 failure (bad config, runtime error), 2 usage error.', '');
  return lines.join('\n');
}

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

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

/** Runs one certgate command line; long-running commands return -1 and keep the process alive. */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(topHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    io.out(`certgate ${version()}\n`);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (entry === undefined) {
    io.err(`certgate: unknown command "${name}"\n\n${topHelp()}`);
    return 2;
  }
  let spec: CommandSpec | undefined;
  if (isGroup(entry)) {
    const sub = rest[0];
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      io.out(renderGroupHelp(entry));
      return sub === undefined ? 2 : 0;
    }
    spec = entry.subcommands[sub];
    if (spec === undefined) {
      io.err(`certgate: unknown ${entry.name} command "${sub}"\n\n${renderGroupHelp(entry)}`);
      return 2;
    }
  } else {
    spec = entry;
  }
  const args = isGroup(entry) ? rest.slice(1) : rest;
  try {
    // Answered here, before the command runs, so that it never needs a valid rest of the line.
    if (asksForHelp(spec, args)) throw new HelpRequested(spec);
    return await (await RUNNERS.get(entry)!())(rest);
  } catch (err) {
    if (err instanceof HelpRequested) {
      io.out(renderHelp(err.spec));
      return 0;
    }
    if (err instanceof UsageError) {
      io.err(`certgate ${spec.name}: ${err.message}\n${synopsisOf(spec).join('\n')}\n"certgate ${spec.name} --help" lists every option.\n`);
      return 2;
    }
    io.err(`certgate: ${(err as Error).message}\n`);
    return 1;
  }
}
