// The Runtime: everything loaded from config, built completely beside the running one and
// swapped as one reference. A request reads the reference once, at its start.

import { buildAdminAccess, type AdminAccess } from './admin/access.js';
import type { Config } from './config/types.js';
import type { Identity } from './identity/types.js';
import { compilePolicy, type CompiledPolicy } from './policy/compile.js';
import { loadApiKeys, type ApiKeyTable } from './proxy/api-keys.js';
import { IdentityHeaderCache } from './proxy/headers.js';
import { UpstreamGroup, type PoolRegistry } from './proxy/upstream.js';
import { lintOwnCertificates } from './lifecycle/lint.js';
import { CompiledCertPolicy } from './tls/client-cert-policy.js';
import { loadTlsMaterial, MaterialError, type TlsMaterial } from './tls/material.js';
import { loadCrlFiles } from './revocation/checker.js';
import type { LoadedCrl } from './revocation/crl.js';

export interface Runtime {
  readonly generation: number;
  readonly config: Config;
  readonly policy: CompiledPolicy;
  readonly tls: TlsMaterial;
  /** Upstream group per route index. */
  readonly upstreams: readonly UpstreamGroup[];
  readonly identityHeaders: IdentityHeaderCache;
  /** clientCertPolicy, compiled; caches its verdict per client certificate. */
  readonly certPolicy: CompiledCertPolicy;
  /** Lint findings on certgate's own certificates when clientCertPolicy.ownCerts is warn; an incomplete chain. */
  readonly ownCertWarnings: readonly string[];
  /** Revocation sources read at build time: CRL files, verified against this trust bundle. */
  readonly revocation: { readonly crlFiles: readonly LoadedCrl[] };
  /** Certificates whose resumed sessions were checked against this runtime's trust bundle. */
  readonly trustedOnResumption: WeakMap<Identity, true>;
  /** apiKeys.file, read with this config (undefined without apiKeys). */
  readonly apiKeys: ApiKeyTable | undefined;
  /** The admin listener's TLS material, allow list and roles (admin/access.ts). */
  readonly admin: AdminAccess;
}

let generation = 0;

/** Throws (MaterialError) without side effects when any part cannot be built. */
export function buildRuntime(config: Config, pools: PoolRegistry, now = Date.now()): Runtime {
  const tls = loadTlsMaterial(config, now);
  const own = lintOwnCertificates(tls, config);
  if (own.length > 0 && config.clientCertPolicy.ownCerts === 'refuse') throw new MaterialError(own);
  // A CRL file that is unreadable or not signed by a trusted CA fails the build (start or reload).
  const crlFiles = loadCrlFiles(config, tls.cas);
  const policy = compilePolicy(config);
  const admin = buildAdminAccess(config, now);
  const apiKeys = config.apiKeys !== undefined ? loadApiKeys(config.apiKeys.file) : undefined;
  const upstreams = config.routes.map((r) => new UpstreamGroup(r.upstream, pools));
  return Object.freeze({
    generation: ++generation,
    config,
    policy,
    tls,
    upstreams: Object.freeze(upstreams),
    identityHeaders: new IdentityHeaderCache(config.headers, { apiKeys: config.apiKeys, by: ownUriSan(tls) }),
    certPolicy: new CompiledCertPolicy(config.clientCertPolicy),
    ownCertWarnings: Object.freeze([...own, ...tls.warnings].map((i) => `${i.path}: ${i.message}`)),
    revocation: Object.freeze({ crlFiles: Object.freeze(crlFiles) }),
    trustedOnResumption: new WeakMap(),
    apiKeys,
    admin,
  });
}

/** certgate's own URI SANs (XFCC `By`, one pair each as Envoy writes them), from its server certificate. */
function ownUriSan(tls: TlsMaterial): string[] {
  const san = tls.serverChain[0]?.subjectAltName ?? '';
  return san.split(', ').filter((n) => n.startsWith('URI:')).map((n) => n.slice(4));
}

/** Origins the runtime uses, so that pools of removed targets can be closed after a swap. */
export function originsOf(rt: Runtime): Set<string> {
  const s = new Set<string>();
  for (const g of rt.upstreams) for (const t of g.targets) s.add(t.origin);
  return s;
}
