// certgate scan HOST:PORT...: report each endpoint's certificate health; exit 1 on any problem.

import { readFileSync } from 'node:fs';
import { defaultScanPolicy, parseAddress, renderScanText, scanAll, type ScanTarget } from '../lifecycle/scan.js';
import { SCAN } from './commands.js';
import { durationFlag, parseCommand, wholeNumberFlag } from './flags.js';
import { UsageError } from './usage.js';

export interface Io {
  write(text: string): void;
}

const stdout: Io = { write: (t) => void process.stdout.write(t) };

function readPem(path: string | undefined, flag: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function run(argv: string[], io: Io = stdout): Promise<number> {
  const { values, positionals } = parseCommand(SCAN, argv);
  if (positionals.length === 0) throw new UsageError('scan needs at least one HOST:PORT');
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
  let targets: ScanTarget[];
  try {
    targets = positionals.map(parseAddress);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const cert = readPem(values.cert, '--cert');
  const key = readPem(values.key, '--key');
  const ca = readPem(values.ca, '--ca');
  const results = await scanAll(targets, {
    ...(values.servername !== undefined ? { servername: values.servername } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(ca !== undefined ? { ca } : {}),
    warnDays: wholeNumberFlag('warn-days', values['warn-days'], 0),
    timeoutMs: durationFlag(SCAN, 'timeout', values.timeout),
    policy: defaultScanPolicy,
    probes: values.quick !== true,
  });
  const healthy = results.every((r) => r.healthy);
  io.write(values.json ? JSON.stringify({ healthy, endpoints: results }, null, 2) + '\n' : renderScanText(results));
  return healthy ? 0 : 1;
}
