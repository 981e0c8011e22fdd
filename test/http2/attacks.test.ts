// HTTP/2 attacks and limits: each one ends the offending stream or session, never forwards what
// it should not, and the proxy keeps serving another client meanwhile.

import { createServer, type Server } from 'node:http';
import { constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { creds, h2Once, h2Session } from './client.js';
import { FLAG, FRAME, frame, indexed, literal, rawH2, requestBlock } from './frames.js';

const ENHANCE_YOUR_CALM = constants.NGHTTP2_ENHANCE_YOUR_CALM;

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let hang: Server;
/** Requests to the hanging upstream, and how many of them were aborted by certgate. */
const hung = { seen: 0, aborted: 0 };

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ cn: 'alice' });
  hang = createServer((req, res) => {
    hung.seen++;
    res.on('close', () => !res.writableFinished && hung.aborted++);
  });
  await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [
      { name: 'hang', match: { pathPrefix: '/hang' }, upstream: `http://127.0.0.1:${(hang.address() as AddressInfo).port}`, allow: [{ cn: 'alice' }] },
      { name: 'app', match: { pathPrefix: '/' }, upstream: BACKEND, allow: [{ cn: 'alice' }] },
    ],
    extra: {
      listen: { host: '127.0.0.1', port: 0, http2: true },
      limits: { http2: { maxConcurrentStreams: 4, maxResetsPerSecond: 50, maxControlFramesPerSecond: 50, streamIdleTimeout: '400ms', sessionIdleTimeout: '1500ms' } },
    },
  });
});

afterAll(async () => {
  await h?.close();
  hang?.closeAllConnections();
  hang?.close();
});

/** Another client is served while (or right after) the attack. */
async function stillServes(): Promise<void> {
  const r = await h2Once(h.port, h.serverCa, creds(alice), '/still-up');
  expect(r.status).toBe(200);
}

describe('HTTP/2 attacks', () => {
  it('rapid reset: streams opened and cancelled in one packet are never forwarded, and the rate gets GOAWAY ENHANCE_YOUR_CALM', async () => {
    const raw = await rawH2(h.port, h.serverCa, creds(alice));
    const before = h.backend.received.length;
    const frames: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const id = 1 + 2 * i;
      frames.push(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, requestBlock(`/reset/${i}`)), frame(FRAME.RST_STREAM, 0, id, Buffer.from([0, 0, 0, 8])));
    }
    raw.send(...frames);
    await waitFor(() => raw.goawayCode() !== undefined && raw.closed(), { what: 'GOAWAY and close' });
    expect(raw.goawayCode()).toBe(ENHANCE_YOUR_CALM);
    expect(h.backend.received.slice(before).filter((r) => r.url.startsWith('/reset/'))).toHaveLength(0);
    await stillServes();
  });

  it('a reset of a forwarded stream aborts its upstream request', async () => {
    const s = await h2Session(h.port, h.serverCa, creds(alice));
    const req = s.request({ ':path': '/hang' });
    req.on('error', () => {});
    await waitFor(() => hung.seen > 0, { what: 'the request at the upstream' });
    req.close(constants.NGHTTP2_CANCEL);
    await waitFor(() => hung.aborted > 0, { what: 'the upstream request aborted' });
    s.close();
    await stillServes();
  });

  it.each([
    ['PING', () => frame(FRAME.PING, 0, 0, Buffer.alloc(8))],
    ['SETTINGS', () => frame(FRAME.SETTINGS, 0, 0)],
  ])('a %s flood gets GOAWAY ENHANCE_YOUR_CALM', async (_kind, make) => {
    const raw = await rawH2(h.port, h.serverCa, creds(alice));
    raw.send(...Array.from({ length: 200 }, make));
    await waitFor(() => raw.goawayCode() !== undefined && raw.closed(), { what: 'GOAWAY and close' });
    expect(raw.goawayCode()).toBe(ENHANCE_YOUR_CALM);
    await stillServes();
  });

  it('an HPACK bomb (one large indexed header referenced many times) is refused before forwarding', async () => {
    const raw = await rawH2(h.port, h.serverCa, creds(alice));
    const before = h.backend.received.length;
    // 4 KB into the dynamic table once, then 100 one-byte references: 400 KB decoded.
    const block = requestBlock('/bomb', [literal('x-bomb', 'b'.repeat(4000), true), ...Array.from({ length: 100 }, () => indexed(62))]);
    raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, block));
    await waitFor(() => raw.rstCode(1) !== undefined || raw.goawayCode() !== undefined || raw.closed(), { what: 'the stream refused' });
    expect(h.backend.received.slice(before).some((r) => r.url === '/bomb')).toBe(false);
    raw.socket.destroy();
    await stillServes();
  });

  it('a CONTINUATION flood closes the connection', async () => {
    const raw = await rawH2(h.port, h.serverCa, creds(alice));
    const frames = [frame(FRAME.HEADERS, 0, 1, requestBlock('/cont'))];
    for (let i = 0; i < 2000 && frames.length < 2001; i++) frames.push(frame(FRAME.CONTINUATION, 0, 1, literal(`x-c${i}`, 'v')));
    raw.send(...frames);
    await waitFor(() => raw.closed() || raw.goawayCode() !== undefined, { what: 'the connection closed' });
    raw.socket.destroy();
    await stillServes();
  });

  it('refuses streams beyond maxConcurrentStreams, forwarding only those within it', async () => {
    const raw = await rawH2(h.port, h.serverCa, creds(alice));
    const before = hung.seen;
    raw.send(...Array.from({ length: 6 }, (_, i) => frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, requestBlock(`/hang/${i}`))));
    await waitFor(() => raw.rstCode(9) !== undefined && raw.rstCode(11) !== undefined, { what: 'the streams over the limit refused' });
    expect(raw.rstCode(9)).toBe(constants.NGHTTP2_REFUSED_STREAM);
    await waitFor(() => hung.seen - before === 4, { what: 'four streams forwarded' });
    await stillServes();
    raw.socket.destroy();
  });

  it('resets a stream idle past streamIdleTimeout (a slow body) without forwarding more, and closes an idle session', async () => {
    const raw = await rawH2(h.port, h.serverCa, creds(alice));
    // A POST that never sends its body.
    raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestBlock('/slow-body', [], 'POST')));
    await waitFor(() => raw.rstCode(1) !== undefined, { what: 'the idle stream reset', deadline: 5000 });
    expect(raw.rstCode(1)).toBe(constants.NGHTTP2_CANCEL);
    await stillServes();
    await waitFor(() => raw.closed(), { what: 'the idle session closed', deadline: 5000 });
  });
});
