// The value types of the config: each reads one YAML node, reports what is wrong with it, and
// names itself for the reference. Durations and sizes go through src/util/duration.ts, the one
// parser the CLI uses too.

import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { isScalar } from 'yaml';
import { MAX_TIMER_MS, parseDuration, parseSize, UNIT_BYTES, UNIT_MS } from '../util/duration.js';
import { canonicalFingerprint, canonicalSerial } from '../identity/canonical.js';
import { didYouMean } from './issues.js';
import { refine, scalar, type Type } from './schema.js';
import { bad, scalarOf } from './yaml.js';

export const str: Type<string> = scalar('string', (ctx, v) => {
  if (!isScalar(v.node)) return bad(ctx, v, 'must be a string');
  const val = v.node.value;
  if (typeof val === 'string') {
    if (val.trim() === '') return bad(ctx, v, 'must not be empty');
    return val;
  }
  // A plain 12345 or 0x1f where a string is expected (a CN, a serial) means the text as written.
  if (typeof val === 'number' || typeof val === 'bigint') return v.node.source ?? String(val);
  return bad(ctx, v, 'must be a string');
});

export const bool: Type<boolean> = scalar('boolean', (ctx, v) =>
  isScalar(v.node) && typeof v.node.value === 'boolean' ? v.node.value : bad(ctx, v, 'must be true or false'),
);

export function int(min: number, max = Number.MAX_SAFE_INTEGER): Type<number> {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`;
  return scalar(`integer ${range}`, (ctx, v) => {
    const n = scalarOf(v.node);
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) return bad(ctx, v, `must be an integer ${range}`);
    return n;
  });
}

export const port: Type<number> = scalar('port', (ctx, v) => {
  const n = scalarOf(v.node);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) return bad(ctx, v, 'must be a port number from 0 to 65535');
  return n;
});

export const fraction: Type<number> = scalar('number between 0 and 1', (ctx, v) => {
  const n = scalarOf(v.node);
  if (typeof n !== 'number' || !(n > 0 && n < 1)) return bad(ctx, v, 'must be a number between 0 and 1');
  return n;
});

export function oneOf<const T extends string>(values: readonly T[]): Type<T> {
  const listed = values.map((x) => JSON.stringify(x)).join(', ');
  return scalar(values.map((x) => `\`${x}\``).join(', '), (ctx, v) => {
    const s = scalarOf(v.node);
    if (typeof s === 'string' && (values as readonly string[]).includes(s)) return s as T;
    const hint = typeof s === 'string' ? didYouMean(s, values) : '';
    return bad(ctx, v, `must be one of ${listed}${hint}`);
  });
}

/** `90000` -> `90s`, `43200000` -> `12h`: the largest unit that divides it. */
export function showDuration(ms: number): string {
  for (const u of ['d', 'h', 'm', 's'] as const) if (ms > 0 && ms % UNIT_MS[u] === 0) return `${ms / UNIT_MS[u]}${u}`;
  return `${ms}ms`;
}

/** A timer duration, in milliseconds: `500ms`, `10s`, `5m`, `12h`, `1d`; a bare number means ms. */
export const duration: Type<number> = scalar(
  'duration',
  (ctx, v) => {
    const raw = scalarOf(v.node);
    const ms = typeof raw === 'number' || typeof raw === 'string' ? parseDuration(raw) : undefined;
    if (ms === undefined) return bad(ctx, v, 'must be a duration such as 500ms, 10s, 5m, 12h or 1d (a number means milliseconds)');
    if (ms > MAX_TIMER_MS) return bad(ctx, v, 'must be at most 24d (the longest timer Node.js can set)');
    return ms;
  },
  showDuration,
);

