import { X509Certificate as NodeX509Certificate, createPrivateKey } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { issueCertificate, issueCrl, generateKeyPair, chainPem, importKeyPairPem, crlReasonCode } from '../../src/ca/pki.js';
import { writeDevCerts, DevCertsError } from '../../src/ca/dev-certs.js';
import { x509 } from '../../src/x509.js';
import { canonicalSerial } from '../../src/identity/canonical.js';
import { createTestPki, weakCertWithOpenssl } from '../helpers/pki.js';

const tmpDirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'certgate-pki-'));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

function opensslText(pem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem }).toString();
}

const node = (pem: string): NodeX509Certificate => new NodeX509Certificate(pem);

describe('issueCertificate', () => {
  it('issues a root -> intermediate -> leaf chain that node:crypto verifies', async () => {
    const pki = await createTestPki();
    const alice = await pki.client({ subject: 'CN=alice, OU=payments, O=Acme' });
    const [root, inter, leaf] = [pki.root.nodeCert, pki.intermediate.nodeCert, alice.nodeCert];
    expect(root.checkIssued(root)).toBe(true);
    expect(root.verify(root.publicKey)).toBe(true);
    expect(inter.checkIssued(root)).toBe(true);
    expect(inter.verify(root.publicKey)).toBe(true);
    expect(leaf.checkIssued(inter)).toBe(true);
    expect(leaf.verify(inter.publicKey)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(false);
    expect(leaf.checkIssued(root)).toBe(false);
  });

  it('encodes a DN string in conventional order (O, OU, CN), as OpenSSL prints it', async () => {
    const pki = await createTestPki();
    const c = await pki.client({ subject: 'CN=alice, OU=payments, O=Acme' });
    expect(c.nodeCert.subject.split('\n')).toEqual(['O=Acme', 'OU=payments', 'CN=alice']);
    expect(c.nodeCert.issuer).toBe(pki.intermediate.nodeCert.subject);
    const fields = await issueCertificate({ subject: { cn: 'bob', ou: ['a', 'b'], o: 'Acme', c: 'DE' } });
    expect(node(fields.certPem).subject.split('\n')).toEqual(['C=DE', 'O=Acme', 'OU=a', 'OU=b', 'CN=bob']);
  });

  it('puts basicConstraints, key usage, EKU, SAN, SKI/AKI, AIA and CRL DP on the certificate', async () => {
    const pki = await createTestPki();
    const c = await pki.client({
      subject: 'CN=svc, O=Acme',
      san: { dns: ['svc.example'], ip: ['10.0.0.1', '::1'], uri: ['spiffe://example.org/ns/a/sa/svc'], email: ['svc@example.org'] },
      eku: ['clientAuth', 'serverAuth'],
      ocspUrl: 'http://127.0.0.1:9/ocsp',
      crlUrl: 'http://127.0.0.1:9/crl',
    });
    const n = c.nodeCert;
    expect(n.ca).toBe(false);
    expect(n.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    expect(n.subjectAltName).toBe(
      'DNS:svc.example, IP Address:10.0.0.1, IP Address:0:0:0:0:0:0:0:1, URI:spiffe://example.org/ns/a/sa/svc, email:svc@example.org',
    );
    expect(n.infoAccess).toContain('OCSP - URI:http://127.0.0.1:9/ocsp');

    const bc = c.cert.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(false);
    expect(bc.critical).toBe(true);
    const ku = c.cert.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    const cdp = c.cert.getExtension(x509.CRLDistributionPointsExtension)!;
    expect(cdp.distributionPoints[0]?.distributionPoint?.fullName?.[0]?.uniformResourceIdentifier).toBe('http://127.0.0.1:9/crl');
    expect(c.cert.getExtension(x509.SubjectKeyIdentifierExtension)).not.toBeNull();
    const aki = c.cert.getExtension(x509.AuthorityKeyIdentifierExtension)!;
    expect(aki.keyId).toBe(pki.intermediate.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);

    const interBc = pki.intermediate.cert.getExtension(x509.BasicConstraintsExtension)!;
    expect(interBc.ca).toBe(true);
    expect(interBc.pathLength).toBe(0);
    expect(pki.intermediate.cert.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
    );
    expect(pki.root.cert.getExtension(x509.AuthorityKeyIdentifierExtension)).toBeNull();
    expect(pki.root.nodeCert.ca).toBe(true);
  });

  it('gives RSA leaves keyEncipherment and signs with SHA-384 under a P-384 issuer', async () => {
    const p384 = await issueCertificate({ subject: 'CN=p384 root', keyAlg: 'P-384', isCA: true });
    const rsa = await issueCertificate({
      subject: 'CN=rsa leaf',
      keyAlg: 'RSA-2048',
      issuer: { cert: p384.cert, privateKey: p384.keys.privateKey },
    });
    expect(rsa.cert.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );
    expect(rsa.cert.signatureAlgorithm.hash.name).toBe('SHA-384');
    expect(node(rsa.certPem).verify(node(p384.certPem).publicKey)).toBe(true);
    expect(createPrivateKey(rsa.keyPem).asymmetricKeyDetails?.modulusLength).toBe(2048);
  });

  it('gives each certificate a random, positive 128-bit serial in canonical form', async () => {
    const pki = await createTestPki();
    const certs = await Promise.all(Array.from({ length: 20 }, () => pki.client()));
    const serials = certs.map((c) => c.serial);
    expect(new Set(serials).size).toBe(serials.length);
    for (const c of certs) {
      expect(c.serial).toMatch(/^[89a-f][0-9a-f]{31}$/);
      expect(c.nodeCert.serialNumber.toLowerCase()).toBe(c.serial);
    }
    const fixed = await pki.client({ serial: '00:0A:BC' });
    expect(fixed.serial).toBe('abc');
  });

  it('signs a given public key (CSR) and returns no private key', async () => {
    const pki = await createTestPki();
    const keys = await generateKeyPair('P-256');
    const signed = await issueCertificate({ subject: 'CN=csr', publicKey: keys.publicKey, issuer: pki.intermediate.issuer });
    expect('keyPem' in signed).toBe(false);
    expect(node(signed.certPem).checkIssued(pki.intermediate.nodeCert)).toBe(true);
  });

  it('honours notBefore/notAfter so tests can make expired and not-yet-valid certificates', async () => {
    const pki = await createTestPki();
    const expired = await pki.client({ notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2020-02-01T00:00:00Z') });
    expect(expired.cert.notAfter.toISOString()).toBe('2020-02-01T00:00:00.000Z');
    const future = await pki.client({ notBefore: new Date(Date.now() + 86_400_000 * 30) });
    expect(future.cert.notBefore.getTime()).toBeGreaterThan(Date.now());
  });

  it('imports the PKCS#8 key PEM it wrote back as a signing key', async () => {
    const pki = await createTestPki();
    const keys = await importKeyPairPem(pki.intermediate.keyPem);
    const c = await issueCertificate({ subject: 'CN=reimported', issuer: { cert: pki.intermediate.cert, privateKey: keys.privateKey } });
    expect(node(c.certPem).verify(pki.intermediate.nodeCert.publicKey)).toBe(true);
  });
});

describe('issueCrl', () => {
  it('lists the revoked serials and its signature verifies against the issuer', async () => {
    const pki = await createTestPki();
    const revoked = await pki.client();
    const revokedAt = new Date('2024-05-01T12:00:00Z');
    const { crl, der, pem } = await issueCrl({
      issuer: pki.intermediate.issuer,
      entries: [{ serial: revoked.serial, revokedAt, reason: 'keyCompromise' }, { serial: '0x0abc', reason: 'unspecified' }],
      crlNumber: 7,
    });
    expect(pem).toMatch(/^-----BEGIN X509 CRL-----\n/);
    expect(await crl.verify({ publicKey: pki.intermediate.cert })).toBe(true);
    expect(await crl.verify({ publicKey: pki.root.cert })).toBe(false);
    expect(crl.issuer).toBe(pki.intermediate.cert.subject);
    const entry = crl.findRevoked(revoked.serial)!;
    expect(entry.revocationDate.toISOString()).toBe(revokedAt.toISOString());
    expect(entry.reason).toBe(x509.X509CrlReason.keyCompromise);
    expect(crl.findRevoked('abc')?.reason).toBeUndefined();
    expect(crl.entries.map((e) => canonicalSerial(e.serialNumber))).toEqual([revoked.serial, 'abc']);
    expect(der.byteLength).toBe(crl.rawData.byteLength);
  });

  it('produces a CRL OpenSSL accepts, with CRL number and AKI', async () => {
    const pki = await createTestPki();
    const { pem } = await pki.crl({ entries: ['01', 'ff'], crlNumber: 42 });
    const dir = tempDir();
    writeFileSync(join(dir, 'crl.pem'), pem);
    writeFileSync(join(dir, 'ca.pem'), pki.intermediate.certPem);
    const r = spawnSync('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-CAfile', join(dir, 'ca.pem'), '-noout', '-text']);
    expect(r.stderr.toString()).toContain('verify OK');
    const out = r.stdout.toString();
    expect(out).toContain('X509v3 CRL Number');
    expect(out).toMatch(/CRL Number:\s*\n\s*42/);
    expect(out).toContain('X509v3 Authority Key Identifier');
    expect(out).toContain('Serial Number: FF');
  });

  it('rejects an unknown reason', () => {
    expect(() => crlReasonCode('bogus')).toThrow(/unknown CRL reason/);
    expect(crlReasonCode('key_compromise')).toBe(1);
    expect(crlReasonCode(9)).toBe(9);
  });

  // Signing speed is the bench's business; here: a CRL that large is complete and valid.
  it('signs a CRL of 100,000 entries that OpenSSL verifies', async () => {
    const pki = await createTestPki();
    const entries = Array.from({ length: 100_000 }, (_, i) => ({ serial: (0x1000000 + i).toString(16), reason: i % 2 ? 'keyCompromise' : undefined }));
    const { der } = await issueCrl({ issuer: pki.intermediate.issuer, entries });
    // OpenSSL parses and verifies it (the x509 parser would take ~10 s here).
    const dir = tempDir();
    writeFileSync(join(dir, 'big.crl'), der);
    writeFileSync(join(dir, 'ca.pem'), pki.intermediate.certPem);
    const r = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'big.crl'), '-CAfile', join(dir, 'ca.pem'), '-noout', '-text'], {
      maxBuffer: 256 * 1024 * 1024,
    });
    expect(r.stderr.toString()).toContain('verify OK');
    const out = r.stdout.toString();
    expect(out.match(/Serial Number:/g)).toHaveLength(100_000);
    expect(out).toContain(`Serial Number: 0${(0x1000000 + 99_999).toString(16).toUpperCase()}`);
  });
});

