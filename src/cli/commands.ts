// The command table: every command's name, summary, arguments and flags, in one place. Both the
// parseArgs options and the --help text are generated from it (flags.ts), so they cannot drift.

import type { CommandSpec, FlagSpec, GroupSpec } from './flags.js';

const EXIT_CODES = 'Exit codes: 0 ok, 1 failure, 2 usage error.';

const config = (description: string) => ({ type: 'string', short: 'c', value: 'FILE', description }) as const satisfies FlagSpec;
const caDir = { type: 'string', value: 'DIR', description: 'the CA directory (certgate ca init)' } as const satisfies FlagSpec;
/** The CA commands that read or change the index: with a Redis store, the fleet's one index. */
const caConfig = {
  type: 'string',
  short: 'c',
  value: 'FILE',
  description: "certgate config: its store (with Redis, the index every instance shares) and est.caDir (when --dir is not given)",
} as const satisfies FlagSpec;
const caDirOrConfig = { ...caDir, description: 'the CA directory (required unless --config gives est.caDir)' } as const satisfies FlagSpec;
const names = {
  ou: { type: 'string', multiple: true, value: 'OU', description: 'organizational unit' },
  uri: { type: 'string', multiple: true, value: 'URI', description: 'URI SAN, e.g. a SPIFFE ID' },
  dns: { type: 'string', multiple: true, value: 'NAME', description: 'DNS SAN' },
} as const satisfies Record<string, FlagSpec>;

/** The client certificate for an mTLS admin listener (admin.tls); admin.client in --config. */
const adminTls = {
  cert: { type: 'string', value: 'FILE', description: "client certificate for an mTLS admin listener (default: the config's admin.client.cert)" },
  key: { type: 'string', value: 'FILE', description: 'key of the client certificate (default: admin.client.key)' },
  ca: { type: 'string', value: 'FILE', description: "CA bundle that verifies the admin listener's certificate (default: admin.client.ca)" },
} as const satisfies Record<string, FlagSpec>;

/** How `revoke` and `revocations` reach certgate: the admin API, or the durable list itself. */
const adminAccess = {
  ...adminTls,
  admin: { type: 'string', value: 'URL', description: 'admin API of the running certgate (default: from --config, else http://127.0.0.1:9443)' },
  'token-file': { type: 'string', value: 'FILE', description: 'file holding the admin bearer token (default: admin.tokenFile from --config)' },
  config: config('certgate config: admin address, token file and revocation.dataDir come from it'),
  offline: { type: 'boolean', default: false, description: 'write or read the durable revocation list directly, without the admin API (not with a Redis store: a usage error)' },
  'data-dir': { type: 'string', value: 'DIR', description: 'with --offline: the revocation.dataDir (default: from --config)' },
} as const satisfies Record<string, FlagSpec>;

export const START = {
  name: 'start',
  summary: 'run the proxy (SIGHUP reloads, SIGTERM drains and exits)',
  synopsis: ['--config FILE'],
  flags: { config: config('the YAML config file (required)') },
  notes: ['Exit codes: 0 stopped cleanly, 1 bad config or a listener that cannot start, 2 usage error.'],
} as const satisfies CommandSpec;

export const CHECK = {
  name: 'check',
  summary: 'validate the config and its TLS material; print every error',
  synopsis: ['--config FILE'],
  flags: { config: config('the YAML config file (required)') },
  notes: ['Each error is printed as FILE:LINE:COL key.path: message.', 'Exit codes: 0 valid, 1 the config has errors, 2 usage error.'],
} as const satisfies CommandSpec;

const POLICY_EXIT = 'Exit codes: 0 allowed, 3 refused, 1 config or input error (a file that cannot be read, a bad DN), 2 usage error.';

