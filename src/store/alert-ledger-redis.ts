// The alert ledger of a fleet: which alerts were sent, in Redis, so that an alert goes out once
// per certificate and threshold from whichever instance claims it first. A claim is one Lua
// call (compare and set with an expiry). While Redis is out of reach, claims fall back to the
// instance's own file ledger: an alert may then go out once per instance rather than be lost.

import type { Redis } from 'ioredis';
import type { AlertLedger } from '../alerts/ledger.js';

const DAY_MS = 86_400_000;
/** As the file ledger: entries are forgotten a year after the later of the alert and the item's end. */
const KEEP_MS = 365 * DAY_MS;

// KEYS[1] the alert's key; ARGV[1] its level (lower = more urgent), ARGV[2] keep-until (ms epoch).
const CLAIM_LUA = `
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) <= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1`;

type LedgerRedis = Redis & { certgateClaimAlert(key: string, level: number, keepUntil: number): Promise<number> };

export class RedisAlertLedger implements AlertLedger {
  readonly #redis: LedgerRedis;
  readonly #prefix: string;
  readonly #local: AlertLedger;
  readonly #now: () => number;

  constructor(redis: Redis, keyPrefix: string, local: AlertLedger, now: () => number = Date.now) {
    if (!('certgateClaimAlert' in redis)) redis.defineCommand('certgateClaimAlert', { numberOfKeys: 1, lua: CLAIM_LUA });
    this.#redis = redis as LedgerRedis;
    this.#prefix = `${keyPrefix}alert:`;
    this.#local = local;
    this.#now = now;
  }

  async claim(key: string, level: number, endsAt: number): Promise<boolean> {
    try {
      return (await this.#redis.certgateClaimAlert(this.#prefix + key, level, Math.max(endsAt, this.#now()) + KEEP_MS)) === 1;
    } catch {
      return this.#local.claim(key, level, endsAt);
    }
  }

  async release(key: string): Promise<void> {
    await Promise.allSettled([this.#redis.del(this.#prefix + key), this.#local.release(key)]);
  }

  close(): Promise<void> {
    return this.#local.close();
  }
}
