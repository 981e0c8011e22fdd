import { describe, expect, it } from 'vitest';
import type { MatcherSpec, RouteConfig } from '../../src/config/types.js';
import type { Identity } from '../../src/identity/types.js';
import { identityFixture } from '../helpers/identity.js';
import { compileMatcher, compilePolicy } from '../../src/policy/compile.js';
import { decide, matchRoute, type RequestFacts } from '../../src/policy/decide.js';

function identity(over: Partial<Identity> = {}): Identity {
  return identityFixture({
    subject: 'CN=billing-api,OU=payments,O=Acme',
    cn: ['billing-api'],
    o: ['Acme'],
    ou: ['payments'],
    dns: ['billing.internal.example.com'],
    uri: ['spiffe://example.org/ns/prod/sa/billing'],
    email: ['Ops@Example.COM'],
    spiffe: 'spiffe://example.org/ns/prod/sa/billing',
    fingerprint: 'a'.repeat(64),
    serial: '1f',
    issuer: 'CN=Acme Intermediate,O=Acme',
    notAfter: new Date(4102444800000),
    ...over,
  });
}

function route(name: string, over: Partial<RouteConfig> = {}): RouteConfig {
  return {
    name,
    match: { pathPrefix: '/' },
    upstream: ['http://127.0.0.1:1'],
    allow: [{ subject: ['*'] }],
    deny: [],
    maxBodySize: 1024,
    timeouts: { upstream: 1000 },
    websocket: true,
    ...over,
  };
}

const req = (path: string, over: Partial<RequestFacts> = {}): RequestFacts => ({ method: 'GET', host: 'api.example.com', path, sni: undefined, ...over });

describe('matchers', () => {
  const cases: [string, MatcherSpec, Partial<Identity>, boolean][] = [
    ['exact cn', { cn: ['billing-api'] }, {}, true],
    ['cn glob', { cn: ['billing-*'] }, {}, true],
    ['cn is case-sensitive', { cn: ['Billing-api'] }, {}, false],
    ['list value means any of', { cn: ['x', 'billing-api'] }, {}, true],
    ['all fields of one entry must match', { cn: ['billing-*'], ou: ['support'] }, {}, false],
    ['any of several OUs', { ou: ['payments'] }, { ou: ['other', 'payments'] }, true],
    ['spiffe * stays in one segment', { spiffe: ['spiffe://example.org/ns/*/billing'] }, {}, false],
    ['spiffe * matches a segment', { spiffe: ['spiffe://example.org/ns/prod/sa/*'] }, {}, true],
    ['spiffe ** spans segments', { spiffe: ['spiffe://example.org/**'] }, {}, true],
    ['no spiffe id', { spiffe: ['spiffe://example.org/**'] }, { spiffe: undefined }, false],
    ['dns * is one label', { dns: ['*.example.com'] }, {}, false],
    ['dns * label match', { dns: ['*.internal.example.com'] }, {}, true],
    ['dns is case-insensitive', { dns: ['BILLING.internal.example.com'] }, {}, true],
    ['email domain is case-insensitive', { email: ['Ops@example.com'] }, {}, true],
    ['email local part is case-sensitive', { email: ['ops@example.com'] }, {}, false],
    ['fingerprint exact', { fingerprint: ['a'.repeat(64)] }, {}, true],
    ['serial exact', { serial: ['1f'] }, {}, true],
    ['issuer RFC 4514', { issuer: ['CN=Acme Intermediate,O=Acme'] }, {}, true],
    ['regex characters in patterns are literal', { cn: ['billing.api'] }, { cn: ['billingXapi'] }, false],
    ['certificate values are never patterns', { cn: ['billing-api'] }, { cn: ['*'] }, false],
  ];
  it.each(cases)('%s', (_name, spec, over, expected) => {
    expect(compileMatcher(spec)(identity(over))).toBe(expected);
  });
});