export const EXPLAIN = {
  name: 'explain',
  summary: 'what a certificate or identity would reach on a request, and why: route by route, entry by entry',
  synopsis: [
    '--config FILE --cert PEM [--method M] [--path P] [--host H] [--json]',
    '--config FILE [--subject DN] [--uri URI]... [--dns NAME]... [--email ADDR]... [--spiffe ID]... [--issuer DN] [--serial S] [--fingerprint F] [--method M] [--path P] [--host H] [--json]',
  ],
  flags: {
    config: config('the YAML config file (required)'),
    cert: { type: 'string', value: 'PEM', description: 'client certificate (leaf first, then the chain it sends): trust, validity, clientCertPolicy and the local revocation list are applied too' },
    subject: { type: 'string', value: 'DN', description: 'instead of --cert: the subject, e.g. "CN=alice,OU=payments,O=Acme"' },
    uri: { ...names.uri, description: 'URI SAN; the first spiffe:// one is the SPIFFE ID' },
    dns: names.dns,
    email: { type: 'string', multiple: true, value: 'ADDR', description: 'email SAN' },
    spiffe: { type: 'string', multiple: true, value: 'ID', description: 'SPIFFE ID: the same as --uri ID, listed before the --uri values' },
    issuer: { type: 'string', value: 'DN', description: "the issuer's DN" },
    serial: { type: 'string', value: 'S', description: 'serial number (hex)' },
    fingerprint: { type: 'string', value: 'F', description: 'SHA-256 fingerprint' },
    method: { type: 'string', value: 'M', default: 'GET', description: 'request method' },
    path: { type: 'string', value: 'P', default: '/', description: 'request path' },
    host: { type: 'string', value: 'H', description: 'request Host (default: none)' },
    json: { type: 'boolean', description: 'print one JSON object (decision, status, route, rule, routes, entries, headers)' },
  },
  notes: [
    'The decision is made by the proxy\'s own policy code; the headers listed are those the backend would receive.',
    POLICY_EXIT,
  ],
} as const satisfies CommandSpec;

export const TEST = {
  name: 'test',
  summary: 'policy unit tests for CI: each case of a YAML file names a client, a request and the expected decision',
  synopsis: ['--config FILE CASES.yaml [--junit FILE]'],
  positionals: [{ name: 'CASES.yaml', description: 'the cases file (docs/policy.md); paths in it are relative to it' }],
  flags: {
    config: config('the YAML config file (required)'),
    junit: { type: 'string', value: 'FILE', description: 'also write a JUnit XML report' },
  },
  notes: ['Prints one line per case and a summary.', 'Exit codes: 0 every case passed, 1 a case failed or the config or cases file is invalid, 2 usage error.'],
} as const satisfies CommandSpec;

export const DEV_CERTS = {
  name: 'dev-certs',
  summary: 'write a dev root CA, intermediate, server certificate and client certificates (alice, bob, mallory)',
  synopsis: ['--out DIR [--force]'],
  flags: {
    out: { type: 'string', short: 'o', value: 'DIR', description: 'folder to write into (required)' },
    force: { type: 'boolean', description: 'replace existing files (default: keep a complete set, refuse a partial one)' },
  },
  notes: [EXIT_CODES],
} as const satisfies CommandSpec;

export const DEMO = {
  name: 'demo',
  summary: 'dev certificates (when absent), the echo backend and the proxy, with curl commands that fit the config (npm start)',
  flags: {
    config: { ...config('the YAML config file'), default: 'config/certgate.yaml' },
    certs: { type: 'string', value: 'DIR', default: 'certs-dev', description: 'dev certificates folder (written when it has no server.pem)' },
    'backend-port': { type: 'string', value: 'PORT', default: '9001', description: 'port of the echo backend on 127.0.0.1' },
  },
  notes: [EXIT_CODES],
} as const satisfies CommandSpec;

export const INVENTORY = {
  name: 'inventory',
  summary: 'client certificates seen by a running certgate, soonest expiry first',
  synopsis: ['(--admin URL | --config FILE) [--cert FILE --key FILE] [--ca FILE] [--expiring-within DURATION] [--json]'],
  flags: {
    admin: { type: 'string', value: 'URL', description: 'admin API of the running certgate, e.g. http://127.0.0.1:9443 (or from --config)' },
    config: config('certgate config: admin address and admin.client come from it'),
    'token-file': { type: 'string', value: 'FILE', description: 'admin bearer token, where reads need one (a plain admin listener off loopback)' },
    ...adminTls,
    'expiring-within': { type: 'string', value: 'DURATION', description: 'only certificates expiring within this time', duration: { bare: 'd' } },
    json: { type: 'boolean', description: 'print JSON instead of a table' },
  },
  notes: [EXIT_CODES],
} as const satisfies CommandSpec;

