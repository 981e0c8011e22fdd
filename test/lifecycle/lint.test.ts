// The clientCertPolicy lint as a pure function (no sockets), its per-certificate cache, and the
// same lint on certgate's own certificates at load (warn vs refuse).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { run as check } from '../../src/cli/cmd-check.js';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { identityFromDer } from '../../src/identity/identity.js';
import type { Identity } from '../../src/identity/types.js';
import { CompiledCertPolicy, lintClientCert, OID_CLIENT_AUTH, OID_SERVER_AUTH, type CertFacts } from '../../src/lifecycle/lint.js';
import { PoolRegistry } from '../../src/proxy/upstream.js';
import { buildRuntime } from '../../src/runtime.js';
import { MaterialError } from '../../src/tls/material.js';
import { createTestPki, weakCertWithOpenssl } from '../helpers/pki.js';

const DAY = 86_400_000;
const policy: Config['clientCertPolicy'] = {
  minRsaBits: 2048,
  curves: ['P-256', 'P-384', 'P-521'],
  forbiddenSigAlgs: ['sha1', 'md5'],
  requireClientAuthEku: true,
  rejectCaLeaf: true,
  maxValidityDays: 398,
  maxChainDepth: 4,
  ownCerts: 'warn',
};
const good: CertFacts = {
  keyType: 'EC',
  keyBits: 256,
  curve: 'P-256',
  sigAlg: 'ecdsa-with-SHA256',
  isCA: false,
  eku: [OID_CLIENT_AUTH],
  notBefore: new Date(0),
  notAfter: new Date(90 * DAY),
};

describe('lintClientCert', () => {
  const cases: [string, Partial<CertFacts>, number | undefined, Partial<Config['clientCertPolicy']>, string | undefined, string?][] = [
    ['passes a P-256 clientAuth certificate', {}, 2, {}, undefined],
    ['passes RSA at exactly the minimum', { keyType: 'RSA', keyBits: 2048, curve: undefined, sigAlg: 'sha256WithRSAEncryption' }, 2, {}, undefined],
    ['refuses RSA below minRsaBits', { keyType: 'RSA', keyBits: 1024, curve: undefined }, 2, {}, 'minRsaBits', 'RSA key of 1024 bits is below the minimum of 2048'],
    ['refuses a curve not in curves', { curve: 'P-384', keyBits: 384 }, 2, { curves: ['P-256'] }, 'curves', 'EC curve P-384 is not allowed'],
    ['accepts OpenSSL curve aliases in curves', { curve: 'P-256' }, 2, { curves: ['prime256v1'] }, undefined],
    ['refuses secp256k1 by default', { curve: 'secp256k1' }, 2, {}, 'curves', 'secp256k1'],
    ['refuses an unrecognised curve', { curve: undefined }, 2, {}, 'curves', 'unrecognised curve'],
    ['passes Ed25519', { keyType: 'Ed25519', curve: undefined, sigAlg: 'ED25519' }, 2, {}, undefined],
    ['refuses an unknown key type', { keyType: 'unknown', curve: undefined }, 2, {}, 'keyType'],
    ['refuses SHA-1 (case-insensitive substring)', { sigAlg: 'sha1WithRSAEncryption', keyType: 'RSA', keyBits: 2048, curve: undefined }, 2, {}, 'forbiddenSigAlgs', 'sha1WithRSAEncryption is forbidden'],
    ['refuses MD5', { sigAlg: 'md5WithRSAEncryption', keyType: 'RSA', keyBits: 2048, curve: undefined }, 2, {}, 'forbiddenSigAlgs', 'md5'],
    ['refuses what the config forbids (SHA224)', { sigAlg: 'ecdsa-with-SHA224' }, 2, { forbiddenSigAlgs: ['SHA224'] }, 'forbiddenSigAlgs'],
    ['refuses an EKU without clientAuth', { eku: [OID_SERVER_AUTH] }, 2, {}, 'requireClientAuthEku', '(serverAuth) does not include clientAuth'],
    ['passes an absent EKU', { eku: [] }, 2, {}, undefined],
    ['passes anyExtendedKeyUsage', { eku: ['2.5.29.37.0'] }, 2, {}, undefined],
    ['passes a serverAuth-only EKU when requireClientAuthEku is off', { eku: [OID_SERVER_AUTH] }, 2, { requireClientAuthEku: false }, undefined],
    ['refuses a CA:TRUE leaf', { isCA: true }, 2, {}, 'rejectCaLeaf', 'CA:TRUE'],
    ['passes a CA:TRUE leaf when rejectCaLeaf is off', { isCA: true }, 2, { rejectCaLeaf: false }, undefined],
    ['refuses validity over maxValidityDays', { notAfter: new Date(399 * DAY) }, 2, {}, 'maxValidityDays', 'validity period of 399 days exceeds the maximum of 398'],
    ['passes validity at maxValidityDays', { notAfter: new Date(398 * DAY) }, 2, {}, undefined],
    ['passes any validity without maxValidityDays', { notAfter: new Date(9000 * DAY) }, 2, { maxValidityDays: undefined }, undefined],
    ['refuses a chain deeper than maxChainDepth', {}, 5, {}, 'maxChainDepth', 'chain depth of 5 CA certificates exceeds the maximum of 4'],
    ['passes a chain at maxChainDepth', {}, 4, {}, undefined],
    ['skips the depth rule when the depth is unknown', {}, undefined, { maxChainDepth: 1 }, undefined],
  ];
  it.each(cases)('%s', (_name, facts, depth, over, rule, reason) => {
    const p = { ...policy, ...over };
    if ('maxValidityDays' in over && over.maxValidityDays === undefined) delete p.maxValidityDays;
    const v = lintClientCert({ ...good, ...facts }, depth, new CompiledCertPolicy(p).policy);
    expect(v?.rule).toBe(rule);
    if (reason !== undefined) expect(v?.reason).toContain(reason);
  });
});

