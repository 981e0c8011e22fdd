// Admin API for instant revocation: POST /revocations, GET /revocations, DELETE /revocations/:id.
// Mutations need the bearer token (AdminServer enforces it); each one is an audit log line.

import type { Logger } from 'pino';
import { entryFromInput, RevocationInputError, type LocalRevocationList, type RevocationInput } from '../revocation/local-list.js';
import { FileRevocations, type RevocationStore } from '../store/revocations.js';
import type { AdminServer } from './server.js';

export interface RevocationAdminOptions {
  readonly list: LocalRevocationList;
  readonly log: Logger;
  /** Extra state for GET (loaded CRLs); optional. */
  readonly describe?: () => unknown;
  /** Resolves once the change is in force everywhere it must be (every cluster worker). */
  readonly propagated?: () => Promise<void>;
  /** Where changes go (Redis for a fleet); default: the durable local list alone. */
  readonly store?: Pick<RevocationStore, 'add' | 'remove'>;
}

export function registerRevocationRoutes(admin: AdminServer, o: RevocationAdminOptions): void {
  const store = o.store ?? new FileRevocations(o.list);
  admin.route('GET', '/revocations', (r) => {
    r.json(200, { revocations: o.list.entries(), ...(o.describe ? { sources: o.describe() } : {}) });
  });

  admin.route(
    'POST',
    '/revocations',
    async (r) => {
      const body = await r.body();
      if (body === undefined) return;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return r.error('invalid_argument', 'expected a JSON object');
      const b = body as Record<string, unknown>;
      for (const k of Object.keys(b)) {
        if (!['serial', 'issuer', 'fingerprint', 'reason'].includes(k)) return r.error('invalid_argument', `unknown field "${k}"`);
      }
      let entry;
      try {
        entry = entryFromInput({ ...(b as RevocationInput), actor: `${r.actor}@${r.req.socket.remoteAddress ?? '?'}` });
      } catch (err) {
        if (err instanceof RevocationInputError) return r.error('invalid_argument', err.message);
        throw err;
      }
      const { propagated } = await store.add(entry);
      o.log.warn(
        { event: 'audit', action: 'revoke', actor: entry.actor, id: entry.id, serial: entry.serial, issuer: entry.issuer, fingerprint: entry.fingerprint, reason: entry.reason, at: entry.createdAt, propagated },
        'certificate revoked through the admin API',
      );
      await o.propagated?.();
      // 202: in force here and journaled, not yet in the shared store (pushed when it returns).
      if (propagated) r.json(201, entry);
      else r.json(202, { propagated: false, ...entry });
    },
    { mutation: true },
  );

  admin.route(
    'DELETE',
    '/revocations/:id',
    async (r) => {
      const actor = `${r.actor}@${r.req.socket.remoteAddress ?? '?'}`;
      const { removed, propagated } = await store.remove(r.params.id ?? '', actor);
      if (removed === undefined) return r.error('not_found', `no revocation with id ${r.params.id}`);
      o.log.warn(
        { event: 'audit', action: 'unrevoke', actor, id: removed.id, serial: removed.serial, issuer: removed.issuer, fingerprint: removed.fingerprint, at: new Date().toISOString(), propagated },
        'revocation entry removed through the admin API',
      );
      await o.propagated?.();
      if (propagated) r.json(200, { removed });
      else r.json(202, { propagated: false, removed });
    },
    { mutation: true },
  );
}
