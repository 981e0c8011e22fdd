// A client that goes away mid-response stops the upstream exchange too: the backend sees its
// response closed instead of streaming into a request nobody reads.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawTls, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let backend: Server;
const closed = new Set<string>();
const started = new Set<string>();

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice' });
  // Streams a chunk, then keeps the response open until its client goes away.
  backend = createServer((req, res) => {
    const id = req.url!;
    started.add(id);
    res.on('close', () => closed.add(id));
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first chunk\n');
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [{ name: 'stream', upstream: url, allow: [{ cn: 'alice' }] }],
  });
});

afterAll(async () => {
  await h?.close();
  backend?.closeAllConnections();
  await new Promise((r) => backend?.close(r));
});

describe('a client that goes away', () => {
  it('cancels the upstream exchange of its unfinished response', async () => {
    const s = await rawTls(h.port, pki.rootPem, { cert: alice.chainPem, key: alice.keyPem });
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.write('GET /slow-1 HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await waitFor(() => got.includes('first chunk'), { what: 'the first chunk through certgate', deadline: 5000, every: 10 });
    expect(started.has('/slow-1')).toBe(true);
    expect(closed.has('/slow-1')).toBe(false);
    s.destroy();
    await waitFor(() => closed.has('/slow-1'), { what: 'the backend response closed', deadline: 5000, every: 10 });
  });
});
