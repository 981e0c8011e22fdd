// The certgate config, declared once. Each key: its type, default, one-line description (the
// text of docs/configuration.md), whether a reload may change it, old spellings. Adding a key is
// one line here; the types, the reader, the restart-only list and the reference follow.
// YAML key names are a public contract: add keys, add aliases, never rename.

import { isMap, isScalar, type YAMLMap } from 'yaml';
import { inherit, list, object, optional, refine, required, section, withDefault, type Infer, type Type } from './schema.js';
import {
  bindHost, bool, cidr, days, duration, fetchUrl, filePath, fraction, headerName, headerPrefix, hostPort, int, matchHost,
  method, oneOf, pathPrefix, port, redisUrl, routeName, secretUrl, serial, size, str, upstreamUrl, workers,
} from './values.js';
import { adminMatcher, allowEntry, matchers } from './matchers.js';
import { offsetOf } from './yaml.js';

const MB = 1024 * 1024;
const S = 1000;
const H = 3600 * S;

const values = (t: Type<string>) => list(t, { scalar: true, nonEmpty: true });

export { adminRoles, matcherShape } from './matchers.js';

/** What alerts.webhooks[].events may name (src/alerts/). */
export const ALERT_EVENTS = ['cert_expiring', 'cert_expired', 'crl_stale', 'monitor_problem', 'reload_failed', 'revocation_changed', 'store_unavailable'] as const;

// ---------------------------------------------------------------------------------------------
// Routes

const revocationMode = oneOf(['hard', 'soft']);

/** The offset of a map item's `name` value, for duplicate-name errors. */
function nameAt(node: unknown, fallback: number): number {
  if (!isMap(node)) return fallback;
  const pair = (node as YAMLMap).items.find((p) => isScalar(p.key) && p.key.value === 'name');
  return pair ? offsetOf(pair.value, fallback) : fallback;
}

const route = object(
  {
    name: required(routeName, 'Unique name (`A–Z a–z 0–9 _ . -`), used in logs, metrics and errors.'),
    match: section(
      object({
        host: optional(list(matchHost, { scalar: true, nonEmpty: true }), 'Host name(s) matched against `Host` (no port; `*.example.com` is one label); `Host` must agree with the TLS server name (421 otherwise). Default: any host.'),
        pathPrefix: withDefault(pathPrefix, '/', 'Path prefix matched on segment boundaries (`/orders` matches `/orders/1`, not `/ordersX`); a trailing `/` is dropped.'),
        methods: optional(list(method, { scalar: true, nonEmpty: true }), 'HTTP method(s), uppercased. Default: any method.'),
      }),
      'Which requests this route handles: host, path prefix and method must all match.',
    ),
    upstream: required(list(upstreamUrl, { scalar: true, nonEmpty: true }), '`http://host[:port][/basepath]`, or a list of them (round-robin); no user info, query or fragment.'),
    allow: withDefault(list(allowEntry), [], 'Matcher entries; a request is forwarded when the identity matches one of them (an empty list lets nobody in). `{ anonymous: true }` and `{ apiKey: NAME }` admit requests without a certificate.'),
    deny: withDefault(matchers, [], 'Matcher entries checked before `allow`; a match refuses the request.'),
    shadow: optional(
      object({
        allow: withDefault(matchers, [], 'The candidate `allow` list.'),
        deny: withDefault(matchers, [], 'The candidate `deny` list.'),
      }),
      'A candidate policy for this route, decided beside the real one on every request without changing the outcome: where they differ, a `policy_shadow` log line and `certgate_policy_shadow_total` record it (docs/policy.md).',
    ),
    maxBodySize: withDefault(size, inherit('limits.maxBodySize'), 'Largest request body on this route (413 `payload_too_large`).', { docDefault: '`limits.maxBodySize`' }),
    revocation: optional(revocationMode, 'When revocation status is unknown on this route: `hard` refuses with 403 `revocation_unknown`, `soft` lets it through. Default: the source\'s mode.'),
    timeouts: section(
      object({
        upstream: withDefault(duration, inherit('timeouts.upstream'), 'Upstream response timeout on this route.', { docDefault: '`timeouts.upstream`' }),
      }),
      'Per-route timeouts.',
    ),
    websocket: withDefault(bool, true, 'Allow `Upgrade` (WebSocket) requests on this route.'),
    upstreamProtocol: optional(oneOf(['http1', 'h2c']), '`http1`: HTTP/1.1 to the upstream (trailers dropped); `h2c`: cleartext HTTP/2 with trailers, for gRPC. See docs/http2.md. Default: `http1`.'),
  },
  { expect: 'a map with name, match, upstream and allow' },
);

