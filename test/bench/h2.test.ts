// The bench's HTTP/2 scenarios (issue 14) work: a very short run of h2-streams, grpc-unary and
// keepalive-h2listen through the real harness (bare node:http2, the h2c gRPC backend, certgate
// with `listen.http2: true`, each its own process), every row with requests and zero errors, the
// informative checks and the HTTP/2 table. And the HTTP/2 load generator counts what it must
// count as failures. No timing assertions: this machine's numbers say nothing here.

import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRPC_PATH } from '../../bench/grpc-wire.js';
import { DEFAULTS, H2_SCENARIOS, runBench } from '../../bench/harness.js';
import { runH2Load } from '../../bench/load-h2.js';
import { computeChecks, renderMarkdown, renderTable, ROW_FIELDS, type BenchReport } from '../../bench/report.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';

function field(o: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v === null || v === undefined ? undefined : (v as Record<string, unknown>)[k]), o);
}

describe('bench HTTP/2 scenarios, a tiny run', () => {
  let rep: BenchReport;
  beforeAll(async () => {
    // The harness runs certgate and the reference servers from dist/ (test/helpers/build.ts builds it).
    rep = await runBench({
      ...DEFAULTS,
      scenarios: [...H2_SCENARIOS],
      durationMs: 300,
      warmupMs: 50,
      connections: 2,
      h2Connections: 2,
      h2Streams: 4,
      maxRequests: 200,
      // A starved machine may serve nothing in 300 ms: each target must serve some requests.
      minRequests: 5,
      pin: false,
      log: () => {},
    });
    rep.checks = computeChecks(rep);
  }, 180_000);

  it('runs each HTTP/2 scenario against its reference and certgate, every row with requests and no error', () => {
    const targets = (s: string) => rep.rows.filter((r) => r.scenario === s).map((r) => r.target);
    expect(targets('h2-streams')).toEqual(['bare-h2', 'certgate-h2']);
    expect(targets('grpc-unary')).toEqual(['bare-h2', 'certgate-h2']);
    expect(targets('keepalive-h2listen')).toEqual(['bare', 'certgate', 'certgate-h2listen']);
    for (const r of rep.rows) {
      expect(r.errors, `${r.scenario}/${r.target}: ${r.errorSamples.join('; ')}`).toBe(0);
      expect(r.requests, `${r.scenario}/${r.target}`).toBeGreaterThan(0);
      for (const f of ROW_FIELDS) expect(field(r, f), `${r.scenario}/${r.target}: ${f}`).not.toBeUndefined();
    }
    // certgate's rows are set against the scenario's bare server; its access log went to stdout.
    for (const r of rep.rows.filter((x) => x.target.startsWith('certgate'))) {
      expect(r.vsBare?.cpuRatio, `${r.scenario}/${r.target}`).toBeTypeOf('number');
      expect(r.stdoutBytesPerRequest!, `${r.scenario}/${r.target}`).toBeGreaterThan(50);
    }
    // gRPC calls through certgate reach the h2c backend, whose CPU is reported beside certgate's.
    expect(rep.rows.find((r) => r.scenario === 'grpc-unary' && r.target === 'certgate-h2')!.cpu.backendPer1k).toBeTypeOf('number');
    expect(rep.meta.options).toMatchObject({ h2Connections: 2, h2Streams: 4 });
  });

  it('reports the informative HTTP/2 checks, and the HTTP/2 table in the table and the Markdown', () => {
    for (const name of ['h2-streams: CPU/req vs bare node:http2', 'grpc-unary: CPU/call vs bare node:http2', 'keepalive (HTTP/1.1) with listen.http2 on vs off']) {
      const c = rep.checks.find((x) => x.name === name && x.run === 1);
      expect(c, name).toBeDefined();
      expect(c!.limit).toBeNull();
      expect(c!.ok).toBeNull();
      expect(c!.value).toBeGreaterThan(0);
    }
    expect(rep.checks.find((c) => c.name === 'errors')?.value).toBe(0);
    const md = renderMarkdown(rep);
    expect(md).toContain('## HTTP/2');
    expect(md).toMatch(/\| grpc-unary \| certgate-h2 \| 1 \| bare-h2 \|/);
    expect(md).toMatch(/\| keepalive-h2listen \| certgate-h2listen \| 1 \| certgate \|/);
    expect(renderTable(rep)).toContain('CPU ratio');
  });
});

describe('the HTTP/2 load generator', () => {
  let pki: TestPki;
  let client: TestCert;
  let server: Http2SecureServer;
  let origin: string;

  beforeAll(async () => {
    pki = await createTestPki();
    client = await pki.client({ cn: 'bench-h2' });
    // Answers every stream with 200 and JSON: no grpc-status, as a gRPC call gone to an HTTP/1.1 backend.
    server = createSecureServer({ cert: pki.server.chainPem, key: pki.server.keyPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true });
    server.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.resume();
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end('{"ok":true}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server?.close(() => r()));
  });

  const spec = (call: 'get' | 'grpc') => ({
    endpoint: { origin, ca: pki.rootPem },
    cert: { name: 'bench-h2', cert: client.chainPem, key: client.keyPem },
    connections: 2,
    streams: 3,
    call,
    path: call === 'grpc' ? GRPC_PATH : '/',
    warmupMs: 20,
    durationMs: 200,
    maxRequests: 50,
    minRequests: 1,
  });

  it('counts plain HTTP/2 requests answered 200 on every connection', async () => {
    const res = await runH2Load(spec('get'));
    expect(res.errors, res.errorSamples.join('; ')).toBe(0);
    expect(res.requests).toBeGreaterThan(0);
    expect(res.latencies.length).toBe(Math.min(res.requests, 50));
  });

  it('counts a gRPC call answered without grpc-status 0 as an error, not a request', async () => {
    const res = await runH2Load({ ...spec('grpc'), minRequests: 0 });
    expect(res.requests).toBe(0);
    expect(res.errors).toBeGreaterThan(0);
    expect(res.errorSamples[0]).toBe('grpc-status missing');
  });

  it('refuses an endpoint that negotiates no h2 (a TLS server without ALPN)', async () => {
    const plain = createTlsServer({ cert: pki.server.chainPem, key: pki.server.keyPem }, (sock) => sock.on('error', () => {}));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const ep = { origin: `https://127.0.0.1:${(plain.address() as AddressInfo).port}`, ca: pki.rootPem };
      await expect(runH2Load({ ...spec('get'), endpoint: ep })).rejects.toThrow(/negotiated false, not h2/);
    } finally {
      await new Promise<void>((r) => plain.close(() => r()));
    }
  });
});
