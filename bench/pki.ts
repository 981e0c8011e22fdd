// Certificates for one bench run, generated into a temp folder: one CA, a localhost server
// certificate, an ECDSA P-256 and an RSA 2048 client, N distinct identities (many-identities)
// and a large CRL. The N identities share one key pair: only the certificates must differ.

import type { webcrypto } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueCertificate, issueCrl, issuerFromPem, randomSerial, type Issuer } from '../src/ca/pki.js';

export interface ClientCert {
  readonly name: string;
  readonly cert: string;
  readonly key: string;
}

export interface BenchPki {
  readonly dir: string;
  readonly caFile: string;
  readonly caPem: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly ecdsa: ClientCert;
  readonly rsa: ClientCert;
  /** Distinct certificates, CN=bench-<i>, OU=team-<i % 50>, O=bench. */
  readonly identities: readonly ClientCert[];
  /** Written by `writeCrl`, undefined until then. */
  crlFile?: string;
}

export const TEAMS = 50;

/** What a run's PKI keeps for issuing more later: the CA and the key pair the identities share. */
interface Hidden {
  issuer?: Issuer;
  shared?: { keys: { publicKey: webcrypto.CryptoKey }; keyPem: string };
}

async function issueMany(issuer: Issuer, shared: NonNullable<Hidden['shared']>, n: number, subject: (i: number) => string, name: string): Promise<ClientCert[]> {
  const out: ClientCert[] = [];
  for (let i = 0; i < n; i++) {
    const c = await issueCertificate({ subject: subject(i), issuer, publicKey: shared.keys.publicKey, days: 30, eku: ['clientAuth'] });
    out.push({ name: `${name}-${i}`, cert: c.certPem, key: shared.keyPem });
  }
  return out;
}

/** n more distinct client certificates (CN=<name>-<i>, O=bench) from the run's CA, e.g. to revoke. */
export function issueIdentities(pki: BenchPki, n: number, name: string): Promise<ClientCert[]> {
  const h = pki as Hidden;
  return issueMany(h.issuer!, h.shared!, n, (i) => `CN=${name}-${i}, O=bench`, name);
}

/**
 * A folder that already holds ca.pem, ca-key.pem, server.pem and server-key.pem keeps them (so
 * that another proxy configured with them can be compared run after run); else all is new.
 */
export async function createBenchPki(dir: string, identities: number): Promise<BenchPki> {
  const f = (n: string) => join(dir, n);
  const reuse = ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem'].every((n) => existsSync(f(n)));
  let ca: { certPem: string; keyPem: string };
  let issuer: Issuer;
  let server: { certPem: string; keyPem: string };
  if (reuse) {
    ca = { certPem: readFileSync(f('ca.pem'), 'utf8'), keyPem: readFileSync(f('ca-key.pem'), 'utf8') };
    issuer = await issuerFromPem(ca.certPem, ca.keyPem);
    server = { certPem: readFileSync(f('server.pem'), 'utf8'), keyPem: readFileSync(f('server-key.pem'), 'utf8') };
  } else {
    const c = await issueCertificate({ subject: 'CN=certgate bench CA, O=bench', isCA: true, days: 30 });
    ca = c;
    issuer = { cert: c.cert, privateKey: c.keys.privateKey };
    server = await issueCertificate({
      subject: 'CN=localhost, O=bench',
      issuer,
      days: 30,
      eku: ['serverAuth'],
      san: { dns: ['localhost'], ip: ['127.0.0.1'] },
    });
  }
  const client = (subject: string, keyAlg: 'P-256' | 'RSA-2048') => issueCertificate({ subject, issuer, keyAlg, days: 30, eku: ['clientAuth'] });
  const [ecdsa, rsa] = await Promise.all([client('CN=bench-ecdsa, OU=team-0, O=bench', 'P-256'), client('CN=bench-rsa, OU=team-0, O=bench', 'RSA-2048')]);
  const ids = await issueMany(issuer, ecdsa, identities, (i) => `CN=bench-${i}, OU=team-${i % TEAMS}, O=bench`, 'bench');
  const caFile = join(dir, 'ca.pem');
  const serverCertFile = join(dir, 'server.pem');
  const serverKeyFile = join(dir, 'server-key.pem');
  writeFileSync(caFile, ca.certPem);
  // The two clients stay on disk, for pointing another proxy's tests at them.
  for (const [name, c] of [['ecdsa', ecdsa], ['rsa', rsa]] as const) {
    writeFileSync(f(`client-${name}.pem`), c.certPem);
    writeFileSync(f(`client-${name}-key.pem`), c.keyPem, { mode: 0o600 });
  }
  if (!reuse) {
    writeFileSync(serverCertFile, server.certPem);
    writeFileSync(serverKeyFile, server.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'ca-key.pem'), ca.keyPem, { mode: 0o600 });
  }
  const pki: BenchPki = {
    dir,
    caFile,
    caPem: ca.certPem,
    serverCertFile,
    serverKeyFile,
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    ecdsa: { name: 'bench-ecdsa', cert: ecdsa.certPem, key: ecdsa.keyPem },
    rsa: { name: 'bench-rsa', cert: rsa.certPem, key: rsa.keyPem },
    identities: ids,
  };
  (pki as Hidden).issuer = issuer;
  (pki as Hidden).shared = ecdsa;
  return pki;
}

/** A CRL of `entries` random serials (none of them ours), DER, next to the CA. */
export async function writeCrl(pki: BenchPki, entries: number): Promise<string> {
  const issuer = (pki as Hidden).issuer!;
  const list = new Array(entries);
  for (let i = 0; i < entries; i++) list[i] = { serial: randomSerial(), reason: 'keyCompromise' };
  const crl = await issueCrl({ issuer, entries: list, crlNumber: 1 });
  const file = join(pki.dir, 'bench.crl');
  writeFileSync(file, crl.der);
  pki.crlFile = file;
  return file;
}
