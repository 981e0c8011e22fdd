// The CA index (issued certificates, revocations, enrollment tokens, CRL number) in Redis, with
// the file store's semantics: `update` is one read-modify-write for the whole fleet. It runs under
// WATCH on the index key and commits with MULTI/EXEC; when another instance (or a CLI) changed
// the index in between, EXEC fails and the update runs again on the new index. So a token is
// spent once across the fleet, and serials and CRL numbers never collide. `fn` may therefore run
// more than once: it must only change the index it is given (signing again is harmless, nothing
// signed in a lost attempt is handed out).
//
// Keys: PREFIXca:index (the index as JSON, as index.json holds it), PREFIXca:root (the fingerprint
// of the root it belongs to: a CA directory with another root is refused, not mixed in).

import { X509Certificate } from 'node:crypto';
import type { Redis } from 'ioredis';
import { emptyIndex, type CaIndexStore, type IndexFile } from '../ca/index-store.js';

const MAX_ATTEMPTS = 200;

export class CaStoreError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export class RedisIndexStore implements CaIndexStore {
  /** A connection of its own: WATCH belongs to a connection, and updates here are one at a time. */
  readonly #redis: Redis;
  readonly #key: string;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(redis: Redis, keyPrefix: string) {
    this.#redis = redis;
    this.#key = `${keyPrefix}ca:index`;
  }

  /**
   * Opens the fleet's index for the CA whose root is `rootPem`. The first CA directory to use a
   * store seeds it from its index.json (`seed`), so that turning Redis on keeps what was issued.
   */
  static async open(redis: Redis, keyPrefix: string, rootPem: string, seed: () => Promise<IndexFile>): Promise<RedisIndexStore> {
    const root = new X509Certificate(rootPem).fingerprint256;
    const rootKey = `${keyPrefix}ca:root`;
    await redis.set(rootKey, root, 'NX');
    const owner = await redis.get(rootKey);
    if (owner !== root) {
      throw new CaStoreError('CERTGATE_CA_STORE_MISMATCH', `the store's CA index belongs to another root CA (${owner}); this CA directory's root is ${root}`);
    }
    const store = new RedisIndexStore(redis, keyPrefix);
    if ((await redis.exists(store.#key)) === 0) await redis.set(store.#key, JSON.stringify(await seed()), 'NX');
    return store;
  }

  async read(): Promise<IndexFile> {
    return parse(await this.#redis.get(this.#key), this.#key);
  }

  update<T>(fn: (idx: IndexFile) => T | Promise<T>): Promise<T> {
    const run = this.#queue.then(() => this.#update(fn));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #update<T>(fn: (idx: IndexFile) => T | Promise<T>): Promise<T> {
    const r = this.#redis;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      await r.watch(this.#key);
      let out: T;
      let idx: IndexFile;
      try {
        idx = parse(await r.get(this.#key), this.#key);
        out = await fn(idx);
      } catch (err) {
        await r.unwatch().catch(() => undefined);
        throw err;
      }
      const committed = await r.multi().set(this.#key, JSON.stringify(idx)).exec();
      if (committed !== null) return out;
      // Another writer won this round: back off a little (randomised, so that racers spread out).
      await new Promise((res) => setTimeout(res, Math.min(100, 2 * attempt) * Math.random()));
    }
    throw new CaStoreError('CERTGATE_CA_INDEX_BUSY', `the CA index in the store kept changing during ${MAX_ATTEMPTS} attempts`);
  }
}

function parse(raw: string | null, key: string): IndexFile {
  if (raw === null) return emptyIndex();
  let data: IndexFile;
  try {
    data = JSON.parse(raw) as IndexFile;
  } catch (err) {
    throw new CaStoreError('CERTGATE_CA_INDEX_INVALID', `${key}: ${(err as Error).message}`);
  }
  if (data.version !== 1 || !Array.isArray(data.certs)) throw new CaStoreError('CERTGATE_CA_INDEX_INVALID', `${key}: unknown index format`);
  data.tokens ??= [];
  data.crlNumber ??= 0;
  return data;
}
