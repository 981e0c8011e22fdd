// certgate explain and certgate test, run as users run them (the built CLI in a real process),
// with certificates from the test PKI: every exit code, --json and --junit.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { appendRecords, entryFromInput } from '../../src/revocation/local-list.js';
import { runCli } from '../helpers/cli.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let dir: string;
let config: string;
const files: Record<string, string> = {};

const CONFIG = `listen: {port: 0}
tls: {cert: server.pem, key: server-key.pem, clientCAs: ca-bundle.pem}
clientCertPolicy: {curves: [P-256]}
routes:
  - name: admin
    match: {pathPrefix: /admin, methods: [POST]}
    upstream: http://127.0.0.1:1
    allow: [{ou: ops}]
  - name: orders
    match: {pathPrefix: /orders, host: api.example.com}
    upstream: http://127.0.0.1:1
    deny: [{name: no-mallory, cn: mallory}]
    allow:
      - {name: payments, ou: payments}
      - {spiffe: "spiffe://acme.org/ns/prod/**"}
`;

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-policy-cli-'));
  await pki.writeTo(dir);
  config = join(dir, 'certgate.yaml');
  writeFileSync(config, CONFIG);
  const write = async (name: string, opts: Parameters<TestPki['client']>[0]) => {
    const c = await pki.client(opts);
    writeFileSync((files[name] = join(dir, `${name}.pem`)), c.chainPem);
    return c;
  };
  await write('alice', { subject: 'CN=alice, OU=payments, O=Acme' });
  await write('expired', { subject: 'CN=old, OU=payments, O=Acme', notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  await write('weak', { subject: 'CN=p384, OU=payments, O=Acme', keyAlg: 'P-384' });
  const revoked = await write('revoked', { subject: 'CN=gone, OU=payments, O=Acme' });
  await appendRecords(join(dir, 'data'), [{ op: 'add', entry: entryFromInput({ fingerprint: revoked.fingerprint256, reason: 'keyCompromise', actor: 'test' }) }]);
  const other = await pki.untrustedRoot();
  const stranger = await other.client({ subject: 'CN=alice, OU=payments, O=Acme' });
  writeFileSync((files.stranger = join(dir, 'stranger.pem')), stranger.chainPem);
});

const explain = (...args: string[]) => runCli(['explain', '--config', config, ...args]);

describe('certgate explain', () => {
  it('explains an allowed identity given by flags: every route, every entry, the deciding rule, the headers; exit 0', async () => {
    const r = await explain('--subject', 'CN=bob,OU=support,O=Acme', '--spiffe', 'spiffe://acme.org/ns/prod/sa/bob', '--path', '/orders/7', '--host', 'api.example.com');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('admin                no match: method GET is not one of [POST]; path /orders/7 is not under /admin');
    expect(r.stdout).toContain('orders               matched');
    expect(r.stdout).toMatch(/no +deny\[0\] no-mallory\n +- cn \(bob\) does not match mallory/);
    expect(r.stdout).toMatch(/no +allow\[0\] payments\n +- ou \(support\) does not match payments/);
    expect(r.stdout).toMatch(/yes allow\[1\] +<- decides\n +\+ spiffe spiffe:\/\/acme.org\/ns\/prod\/sa\/bob matches spiffe:\/\/acme.org\/ns\/prod\/\*\*/);
    expect(r.stdout).toContain('decision  allowed by allow[1] on route orders');
    expect(r.stdout).toContain('x-client-cert-spiffe: spiffe://acme.org/ns/prod/sa/bob');
    expect(r.stdout).toContain('x-forwarded-client-cert: Hash=');
    expect(r.stdout).toContain('x-forwarded-host: api.example.com');
  });

  it('--json: decision, status, route and rule of a refusal by a named deny entry; exit 3', async () => {
    const r = await explain('--subject', 'CN=mallory,OU=payments,O=Acme', '--path', '/orders', '--host', 'api.example.com', '--json');
    expect(r.code).toBe(3);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ decision: 'identity_not_allowed', status: 403, route: 'orders', rule: 'deny[no-mallory]', headers: null });
    expect(j.policy.deny[0]).toMatchObject({ name: 'no-mallory', matched: true, decided: true, checks: [{ field: 'cn', values: ['mallory'], matching: ['mallory'], ok: true }] });
    expect(j.routes.map((x: { state: string }) => x.state)).toEqual(['no match', 'matched']);
  });

  it('a request no route takes: route_not_found, 404, exit 3', async () => {
    const r = await explain('--subject', 'CN=alice', '--path', '/orders', '--json');
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'route_not_found', status: 404, route: null, rule: null });
  });

  it('--cert: trust, validity, clientCertPolicy and the local revocation list pass, then the policy allows; exit 0', async () => {
    const r = await explain('--cert', files.alice!, '--path', '/orders', '--host', 'api.example.com');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/yes trust +issued by CN=certgate test intermediate/i);
    expect(r.stdout).toMatch(/yes revocation +not in the local revocation list/);
    expect(r.stdout).toContain('decision  allowed by allow[payments] on route orders');
  });

  it.each([
    ['untrusted', 'stranger', 'certificate_untrusted', 403],
    ['expired', 'expired', 'certificate_expired', 403],
    ['weak (clientCertPolicy.curves)', 'weak', 'weak_certificate', 403],
    ['revoked in the local list', 'revoked', 'certificate_revoked', 403],
  ])('--cert %s: refused as the proxy refuses it, before any route; exit 3', async (_name, file, code, status) => {
    const r = await explain('--cert', files[file]!, '--path', '/orders', '--host', 'api.example.com', '--json');
    expect(r.code).toBe(3);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ decision: code, status, route: 'orders', rule: null });
    expect(j.certificate.find((c: { ok: boolean }) => !c.ok)).toBeDefined();
  });

  it('exit 1 on a config error (with file:line:col) and on a certificate file that cannot be read', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, CONFIG.replace('allow: [{ou: ops}]', 'allow: [{ouu: ops}]'));
    const r = await runCli(['explain', '--config', bad, '--subject', 'CN=a']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}:8:14 routes[0].allow[0].ouu: unknown key (did you mean "ou"?)`);
    const missing = await explain('--cert', join(dir, 'nope.pem'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope.pem: ENOENT');
    const dn = await explain('--spiffe', 'https://not-spiffe');
    expect(dn.code).toBe(1);
    expect(dn.stderr).toContain('must start with "spiffe://"');
  });

  it('exit 2 without a client, or with both --cert and identity flags', async () => {
    const none = await explain();
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('give a client');
    const both = await explain('--cert', files.alice!, '--subject', 'CN=a');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give either --cert or identity flags');
  });
});

describe('certgate test', () => {
  const cases = (name: string, text: string): string => {
    const sub = join(dir, 'policy');
    mkdirSync(sub, { recursive: true });
    const f = join(sub, name);
    writeFileSync(f, text);
    return f;
  };

  const PASSING = `cases:
  - name: payments client reads orders
    cert: ../alice.pem
    request: {path: /orders/1, host: api.example.com}
    expect: allow
    route: orders
  - name: mallory is denied
    identity: {subject: "CN=mallory,OU=payments,O=Acme"}
    request: {path: /orders, host: api.example.com}
    expect: identity_not_allowed
  - name: prod workloads by SPIFFE ID
    identity: {spiffe: "spiffe://acme.org/ns/prod/sa/batch"}
    request: {method: GET, path: /orders, host: api.example.com}
    expect: allow
  - name: no route for the root
    identity: {subject: "CN=alice"}
    expect: route_not_found
  - name: a revoked certificate
    cert: ../revoked.pem
    request: {path: /orders, host: api.example.com}
    expect: certificate_revoked