const routes = list(route, {
  nonEmpty: true,
  check: (values, items, ctx) => {
    const firstAt = new Map<string, number>();
    values.forEach((r, i) => {
      const name = r?.name;
      if (name === undefined) return;
      const at = nameAt(items[i]!.node, items[i]!.at);
      const first = firstAt.get(name);
      if (first === undefined) firstAt.set(name, at);
      else ctx.report(at, `${items[i]!.path}.name`, `duplicate route name "${name}" (first used at line ${ctx.lineOf(first)})`);
    });
  },
});

// ---------------------------------------------------------------------------------------------
// The root

export const XFCC_MODES = ['sanitize', 'sanitize_set', 'append_forward', 'forward_only'] as const;
export const XFCC_DETAILS = ['By', 'Hash', 'Subject', 'URI', 'DNS', 'Cert', 'Chain'] as const;
export const TRAEFIK_INFO = ['subject', 'issuer', 'notBefore', 'notAfter', 'sans', 'serial'] as const;
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const paths = list(filePath, { scalar: true, nonEmpty: true });
const strings = list(str, { scalar: true });

export const configShape = {
  listen: section(
    object({
      host: withDefault(bindHost, '127.0.0.1', 'Address of the mTLS listener: host name or IP literal, no port (`0.0.0.0` or `::` for all interfaces).', { restart: true }),
      port: required(port, 'TCP port of the mTLS listener (0 picks a free port).', { restart: true }),
      http2: withDefault(bool, false, 'Offer HTTP/2 (ALPN `h2`) beside HTTP/1.1 on the mTLS listener. See docs/http2.md.', { restart: true }),
      proxyProtocol: optional(
        object({ trusted: required(list(cidr, { scalar: true, nonEmpty: true }), 'Networks of the load balancers (`10.0.0.0/8`, `::1/128`): a connection from one must start with a PROXY header (closed otherwise); any other peer that sends one is closed.') }),
        'Read a PROXY protocol v1 or v2 header before TLS; the client address it names is the one logged, forwarded (`X-Forwarded-For`) and recorded. Reloadable: new connections get the new list. See docs/operations.md. Default: off.',
      ),
    }),
    'The mTLS listener.',
  ),
  tls: section(
    object({
      cert: required(filePath, 'Server certificate chain (PEM), leaf first.'),
      key: required(filePath, 'Server private key (PEM).'),
      clientCAs: required(paths, 'PEM bundle(s) of the CAs that client certificates must chain to.'),
      minVersion: withDefault(oneOf(['TLSv1.2', 'TLSv1.3']), 'TLSv1.2', 'Lowest TLS version accepted.'),
      refuse: withDefault(oneOf(['request', 'handshake']), 'request', 'A missing or untrusted client certificate: `request` completes the handshake and answers each request with a JSON refusal; `handshake` destroys the connection at once.'),
      profile: withDefault(oneOf(['intermediate', 'modern']), 'intermediate', '`intermediate`: TLS 1.2 with ECDHE and AEAD suites only (Mozilla\'s intermediate profile, no CBC) and TLS 1.3; `modern`: TLS 1.3 only (overrides `minVersion`). See docs/tls.md.'),
      ciphers: optional(str, 'OpenSSL cipher list replacing the profile\'s TLS 1.2 suites; TLS 1.3 suites stay OpenSSL\'s unless the list names some (`TLS_…`). A name this OpenSSL does not know is an error. Default: the profile\'s.'),
      ecdhCurves: optional(str, 'Key-exchange groups, `:`-separated, in order of preference; a curve this OpenSSL does not know is an error. Default: `X25519:prime256v1:secp384r1`.'),
      requireCompleteChain: withDefault(bool, false, 'Refuse to load a `cert` file that lacks intermediates between the leaf and a self-signed root (warned about otherwise).'),
      ocspStapling: optional(bool, 'Staple an OCSP response for the server certificate, fetched from its issuer\'s responder and refreshed before it expires. Default: on when the certificate has an AIA OCSP URL.'),
      ticketRotate: withDefault(duration, 12 * H, 'How often session-ticket keys rotate (kept across reloads).'),
      allowExpiredServerCert: withDefault(bool, false, 'Start even if the server certificate has expired (refused by default).'),
    }),
    'Server certificate and client trust.',
  ),
  timeouts: section(
    object({
      handshake: withDefault(duration, 10 * S, 'Time allowed for the TLS handshake.'),
      headers: withDefault(duration, 10 * S, 'Time allowed to receive the request headers (slow clients are cut off).'),
      request: withDefault(duration, 60 * S, 'Time allowed to receive the whole request; `0` turns it off.'),
      idle: withDefault(duration, 60 * S, 'Keep-alive idle time between requests.'),
      upstream: withDefault(duration, 30 * S, 'Time to wait for the upstream\'s response headers (routes can override it).'),
      upstreamConnect: withDefault(duration, 5 * S, 'Time to wait for a connection to the upstream.'),
      shutdown: withDefault(duration, 15 * S, 'On SIGTERM, how long in-flight requests get to finish.'),
    }),
    'Timeouts; a bare number means milliseconds.',
  ),
  limits: section(
    object({
      maxConnections: withDefault(int(1), 10_000, 'Most client connections open at once.'),
      maxBodySize: withDefault(size, 10 * MB, 'Largest request body (routes can override it); larger get 413 `payload_too_large`.'),
      maxHeaderSize: withDefault(size, 16 * 1024, 'Largest total size of the request headers; larger get 431 `headers_too_large`.'),
      http2: section(
        object({
          maxConcurrentStreams: withDefault(int(1, 2 ** 31 - 1), 100, 'Most streams open at once per HTTP/2 connection (advertised in SETTINGS; more are refused).', { restart: true }),
          maxHeaderListSize: withDefault(size, inherit('limits.maxHeaderSize'), 'Largest decoded header list of an HTTP/2 request (HPACK bombs stop here).', { docDefault: '`limits.maxHeaderSize`', restart: true }),
          maxHeaderPairs: withDefault(int(4), 128, 'Most header fields in an HTTP/2 request.', { restart: true }),
          maxResetsPerSecond: withDefault(int(1), 100, 'Streams a client may cancel per second on one connection (rapid reset, CVE-2023-44487); beyond it the connection gets GOAWAY `ENHANCE_YOUR_CALM`.', { restart: true }),
          maxControlFramesPerSecond: withDefault(int(1), 100, 'PING and SETTINGS frames a client may send per second on one connection; beyond it GOAWAY `ENHANCE_YOUR_CALM`.', { restart: true }),
          maxInvalidFrames: withDefault(int(0), 100, 'Invalid frames tolerated on one connection before it is closed.', { restart: true }),
          maxRejectedStreams: withDefault(int(0), 100, 'Streams refused (over the concurrency limit) tolerated on one connection before it is closed.', { restart: true }),
          streamIdleTimeout: withDefault(duration, inherit('timeouts.idle'), 'An HTTP/2 stream with no frame either way for this long is reset (`CANCEL`).', { docDefault: '`timeouts.idle`', restart: true }),
          sessionIdleTimeout: withDefault(duration, inherit('timeouts.idle'), 'An HTTP/2 connection with no frame for this long is closed (GOAWAY).', { docDefault: '`timeouts.idle`', restart: true }),
        }),
        'HTTP/2 connections (with `listen.http2`); restart-only like the listener.',
      ),
    }),
    'Limits; a bare number of bytes or `512kb`, `10mb`, `1gb`.',
  ),
  routes: required(routes, 'Routes, tried in order: the first whose host, path prefix and method match handles the request.'),
  headers: section(
    object({
      xfcc: withDefault(bool, true, 'Set `x-forwarded-client-cert` in Envoy\'s format (a client-sent one is always removed).'),
      prefix: withDefault(headerPrefix, 'x-client-cert-', 'Prefix of the per-field identity headers (client-sent ones are always removed).'),
      forwarded: withDefault(bool, true, 'Set `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`.'),
      xfccMode: optional(oneOf(XFCC_MODES), 'Envoy\'s `forward_client_cert_details`: `sanitize` (drop, set none), `sanitize_set` (drop, set ours), `append_forward` (append ours to a trusted proxy\'s), `forward_only` (pass a trusted proxy\'s, set none). Default: `sanitize_set` (`sanitize` with `xfcc: false`); not with `xfcc`.'),
      xfccDetails: withDefault<(typeof XFCC_DETAILS)[number][]>(list(oneOf(XFCC_DETAILS), { scalar: true, nonEmpty: true }), ['Hash', 'Subject', 'URI', 'DNS'], 'XFCC keys to set, like Envoy\'s `set_current_client_cert_details`: `By`, `Hash`, `Subject`, `URI` (every URI SAN), `DNS`, `Cert`, `Chain`.'),
      trustedProxies: withDefault(matchers, [], 'Matcher entries for proxies in front whose XFCC `append_forward` and `forward_only` keep (e.g. `{ spiffe: spiffe://acme/edge }`); any other client\'s XFCC is removed.'),
      rfc9440: withDefault(bool, false, 'Set RFC 9440 `Client-Cert` (the leaf) and `Client-Cert-Chain` (the intermediates); client-sent ones are always removed.'),
      traefik: optional(
        object({
          pem: withDefault(bool, false, 'Set `X-Forwarded-Tls-Client-Cert`: the presented certificates, base64 DER, comma-separated.'),
          info: withDefault<(typeof TRAEFIK_INFO)[number][]>(list(oneOf(TRAEFIK_INFO), { scalar: true }), [], 'Set `X-Forwarded-Tls-Client-Cert-Info` with these fields: `subject`, `issuer`, `notBefore`, `notAfter`, `sans`, `serial`.'),
        }),
        'Traefik `passTLSClientCert` headers, for backends moving off Traefik; client-sent ones are always removed.',
      ),
    }, {
      check: (h, map, ctx) => {
        if (map.has('xfcc') && map.has('xfccMode')) ctx.report(map.posOf('xfccMode'), 'headers.xfccMode', 'set either xfcc or xfccMode, not both (xfcc: false is xfccMode: sanitize)');
      },
    }),
    'What the upstream receives.',
  ),
  apiKeys: optional(
    object({
      file: required(filePath, 'YAML list of `- { name, sha256, expires }` (the key\'s SHA-256 in hex, never the key); reloaded with the config.'),
      header: withDefault(headerName, 'x-api-key', 'Request header that carries the key; removed from every forwarded request.'),
      forwardHeader: withDefault(headerName, 'x-client-api-key', 'Header that tells the upstream the key\'s name (a client-sent one is always removed).'),
    }),
    'API keys for clients still moving to certificates (`{ apiKey: NAME }` allow entries); absent = off. See docs/policy.md.',
  ),
  log: section(
    object({
      level: withDefault(oneOf(LOG_LEVELS), 'info', 'Log level.'),
      access: withDefault(bool, true, 'Write one access-log line per request.'),
      file: optional(filePath, 'Write the log to this file. Default: stdout.'),
      accessFile: optional(filePath, 'Write access lines to this separate file. Default: with the log.'),
    }),
    'Logging.',
  ),
  admin: section(
    object(
      {
        enabled: withDefault(bool, true, 'Run the admin listener (health, readiness, metrics, reload, revocations, inventory).', { restart: true }),
        host: withDefault(bindHost, '127.0.0.1', 'Address of the admin listener.', { restart: true }),
        port: withDefault(port, 9443, 'Port of the admin listener; must differ from `listen.port` on the same host.', { restart: true }),
        tokenFile: withDefault(filePath, (ctx) => ctx.path('admin.token'), 'File holding the bearer token for admin mutations (generated, mode 0600).', { docDefault: '`admin.token` beside the config file' }),
        readTokenFile: optional(filePath, 'A second bearer token that allows only GET endpoints (e.g. for a dashboard or a scraper); the `tokenFile` token is accepted for reads too.'),
        publicMetrics: withDefault(bool, true, '`/metrics` needs no credentials even where other reads do (plain HTTP off loopback); `false` protects it like the other reads.'),
        tls: optional(
          object({
            cert: required(filePath, 'Admin server certificate (PEM).'),
            key: required(filePath, 'Its private key (PEM).'),
            clientCAs: required(paths, 'CA bundle(s) for admin client certificates; revocation and expiry apply to them as to proxy clients.'),
            allow: required(list(adminMatcher, { nonEmpty: true }), 'Matcher entries that admin client certificates must match, each with an optional `role`: `admin` (default: every endpoint) or `read` (GET endpoints only).'),
            tokenAlso: withDefault(bool, true, 'Also accept the bearer token (over this TLS listener, for scripts); `false`: client certificates only.'),
          }),
          'Serve the admin API over HTTPS with required client certificates (mTLS); without it the admin API is plain HTTP. Adding or removing it needs a restart; its files, allow list and `tokenAlso` reload.',
        ),
        client: section(
          object({
            url: optional(str, 'Admin API base URL the CLI uses (`--admin`). Default: from `admin.host`/`admin.port`, `https://` with `admin.tls`.'),
            cert: optional(filePath, 'Client certificate (PEM) the CLI presents to an mTLS admin listener (`--cert`).'),
            key: optional(filePath, 'Its private key (`--key`).'),
            ca: optional(filePath, 'CA bundle the CLI verifies the admin server certificate with (`--ca`).'),
          }),
          'What the CLI (`revoke`, `revocations`, `inventory`, `ca revoke --admin`) uses with `--config` to reach the admin API; not read by the server.',
        ),
      },
      {
        check: (admin, map, ctx) =>
          ctx.after.push(() => {
            const listen = (ctx.root as { listen?: { host?: string; port?: number } }).listen;
            if (admin.enabled && admin.port !== 0 && admin.port === listen?.port && admin.host === listen.host) {
              ctx.report(map.posOf('port'), 'admin.port', `must differ from listen.port (both are ${listen.host}:${listen.port})`);
            }
          }),
      },
    ),
    'The admin API (plain HTTP on loopback by default; mTLS with `admin.tls`).',
  ),
  revocation: section(
    object({
      dataDir: withDefault(filePath, (ctx) => ctx.path('data'), 'Folder of the durable local revocation list.', { docDefault: '`data` beside the config file', restart: true }),
      crl: section(
        object({
          files: withDefault(list(filePath, { scalar: true }), [], 'CRL file(s), PEM or DER, verified against `tls.clientCAs`; re-read on every reload.'),
          urls: withDefault(list(fetchUrl, { scalar: true }), [], 'CRL URL(s) fetched at start, then refreshed.'),
          distributionPoints: withDefault(bool, false, 'Also fetch the CRL named in each client certificate\'s distribution points.'),
          refresh: withDefault(duration, H, 'How often fetched CRLs are refreshed (sooner before their nextUpdate).'),
          timeout: withDefault(duration, 5 * S, 'Time allowed for one CRL fetch.'),
          maxSize: withDefault(size, 10 * MB, 'Largest CRL accepted.'),
          mode: optional(revocationMode, 'When a CRL is missing or stale: `hard` refuses, `soft` lets through. Default: `hard` for files, `soft` for URLs.'),
        }),
        'Certificate revocation lists.',
      ),
      ocsp: section(
        object(
          {
            enabled: withDefault(bool, false, 'Check client certificates with OCSP (`ocsp: true` is short for this).'),
            responder: optional(fetchUrl, 'Responder URL to use instead of the certificate\'s AIA.'),
            timeout: withDefault(duration, 3 * S, 'Time allowed for one OCSP request.'),
            cacheSize: withDefault(int(0), 10_000, 'Most OCSP answers cached (each until its nextUpdate).'),
            mode: optional(revocationMode, 'When the responder cannot be reached: `hard` refuses, `soft` lets through. Default: `soft`.'),
          },
          { boolShorthand: 'enabled' },
        ),
        'OCSP; `true`, `false` or a map.',
      ),
      recheck: withDefault(
        duration,
        S,
        'Polling interval for revocation changes nobody announces: entries another process (`certgate revoke --offline`) wrote to the list file, and cached OCSP answers passing their nextUpdate. Open connections are re-checked as soon as a change is seen.',
      ),
    }),
    'Revocation sources.',
  ),
  clientCertPolicy: section(
    object({
      minRsaBits: withDefault(int(1024), 2048, 'Smallest RSA key accepted.'),
      curves: withDefault(strings, ['P-256', 'P-384', 'P-521'], 'EC curves accepted.'),
      forbiddenSigAlgs: withDefault(
        refine(strings, (l) => l.map((s) => s.toLowerCase())),
        ['sha1', 'md5'],
        'Signature algorithms refused (case-insensitive substring of the algorithm name).',
      ),
      requireClientAuthEku: withDefault(bool, true, 'A certificate with an extended key usage must include clientAuth.'),
      rejectCaLeaf: withDefault(bool, true, 'Refuse a client certificate that is itself a CA.'),
      maxValidityDays: optional(days(1), 'Refuse certificates valid for longer than this (days, or `90d`). Default: no limit.'),
      maxChainDepth: withDefault(int(1, 100), 4, 'CA certificates above the leaf, trust anchor included (leaf under a root = 1).'),
      ownCerts: withDefault(oneOf(['warn', 'refuse']), 'warn', 'certgate\'s own server chain and client CA bundles breaking this policy: `warn` or `refuse` to load.'),
    }),
    'What a client certificate must look like (403 `weak_certificate` otherwise).',
  ),
  expiry: section(
    object({
      warnDays: withDefault(refine(list(days(0)), (l) => l.slice().sort((a, b) => b - a)), [30, 7, 1], 'Warn this many days before own certificates and CAs expire (days, or `7d`).'),
      checkEvery: withDefault(duration, H, 'How often expiry is checked.'),
    }),
    'Expiry warnings.',
  ),
  alerts: section(
    object({
      webhooks: withDefault(
        list(
          object(
            {
              url: optional(secretUrl, 'Where alerts are POSTed (http or https); a secret, never logged or shown. Give `url` or `urlFile`.'),
              urlFile: optional(filePath, 'File holding the URL (one line), read at start and on reload; keeps the secret out of the config.'),
              format: withDefault(oneOf(['json', 'slack']), 'json', '`json`: certgate\'s documented alert object (docs/monitoring.md); `slack`: a Slack incoming-webhook body (Mattermost and others accept it too).'),
              events: optional(list(oneOf(ALERT_EVENTS), { scalar: true, nonEmpty: true }), 'Events sent to this webhook. Default: all of them.'),
              timeout: withDefault(duration, 5 * S, 'Time allowed for one delivery attempt (connect, headers and body).'),
              retries: withDefault(int(0, 20), 5, 'Attempts after a failed one (5xx, 429, network error, timeout); other 4xx answers are not retried.'),
              backoff: withDefault(duration, S, 'Wait before the first retry, doubled for each next one (at most 5m).'),
            },
            {
              expect: 'a map with url or urlFile',
              check: (w, map, ctx) => {
                if (map.has('url') === map.has('urlFile')) ctx.report(map.at, map.path, 'give exactly one of url and urlFile');
              },
            },
          ),
        ),
        [],
        'Webhooks that receive alerts: certificates expiring or expired, stale CRLs, failing monitors, failed reloads, revocation changes, the store unreachable.',
      ),
      clientSeenWithin: withDefault(days(1), 30, 'Client certificates in the inventory get expiry alerts when seen within this many days (days, or `30d`).'),
    }),
    'Alerts sent to people (docs/monitoring.md); thresholds are `expiry.warnDays`.',
  ),
  inventory: section(
    object({
      maxEntries: withDefault(int(0), 10_000, 'Most client certificates remembered (least recently seen dropped first).'),
      file: optional(filePath, 'File keeping the inventory across restarts (with workers: `FILE.workerN`). Default: memory only.'),
      perClientSeries: withDefault(int(0), 1_000, 'Most per-client metric series.'),
    }),
    'The client certificates certgate has seen.',
  ),
  monitors: withDefault(
    list(
      object(
        {
          address: required(hostPort, '`host:port` to check (IPv6 as `[::1]:443`).'),
          servername: optional(str, 'SNI name to send. Default: the host of `address`.'),
          interval: withDefault(duration, H, 'How often to check the endpoint.'),
          ca: optional(filePath, 'CA bundle to verify the endpoint. Default: system CAs.'),
        },
        { expect: 'a map with address' },
      ),
    ),
    [],
    'TLS endpoints whose certificates certgate watches.',
  ),
  store: section(
    object({
      instance: optional(str, 'This instance\'s name in the fleet (inventory, alerts, logs). Default: `hostname:port` of the mTLS listener.', { restart: true }),
      redis: optional(
        object(
          {
            url: required(redisUrl, '`redis://host:6379/0`, or `rediss://` for TLS (recommended between hosts). No password in the URL.'),
            keyPrefix: withDefault(str, 'certgate:', 'Prefix of every key; instances with the same Redis and prefix are one fleet.'),
            username: optional(str, 'ACL user name (Redis 6+).'),
            passwordFile: optional(filePath, 'File holding the password (required for a Redis that is not on loopback).'),
            tls: optional(
              object({
                ca: optional(filePath, 'CA bundle to verify the Redis server. Default: system CAs.'),
                cert: optional(filePath, 'Client certificate for Redis TLS client authentication.'),
                key: optional(filePath, 'Its private key.'),
                servername: optional(str, 'SNI and name to verify. Default: the URL\'s host.'),
              }),
              'TLS options for a `rediss://` URL.',
            ),
          },
          {
            check: (redis, map, ctx) => {
              if (redis.url === undefined) return; // already reported
              const host = new URL(redis.url).hostname.replace(/^\[|\]$/g, '');
              const loopback = host === 'localhost' || host === '::1' || host.startsWith('127.');
              if (!loopback && redis.passwordFile === undefined) {
                ctx.report(map.posOf('url'), `${map.path}.url`, 'a Redis that is not on loopback needs store.redis.passwordFile (write access to its keys is enrollment and revocation authority)');
              }
            },
          },
        ),
        'Shared state in Redis: revocations, inventory, CA index, enrollment tokens, rate limits. Absent: the embedded file store.',
        { restart: true },
      ),
    }),
    'Where state shared by instances lives (the file store by default; Redis for a fleet).',
  ),
  workers: withDefault(workers, 1, 'Worker processes (node:cluster); `auto` = available parallelism, `1` = no cluster.', { restart: true }),
  watch: section(
    object({
      enabled: withDefault(bool, true, 'Reload when the config file changes.'),
      debounce: withDefault(duration, 250, 'Wait this long after the last change before reloading.'),
    }),
    'Reload on file change.',
  ),
  est: optional(
    object(
      {
        enabled: withDefault(bool, false, 'Serve the enrollment and renewal endpoints.'),
        caDir: withDefault(filePath, (ctx) => ctx.path('ca'), 'Folder of the issuing CA (certificate, key, index); required when enabled.', { docDefault: '`ca` beside the config file' }),
        renewWindowDays: withDefault(days(0), 10, 'Renewal opens this many days before expiry (days, or `10d`)…'),
        renewWindowFraction: withDefault(fraction, 0.34, '…or in the last fraction of the lifetime, whichever is wider.'),
        rateLimitPerHour: withDefault(int(1), 10, 'Most enrollment or renewal requests per client per hour.'),
        days: withDefault(days(1), 30, 'Validity of issued certificates (days, or `30d`).'),
      },
      { check: (est, map) => (est.enabled && !map.has('caDir') ? map.missing('caDir') : undefined) },
    ),
    'Certificate enrollment and renewal (EST); absent = off.',
  ),
};

export const configType = object(configShape);

/** The config as the schema reads it, before `file` and `dir` are added. */
export type ConfigValues = Infer<typeof configShape>;