/** A count of days: `7` or `7d` (any duration in whole days, such as `168h`). */
export function days(min: number): Type<number> {
  return scalar(
    'days',
    (ctx, v) => {
      const raw = scalarOf(v.node);
      const ms = typeof raw === 'number' || typeof raw === 'string' ? parseDuration(raw, 'd') : undefined;
      const n = ms === undefined || ms % UNIT_MS.d !== 0 ? undefined : ms / UNIT_MS.d;
      if (n === undefined || n < min) return bad(ctx, v, `must be a whole number of days >= ${min}, such as 7 or 7d`);
      return n;
    },
    (n) => String(n),
  );
}

/** `16384` -> `16kb`. */
export function showSize(n: number): string {
  for (const u of ['gb', 'mb', 'kb'] as const) if (n > 0 && n % UNIT_BYTES[u] === 0) return `${n / UNIT_BYTES[u]}${u}`;
  return `${n}b`;
}

/** A size in bytes: `512b`, `16kb`, `10mb`, `1gb`; a bare number means bytes. */
export const size: Type<number> = scalar(
  'size',
  (ctx, v) => {
    const raw = scalarOf(v.node);
    const n = typeof raw === 'number' || typeof raw === 'string' ? parseSize(raw) : undefined;
    return n === undefined ? bad(ctx, v, 'must be a size such as 512kb, 10mb or 1gb (a number means bytes)') : n;
  },
  showSize,
);

/** A file or folder, resolved against the config file's folder. */
export const filePath: Type<string> = scalar('path', (ctx, v) => {
  const s = str.read(ctx, v);
  return s === undefined ? undefined : ctx.path(s);
});

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** A listen address: host name or IP literal, no port, no brackets. */
export const bindHost = refine(str, (s, fail) =>
  isIP(s) !== 0 || HOSTNAME.test(s) ? s : fail(`must be a host name or IP address without a port, got "${s}"`),
  'host',
);

/** An IP network: `10.0.0.0/8`, `fd00::/8`, or a bare address (one host). */
export const cidr = refine(str, (s, fail) => {
  const [net = '', bits, extra] = s.split('/');
  const v = isIP(net);
  const max = v === 6 ? 128 : 32;
  if (v === 0 || extra !== undefined) return fail(`must be an IP network such as 10.0.0.0/8 or fd00::/8 (or one address), got "${s}"`);
  if (bits !== undefined && !(/^[0-9]{1,3}$/.test(bits) && Number(bits) <= max)) return fail(`prefix length must be 0 to ${max}, got "${s}"`);
  return s;
}, 'CIDR');

/** A route's Host match: lowercase name, optionally `*.` wildcard, or an IP literal. */
export const matchHost = refine(str, (s, fail) => {
  const h = s.toLowerCase().replace(/\.$/, '');
  if (isIP(h) !== 0) return h;
  const bare = h.startsWith('*.') ? h.slice(2) : h;
  if (h.includes(':')) return fail(`must be a host name without a port, got "${s}"`);
  return HOSTNAME.test(bare) ? h : fail(`must be a host name such as api.example.com or *.example.com, got "${s}"`);
}, 'host name');