`;

  it('runs every case through the proxy\'s decision: one line each, a summary, JUnit XML; exit 0', async () => {
    const junit = join(dir, 'junit-pass.xml');
    const r = await runCli(['test', '--config', config, cases('pass.yaml', PASSING), '--junit', junit], { cwd: tmpdir() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      'ok    payments client reads orders: allow on route orders, decided by allow[payments]',
      'ok    mallory is denied: identity_not_allowed (403) on route orders, decided by deny[no-mallory]',
      'ok    prod workloads by SPIFFE ID: allow on route orders, decided by allow[1]',
      'ok    no route for the root: route_not_found (404)',
      'ok    a revoked certificate: certificate_revoked (403) on route orders',
      '',
      '5 cases: 5 passed, 0 failed',
    ]);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toContain('<testsuites name="certgate test" tests="5" failures="0">');
    expect(xml).toContain('<testcase classname="certgate.policy" name="mallory is denied"/>');
  });

  it('names each failing case with expected and actual decision and the deciding rule; JUnit failures; exit 1', async () => {
    const junit = join(dir, 'junit-fail.xml');
    const f = cases(
      'fail.yaml',
      `cases:
  - name: mallory should get in
    identity: {subject: "CN=mallory,OU=payments,O=Acme"}
    request: {path: /orders, host: api.example.com}
    expect: allow
  - name: wrong route
    cert: ../alice.pem
    request: {path: /orders, host: api.example.com}
    expect: allow
    route: admin
  - name: still fine
    identity: {subject: "CN=x,OU=payments"}
    request: {path: /orders, host: api.example.com}
    expect: allow
`,
    );
    const r = await runCli(['test', '--config', config, f, '--junit', junit]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAIL  mallory should get in: expected allow, got identity_not_allowed (403) on route orders, decided by deny[no-mallory]');
    expect(r.stdout).toContain('FAIL  wrong route: expected route admin, got route orders (allow on route orders, decided by allow[payments])');
    expect(r.stdout).toContain('ok    still fine');
    expect(r.stdout).toContain('3 cases: 1 passed, 2 failed');
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toContain('failures="2"');
    expect(xml).toContain('<failure message="expected allow, got identity_not_allowed (403) on route orders, decided by deny[no-mallory]" type="identity_not_allowed">');
  });

  it('reports every problem of a cases file with file:line:col, like config errors; exit 1', async () => {
    const f = cases(
      'broken.yaml',
      `cases:
  - name: no client
    expect: allow
  - name: typo
    identity: {subject: "CN=a"}
    expect: alow
  - name: missing cert
    cert: nothere.pem
    expect: allow
`,
    );
    const r = await runCli(['test', '--config', config, f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([
      `${f}:2:5 cases[0]: give either cert or identity`,
      expect.stringMatching(/:6:13 cases\[1\]\.expect: must be one of "allow", "certificate_required", .* \(did you mean "allow"\?\), got "alow"$/),
      `${f}:8:11 cases[2].cert: ${join(dir, 'policy', 'nothere.pem')}: ENOENT`,
    ]);
  });

  it('exit 1 on an invalid config; exit 2 without a cases file', async () => {
    const bad = join(dir, 'bad-test.yaml');
    writeFileSync(bad, CONFIG.replace('listen: {port: 0}', 'listen: {port: nope}'));
    const r = await runCli(['test', '--config', bad, cases('p2.yaml', PASSING)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}:1:16 listen.port: must be a port number`);
    const usage = await runCli(['test', '--config', config]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('give the cases file');
  });
});
