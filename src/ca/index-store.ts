// The CA's index (issued certificates, revocations, enrollment tokens) behind a small interface, so
// that a shared store can replace the file one; the file store reads and rewrites index.json
// under the index lock with an atomic write, so CLI runs and the server's EST endpoint never lose
// each other's entries.
import { readFile } from 'node:fs/promises';
import { withFileLock, writeFileAtomic } from '../util/files.js';

export interface IndexEntry {
  serial: string;
  subject: string;
  uri: string[];
  dns: string[];
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  fingerprint: string;
  /** Who asked: cli, csr, est-enroll, est-reenroll, dev-certs. */
  source: string;
  /** Serial of the certificate this one renewed. */
  renewedFrom?: string;
  revokedAt?: string;
  reason?: string;
}

export interface TokenEntry {
  /** sha256 of the token, hex: the token itself is never stored. */
  hash: string;
  cn: string;
  ou: string[];
  uri: string[];
  dns: string[];
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
}

export interface IndexFile {
  version: 1;
  crlNumber: number;
  certs: IndexEntry[];
  tokens: TokenEntry[];
}

class IndexError extends Error {
  readonly code = 'CERTGATE_CA_INDEX_INVALID';
}

export function emptyIndex(): IndexFile {
  return { version: 1, crlNumber: 0, certs: [], tokens: [] };
}

export interface CaIndexStore {
  read(): Promise<IndexFile>;
  /** Read-modify-write as one step: no other update runs between the read and the write. */
  update<T>(fn: (idx: IndexFile) => T | Promise<T>): Promise<T>;
}

export class FileIndexStore implements CaIndexStore {
  readonly #file: string;
  readonly #lock: string;

  constructor(file: string, lock: string) {
    this.#file = file;
    this.#lock = lock;
  }

  async read(): Promise<IndexFile> {
    try {
      const data = JSON.parse(await readFile(this.#file, 'utf8')) as IndexFile;
      if (data.version !== 1 || !Array.isArray(data.certs)) throw new Error('unknown index format');
      data.tokens ??= [];
      data.crlNumber ??= 0;
      return data;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyIndex();
      throw new IndexError(`${this.#file}: ${(err as Error).message}`);
    }
  }

  update<T>(fn: (idx: IndexFile) => T | Promise<T>): Promise<T> {
    return withFileLock(this.#lock, async () => {
      const idx = await this.read();
      const out = await fn(idx);
      await writeFileAtomic(this.#file, JSON.stringify(idx, null, 1) + '\n', 0o600);
      return out;
    });
  }
}
