// The validated, frozen configuration. Key names in the YAML are a public contract: add keys,
// never rename them. Every path here is already resolved against the config file's folder.

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';
export type RevocationMode = 'hard' | 'soft';

/** One allow/deny entry: all present fields must match. A list value means any of. */
export interface MatcherSpec {
  cn?: string[];
  o?: string[];
  ou?: string[];
  dns?: string[];
  uri?: string[];
  spiffe?: string[];
  email?: string[];
  fingerprint?: string[];
  serial?: string[];
  issuer?: string[];
  subject?: string[];
}
export const MATCHER_FIELDS = [
  'cn', 'o', 'ou', 'dns', 'uri', 'spiffe', 'email', 'fingerprint', 'serial', 'issuer', 'subject',
] as const;
export type MatcherField = (typeof MATCHER_FIELDS)[number];

export interface RouteConfig {
  name: string;
  match: {
    host?: string[]; // lowercase, no port; '*.example.com' allowed
    pathPrefix?: string; // default '/'
    methods?: string[]; // uppercase
  };
  upstream: string[]; // http://host:port[/base] targets, round-robin
  allow: MatcherSpec[];
  deny: MatcherSpec[];
  maxBodyBytes: number;
  /** Revocation failure mode for this route; undefined = per-source default. */
  revocationMode?: RevocationMode;
  timeouts: { upstreamMs: number };
  websocket: boolean;
}

export interface Config {
  /** Absolute path of the YAML file this came from. */
  readonly file: string;
  readonly dir: string;
  listen: { host: string; port: number };
  tls: {
    cert: string;
    key: string;
    clientCAs: string[];
    minVersion: TlsVersion;
    /** 'request': answer each request with a JSON refusal then close; 'handshake': destroy at once. */
    refuse: 'request' | 'handshake';
    ciphers?: string;
    /** Session ticket key rotation interval. Keys are kept across reloads. */
    ticketRotateMs: number;
    /** Start even when the server certificate has expired (refused by default). */
    allowExpiredServerCert: boolean;
  };
  timeouts: {
    handshakeMs: number;
    headersMs: number; // slow clients are cut off (server.headersTimeout)
    requestMs: number; // whole request (server.requestTimeout), 0 = off
    idleMs: number; // keep-alive idle
    upstreamMs: number; // waiting for the upstream's response headers
    upstreamConnectMs: number;
    shutdownMs: number; // graceful drain deadline on SIGTERM
  };
  limits: {
    maxConnections: number;
    maxBodyBytes: number; // default per route
    maxHeaderBytes: number;
  };
  routes: RouteConfig[];
  headers: { xfcc: boolean; prefix: string; forwarded: boolean };
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'; access: boolean; file?: string; accessFile?: string };
  admin: {
    enabled: boolean;
    host: string;
    port: number;
    tokenFile: string;
    /** Optional mTLS admin listener: admin client certs must match this allow list. */
    tls?: { cert: string; key: string; clientCAs: string[]; allow: MatcherSpec[] };
  };
  revocation: {
    dataDir: string; // durable local revocation list lives here
    crl: {
      files: string[];
      urls: string[];
      distributionPoints: boolean;
      refreshMs: number;
      timeoutMs: number;
      maxBytes: number;
      mode?: RevocationMode; // default: hard for files, soft for urls
    };
    ocsp: {
      enabled: boolean;
      responder?: string; // overrides AIA
      timeoutMs: number;
      cacheSize: number;
      mode?: RevocationMode; // default soft
    };
    /** How often open connections are swept for revocation changes. */
    recheckMs: number;
  };
  clientCertPolicy: {
    minRsaBits: number;
    curves: string[]; // e.g. P-256, P-384, P-521
    forbiddenSigAlgs: string[]; // substrings, case-insensitive: sha1, md5
    requireClientAuthEku: boolean;
    rejectCaLeaf: boolean;
    maxValidityDays?: number;
    maxChainDepth: number;
    /** For certgate's own server cert and CA bundles: warn or refuse to load. */
    ownCerts: 'warn' | 'refuse';
  };
  expiry: { warnDays: number[]; checkEveryMs: number };
  inventory: { maxEntries: number; file?: string; perClientSeries: number };
  monitors: { address: string; servername?: string; intervalMs: number; ca?: string }[];
  workers: number; // 1 = no cluster; 'auto' resolves to availableParallelism()
  est?: {
    enabled: boolean;
    caDir: string;
    renewWindowDays: number; // renewal only within this many days of expiry (or fraction)
    renewWindowFraction: number; // or the last fraction of lifetime, whichever is wider
    rateLimitPerHour: number;
    days: number;
  };
  watch: { enabled: boolean; debounceMs: number };
}
