// YAML -> validated, frozen Config. The YAML tree is walked directly (not via toJS) so every
// error carries the line and column of the node it is about; all errors are collected in one
// pass and thrown together as one ConfigError.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type YAMLMap } from 'yaml';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { MAX_TIMER_MS, parseDuration, parseSize, UNIT_BYTES, UNIT_MS } from '../util/duration.js';
import { canonicalFingerprint, canonicalSerial } from '../identity/canonical.js';
import {
  MATCHER_FIELDS,
  type Config,
  type MatcherField,
  type MatcherSpec,
  type RevocationMode,
  type RouteConfig,
  type TlsVersion,
} from './types.js';

// ---------------------------------------------------------------------------------------------
// Reading the YAML tree with positions

class Ctx {
  readonly issues: ConfigIssue[] = [];
  readonly file: string;
  readonly dir: string;
  readonly #lc: LineCounter;
  readonly #doc: Document;
  constructor(file: string, lc: LineCounter, doc: Document) {
    this.file = file;
    this.dir = dirname(file);
    this.#lc = lc;
    this.#doc = doc;
  }
  report(offset: number, path: string, message: string): void {
    const { line, col } = this.#lc.linePos(offset);
    this.issues.push({ file: this.file, line: Math.max(line, 1), col: Math.max(col, 1), path, message });
  }
  lineOf(offset: number): number {
    return Math.max(this.#lc.linePos(offset).line, 1);
  }
  /** Resolves aliases; an alias to nothing is reported and yields undefined. */
  deref(node: unknown, at: number, path: string): unknown {
    if (!isAlias(node)) return node;
    const target = node.resolve(this.#doc);
    if (target === undefined) this.report(at, path, `unknown alias *${node.source}`);
    return target;
  }
  path(p: string): string {
    return resolve(this.dir, p);
  }
}

/** A value node with where it is and what it is called. */
interface Val {
  node: unknown;
  at: number;
  path: string;
}

type Conv<T> = (ctx: Ctx, v: Val) => T | undefined;

function offsetOf(node: unknown, fallback: number): number {
  const range = (node as { range?: [number, number, number] | null } | null)?.range;
  return range ? range[0] : fallback;
}

function isNull(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && node.value === null);
}

function kindOf(node: unknown): string {
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isNull(node)) return 'nothing';
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(node.source ?? v);
  }
  return 'an unsupported value';
}

function bad<T>(ctx: Ctx, v: Val, expected: string): T | undefined {
  ctx.report(v.at, v.path, `${expected}, got ${kindOf(v.node)}`);
  return undefined;
}

