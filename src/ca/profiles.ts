// Certificate profiles of `certgate ca issue --profile`: what a certificate is for decides its
// names and key usage. `admin` is for the mTLS admin listener (admin.tls): clientAuth only, and an
// OU that admin.tls.allow can match without matching every client of the same CA.

import type { EkuName } from './pki.js';

export interface Profile {
  /** Organisational units added to the subject. */
  readonly ou: readonly string[];
  readonly eku: readonly EkuName[];
  /** The admin.tls.allow entry that matches certificates of this profile, for the printout. */
  readonly allowEntry?: (cn: string) => string;
}

export const ADMIN_OU = 'certgate-admin';

export const PROFILES = {
  client: { ou: [], eku: ['clientAuth'] },
  admin: { ou: [ADMIN_OU], eku: ['clientAuth'], allowEntry: (cn: string) => `{ ou: ${ADMIN_OU}, cn: ${JSON.stringify(cn)} }` },
} as const satisfies Record<string, Profile>;

export type ProfileName = keyof typeof PROFILES;
