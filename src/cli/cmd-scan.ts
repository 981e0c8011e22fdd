// certgate scan HOST:PORT...: report each endpoint's certificate health; exit 1 on any problem.

import { readFileSync } from 'node:fs';
import { defaultScanPolicy, parseAddress, renderScanText, scanAll, type ScanTarget } from '../lifecycle/scan.js';
import { parseFlags, UsageError } from './usage.js';

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

function positiveInt(v: string | undefined, flag: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a whole number, got "${v}"`);
  return n;
}

export async function run(argv: string[], io: Io = stdout): Promise<number> {
  const { values, positionals } = parseFlags(
    argv,
    {
      servername: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      ca: { type: 'string' },
      json: { type: 'boolean' },
      'warn-days': { type: 'string' },
      timeout: { type: 'string' },
    },
    true,
  );
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
    warnDays: positiveInt(values['warn-days'], '--warn-days', 7),
    timeoutMs: positiveInt(values.timeout, '--timeout', 5000),
    policy: defaultScanPolicy,
  });
  const healthy = results.every((r) => r.healthy);
  io.write(values.json ? JSON.stringify({ healthy, endpoints: results }, null, 2) + '\n' : renderScanText(results));
  return healthy ? 0 : 1;
}
