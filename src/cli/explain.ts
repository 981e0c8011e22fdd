// certgate explain: what one client would reach with one request, and why, decided by the
// proxy's own code (policy-eval.ts). Exit 0 allowed, 3 refused, 1 config or input error.

import { formatConfigIssue } from '../config/issues.js';
import type { Identity } from '../identity/types.js';
import type { CheckTrace, EntryTrace, ListsTrace } from '../policy/trace.js';
import { EXPLAIN } from './commands.js';
import { parseCommand } from './flags.js';
import { evaluate, identityFromFields, InputError, loadPolicySetup, readCertificate, ruleName, type CertificateInput, type Outcome, type RequestInput } from './policy-eval.js';
import { UsageError } from './usage.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

const IDENTITY_FLAGS = ['subject', 'uri', 'dns', 'email', 'spiffe', 'issuer', 'serial', 'fingerprint'] as const;

export async function run(argv: string[], io: Io = stdio): Promise<number> {
  const { values: v } = parseCommand(EXPLAIN, argv);
  if (v.config === undefined) throw new UsageError('missing required flag --config');
  const byFlags = IDENTITY_FLAGS.filter((f) => v[f] !== undefined);
  if (v.cert !== undefined && byFlags.length > 0) throw new UsageError(`give either --cert or identity flags, not both (--cert with --${byFlags[0]})`);
  if (v.cert === undefined && byFlags.length === 0) throw new UsageError('give a client: --cert PEM, or identity flags such as --subject DN or --spiffe ID');
  const { setup, issues } = loadPolicySetup(v.config);
  if (setup === undefined) {
    for (const i of issues) io.err(formatConfigIssue(i) + '\n');
    return 1;
  }
  try {
    let cert: CertificateInput | undefined;
    let id: Identity;
    if (v.cert !== undefined) id = (cert = readCertificate(v.cert)).identity;
    else id = await identityFromFields(v);
    const req: RequestInput = { method: v.method, path: v.path, host: v.host };
    const o = evaluate(setup, id, req, cert);
    io.out(v.json === true ? JSON.stringify(explainJson(o, id, req), null, 2) + '\n' : explainText(o, id, req));
    return o.decision === 'allow' ? 0 : 3;
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    io.err(`certgate explain: ${err.message}\n`);
    return 1;
  }
}

function identityJson(id: Identity) {
  return { subject: id.subject, cn: id.cn, o: id.o, ou: id.ou, dns: id.dns, uri: id.uri, email: id.email, spiffe: id.spiffe ?? null, issuer: id.issuer, serial: id.serial, fingerprint: id.fingerprint };
}

function entryJson(e: EntryTrace) {
  return { list: e.list, index: e.index, name: e.name ?? null, matched: e.matched, decided: e.decided, checks: e.checks };
}

function listsJson(l: ListsTrace | undefined) {
  if (l === undefined) return null;
  return { decision: l.allowed ? 'allow' : 'identity_not_allowed', rule: ruleName(l.rule) ?? null, deny: l.deny.map(entryJson), allow: l.allow.map(entryJson) };
}

export function explainJson(o: Outcome, id: Identity, req: RequestInput) {
  return {
    decision: o.decision,
    status: o.status,
    route: o.route ?? null,
    rule: o.rule ?? null,
    request: { method: req.method, path: req.path, host: req.host ?? null },
    identity: identityJson(id),
    certificate: o.cert?.checks ?? null,
    routes: o.trace?.routes ?? [],
    policy: listsJson(o.trace?.lists),
    shadow: listsJson(o.trace?.shadow),
    headers: o.headers ?? null,
  };
}

const mark = (ok: boolean): string => (ok ? 'yes' : 'no ');

function checkText(c: CheckTrace): string {
  const values = c.values.length === 0 ? 'none' : c.values.join(', ');
  return c.ok ? `${c.field} ${c.matching.join(', ')} matches ${c.patterns.join(' | ')}` : `${c.field} (${values}) does not match ${c.patterns.join(' | ')}`;
}

function entryLines(e: EntryTrace): string[] {
  const title = `${e.list}[${e.index}]${e.name !== undefined ? ` ${e.name}` : ''}`;
  return [`    ${mark(e.matched)} ${title}${e.decided ? '   <- decides' : ''}`, ...e.checks.map((c) => `          ${c.ok ? '+' : '-'} ${checkText(c)}`)];
}

function listsLines(l: ListsTrace): string[] {
  const lines: string[] = [];
  if (l.deny.length === 0) lines.push('    (no deny entries)');
  for (const e of l.deny) lines.push(...entryLines(e));
  if (l.allow.length === 0) lines.push('    (no allow entries: nobody is allowed)');
  for (const e of l.allow) lines.push(...entryLines(e));
  if (l.rule === undefined && !l.allowed) lines.push('    no allow entry matched: refused (default deny)');
  return lines;
}

export function explainText(o: Outcome, id: Identity, req: RequestInput): string {
  const lines = [`request   ${req.method.toUpperCase()} ${req.path}${req.host !== undefined ? ` (Host ${req.host})` : ' (no Host)'}`, `identity  ${id.subject === '' ? '(empty subject)' : id.subject}`];
  const sans = [...id.dns.map((d) => `DNS:${d}`), ...id.uri.map((u) => `URI:${u}`), ...id.email.map((e) => `email:${e}`)];
  if (sans.length > 0) lines.push(`          ${sans.join(', ')}`);
  if (id.spiffe !== undefined) lines.push(`          SPIFFE ID ${id.spiffe}`);
  if (o.cert === undefined) lines.push('          (from flags: serial, fingerprint and dates are those of a stand-in certificate unless given)');
  if (o.cert !== undefined) {
    lines.push('', 'certificate');
    for (const c of o.cert.checks) lines.push(`  ${mark(c.ok)} ${c.check.padEnd(16)} ${c.detail}`);
    if (o.cert.refusal !== undefined) lines.push('  the proxy refuses this certificate before any route; the routes below are for reference');
  }
  const t = o.trace;
  if (t === undefined) lines.push('', `path ${req.path} is not in canonical form: refused before any route`);
  else {
    lines.push('', 'routes');
    for (const r of t.routes) lines.push(`  ${String(r.index + 1).padStart(2)}. ${r.name.padEnd(20)} ${r.state}${r.why.length > 0 ? `: ${r.why.join('; ')}` : ''}`);
    if (t.decision.route === undefined) lines.push('  no route matches: route_not_found');
    else if (t.lists === undefined) lines.push(`  Host and TLS server name differ on host-bound route ${t.decision.route.name}: misdirected_request`);
    else {
      lines.push('', `route ${t.decision.route.name}`, ...listsLines(t.lists));
      if (t.shadow !== undefined) {
        const same = t.shadow.allowed === t.lists.allowed;
        lines.push('', `shadow of ${t.decision.route.name} (does not change the decision): ${t.shadow.allowed ? 'allow' : 'identity_not_allowed'}${same ? ', the same' : ', DIFFERENT'}`, ...listsLines(t.shadow));
      }
    }
  }
  lines.push('', o.decision === 'allow' ? `decision  allowed${o.rule !== undefined ? ` by ${o.rule}` : ''} on route ${o.route}` : `decision  refused: ${o.decision} (HTTP ${o.status})${o.rule !== undefined ? ` by ${o.rule}` : ''}`);
  if (o.headers !== undefined) {
    lines.push('', 'headers the backend receives');
    for (const [n, val] of o.headers) lines.push(`  ${n}: ${val}`);
  }
  return lines.join('\n') + '\n';
}