export const SCAN = {
  name: 'scan',
  summary: 'TLS endpoint report: chain, expiry, hostname, weak algorithms, missing intermediates, protocols and cipher suites offered',
  positionals: [{ name: 'HOST:PORT...', description: 'endpoints to scan: host:port, 127.0.0.1:8443, [::1]:8443 (port 443 when omitted)' }],
  flags: {
    servername: { type: 'string', value: 'NAME', description: 'TLS server name to send and to check the certificate against (default: the host)' },
    cert: { type: 'string', value: 'FILE', description: 'client certificate to present (with --key), for servers that require one' },
    key: { type: 'string', value: 'FILE', description: 'key of --cert' },
    ca: { type: 'string', value: 'FILE', description: 'CA certificates to verify against (default: the system store)' },
    json: { type: 'boolean', description: 'print JSON instead of a table' },
    'warn-days': { type: 'string', value: 'DAYS', default: '7', description: 'a certificate expiring within this many days is a problem' },
    timeout: { type: 'string', value: 'DURATION', default: '5s', description: 'per endpoint', duration: { bare: 'ms' } },
    quick: { type: 'boolean', description: 'one handshake only: skip the protocol, cipher suite, stapling and session ticket probes' },
  },
  notes: [
    'Besides the chain, scan probes which protocols (SSLv3 to TLSv1.3) and which cipher suite classes (NULL, anonymous, export, RC4, 3DES, CBC, no forward secrecy) the server accepts, OCSP stapling and must-staple, and the session ticket lifetime; each finding has a severity (info, low, medium, high, critical).',
    'Exit codes: 0 every endpoint healthy, 1 any problem (cannot connect, verification failed, expiring, hostname mismatch, weak algorithm, incomplete chain, a finding above info), 2 usage error.',
  ],
} as const satisfies CommandSpec;

export const RENEW = {
  name: 'renew',
  summary: 'renew a client certificate over EST (mTLS with the current one); both files replaced atomically',
  synopsis: ['--cert FILE --key FILE --url URL [--ca FILE] [--servername NAME]', '--cert FILE --key FILE --url URL --daemon [--at 2/3] [--retry-min DURATION] [--retry-max DURATION]'],
  flags: {
    cert: { type: 'string', value: 'FILE', description: 'the current certificate, replaced by the new one (required)' },
    key: { type: 'string', value: 'FILE', description: 'its key, replaced by a new key of the same algorithm (required)' },
    url: { type: 'string', value: 'URL', description: "certgate's base URL, e.g. https://certgate.internal:8443 (required)" },
    ca: { type: 'string', value: 'FILE', description: "CA certificates to verify certgate's server certificate (default: the system store)" },
    servername: { type: 'string', value: 'NAME', description: 'TLS server name to send (default: the host of --url)' },
    daemon: { type: 'boolean', description: 'keep running: renew at --at of each lifetime, retry failures with backoff' },
    at: { type: 'string', value: 'FRACTION', default: '2/3', description: 'with --daemon: renew when this fraction of the lifetime has passed (2/3, 0.7, 70%)' },
    'retry-min': { type: 'string', value: 'DURATION', default: '10s', description: 'with --daemon: first retry delay after a failure', duration: { bare: 's' } },
    'retry-max': { type: 'string', value: 'DURATION', default: '15m', description: 'with --daemon: longest retry delay', duration: { bare: 's' } },
  },
  notes: [
    'Without --daemon it tries once (for cron): before the CA opens the renewal window it changes nothing and prints when the window opens.',
    'Exit codes: 0 renewed, or not due yet (the renewal window has not opened); 1 renewal failed (refused, unreachable, unreadable files); 2 usage error.',
  ],
} as const satisfies CommandSpec;

