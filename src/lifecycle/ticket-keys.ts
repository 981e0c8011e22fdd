// TLS session ticket keys, set explicitly so that a reload (a new secure context) does not end
// every client's resumption, and so that every worker encrypts tickets with the same key.
// The primary (or a single process) owns a rotator with a timer; workers get a rotator without
// one and receive keys with set().

import { randomBytes } from 'node:crypto';

/** Node's ticket key: 16 bytes key name + 16 bytes HMAC secret + 16 bytes AES key. */
const TICKET_KEY_BYTES = 48;

export type TicketKeyListener = (keys: Buffer) => void;

export interface TicketKeyRotatorOptions {
  /** Rotation interval; 0 = never rotate by itself (a worker that receives keys from the primary). */
  readonly intervalMs: number;
  /** Initial keys (e.g. received from the primary); random when absent. */
  readonly initial?: Buffer;
}

export class TicketKeyRotator {
  #current: Buffer;
  readonly #intervalMs: number;
  readonly #listeners = new Set<TicketKeyListener>();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: TicketKeyRotatorOptions) {
    this.#intervalMs = opts.intervalMs;
    this.#current = opts.initial !== undefined ? checked(opts.initial) : randomBytes(TICKET_KEY_BYTES);
  }

  get current(): Buffer {
    return this.#current;
  }

  /** Called with every new key, whether rotated here or pushed with set(). */
  onRotate(listener: TicketKeyListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts the rotation timer (no-op with intervalMs 0). The timer never keeps the process alive. */
  start(): this {
    if (this.#intervalMs > 0 && this.#timer === undefined) {
      this.#timer = setInterval(() => this.rotate(), this.#intervalMs);
      this.#timer.unref();
    }
    return this;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** New random keys now. Tickets issued under the old key fall back to a full handshake. */
  rotate(): Buffer {
    this.set(randomBytes(TICKET_KEY_BYTES));
    return this.#current;
  }

  /** Keys from elsewhere (the cluster primary). */
  set(keys: Buffer): void {
    this.#current = checked(keys);
    for (const l of this.#listeners) l(this.#current);
  }
}

function checked(keys: Buffer): Buffer {
  if (keys.length !== TICKET_KEY_BYTES) throw new RangeError(`ticket keys must be ${TICKET_KEY_BYTES} bytes, got ${keys.length}`);
  return Buffer.from(keys);
}
