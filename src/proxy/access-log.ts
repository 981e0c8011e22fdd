// The last step of every request: one access log line and the observer's requestDone (metrics,
// inventory), both read from the request context.

import type { Logger } from 'pino';
import type { Identity } from '../identity/types.js';
import type { Loggers } from '../log.js';
import type { RequestContext } from './context.js';
import type { Observer } from './events.js';

export class AccessLog {
  readonly #loggers: Loggers;
  readonly #byIdentity = new WeakMap<Identity, Logger>();
  observer: Observer = {};

  constructor(loggers: Loggers) {
    this.#loggers = loggers;
  }

  write(ctx: RequestContext): void {
    ctx.durationMs = performance.now() - ctx.started;
    const id = ctx.identity;
    const logger = id === undefined ? this.#loggers.access : this.#loggerFor(id);
    const error = ctx.error;
    logger.info(
      {
        reqId: ctx.requestId,
        method: ctx.method,
        path: ctx.url,
        route: ctx.route,
        decision: ctx.decision,
        status: ctx.status,
        bytes: ctx.bytes,
        ms: Math.round(ctx.durationMs * 1000) / 1000,
        ...(error !== undefined ? { error: (error as NodeJS.ErrnoException).code ?? error.message } : {}),
      },
      'request',
    );
    this.observer.requestDone?.(ctx);
  }

  /** One child logger per certificate: its identity fields are serialised once, not per line. */
  #loggerFor(id: Identity): Logger {
    let l = this.#byIdentity.get(id);
    if (l === undefined) {
      l = this.#loggers.access.child({ subject: id.subject, fingerprint: id.fingerprint });
      this.#byIdentity.set(id, l);
    }
    return l;
  }
}
