// The policy engine behind the proxy, `certgate explain` and `certgate test`: entries as lists
// of checks, the rule that decided, shadow verdicts, and the trace that explains a decision.
// Pure code: no sockets, no certificates.
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { RouteConfig } from '../../src/config/types.js';
import type { Identity } from '../../src/identity/types.js';
import { registry } from '../../src/metrics.js';
import { compilePolicy, countSlot, shadowCountSlot } from '../../src/policy/compile.js';
import { decide, memoRow, type RequestFacts } from '../../src/policy/decide.js';
import { traceDecision } from '../../src/policy/trace.js';
import type { AdmissionFacts } from '../../src/proxy/admission.js';
import { PolicyReport } from '../../src/proxy/policy-report.js';
import type { Runtime } from '../../src/runtime.js';
import { identityFixture } from '../helpers/identity.js';

const FILE = '/etc/certgate/x.yaml';
const BASE = `listen: {port: 8443}
tls: {cert: s.pem, key: k.pem, clientCAs: ca.pem}
routes:
`;

function issues(routes: string): string[] {
  try {
    parseConfig(BASE + routes, FILE);
    return [];
  } catch (err) {
    return (err as Error).message.split('\n');
  }
}

function route(name: string, over: Partial<RouteConfig> = {}): RouteConfig {
  return { name, match: { pathPrefix: '/' }, upstream: ['http://127.0.0.1:1'], allow: [], deny: [], maxBodySize: 1024, timeouts: { upstream: 1000 }, websocket: true, ...over };
}

const req = (path: string, over: Partial<RequestFacts> = {}): RequestFacts => ({ method: 'GET', host: 'api.example.com', path, sni: undefined, ...over });
const alice = identityFixture({ subject: 'CN=alice,OU=payments,O=Acme', cn: ['alice'], ou: ['payments'], o: ['Acme'], uri: ['spiffe://acme.org/ns/prod/sa/alice'], spiffe: 'spiffe://acme.org/ns/prod/sa/alice' });
const bob = identityFixture({ subject: 'CN=bob,OU=support,O=Acme', cn: ['bob'], ou: ['support'], o: ['Acme'], fingerprint: 'b'.repeat(64) });
const mallory = identityFixture({ subject: 'CN=mallory,OU=payments,O=Acme', cn: ['mallory'], ou: ['payments'], o: ['Acme'], fingerprint: 'c'.repeat(64) });

describe('config: entry names and shadow lists', () => {
  it('accepts a name on allow, deny, shadow and admin.tls.allow entries, and keeps it out of the checks', () => {
    const c = parseConfig(
      BASE +
        `  - name: r
    upstream: http://u:1
    allow: [{name: payments, ou: payments}]
    deny: [{name: no-mallory, cn: mallory}]
    shadow:
      allow: [{name: only-prod, spiffe: "spiffe://acme.org/ns/prod/**"}]
`,
      FILE,
    );
    const p = compilePolicy(c);
    const r = p.routes[0]!;
    expect(r.allow[0]).toMatchObject({ name: 'payments', label: 'payments', list: 'allow' });
    expect(r.allow[0]!.checks.map((k) => k.field)).toEqual(['ou']);
    expect(r.shadow!.allow[0]).toMatchObject({ label: 'only-prod' });
    expect(r.shadow!.deny).toEqual([]);
  });

  it('labels an entry without a name by its index', () => {
    const p = compilePolicy({ routes: [route('r', { allow: [{ cn: ['x'] }, { cn: ['alice'] }] })] });
    expect(p.routes[0]!.allow.map((e) => e.label)).toEqual(['0', '1']);
  });

  it('refuses an entry that has only a name (it would match every certificate)', () => {
    expect(issues('  - {name: r, upstream: "http://u:1", allow: [{name: everyone}]}\n')).toEqual([
      `${FILE}:4:47 routes[0].allow[0]: a matcher with only a name would match every certificate; add a certificate field such as { cn: alice }`,
    ]);
  });

  it('checks shadow entries like real ones, with their position', () => {
    expect(issues('  - name: r\n    upstream: http://u:1\n    shadow:\n      deny: [{cnn: x}]\n')).toEqual([
      `${FILE}:7:15 routes[0].shadow.deny[0].cnn: unknown key (did you mean "cn"?)`,
    ]);
  });
});

