// certgate test: policy unit tests for CI. A cases file names clients, requests and the
// decisions expected; each case is decided by the proxy's own code (policy-eval.ts), exactly
// as `certgate explain` decides it. The cases file is read with the config's schema machinery, so
// its errors read like config errors: FILE:LINE:COL key.path: message.

import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isMap } from 'yaml';
import { formatConfigIssue, sortIssues, type ConfigIssue } from '../config/issues.js';
import { list, object, optional, readRoot, refine, required, section, withDefault, type Infer } from '../config/schema.js';
import { filePath, fingerprint, method, oneOf, serial, spiffeId, str } from '../config/values.js';
import { bad, isNull, offsetOf, parseYamlFile } from '../config/yaml.js';
import { ErrorCodes, type ErrorCode } from '../errors.js';
import { TEST } from './commands.js';
import { parseCommand } from './flags.js';
import { evaluate, identityFromFields, InputError, loadPolicySetup, readCertificate, type CertificateInput, type Outcome } from './policy-eval.js';
import { UsageError } from './usage.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

const strings = list(str, { scalar: true, nonEmpty: true });
const EXPECTED = ['allow', ...(Object.keys(ErrorCodes) as ErrorCode[])] as const;

/** A certificate file, read when the cases file is read, so that a bad one is reported at its line. */
const certFile = refine(filePath, (path, fail): { path: string; input: CertificateInput } | undefined => {
  try {
    return { path, input: readCertificate(path) };
  } catch (err) {
    return fail((err as Error).message);
  }
}, 'path');

const caseType = object(
  {
    name: required(str, 'What the case is about; printed with its result.'),
    cert: optional(certFile, 'Client certificate PEM (leaf, then its chain), relative to the cases file.'),
    identity: optional(
      object(
        {
          subject: optional(str, 'Subject DN, e.g. "CN=alice,OU=payments,O=Acme".'),
          uri: optional(strings, 'URI SANs.'),
          dns: optional(strings, 'DNS SANs.'),
          email: optional(strings, 'Email SANs.'),
          spiffe: optional(spiffeId, 'SPIFFE ID (a URI SAN listed first).'),
          issuer: optional(str, 'Issuer DN.'),
          serial: optional(serial, 'Serial number.'),
          fingerprint: optional(fingerprint, 'SHA-256 fingerprint.'),
        },
        { expect: 'a map of names such as { subject: "CN=alice" }', emptyMessage: 'an empty identity says nothing; give a subject, uri, dns, email or spiffe' },
      ),
      'The client as names, built as the proxy reads them from a certificate.',
    ),
    request: section(
      object({
        method: withDefault(method, 'GET', 'Request method.'),
        path: withDefault(str, '/', 'Request path.'),
        host: optional(str, 'Request Host (default: none).'),
      }),
      'The request.',
    ),
    expect: required(oneOf(EXPECTED), '`allow` or the error code the client gets.'),
    route: optional(str, 'The route expected to decide.'),
  },
  {
    expect: 'a map with name, cert or identity, request and expect',
    check: (c, map, ctx) => {
      if (map.has('cert') === map.has('identity')) ctx.report(map.at, map.path, 'give either cert or identity');
    },
  },
);

const casesFile = object({ cases: required(list(caseType, { nonEmpty: true }), 'The cases, run in order.') });
type Case = Infer<typeof casesFile.fields>['cases'][number];

/** The cases of a file, or every problem in it with its position. */
export function readCases(file: string, text: string): { cases?: Case[]; issues: ConfigIssue[] } {
  const { ctx, contents } = parseYamlFile(text, file);
  if (contents === undefined) return { issues: ctx.issues };
  if (!isMap(contents)) {
    if (isNull(contents)) ctx.report(0, 'cases', 'required key is missing');
    else bad(ctx, { node: contents, at: offsetOf(contents, 0), path: '(root)' }, 'the cases file must be a map with a `cases` list');
    return { issues: ctx.issues };
  }
  const value = readRoot(ctx, contents, offsetOf(contents, 0), casesFile);
  return ctx.issues.length > 0 ? { issues: sortIssues(ctx.issues) } : { cases: value.cases, issues: [] };
}