function keyPath(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The closest known word at edit distance <= 2 (case-insensitive), else one it begins, if any. */
function didYouMean(word: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  // `path` for `pathPrefix`: a truncated key is a likely slip too.
  best ??= word.length >= 3 ? known.find((k) => k.toLowerCase().startsWith(word.toLowerCase())) : undefined;
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

/**
 * One YAML map being read: unknown and duplicate keys are reported when it is opened; each
 * known key is then read once with a converter. A key with an empty (null) value counts as
 * absent, so `file:` or `file: ~` means "use the default".
 */
class Section {
  readonly path: string;
  /** Offset used for errors about keys that are missing from this map. */
  readonly at: number;
  readonly #ctx: Ctx;
  readonly #vals = new Map<string, Val & { keyAt: number }>();

  constructor(ctx: Ctx, path: string, at: number, node: YAMLMap | undefined, known: readonly string[]) {
    this.#ctx = ctx;
    this.path = path;
    this.at = at;
    if (!node) return;
    for (const pair of node.items) {
      const keyAt = offsetOf(pair.key, at);
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof key !== 'string') {
        ctx.report(keyAt, path || '(root)', `keys must be strings, got ${kindOf(pair.key)}`);
        continue;
      }
      const p = keyPath(path, key);
      const seen = this.#vals.get(key);
      if (seen) {
        ctx.report(keyAt, p, `duplicate key (first set at line ${ctx.lineOf(seen.keyAt)})`);
        continue;
      }
      if (!known.includes(key)) {
        ctx.report(keyAt, p, `unknown key${didYouMean(key, known)}`);
        continue;
      }
      const valAt = offsetOf(pair.value, keyAt);
      const node = ctx.deref(pair.value, valAt, p);
      this.#vals.set(key, { node, at: valAt, path: p, keyAt });
    }
  }

  /** The raw value including explicit nulls (for places where empty is itself an error). */
  present(key: string): Val | undefined {
    return this.#vals.get(key);
  }

  has(key: string): boolean {
    const v = this.#vals.get(key);
    return v !== undefined && !isNull(v.node);
  }

  /** Where the key's value is, or where the map is when the key is absent. */
  posOf(key: string): number {
    return this.#vals.get(key)?.at ?? this.at;
  }

  get count(): number {
    return this.#vals.size;
  }

  opt<T>(key: string, conv: Conv<T>): T | undefined {
    const v = this.#vals.get(key);
    if (!v || isNull(v.node)) return undefined;
    return conv(this.#ctx, v);
  }

  get<T>(key: string, conv: Conv<T>, dflt: T): T {
    return this.opt(key, conv) ?? dflt;
  }

  /** A required key; the placeholder is returned on error and never escapes (we throw). */
  req<T>(key: string, conv: Conv<T>, placeholder: T): T {
    const v = this.#vals.get(key);
    if (!v || isNull(v.node)) {
      this.#ctx.report(v ? v.keyAt : this.at, keyPath(this.path, key), 'required key is missing');
      return placeholder;
    }
    return conv(this.#ctx, v) ?? placeholder;
  }

  /** A nested map; absent or empty gives an empty Section so defaults apply. */
  sub(key: string, known: readonly string[]): Section {
    const v = this.#vals.get(key);
    const p = keyPath(this.path, key);
    if (!v || isNull(v.node)) return new Section(this.#ctx, p, v ? v.keyAt : this.at, undefined, known);
    if (!isMap(v.node)) {
      bad(this.#ctx, v, 'must be a map');
      return new Section(this.#ctx, p, v.at, undefined, known);
    }
    return new Section(this.#ctx, p, v.at, v.node, known);
  }
}

// ---------------------------------------------------------------------------------------------
// Converters

const str: Conv<string> = (ctx, v) => {
  if (!isScalar(v.node)) return bad(ctx, v, 'must be a string');
  const val = v.node.value;
  if (typeof val === 'string') {
    if (val.trim() === '') return bad(ctx, v, 'must not be empty');
    return val;
  }
  // A plain 12345 or 0x1f where a string is expected (a CN, a serial) means the text as written.
  if (typeof val === 'number' || typeof val === 'bigint') return v.node.source ?? String(val);
  return bad(ctx, v, 'must be a string');
};

const bool: Conv<boolean> = (ctx, v) =>
  isScalar(v.node) && typeof v.node.value === 'boolean' ? v.node.value : bad(ctx, v, 'must be true or false');

function int(min: number, max = Number.MAX_SAFE_INTEGER): Conv<number> {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`;
  return (ctx, v) => {
    const n = isScalar(v.node) ? v.node.value : undefined;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      return bad(ctx, v, `must be an integer ${range}`);
    }
    return n;
  };
}

const port: Conv<number> = (ctx, v) => {
  const n = isScalar(v.node) ? v.node.value : undefined;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    return bad(ctx, v, 'must be a port number from 0 to 65535');
  }
  return n;
};

function fraction(ctx: Ctx, v: Val): number | undefined {
  const n = isScalar(v.node) ? v.node.value : undefined;
  if (typeof n !== 'number' || !(n > 0 && n < 1)) return bad(ctx, v, 'must be a number between 0 and 1');
  return n;
}

function oneOf<const T extends string>(values: readonly T[]): Conv<T> {
  const listed = values.map((x) => JSON.stringify(x)).join(', ');
  return (ctx, v) => {
    const s = isScalar(v.node) ? v.node.value : undefined;
    if (typeof s === 'string' && (values as readonly string[]).includes(s)) return s as T;
    const hint = typeof s === 'string' ? didYouMean(s, values) : '';
    return bad(ctx, v, `must be one of ${listed}${hint}`);
  };
}

function refine<T, U>(conv: Conv<T>, fn: (t: T, fail: (message: string) => undefined) => U | undefined): Conv<U> {
  return (ctx, v) => {
    const t = conv(ctx, v);
    if (t === undefined) return undefined;
    return fn(t, (message) => {
      ctx.report(v.at, v.path, message);
      return undefined;
    });
  };
}

/** Seq of items; with `scalar`, a single value stands for a one-item list. */
function list<T>(item: Conv<T>, opts: { scalar?: boolean; nonEmpty?: boolean } = {}): Conv<T[]> {
  return (ctx, v) => {
    if (!isSeq(v.node)) {
      if (opts.scalar && isScalar(v.node)) {
        const one = item(ctx, v);
        return one === undefined ? undefined : [one];
      }
      return bad(ctx, v, opts.scalar ? 'must be a string or a list' : 'must be a list');
    }
    if (opts.nonEmpty && v.node.items.length === 0) return bad(ctx, v, 'must not be empty');
    const out: T[] = [];
    let ok = true;
    v.node.items.forEach((raw, i) => {
      const path = `${v.path}[${i}]`;
      const at = offsetOf(raw, v.at);
      const node = ctx.deref(raw, at, path);
      const t = item(ctx, { node, at, path });
      if (t === undefined) ok = false;
      else out.push(t);
    });
    return ok ? out : undefined;
  };
}

const duration: Conv<number> = (ctx, v) => {
  const raw = isScalar(v.node) ? v.node.value : undefined;
  const ms = typeof raw === 'number' || typeof raw === 'string' ? parseDuration(raw) : undefined;
  if (ms === undefined) return bad(ctx, v, 'must be a duration such as 500ms, 10s, 5m, 12h or 1d (a number means milliseconds)');
  if (ms > MAX_TIMER_MS) return bad(ctx, v, 'must be at most 24d (the longest timer Node.js can set)');
  return ms;
};

const size: Conv<number> = (ctx, v) => {
  const raw = isScalar(v.node) ? v.node.value : undefined;
  const n = typeof raw === 'number' || typeof raw === 'string' ? parseSize(raw) : undefined;
  return n === undefined ? bad(ctx, v, 'must be a size such as 512kb, 10mb or 1gb (a number means bytes)') : n;
};

const filePath: Conv<string> = (ctx, v) => {
  const s = str(ctx, v);
  return s === undefined ? undefined : ctx.path(s);
};

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** A listen address: host name or IP literal, no port, no brackets. */
const bindHost: Conv<string> = refine(str, (s, fail) =>
  isIP(s) !== 0 || HOSTNAME.test(s) ? s : fail(`must be a host name or IP address without a port, got "${s}"`),
);

/** A route's Host match: lowercase name, optionally `*.` wildcard, or an IP literal. */
const matchHost: Conv<string> = refine(str, (s, fail) => {
  const h = s.toLowerCase().replace(/\.$/, '');
  if (isIP(h) !== 0) return h;
  const bare = h.startsWith('*.') ? h.slice(2) : h;
  if (h.includes(':')) return fail(`must be a host name without a port, got "${s}"`);
  return HOSTNAME.test(bare) ? h : fail(`must be a host name such as api.example.com or *.example.com, got "${s}"`);
});

const pathPrefix: Conv<string> = refine(str, (s, fail) => {
  if (!s.startsWith('/')) return fail(`must start with "/", got "${s}"`);
  if (s.includes('//')) return fail(`must not contain "//", got "${s}"`);
  if (/[%?#\s\\]/.test(s) || /[\u0000-\u001f\u007f]/.test(s)) {
    return fail(`must be a plain path without %, ?, #, backslashes or spaces, got "${s}"`);
  }
  if (s.split('/').some((seg) => seg === '.' || seg === '..')) return fail(`must not contain "." or ".." segments, got "${s}"`);
  return s.length > 1 && s.endsWith('/') ? s.slice(0, -1) : s;
});

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const method: Conv<string> = refine(str, (s, fail) =>
  TOKEN.test(s) ? s.toUpperCase() : fail(`must be an HTTP method such as GET or POST, got "${s}"`),
);

/** Upstream target: `http://host[:port][/base]`, normalised without a trailing slash. */
const upstreamUrl: Conv<string> = refine(str, (s, fail) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return fail(`must be a URL such as http://127.0.0.1:9001, got "${s}"`);
  }
  if (u.protocol !== 'http:') return fail(`must use the http: scheme (certgate terminates TLS), got "${u.protocol}"`);
  if (u.username || u.password) return fail('must not contain a user name or password');
  if (s.includes('?') || s.includes('#')) return fail('must not contain a query or fragment');
  if (u.hostname === '') return fail(`must name a host, got "${s}"`);
  if (u.pathname.includes('//') || u.pathname.includes('%')) return fail(`must have a plain base path, got "${u.pathname}"`);
  const base = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '');
  return `${u.protocol}//${u.host}${base}`;
});

/** A URL fetched by certgate itself (CRL, OCSP): http or https. */
const fetchUrl: Conv<string> = refine(str, (s, fail) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return fail(`must be an http:// or https:// URL, got "${s}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return fail(`must be an http:// or https:// URL, got "${s}"`);
  return u.href;
});

/** `host:port` (IPv6 in brackets) for the endpoint monitor. */
const hostPort: Conv<string> = refine(str, (s, fail) => {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+):(\d{1,5})$/.exec(s);
  const p = m ? Number(m[2]) : NaN;
  if (!m || p < 1 || p > 65535) return fail(`must be host:port such as example.com:443, got "${s}"`);
  return s;
});

const headerPrefix: Conv<string> = refine(str, (s, fail) => {
  const p = s.toLowerCase();
  if (!TOKEN.test(p) || !p.endsWith('-')) return fail(`must be a header-name prefix ending in "-", got "${s}"`);
  return p;
});

const routeName: Conv<string> = refine(str, (s, fail) =>
  /^[A-Za-z0-9_.-]+$/.test(s) ? s : fail(`must contain only letters, digits, "_", "." and "-", got "${s}"`),
);

const revocationMode = oneOf<RevocationMode>(['hard', 'soft']);

const workers: Conv<number> = (ctx, v) => {
  if (isScalar(v.node) && v.node.value === 'auto') return availableParallelism();
  const n = isScalar(v.node) ? v.node.value : undefined;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 1) return n;
  return bad(ctx, v, 'must be an integer >= 1 or "auto"');
};

