// certgate ca init|issue|list|revoke|crl|token: wiring only; the CA lives in src/ca/.
import { readFile } from 'node:fs/promises';
import { CertificateAuthority, initAuthority, stateOf, CA_FILES, type IndexEntry } from '../ca/authority.js';
import { writeFileAtomic } from '../util/files.js';
import { parseCsr } from '../ca/csr.js';
import { crlReasonCode, type KeyAlg } from '../ca/pki.js';
import { canonicalSerial } from '../identity/canonical.js';
import { CA_CRL, CA_INIT, CA_ISSUE, CA_LIST, CA_REVOKE, CA_TOKEN } from './commands.js';
import { durationFlag, parseCommand, wholeNumberFlag, type FlagValues } from './flags.js';
import { required, UsageError } from './usage.js';
import { join } from 'node:path';
import { adminRequest, adminTarget } from './admin-client.js';
import { PROFILES, type Profile, type ProfileName } from '../ca/profiles.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { pino } from 'pino';
import { LocalRevocationList } from '../revocation/local-list.js';
import { announceCaRevocation, fileStore, openStore, type Store } from '../store/index.js';

const DAY = 86_400_000;
const INIT_ALGS: readonly KeyAlg[] = ['P-256', 'P-384', 'RSA-3072', 'RSA-4096'];
const LEAF_ALGS: readonly KeyAlg[] = ['P-256', 'P-384', 'RSA-2048', 'RSA-3072', 'RSA-4096'];

function keyAlg(v: string | undefined, allowed: readonly KeyAlg[], fallback: KeyAlg): KeyAlg {
  if (v === undefined) return fallback;
  if (!allowed.includes(v as KeyAlg)) throw new UsageError(`--key-alg must be one of ${allowed.join(', ')}`);
  return v as KeyAlg;
}

function positiveInt(v: string | undefined, flag: string): number | undefined {
  return v === undefined ? undefined : wholeNumberFlag(flag, v);
}

const out = (s: string) => process.stdout.write(s);

/**
 * The CA of `--dir` (or the config's est.caDir) with the index of the config's store: with a
 * Redis store, the fleet's one index (every certificate any instance issued), else index.json.
 */
async function openCa(values: { dir?: string | undefined; config?: string | undefined }, config = values.config !== undefined ? loadConfig(values.config) : undefined): Promise<{ ca: CertificateAuthority; store: Store; config: Config | undefined }> {
  const dir = values.dir ?? config?.est?.caDir;
  if (dir === undefined) throw new UsageError(values.config !== undefined ? `missing required flag --dir (${values.config} has no est.caDir)` : 'missing required flag --dir (or --config FILE with est.caDir)');
  // The file store needs no revocation list here: the CLI's local-list writes go through cmd-revoke.
  const store = config?.store.redis !== undefined ? await openStore(config, pino({ enabled: false }), { requireConnection: true }) : fileStore(new LocalRevocationList({ dataDir: undefined }));
  try {
    return { ca: await CertificateAuthority.open(dir, { store }), store, config };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** Runs `fn` with the CA open and closes the store's connections after it. */
async function withCa<T>(values: { dir?: string | undefined; config?: string | undefined }, fn: (ca: CertificateAuthority, store: Store, config: Config | undefined) => Promise<T>): Promise<T> {
  const { ca, store, config } = await openCa(values);
  try {
    return await fn(ca, store, config);
  } finally {
    await store.close();
  }
}

/** `certgate ca SUB ...`: main has already answered --help and unknown SUBs from the table. */
export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'init':
      return init(rest);
    case 'issue':
      return issue(rest);
    case 'list':
      return list(rest);
    case 'revoke':
      return revoke(rest);
    case 'crl':
      return crl(rest);
    case 'token':
      return token(rest);
    default:
      throw new UsageError(`unknown ca command "${sub}" (certgate ca --help lists them)`);
  }
}

