// Request admission is a pure function: tested here without sockets, certificates or a server.
import { describe, expect, it } from 'vitest';
import type { RouteConfig } from '../../src/config/types.js';
import { Refusal } from '../../src/errors.js';
import { admitRequest, EST, type AdmissionFacts } from '../../src/proxy/admission.js';
import { compilePolicy } from '../../src/policy/compile.js';
import type { RevocationStatus } from '../../src/revocation/types.js';
import { GOOD } from '../../src/revocation/types.js';
import type { Runtime } from '../../src/runtime.js';
import { identityFixture } from '../helpers/identity.js';

function route(name: string, over: Partial<RouteConfig> = {}): RouteConfig {
  return {
    name,
    match: { pathPrefix: '/' },
    upstream: ['http://127.0.0.1:1'],
    allow: [{ cn: ['alice'] }],
    deny: [],
    maxBodySize: 1024,
    timeouts: { upstream: 1000 },
    websocket: false,
    ...over,
  };
}

const rt = {
  policy: compilePolicy({
    routes: [
      route('soft', { match: { pathPrefix: '/soft' }, revocation: 'soft' }),
      route('hosted', { match: { pathPrefix: '/hosted', host: ['api.example.com'] } }),
      route('api', { match: { pathPrefix: '/api' } }),
    ],
  }),
} as unknown as Runtime;

const alice = identityFixture({ subject: 'CN=alice', cn: ['alice'] });
const bob = identityFixture({ subject: 'CN=bob', cn: ['bob'] });
const facts = (over: Partial<AdmissionFacts> = {}): AdmissionFacts => ({ method: 'GET', path: '/api/x', host: 'api.example.com', sni: undefined, badHost: false, badEncoding: undefined, ...over });
const revoked: RevocationStatus = { state: 'revoked', source: 'local', reason: 'keyCompromise', detail: 'listed' };
const unknownHard: RevocationStatus = { state: 'unknown', source: 'crl-file', detail: 'stale', defaultMode: 'hard' };
const unknownSoft: RevocationStatus = { state: 'unknown', source: 'ocsp', detail: 'down', defaultMode: 'soft' };

function refusal(a: unknown): Refusal {
  expect(a).toBeInstanceOf(Refusal);
  return a as Refusal;
}

describe('request admission', () => {
  it('allows a request the policy allows and answers with its route', () => {
    const a = admitRequest(rt, facts(), alice, GOOD, false);
    expect(a).not.toBeInstanceOf(Refusal);
    expect((a as { name: string }).name).toBe('api');
  });

  it.each([
    ['a revoked certificate', facts(), alice, revoked, 'certificate_revoked', true],
    ['a path that is not canonical', facts({ path: undefined }), alice, GOOD, 'bad_path', false],
    ['a duplicate or malformed Host', facts({ badHost: true }), alice, GOOD, 'bad_request', true],
    ['a Transfer-Encoding other than chunked', facts({ badEncoding: 'xchunked' }), alice, GOOD, 'bad_request', true],
    ['a path no route matches', facts({ path: '/nowhere' }), alice, GOOD, 'route_not_found', false],
    ['an identity the route does not allow', facts(), bob, GOOD, 'identity_not_allowed', false],
    ['a Host that differs from the TLS server name on a host route', facts({ path: '/hosted', sni: 'other.example.com' }), alice, GOOD, 'misdirected_request', false],
    ['an unknown revocation status in hard mode', facts(), alice, unknownHard, 'revocation_unknown', false],
  ] as const)('refuses %s', (_name, f, id, rev, code, close) => {
    const r = refusal(admitRequest(rt, f, id, rev, false));
    expect(r.code).toBe(code);
    expect(r.close).toBe(close);
  });

  it('names the route a policy refusal happened on, for the access log', () => {
    expect(refusal(admitRequest(rt, facts(), bob, GOOD, false)).route?.name).toBe('api');
    expect(refusal(admitRequest(rt, facts(), alice, unknownHard, false)).route?.name).toBe('api');
  });

  it('allows an unknown revocation status on a route in soft mode', () => {
    expect((admitRequest(rt, facts({ path: '/soft/a' }), alice, unknownHard, false) as { name: string }).name).toBe('soft');
    expect((admitRequest(rt, facts(), alice, unknownSoft, false) as { name: string }).name).toBe('api');
  });

  it('checks revocation before anything else, then the path, before EST', () => {
    expect(refusal(admitRequest(rt, facts({ path: undefined, badHost: true }), alice, revoked, true)).code).toBe('certificate_revoked');
    expect(refusal(admitRequest(rt, facts({ path: undefined }), alice, GOOD, true)).code).toBe('bad_path');
  });

  it('hands EST paths to EST only when the listener answers EST, refusing them in hard mode with an unknown status', () => {
    const est = facts({ path: '/.well-known/est/simplereenroll', badHost: true });
    expect(admitRequest(rt, est, alice, GOOD, true)).toBe(EST);
    expect(refusal(admitRequest(rt, est, alice, unknownHard, true)).code).toBe('revocation_unknown');
    expect(refusal(admitRequest(rt, est, alice, GOOD, false)).code).toBe('bad_request');
  });

  it('answers the same refusal object for the same refusal: refusing allocates nothing', () => {
    expect(admitRequest(rt, facts(), bob, GOOD, false)).toBe(admitRequest(rt, facts(), bob, GOOD, false));
    expect(admitRequest(rt, facts({ path: '/nowhere' }), alice, GOOD, false)).toBe(admitRequest(rt, facts({ path: '/nope' }), alice, GOOD, false));
    expect(admitRequest(rt, facts(), alice, revoked, false)).toBe(admitRequest(rt, facts(), bob, revoked, false));
  });
});
