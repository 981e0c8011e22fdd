// Unit tests: the API key file reader and table, the header formats (RFC 9440, Traefik, XFCC modes
// and details), and the config rules of anonymous / apiKey entries.
import { createHash } from 'node:crypto';
import { describe, expect, it, beforeAll } from 'vitest';
import { ConfigError } from '../../src/config/issues.js';
import { readConfig } from '../../src/config/load.js';
import { identityFromDer } from '../../src/identity/identity.js';
import type { Identity } from '../../src/identity/types.js';
import { ApiKeyTable, keyHeaderValue, parseApiKeys } from '../../src/proxy/api-keys.js';
import { goQueryEscape, rfc9440Headers, traefikInfo, traefikPem } from '../../src/proxy/cert-headers.js';
import { IdentityHeaderCache, upstreamHeaders, type HeaderSettings } from '../../src/proxy/headers.js';
import { parseXfcc } from '../../src/proxy/xfcc.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

const sha = (k: string) => createHash('sha256').update(k).digest('hex');
const derOf = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');

describe('API key file', () => {
  it('reads name, sha256 and expires; a bare date means 00:00 UTC that day', () => {
    const keys = parseApiKeys(`- { name: billing, sha256: ${sha('k1').toUpperCase()}, expires: 2030-06-30 }\n- name: reports\n  sha256: ${sha('k2')}\n  expires: 2030-01-01T12:00:00Z\n`, '/tmp/keys.yaml');
    expect(keys.map((k) => [k.name, k.expires])).toEqual([
      ['billing', Date.parse('2030-06-30T00:00:00Z')],
      ['reports', Date.parse('2030-01-01T12:00:00Z')],
    ]);
  });

  it('reports every problem with file:line:col, like the config', () => {
    const text = ['- { name: a, sha256: abc, expires: 2030-01-01 }', '- { name: a, sha256: ' + sha('x') + ', expires: soon }', '- { nme: b }'].join('\n');
    let err: ConfigError | undefined;
    try {
      parseApiKeys(text, '/etc/certgate/keys.yaml');
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const lines = err!.message.split('\n');
    expect(lines).toContainEqual(expect.stringMatching(/^\/etc\/certgate\/keys\.yaml:1:\d+ \[0\]\.sha256: must be the SHA-256 of the key in hex/));
    expect(lines).toContainEqual(expect.stringMatching(/^\/etc\/certgate\/keys\.yaml:2:\d+ \[1\]\.expires: must be a date/));
    expect(lines).toContainEqual(expect.stringMatching(/^\/etc\/certgate\/keys\.yaml:3:\d+ \[2\]\.nme: unknown key/));
    expect(lines).toContainEqual(expect.stringMatching(/^\/etc\/certgate\/keys\.yaml:3:\d+ \[2\]\.name: required key is missing/));
  });

  it('refuses a duplicate name or hash, and a file that is not a list', () => {
    const dup = `- { name: a, sha256: ${sha('k')}, expires: 2030-01-01 }\n- { name: a, sha256: ${sha('k')}, expires: 2030-01-01 }\n`;
    expect(() => parseApiKeys(dup, '/k.yaml')).toThrow(/\/k\.yaml:2:\d+ \[1\]\.name: duplicate name[\s\S]*\[1\]\.sha256: duplicate sha256/);
    expect(() => parseApiKeys('name: a', '/k.yaml')).toThrow(/must be a list/);
    expect(parseApiKeys('', '/k.yaml')).toEqual([]);
  });

  it('answers the key name, invalid, or expired from the hash', () => {
    const t = new ApiKeyTable(parseApiKeys(`- { name: live, sha256: ${sha('good')}, expires: 2030-01-01 }\n- { name: old, sha256: ${sha('old')}, expires: 2020-01-01 }\n`, '/k.yaml'));
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(t.check('good', now)).toEqual({ name: 'live' });
    expect(t.check('bad', now)).toBe('invalid');
    expect(t.check('old', now)).toBe('expired');
    expect(t.check('good', Date.parse('2030-01-01T00:00:00Z'))).toBe('expired');
    expect(t.nameOf('old')).toBe('old');
  });

  it('reads the key header case-insensitively; a repeated header names no key', () => {
    expect(keyHeaderValue(['Host', 'a', 'X-Api-Key', 'k'], 'x-api-key')).toBe('k');
    expect(keyHeaderValue(['Host', 'a'], 'x-api-key')).toBeUndefined();
    expect(keyHeaderValue(['x-api-key', 'k', 'X-API-KEY', 'k'], 'x-api-key')).toBe('');
  });
});

describe('header formats', () => {
  let pki: TestPki;
  let id: Identity;
  let chain: Uint8Array[];
  let leafB64: string;
  let interB64: string;
  beforeAll(async () => {
    pki = await createTestPki();
    const c = await pki.client({ subject: 'C=FR, O=Acme, OU=payments, CN=alice', san: { dns: ['a.test'], email: ['a@acme.test'], uri: ['spiffe://acme/a'] } });
    id = identityFromDer(derOf(c.certPem));
    chain = [derOf(pki.intermediate.certPem)];
    leafB64 = derOf(c.certPem).toString('base64');
    interB64 = chain[0]!.length ? Buffer.from(chain[0]!).toString('base64') : '';
  });

  it('RFC 9440: Client-Cert is the leaf as a byte sequence, Client-Cert-Chain a list of them; no chain header without intermediates', () => {
    expect(rfc9440Headers(id, chain)).toEqual(['client-cert', `:${leafB64}:`, 'client-cert-chain', `:${interB64}:`]);
    expect(rfc9440Headers(id, [chain[0]!, chain[0]!])[3]).toBe(`:${interB64}:, :${interB64}:`);
    expect(rfc9440Headers(id, [])).toEqual(['client-cert', `:${leafB64}:`]);
  });

  it('Traefik: the PEM bodies without lines, comma-separated; the info query-escaped like Go', () => {
    expect(traefikPem(id, chain)).toBe(`${leafB64},${interB64}`);
    const info = traefikInfo(id, [], new Set(['subject', 'issuer', 'serial', 'notBefore', 'notAfter', 'sans'] as const));
    const serial = BigInt('0x' + id.serial).toString();
    const raw = `Subject="C=FR,O=Acme,OU=payments,CN=alice";Issuer="O=certgate-test,CN=certgate test intermediate CA";SerialNumber="${serial}";NB="${Math.floor(id.notBefore.getTime() / 1000)}";NA="${Math.floor(id.notAfter.getTime() / 1000)}";SAN="a.test,a@acme.test,spiffe://acme/a"`;
    expect(info).toBe(goQueryEscape(raw));
    expect(goQueryEscape(`a b"=;,!'()*~`)).toBe('a+b%22%3D%3B%2C%21%27%28%29%2A~');
  });

  const base: HeaderSettings = { xfcc: true, prefix: 'x-client-cert-', forwarded: false };
  const xfccOf = (out: string[]) => out.flatMap((v, i) => (i % 2 === 0 && v === 'x-forwarded-client-cert' ? [out[i + 1]!] : []));

  it('XFCC modes: sanitize sets none, sanitize_set replaces, xfcc: false is sanitize', () => {
    const raw = ['Host', 'a', 'X-Forwarded-Client-Cert', 'Hash=evil'];
    expect(xfccOf(upstreamHeaders(raw, new IdentityHeaderCache({ ...base, xfccMode: 'sanitize' }).get(id), base, '', 'r'))).toEqual([]);
    expect(xfccOf(upstreamHeaders(raw, new IdentityHeaderCache({ ...base, xfcc: false }).get(id), base, '', 'r'))).toEqual([]);
    expect(xfccOf(upstreamHeaders(raw, new IdentityHeaderCache(base).get(id), base, '', 'r'))).toEqual([expect.stringMatching(new RegExp(`^Hash=${id.fingerprint};Subject=`))]);
  });

  it('XFCC append_forward and forward_only keep a trusted proxy\'s XFCC and strip anybody else\'s', () => {
    const raw = ['Host', 'a', 'x-forwarded-client-cert', 'By=spiffe://edge;Hash=11', 'X-Forwarded-Client-Cert', 'Hash=22'];
    const trusted = { ...base, trustedProxies: [{ cn: ['alice'] }] };
    const untrusted = { ...base, trustedProxies: [{ cn: ['edge'] }] };
    const append = xfccOf(upstreamHeaders(raw, new IdentityHeaderCache({ ...trusted, xfccMode: 'append_forward' }).get(id), base, '', 'r'));
    expect(append).toHaveLength(1);
    expect(parseXfcc(append[0]!).map((e) => e.find((p) => p.key === 'Hash')?.value)).toEqual(['11', '22', id.fingerprint]);
    expect(xfccOf(upstreamHeaders(raw, new IdentityHeaderCache({ ...trusted, xfccMode: 'forward_only' }).get(id), base, '', 'r'))).toEqual(['By=spiffe://edge;Hash=11,Hash=22']);
    const appendUntrusted = xfccOf(upstreamHeaders(raw, new IdentityHeaderCache({ ...untrusted, xfccMode: 'append_forward' }).get(id), base, '', 'r'));
    expect(parseXfcc(appendUntrusted.join(',')).length).toBe(1);
    expect(xfccOf(upstreamHeaders(raw, new IdentityHeaderCache({ ...untrusted, xfccMode: 'forward_only' }).get(id), base, '', 'r'))).toEqual([]);
  });

  it('XFCC details: By, Hash, Cert, Chain, Subject, URI, DNS in Envoy\'s order, only those selected', () => {
    const all = new IdentityHeaderCache({ ...base, xfccDetails: ['DNS', 'Chain', 'Cert', 'By', 'Hash', 'Subject', 'URI'] }, { by: 'spiffe://certgate' }).get(id);
    const el = parseXfcc(xfccOf(all.list as string[])[0]!)[0]!;
    expect(el.map((p) => p.key)).toEqual(['By', 'Hash', 'Cert', 'Chain', 'Subject', 'URI', 'DNS']);
    const only = new IdentityHeaderCache({ ...base, xfccDetails: ['URI'] }).get(id);
    expect(xfccOf(only.list as string[])).toEqual(['URI=spiffe://acme/a']);
  });

  it('renders a certificate\'s headers once and reuses them', () => {
    const cache = new IdentityHeaderCache({ ...base, rfc9440: true, traefik: { pem: true, info: ['subject'] } });
    expect(cache.get(id)).toBe(cache.get(id));
  });

  it('removes the API key header and a client-sent key name; adds the name for a key request', () => {
    const cache = new IdentityHeaderCache(base, { apiKeys: { header: 'x-api-key', forwardHeader: 'x-client-api-key' } });
    const raw = ['Host', 'a', 'X-Api-Key', 'secret', 'X-Client-Api-Key', 'admin', 'x_api_key', 'secret'];
    expect(upstreamHeaders(raw, cache.certless(undefined), base, '', 'r')).toEqual(['Host', 'a', 'x-request-id', 'r']);
    expect(upstreamHeaders(raw, cache.certless('billing'), base, '', 'r')).toEqual(['Host', 'a', 'x-request-id', 'r', 'x-client-api-key', 'billing']);
    expect(upstreamHeaders(raw, cache.get(id), base, '', 'r').join()).not.toContain('secret');
  });
});

describe('config: anonymous and apiKey entries', () => {
  const cfg = (extra: string, allow: string) => `listen: { port: 0 }\ntls: { cert: a.pem, key: a.key, clientCAs: [ca.pem]${extra.includes('refuse') ? ', refuse: handshake' : ''} }\n${extra.includes('keys') ? 'apiKeys: { file: k.yaml }\n' : ''}routes:\n  - name: r\n    upstream: http://127.0.0.1:1\n    allow:\n${allow}\n`;
  const issues = (text: string) => readConfig(text, '/etc/certgate/certgate.yaml').issues.map((i) => `${i.line} ${i.path}: ${i.message}`);

  it('accepts { anonymous: true } and { apiKey: NAME } with apiKeys set', () => {
    expect(issues(cfg('keys', '      - { anonymous: true }\n      - { apiKey: "legacy-*" }\n      - { cn: alice }'))).toEqual([]);
  });

  it('refuses them with tls.refuse: handshake, at their line', () => {
    expect(issues(cfg('refuse keys', '      - { cn: alice }\n      - { anonymous: true }\n      - { apiKey: a }'))).toEqual([
      expect.stringMatching(/^9 routes\[0\]\.allow\[1\]\.anonymous: tls\.refuse: handshake/),
      expect.stringMatching(/^10 routes\[0\]\.allow\[2\]\.apiKey: tls\.refuse: handshake/),
    ]);
  });

  it('refuses apiKey without apiKeys, anonymous: false, and either mixed with certificate fields', () => {
    expect(issues(cfg('', '      - { apiKey: a }'))).toEqual([expect.stringMatching(/apiKey: needs apiKeys\.file/)]);
    expect(issues(cfg('', '      - { anonymous: false }'))).toEqual([expect.stringMatching(/anonymous: must be true/)]);
    expect(issues(cfg('', '      - { anonymous: true, cn: alice }'))).toEqual([expect.stringMatching(/cannot be combined with certificate fields/)]);
  });

  it('refuses headers.xfcc and headers.xfccMode together', () => {
    const text = cfg('', '      - { cn: alice }') + 'headers: { xfcc: true, xfccMode: sanitize }\n';
    expect(issues(text)).toEqual([expect.stringMatching(/headers\.xfccMode: set either xfcc or xfccMode, not both/)]);
  });
});
