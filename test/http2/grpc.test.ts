// gRPC through certgate: @grpc/grpc-js with a client certificate, certgate with listen.http2 and a
// route with upstreamProtocol h2c, a grpc-js server on 127.0.0.1 behind it. Unary, server
// streaming, a deadline, refused calls as gRPC statuses, trailers intact.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/certgate.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

const bytes = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const method = (path: string, responseStream = false) => ({ path, requestStream: false, responseStream, requestSerialize: bytes.serialize, requestDeserialize: bytes.deserialize, responseSerialize: bytes.serialize, responseDeserialize: bytes.deserialize });
const service = {
  echo: method('/test.Echo/Echo'),
  count: method('/test.Echo/Count', true),
  slow: method('/test.Echo/Slow'),
  fail: method('/test.Echo/Fail'),
};
const EchoClient = grpc.makeGenericClientConstructor(service, 'Echo');
type Client = InstanceType<typeof EchoClient> & Record<string, any>;

let pki: TestPki;
let h: Harness;
let alice: TestCert;
let bob: TestCert;
let server: grpc.Server;
let slowCancelled = false;
let lastMetadata: grpc.Metadata | undefined;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ cn: 'alice' });
  bob = await pki.client({ cn: 'bob' });
  server = new grpc.Server();
  server.addService(service as unknown as grpc.ServiceDefinition, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      lastMetadata = call.metadata;
      const trailer = new grpc.Metadata();
      trailer.set('x-trailer', 'kept');
      cb(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer);
    },
    count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      for (let i = 0; i < n; i++) call.write(Buffer.from(String(i)));
      call.end();
    },
    slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const t = setTimeout(() => cb(null, Buffer.from('late')), 5000);
      call.on('cancelled', () => {
        slowCancelled = true;
        clearTimeout(t);
      });
    },
    fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' }),
  });
  const grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  h = await startHarness({
    tls: { serverCert: pki.server.chainPem, serverKey: pki.server.keyPem, caBundle: pki.caBundlePem },
    serverCa: pki.rootPem,
    routes: [
      { name: 'grpc', match: { pathPrefix: '/test.Echo' }, upstream: `http://127.0.0.1:${grpcPort}`, upstreamProtocol: 'h2c', allow: [{ cn: 'alice' }] },
    ],
    extra: { listen: { host: '127.0.0.1', port: 0, http2: true } },
  });
});

afterAll(async () => {
  await h?.close();
  server?.forceShutdown();
});

function client(c: TestCert | undefined): Client {
  const creds = grpc.credentials.createSsl(Buffer.from(pki.rootPem), c ? Buffer.from(c.keyPem) : null, c ? Buffer.from(c.chainPem) : null);
  return new EchoClient(`localhost:${h.port}`, creds) as Client;
}

function unary(cl: Client, name: string, req: Buffer, deadlineMs?: number): Promise<{ err: grpc.ServiceError | null; value?: Buffer; trailers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const call = cl[name](req, new grpc.Metadata(), deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, value?: Buffer) =>
      setImmediate(() => resolve({ err, ...(value !== undefined ? { value } : {}), ...(trailers !== undefined ? { trailers } : {}) })),
    );
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

describe('gRPC through certgate (upstreamProtocol: h2c)', () => {
  it('passes a unary call with its trailers and the verified identity in the metadata', async () => {
    const cl = client(alice);
    try {
      const r = await unary(cl, 'echo', Buffer.from('hi'));
      expect(r.err).toBeNull();
      expect(r.value!.toString()).toBe('echo:hi');
      expect(r.trailers!.get('x-trailer')).toEqual(['kept']);
      expect(lastMetadata!.get('x-client-cert-cn')).toEqual(['alice']);
      expect(lastMetadata!.get('x-client-cert-fingerprint')).toEqual([alice.fingerprint256]);
    } finally {
      cl.close();
    }
  });

  it('streams a server-streaming call to the end', async () => {
    const cl = client(alice);
    try {
      const got: string[] = [];
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        const call = cl.count(Buffer.from('50'));
        call.on('data', (b: Buffer) => got.push(b.toString()));
        call.on('status', resolve);
        call.on('error', () => {});
      });
      expect(status.code).toBe(grpc.status.OK);
      expect(got).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    } finally {
      cl.close();
    }
  });

  it('passes an upstream error status (trailers-only answer) unchanged', async () => {
    const cl = client(alice);
    try {
      const r = await unary(cl, 'fail', Buffer.from('x'));
      expect(r.err!.code).toBe(grpc.status.NOT_FOUND);
      expect(r.err!.details).toBe('no such thing');
    } finally {
      cl.close();
    }
  });

  it('honours the deadline: DEADLINE_EXCEEDED for the client, and the upstream call is cancelled', async () => {
    const cl = client(alice);
    slowCancelled = false;
    try {
      const r = await unary(cl, 'slow', Buffer.from('x'), 300);
      expect(r.err!.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      await waitFor(() => slowCancelled, { what: 'the upstream call cancelled' });
    } finally {
      cl.close();
    }
  });

  it('answers a refused call as gRPC: PERMISSION_DENIED with the certgate code in grpc-message', async () => {
    const cl = client(bob);
    try {
      const r = await unary(cl, 'echo', Buffer.from('hi'));
      expect(r.err!.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(r.err!.details).toContain('identity_not_allowed');
    } finally {
      cl.close();
    }
  });

  it('answers a call without a client certificate UNAUTHENTICATED and an unknown method UNIMPLEMENTED', async () => {
    const anon = client(undefined);
    const cl = client(alice);
    try {
      const r = await unary(anon, 'echo', Buffer.from('hi'));
      expect(r.err!.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(r.err!.details).toContain('certificate_required');
      const Other = grpc.makeGenericClientConstructor({ nope: method('/other.Svc/Nope') }, 'Other');
      const other = new Other(`localhost:${h.port}`, grpc.credentials.createSsl(Buffer.from(pki.rootPem), Buffer.from(alice.keyPem), Buffer.from(alice.chainPem))) as Client;
      const n = await unary(other, 'nope', Buffer.from('x'));
      other.close();
      expect(n.err!.code).toBe(grpc.status.UNIMPLEMENTED);
      expect(n.err!.details).toContain('route_not_found');
    } finally {
      anon.close();
      cl.close();
    }
  });
});
