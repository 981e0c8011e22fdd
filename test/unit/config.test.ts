import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { diffRestartOnly, loadConfig, parseConfig } from '../../src/config/load.js';
import { parseDuration, parseSize } from '../../src/util/duration.js';
import { ConfigError, formatConfigIssue } from '../../src/config/issues.js';
import { configIssues } from '../helpers/config.js';

const FILE = '/etc/certgate/x.yaml';
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// The smallest valid config; tests add to it or break it.
const MINIMAL = `listen:
  port: 8443
tls:
  cert: server.pem
  key: server-key.pem
  clientCAs: ca.pem
routes:
  - name: r
    upstream: http://127.0.0.1:9001
    allow:
      - cn: alice
`;

const issues = (text: string): string[] => configIssues(text, FILE);

/** MINIMAL with extra top-level YAML appended. */
function withTop(extra: string): string {
  return MINIMAL + extra;
}

/** A one-route config whose route body is given (indented under `- `). */
function withRoute(body: string): string {
  return `listen: {port: 8443}
tls: {cert: s.pem, key: k.pem, clientCAs: ca.pem}
routes:
  - ${body.trim().split('\n').join('\n    ')}
`;
}

describe('parseConfig: accepted configs', () => {
  it('accepts the demo config that npm start uses', () => {
    const c = loadConfig(join(REPO, 'config/certgate.yaml'));
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8443, http2: false });
    expect(c.admin).toMatchObject({ enabled: true, host: '127.0.0.1', port: 9443 });
    expect(c.tls.cert).toBe(join(REPO, 'certs-dev/server.pem'));
    expect(c.tls.key).toBe(join(REPO, 'certs-dev/server-key.pem'));
    expect(c.tls.clientCAs).toEqual([join(REPO, 'certs-dev/ca-bundle.pem')]);
    expect(c.routes.map((r) => r.name)).toEqual(['orders', 'admin-api', 'default']);
    expect(c.routes.every((r) => r.upstream[0] === 'http://127.0.0.1:9001')).toBe(true);
    expect(c.routes[0]!.allow).toEqual([{ spiffe: ['spiffe://certgate.dev/ns/dev/sa/*'] }]);
    expect(c.routes[1]!.allow).toEqual([{ cn: ['alice'], ou: ['payments'] }]);
    expect(c.routes[1]!.match.methods).toEqual(['GET', 'POST']);
    expect(c.routes[2]!.match.pathPrefix).toBe('/');
  });

  it('applies every default to a minimal config', () => {
    const c = parseConfig(MINIMAL, FILE);
    expect(c.file).toBe(FILE);
    expect(c.dir).toBe('/etc/certgate');
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8443, http2: false });
    expect(c.tls).toEqual({
      cert: '/etc/certgate/server.pem',
      key: '/etc/certgate/server-key.pem',
      clientCAs: ['/etc/certgate/ca.pem'],
      minVersion: 'TLSv1.2',
      refuse: 'request',
      profile: 'intermediate',
      requireCompleteChain: false,
      ticketRotate: 12 * 3600_000,
      allowExpiredServerCert: false,
    });
    expect(c.timeouts).toEqual({
      handshake: 10_000,
      headers: 10_000,
      request: 60_000,
      idle: 60_000,
      upstream: 30_000,
      upstreamConnect: 5_000,
      shutdown: 15_000,
    });
    expect(c.limits).toEqual({
      maxConnections: 10_000,
      maxBodySize: 10 * 1024 * 1024,
      maxHeaderSize: 16 * 1024,
      http2: {
        maxConcurrentStreams: 100,
        maxHeaderListSize: 16 * 1024,
        maxHeaderPairs: 128,
        maxResetsPerSecond: 100,
        maxControlFramesPerSecond: 100,
        maxInvalidFrames: 100,
        maxRejectedStreams: 100,
        streamIdleTimeout: 60_000,
        sessionIdleTimeout: 60_000,
      },
    });
    expect(c.routes).toEqual([
      {
        name: 'r',
        match: { pathPrefix: '/' },
        upstream: ['http://127.0.0.1:9001'],
        allow: [{ cn: ['alice'] }],
        deny: [],
        maxBodySize: 10 * 1024 * 1024,
        timeouts: { upstream: 30_000 },
        websocket: true,
      },
    ]);
    expect(c.headers).toEqual({ xfcc: true, prefix: 'x-client-cert-', forwarded: true, xfccDetails: ['Hash', 'Subject', 'URI', 'DNS'], trustedProxies: [], rfc9440: false });
    expect(c.log).toEqual({ level: 'info', access: true });
    expect(c.admin).toEqual({ enabled: true, host: '127.0.0.1', port: 9443, publicMetrics: true, client: {}, tokenFile: '/etc/certgate/admin.token' });
    expect(c.revocation).toEqual({
      dataDir: '/etc/certgate/data',
      crl: { files: [], urls: [], distributionPoints: false, refresh: 3600_000, timeout: 5_000, maxSize: 10 * 1024 * 1024 },
      ocsp: { enabled: false, timeout: 3_000, cacheSize: 10_000 },
      recheck: 1_000,
    });
    expect(c.clientCertPolicy).toEqual({
      minRsaBits: 2048,
      curves: ['P-256', 'P-384', 'P-521'],
      forbiddenSigAlgs: ['sha1', 'md5'],
      requireClientAuthEku: true,
      rejectCaLeaf: true,
      maxChainDepth: 4,
      ownCerts: 'warn',
    });
    expect(c.expiry).toEqual({ warnDays: [30, 7, 1], checkEvery: 3600_000 });
    expect(c.inventory).toEqual({ maxEntries: 10_000, perClientSeries: 1_000 });
    expect(c.monitors).toEqual([]);
    expect(c.workers).toBe(1);
    expect(c.est).toBeUndefined();
    expect(c.watch).toEqual({ enabled: true, debounce: 250 });
  });

  it('returns a deeply frozen config', () => {
    const c = parseConfig(MINIMAL, FILE);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.routes[0]!.allow[0]!.cn)).toBe(true);
    expect(() => {
      (c.listen as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('resolves every relative path against the config file folder and keeps absolute ones', () => {
    const c = parseConfig(
      `listen: {port: 1}
tls: {cert: ./a/cert.pem, key: /abs/key.pem, clientCAs: [../ca1.pem, ca2.pem]}
routes: [{name: r, upstream: "http://u:1", allow: [{cn: a}]}]
admin:
  tokenFile: secrets/token
  tls: {cert: adm.pem, key: adm-key.pem, clientCAs: adm-ca.pem, allow: [{cn: ops}]}
revocation: {dataDir: var/data, crl: {files: [crl/a.crl]}}
log: {file: logs/certgate.log, accessFile: logs/access.log}
inventory: {file: inv.json}
est: {enabled: true, caDir: ca}
monitors: [{address: "example.com:443", ca: mon-ca.pem}]
`,
      FILE,
    );
    expect(c.tls.cert).toBe('/etc/certgate/a/cert.pem');
    expect(c.tls.key).toBe('/abs/key.pem');
    expect(c.tls.clientCAs).toEqual(['/etc/ca1.pem', '/etc/certgate/ca2.pem']);
    expect(c.admin.tokenFile).toBe('/etc/certgate/secrets/token');
    expect(c.admin.tls).toEqual({
      cert: '/etc/certgate/adm.pem',
      key: '/etc/certgate/adm-key.pem',
      clientCAs: ['/etc/certgate/adm-ca.pem'],
      allow: [{ cn: ['ops'] }],
      tokenAlso: true,
    });
    expect(c.revocation.dataDir).toBe('/etc/certgate/var/data');
    expect(c.revocation.crl.files).toEqual(['/etc/certgate/crl/a.crl']);
    expect(c.log.file).toBe('/etc/certgate/logs/certgate.log');
    expect(c.log.accessFile).toBe('/etc/certgate/logs/access.log');
    expect(c.inventory.file).toBe('/etc/certgate/inv.json');
    expect(c.est?.caDir).toBe('/etc/certgate/ca');
    expect(c.monitors).toEqual([{ address: 'example.com:443', interval: 3600_000, ca: '/etc/certgate/mon-ca.pem' }]);
  });

  it('normalises route matches and upstreams', () => {
    const c = parseConfig(
      withRoute(`
name: api.v1
match:
  host: [API.Example.com, "*.svc.example.com"]
  pathPrefix: /api/v1/
  methods: get
upstream: ["http://10.0.0.1:8080/base/", "http://10.0.0.2"]
allow: [{ou: x}]
maxBodySize: 1kb
revocation: soft
timeouts: {upstream: 2s}
websocket: false`),
      FILE,
    );
    expect(c.routes[0]).toEqual({
      name: 'api.v1',
      match: { host: ['api.example.com', '*.svc.example.com'], pathPrefix: '/api/v1', methods: ['GET'] },
      upstream: ['http://10.0.0.1:8080/base', 'http://10.0.0.2'],
      allow: [{ ou: ['x'] }],
      deny: [],
      maxBodySize: 1024,
      revocation: 'soft',
      timeouts: { upstream: 2000 },
      websocket: false,
    });
  });

  it('takes route defaults from limits and timeouts', () => {
    const c = parseConfig(withTop('limits: {maxBodySize: 1mb}\ntimeouts: {upstream: 5s}\n'), FILE);
    expect(c.routes[0]!.maxBodySize).toBe(1024 * 1024);
    expect(c.routes[0]!.timeouts.upstream).toBe(5000);
  });

  it('canonicalises serial and fingerprint values', () => {
    const fp = 'AB:'.repeat(31) + 'CD';
    const c = parseConfig(
      withRoute(`
name: r
upstream: http://u:1
allow:
  - serial: ["00:1A:2b", 0x0F, 1234]
  - fingerprint: "${fp}"
  - fingerprint: sha256:${'ab'.repeat(32)}`),
      FILE,
    );
    expect(c.routes[0]!.allow).toEqual([
      { serial: ['1a2b', 'f', '1234'] },
      { fingerprint: ['ab'.repeat(31) + 'cd'] },
      { fingerprint: ['ab'.repeat(32)] },
    ]);
  });

  it('accepts revocation.ocsp as a plain boolean', () => {
    const on = parseConfig(withTop('revocation: {ocsp: true}\n'), FILE);
    expect(on.revocation.ocsp).toEqual({ enabled: true, timeout: 3000, cacheSize: 10_000 });
    const full = parseConfig(
      withTop('revocation:\n  ocsp: {enabled: true, responder: "http://ocsp.example/", mode: hard}\n'),
      FILE,
    );
    expect(full.revocation.ocsp).toMatchObject({ enabled: true, responder: 'http://ocsp.example/', mode: 'hard' });
  });

  it('resolves workers: auto to the available parallelism', () => {
    expect(parseConfig(withTop('workers: auto\n'), FILE).workers).toBe(availableParallelism());
    expect(parseConfig(withTop('workers: 3\n'), FILE).workers).toBe(3);
  });

  it('reads est with its defaults when present', () => {
    expect(parseConfig(withTop('est: {enabled: true, caDir: /var/ca}\n'), FILE).est).toEqual({
      enabled: true,
      caDir: '/var/ca',
      renewWindowDays: 10,
      renewWindowFraction: 0.34,
      rateLimitPerHour: 10,
      days: 30,
    });
  });

  it('treats an empty value as "use the default"', () => {
    const c = parseConfig(withTop('log:\n  file:\n  level: ~\n'), FILE);
    expect(c.log).toEqual({ level: 'info', access: true });
  });
});

describe('durations and sizes', () => {
  it.each([
    [250, 250],
    ['500ms', 500],
    ['10s', 10_000],
    ['1.5s', 1_500],
    ['5m', 300_000],
    ['12h', 43_200_000],
    ['30d', 2_592_000_000],
    ['10', undefined],
    ['10 minutes', undefined],
    [-1, undefined],
    [1.5, undefined],
  ])('parseDuration(%j) = %j', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([
    [100, 100],
    ['100', 100],
    ['512b', 512],
    ['16kb', 16_384],
    ['1KiB', 1024],
    ['10mb', 10_485_760],
    ['1.5mb', 1_572_864],
    ['1gb', 1_073_741_824],
    ['1tb', undefined],
    ['big', undefined],
    [-5, undefined],
  ])('parseSize(%j) = %j', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it('reads durations and sizes in the config', () => {
    const c = parseConfig(withTop('timeouts: {request: 0, idle: 2m, handshake: 1500}\nlimits: {maxHeaderSize: 8kb, maxBodySize: 2048}\n'), FILE);
    expect(c.timeouts).toMatchObject({ request: 0, idle: 120_000, handshake: 1_500 });
    expect(c.limits).toMatchObject({ maxHeaderSize: 8192, maxBodySize: 2048 });
  });

  it('refuses durations longer than a Node.js timer can wait', () => {
    expect(issues(withTop('expiry: {checkEvery: 30d}\n'))).toEqual([
      '/etc/certgate/x.yaml:12:22 expiry.checkEvery: must be at most 24d (the longest timer Node.js can set), got "30d"',
    ]);
  });
});

describe('parseConfig: errors carry file:line:col key.path', () => {
  it.each([
    [
      'top level',
      withTop('lisen: {}\n'),
      '/etc/certgate/x.yaml:12:1 lisen: unknown key (did you mean "listen"?)',
    ],
    [
      'in a section',
      MINIMAL.replace('  port: 8443', '  port: 8443\n  hots: 0.0.0.0'),
      '/etc/certgate/x.yaml:3:3 listen.hots: unknown key (did you mean "host"?)',
    ],
    [
      'in a matcher',
      MINIMAL.replace('      - cn: alice', '      - cnn: alice'),
      '/etc/certgate/x.yaml:11:9 routes[0].allow[0].cnn: unknown key (did you mean "cn"?)',
    ],
  ])('reports an unknown key %s with its position', (_name, text, expected) => {
    expect(issues(text)).toEqual([expected]);
  });

  it('reports each unknown key of a map, hinting only where a known key is close', () => {
    const text = MINIMAL.replace('  - name: r', '  - name: r\n    match: {path: /x, somethingElse: 1}');
    expect(issues(text)).toEqual([
      '/etc/certgate/x.yaml:9:13 routes[0].match.path: unknown key (did you mean "pathPrefix"?)',
      '/etc/certgate/x.yaml:9:23 routes[0].match.somethingElse: unknown key',
    ]);
  });

  it('reports every error in a file at once, in file order', () => {
    const text = `listen:
  port: 70000
tls:
  cert: server.pem
  minVersion: TLSv1.1
timeouts:
  idle: soon
routes:
  - name: bad name
    upstream: https://x:1
    allow: [{}]
log: {level: loud}
workers: 0
`;
    expect(issues(text)).toEqual([
      '/etc/certgate/x.yaml:2:9 listen.port: must be a port number from 0 to 65535, got 70000',
      '/etc/certgate/x.yaml:4:3 tls.key: required key is missing',
      '/etc/certgate/x.yaml:4:3 tls.clientCAs: required key is missing',
      '/etc/certgate/x.yaml:5:15 tls.minVersion: must be one of "TLSv1.2", "TLSv1.3" (did you mean "TLSv1.2"?), got "TLSv1.1"',
      '/etc/certgate/x.yaml:7:9 timeouts.idle: must be a duration such as 500ms, 10s, 5m, 12h or 1d (a number means milliseconds), got "soon"',
      '/etc/certgate/x.yaml:9:11 routes[0].name: must contain only letters, digits, "_", "." and "-", got "bad name"',
      '/etc/certgate/x.yaml:10:15 routes[0].upstream: must use the http: scheme (certgate terminates TLS), got "https:"',
      '/etc/certgate/x.yaml:11:13 routes[0].allow[0]: an empty matcher would match every certificate; use { subject: "*" } to allow any trusted client',
      '/etc/certgate/x.yaml:12:14 log.level: must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "loud"',
      '/etc/certgate/x.yaml:13:10 workers: must be an integer >= 1 or "auto", got 0',
    ]);
  });

  it('reports missing required keys at the parent map, and whole missing sections', () => {
    expect(issues('log: {level: info}\n')).toEqual([
      '/etc/certgate/x.yaml:1:1 listen.port: required key is missing',
      '/etc/certgate/x.yaml:1:1 tls.cert: required key is missing',
      '/etc/certgate/x.yaml:1:1 tls.key: required key is missing',
      '/etc/certgate/x.yaml:1:1 tls.clientCAs: required key is missing',
      '/etc/certgate/x.yaml:1:1 routes: required key is missing',
    ]);
    expect(issues(withRoute('match: {pathPrefix: /a}\nallow: [{cn: a}]'))).toEqual([
      '/etc/certgate/x.yaml:4:5 routes[0].name: required key is missing',
      '/etc/certgate/x.yaml:4:5 routes[0].upstream: required key is missing',
    ]);
  });

  it('reports every missing key of an optional section that was given', () => {
    expect(issues(withTop('admin:\n  tls:\n    cert: a.pem\n'))).toEqual([
      '/etc/certgate/x.yaml:14:5 admin.tls.key: required key is missing',
      '/etc/certgate/x.yaml:14:5 admin.tls.clientCAs: required key is missing',
      '/etc/certgate/x.yaml:14:5 admin.tls.allow: required key is missing',
    ]);
  });

  it('reports an empty file as missing every required key', () => {
    expect(issues('')).toHaveLength(5);
    expect(issues('# nothing\n')[0]).toBe('/etc/certgate/x.yaml:1:1 listen.port: required key is missing');
  });

  it('refuses a config that is not a map', () => {
    expect(issues('- a\n- b\n')[0]).toBe('/etc/certgate/x.yaml:1:1 (root): the config must be a map, got a list');
  });

  it('translates YAML syntax errors into positioned issues', () => {
    expect(issues('listen:\n  port: 1\nroutes: [a, b\n')).toEqual([
      '/etc/certgate/x.yaml:4:1 (yaml): Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    expect(issues('listen:\n  port: 1\n port: 2\n')).toEqual([
      '/etc/certgate/x.yaml:3:1 (yaml): All mapping items must start at the same column',
    ]);
  });

  it('reports a duplicate key with the line of the first one', () => {
    expect(issues(withTop('workers: 1\nworkers: 2\n'))).toEqual([
      '/etc/certgate/x.yaml:13:1 workers: duplicate key (first set at line 12)',
    ]);
  });

  it('refuses duplicate route names', () => {
    const text = withRoute('name: a\nupstream: http://u:1\nallow: [{cn: x}]') + '  - {name: a, upstream: "http://u:1"}\n';
    expect(issues(text)).toEqual(['/etc/certgate/x.yaml:7:12 routes[1].name: duplicate route name "a" (first used at line 4)']);
  });

  it('refuses an empty matcher in allow and deny', () => {
    const text = withRoute('name: a\nupstream: http://u:1\nallow:\n  - {}\ndeny: [{}]');
    expect(issues(text)).toEqual([
      '/etc/certgate/x.yaml:7:9 routes[0].allow[0]: an empty matcher would match every certificate; use { subject: "*" } to allow any trusted client',
      '/etc/certgate/x.yaml:8:12 routes[0].deny[0]: an empty matcher would match every certificate; use { subject: "*" } to allow any trusted client',
    ]);
  });

  it.each([
    ['serial: 12zz', 'routes[0].allow[0].serial: must be a hexadecimal serial number, got "12zz"'],
    ['serial: "1a*"', 'routes[0].allow[0].serial: globs are not allowed in serial; give the full serial number'],
    ['fingerprint: abcd', 'routes[0].allow[0].fingerprint: must be a SHA-256 fingerprint (64 hex digits, colons allowed), got "abcd"'],
    ['fingerprint: "ab*"', 'routes[0].allow[0].fingerprint: globs are not allowed in fingerprint; give the full SHA-256 fingerprint'],
    ['spiffe: certgate.dev/x', 'routes[0].allow[0].spiffe: must start with "spiffe://", got "certgate.dev/x"'],
    ['cn: []', 'routes[0].allow[0].cn: must not be empty, got a list'],
    ['cn:', 'routes[0].allow[0].cn: must be a string, got nothing'],
    ['cn: true', 'routes[0].allow[0].cn: must be a string, got true'],
    ['ou: [a, {b: c}]', 'routes[0].allow[0].ou[1]: must be a string, got a map'],
  ])('refuses the matcher value %s', (entry, expected) => {
    const found = issues(withRoute(`name: a\nupstream: http://u:1\nallow:\n  - ${entry}`));
    expect(found.map((s) => s.replace(/^\S+ /, ''))).toEqual([expected]);
  });

  it.each([
    ['ftp://u:1', 'must use the http: scheme (certgate terminates TLS), got "ftp:"'],
    ['127.0.0.1:9001', 'must be a URL such as http://127.0.0.1:9001, got "127.0.0.1:9001"'],
    ['not a url', 'must be a URL such as http://127.0.0.1:9001, got "not a url"'],
    ['http://user:pw@u:1', 'must not contain a user name or password'],
    ['http://u:1/a?b=c', 'must not contain a query or fragment'],
    ['http://u:1/#x', 'must not contain a query or fragment'],
    ['http://u:99999', 'must be a URL such as http://127.0.0.1:9001, got "http://u:99999"'],
  ])('refuses the upstream %s', (url, message) => {
    const found = issues(withRoute(`name: a\nupstream: "${url}"\nallow: [{cn: x}]`));
    expect(found).toEqual([`/etc/certgate/x.yaml:5:15 routes[0].upstream: ${message}`]);
  });

  it('refuses an empty upstream list', () => {
    expect(issues(withRoute('name: a\nupstream: []\nallow: [{cn: x}]'))).toEqual([
      '/etc/certgate/x.yaml:5:15 routes[0].upstream: must not be empty, got a list',
    ]);
  });

  it.each([
    ['api', 'must start with "/", got "api"'],
    ['/a//b', 'must not contain "//", got "/a//b"'],
    ['/a/../b', 'must not contain "." or ".." segments, got "/a/../b"'],
    ['/a%2fb', 'must be a plain path without %, ?, #, backslashes or spaces, got "/a%2fb"'],
  ])('refuses the path prefix %s', (prefix, message) => {
    const found = issues(withRoute(`name: a\nmatch: {pathPrefix: "${prefix}"}\nupstream: http://u:1`));
    expect(found).toEqual([`/etc/certgate/x.yaml:5:25 routes[0].match.pathPrefix: ${message}`]);
  });

  it.each([
    ['headers: {prefix: x-cert}', 'headers.prefix: must be a header-name prefix ending in "-", got "x-cert"'],
    ['admin: {port: "9443"}', 'admin.port: must be a port number from 0 to 65535, got "9443"'],
    ['admin: {port: 8443}', 'admin.port: must differ from listen.port (both are 127.0.0.1:8443)'],
    ['admin: {enabled: yes}', 'admin.enabled: must be true or false, got "yes"'],
    ['est: {enabled: true}', 'est.caDir: required key is missing'],
    ['est: {renewWindowFraction: 1.5}', 'est.renewWindowFraction: must be a number between 0 and 1, got 1.5'],
    ['monitors: [{address: example.com}]', 'monitors[0].address: must be host:port such as example.com:443, got "example.com"'],
    ['revocation: {crl: {urls: [file:///x.crl]}}', 'revocation.crl.urls[0]: must be an http:// or https:// URL, got "file:///x.crl"'],
    ['revocation: {ocsp: on}', 'revocation.ocsp: must be true, false or a map, got "on"'],
    ['revocation: {ocsp: {enabeld: true}}', 'revocation.ocsp.enabeld: unknown key (did you mean "enabled"?)'],
    ['clientCertPolicy: {ownCerts: refused}', 'clientCertPolicy.ownCerts: must be one of "warn", "refuse" (did you mean "refuse"?), got "refused"'],
    ['limits: {maxBodySize: lots}', 'limits.maxBodySize: must be a size such as 512kb, 10mb or 1gb (a number means bytes), got "lots"'],
  ])('refuses %s', (extra, expected) => {
    expect(issues(withTop(extra + '\n')).map((s) => s.replace(/^\S+ /, ''))).toEqual([expected]);
  });

  it.each([
    ['port: 8443', 'port: 8443\n  host: "a b"', 'listen.host: must be a host name or IP address without a port, got "a b"'],
    ['clientCAs: ca.pem', 'clientCAs: []', 'tls.clientCAs: must not be empty, got a list'],
    ['cert: server.pem', 'cert: [a, b]', 'tls.cert: must be a string, got a list'],
  ])('refuses %s changed to %s', (from, to, expected) => {
    expect(issues(MINIMAL.replace(from, to)).map((s) => s.replace(/^\S+ /, ''))).toEqual([expected]);
  });
});

describe('loadConfig', () => {
  it('reports a missing file as a ConfigError at (file)', () => {
    const missing = join(REPO, 'config/does-not-exist.yaml');
    expect(() => loadConfig(missing)).toThrow(ConfigError);
    try {
      loadConfig(missing);
    } catch (err) {
      expect((err as ConfigError).issues[0]).toMatchObject({ file: missing, line: 1, col: 1, path: '(file)' });
      // Printed with the absolute path, whatever the working directory (check, start and reload agree).
      expect((err as ConfigError).issues.map(formatConfigIssue)).toEqual([`${missing}:1:1 (file): file not found`]);
      expect((err as ConfigError).code).toBe('CERTGATE_CONFIG_INVALID');
    }
  });
});

describe('diffRestartOnly', () => {
  const base = parseConfig(MINIMAL, FILE);
  it.each([
    ['nothing when only reloadable keys change', withTop('log: {level: debug}\n'), []],
    ['listen.port', MINIMAL.replace('port: 8443', 'port: 8444'), ['listen.port']],
    ['listen.host', MINIMAL.replace('port: 8443', 'port: 8443\n  host: 0.0.0.0'), ['listen.host']],
    ['admin keys and workers', withTop('admin: {enabled: false, host: ::1, port: 1}\nworkers: 2\n'), ['admin.enabled', 'admin.host', 'admin.port', 'workers']],
  ])('names %s', (_name, text, expected) => {
    expect(diffRestartOnly(base, parseConfig(text, FILE))).toEqual(expected);
  });
});
