// The proxy's side of EST: which requests go to the EST handler. Kept free of CA code so that
// the proxy module does not load the CA unless EST is enabled.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/types.js';
import type { ErrorCode } from '../errors.js';
import type { Identity } from '../identity/types.js';

export const EST_PREFIX = '/.well-known/est/';

export interface EstOutcome {
  readonly status: number;
  readonly decision: 'allow' | ErrorCode;
}

/** What the proxy hands EST requests to (Certgate's `est` option; built in app.ts). */
export interface EstHandler {
  /** `cfg` is the current runtime's `est` section (tunables apply on reload; caDir needs a restart). */
  handle(req: IncomingMessage, res: ServerResponse, id: Identity | undefined, requestId: string, cfg: NonNullable<Config['est']>): Promise<EstOutcome>;
}

/** The only requests a connection without a client certificate may make: first enrollment and the CA certs. */
export function anonymousEstAllowed(method: string | undefined, url: string | undefined): boolean {
  return (method === 'POST' && url === `${EST_PREFIX}simpleenroll`) || (method === 'GET' && url === `${EST_PREFIX}cacerts`);
}
