// Envoy's forward_client_cert_details modes and set_current_client_cert_details fields, through the
// proxy: real TLS, a real backend that records the headers it receives. The expected XFCC is built
// here from the certificates themselves the way Envoy builds it (OpenSSL's RFC 2253 subject and PEM,
// Envoy's URL encoding of the PEM, lowercase hex SHA-256), not with certgate's own code.
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { runCli } from '../helpers/cli.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

const OWN_URIS = ['spiffe://acme.test/certgate', 'urn:acme:certgate'];
const EDGE = 'spiffe://acme.test/edge';
const ALICE_URIS = ['spiffe://acme.test/alice', 'urn:acme:alice'];
const ALICE_DNS = ['alice.test', 'alice.acme.test'];
// What the proxy in front (or a client pretending to be one) sends.
const SENT = 'By=spiffe://acme.test/edge;Hash=0123;Subject="CN=user";URI=spiffe://acme.test/user';
const XFCC = 'x-forwarded-client-cert';

let pki: TestPki;
let h: Harness;
let edge: TestCert;
let alice: TestCert;
let plain: TestCert;

beforeAll(async () => {
  pki = await createTestPki();
  const server = await pki.serverCert({ san: { dns: ['localhost'], ip: ['127.0.0.1'], uri: OWN_URIS } });
  edge = await pki.client({ subject: 'CN=edge, O=Acme', san: { uri: [EDGE] } });
  alice = await pki.client({ subject: 'CN=alice, OU=payments, O=Acme', san: { dns: ALICE_DNS, uri: ALICE_URIS } });
  plain = await pki.client({ subject: 'CN=plain, O=Acme' });
  h = await startHarness({
    tls: { serverCert: server.chainPem, serverKey: server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'all', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ anonymous: true }, { subject: '*' }] }],
  });
});

afterAll(async () => {
  await h?.close();
});

/** Rewrites `headers:` in the running proxy's config file and reloads it. */
function configure(headers: Record<string, unknown>): void {
  h.writeConfig((c) => {
    c.headers = headers;
  });
  const res = h.app.reload();
  expect(res.ok, res.errors.join('\n')).toBe(true);
}

const creds = (c: TestCert) => ({ cert: c.chainPem, key: c.keyPem });

/** Every XFCC line the backend received for one request (undefined: none). */
async function xfccReceived(client: TestCert | undefined, sent: string | string[] | undefined): Promise<string | undefined> {
  const r = await h.request('/x', { ...(client ? { client: creds(client) } : {}), headers: sent === undefined ? {} : { [XFCC]: sent } });
  expect(r.status).toBe(200);
  const raw = h.backend.received.at(-1)!.rawHeaders;
  const lines = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === XFCC);
  expect(lines.length, 'at most one XFCC line reaches the backend').toBeLessThanOrEqual(1);
  return lines[0];
}

const openssl = (args: string[], input: string) => execFileSync('openssl', args, { input, encoding: 'utf8' });
// Envoy's urlEncodedPemEncodedPeerCertificate(Chain): OpenSSL's PEM with exactly these replaced.
const envoyUrlEncode = (pem: string) => pem.replace(/[\n +/=]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));

/** The element Envoy writes for `c` with these fields (By, Hash, Cert, Chain, Subject, URI, DNS order). */
function envoyElement(c: TestCert, fields: readonly string[], san: { uri?: string[]; dns?: string[] }): string {
  const has = new Set(fields);
  const pairs: string[] = [];
  if (has.has('By')) for (const u of OWN_URIS) pairs.push(`By=${u}`);
  if (has.has('Hash')) pairs.push(`Hash=${createHash('sha256').update(new X509Certificate(c.certPem).raw).digest('hex')}`);
  if (has.has('Cert')) pairs.push(`Cert="${envoyUrlEncode(openssl(['x509'], c.certPem))}"`);
  if (has.has('Chain')) pairs.push(`Chain="${envoyUrlEncode(openssl(['x509'], c.certPem) + openssl(['x509'], pki.intermediate.certPem))}"`);
  if (has.has('Subject')) pairs.push(`Subject="${openssl(['x509', '-noout', '-subject', '-nameopt', 'RFC2253'], c.certPem).trim().replace(/^subject=/, '')}"`);
  if (has.has('URI')) {
    if ((san.uri ?? []).length === 0) pairs.push('URI=');
    for (const u of san.uri ?? []) pairs.push(`URI=${u}`);
  }
  if (has.has('DNS')) for (const d of san.dns ?? []) pairs.push(`DNS=${d}`);
  return pairs.join(';');
}

const DEFAULT_FIELDS = ['Hash', 'Subject', 'URI', 'DNS'];
const ours = (c: TestCert) => envoyElement(c, DEFAULT_FIELDS, c === edge ? { uri: [EDGE] } : c === alice ? { uri: ALICE_URIS, dns: ALICE_DNS } : {});

interface ModeCase {
  readonly mode: string;
  readonly headers: Record<string, unknown>;
  /** What the backend receives when the trusted proxy sends SENT. */
  readonly trusted: () => string | undefined;
  /** What it receives when a client not in trustedProxies sends SENT. */
  readonly untrusted: () => string | undefined;
}

