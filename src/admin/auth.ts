// Admin authentication: a bearer token read from admin.tokenFile (generated, mode 0600, on first
// start when absent), compared in constant time.

import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync, statSync, chmodSync } from 'node:fs';
import { createFileExclusiveSync, writeFileAtomicSync } from '../util/files.js';

/** Reads the token, creating it when the file does not exist. */
export function ensureAdminToken(file: string): string {
  let tooShort = false;
  try {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length >= 16) {
      // A token readable by others is no secret: tighten it rather than refuse to start.
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
      return token;
    }
    tooShort = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  if (tooShort) {
    writeFileAtomicSync(file, token + '\n', 0o600);
    return token;
  }
  // Two processes starting at once (workers, a CLI) must agree: the first file written wins.
  return createFileExclusiveSync(file, token + '\n', 0o600) ? token : readAdminToken(file);
}

export function readAdminToken(file: string): string {
  return readFileSync(file, 'utf8').trim();
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** True when the Authorization header carries the token. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false;
  return timingSafeEqual(digest(header.slice(7).trim()), digest(token));
}
