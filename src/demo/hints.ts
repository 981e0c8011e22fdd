// The curl commands `certgate demo` prints, derived from the config in use: one per route for a
// dev client the route actually admits (trusted by tls.clientCAs, within its validity, allowed by
// the same decide() the proxy runs), one refused example, and one without a certificate. A config
// that trusts none of the dev clients gets a template instead of commands that would fail.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { DEV_CLIENTS, devCertPaths, type DevClientName } from '../ca/dev-certs.js';
import type { Config } from '../config/types.js';
import { ErrorCodes } from '../errors.js';
import { identityFromDer } from '../identity/identity.js';
import type { Identity } from '../identity/types.js';
import { compilePolicy } from '../policy/compile.js';
import { decide, matchRoute, type RequestFacts } from '../policy/decide.js';
import { trustPath, type TrustedCa } from '../tls/material.js';
import { splitPem } from '../util/pem.js';

/** One request a hint shows, as data, so that tests can send exactly what the text says. */
export interface DemoRequest {
  /** Dev client name, or undefined for no certificate. */
  client: DevClientName | undefined;
  method: string;
  path: string;
  /** Host header for host-bound routes (the request then goes to 127.0.0.1, without SNI). */
  host: string | undefined;
  /** The status certgate answers with. */
  expect: number;
}

export interface DemoHint {
  text: string;
  request?: DemoRequest;
  curl?: string;
}

export interface HintInput {
  config: Config;
  /** The CAs certgate trusts for client certificates (tls.clientCAs, loaded). */
  clientCas: readonly TrustedCa[];
  certsDir: string;
  port: number;
  cwd?: string;
  now?: number;
}

interface DevClient {
  name: DevClientName;
  identity: Identity;
  cert: string;
  key: string;
}

/** Dev clients whose certificate certgate would accept at the handshake. */
function trustedDevClients(dir: string, cas: readonly TrustedCa[], now: number): DevClient[] {
  const paths = devCertPaths(dir).clients;
  const out: DevClient[] = [];
  for (const name of Object.keys(DEV_CLIENTS) as DevClientName[]) {
    let chain: X509Certificate[];
    try {
      chain = splitPem(readFileSync(paths[name].cert, 'utf8'), 'CERTIFICATE').map((p) => new X509Certificate(p));
    } catch {
      continue;
    }
    const [leaf, ...presented] = chain;
    if (leaf === undefined || now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) continue;
    // As OpenSSL: the intermediates the client presents may complete the path to a trusted CA.
    const trusted =
      trustPath(leaf, cas).length > 0 ||
      presented.some((p) => leaf.checkIssued(p) && leaf.verify(p.publicKey) && (trustPath(p, cas).length > 0 || cas.some((c) => c.cert.fingerprint256 === p.fingerprint256)));
    if (trusted) out.push({ name, identity: identityFromDer(new Uint8Array(leaf.raw)), ...paths[name] });
  }
  return out;
}

/** The server certificate verifies against the dev root: then `--cacert root-ca.pem` is right. */
function servedByDevCa(config: Config, rootFile: string): boolean {
  try {
    const root = new X509Certificate(readFileSync(rootFile));
    const chain = splitPem(readFileSync(config.tls.cert, 'utf8'), 'CERTIFICATE').map((p) => new X509Certificate(p));
    const cas = [root, ...chain.slice(1)].map((cert) => ({ file: rootFile, pem: '', cert }));
    return chain[0] !== undefined && trustPath(chain[0], cas).some((c) => c.cert === root);
  } catch {
    return false;
  }
}

/** A concrete host for a route's host list: the first exact name, else a glob made concrete. */
function hostFor(hosts: readonly string[] | undefined): string | undefined {
  if (hosts === undefined || hosts.length === 0) return undefined;
  return hosts.find((h) => !h.includes('*')) ?? hosts[0]!.replace(/\*+/g, 'demo');
}