describe('decide: the entry that decided', () => {
  const policy = compilePolicy({
    routes: [
      route('orders', { match: { pathPrefix: '/orders' }, deny: [{ name: 'no-mallory', cn: ['mallory'] }], allow: [{ cn: ['nobody'] }, { ou: ['payments'] }] }),
      route('hosted', { match: { pathPrefix: '/hosted', host: ['api.example.com'] }, allow: [{ subject: ['*'] }] }),
    ],
  });

  it.each<[string, Identity, string, object]>([
    ['allowed by the second allow entry', alice, '/orders', { allow: true, rule: { list: 'allow', index: 1 } }],
    ['refused by a named deny entry', mallory, '/orders', { allow: false, code: 'identity_not_allowed', rule: { list: 'deny', label: 'no-mallory' } }],
    ['refused because no allow entry matched', bob, '/orders', { allow: false, code: 'identity_not_allowed', rule: undefined }],
    ['no route', alice, '/nowhere', { allow: false, code: 'route_not_found', route: undefined, rule: undefined }],
  ])('%s', (_name, id, path, expected) => {
    expect(decide(id, req(path), policy)).toMatchObject(expected);
  });

  it('answers the same preallocated decision every time (nothing allocated per request)', () => {
    const first = decide(alice, req('/orders/1'), policy);
    expect(decide(alice, req('/orders/2'), policy)).toBe(first);
    expect(first).toBe(policy.routes[0]!.allowedBy[1]);
  });
});

describe('traceDecision: the same decision, with its reasons', () => {
  const policy = compilePolicy({
    routes: [
      route('admin', { match: { pathPrefix: '/admin', methods: ['POST'], host: ['admin.example.com'] }, allow: [{ ou: ['ops'] }] }),
      route('orders', {
        match: { pathPrefix: '/orders' },
        deny: [{ name: 'no-mallory', cn: ['mallory'] }],
        allow: [{ cn: ['alice'], ou: ['support'] }, { name: 'payments', ou: ['payments'], spiffe: ['spiffe://acme.org/ns/prod/**'] }],
        shadow: { allow: [{ cn: ['bob'] }], deny: [] },
      }),
      route('rest', { allow: [{ subject: ['*'] }] }),
    ],
  });

  it('lists every route in order: why each earlier one did not match, the chosen one, the rest not tried', () => {
    const t = traceDecision(alice, req('/orders/7'), policy);
    expect(t.routes).toEqual([
      { index: 0, name: 'admin', state: 'no match', why: ['method GET is not one of [POST]', 'host api.example.com is not one of [admin.example.com]', 'path /orders/7 is not under /admin'] },
      { index: 1, name: 'orders', state: 'matched', why: [] },
      { index: 2, name: 'rest', state: 'not tried', why: [] },
    ]);
  });

  it('shows each entry with the field that matched or failed, and the entry that decided', () => {
    const t = traceDecision(alice, req('/orders'), policy);
    expect(t.decision).toBe(decide(alice, req('/orders'), policy));
    expect(t.lists!.deny).toMatchObject([{ label: 'no-mallory', matched: false, decided: false, checks: [{ field: 'cn', patterns: ['mallory'], values: ['alice'], matching: [], ok: false }] }]);
    expect(t.lists!.allow).toMatchObject([
      { label: '0', matched: false, decided: false, checks: [{ field: 'cn', ok: true, matching: ['alice'] }, { field: 'ou', ok: false, values: ['payments'] }] },
      { label: 'payments', matched: true, decided: true, checks: [{ field: 'ou', ok: true }, { field: 'spiffe', ok: true, matching: ['spiffe://acme.org/ns/prod/sa/alice'] }] },
    ]);
    expect(t.lists!.allowed).toBe(true);
  });

  it('traces the shadow lists of the chosen route beside the real ones', () => {
    const t = traceDecision(alice, req('/orders'), policy);
    expect(t.shadow).toMatchObject({ allowed: false, rule: undefined, allow: [{ matched: false }] });
    expect(traceDecision(bob, req('/orders'), policy)).toMatchObject({ decision: { allow: false }, shadow: { allowed: true } });
  });

  it('a refusal by a deny entry names it; a request no route takes has no entry trace', () => {
    expect(traceDecision(mallory, req('/orders'), policy)).toMatchObject({ decision: { code: 'identity_not_allowed' }, lists: { rule: { label: 'no-mallory' } } });
    const none = compilePolicy({ routes: [route('x', { match: { pathPrefix: '/x' } })] });
    const t = traceDecision(alice, req('/y'), none);
    expect(t).toMatchObject({ decision: { code: 'route_not_found' }, lists: undefined });
    expect(t.routes[0]!.why).toEqual(['path /y is not under /x']);
  });

  it('Host differing from SNI on a host-bound route: misdirected, no entries consulted', () => {
    const t = traceDecision(alice, req('/admin', { method: 'POST', host: 'admin.example.com', sni: 'other.example.com' }), policy);
    expect(t).toMatchObject({ decision: { code: 'misdirected_request', route: { name: 'admin' } }, lists: undefined });
  });
});

