// `listen.proxyProtocol` in the config: off unless set, networks checked with file:line errors,
// and reloadable (a reload that changes it is not refused as restart-only).
import { describe, expect, it } from 'vitest';
import { diffRestartOnly, parseConfig } from '../../src/config/load.js';
import { configIssues } from '../helpers/config.js';

const FILE = '/etc/certgate/x.yaml';
const config = (proxy: string) => `listen:
  port: 8443
${proxy}tls: {cert: s.pem, key: k.pem, clientCAs: ca.pem}
routes:
  - {name: r, upstream: "http://127.0.0.1:9001", allow: [{cn: alice}]}
`;

const issues = (text: string): string[] => configIssues(text, FILE);

describe('listen.proxyProtocol', () => {
  it('is off by default', () => {
    expect(parseConfig(config(''), FILE).listen.proxyProtocol).toBeUndefined();
  });

  it('takes IPv4 and IPv6 networks and bare addresses, one or a list', () => {
    const c = parseConfig(config('  proxyProtocol:\n    trusted: [10.0.0.0/8, 127.0.0.1/32, "::1/128", fd00::/8, 192.0.2.7]\n'), FILE);
    expect(c.listen.proxyProtocol).toEqual({ trusted: ['10.0.0.0/8', '127.0.0.1/32', '::1/128', 'fd00::/8', '192.0.2.7'] });
    expect(parseConfig(config('  proxyProtocol: {trusted: 10.0.0.0/8}\n'), FILE).listen.proxyProtocol).toEqual({ trusted: ['10.0.0.0/8'] });
  });

  it('reports every bad network with its file, line and column', () => {
    const text = config('  proxyProtocol:\n    trusted:\n      - 10.0.0.0/33\n      - lb.example.com\n      - "::1/129"\n      - 10.0.0.0/8/1\n      - 10.0.0.0/x\n');
    expect(issues(text)).toEqual([
      '/etc/certgate/x.yaml:5:9 listen.proxyProtocol.trusted[0]: prefix length must be 0 to 32, got "10.0.0.0/33"',
      '/etc/certgate/x.yaml:6:9 listen.proxyProtocol.trusted[1]: must be an IP network such as 10.0.0.0/8 or fd00::/8 (or one address), got "lb.example.com"',
      '/etc/certgate/x.yaml:7:9 listen.proxyProtocol.trusted[2]: prefix length must be 0 to 128, got "::1/129"',
      '/etc/certgate/x.yaml:8:9 listen.proxyProtocol.trusted[3]: must be an IP network such as 10.0.0.0/8 or fd00::/8 (or one address), got "10.0.0.0/8/1"',
      '/etc/certgate/x.yaml:9:9 listen.proxyProtocol.trusted[4]: prefix length must be 0 to 32, got "10.0.0.0/x"',
    ]);
  });

  it('needs a trusted list, and not an empty one', () => {
    expect(issues(config('  proxyProtocol: {}\n'))).toEqual([expect.stringMatching(/^\/etc\/certgate\/x\.yaml:3:\d+ listen\.proxyProtocol\.trusted: /)]);
    expect(issues(config('  proxyProtocol: {trusted: []}\n'))).toEqual([expect.stringMatching(/^\/etc\/certgate\/x\.yaml:3:\d+ listen\.proxyProtocol\.trusted: /)]);
  });

  it('is reloadable: turning it on or changing the list is not a restart-only change', () => {
    const off = parseConfig(config(''), FILE);
    const on = parseConfig(config('  proxyProtocol: {trusted: [10.0.0.0/8]}\n'), FILE);
    const other = parseConfig(config('  proxyProtocol: {trusted: [192.168.0.0/16]}\n'), FILE);
    expect(diffRestartOnly(off, on)).toEqual([]);
    expect(diffRestartOnly(on, other)).toEqual([]);
  });
});