describe('CompiledCertPolicy', () => {
  it('lints a certificate once: the verdict (and chain depth) is cached per Identity', async () => {
    const pki = await createTestPki();
    const c = await pki.client({ days: 800 });
    const id: Identity = identityFromDer(new Uint8Array(c.nodeCert.raw));
    const compiled = new CompiledCertPolicy(policy);
    let depthCalls = 0;
    const depth = () => (depthCalls++, 2);
    const first = compiled.check(id, depth);
    expect(first?.rule).toBe('maxValidityDays');
    expect(compiled.check(id, depth)).toBe(first);
    expect(depthCalls).toBe(1);
    // A new config load compiles a new policy: the verdict is computed afresh under it.
    expect(new CompiledCertPolicy({ ...policy, maxValidityDays: 1000 }).check(id, depth)).toBeUndefined();
  });
});

describe('own certificates (clientCertPolicy.ownCerts)', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  async function configWithWeakServer(ownCerts: 'warn' | 'refuse'): Promise<Config> {
    const pki = await createTestPki();
    const weak = weakCertWithOpenssl({ issuer: pki.intermediate, rsaBits: 1024, digest: 'sha256', eku: ['serverAuth'], subject: 'CN=localhost', san: { dns: ['localhost'] } });
    const dir = mkdtempSync(join(tmpdir(), 'certgate-own-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'server.pem'), weak.chainPem);
    writeFileSync(join(dir, 'server-key.pem'), weak.keyPem);
    writeFileSync(join(dir, 'ca.pem'), pki.caBundlePem);
    writeFileSync(
      join(dir, 'certgate.yaml'),
      stringify({
        listen: { host: '127.0.0.1', port: 0 },
        tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca.pem'] },
        admin: { enabled: false },
        watch: { enabled: false },
        clientCertPolicy: { ownCerts },
        routes: [{ name: 'a', match: { pathPrefix: '/' }, upstream: 'http://127.0.0.1:9', allow: [{ cn: 'x' }] }],
      }),
    );
    return loadConfig(join(dir, 'certgate.yaml'));
  }

  it('warns about a weak server certificate and still loads with ownCerts: warn', async () => {
    const rt = buildRuntime(await configWithWeakServer('warn'), new PoolRegistry({ connectMs: 100, idleMs: 100 }));
    expect(rt.ownCertWarnings).toHaveLength(1);
    expect(rt.ownCertWarnings[0]).toMatch(/^tls\.cert: server certificate: RSA key of 1024 bits is below the minimum of 2048/);
  });

  it('refuses to load a weak server certificate with ownCerts: refuse, like any other material error', async () => {
    const cfg = await configWithWeakServer('refuse');
    let err: unknown;
    try {
      buildRuntime(cfg, new PoolRegistry({ connectMs: 100, idleMs: 100 }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MaterialError);
    expect((err as MaterialError).issues).toEqual([{ path: 'tls.cert', message: expect.stringContaining('RSA key of 1024 bits') }]);
  });

  it('makes certgate check fail with ownCerts: refuse and only warn with ownCerts: warn', async () => {
    const errs: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((t) => (errs.push(String(t)), true));
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await check(['--config', (await configWithWeakServer('refuse')).file])).toBe(1);
      expect(errs.join('')).toMatch(/certgate\.yaml:\d+:\d+ tls\.cert: server certificate: RSA key of 1024 bits/);
      errs.length = 0;
      expect(await check(['--config', (await configWithWeakServer('warn')).file])).toBe(0);
      expect(errs.join('')).toMatch(/^warning: .*tls\.cert: server certificate: RSA key of 1024 bits/);
    } finally {
      spy.mockRestore();
      out.mockRestore();
    }
  });

  it('does not flag the default test PKI (P-256, SHA-256, serverAuth)', async () => {
    const pki = await createTestPki();
    const dir = mkdtempSync(join(tmpdir(), 'certgate-own-'));
    dirs.push(dir);
    const w = await pki.writeTo(dir);
    writeFileSync(
      join(dir, 'certgate.yaml'),
      stringify({
        listen: { host: '127.0.0.1', port: 0 },
        tls: { cert: w.serverCert, key: w.serverKey, clientCAs: [w.caBundle] },
        admin: { enabled: false },
        clientCertPolicy: { ownCerts: 'refuse' },
        routes: [{ name: 'a', match: { pathPrefix: '/' }, upstream: 'http://127.0.0.1:9', allow: [{ cn: 'x' }] }],
      }),
    );
    const rt = buildRuntime(loadConfig(join(dir, 'certgate.yaml')), new PoolRegistry({ connectMs: 100, idleMs: 100 }));
    expect(rt.ownCertWarnings).toEqual([]);
  });
});