interface Result {
  readonly c: Case;
  readonly outcome: Outcome;
  readonly failure: string | undefined;
}

function describe(o: Outcome): string {
  const d = o.decision === 'allow' ? 'allow' : `${o.decision} (${o.status})`;
  return `${d}${o.route !== undefined ? ` on route ${o.route}` : ''}${o.rule !== undefined ? `, decided by ${o.rule}` : ''}`;
}

function failureOf(c: Case, o: Outcome): string | undefined {
  if (o.decision !== c.expect) return `expected ${c.expect}${c.route !== undefined ? ` on route ${c.route}` : ''}, got ${describe(o)}`;
  if (c.route !== undefined && o.route !== c.route) return `expected route ${c.route}, got ${o.route === undefined ? 'no route' : `route ${o.route}`} (${describe(o)})`;
  return undefined;
}

export async function run(argv: string[], io: Io = stdio): Promise<number> {
  const { values, positionals } = parseCommand(TEST, argv);
  if (values.config === undefined) throw new UsageError('missing required flag --config');
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'give the cases file: certgate test --config FILE CASES.yaml' : `one cases file, got ${positionals.length}`);
  const { setup, issues } = loadPolicySetup(values.config);
  if (setup === undefined) {
    for (const i of issues) io.err(formatConfigIssue(i) + '\n');
    return 1;
  }
  const file = resolve(positionals[0]!);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    io.err(`${file}:1:1 (file): cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})\n`);
    return 1;
  }
  const read = readCases(file, text);
  if (read.cases === undefined) {
    for (const i of read.issues) io.err(formatConfigIssue(i) + '\n');
    return 1;
  }
  const results: Result[] = [];
  try {
    for (const c of read.cases) {
      const id = c.cert !== undefined ? c.cert.input.identity : await identityFromFields({ ...c.identity, spiffe: c.identity?.spiffe === undefined ? undefined : [c.identity.spiffe] });
      const outcome = evaluate(setup, id, { method: c.request.method, path: c.request.path, host: c.request.host }, c.cert?.input);
      const r = { c, outcome, failure: failureOf(c, outcome) };
      results.push(r);
      io.out(r.failure === undefined ? `ok    ${c.name}: ${describe(outcome)}\n` : `FAIL  ${c.name}: ${r.failure}\n`);
    }
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    io.err(`certgate test: ${err.message}\n`);
    return 1;
  }
  const failed = results.filter((r) => r.failure !== undefined).length;
  io.out(`\n${results.length} cases: ${results.length - failed} passed, ${failed} failed\n`);
  if (values.junit !== undefined) writeFileSync(values.junit, junitXml(file, results));
  return failed === 0 ? 0 : 1;
}

const xml = (s: string): string => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** JUnit XML as CI systems read it: one testsuite, one testcase per case, a failure element each. */
export function junitXml(file: string, results: readonly Result[]): string {
  const failed = results.filter((r) => r.failure !== undefined).length;
  const out = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites name="certgate test" tests="${results.length}" failures="${failed}">`, `  <testsuite name="${xml(file)}" tests="${results.length}" failures="${failed}" errors="0">`];
  for (const r of results) {
    const head = `    <testcase classname="certgate.policy" name="${xml(r.c.name)}"`;
    if (r.failure === undefined) out.push(`${head}/>`);
    else out.push(`${head}>`, `      <failure message="${xml(r.failure)}" type="${xml(r.outcome.decision)}">${xml(r.failure)}</failure>`, '    </testcase>');
  }
  out.push('  </testsuite>', '</testsuites>', '');
  return out.join('\n');
}
