// The CA directory without sockets: concurrent issues through the index lock (the lock itself is
// tested in test/util/files.test.ts), key modes for every key algorithm, CRL contents, tokens
// stored hashed, and dev-certs being a CA directory.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaError, CertificateAuthority, initAuthority, tokenHash } from '../../src/ca/authority.js';
import { writeDevCerts } from '../../src/ca/dev-certs.js';
import { parseCsr, createCsr } from '../../src/ca/csr.js';
import { generateKeyPair } from '../../src/ca/pki.js';
import { x509 } from '../../src/x509.js';

let dir: string;
let ca: CertificateAuthority;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'certgate-authority-'));
  ca = await initAuthority(join(dir, 'ca'), { intermediate: true });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('index and lock', () => {
  it('parallel issues through the lock never reuse a serial or lose an entry', async () => {
    const issued = await Promise.all(Array.from({ length: 12 }, (_, i) => ca.issue({ subject: { cn: `p-${i}` }, source: 'test' })));
    const serials = issued.map((r) => r.serial);
    expect(new Set(serials).size).toBe(12);
    const index = await ca.list();
    for (const s of serials) expect(index.filter((e) => e.serial === s)).toHaveLength(1);
  });

  it('refuses to init over an existing CA', async () => {
    await expect(initAuthority(join(dir, 'ca'))).rejects.toBeInstanceOf(CaError);
  });
});

describe('keys, CRL and tokens', () => {
  it.each(['P-384', 'RSA-3072'] as const)('init with %s writes 0600 keys and signs with that algorithm', async (alg) => {
    const d = join(dir, `ca-${alg}`);
    const c = await initAuthority(d, { keyAlg: alg });
    expect(statSync(join(d, 'root-ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(d, 'index.json')).mode & 0o777).toBe(0o600);
    const alg0 = c.signer.cert.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
    if (alg === 'P-384') expect(alg0.namedCurve).toBe('P-384');
    else expect(alg0.modulusLength).toBe(3072);
  });

  it('the CRL is signed by the issuing CA and lists exactly the revoked serials with their reasons', async () => {
    const a = await ca.issue({ subject: { cn: 'crl-a' }, source: 'test' });
    const b = await ca.issue({ subject: { cn: 'crl-b' }, source: 'test' });
    await ca.revoke(a.serial, 'keyCompromise');
    const crl = new x509.X509Crl(readFileSync(join(dir, 'ca', 'crl.pem'), 'utf8'));
    expect(await crl.verify({ publicKey: ca.signer.cert.publicKey })).toBe(true);
    const serials = crl.entries.map((e) => e.serialNumber.replace(/^0+/, ''));
    expect(serials).toContain(a.serial);
    expect(serials).not.toContain(b.serial);
    expect(crl.entries.find((e) => e.serialNumber.replace(/^0+/, '') === a.serial)?.reason).toBe(x509.X509CrlReason.keyCompromise);
    await expect(ca.revoke('abcdef', 'keyCompromise')).rejects.toMatchObject({ code: 'CERTGATE_CA_UNKNOWN_SERIAL' });
  });

  it('stores only the sha256 of an enrollment token, and a token enrolls once', async () => {
    const { token } = await ca.createToken({ cn: 'tok', ou: [], uri: [], dns: [] }, 60_000);
    const raw = readFileSync(join(dir, 'ca', 'index.json'), 'utf8');
    expect(raw).not.toContain(token);
    expect(raw).toContain(tokenHash(token));
    const use = () => ca.enrollWithToken(token, (id) => ({ subject: { cn: id.cn }, source: 'test' }));
    const results = await Promise.all([use(), use(), use()]);
    expect(results.filter((r) => !('refused' in r))).toHaveLength(1);
    expect(results.filter((r) => 'refused' in r && /already been used/.test(r.refused))).toHaveLength(2);
  });

  it('a refused enrollment leaves the token unused: the same token enrolls after', async () => {
    const { token } = await ca.createToken({ cn: 'tok2', ou: [], uri: [], dns: [] }, 60_000);
    const refused = await ca.enrollWithToken(token, () => ({ refused: 'wrong names' }));
    expect(refused).toEqual({ refused: 'wrong names' });
    // A failure while issuing (here: a validity past the CA's own) spends nothing either.
    await expect(ca.enrollWithToken(token, (id) => ({ subject: { cn: id.cn }, ttlMs: 100 * 365 * 86_400_000, source: 'test' }))).rejects.toMatchObject({ code: 'CERTGATE_CA_BAD_VALIDITY' });
    const ok = await ca.enrollWithToken(token, (id) => ({ subject: { cn: id.cn }, source: 'test' }));
    expect('refused' in ok ? ok.refused : ok.entry.subject).toBe('CN=tok2');
    const index = JSON.parse(readFileSync(join(dir, 'ca', 'index.json'), 'utf8')) as { tokens: { hash: string; usedAt?: string }[] };
    expect(index.tokens.find((t) => t.hash === tokenHash(token))?.usedAt).toBeDefined();
  });

  it('a CSR with a bad signature is refused before any policy check', async () => {
    const pem = await createCsr(await generateKeyPair(), { subject: 'CN=x' });
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s+/g, ''), 'base64');
    der[der.length - 3] = der[der.length - 3]! ^ 1;
    await expect(parseCsr(der.toString('base64'))).rejects.toMatchObject({ code: 'CERTGATE_CSR_INVALID' });
    const ok = await parseCsr(pem);
    expect(await ca.policyViolations(ok.names)).toEqual([]);
  });
});

describe('dev-certs', () => {
  it('writes a CA directory: its certificates are in the index and it can issue more', async () => {
    const d = join(dir, 'dev');
    await writeDevCerts(d);
    const dev = await CertificateAuthority.open(d);
    const subjects = (await dev.list()).map((e) => e.subject);
    expect(subjects).toEqual(['CN=localhost,O=certgate-dev', 'CN=alice,OU=payments,O=certgate-dev', 'CN=bob,OU=support,O=certgate-dev', 'CN=mallory,OU=guests,O=certgate-dev']);
    const more = await dev.issue({ subject: { cn: 'carol' }, source: 'test' });
    expect(dev.issued(new Uint8Array(more.cert.rawData))).toBe(true);
  });
});