export const REVOKE = {
  name: 'revoke',
  summary: 'revoke a client certificate now (admin API, or the durable list with --offline)',
  synopsis: ['(--serial S [--issuer DN] | --fingerprint F) --reason R [--config FILE | --admin URL (--token-file FILE | --cert FILE --key FILE) [--ca FILE]] [--offline [--data-dir DIR]]'],
  flags: {
    serial: { type: 'string', value: 'S', description: 'serial number (hex; colons and leading zeros allowed)' },
    issuer: { type: 'string', value: 'DN', description: "with --serial: the issuer's DN" },
    fingerprint: { type: 'string', value: 'F', description: 'SHA-256 fingerprint of the certificate (instead of --serial)' },
    reason: { type: 'string', value: 'R', description: 'why (required), e.g. keyCompromise' },
    ...adminAccess,
  },
  notes: [EXIT_CODES],
} as const satisfies CommandSpec;

export const REVOCATIONS_LIST = {
  name: 'revocations list',
  summary: 'print the local revocation entries as JSON',
  flags: adminAccess,
  notes: [EXIT_CODES],
} as const satisfies CommandSpec;

export const REVOCATIONS_DELETE = {
  name: 'revocations delete',
  summary: 'remove one local revocation entry',
  positionals: [{ name: 'ID', description: 'the entry id (from revocations list)' }],
  flags: adminAccess,
  notes: [EXIT_CODES],
} as const satisfies CommandSpec;

export const REVOCATIONS: GroupSpec = {
  name: 'revocations',
  summary: 'show or remove entries of the local revocation list',
  subcommands: { list: REVOCATIONS_LIST, delete: REVOCATIONS_DELETE },
};

const caNotes = [EXIT_CODES];

export const CA_INIT = {
  name: 'ca init',
  summary: 'create a CA in a directory: keys (0600), trust bundle, empty CRL, naming policy',
  synopsis: ['--dir DIR [--key-alg ALG] [--intermediate] [--name TEXT] [--days N]'],
  flags: {
    dir: { ...caDir, description: 'directory to create the CA in (required)' },
    'key-alg': { type: 'string', value: 'ALG', default: 'P-256', description: 'P-256, P-384, RSA-3072 or RSA-4096' },
    intermediate: { type: 'boolean', description: 'also create an intermediate that signs, so that the root key can go offline' },
    name: { type: 'string', value: 'TEXT', default: 'certgate', description: 'CA names: "TEXT root CA", "TEXT intermediate CA"' },
    days: { type: 'string', value: 'N', default: '3650', description: 'validity of the CA certificates in days' },
  },
  notes: caNotes,
} as const satisfies CommandSpec;

export const CA_ISSUE = {
  name: 'ca issue',
  summary: 'issue a client certificate: PREFIX.pem (leaf + chain), PREFIX-key.pem (0600), PREFIX-chain.pem',
  synopsis: [
    '(--dir DIR | --config FILE) --cn NAME [--ou OU]... [--o ORG] [--uri URI]... [--dns NAME]... [--days N | --ttl DURATION] [--key-alg ALG] [--profile client|admin] --out PREFIX',
    '(--dir DIR | --config FILE) --csr FILE [--days N | --ttl DURATION] --out PREFIX',
  ],
  flags: {
    dir: caDirOrConfig,
    config: caConfig,
    cn: { type: 'string', value: 'NAME', description: 'common name (required without --csr)' },
    o: { type: 'string', value: 'ORG', description: 'organization' },
    ...names,
    days: { type: 'string', value: 'N', description: 'validity in days (default 30)' },
    ttl: { type: 'string', value: 'DURATION', description: 'validity, instead of --days', duration: { bare: 's' } },
    'key-alg': { type: 'string', value: 'ALG', description: 'P-256 (default), P-384, RSA-2048, RSA-3072 or RSA-4096; not with --csr' },
    csr: { type: 'string', value: 'FILE', description: "sign this CSR (PEM) instead; its names must pass the CA's policy.json" },
    out: { type: 'string', value: 'PREFIX', description: 'output file prefix (required)' },
    profile: { type: 'string', value: 'NAME', default: 'client', description: 'client (default), or admin: a certificate for the mTLS admin listener (OU certgate-admin, clientAuth); not with --csr' },
  },
  notes: [
    'Profile admin: prints the admin.tls.allow entry that matches the certificate; add `role: read` to it for read-only access.',
    'Exit codes: 0 issued, 1 failure (a CSR the naming policy refuses, an unreadable CA), 2 usage error.',
  ],
} as const satisfies CommandSpec;