async function init(argv: string[]): Promise<number> {
  const { values } = parseCommand(CA_INIT, argv);
  const dir = required(values.dir, '--dir');
  const name = values.name;
  const ca = await initAuthority(dir, {
    keyAlg: keyAlg(values['key-alg'], INIT_ALGS, 'P-256'),
    intermediate: values.intermediate ?? false,
    rootSubject: { cn: `${name} root CA` },
    intermediateSubject: { cn: `${name} intermediate CA` },
    days: wholeNumberFlag('days', values.days),
  });
  out(`created a CA in ${dir}\n`);
  out(`  trust bundle for certgate (tls.clientCAs): ${join(dir, CA_FILES.caBundle)}\n`);
  out(`  CRL for certgate (revocation.crl.files):   ${join(dir, CA_FILES.crl)}\n`);
  out(`  signing with: ${ca.intermediatesPem === '' ? 'the root' : 'the intermediate'}; naming policy for CSRs: ${join(dir, CA_FILES.policy)}\n`);
  return 0;
}

async function issue(argv: string[]): Promise<number> {
  const { values } = parseCommand(CA_ISSUE, argv);
  const prefix = required(values.out, '--out');
  if (values.days !== undefined && values.ttl !== undefined) throw new UsageError('give --days or --ttl, not both');
  const days = positiveInt(values.days, 'days');
  const ttlMs = values.ttl !== undefined ? durationFlag(CA_ISSUE, 'ttl', values.ttl) : (days ?? 30) * DAY;
  const profileName = values.profile;
  if (!Object.hasOwn(PROFILES, profileName)) throw new UsageError(`unknown --profile "${profileName}" (client or admin)`);
  const profile: Profile = PROFILES[profileName as ProfileName];
  if (values.csr !== undefined && profileName !== 'client') throw new UsageError('--profile cannot be combined with --csr: the names come from the CSR');
  return withCa(values, (ca) => issueWith(ca, values, profile, ttlMs, prefix));
}

async function issueWith(ca: CertificateAuthority, values: FlagValues<typeof CA_ISSUE.flags>, profile: Profile, ttlMs: number, prefix: string): Promise<number> {
  let issued;
  if (values.csr !== undefined) {
    for (const f of ['cn', 'ou', 'o', 'uri', 'dns', 'key-alg'] as const) {
      if (values[f] !== undefined) throw new UsageError(`--${f} cannot be combined with --csr: the names come from the CSR, checked against ${CA_FILES.policy}`);
    }
    const parsed = await parseCsr(await readFile(values.csr, 'utf8'));
    const problems = await ca.policyViolations(parsed.names, Math.ceil(ttlMs / DAY));
    if (problems.length > 0) {
      process.stderr.write(`certgate: refused to sign ${values.csr}:\n${problems.map((p) => `  - ${p}\n`).join('')}`);
      return 1;
    }
    issued = await ca.issue({
      subject: parsed.names.subject,
      san: { uri: parsed.names.uri, dns: parsed.names.dns },
      publicKey: parsed.publicKey,
      ttlMs,
      source: 'csr',
    });
  } else {
    const cn = required(values.cn, '--cn');
    const ou = [...profile.ou, ...(values.ou ?? [])];
    issued = await ca.issue({
      subject: { cn, ...(values.o !== undefined ? { o: values.o } : {}), ...(ou.length > 0 ? { ou } : {}) },
      eku: [...profile.eku],
      san: { uri: values.uri ?? [], dns: values.dns ?? [] },
      keyAlg: keyAlg(values['key-alg'], LEAF_ALGS, 'P-256'),
      ttlMs,
      source: 'cli',
    });
  }
  // Key first, so that the certificate never appears without its key.
  if (issued.keyPem !== undefined) await writeFileAtomic(`${prefix}-key.pem`, issued.keyPem, 0o600);
  await writeFileAtomic(`${prefix}-chain.pem`, ca.intermediatesPem === '' ? ca.rootPem : `${ca.intermediatesPem.trim()}\n${ca.rootPem.trim()}\n`, 0o644);
  await writeFileAtomic(`${prefix}.pem`, issued.chainPem, 0o644);
  out(`issued ${issued.entry.subject} serial ${issued.serial}, valid until ${issued.entry.notAfter}\n`);
  out(`  ${prefix}.pem${issued.keyPem !== undefined ? `  ${prefix}-key.pem` : ''}  ${prefix}-chain.pem\n`);
  if (profile.allowEntry !== undefined && values.cn !== undefined) out(`  admin.tls.allow entry: ${profile.allowEntry(values.cn)}\n`);
  return 0;
}

