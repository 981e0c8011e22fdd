import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityFromDer } from '../../src/identity/identity.js';
import type { Identity } from '../../src/identity/types.js';
import { Inventory, type InventoryEntry } from '../../src/lifecycle/inventory.js';
import { inventoryTable } from '../../src/cli/cmd-inventory.js';
import { BACKEND, startHarness } from '../helpers/certgate.js';
import { createTestPki } from '../helpers/pki.js';

let ids: Identity[];
let dir: string;
let clock = 1_000_000;
const now = () => clock;

beforeAll(async () => {
  const pki = await createTestPki();
  const certs = await Promise.all([
    pki.client({ cn: 'a', days: 30 }),
    pki.client({ cn: 'b', days: 10 }),
    pki.client({ cn: 'c', days: 90 }),
    pki.client({ cn: 'd', days: 2, keyAlg: 'RSA-2048' }),
  ]);
  ids = certs.map((c) => identityFromDer(new Uint8Array(c.nodeCert.raw)));
  dir = mkdtempSync(join(tmpdir(), 'certgate-inventory-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const req = (identity: Identity, route = 'r', decision: 'allow' | 'identity_not_allowed' = 'allow') =>
  ({ identity, route, status: 200, decision, durationMs: 1, upstreamMs: 1, remote: '192.0.2.7' }) as const;

describe('client certificate inventory', () => {
  it('records each distinct certificate once, with counts, the routes it was let through on, its refusals and the last decision', () => {
    const inv = new Inventory({ maxEntries: 10, now });
    inv.connection(ids[0]!);
    inv.request(req(ids[0]!, 'orders'));
    clock += 1000;
    inv.request(req(ids[0]!, 'billing', 'identity_not_allowed'));
    // A second Identity object for the same certificate (another connection) is the same entry.
    const again = identityFromDer(ids[0]!.der);
    inv.connection(again);
    inv.request(req(again, 'orders'));
    const [e] = inv.list();
    expect(inv.size).toBe(1);
    expect(e).toMatchObject({ subject: 'CN=a,O=certgate-test', connections: 2, requests: 3, routes: ['orders'], refused: ['billing:identity_not_allowed'], lastDecision: 'allow', lastAddress: '192.0.2.7', key: 'EC P-256' });
    expect(Date.parse(e!.lastSeen) - Date.parse(e!.firstSeen)).toBe(1000);
  });

  it('stays within maxEntries by evicting the least recently seen certificate', () => {
    const inv = new Inventory({ maxEntries: 2, now });
    inv.connection(ids[0]!);
    clock += 10;
    inv.connection(ids[1]!);
    clock += 10;
    inv.request(req(ids[0]!)); // a is now more recent than b
    clock += 10;
    inv.connection(ids[2]!);
    expect(inv.list().map((e) => e.subject).sort()).toEqual(['CN=a,O=certgate-test', 'CN=c,O=certgate-test']);
    clock += 10;
    inv.connection(ids[3]!); // a was seen before c: a goes
    expect(inv.list().map((e) => e.subject).sort()).toEqual(['CN=c,O=certgate-test', 'CN=d,O=certgate-test']);
    // An evicted certificate seen again starts a new entry.
    inv.request(req(ids[0]!));
    expect(inv.list().find((e) => e.subject.startsWith('CN=a'))?.requests).toBe(1);
    expect(inv.size).toBe(2);
  });

  it('lists soonest expiry first', () => {
    const inv = new Inventory({ maxEntries: 10, now: Date.now });
    for (const id of ids) inv.connection(id);
    expect(inv.list().map((e) => [e.subject, e.daysLeft])).toEqual([
      ['CN=d,O=certgate-test', 1],
      ['CN=b,O=certgate-test', 9],
      ['CN=a,O=certgate-test', 29],
      ['CN=c,O=certgate-test', 89],
    ]);
  });

  it('survives a restart through its file, written atomically with mode 0600', () => {
    const file = join(dir, 'inv.json');
    const a = new Inventory({ maxEntries: 10, now });
    a.connection(ids[1]!);
    a.request(req(ids[1]!, 'orders'));
    a.save(file);
    expect(readdirSync(dir)).toEqual(['inv.json']);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const b = new Inventory({ maxEntries: 10, now });
    expect(b.load(file)).toBe(1);
    expect(b.list()).toEqual(a.list());
    b.request(req(ids[1]!, 'billing'));
    expect(b.list()[0]).toMatchObject({ requests: 2, routes: ['billing', 'orders'] });
  });

  it('starts empty from a missing file and skips malformed entries', () => {
    const inv = new Inventory({ maxEntries: 10, now });
    expect(inv.load(join(dir, 'absent.json'))).toBe(0);
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ version: 1, entries: [{ fingerprint: 'x' }, null, { fingerprint: 'ab', notAfter: 5, lastSeen: 4, subject: 'CN=z' }] }));
    expect(inv.load(file)).toBe(1);
    expect(inv.list()[0]!.subject).toBe('CN=z');
    writeFileSync(file, '{not json');
    expect(() => inv.load(file)).toThrow(/cannot read the inventory file/);
  });

  it('renders the CLI table with one row per certificate and a placeholder when empty', () => {
    const inv = new Inventory({ maxEntries: 10, now: Date.now });
    inv.connection(ids[3]!);
    inv.request(req(ids[3]!, 'orders'));
    const t = inventoryTable(inv.list()).split('\n');
    expect(t[0]).toMatch(/^DAYS LEFT/);
    expect(t[1]).toMatch(/^1\s+\S+\s+CN=d,O=certgate-test\s+\S+\s+RSA 2048\s+1\s+.*orders\s+-\s+allow$/);
    expect(inventoryTable([])).toContain('(no client certificates)');
  });
});

describe('the inventory of a running certgate', () => {
  it('lists the routes a certificate was let through on, and its refusals apart, in GET /certs and the CLI table', async () => {
    const pki = await createTestPki();
    const alice = await pki.client({ cn: 'alice' });
    const h = await startHarness({
      tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
      serverCa: pki.rootPem,
      admin: true,
      routes: [
        { name: 'orders', match: { pathPrefix: '/orders' }, upstream: BACKEND, allow: [{ cn: 'alice' }] },
        { name: 'admin', match: { pathPrefix: '/admin' }, upstream: BACKEND, allow: [{ cn: 'root-operator' }] },
      ],
    });
    try {
      const client = { cert: alice.chainPem, key: alice.keyPem };
      expect((await h.request('/orders/1', { client })).status).toBe(200);
      const refused = await h.request('/admin/users', { client });
      expect(refused.json.error.code).toBe('identity_not_allowed');
      const res = await fetch(`${h.adminUrl}/certs`);
      expect(res.status).toBe(200);
      const clients = ((await res.json()) as { clients: InventoryEntry[] }).clients;
      const entry = clients.find((c) => c.fingerprint === alice.fingerprint256)!;
      expect(entry).toMatchObject({ requests: 2, routes: ['orders'], refused: ['admin:identity_not_allowed'], lastDecision: 'identity_not_allowed' });
      const [header, row] = inventoryTable([entry]).split('\n');
      expect(header).toMatch(/\sROUTES\s+REFUSED\s+DECISION$/);
      expect(row).toMatch(/\sorders\s+admin:identity_not_allowed\s+identity_not_allowed$/);
    } finally {
      await h.close();
    }
  });
});