// ---------------------------------------------------------------------------------------------
// Matchers

const HAS_GLOB = /[*?]/;

function matcherValue(field: MatcherField): Conv<string> {
  switch (field) {
    case 'fingerprint':
      return refine(str, (s, fail) => {
        if (HAS_GLOB.test(s)) return fail('globs are not allowed in fingerprint; give the full SHA-256 fingerprint');
        return canonicalFingerprint(s) ?? fail(`must be a SHA-256 fingerprint (64 hex digits, colons allowed), got "${s}"`);
      });
    case 'serial':
      return refine(str, (s, fail) => {
        if (HAS_GLOB.test(s)) return fail('globs are not allowed in serial; give the full serial number');
        return canonicalSerial(s) ?? fail(`must be a hexadecimal serial number, got "${s}"`);
      });
    case 'spiffe':
      return refine(str, (s, fail) => (s.startsWith('spiffe://') ? s : fail(`must start with "spiffe://", got "${s}"`)));
    default:
      return str;
  }
}

const MATCHER_VALUE: Record<MatcherField, Conv<string[]>> = Object.fromEntries(
  MATCHER_FIELDS.map((f) => [f, list(matcherValue(f), { scalar: true, nonEmpty: true })]),
) as Record<MatcherField, Conv<string[]>>;

