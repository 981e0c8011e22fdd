// Who may do what on the admin listener. Built once per config load (start, reload): the admin
// TLS material and the compiled allow list with roles; the decision per request is a pure
// function of the credentials presented and that access (no I/O).

import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import type { Config, MatcherSpec } from '../config/types.js';
import type { ErrorCode } from '../errors.js';
import type { Identity } from '../identity/types.js';
import { compileMatcher, type IdentityMatcher } from '../policy/compile.js';
import { CompiledCertPolicy } from '../tls/client-cert-policy.js';
import { loadTlsMaterial, MaterialError, type TlsMaterial } from '../tls/material.js';
import { DASHBOARD_SHELL_PATHS } from './dashboard.js';

export type AdminRole = 'read' | 'admin';

/** The admin listener's trust: what the proxy's handshake admission reads, for admin clients. */
export interface AdminTls {
  readonly tls: TlsMaterial;
  readonly certPolicy: CompiledCertPolicy;
  readonly trustedOnResumption: WeakMap<Identity, true>;
  readonly allow: readonly { readonly match: IdentityMatcher; readonly role: AdminRole }[];
  readonly tokenAlso: boolean;
  /** The proxy's TLS settings (minVersion, ciphers) apply to the admin listener too. */
  readonly config: Config;
}

export interface AdminAccess {
  readonly tls: AdminTls | undefined;
  /** Plain HTTP on an address other than loopback: reads need a token, and a warning says so. */
  readonly exposedPlain: boolean;
  readonly publicMetrics: boolean;
  readonly host: string;
  /** admin.readTokenFile's token, read with the rest so that a reload changes it. */
  readonly readToken: string | undefined;
}

/**
 * Loopback addresses: 127.0.0.0/8, ::1, their IPv4-mapped form and `localhost`. Everything else
 * (0.0.0.0, ::, a LAN address, a host name) may be reachable from elsewhere.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) {
    if (h === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(h)) return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}

export const PLAIN_EXPOSED_WARNING =
  'the admin API is served over plain HTTP on a non-loopback address: the bearer token travels in clear and reads need it; set admin.tls (mTLS) to protect it';

/** Throws MaterialError (paths admin.tls.*) when the admin TLS files cannot be used. */
export function buildAdminAccess(config: Config, now = Date.now()): AdminAccess {
  const a = config.admin;
  const base = { publicMetrics: a.publicMetrics, host: a.host, readToken: a.enabled ? readTokenOf(a.readTokenFile) : undefined };
  if (!a.enabled || a.tls === undefined) return { ...base, tls: undefined, exposedPlain: a.enabled && !isLoopbackHost(a.host) };
  const t = a.tls;
  // The proxy's loader, pointed at the admin files: the same checks (key matches, expiry, CA
  // flags), reported under the admin keys.
  let tls: TlsMaterial;
  try {
    tls = loadTlsMaterial({ ...config, tls: { ...config.tls, cert: t.cert, key: t.key, clientCAs: t.clientCAs } }, now);
  } catch (err) {
    if (!(err instanceof MaterialError)) throw err;
    throw new MaterialError(err.issues.map((i) => ({ ...i, path: i.path.startsWith('tls.') ? `admin.${i.path}` : i.path })), err.cas);
  }
  const allow = t.allow.map((entry) => {
    const { role, ...spec } = entry as MatcherSpec & { role?: AdminRole };
    return Object.freeze({ match: compileMatcher(spec), role: role ?? 'admin' });
  });
  return {
    ...base,
    exposedPlain: false,
    tls: Object.freeze({
      tls,
      certPolicy: new CompiledCertPolicy(config.clientCertPolicy),
      trustedOnResumption: new WeakMap(),
      allow: Object.freeze(allow),
      tokenAlso: t.tokenAlso,
      config,
    }),
  };
}

function readTokenOf(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new MaterialError([{ path: 'admin.readTokenFile', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  if (token.length < 16) throw new MaterialError([{ path: 'admin.readTokenFile', message: `${file} must hold a token of at least 16 characters` }]);
  return token;
}

/** The highest role an allow entry gives this identity; undefined when none matches. */
export function roleOf(id: Identity, tls: AdminTls): AdminRole | undefined {
  let role: AdminRole | undefined;
  for (const e of tls.allow) {
    if (!e.match(id)) continue;
    if (e.role === 'admin') return 'admin';
    role = 'read';
  }
  return role;
}

/** What the client presented on its connection (mTLS only), already checked. */
export type CertStanding =
  | { readonly state: 'none' }
  | { readonly state: 'refused'; readonly code: ErrorCode; readonly message: string; readonly peer?: Identity | undefined }
  | { readonly state: 'allowed'; readonly role: AdminRole; readonly id: Identity };

export interface AdminAsk {
  /** Needs the admin role (POST, DELETE, reload). */
  readonly mutation: boolean;
  /** /healthz, /readyz, and /metrics unless protected: no credentials needed. */
  readonly path: string;
  readonly cert: CertStanding;
  /** The role of the bearer token presented, if it matched one. */
  readonly token: AdminRole | undefined;
}

export type AdminVerdict =
  | { readonly ok: true; readonly actor: string }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

// The dashboard's HTML, JS and CSS hold no data (it comes from the protected JSON reads).
const ALWAYS_OPEN = new Set(['/healthz', '/readyz', ...DASHBOARD_SHELL_PATHS]);

export function isOpenPath(path: string, access: AdminAccess): boolean {
  // Under mTLS a scraper uses a read certificate; publicMetrics is about plain HTTP.
  return ALWAYS_OPEN.has(path) || (path === '/metrics' && access.tls === undefined && access.publicMetrics);
}

/** The decision for one admin request. Pure. */
export function authorizeAdmin(ask: AdminAsk, access: AdminAccess): AdminVerdict {
  const { cert } = ask;
  // A bad certificate is refused whatever else comes with it, as on the proxy.
  if (cert.state === 'refused') return { ok: false, code: cert.code, message: cert.message };
  const token = access.tls === undefined || access.tls.tokenAlso ? ask.token : undefined;
  const certRole = cert.state === 'allowed' ? cert.role : undefined;
  const role: AdminRole | undefined = certRole === 'admin' || token === 'admin' ? 'admin' : certRole ?? token;
  const actor =
    cert.state === 'allowed' ? `cert:${cert.id.subject} sha256:${cert.id.fingerprint}`
    : token === 'admin' ? 'token'
    : token === 'read' ? 'read-token'
    : 'anonymous';
  const needs: AdminRole | undefined =
    ask.mutation ? 'admin'
    : isOpenPath(ask.path, access) ? undefined
    : access.tls !== undefined || access.exposedPlain ? 'read'
    : undefined;
  if (needs === undefined || role === 'admin' || (needs === 'read' && role === 'read')) return { ok: true, actor };
  if (role === 'read') return { ok: false, code: 'admin_forbidden', message: 'this admin endpoint needs the admin role; the credentials presented allow reads only' };
  if (access.tls !== undefined) {
    return {
      ok: false,
      code: 'certificate_required',
      message: access.tls.tokenAlso
        ? 'this admin endpoint requires an allowed client certificate (or Authorization: Bearer <token from admin.tokenFile>)'
        : 'this admin endpoint requires an allowed client certificate',
    };
  }
  return {
    ok: false,
    code: 'unauthorized',
    message: ask.mutation
      ? 'this admin endpoint requires Authorization: Bearer <token from admin.tokenFile>'
      : 'admin reads on a non-loopback address require Authorization: Bearer <token from admin.tokenFile or admin.readTokenFile>',
  };
}
