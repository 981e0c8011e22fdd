// EST on the proxy listener, over real mTLS: renewal keeps the presented identity, refuses
// outside the window and past the rate limit, and first enrollment is gated by one-time tokens.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, initAuthority } from '../../src/ca/authority.js';
import { createCsr } from '../../src/ca/csr.js';
import { certsFromPkcs7 } from '../../src/ca/pkcs7.js';
import { generateKeyPair, privateKeyToPem } from '../../src/ca/pki.js';
import { identityFromDer } from '../../src/identity/identity.js';
import { metrics } from '../../src/metrics.js';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

const MIN = 60_000;
const DAY = 86_400_000;
let pki: TestPki;
let ca: CertificateAuthority;
let dir: string;
let h: Harness;

const EST = '/.well-known/est/';

beforeAll(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(join(tmpdir(), 'certgate-est-'));
  ca = await initAuthority(join(dir, 'ca'), { intermediate: true });
  h = await startHarness({
    // The test PKI is trusted too: its clients pass the handshake but are not this CA's.
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: ca.bundlePem + pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'api', match: { pathPrefix: '/api' }, upstream: BACKEND, allow: [{ spiffe: 'spiffe://acme.test/ns/prod/sa/*' }, { cn: 'enrolled-*' }] }],
    extra: {
      est: { enabled: true, caDir: join(dir, 'ca'), renewWindowDays: 0, renewWindowFraction: 0.5, rateLimitPerHour: 3, days: 30 },
    },
  });
});

afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function issue(cn: string, ttlMs: number, uri = `spiffe://acme.test/ns/prod/sa/${cn}`) {
  const r = await ca.issue({ subject: { cn, ou: ['payments'] }, san: { uri: [uri] }, ttlMs, source: 'test' });
  return { cert: r.chainPem, key: r.keyPem!, serial: r.serial };
}

async function csrFor(names: { subject: string; uri?: string[] }) {
  const keys = await generateKeyPair('P-256');
  const csr = await createCsr(keys, names);
  return { body: csr.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), keyPem: await privateKeyToPem(keys.privateKey) };
}

/** 64-column LF lines, each decoding on its own with a strict decoder (no CR, no stray byte). */
function expectStrictBase64Lines(body: string) {
  expect(body.endsWith('\n')).toBe(true);
  const lines = body.slice(0, -1).split('\n');
  for (const [i, line] of lines.entries()) {
    expect(line).toMatch(i < lines.length - 1 ? /^[A-Za-z0-9+/]{64}$/ : /^[A-Za-z0-9+/]+={0,2}$/);
    expect(line.length).toBeLessThanOrEqual(64);
    expect(line.length % 4).toBe(0);
    expect(Buffer.from(line, 'base64').toString('base64')).toBe(line);
  }
}

const post = (path: string, body: string, client?: { cert: string; key: string }, headers: Record<string, string> = {}) =>
  h.request(EST + path, { method: 'POST', body, headers: { 'content-type': 'application/pkcs10', ...headers }, ...(client ? { client } : {}) });

