// A small declarative schema for the YAML config: each key is declared once with its type, its
// default, a one-line description, whether a reload may change it, and old spellings it still
// accepts. From the declaration come the TypeScript type (Infer), the reader that reports every
// problem with its file:line:col in one pass, the restart-only key list and docs/configuration.md.
//
// Our own ~300 lines rather than zod/valibot: errors must point at YAML nodes (line, column,
// aliases, duplicate keys), numbers written where text is expected keep their source text
// (serial 0x1f), and each key carries documentation metadata; with a schema library all of that
// would be a mapping layer around it, bigger than this module.

import { isMap, isScalar, isSeq, type YAMLMap } from 'yaml';
import { didYouMean } from './issues.js';
import { bad, isNull, keyPath, kindOf, offsetOf, type Conv, type Ctx, type Val } from './yaml.js';

/** How a value is read, and how the reference names it and shows a default. */
export interface Type<T> {
  readonly read: Conv<T>;
  /** The type as the reference names it: `duration`, `path`, `list of string`, … */
  readonly name: string;
  /** A default written as a user would write it (`10s`, `16kb`). */
  readonly show?: (v: T) => string;
  /** Objects: their keys. Lists of objects: the item's keys. */
  readonly fields?: Shape;
  /** Objects: the value of an absent or empty map (every default applied). */
  readonly absent?: (ctx: Ctx, path: string, at: number) => T | undefined;
  readonly isList?: boolean;
}

/** A default taken from another key once the whole file is read (route limits from `limits`). */
export class Inherit {
  constructor(readonly from: string) {}
}
export const inherit = (from: string): Inherit => new Inherit(from);

type Presence = 'required' | 'optional' | 'default';
type Default<T> = T | ((ctx: Ctx) => T) | Inherit;

export interface KeyMeta {
  /** One line: what the key does. This text is the reference. */
  readonly doc: string;
  /** A reload that changes this key is refused: it takes effect on restart only. */
  readonly restart?: boolean;
  /** Old spellings of the key, still accepted. */
  readonly aliases?: readonly string[];
  /** How the reference shows a computed default. */
  readonly docDefault?: string;
}

export interface Key<T, P extends Presence = Presence> extends KeyMeta {
  readonly type: Type<T>;
  readonly presence: P;
  readonly default?: Default<T>;
}

export type Shape = Record<string, Key<any>>;
type ValueOf<K> = K extends Key<infer T> ? T : never;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** The TypeScript type a shape describes: optional keys without a default are `?:`. */
export type Infer<S extends Shape> = Simplify<
  { -readonly [K in keyof S as S[K]['presence'] extends 'optional' ? never : K]: ValueOf<S[K]> } & {
    -readonly [K in keyof S as S[K]['presence'] extends 'optional' ? K : never]?: ValueOf<S[K]>;
  }
>;

type More = Omit<KeyMeta, 'doc'>;

export function required<T>(type: Type<T>, doc: string, more: More = {}): Key<T, 'required'> {
  return { type, presence: 'required', doc, ...more };
}
export function optional<T>(type: Type<T>, doc: string, more: More = {}): Key<T, 'optional'> {
  return { type, presence: 'optional', doc, ...more };
}
export function withDefault<T>(type: Type<T>, dflt: Default<T>, doc: string, more: More = {}): Key<T, 'default'> {
  return { type, presence: 'default', default: dflt, doc, ...more };
}
/** A nested map that is always there: absent means every default inside. */
export function section<T>(type: Type<T> & { fields: Shape }, doc: string, more: More = {}): Key<T, 'default'> {
  return { type, presence: 'default', doc, ...more };
}

/** What an object's cross-key check can ask about the map it was read from. */
export interface MapView {
  readonly path: string;
  readonly at: number;
  has(key: string): boolean;
  /** Where the key's value is, or where the map is when the key is absent. */
  posOf(key: string): number;
  /** Reports a required key as missing, where `required` would. */
  missing(key: string): void;
}

export interface ObjectOptions<T> {
  /** The error when the value is not a map: `must be ${expect}`. */
  readonly expect?: string;
  /** `ocsp: true` stands for `ocsp: { enabled: true }`. */
  readonly boolShorthand?: string;
  /** An empty value is an error here, never "use the default" (it would widen a matcher). */
  readonly nullIsValue?: boolean;
  /** An empty map is an error with this message. */
  readonly emptyMessage?: string;
  /** Checks across keys; reported with ctx.report. */
  readonly check?: (value: T, map: MapView, ctx: Ctx) => void;
}