const matcher: Conv<MatcherSpec> = (ctx, v) => {
  if (!isMap(v.node)) return bad(ctx, v, 'must be a map of certificate fields such as { cn: alice }');
  if (v.node.items.length === 0) {
    ctx.report(v.at, v.path, 'an empty matcher would match every certificate; use { subject: "*" } to allow any trusted client');
    return undefined;
  }
  const s = new Section(ctx, v.path, v.at, v.node, MATCHER_FIELDS);
  const spec: MatcherSpec = {};
  let ok = s.count === v.node.items.length;
  for (const f of MATCHER_FIELDS) {
    const raw = s.present(f);
    if (!raw) continue;
    // Inside a matcher an empty value is an error, never "default": it would widen the match.
    const vals = MATCHER_VALUE[f](ctx, raw);
    if (vals === undefined) ok = false;
    else spec[f] = vals;
  }
  return ok ? spec : undefined;
};

const matchers = list(matcher);

// ---------------------------------------------------------------------------------------------
// The schema

const K = {
  root: ['listen', 'tls', 'timeouts', 'limits', 'routes', 'headers', 'log', 'admin', 'revocation', 'clientCertPolicy', 'expiry', 'inventory', 'monitors', 'workers', 'est', 'watch'],
  listen: ['host', 'port'],
  tls: ['cert', 'key', 'clientCAs', 'minVersion', 'refuse', 'ciphers', 'ticketRotate', 'allowExpiredServerCert'],
  timeouts: ['handshake', 'headers', 'request', 'idle', 'upstream', 'upstreamConnect', 'shutdown'],
  limits: ['maxConnections', 'maxBodySize', 'maxHeaderSize'],
  route: ['name', 'match', 'upstream', 'allow', 'deny', 'maxBodySize', 'revocation', 'timeouts', 'websocket'],
  routeMatch: ['host', 'pathPrefix', 'methods'],
  routeTimeouts: ['upstream'],
  headers: ['xfcc', 'prefix', 'forwarded'],
  log: ['level', 'access', 'file', 'accessFile'],
  admin: ['enabled', 'host', 'port', 'tokenFile', 'tls'],
  adminTls: ['cert', 'key', 'clientCAs', 'allow'],
  revocation: ['dataDir', 'crl', 'ocsp', 'recheck'],
  crl: ['files', 'urls', 'distributionPoints', 'refresh', 'timeout', 'maxSize', 'mode'],
  ocsp: ['enabled', 'responder', 'timeout', 'cacheSize', 'mode'],
  clientCertPolicy: ['minRsaBits', 'curves', 'forbiddenSigAlgs', 'requireClientAuthEku', 'rejectCaLeaf', 'maxValidityDays', 'maxChainDepth', 'ownCerts'],
  expiry: ['warnDays', 'checkEvery'],
  inventory: ['maxEntries', 'file', 'perClientSeries'],
  monitor: ['address', 'servername', 'interval', 'ca'],
  est: ['enabled', 'caDir', 'renewWindowDays', 'renewWindowFraction', 'rateLimitPerHour', 'days'],
  watch: ['enabled', 'debounce'],
} as const;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const paths = list(filePath, { scalar: true, nonEmpty: true });
const strings = list(str, { scalar: true });

