// How an admin revocation reaches every place it must be enforced. The file store: the durable
// local list is the whole truth (one machine; cluster workers are fed by the primary). The Redis
// store (revocations-redis.ts): the local list is this instance's copy of the fleet's.

import type { LocalRevocationList, RevocationEntry } from '../revocation/local-list.js';

export interface RevocationStore {
  /** The list this instance enforces (O(1) lookups; nothing touches Redis per request). */
  readonly list: LocalRevocationList;
  /**
   * Adds an entry. `propagated`: stored where every instance learns of it (always with the file
   * store); false when the shared store was unreachable: applied here, journaled, pushed later.
   */
  add(entry: RevocationEntry): Promise<{ entry: RevocationEntry; propagated: boolean }>;
  /** Removes an entry (a dated tombstone); `removed` undefined when there is no such id. */
  remove(id: string, actor: string): Promise<{ removed: RevocationEntry | undefined; propagated: boolean }>;
  close(): void;
}

export class FileRevocations implements RevocationStore {
  readonly list: LocalRevocationList;

  constructor(list: LocalRevocationList) {
    this.list = list;
  }

  async add(entry: RevocationEntry): Promise<{ entry: RevocationEntry; propagated: boolean }> {
    return { entry: await this.list.addDurably(entry), propagated: true };
  }

  async remove(id: string, actor: string): Promise<{ removed: RevocationEntry | undefined; propagated: boolean }> {
    return { removed: await this.list.removeDurably(id, actor), propagated: true };
  }

  close(): void {
    this.list.close();
  }
}
