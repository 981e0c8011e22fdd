// How the CLI reaches the admin API: its URL, the bearer token and, for an mTLS admin listener
// (admin.tls), the client certificate. Flags first, then admin.client from --config.

import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import type { Config } from '../config/types.js';
import { readAdminToken } from '../admin/auth.js';
import { UsageError } from './usage.js';

export interface AdminClientFlags {
  readonly admin?: string | undefined;
  readonly 'token-file'?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly ca?: string | undefined;
}

export interface AdminTarget {
  readonly url: string;
  readonly token: string | undefined;
  readonly tls: { cert?: string; key?: string; ca?: string } | undefined;
}

/** The admin URL a config implies: its client.url, else admin.host:port (https with admin.tls). */
function urlOf(cfg: Config): string {
  if (cfg.admin.client.url !== undefined) return cfg.admin.client.url;
  const host = cfg.admin.host === '0.0.0.0' ? '127.0.0.1' : cfg.admin.host === '::' ? '::1' : cfg.admin.host;
  return `${cfg.admin.tls !== undefined ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${cfg.admin.port}`;
}

export function adminTarget(v: AdminClientFlags, cfg: Config | undefined, fallbackUrl?: string): AdminTarget {
  const url = v.admin ?? (cfg !== undefined ? urlOf(cfg) : fallbackUrl);
  if (url === undefined) throw new UsageError('missing required flag --admin (or --config FILE)');
  const cert = v.cert ?? cfg?.admin.client.cert;
  const key = v.key ?? cfg?.admin.client.key;
  const ca = v.ca ?? cfg?.admin.client.ca;
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--cert and --key go together');
  const read = (f: string, flag: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (err) {
      throw new UsageError(`${flag} ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const tls = cert !== undefined || ca !== undefined
    ? { ...(cert !== undefined ? { cert: read(cert, '--cert'), key: read(key!, '--key') } : {}), ...(ca !== undefined ? { ca: read(ca, '--ca') } : {}) }
    : undefined;
  // With a client certificate the token is optional: the config's default token file may not exist.
  const tokenFile = v['token-file'] ?? (cfg !== undefined && (cert === undefined || existsSync(cfg.admin.tokenFile)) ? cfg.admin.tokenFile : undefined);
  return { url: url.replace(/\/+$/, ''), token: tokenFile !== undefined ? readAdminToken(tokenFile) : undefined, tls };
}

/** One admin request; throws when the admin API cannot be reached. */
export async function adminRequest(t: AdminTarget, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const dispatcher = new Agent({ connect: { ...t.tls }, headersTimeout: 10_000, bodyTimeout: 10_000 });
  try {
    const res = await request(t.url + path, {
      method: method as 'GET',
      dispatcher,
      headers: { ...(t.token !== undefined ? { authorization: `Bearer ${t.token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await dispatcher.close().catch(() => {});
  }
}

export function unreachable(url: string, err: unknown): string {
  const e = err as Error & { cause?: Error };
  return `certgate: cannot reach the admin API at ${url}: ${e.cause?.message ?? e.message}\n`;
}