const trustedProxies = [{ spiffe: EDGE }];
const MODES: ModeCase[] = [
  { mode: 'sanitize', headers: { xfccMode: 'sanitize' }, trusted: () => undefined, untrusted: () => undefined },
  { mode: 'xfcc: false (sanitize)', headers: { xfcc: false }, trusted: () => undefined, untrusted: () => undefined },
  { mode: 'sanitize_set', headers: { xfccMode: 'sanitize_set' }, trusted: () => ours(edge), untrusted: () => ours(alice) },
  { mode: 'default (sanitize_set)', headers: {}, trusted: () => ours(edge), untrusted: () => ours(alice) },
  { mode: 'append_forward', headers: { xfccMode: 'append_forward' }, trusted: () => `${SENT},${ours(edge)}`, untrusted: () => ours(alice) },
  { mode: 'forward_only', headers: { xfccMode: 'forward_only' }, trusted: () => SENT, untrusted: () => undefined },
];

describe.each(MODES)('headers.xfccMode $mode', (m) => {
  beforeAll(() => configure({ ...m.headers, trustedProxies }));

  it('a client in headers.trustedProxies that sends its own XFCC', async () => {
    expect(await xfccReceived(edge, SENT)).toBe(m.trusted());
  });

  it('a client not in headers.trustedProxies that sends its own XFCC', async () => {
    expect(await xfccReceived(alice, SENT)).toBe(m.untrusted());
  });

  it('a request without a certificate never passes an XFCC on and gets none set (Envoy: only on mTLS)', async () => {
    expect(await xfccReceived(undefined, SENT)).toBeUndefined();
  });
});

describe('trusted proxies in append_forward and forward_only', () => {
  it('append_forward: a trusted proxy\'s XFCC sent on two lines is one list, ours appended last', async () => {
    configure({ xfccMode: 'append_forward', trustedProxies });
    expect(await xfccReceived(edge, [SENT, 'Hash=4567'])).toBe(`${SENT},Hash=4567,${ours(edge)}`);
  });

  it('append_forward: a trusted proxy that sends no XFCC gets ours alone', async () => {
    configure({ xfccMode: 'append_forward', trustedProxies });
    expect(await xfccReceived(edge, undefined)).toBe(ours(edge));
  });

  it('forward_only: a trusted proxy that sends no XFCC gets none', async () => {
    configure({ xfccMode: 'forward_only', trustedProxies });
    expect(await xfccReceived(edge, undefined)).toBeUndefined();
  });

  it('without trustedProxies no client\'s XFCC is kept', async () => {
    configure({ xfccMode: 'append_forward' });
    expect(await xfccReceived(edge, SENT)).toBe(ours(edge));
    configure({ xfccMode: 'forward_only' });
    expect(await xfccReceived(edge, SENT)).toBeUndefined();
  });
});

describe('headers.xfccDetails, checked against Envoy\'s format', () => {
  const aliceSan = { uri: ALICE_URIS, dns: ALICE_DNS };

  it('every field, listed in any order, is written in Envoy\'s order: one By per own URI SAN, Hash, Cert, Chain, Subject, one URI per URI SAN, one DNS per DNS SAN', async () => {
    const all = ['DNS', 'Chain', 'URI', 'Cert', 'By', 'Subject', 'Hash'];
    configure({ xfccDetails: all });
    const got = await xfccReceived(alice, SENT);
    expect(got).toBe(envoyElement(alice, all, aliceSan));
    expect(got?.match(/(^|;)By=/g)).toHaveLength(2);
    expect(got?.match(/(^|;)URI=/g)).toHaveLength(2);
  });

  it.each([
    [['Subject']],
    [['URI']],
    [['DNS']],
    [['Cert']],
    [['Chain']],
    [['By']],
    [['Hash']],
    [['By', 'URI', 'DNS']],
  ])('%j alone sets only those keys', async (fields) => {
    configure({ xfccDetails: fields });
    expect(await xfccReceived(alice, SENT)).toBe(envoyElement(alice, fields, aliceSan));
  });

  it('URI is written empty for a certificate without a URI SAN, and DNS left out, as Envoy does', async () => {
    configure({ xfccDetails: ['Subject', 'URI', 'DNS'] });
    const got = await xfccReceived(plain, undefined);
    expect(got).toBe(envoyElement(plain, ['Subject', 'URI', 'DNS'], {}));
    expect(got).toMatch(/^Subject="[^"]+";URI=$/);
  });
});

describe('xfcc and xfccMode together', () => {
  it('certgate check refuses them with file:line:col, and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certgate-xfcc-'));
    await pki.writeTo(dir);
    const file = join(dir, 'certgate.yaml');
    writeFileSync(
      file,
      [
        'listen: {port: 0}',
        'tls: {cert: server.pem, key: server-key.pem, clientCAs: [ca-bundle.pem]}',
        'routes:',
        '  - {name: r, upstream: "http://127.0.0.1:1", allow: [{cn: a}]}',
        'headers:',
        '  xfcc: false',
        '  xfccMode: forward_only',
        '',
      ].join('\n'),
    );
    const r = await runCli(['check', '--config', file], { cwd: tmpdir() });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`${file}:7:13 headers.xfccMode: set either xfcc or xfccMode, not both (xfcc: false is xfccMode: sanitize)`);
  });

  it('a reload that sets both is refused and the running mode stays', async () => {
    configure({ xfccMode: 'forward_only', trustedProxies });
    h.writeConfig((c) => {
      c.headers = { xfcc: true, xfccMode: 'sanitize_set', trustedProxies };
    });
    const res = h.app.reload();
    expect(res.ok).toBe(false);
    expect(res.errors.join('\n')).toMatch(/certgate\.yaml:\d+:\d+ headers\.xfccMode: set either xfcc or xfccMode, not both/);
    expect(await xfccReceived(edge, SENT)).toBe(SENT);
  });
});
