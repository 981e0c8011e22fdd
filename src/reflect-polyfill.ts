// @peculiar/x509 uses tsyringe, which refuses to load without the Reflect metadata API. This is
// the small subset tsyringe calls, so we need no extra dependency. Imported only by src/x509.ts,
// before @peculiar/x509 itself; never import @peculiar/x509 directly.

type MetadataKey = unknown;
type PropertyKey_ = string | symbol | undefined;

const store = new WeakMap<object, Map<PropertyKey_, Map<MetadataKey, unknown>>>();

function bucket(target: object, prop: PropertyKey_, create: boolean): Map<MetadataKey, unknown> | undefined {
  let byProp = store.get(target);
  if (byProp === undefined) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let entries = byProp.get(prop);
  if (entries === undefined) {
    if (!create) return undefined;
    entries = new Map();
    byProp.set(prop, entries);
  }
  return entries;
}

function* prototypeChain(target: object): Generator<object> {
  for (let o: object | null = target; o !== null; o = Object.getPrototypeOf(o) as object | null) yield o;
}

const R = Reflect as unknown as Record<string, unknown>;

if (typeof R.getMetadata !== 'function') {
  R.defineMetadata = (key: MetadataKey, value: unknown, target: object, prop?: PropertyKey_): void => {
    bucket(target, prop, true)!.set(key, value);
  };
  R.getOwnMetadata = (key: MetadataKey, target: object, prop?: PropertyKey_): unknown => bucket(target, prop, false)?.get(key);
  R.hasOwnMetadata = (key: MetadataKey, target: object, prop?: PropertyKey_): boolean =>
    bucket(target, prop, false)?.has(key) ?? false;
  R.getMetadata = (key: MetadataKey, target: object, prop?: PropertyKey_): unknown => {
    for (const o of prototypeChain(target)) {
      const entries = bucket(o, prop, false);
      if (entries?.has(key)) return entries.get(key);
    }
    return undefined;
  };
  R.hasMetadata = (key: MetadataKey, target: object, prop?: PropertyKey_): boolean => {
    for (const o of prototypeChain(target)) if (bucket(o, prop, false)?.has(key)) return true;
    return false;
  };
  R.metadata = (key: MetadataKey, value: unknown) => (target: object, prop?: PropertyKey_): void => {
    (R.defineMetadata as (k: MetadataKey, v: unknown, t: object, p?: PropertyKey_) => void)(key, value, target, prop);
  };
}
