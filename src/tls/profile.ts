// The TLS profile of a listener: protocol floor, cipher suites and key-exchange groups, resolved
// once per load from `tls.profile`, `tls.minVersion`, `tls.ciphers` and `tls.ecdhCurves`, and
// checked against what this OpenSSL knows: OpenSSL skips names it does not know in a list, so
// a typo would otherwise silently serve something else.

import { createSecureContext, DEFAULT_CIPHERS, getCiphers } from 'node:tls';

export type ProfileName = 'modern' | 'intermediate';

/**
 * Mozilla's "intermediate" TLS 1.2 suites without the DHE ones: ECDHE key exchange (forward
 * secrecy) and AEAD only (AES-GCM, ChaCha20-Poly1305). No CBC suite (LUCKY13), no RSA key
 * exchange, no SHA-1 MAC.
 */
export const INTERMEDIATE_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;

/** TLS 1.3 suites as this OpenSSL offers them by default (all AEAD by design). */
export const TLS13_SUITES: readonly string[] = DEFAULT_CIPHERS.split(':').filter((c) => c.startsWith('TLS_'));

/** Mozilla's intermediate groups, strongest-to-cheapest as clients expect. */
export const DEFAULT_ECDH_CURVES = 'X25519:prime256v1:secp384r1';

export interface TlsProfile {
  readonly name: ProfileName;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** The OpenSSL cipher string handed to Node: TLS 1.2 list plus TLS 1.3 suites. */
  readonly ciphers: string;
  readonly ecdhCurve: string;
}

export interface ProfileSettings {
  readonly profile: ProfileName;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly ciphers?: string | undefined;
  readonly ecdhCurves?: string | undefined;
}

export interface ProfileIssue {
  /** `tls.ciphers` or `tls.ecdhCurves`, relative to the listener's `tls` section. */
  readonly key: 'ciphers' | 'ecdhCurves';
  readonly message: string;
}

/** An alias (`HIGH`, `aNULL`) or a `+` combination of them, as opposed to a suite name. */
const KEYWORD = /^[A-Za-z0-9+]+$/;

function trial(opts: { ciphers?: string; ecdhCurve?: string }): boolean {
  try {
    createSecureContext(opts);
    return true;
  } catch {
    return false;
  }
}

/**
 * Every entry of `tls.ciphers` that this OpenSSL does not know: a suite name not in
 * `tls.getCiphers()`, or an alias (`HIGH`, `ECDHE+AESGCM`) that selects nothing.
 */
export function unknownCiphers(list: string): string[] {
  const known = new Set(getCiphers());
  const unknown: string[] = [];
  for (const raw of list.split(':')) {
    const entry = raw.trim().replace(/^[!+-]/, '');
    if (entry === '' || entry.startsWith('@')) continue;
    if (known.has(entry.toLowerCase())) continue;
    // An alias or a `+` combination: known when OpenSSL selects at least one suite with it.
    if (KEYWORD.test(entry) && !entry.startsWith('TLS_') && trial({ ciphers: entry })) continue;
    unknown.push(raw.trim());
  }
  return unknown;
}

/** Every curve of a `:` list that OpenSSL refuses as a key-exchange group. */
export function unknownCurves(list: string): string[] {
  return list.split(':').filter((c) => c.trim() === '' || !trial({ ecdhCurve: c.trim() }));
}

/**
 * The profile a listener serves, or the problems with its explicit overrides. `modern` is TLS
 * 1.3 only; `intermediate` adds TLS 1.2 with the AEAD ECDHE suites. `ciphers` replaces the TLS
 * 1.2 list; TLS 1.3 suites stay OpenSSL's unless the list names some itself.
 */
export function resolveProfile(s: ProfileSettings): { profile?: TlsProfile; issues: ProfileIssue[] } {
  const issues: ProfileIssue[] = [];
  if (s.ciphers !== undefined) {
    const bad = unknownCiphers(s.ciphers);
    if (bad.length > 0) {
      issues.push({ key: 'ciphers', message: `${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not a cipher suite this OpenSSL knows (see \`openssl ciphers -v\`)` });
    }
  }
  if (s.ecdhCurves !== undefined) {
    const bad = unknownCurves(s.ecdhCurves);
    if (bad.length > 0) {
      issues.push({ key: 'ecdhCurves', message: `${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not a curve this OpenSSL knows (see \`openssl ecparam -list_curves\`; X25519 and X448 also work)` });
    }
  }
  if (issues.length > 0) return { issues };
  const tls12 = s.ciphers ?? INTERMEDIATE_TLS12_CIPHERS.join(':');
  const names13 = tls12.split(':').some((c) => c.startsWith('TLS_'));
  const ciphers = names13 ? tls12 : [...TLS13_SUITES, tls12].join(':');
  const ecdhCurve = s.ecdhCurves ?? DEFAULT_ECDH_CURVES;
  if (!trial({ ciphers, ecdhCurve })) return { issues: [{ key: 'ciphers', message: 'OpenSSL refuses this cipher list' }] };
  return {
    profile: { name: s.profile, minVersion: s.profile === 'modern' ? 'TLSv1.3' : s.minVersion, ciphers, ecdhCurve },
    issues,
  };
}