export function demoHints(input: HintInput): DemoHint[] {
  const { config, port } = input;
  const rel = (p: string) => relative(input.cwd ?? process.cwd(), p) || '.';
  const dev = devCertPaths(input.certsDir);
  const clients = trustedDevClients(input.certsDir, input.clientCas, input.now ?? Date.now());
  const policy = compilePolicy(config);
  const cacert = servedByDevCa(config, dev.rootCa) ? rel(dev.rootCa) : 'SERVER-CA.pem';
  const loopback = ['127.0.0.1', '::1', '0.0.0.0', '::', 'localhost'].includes(config.listen.host);
  const name = loopback ? 'localhost' : config.listen.host;

  const curl = (r: DemoRequest, client: DevClient | undefined) =>
    [
      'curl',
      `--cacert ${cacert}`,
      ...(client !== undefined ? [`--cert ${rel(client.cert)} --key ${rel(client.key)}`] : []),
      ...(r.method !== 'GET' ? [`-X ${r.method}`] : []),
      ...(r.host !== undefined ? [`-H 'Host: ${r.host}'`] : []),
      `https://${r.host !== undefined ? '127.0.0.1' : name}:${port}${r.path}`,
    ].join(' ');

  // One request per route that reaches that route (an earlier route may shadow it).
  const probes: { route: string; facts: RequestFacts; label: string }[] = [];
  for (const r of config.routes) {
    const path = r.match.pathPrefix ?? '/';
    const method = r.match.methods === undefined || r.match.methods.length === 0 || r.match.methods.includes('GET') ? 'GET' : r.match.methods[0]!;
    const host = hostFor(r.match.host);
    const facts: RequestFacts = { method, path, host, sni: undefined };
    if (matchRoute(policy, facts)?.name !== r.name) continue;
    probes.push({ route: r.name, facts, label: `${host ?? ''}${path}` });
  }

  const hints: DemoHint[] = [];
  const request = (p: (typeof probes)[number], client: DevClient | undefined, expect: number): DemoRequest => ({
    client: client?.name,
    method: p.facts.method,
    path: p.facts.path,
    host: p.facts.host,
    expect,
  });
  if (clients.length === 0) {
    hints.push({
      text: `None of the dev client certificates in ${rel(input.certsDir)} is trusted by tls.clientCAs, so there is no ready-made command; call it with a certificate your CA issued:`,
      curl: `curl --cacert ${cacert} --cert CERT.pem --key KEY.pem https://${name}:${port}${probes[0]?.facts.path ?? '/'}`,
    });
  }
  let refused: { client: DevClient; probe: (typeof probes)[number]; everywhere: boolean } | undefined;
  for (const p of probes) {
    const allowed = clients.filter((c) => decide(c.identity, p.facts, policy).allow);
    const first = allowed[0];
    if (first !== undefined) {
      const req = request(p, first, 200);
      hints.push({ text: `Route "${p.route}" (${p.label}): allowed for ${allowed.map((c) => c.name).join(', ')}. As ${first.name}:`, request: req, curl: curl(req, first) });
    } else if (clients.length > 0) {
      hints.push({ text: `Route "${p.route}" (${p.label}): none of the dev clients is allowed.` });
    }
  }
  for (const c of clients) {
    const denied = probes.filter((p) => !decide(c.identity, p.facts, policy).allow);
    if (denied.length === 0) continue;
    const everywhere = denied.length === probes.length;
    if (refused === undefined || (everywhere && !refused.everywhere)) refused = { client: c, probe: denied[0]!, everywhere };
  }
  if (refused !== undefined) {
    const status = ErrorCodes.identity_not_allowed.status;
    const req = request(refused.probe, refused.client, status);
    const where = refused.everywhere ? 'on every route' : `on route "${refused.probe.route}"`;
    hints.push({ text: `As ${refused.client.name} (trusted, but refused ${where} with ${status} identity_not_allowed):`, request: req, curl: curl(req, refused.client) });
  }
  const p = probes[0];
  if (p !== undefined && config.tls.refuse === 'request') {
    const status = ErrorCodes.certificate_required.status;
    const req = request(p, undefined, status);
    hints.push({ text: `With no certificate (${status} certificate_required):`, request: req, curl: curl(req, undefined) });
  }
  return hints;
}

export function renderHints(hints: readonly DemoHint[]): string {
  return hints.map((h) => `${h.text}\n${h.curl !== undefined ? `  ${h.curl}\n` : ''}`).join('\n');
}