describe('EST simplereenroll', () => {
  it('renews inside the window with the presented identity; the new and the old certificate both work', async () => {
    // 10 minutes of life, window = last half: a certificate issued 6 minutes ago is inside it.
    const cur = await issueBackdated('alice', 10 * MIN, 6 * MIN);
    const { body, keyPem } = await csrFor({ subject: 'CN=alice,OU=payments', uri: ['spiffe://acme.test/ns/prod/sa/alice'] });
    const r = await post('simplereenroll', body, cur);
    expect(r.status, r.text).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/pkcs7-mime/);
    const certs = certsFromPkcs7(r.text);
    const leaf = identityFromDer(new Uint8Array(new X509Certificate(certs[0]!).raw));
    expect(leaf.subject).toBe('CN=alice,OU=payments');
    expect(leaf.uri).toEqual(['spiffe://acme.test/ns/prod/sa/alice']);
    expect(leaf.serial).not.toBe(cur.serial);
    const entry = await ca.entry(leaf.serial);
    expect(entry?.renewedFrom).toBe(cur.serial);
    const renewed = await h.request('/api/x', { client: { cert: certs.join(''), key: keyPem } });
    expect(renewed.status).toBe(200);
    expect(renewed.json.headers['x-client-cert-san-uri']).toBe('spiffe://acme.test/ns/prod/sa/alice');
    expect((await h.request('/api/x', { client: cur })).status).toBe(200);
  });

  it('takes the identity from the presented certificate: an empty CSR subject gets it', async () => {
    const cur = await issueBackdated('carol', 10 * MIN, 6 * MIN);
    const { body } = await csrFor({ subject: '' });
    const r = await post('simplereenroll', body, cur);
    expect(r.status, r.text).toBe(200);
    const leaf = identityFromDer(new Uint8Array(new X509Certificate(certsFromPkcs7(r.text)[0]!).raw));
    expect(leaf.subject).toBe('CN=carol,OU=payments');
    expect(leaf.spiffe).toBe('spiffe://acme.test/ns/prod/sa/carol');
  });

  it('refuses a CSR that asks for a different identity than the presented certificate', async () => {
    const cur = await issueBackdated('dave', 10 * MIN, 6 * MIN);
    const other = await csrFor({ subject: 'CN=admin,OU=payments', uri: ['spiffe://acme.test/ns/prod/sa/dave'] });
    const r1 = await post('simplereenroll', other.body, cur);
    expect(r1.status).toBe(403);
    expect(r1.json.error.code).toBe('enrollment_refused');
    const otherUri = await csrFor({ subject: 'CN=dave,OU=payments', uri: ['spiffe://acme.test/ns/prod/sa/admin'] });
    const r2 = await post('simplereenroll', otherUri.body, cur);
    expect(r2.status).toBe(403);
    expect(r2.json.error.message).toMatch(/different identity/);
  });

  it('refuses renewal before the renewal window opens', async () => {
    const fresh = await issue('erin', 30 * DAY);
    const { body } = await csrFor({ subject: 'CN=erin,OU=payments', uri: ['spiffe://acme.test/ns/prod/sa/erin'] });
    const r = await post('simplereenroll', body, fresh);
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('enrollment_refused');
    expect(r.json.error.message).toMatch(/renewal opens at/);
  });

  it('applies a reloaded renewal window without a restart', async () => {
    const fresh = await issue('ruth', 30 * DAY);
    const { body } = await csrFor({ subject: '' });
    expect((await post('simplereenroll', body, fresh)).status).toBe(403);
    const est = (c: Record<string, unknown>) => c.est as Record<string, unknown>;
    h.writeConfig((c) => (est(c).renewWindowDays = 31));
    try {
      const rl = h.app.reload();
      expect(rl.errors).toEqual([]);
      const r = await post('simplereenroll', (await csrFor({ subject: '' })).body, fresh);
      expect(r.status, r.text).toBe(200);
    } finally {
      h.writeConfig((c) => (est(c).renewWindowDays = 0));
      expect(h.app.reload().ok).toBe(true);
    }
  });

  it('rate-limits renewals per identity with 429 too_many_requests', async () => {
    const cur = await issueBackdated('frank', 10 * MIN, 6 * MIN);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const { body } = await csrFor({ subject: '' });
      statuses.push((await post('simplereenroll', body, cur)).status);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    const counted = (await metrics.estRequests.get()).values.find((v) => v.labels.operation === 'simplereenroll' && v.labels.outcome === 'too_many_requests');
    expect(counted?.value).toBe(1);
  });

  it('refuses renewal of a certificate revoked in the CA index', async () => {
    const cur = await issueBackdated('gina', 10 * MIN, 6 * MIN);
    await ca.revoke(cur.serial, 'keyCompromise');
    const { body } = await csrFor({ subject: '' });
    const r = await post('simplereenroll', body, cur);
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_revoked');
  });

  it('refuses renewal without a client certificate and a CSR whose signature does not verify', async () => {
    const { body } = await csrFor({ subject: '' });
    const anon = await post('simplereenroll', body);
    expect(anon.status).toBe(401);
    expect(anon.json.error.code).toBe('certificate_required');
    const cur = await issueBackdated('hank', 10 * MIN, 6 * MIN);
    const der = Buffer.from(body, 'base64');
    der[der.length - 5] = der[der.length - 5]! ^ 0xff; // inside the signature
    const bad = await post('simplereenroll', der.toString('base64'), cur);
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('bad_request');
  });
});

