// The contract between the proxy and the revocation module. The proxy asks once per connection
// (and again only when `epoch` moves); the answer is kept on the connection.

import type { Identity } from '../identity/types.js';
import type { RevocationMode } from '../config/types.js';
import type { Runtime } from '../runtime.js';

export type RevocationSource = 'local' | 'crl-file' | 'crl-url' | 'ocsp' | 'ca';

export type RevocationStatus =
  | { readonly state: 'good' }
  | { readonly state: 'revoked'; readonly source: RevocationSource; readonly reason: string; readonly detail: string }
  | {
      readonly state: 'unknown';
      readonly source: RevocationSource;
      readonly detail: string;
      /** What the source itself defaults to when the route does not say (hard for CRL files). */
      readonly defaultMode: RevocationMode;
    };

export const GOOD: RevocationStatus = Object.freeze({ state: 'good' });

export interface RevocationChecker {
  /** Moves whenever any revocation source changes; connections re-check when it differs. */
  readonly epoch: number;
  /** A cached answer when there is one, else a promise (network sources). */
  check(id: Identity): RevocationStatus | Promise<RevocationStatus>;
  /** Called after every change, so open connections can be re-checked and closed. */
  onChange(listener: () => void): void;
  close(): Promise<void>;
  /** Optional: re-configures the sources from a new runtime after a reload. */
  apply?(next: Runtime): void;
}

/** No revocation sources configured: everything is good and nothing ever changes. */
export const noRevocation: RevocationChecker = Object.freeze({
  epoch: 0,
  check: () => GOOD,
  onChange: () => {},
  close: async () => {},
});