describe('routes', () => {
  const policy = compilePolicy({
    routes: [
      route('orders', { match: { pathPrefix: '/orders', methods: ['GET', 'POST'] }, allow: [{ ou: ['payments'] }] }),
      route('hosted', { match: { host: ['api.example.com'], pathPrefix: '/hosted' } }),
      route('deep', { match: { pathPrefix: '/a/b' } }),
      route('denylisted', { match: { pathPrefix: '/d' }, allow: [{ ou: ['payments'] }], deny: [{ serial: ['1f'] }] }),
      route('catch-all', { allow: [{ cn: ['nobody'] }] }),
    ],
  });
  it('matches path prefixes on segment boundaries', () => {
    expect(matchRoute(policy, req('/orders'))?.name).toBe('orders');
    expect(matchRoute(policy, req('/orders/1'))?.name).toBe('orders');
    expect(matchRoute(policy, req('/orders-admin'))?.name).toBe('catch-all');
    expect(matchRoute(policy, req('/a/b/c'))?.name).toBe('deep');
    expect(matchRoute(policy, req('/a/bc'))?.name).toBe('catch-all');
  });
  it('honours methods', () => {
    expect(matchRoute(policy, req('/orders', { method: 'DELETE' }))?.name).toBe('catch-all');
  });
  it('first matching route wins', () => {
    expect(decide(identity(), req('/orders/1'), policy)).toMatchObject({ allow: true, route: { name: 'orders' } });
  });
  it('no route: route_not_found', () => {
    const p = compilePolicy({ routes: [route('only', { match: { pathPrefix: '/x' } })] });
    expect(decide(identity(), req('/y'), p)).toMatchObject({ allow: false, code: 'route_not_found' });
  });
  it('route matches but identity not allowed: identity_not_allowed', () => {
    expect(decide(identity({ ou: ['support'] }), req('/orders'), policy)).toMatchObject({ allow: false, code: 'identity_not_allowed' });
  });
  it('deny wins over allow', () => {
    expect(decide(identity(), req('/d'), policy)).toMatchObject({ allow: false, code: 'identity_not_allowed' });
    expect(decide(identity({ serial: '20' }), req('/d'), policy)).toMatchObject({ allow: true });
  });
  it('a route with no allow entry denies everyone', () => {
    const p = compilePolicy({ routes: [route('empty', { allow: [] })] });
    expect(decide(identity(), req('/'), p)).toMatchObject({ allow: false, code: 'identity_not_allowed' });
  });
  it('Host differing from SNI on a host-bound route: misdirected_request', () => {
    expect(decide(identity(), req('/hosted', { sni: 'other.example.com' }), policy)).toMatchObject({ code: 'misdirected_request' });
    expect(decide(identity(), req('/hosted', { sni: 'api.example.com' }), policy)).toMatchObject({ allow: true });
    expect(decide(identity(), req('/hosted', { sni: undefined }), policy)).toMatchObject({ allow: true });
  });
  it('memoised verdicts stay per identity', () => {
    const a = identity();
    const b = identity({ ou: ['support'] });
    for (let i = 0; i < 3; i++) {
      expect(decide(a, req('/orders'), policy).allow).toBe(true);
      expect(decide(b, req('/orders'), policy).allow).toBe(false);
    }
  });
  it('indexes many routes without changing first-match order', () => {
    const many = compilePolicy({
      routes: [
        ...Array.from({ length: 200 }, (_, i) => route(`r${i}`, { match: { pathPrefix: `/svc${i}` }, allow: [{ cn: [`client-${i}`] }] })),
        route('root'),
      ],
    });
    expect(matchRoute(many, req('/svc137/x'))?.name).toBe('r137');
    expect(matchRoute(many, req('/unknown'))?.name).toBe('root');
    expect(decide(identity({ cn: ['client-137'] }), req('/svc137'), many).allow).toBe(true);
    expect(decide(identity({ cn: ['client-138'] }), req('/svc137'), many).allow).toBe(false);
  });
});
