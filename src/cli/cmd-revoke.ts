// `certgate revoke` and `certgate revocations list|delete`: through the admin API (token from the
// same file the server reads), or with --offline straight into the durable list, under its lock.

import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { appendRecords, entryFromInput, readEntries, RevocationInputError } from '../revocation/local-list.js';
import { REVOCATIONS_DELETE, REVOCATIONS_LIST, REVOKE } from './commands.js';
import { parseCommand } from './flags.js';
import { adminRequest, adminTarget, unreachable, type AdminTarget } from './admin-client.js';
import { UsageError } from './usage.js';

function configOf(file: string | undefined): Config | undefined {
  return file === undefined ? undefined : loadConfig(file);
}

/** --offline writes one machine's file; with a Redis store that copy is not the fleet's list. */
function refuseOfflineWithRedis(offline: boolean, cfg: Config | undefined, file: string | undefined): void {
  if (offline && cfg?.store.redis !== undefined) {
    throw new UsageError(`--offline cannot be used with a Redis store (store.redis in ${file}): the fleet's list is in Redis; go through the admin API (drop --offline)`);
  }
}

function dataDirOf(v: { 'data-dir'?: string }, cfg: Config | undefined): string {
  const d = v['data-dir'] ?? cfg?.revocation.dataDir;
  if (d === undefined) throw new UsageError('--offline needs --data-dir DIR or --config FILE');
  return d;
}

async function call(t: AdminTarget, method: string, path: string, body?: unknown): Promise<number> {
  if (t.token === undefined && t.tls?.cert === undefined && method !== 'GET') {
    throw new UsageError('mutations need the admin token (--token-file FILE or --config FILE) or an admin client certificate (--cert/--key)');
  }
  let res: { status: number; text: string };
  try {
    res = await adminRequest(t, method, path, body);
  } catch (err) {
    process.stderr.write(unreachable(t.url, err));
    return 1;
  }
  const ok = res.status >= 200 && res.status < 300;
  (ok ? process.stdout : process.stderr).write(res.text.endsWith('\n') ? res.text : res.text + '\n');
  return ok ? 0 : 1;
}

export async function run(argv: string[]): Promise<number> {
  const { values: v } = parseCommand(REVOKE, argv);
  if ((v.serial === undefined) === (v.fingerprint === undefined)) throw new UsageError('give --serial S [--issuer DN] or --fingerprint F');
  if (v.reason === undefined) throw new UsageError('missing required flag --reason');
  if (v.issuer !== undefined && v.serial === undefined) throw new UsageError('--issuer goes with --serial');
  const input = {
    ...(v.serial !== undefined ? { serial: v.serial } : {}),
    ...(v.issuer !== undefined ? { issuer: v.issuer } : {}),
    ...(v.fingerprint !== undefined ? { fingerprint: v.fingerprint } : {}),
    reason: v.reason,
  };
  const cfg = configOf(v.config);
  refuseOfflineWithRedis(v.offline, cfg, v.config);
  if (v.offline) {
    let entry;
    try {
      entry = entryFromInput({ ...input, actor: `cli:${process.env.USER ?? process.getuid?.() ?? 'unknown'}` });
    } catch (err) {
      if (err instanceof RevocationInputError) throw new UsageError(err.message);
      throw err;
    }
    await appendRecords(dataDirOf(v, cfg), [{ op: 'add', entry }]);
    process.stdout.write(JSON.stringify(entry, null, 2) + '\n');
    return 0;
  }
  return call(adminTarget(v, cfg, 'http://127.0.0.1:9443'), 'POST', '/revocations', input);
}

/** `certgate revocations list` / `certgate revocations delete ID`. */
export async function runRevocations(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action !== 'list' && action !== 'delete') throw new UsageError('revocations: expected "list" or "delete ID"');
  const { values: v, positionals } = parseCommand(action === 'list' ? REVOCATIONS_LIST : REVOCATIONS_DELETE, rest);
  const cfg = configOf(v.config);
  refuseOfflineWithRedis(v.offline, cfg, v.config);
  if (action === 'list') {
    if (positionals.length > 0) throw new UsageError('revocations list takes no arguments');
    if (v.offline) {
      process.stdout.write(JSON.stringify({ revocations: [...readEntries(dataDirOf(v, cfg)).entries.values()] }, null, 2) + '\n');
      return 0;
    }
    return call(adminTarget(v, cfg, 'http://127.0.0.1:9443'), 'GET', '/revocations');
  }
  const id = positionals[0];
  if (id === undefined || positionals.length > 1) throw new UsageError('revocations delete takes one ID');
  if (v.offline) {
    const dir = dataDirOf(v, cfg);
    if (!readEntries(dir).entries.has(id)) {
      process.stderr.write(`certgate: no revocation with id ${id}\n`);
      return 1;
    }
    await appendRecords(dir, [{ op: 'remove', id, at: new Date().toISOString(), actor: `cli:${process.env.USER ?? 'unknown'}` }]);
    process.stdout.write(`removed ${id}\n`);
    return 0;
  }
  return call(adminTarget(v, cfg, 'http://127.0.0.1:9443'), 'DELETE', `/revocations/${encodeURIComponent(id)}`);
}