describe('writeDevCerts', () => {
  it('writes every file, keys with mode 0600, and keeps them on a second call', async () => {
    const dir = tempDir();
    const first = await writeDevCerts(dir);
    expect(first.created).toBe(true);
    const p = first.paths;
    const files = [p.rootCa, p.rootCaKey, p.intermediateCa, p.intermediateCaKey, p.caBundle, p.server, p.serverKey,
      ...Object.values(p.clients).flatMap((c) => [c.cert, c.key])];
    expect(files.map((f) => f.slice(dir.length + 1)).sort()).toEqual([
      'ca-bundle.pem', 'client-alice-key.pem', 'client-alice.pem', 'client-bob-key.pem', 'client-bob.pem',
      'client-mallory-key.pem', 'client-mallory.pem', 'intermediate-ca-key.pem', 'intermediate-ca.pem',
      'root-ca-key.pem', 'root-ca.pem', 'server-key.pem', 'server.pem',
    ]);
    for (const key of [p.rootCaKey, p.intermediateCaKey, p.serverKey, ...Object.values(p.clients).map((c) => c.key)]) {
      expect(statSync(key).mode & 0o777).toBe(0o600);
    }

    const root = node(readFileSync(p.rootCa, 'utf8'));
    const inter = node(readFileSync(p.intermediateCa, 'utf8'));
    expect(root.subject).toContain('CN=certgate dev root CA');
    expect(inter.subject).toContain('CN=certgate dev intermediate CA');
    expect(inter.checkIssued(root)).toBe(true);
    const alice = node(readFileSync(p.clients.alice.cert, 'utf8'));
    expect(alice.subject.split('\n')).toEqual(['O=certgate-dev', 'OU=payments', 'CN=alice']);
    expect(alice.subjectAltName).toBe('URI:spiffe://certgate.dev/ns/dev/sa/alice');
    expect(alice.checkIssued(inter)).toBe(true);
    expect(node(readFileSync(p.clients.mallory.cert, 'utf8')).subjectAltName).toBeUndefined();
    const server = node(readFileSync(p.server, 'utf8'));
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(readFileSync(p.server, 'utf8').match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(readFileSync(p.caBundle, 'utf8').match(/BEGIN CERTIFICATE/g)).toHaveLength(2);

    const before = readFileSync(p.rootCa, 'utf8');
    const second = await writeDevCerts(dir);
    expect(second.created).toBe(false);
    expect(readFileSync(p.rootCa, 'utf8')).toBe(before);
    const forced = await writeDevCerts(dir, { force: true });
    expect(forced.created).toBe(true);
    expect(readFileSync(p.rootCa, 'utf8')).not.toBe(before);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to fill in a folder holding only some of the files', async () => {
    const dir = tempDir();
    const { paths } = await writeDevCerts(dir);
    rmSync(paths.serverKey);
    await expect(writeDevCerts(dir)).rejects.toBeInstanceOf(DevCertsError);
    expect(existsSync(paths.serverKey)).toBe(false);
  });

  it('dev certificates pass a real TLS handshake: OpenSSL validates the chains both ways', async () => {
    const dir = tempDir();
    const { paths } = await writeDevCerts(dir);
    const read = (f: string): string => readFileSync(f, 'utf8');
    const server = tls.createServer({
      cert: read(paths.server),
      key: read(paths.serverKey),
      ca: read(paths.caBundle),
      requestCert: true,
      rejectUnauthorized: false,
    });
    const results: { authorized: boolean; error: unknown; cn: unknown }[] = [];
    server.on('secureConnection', (s) => {
      results.push({ authorized: s.authorized, error: s.authorizationError, cn: s.getPeerCertificate().subject?.CN });
      s.end('ok');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      for (const name of ['alice', 'mallory'] as const) {
        const sock = tls.connect({
          host: '127.0.0.1',
          port,
          servername: 'localhost',
          ca: read(paths.rootCa),
          cert: read(paths.clients[name].cert),
          key: read(paths.clients[name].key),
        });
        await once(sock, 'secureConnect');
        expect(sock.authorized).toBe(true); // the client validated the server chain too
        sock.resume();
        await once(sock, 'end');
        sock.destroy();
      }
    } finally {
      server.close();
    }
    expect(results).toEqual([
      { authorized: true, error: null, cn: 'alice' },
      { authorized: true, error: null, cn: 'mallory' },
    ]);
  });
});

describe('test PKI helper', () => {
  it('issues from an untrusted hierarchy a client with the same subject, which the trusted CA did not sign', async () => {
    const pki = await createTestPki();
    const other = await pki.untrustedRoot({ sameNames: true });
    const trusted = await pki.client({ subject: 'CN=alice, OU=payments, O=Acme' });
    const forged = await other.client({ subject: 'CN=alice, OU=payments, O=Acme' });
    expect(forged.nodeCert.subject).toBe(trusted.nodeCert.subject);
    expect(forged.nodeCert.issuer).toBe(trusted.nodeCert.issuer);
    expect(forged.nodeCert.verify(pki.intermediate.nodeCert.publicKey)).toBe(false);
    expect(await createTestPki()).toBe(pki); // cached per test file
  });

  it('writes server cert, key and CA bundle for configs', async () => {
    const pki = await createTestPki();
    const w = await pki.writeTo(join(tempDir(), 'certs'));
    expect(readFileSync(w.serverCert, 'utf8')).toBe(pki.server.chainPem);
    expect(statSync(w.serverKey).mode & 0o777).toBe(0o600);
    expect(readFileSync(w.caBundle, 'utf8')).toBe(chainPem(pki.root.certPem, pki.intermediate.certPem));
  });

  it('makes an RSA-1024 SHA-1 certificate with openssl, signed by the intermediate', async () => {
    const pki = await createTestPki();
    const weak = weakCertWithOpenssl({ issuer: pki.intermediate, subject: 'CN=weak, O=certgate-test' });
    expect(weak.nodeCert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(1024);
    expect(opensslText(weak.certPem)).toContain('Signature Algorithm: ecdsa-with-SHA1');
    expect(weak.nodeCert.checkIssued(pki.intermediate.nodeCert)).toBe(true);
    expect(weak.nodeCert.verify(pki.intermediate.nodeCert.publicKey)).toBe(true);
    expect(weak.nodeCert.subject.split('\n')).toEqual(['O=certgate-test', 'CN=weak']);
    expect(weak.cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(
      pki.intermediate.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
  });

  it('makes an MD5-signed certificate under an RSA CA', async () => {
    const pki = await createTestPki();
    const rsaCa = await pki.ca({ keyAlg: 'RSA-2048' });
    const weak = weakCertWithOpenssl({ issuer: rsaCa, digest: 'md5', rsaBits: 2048 });
    expect(opensslText(weak.certPem)).toContain('Signature Algorithm: md5WithRSAEncryption');
    expect(weak.nodeCert.checkIssued(rsaCa.nodeCert)).toBe(true);
    expect(weak.chainPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(3);
  });
});
