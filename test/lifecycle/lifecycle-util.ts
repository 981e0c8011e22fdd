// Small helpers shared by the lifecycle tests: atomic file replacement, the server certificate a
// fresh handshake sees, reading a counter, waiting for a condition.

import { renameSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { metrics } from '../../src/metrics.js';

/** Writes a file the way deploy tools do: a temp file beside it, then rename over it. */
export function atomicWrite(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.hrtime.bigint()}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** SHA-256 fingerprint (lowercase hex) of the certificate a new handshake gets. */
export function servedFingerprint(port: number, ca: string, client?: { cert: string; key: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...(client ?? {}) }, () => {
      const fp = s.getPeerX509Certificate()!.fingerprint256.replace(/:/g, '').toLowerCase();
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

export async function reloadCount(result: 'success' | 'failure'): Promise<number> {
  const v = (await metrics.reloads.get()).values.find((x) => x.labels.result === result);
  return v?.value ?? 0;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 3000, every = 25): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