interface Found extends Val {
  keyAt: number;
}

function readMap<S extends Shape>(ctx: Ctx, path: string, at: number, node: YAMLMap | undefined, shape: S, opts: ObjectOptions<Infer<S>>, preset: Record<string, unknown> = {}): Infer<S> {
  const canonical = new Map<string, string>();
  for (const [k, key] of Object.entries(shape)) {
    canonical.set(k, k);
    for (const a of key.aliases ?? []) canonical.set(a, k);
  }
  const known = [...canonical.keys()];
  const vals = new Map<string, Found>();
  for (const pair of node?.items ?? []) {
    const keyAt = offsetOf(pair.key, at);
    const key = isScalar(pair.key) ? pair.key.value : undefined;
    if (typeof key !== 'string') {
      ctx.report(keyAt, path || '(root)', `keys must be strings, got ${kindOf(pair.key)}`);
      continue;
    }
    const p = keyPath(path, key);
    const name = canonical.get(key);
    if (name === undefined) {
      ctx.report(keyAt, p, `unknown key${didYouMean(key, known)}`);
      continue;
    }
    const seen = vals.get(name);
    if (seen) {
      ctx.report(keyAt, p, `duplicate key (first set at line ${ctx.lineOf(seen.keyAt)})`);
      continue;
    }
    const valAt = offsetOf(pair.value, keyAt);
    vals.set(name, { node: ctx.deref(pair.value, valAt, p), at: valAt, path: keyPath(path, name), keyAt });
  }
  const given = (k: string): Found | undefined => {
    const v = vals.get(k);
    return v !== undefined && (opts.nullIsValue === true || !isNull(v.node)) ? v : undefined;
  };
  const missing = (k: string): void => {
    const v = vals.get(k);
    ctx.report(v ? v.keyAt : at, keyPath(path, k), 'required key is missing');
  };
  const out: Record<string, unknown> = {};
  for (const [k, key] of Object.entries(shape)) {
    if (k in preset) {
      out[k] = preset[k];
      continue;
    }
    const v = given(k);
    const t = key.type;
    if (v === undefined) {
      if (key.presence === 'required') missing(k);
      else if (key.presence === 'default') {
        const d = key.default;
        if (d instanceof Inherit) ctx.after.push(() => (out[k] ??= getPath(ctx.root, d.from)));
        else if (typeof d === 'function') out[k] = (d as (ctx: Ctx) => unknown)(ctx);
        else if (d === undefined && t.absent) out[k] = t.absent(ctx, keyPath(path, k), vals.get(k)?.keyAt ?? at);
        else out[k] = structuredClone(d);
      }
      continue;
    }
    let value = t.read(ctx, v);
    // A section that is not a map is reported, then read as empty so the keys inside still are.
    if (value === undefined && key.presence === 'default' && key.default === undefined && t.absent && !isMap(v.node)) {
      value = t.absent(ctx, v.path, v.at);
    }
    if (value !== undefined) out[k] = value;
  }
  opts.check?.(out as Infer<S>, { path, at, has: (k) => vals.has(k) && !isNull(vals.get(k)!.node), posOf: (k) => vals.get(k)?.at ?? at, missing }, ctx);
  return out as Infer<S>;
}