export const CA_LIST = {
  name: 'ca list',
  summary: 'every certificate the CA issued, with its state',
  synopsis: ['(--dir DIR | --config FILE) [--json]'],
  flags: { dir: caDirOrConfig, config: caConfig, json: { type: 'boolean', description: 'print JSON instead of a table' } },
  notes: caNotes,
} as const satisfies CommandSpec;

export const CA_REVOKE = {
  name: 'ca revoke',
  summary: 'revoke a certificate in the CA index and publish a new CRL; with --admin also at a running certgate',
  synopsis: ['(--dir DIR | --config FILE) --serial S [--reason R] [--admin URL (--token-file FILE | --cert FILE --key FILE) [--ca FILE]]'],
  flags: {
    dir: caDirOrConfig,
    config: caConfig,
    serial: { type: 'string', value: 'S', description: 'serial number (hex) (required)' },
    reason: { type: 'string', value: 'R', default: 'unspecified', description: 'keyCompromise, superseded, cessationOfOperation, affiliationChanged, ...' },
    admin: { type: 'string', value: 'URL', description: 'admin API of a running certgate: refuse the certificate there at once' },
    'token-file': { type: 'string', value: 'FILE', description: "with --admin: that certgate's admin.tokenFile" },
    ...adminTls,
  },
  notes: [
    'With --config and a Redis store the revocation is in the fleet\'s CA index and reaches every instance.',
    'Exit codes: 0 revoked, 1 failure (with --admin: the CA is updated but certgate was not reached), 2 usage error.',
  ],
} as const satisfies CommandSpec;

export const CA_CRL = {
  name: 'ca crl',
  summary: 'publish a fresh signed CRL (e.g. daily from cron, then reload certgate)',
  synopsis: ['(--dir DIR | --config FILE) [--out FILE] [--days N]'],
  flags: {
    dir: caDirOrConfig,
    config: caConfig,
    out: { type: 'string', value: 'FILE', description: 'where to write it (default: crl.pem in the CA directory)' },
    days: { type: 'string', value: 'N', description: 'validity in days (default 7)' },
  },
  notes: caNotes,
} as const satisfies CommandSpec;

export const CA_TOKEN = {
  name: 'ca token',
  summary: 'a one-time enrollment token for a first certificate over EST (printed alone on stdout)',
  synopsis: ['(--dir DIR | --config FILE) --cn NAME [--ou OU]... [--uri URI]... [--dns NAME]... [--ttl DURATION]'],
  flags: {
    dir: caDirOrConfig,
    config: caConfig,
    cn: { type: 'string', value: 'NAME', description: 'common name the certificate will carry (required)' },
    ...names,
    ttl: { type: 'string', value: 'DURATION', default: '15m', description: 'how long the token stays valid', duration: { bare: 's' } },
  },
  notes: caNotes,
} as const satisfies CommandSpec;

export const CA: GroupSpec = {
  name: 'ca',
  summary: 'a small issuing CA kept in one directory',
  subcommands: { init: CA_INIT, issue: CA_ISSUE, list: CA_LIST, revoke: CA_REVOKE, crl: CA_CRL, token: CA_TOKEN },
};

/** Top-level commands in the order `certgate --help` lists them. */
export const COMMANDS: readonly (CommandSpec | GroupSpec)[] = [START, CHECK, EXPLAIN, TEST, DEV_CERTS, DEMO, INVENTORY, SCAN, CA, RENEW, REVOKE, REVOCATIONS];

export function isGroup(c: CommandSpec | GroupSpec): c is GroupSpec {
  return 'subcommands' in c;
}

/** Every leaf command (groups expanded), for tests and the top-level help. */
export function leafCommands(): CommandSpec[] {
  return COMMANDS.flatMap((c) => (isGroup(c) ? Object.values(c.subcommands) : [c]));
}