describe('EST and other certificates', () => {
  it('refuses renewal of a certificate from another trusted CA', async () => {
    const outsider = await pki.client({ cn: 'outsider', san: { uri: ['spiffe://acme.test/ns/prod/sa/outsider'] } });
    const { body } = await csrFor({ subject: '' });
    const r = await post('simplereenroll', body, { cert: outsider.chainPem, key: outsider.keyPem });
    expect(r.status).toBe(403);
    expect(r.json.error).toMatchObject({ code: 'enrollment_refused', message: 'the presented certificate was not issued by this CA' });
  });

  it('gives a client whose certificate failed verification no EST at all, not even cacerts', async () => {
    const other = await pki.untrustedRoot();
    const stranger = await other.client({ cn: 'stranger' });
    const r = await h.request(EST + 'cacerts', { client: { cert: stranger.chainPem, key: stranger.keyPem } });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('certificate_untrusted');
  });
});

describe('EST without a client certificate', () => {
  it('serves the CA certificates as PKCS#7 certs-only', async () => {
    const r = await h.request(EST + 'cacerts');
    expect(r.status).toBe(200);
    expectStrictBase64Lines(r.text);
    const certs = certsFromPkcs7(r.text);
    expect(certs.map((c) => new X509Certificate(c).fingerprint256)).toEqual(
      [ca.rootPem, ca.intermediatesPem].map((p) => new X509Certificate(p).fingerprint256),
    );
  });

  it('still refuses every other request from a connection without a certificate', async () => {
    expect((await h.request('/api/x')).json.error.code).toBe('certificate_required');
    expect((await post('simplereenroll', 'AAAA')).status).toBe(401);
    expect((await h.request(EST + 'simpleenroll')).status).toBe(401); // GET is not allowed anonymously
  });

  it('enrolls once with a token (identity from the token), refuses the second use', async () => {
    const { token } = await ca.createToken({ cn: 'enrolled-ivy', ou: [], uri: ['spiffe://acme.test/ns/prod/sa/ivy'], dns: [] }, 15 * MIN);
    const { body, keyPem } = await csrFor({ subject: 'CN=enrolled-ivy', uri: ['spiffe://acme.test/ns/prod/sa/ivy'] });
    const r = await post('simpleenroll', body, undefined, { authorization: `Bearer ${token}` });
    expect(r.status, r.text).toBe(200);
    expectStrictBase64Lines(r.text);
    const certs = certsFromPkcs7(r.text);
    const id = identityFromDer(new Uint8Array(new X509Certificate(certs[0]!).raw));
    expect(id.subject).toBe('CN=enrolled-ivy');
    expect(id.spiffe).toBe('spiffe://acme.test/ns/prod/sa/ivy');
    expect((await h.request('/api/x', { client: { cert: certs.join(''), key: keyPem } })).status).toBe(200);
    const again = await post('simpleenroll', (await csrFor({ subject: '' })).body, undefined, { authorization: `Bearer ${token}` });
    expect(again.status).toBe(403);
    expect(again.json.error.message).toMatch(/already been used/);
  });

  it('refuses an expired token, an unknown token, and a request without one', async () => {
    const { token, expiresAt } = await ca.createToken({ cn: 'enrolled-jo', ou: [], uri: [], dns: [] }, 50);
    await waitFor(() => Date.now() > expiresAt.getTime(), { what: 'the token to expire', every: 5 });
    const { body } = await csrFor({ subject: '' });
    const expired = await post('simpleenroll', body, undefined, { authorization: `Bearer ${token}` });
    expect(expired.status).toBe(403);
    expect(expired.json.error.message).toMatch(/expired/);
    const unknown = await post('simpleenroll', body, undefined, { authorization: 'Bearer cgt_nope' });
    expect(unknown.json.error.code).toBe('enrollment_refused');
    const none = await post('simpleenroll', body);
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('unauthorized');
  });

  it('refuses a token enrollment whose CSR asks for another identity, and the same token then enrolls a correct CSR', async () => {
    const { token } = await ca.createToken({ cn: 'enrolled-kim', ou: ['payments'], uri: [], dns: [] }, 15 * MIN);
    const auth = { authorization: `Bearer ${token}` };
    for (const subject of ['CN=enrolled-admin', 'CN=enrolled-kim']) {
      const r = await post('simpleenroll', (await csrFor({ subject })).body, undefined, auth);
      expect(r.status).toBe(403);
      expect(r.json.error.code).toBe('enrollment_refused');
      expect(r.json.error.message).toMatch(/different identity/);
    }
    const wrongSan = await post('simpleenroll', (await csrFor({ subject: '', uri: ['spiffe://acme.test/ns/prod/sa/admin'] })).body, undefined, auth);
    expect(wrongSan.json.error.message).toMatch(/different identity/);
    // The subject may be exactly the token's (RFC 4514, as the refusal message spells it) or empty.
    const ok = await post('simpleenroll', (await csrFor({ subject: 'CN=enrolled-kim,OU=payments' })).body, undefined, auth);
    expect(ok.status, ok.text).toBe(200);
    expect(identityFromDer(new Uint8Array(new X509Certificate(certsFromPkcs7(ok.text)[0]!).raw)).subject).toBe('CN=enrolled-kim,OU=payments');
    const again = await post('simpleenroll', (await csrFor({ subject: '' })).body, undefined, auth);
    expect(again.json.error.message).toMatch(/already been used/);
  });

  it('lets only one of several concurrent enrollments with one token succeed, whatever the others ask', async () => {
    const { token } = await ca.createToken({ cn: 'enrolled-lee', ou: [], uri: [], dns: [] }, 15 * MIN);
    const auth = { authorization: `Bearer ${token}` };
    const bodies = await Promise.all([csrFor({ subject: 'CN=enrolled-admin' }), csrFor({ subject: '' }), csrFor({ subject: 'CN=enrolled-lee' }), csrFor({ subject: '' })]);
    const rs = await Promise.all(bodies.map((b) => post('simpleenroll', b.body, undefined, auth)));
    // The CSR with the wrong name never takes the token from the correct ones; exactly one of those wins.
    expect(rs[0]!.status).toBe(403);
    const correct = rs.slice(1);
    expect(correct.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of correct.filter((x) => x.status !== 200)) {
      expect(r.status).toBe(403);
      expect(r.json.error.message).toMatch(/already been used/);
    }
  });
});

/** A certificate from the CA whose lifetime began `ageMs` ago (so renewal windows can be tested without waiting). */
async function issueBackdated(cn: string, lifeMs: number, ageMs: number) {
  const notBefore = new Date(Date.now() - ageMs);
  const r = await ca.issue({
    subject: { cn, ou: ['payments'] },
    san: { uri: [`spiffe://acme.test/ns/prod/sa/${cn}`] },
    notBefore,
    notAfter: new Date(notBefore.getTime() + lifeMs),
    source: 'test',
  });
  return { cert: r.chainPem, key: r.keyPem!, serial: r.serial };
}
