// Development certificates: a root, an intermediate, a localhost server certificate and three
// client identities (alice, bob, mallory), all ECDSA P-256, written once into a folder.
import { access, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CA_FILES, initAuthority } from './authority.js';
import { writeFileAtomic } from '../util/files.js';

export const DEV_CLIENTS = Object.freeze({
  alice: { subject: 'CN=alice, OU=payments, O=certgate-dev', uri: 'spiffe://certgate.dev/ns/dev/sa/alice' },
  bob: { subject: 'CN=bob, OU=support, O=certgate-dev', uri: 'spiffe://certgate.dev/ns/dev/sa/bob' },
  mallory: { subject: 'CN=mallory, OU=guests, O=certgate-dev', uri: undefined },
} as const);

export type DevClientName = keyof typeof DEV_CLIENTS;

export interface DevCertPaths {
  rootCa: string;
  rootCaKey: string;
  intermediateCa: string;
  intermediateCaKey: string;
  /** Root + intermediate: what certgate trusts for client certificates. */
  caBundle: string;
  /** Server leaf + intermediate. */
  server: string;
  serverKey: string;
  /** Per client: leaf + intermediate, and its key. */
  clients: Record<DevClientName, { cert: string; key: string }>;
}

export interface DevCertsResult {
  dir: string;
  /** False when every file already existed and nothing was written. */
  created: boolean;
  paths: DevCertPaths;
}

/** Raised when some, but not all, dev files exist: writing would mix two hierarchies. */
export class DevCertsError extends Error {
  readonly code = 'CERTGATE_DEV_CERTS_PARTIAL';
  readonly existing: readonly string[];
  readonly missing: readonly string[];
  constructor(dir: string, existing: string[], missing: string[]) {
    super(`${dir} holds some dev certificates but not all (missing: ${missing.join(', ')}); run again with --force to recreate them all`);
    this.existing = existing;
    this.missing = missing;
  }
}

const DAY = 86_400_000;

export function devCertPaths(dir: string): DevCertPaths {
  const clients = {} as Record<DevClientName, { cert: string; key: string }>;
  for (const name of Object.keys(DEV_CLIENTS) as DevClientName[]) {
    clients[name] = { cert: join(dir, `client-${name}.pem`), key: join(dir, `client-${name}-key.pem`) };
  }
  return {
    rootCa: join(dir, 'root-ca.pem'),
    rootCaKey: join(dir, 'root-ca-key.pem'),
    intermediateCa: join(dir, 'intermediate-ca.pem'),
    intermediateCaKey: join(dir, 'intermediate-ca-key.pem'),
    caBundle: join(dir, 'ca-bundle.pem'),
    server: join(dir, 'server.pem'),
    serverKey: join(dir, 'server-key.pem'),
    clients,
  };
}

function allPaths(p: DevCertPaths): string[] {
  return [
    p.rootCa, p.rootCaKey, p.intermediateCa, p.intermediateCaKey, p.caBundle, p.server, p.serverKey,
    ...Object.values(p.clients).flatMap((c) => [c.cert, c.key]),
  ];
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates the dev PKI in dir; keeps existing files unless `force`. It is the issuing CA with dev
 * defaults (src/ca/authority.ts): the folder is a CA directory, so `certgate ca issue --dir
 * certs-dev ...` issues more dev clients, and the index lists the ones written here.
 */
export async function writeDevCerts(dir: string, opts: { force?: boolean } = {}): Promise<DevCertsResult> {
  const paths = devCertPaths(dir);
  const files = allPaths(paths);
  if (!opts.force) {
    const present = await Promise.all(files.map(exists));
    const existing = files.filter((_, i) => present[i]);
    if (existing.length === files.length) return { dir, created: false, paths };
    if (existing.length > 0) throw new DevCertsError(dir, existing, files.filter((_, i) => !present[i]));
  }
  await mkdir(dir, { recursive: true });
  // A forced run starts a new hierarchy: the old one's files and index go.
  await Promise.all([...files, ...Object.values(CA_FILES).map((f) => join(dir, f))].map((f) => rm(f, { force: true })));

  const notBefore = new Date(Math.floor((Date.now() - 60_000) / 1000) * 1000);
  const ca = await initAuthority(dir, {
    keyAlg: 'P-256',
    intermediate: true,
    rootSubject: 'CN=certgate dev root CA, O=certgate-dev',
    intermediateSubject: 'CN=certgate dev intermediate CA, O=certgate-dev',
    notBefore,
    days: 3650,
  });
  const CERT = 0o644;
  const KEY = 0o600;
  const server = await ca.issue({
    subject: 'CN=localhost, O=certgate-dev',
    notBefore,
    notAfter: new Date(notBefore.getTime() + 365 * DAY),
    eku: ['serverAuth'],
    san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] },
    source: 'dev-certs',
  });
  const writes: Promise<void>[] = [writeFileAtomic(paths.server, server.chainPem, CERT), writeFileAtomic(paths.serverKey, server.keyPem!, KEY)];
  for (const name of Object.keys(DEV_CLIENTS) as DevClientName[]) {
    const spec = DEV_CLIENTS[name];
    const client = await ca.issue({
      subject: spec.subject,
      notBefore,
      notAfter: new Date(notBefore.getTime() + 90 * DAY),
      eku: ['clientAuth'],
      ...(spec.uri !== undefined ? { san: { uri: [spec.uri] } } : {}),
      source: 'dev-certs',
    });
    writes.push(writeFileAtomic(paths.clients[name].cert, client.chainPem, CERT), writeFileAtomic(paths.clients[name].key, client.keyPem!, KEY));
  }
  await Promise.all(writes);
  return { dir, created: true, paths };
}
