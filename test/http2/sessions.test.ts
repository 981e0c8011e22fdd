// HTTP/2 sessions and trust changes: a revoked certificate's session gets GOAWAY and closes within
// a second; a reload whose clientCertPolicy now refuses the identity closes it; a policy reload
// refuses the next stream on an open session; shutdown sends GOAWAY and lets open streams finish.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor, within } from '../helpers/wait.js';
import { creds, h2Request, h2Session } from './client.js';

let pki: TestPki;

const tls = () => ({ serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem });
const routes = [{ name: 'app', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ o: 'certgate-test' }] }];
const http2 = { listen: { host: '127.0.0.1', port: 0, http2: true } };

/** Resolves with the GOAWAY error code when the session closes after one. */
function goawayThenClose(s: ClientHttp2Session): Promise<number> {
  return new Promise((resolve) => {
    let code = -1;
    s.once('goaway', (c: number) => (code = c));
    s.once('close', () => resolve(code));
  });
}

beforeAll(async () => {
  pki = await createTestPki();
});

describe('revocation and reload', () => {
  let h: Harness;
  let token: string;
  beforeAll(async () => {
    h = await startHarness({ tls: tls(), serverCa: pki.rootPem, admin: true, routes, extra: { ...http2, revocation: { dataDir: 'revocations', recheck: '100ms' } } });
    token = readFileSync(join(h.dir, 'admin.token'), 'utf8').trim();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('sends GOAWAY and closes the session of a certificate revoked while it is open, within a second', async () => {
    const c = await pki.client({ cn: 'revoked-h2' });
    const s = await h2Session(h.port, h.serverCa, creds(c));
    expect((await h2Request(s, '/before')).status).toBe(200);
    const closed = goawayThenClose(s);
    const t0 = Date.now();
    const res = await fetch(h.adminUrl + '/revocations', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ serial: c.serial, reason: 'h2' }) });
    expect(res.status).toBe(201);
    expect(await within(closed, 1000, 'session closed')).toBeGreaterThanOrEqual(0);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('closes a session whose identity the reloaded clientCertPolicy refuses, and refuses the next stream after a policy reload', async () => {
    const c = await pki.client({ cn: 'short', days: 30 });
    const s = await h2Session(h.port, h.serverCa, creds(c));
    expect((await h2Request(s, '/x')).status).toBe(200);
    // Policy: the route no longer allows the identity: the open session's next stream is refused.
    h.writeConfig((cfg) => ((cfg.routes as any[])[0].allow = [{ cn: 'somebody-else' }]));
    expect(h.app.certgate.reload().ok).toBe(true);
    const refused = await h2Request(s, '/x');
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('identity_not_allowed');
    const closed = goawayThenClose(s);
    h.writeConfig((cfg) => {
      (cfg.routes as any[])[0].allow = [{ o: 'certgate-test' }];
      cfg.clientCertPolicy = { maxValidityDays: 7 };
    });
    expect(h.app.certgate.reload().ok).toBe(true);
    await within(closed, 1000, 'session closed after the reload');
    h.writeConfig((cfg) => delete cfg.clientCertPolicy);
    expect(h.app.certgate.reload().ok).toBe(true);
  });
});

describe('shutdown', () => {
  it('sends GOAWAY and lets an open stream finish before closing', async () => {
    const h = await startHarness({ tls: tls(), serverCa: pki.rootPem, routes, extra: http2 });
    const c = await pki.client({ cn: 'drain' });
    const s = await h2Session(h.port, h.serverCa, creds(c));
    try {
      const slow = h2Request(s, '/slow?ms=400');
      const goaway = new Promise((resolve) => s.once('goaway', resolve));
      // The stream reaches the backend before shutdown starts.
      await waitFor(() => h.backend.received.length > 0, { what: 'the stream at the backend' });
      const stopping = h.close();
      await within(goaway, 2000, 'GOAWAY');
      const r = await slow;
      expect(r.status).toBe(200);
      await stopping;
    } finally {
      s.destroy();
    }
  });
});