function readTls(sec: Section): Config['tls'] {
  const tls: Config['tls'] = {
    cert: sec.req('cert', filePath, ''),
    key: sec.req('key', filePath, ''),
    clientCAs: sec.req('clientCAs', paths, []),
    minVersion: sec.get('minVersion', oneOf<TlsVersion>(['TLSv1.2', 'TLSv1.3']), 'TLSv1.2'),
    refuse: sec.get('refuse', oneOf(['request', 'handshake']), 'request'),
    ticketRotateMs: sec.get('ticketRotate', duration, 12 * UNIT_MS.h),
    allowExpiredServerCert: sec.get('allowExpiredServerCert', bool, false),
  };
  const ciphers = sec.opt('ciphers', str);
  if (ciphers) tls.ciphers = ciphers;
  return tls;
}

function readRoutes(ctx: Ctx, root: Section, limits: Config['limits'], timeouts: Config['timeouts']): RouteConfig[] {
  const firstAt = new Map<string, number>();
  const route: Conv<RouteConfig> = (ctx, v) => {
    if (!isMap(v.node)) return bad(ctx, v, 'must be a map with name, match, upstream and allow');
    const r = new Section(ctx, v.path, v.at, v.node, K.route);
    const name = r.req('name', routeName, '');
    if (name !== '') {
      const first = firstAt.get(name);
      if (first !== undefined) ctx.report(r.posOf('name'), `${v.path}.name`, `duplicate route name "${name}" (first used at line ${ctx.lineOf(first)})`);
      else firstAt.set(name, r.posOf('name'));
    }
    const m = r.sub('match', K.routeMatch);
    const match: RouteConfig['match'] = { pathPrefix: m.get('pathPrefix', pathPrefix, '/') };
    const host = m.opt('host', list(matchHost, { scalar: true, nonEmpty: true }));
    if (host) match.host = host;
    const methods = m.opt('methods', list(method, { scalar: true, nonEmpty: true }));
    if (methods) match.methods = methods;
    const t = r.sub('timeouts', K.routeTimeouts);
    const out: RouteConfig = {
      name,
      match,
      upstream: r.req('upstream', list(upstreamUrl, { scalar: true, nonEmpty: true }), []),
      allow: r.get('allow', matchers, []),
      deny: r.get('deny', matchers, []),
      maxBodyBytes: r.get('maxBodySize', size, limits.maxBodyBytes),
      timeouts: { upstreamMs: t.get('upstream', duration, timeouts.upstreamMs) },
      websocket: r.get('websocket', bool, true),
    };
    const mode = r.opt('revocation', revocationMode);
    if (mode) out.revocationMode = mode;
    return out;
  };
  return root.req('routes', list(route, { nonEmpty: true }), []);
}