export const pathPrefix = refine(str, (s, fail) => {
  if (!s.startsWith('/')) return fail(`must start with "/", got "${s}"`);
  if (s.includes('//')) return fail(`must not contain "//", got "${s}"`);
  if (/[%?#\s\\]/.test(s) || /[\u0000-\u001f\u007f]/.test(s)) {
    return fail(`must be a plain path without %, ?, #, backslashes or spaces, got "${s}"`);
  }
  if (s.split('/').some((seg) => seg === '.' || seg === '..')) return fail(`must not contain "." or ".." segments, got "${s}"`);
  return s.length > 1 && s.endsWith('/') ? s.slice(0, -1) : s;
}, 'URL path');

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export const method = refine(str, (s, fail) =>
  TOKEN.test(s) ? s.toUpperCase() : fail(`must be an HTTP method such as GET or POST, got "${s}"`),
  'HTTP method',
);

/** Upstream target: `http://host[:port][/base]`, normalised without a trailing slash. */
export const upstreamUrl = refine(str, (s, fail) => {
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
}, 'http:// URL');

/** A URL fetched by certgate itself (CRL, OCSP): http or https. */
export const fetchUrl = refine(str, (s, fail) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return fail(`must be an http:// or https:// URL, got "${s}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return fail(`must be an http:// or https:// URL, got "${s}"`);
  return u.href;
}, 'http(s):// URL');

/** A Redis URL: `redis://` or `rediss://` (TLS), optional `/db`; the password goes in a file. */
export const redisUrl = refine(str, (s, fail) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return fail(`must be a URL such as redis://127.0.0.1:6379/0, got "${s}"`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return fail(`must use redis:// or rediss:// (TLS), got "${u.protocol}"`);
  if (u.password) return fail('must not contain a password: put it in store.redis.passwordFile');
  if (u.hostname === '') return fail(`must name a host, got "${s}"`);
  if (!/^\/?(\d+)?$/.test(u.pathname)) return fail(`the path may only be a database number such as /0, got "${u.pathname}"`);
  return s;
}, 'redis URL');

/** A webhook URL: a secret (it carries the token), so no message ever repeats it. */
export const secretUrl = refine(str, (s, fail) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return fail('must be an http:// or https:// URL (the value is not shown: webhook URLs are secrets)');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return fail('must be an http:// or https:// URL (the value is not shown: webhook URLs are secrets)');
  return u.href;
}, 'http(s):// URL (secret)');

/** `host:port` (IPv6 in brackets) for the endpoint monitor. */
export const hostPort = refine(str, (s, fail) => {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+):(\d{1,5})$/.exec(s);
  const p = m ? Number(m[2]) : NaN;
  if (!m || p < 1 || p > 65535) return fail(`must be host:port such as example.com:443, got "${s}"`);
  return s;
}, 'host:port');

export const headerPrefix = refine(str, (s, fail) => {
  const p = s.toLowerCase();
  if (!TOKEN.test(p) || !p.endsWith('-')) return fail(`must be a header-name prefix ending in "-", got "${s}"`);
  return p;
}, 'header-name prefix');

/** A header name, lowercased. */
export const headerName = refine(str, (s, fail) => (TOKEN.test(s) ? s.toLowerCase() : fail(`must be a header name, got "${s}"`)), 'header name');

export const routeName = refine(str, (s, fail) =>
  /^[A-Za-z0-9_.-]+$/.test(s) ? s : fail(`must contain only letters, digits, "_", "." and "-", got "${s}"`),
  'name',
);

export const workers: Type<number> = scalar('integer >= 1 or `auto`', (ctx, v) => {
  const n = scalarOf(v.node);
  if (n === 'auto') return availableParallelism();
  if (typeof n === 'number' && Number.isInteger(n) && n >= 1) return n;
  return bad(ctx, v, 'must be an integer >= 1 or "auto"');
});

const HAS_GLOB = /[*?]/;

export const fingerprint = refine(str, (s, fail) => {
  if (HAS_GLOB.test(s)) return fail('globs are not allowed in fingerprint; give the full SHA-256 fingerprint');
  return canonicalFingerprint(s) ?? fail(`must be a SHA-256 fingerprint (64 hex digits, colons allowed), got "${s}"`);
}, 'SHA-256 fingerprint');

export const serial = refine(str, (s, fail) => {
  if (HAS_GLOB.test(s)) return fail('globs are not allowed in serial; give the full serial number');
  return canonicalSerial(s) ?? fail(`must be a hexadecimal serial number, got "${s}"`);
}, 'hex serial');

export const spiffeId = refine(str, (s, fail) => (s.startsWith('spiffe://') ? s : fail(`must start with "spiffe://", got "${s}"`)), 'spiffe:// ID glob');

export const glob: Type<string> = scalar('glob', str.read);