function getPath(root: unknown, dotted: string): unknown {
  let cur = root;
  for (const seg of dotted.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[seg];
  return cur;
}

/** A map with the given keys. */
export function object<S extends Shape>(shape: S, opts: ObjectOptions<Infer<S>> = {}): Type<Infer<S>> & { fields: S } {
  const expect = opts.expect ?? (opts.boolShorthand ? 'true, false or a map' : 'a map');
  return {
    name: opts.boolShorthand ? 'map or boolean' : 'map',
    fields: shape,
    absent: (ctx, path, at) => readMap(ctx, path, at, undefined, shape, opts),
    read: (ctx, v) => {
      if (isMap(v.node)) {
        if (opts.emptyMessage !== undefined && v.node.items.length === 0) {
          ctx.report(v.at, v.path, opts.emptyMessage);
          return undefined;
        }
        return readMap(ctx, v.path, v.at, v.node, shape, opts);
      }
      if (opts.boolShorthand && isScalar(v.node) && typeof v.node.value === 'boolean') {
        return readMap(ctx, v.path, v.at, undefined, shape, opts, { [opts.boolShorthand]: v.node.value });
      }
      return bad(ctx, v, `must be ${expect}`);
    },
  };
}

export interface ListOptions<T> {
  /** A single value stands for a one-item list. */
  readonly scalar?: boolean;
  readonly nonEmpty?: boolean;
  /** Checks across items, given each item's node. */
  readonly check?: (values: (T | undefined)[], items: Val[], ctx: Ctx) => void;
}

export function list<T>(item: Type<T>, opts: ListOptions<T> = {}): Type<T[]> {
  return {
    name: opts.scalar ? `${item.name} or list of ${item.name}` : `list of ${item.name}`,
    isList: true,
    ...(item.fields ? { fields: item.fields } : {}),
    show: (v) => `[${v.map((x) => (item.show ? item.show(x) : String(x))).join(', ')}]`,
    read: (ctx, v) => {
      if (!isSeq(v.node)) {
        if (opts.scalar && isScalar(v.node)) {
          const one = item.read(ctx, v);
          return one === undefined ? undefined : [one];
        }
        return bad(ctx, v, opts.scalar ? 'must be a string or a list' : 'must be a list');
      }
      if (opts.nonEmpty && v.node.items.length === 0) return bad(ctx, v, 'must not be empty');
      const vals: Val[] = v.node.items.map((raw, i) => {
        const path = `${v.path}[${i}]`;
        const at = offsetOf(raw, v.at);
        return { node: ctx.deref(raw, at, path), at, path };
      });
      const out = vals.map((x) => item.read(ctx, x));
      opts.check?.(out, vals, ctx);
      return out.every((x) => x !== undefined) ? (out as T[]) : undefined;
    },
  };
}

/** A scalar type from a converter. */
export function scalar<T>(name: string, read: Conv<T>, show?: (v: T) => string): Type<T> {
  return show ? { name, read, show } : { name, read };
}

/** The same type with a check or normalisation after reading. */
export function refine<T, U = T>(type: Type<T>, fn: (t: T, fail: (message: string) => undefined) => U | undefined, name = type.name): Type<U> {
  return {
    name,
    read: (ctx, v) => {
      const t = type.read(ctx, v);
      if (t === undefined) return undefined;
      return fn(t, (message) => {
        ctx.report(v.at, v.path, message);
        return undefined;
      });
    },
    ...(type.show ? { show: type.show as unknown as (u: U) => string } : {}),
  };
}

/** Reads a whole document root with a shape; fills inherited defaults at the end. */
export function readRoot<T>(ctx: Ctx, node: YAMLMap | undefined, at: number, type: Type<T>): T {
  const value = node ? type.read(ctx, { node, at, path: '' }) : type.absent!(ctx, '', at);
  ctx.root = value;
  for (const fill of ctx.after) fill();
  return value as T;
}

// ---------------------------------------------------------------------------------------------
// Walking the schema: restart-only keys and the reference rows

export interface KeyRow {
  readonly path: string;
  readonly key: Key<unknown>;
}

/** Every key, depth first, in declaration order; list items as `routes[].name`. */
export function keyRows(shape: Shape, prefix = '', expand: (fields: Shape) => boolean = () => true): KeyRow[] {
  const rows: KeyRow[] = [];
  for (const [k, key] of Object.entries(shape)) {
    const path = keyPath(prefix, k);
    rows.push({ path, key });
    const fields = key.type.fields;
    if (fields && expand(fields)) rows.push(...keyRows(fields, key.type.isList ? `${path}[]` : path, expand));
  }
  return rows;
}

/** Paths of restart-only keys (never inside lists: a list is replaced whole on reload). */
export function restartPaths(shape: Shape): string[] {
  return keyRows(shape).filter((r) => r.key.restart === true && !r.path.includes('[]')).map((r) => r.path);
}

/** The plain defaults of a shape (computed and inherited defaults left out). */
export function defaultsOf(shape: Shape): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, key] of Object.entries(shape)) {
    if (key.presence !== 'default' || key.default instanceof Inherit || typeof key.default === 'function') continue;
    out[k] = key.default === undefined && key.type.fields ? defaultsOf(key.type.fields) : structuredClone(key.default);
  }
  return out;
}

export function valueAt(root: unknown, dotted: string): unknown {
  return getPath(root, dotted);
}