describe('PolicyReport: rule hits and shadow verdicts beside the real decision', () => {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
  const policy = compilePolicy({
    routes: [
      route('pay', {
        match: { pathPrefix: '/pay' },
        deny: [{ name: 'blocked', cn: ['mallory'] }],
        allow: [{ name: 'payments', ou: ['payments'] }, { ou: ['support'] }],
        shadow: { allow: [{ name: 'prod-only', spiffe: ['spiffe://acme.org/ns/prod/**'] }], deny: [] },
      }),
      route('plain', { match: { pathPrefix: '/plain' }, allow: [{ subject: ['*'] }] }),
    ],
  });
  const rt = { policy } as unknown as Runtime;
  const report = new PolicyReport(log);
  const facts = (path: string): AdmissionFacts => ({ ...req(path), badHost: false, badEncoding: undefined, requestId: 'r1' });
  const run = (id: Identity, path: string) => report.decided(facts(path), id, decide(id, req(path), policy), rt);
  const pay = policy.routes[0]!;

  it('counts the deciding entry per request; shadow results per request; logs a difference once per certificate', async () => {
    for (let i = 0; i < 3; i++) {
      run(alice, '/pay'); // allowed by payments; shadow allows too (prod SPIFFE ID)
      run(bob, '/pay'); // allowed by allow[1]; shadow refuses: would_deny
      run(mallory, '/pay'); // refused by blocked; shadow refuses too
    }
    run(alice, '/plain');
    expect(pay.counts[countSlot(pay, pay.allow[0]!)]).toBe(3);
    expect(pay.counts[countSlot(pay, pay.allow[1]!)]).toBe(3);
    expect(pay.counts[countSlot(pay, pay.deny[0]!)]).toBe(3);
    expect([0, 1, 2].map((k) => pay.counts[shadowCountSlot(pay, k)])).toEqual([6, 3, 0]);
    expect(lines.filter((l) => l.event === 'policy_shadow')).toEqual([
      expect.objectContaining({ reqId: 'r1', subject: 'CN=bob,OU=support,O=Acme', route: 'pay', decision: 'allow', rule: 'allow[1]', shadow: 'identity_not_allowed', shadowRule: null, result: 'would_deny' }),
    ]);
    // The shadow verdict is memoised beside the real one, in the same row.
    expect(memoRow(policy, bob)[pay.shadowSlot]! & 0x7fffffff).toBe(1);

    const text = await registry.metrics();
    expect(text).toContain('certgate_policy_rule_hits_total{route="pay",list="allow",rule="payments"} 3');
    expect(text).toContain('certgate_policy_rule_hits_total{route="pay",list="allow",rule="1"} 3');
    expect(text).toContain('certgate_policy_rule_hits_total{route="pay",list="deny",rule="blocked"} 3');
    expect(text).toContain('certgate_policy_rule_hits_total{route="plain",list="allow",rule="0"} 1');
    expect(text).toContain('certgate_policy_shadow_total{route="pay",result="agree"} 6');
    expect(text).toContain('certgate_policy_shadow_total{route="pay",result="would_deny"} 3');
    expect(text).toContain('certgate_policy_shadow_total{route="pay",result="would_allow"} 0');
    // Handed over at the scrape: the plain counters start again from zero.
    expect(pay.counts.every((n) => n === 0)).toBe(true);
    run(bob, '/pay');
    expect(await registry.metrics()).toContain('certgate_policy_rule_hits_total{route="pay",list="allow",rule="1"} 4');
  });
});