function readRevocation(ctx: Ctx, sec: Section): Config['revocation'] {
  const c = sec.sub('crl', K.crl);
  const crl: Config['revocation']['crl'] = {
    files: c.get('files', list(filePath, { scalar: true }), []),
    urls: c.get('urls', list(fetchUrl, { scalar: true }), []),
    distributionPoints: c.get('distributionPoints', bool, false),
    refreshMs: c.get('refresh', duration, UNIT_MS.h),
    timeoutMs: c.get('timeout', duration, 5 * UNIT_MS.s),
    maxBytes: c.get('maxSize', size, 10 * UNIT_BYTES.mb),
  };
  const crlMode = c.opt('mode', revocationMode);
  if (crlMode) crl.mode = crlMode;

  // `ocsp: true` is shorthand for `ocsp: { enabled: true }`.
  const ocspRaw = sec.present('ocsp');
  const ocspBool = ocspRaw && isScalar(ocspRaw.node) && typeof ocspRaw.node.value === 'boolean' ? ocspRaw.node.value : undefined;
  let o: Section;
  if (ocspBool !== undefined) o = new Section(ctx, 'revocation.ocsp', ocspRaw!.at, undefined, K.ocsp);
  else if (ocspRaw && isScalar(ocspRaw.node) && !isNull(ocspRaw.node)) {
    bad(ctx, ocspRaw, 'must be true, false or a map');
    o = new Section(ctx, 'revocation.ocsp', ocspRaw.at, undefined, K.ocsp);
  } else o = sec.sub('ocsp', K.ocsp);
  const ocsp: Config['revocation']['ocsp'] = {
    enabled: ocspBool ?? o.get('enabled', bool, false),
    timeoutMs: o.get('timeout', duration, 3 * UNIT_MS.s),
    cacheSize: o.get('cacheSize', int(0), 10_000),
  };
  const responder = o.opt('responder', fetchUrl);
  if (responder) ocsp.responder = responder;
  const ocspMode = o.opt('mode', revocationMode);
  if (ocspMode) ocsp.mode = ocspMode;

  return {
    dataDir: sec.get('dataDir', filePath, ctx.path('data')),
    crl,
    ocsp,
    recheckMs: sec.get('recheck', duration, UNIT_MS.s),
  };
}

function readAdmin(ctx: Ctx, sec: Section): Config['admin'] {
  const admin: Config['admin'] = {
    enabled: sec.get('enabled', bool, true),
    host: sec.get('host', bindHost, '127.0.0.1'),
    port: sec.get('port', port, 9443),
    tokenFile: sec.get('tokenFile', filePath, ctx.path('admin.token')),
  };
  if (sec.has('tls')) {
    const t = sec.sub('tls', K.adminTls);
    admin.tls = {
      cert: t.req('cert', filePath, ''),
      key: t.req('key', filePath, ''),
      clientCAs: t.req('clientCAs', paths, []),
      allow: t.req('allow', list(matcher, { nonEmpty: true }), []),
    };
  }
  return admin;
}

/** clientCertPolicy when the config says nothing; also what `certgate scan` calls weak. */
export const CLIENT_CERT_POLICY_DEFAULTS: Readonly<Config['clientCertPolicy']> = Object.freeze({
  minRsaBits: 2048,
  curves: Object.freeze(['P-256', 'P-384', 'P-521']) as string[],
  forbiddenSigAlgs: Object.freeze(['sha1', 'md5']) as string[],
  requireClientAuthEku: true,
  rejectCaLeaf: true,
  maxChainDepth: 4,
  ownCerts: 'warn' as const,
});