function row(e: IndexEntry, now: number): string {
  const names = [e.subject, ...e.uri, ...e.dns].join(' ');
  return `${e.serial.padEnd(32)}  ${stateOf(e, now).padEnd(7)}  ${e.notAfter}  ${names}\n`;
}

async function list(argv: string[]): Promise<number> {
  const { values } = parseCommand(CA_LIST, argv);
  const entries = await withCa(values, (ca) => ca.list());
  const now = Date.now();
  if (values.json) {
    out(JSON.stringify(entries.map((e) => ({ ...e, state: stateOf(e, now) })), null, 2) + '\n');
    return 0;
  }
  out(`${'SERIAL'.padEnd(32)}  ${'STATE'.padEnd(7)}  ${'NOT AFTER'.padEnd(24)}  NAMES\n`);
  for (const e of entries) out(row(e, now));
  return 0;
}

async function revoke(argv: string[]): Promise<number> {
  const { values } = parseCommand(CA_REVOKE, argv);
  const serial = canonicalSerial(required(values.serial, '--serial'));
  if (serial === undefined) throw new UsageError('--serial must be a hex serial number');
  const reason = values.reason;
  try {
    crlReasonCode(reason);
  } catch {
    throw new UsageError(`unknown --reason "${reason}" (e.g. keyCompromise, superseded, cessationOfOperation, affiliationChanged, unspecified)`);
  }
  if (values.admin !== undefined && values['token-file'] === undefined && values.cert === undefined) {
    throw new UsageError('--admin needs --token-file (the admin.tokenFile of that certgate) or an admin client certificate (--cert/--key)');
  }
  const target = values.admin !== undefined ? adminTarget(values, undefined) : undefined;
  const { r, issuerDn, fleet } = await withCa(values, async (ca, store) => {
    const r = await ca.revoke(serial, reason);
    // With a Redis store the revocation also goes to the fleet's revocation list (every instance).
    const fleet = store.kind === 'redis' ? await announceCaRevocation(store, { serial, issuer: ca.issuerDn, reason }) : undefined;
    return { r, issuerDn: ca.issuerDn, fleet };
  });
  out(`${r.alreadyRevoked ? 'already revoked' : 'revoked'} ${serial} (${r.entry.subject}); CRL published to ${r.crlPath}\n`);
  if (fleet === 'propagated') out('revoked in the fleet: every instance refuses it and closes its open connections\n');
  if (fleet === 'pending') process.stderr.write('certgate: Redis went out of reach: the revocation is in the local journal and reaches the fleet when Redis returns\n');
  if (target === undefined) return 0;
  // The CRL reaches certgate on its next reload; the admin API makes it refuse at once.
  const where = `${target.url}/revocations`;
  try {
    const res = await adminRequest(target, 'POST', '/revocations', { serial, issuer: issuerDn, reason });
    if (res.status >= 300) {
      process.stderr.write(`certgate: the CA index and CRL are updated, but ${where} answered ${res.status}: ${res.text.slice(0, 300)}\n`);
      return 1;
    }
    out(`revoked at ${values.admin} too: open connections with this certificate are closed\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`certgate: the CA index and CRL are updated, but ${where} could not be reached: ${(err as Error).message}\n`);
    return 1;
  }
}

async function crl(argv: string[]): Promise<number> {
  const { values } = parseCommand(CA_CRL, argv);
  const days = positiveInt(values.days, 'days');
  const r = await withCa(values, (ca) => ca.publishCrl({ ...(values.out !== undefined ? { out: values.out } : {}), ...(days !== undefined ? { days } : {}) }));
  out(`wrote a CRL with ${r.entries} revoked certificate(s) to ${r.path}; next update ${r.nextUpdate.toISOString()}\n`);
  return 0;
}

async function token(argv: string[]): Promise<number> {
  const { values } = parseCommand(CA_TOKEN, argv);
  const cn = required(values.cn, '--cn');
  const ttl = durationFlag(CA_TOKEN, 'ttl', values.ttl);
  const t = await withCa(values, (ca) => ca.createToken({ cn, ou: values.ou ?? [], uri: values.uri ?? [], dns: values.dns ?? [] }, ttl));
  // Only the token on stdout, so that scripts can capture it; the rest to stderr.
  out(`${t.token}\n`);
  process.stderr.write(`one-time enrollment token, valid until ${t.expiresAt.toISOString()}\n`);
  return 0;
}