function readConfig(ctx: Ctx, root: Section): Config {
  const listenSec = root.sub('listen', K.listen);
  const listen = { host: listenSec.get('host', bindHost, '127.0.0.1'), port: listenSec.req('port', port, 0) };
  const tls = readTls(root.sub('tls', K.tls));

  const t = root.sub('timeouts', K.timeouts);
  const timeouts: Config['timeouts'] = {
    handshakeMs: t.get('handshake', duration, 10 * UNIT_MS.s),
    headersMs: t.get('headers', duration, 10 * UNIT_MS.s),
    requestMs: t.get('request', duration, 60 * UNIT_MS.s),
    idleMs: t.get('idle', duration, 60 * UNIT_MS.s),
    upstreamMs: t.get('upstream', duration, 30 * UNIT_MS.s),
    upstreamConnectMs: t.get('upstreamConnect', duration, 5 * UNIT_MS.s),
    shutdownMs: t.get('shutdown', duration, 15 * UNIT_MS.s),
  };

  const l = root.sub('limits', K.limits);
  const limits: Config['limits'] = {
    maxConnections: l.get('maxConnections', int(1), 10_000),
    maxBodyBytes: l.get('maxBodySize', size, 10 * UNIT_BYTES.mb),
    maxHeaderBytes: l.get('maxHeaderSize', size, 16 * UNIT_BYTES.kb),
  };

  const routes = readRoutes(ctx, root, limits, timeouts);

  const h = root.sub('headers', K.headers);
  const headers = {
    xfcc: h.get('xfcc', bool, true),
    prefix: h.get('prefix', headerPrefix, 'x-client-cert-'),
    forwarded: h.get('forwarded', bool, true),
  };

  const lg = root.sub('log', K.log);
  const log: Config['log'] = { level: lg.get('level', oneOf(LOG_LEVELS), 'info'), access: lg.get('access', bool, true) };
  const logFile = lg.opt('file', filePath);
  if (logFile) log.file = logFile;
  const accessFile = lg.opt('accessFile', filePath);
  if (accessFile) log.accessFile = accessFile;

  const adminSec = root.sub('admin', K.admin);
  const admin = readAdmin(ctx, adminSec);
  if (admin.enabled && admin.port !== 0 && admin.port === listen.port && admin.host === listen.host) {
    ctx.report(adminSec.posOf('port'), 'admin.port', `must differ from listen.port (both are ${listen.host}:${listen.port})`);
  }

  const revocation = readRevocation(ctx, root.sub('revocation', K.revocation));

  const p = root.sub('clientCertPolicy', K.clientCertPolicy);
  const d = CLIENT_CERT_POLICY_DEFAULTS;
  const clientCertPolicy: Config['clientCertPolicy'] = {
    minRsaBits: p.get('minRsaBits', int(1024), d.minRsaBits),
    curves: p.get('curves', strings, [...d.curves]),
    forbiddenSigAlgs: p.get('forbiddenSigAlgs', strings, [...d.forbiddenSigAlgs]).map((s) => s.toLowerCase()),
    requireClientAuthEku: p.get('requireClientAuthEku', bool, d.requireClientAuthEku),
    rejectCaLeaf: p.get('rejectCaLeaf', bool, d.rejectCaLeaf),
    maxChainDepth: p.get('maxChainDepth', int(1, 100), d.maxChainDepth),
    ownCerts: p.get('ownCerts', oneOf(['warn', 'refuse']), d.ownCerts),
  };
  const maxValidityDays = p.opt('maxValidityDays', int(1));
  if (maxValidityDays !== undefined) clientCertPolicy.maxValidityDays = maxValidityDays;

  const e = root.sub('expiry', K.expiry);
  const expiry = {
    warnDays: e.get('warnDays', list(int(0)), [30, 7, 1]).slice().sort((a, b) => b - a),
    checkEveryMs: e.get('checkEvery', duration, UNIT_MS.h),
  };

  const inv = root.sub('inventory', K.inventory);
  const inventory: Config['inventory'] = {
    maxEntries: inv.get('maxEntries', int(0), 10_000),
    perClientSeries: inv.get('perClientSeries', int(0), 1_000),
  };
  const invFile = inv.opt('file', filePath);
  if (invFile) inventory.file = invFile;

  const monitor: Conv<Config['monitors'][number]> = (ctx, v) => {
    if (!isMap(v.node)) return bad(ctx, v, 'must be a map with address');
    const m = new Section(ctx, v.path, v.at, v.node, K.monitor);
    const out: Config['monitors'][number] = { address: m.req('address', hostPort, ''), intervalMs: m.get('interval', duration, UNIT_MS.h) };
    const servername = m.opt('servername', str);
    if (servername) out.servername = servername;
    const ca = m.opt('ca', filePath);
    if (ca) out.ca = ca;
    return out;
  };
  const monitors = root.get('monitors', list(monitor), []);

  const w = root.sub('watch', K.watch);
  const config: Config = {
    file: ctx.file,
    dir: ctx.dir,
    listen,
    tls,
    timeouts,
    limits,
    routes,
    headers,
    log,
    admin,
    revocation,
    clientCertPolicy,
    expiry,
    inventory,
    monitors,
    workers: root.get('workers', workers, 1),
    watch: { enabled: w.get('enabled', bool, true), debounceMs: w.get('debounce', duration, 250) },
  };

  if (root.has('est')) {
    const s = root.sub('est', K.est);
    const enabled = s.get('enabled', bool, false);
    config.est = {
      enabled,
      caDir: enabled ? s.req('caDir', filePath, '') : s.get('caDir', filePath, ctx.path('ca')),
      renewWindowDays: s.get('renewWindowDays', int(0), 10),
      renewWindowFraction: s.get('renewWindowFraction', fraction, 0.34),
      rateLimitPerHour: s.get('rateLimitPerHour', int(1), 10),
      days: s.get('days', int(1), 30),
    };
  }
  return config;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Parses and validates a config. `file` is the absolute path the text came from: relative
 * paths inside are resolved against its folder. Throws ConfigError listing every problem.
 */
export function parseConfig(text: string, file: string): Config {
  const abs = resolve(file);
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  const ctx = new Ctx(abs, lc, doc);

  // A tree with syntax errors is not worth validating: its shape is a guess.
  const yamlProblems = [...doc.errors, ...doc.warnings];
  if (yamlProblems.length > 0) {
    for (const e of yamlProblems) ctx.report(e.pos[0], '(yaml)', e.message.split('\n')[0]!);
    throw new ConfigError(ctx.issues);
  }

  const contents = ctx.deref(doc.contents, 0, '(root)');
  let root: Section;
  if (isMap(contents)) {
    root = new Section(ctx, '', offsetOf(contents, 0), contents, K.root);
  } else {
    if (!isNull(contents)) bad(ctx, { node: contents, at: offsetOf(contents, 0), path: '(root)' }, 'the config must be a map');
    root = new Section(ctx, '', 0, undefined, K.root);
  }
  const config = readConfig(ctx, root);
  if (ctx.issues.length > 0) {
    ctx.issues.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ConfigError(ctx.issues);
  }
  return deepFreeze(config);
}

/** Reads and parses a config file; an unreadable file is a ConfigError at `(file)`. */
export function loadConfig(file: string): Config {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'file not found' : e.code === 'EISDIR' ? 'is a directory, not a file' : `cannot be read (${e.code ?? e.message})`;
    throw new ConfigError([{ file: abs, line: 1, col: 1, path: '(file)', message: why }]);
  }
  return parseConfig(text, abs);
}

const RESTART_ONLY: readonly (readonly [string, (c: Config) => unknown])[] = [
  ['listen.host', (c) => c.listen.host],
  ['listen.port', (c) => c.listen.port],
  ['admin.enabled', (c) => c.admin.enabled],
  ['admin.host', (c) => c.admin.host],
  ['admin.port', (c) => c.admin.port],
  ['workers', (c) => c.workers],
];

/** Keys that differ between two configs but only take effect on restart (reload refuses them). */
export function diffRestartOnly(a: Config, b: Config): string[] {
  return RESTART_ONLY.filter(([, get]) => get(a) !== get(b)).map(([name]) => name);
}

/**
 * Where a key of a loaded config stands in its file, for errors found after validation (a cert
 * file that cannot be read, a key that does not match). Re-reads the file: only on the error path.
 */
export function positionOf(config: Config, keyPath: string): { line: number; col: number } {
  try {
    const text = readFileSync(config.file, 'utf8');
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false });
    const segments = keyPath.split(/\.|\[(\d+)\]/).filter((s) => s !== undefined && s !== '').map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    // Walk down as far as the path exists, so a missing leaf points at its parent.
    for (let n = segments.length; n > 0; n--) {
      const node = doc.getIn(segments.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node?.range !== undefined) return lc.linePos(node.range[0]);
      const parentMap = n === 1 ? doc.contents : doc.getIn(segments.slice(0, n - 1), true);
      if (isMap(parentMap)) {
        const pair = parentMap.items.find((p) => isScalar(p.key) && p.key.value === segments[n - 1]);
        const range = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
        if (range !== undefined) return lc.linePos(range[0]);
      }
    }
  } catch {
    // The file changed or vanished since it was loaded: fall back to its top.
  }
  return { line: 1, col: 1 };
}

/**
 * Keys that parse but that this version cannot honour yet. Refusing them at start (and in
 * `check`) beats silently running without them: admin.tls would otherwise serve plain HTTP.
 */
export function unsupportedIssues(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (config.admin.tls !== undefined) {
    issues.push({
      file: config.file,
      ...positionOf(config, 'admin.tls'),
      path: 'admin.tls',
      message: 'the mTLS admin listener is not available yet; remove admin.tls and use the bearer token (admin.tokenFile) on a loopback admin.host',
    });
  }
  return issues;
}
