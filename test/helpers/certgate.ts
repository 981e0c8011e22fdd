// Starts certgate in-process on 127.0.0.1:0 with a YAML config written to a temp folder (so the
// real loader runs), in front of a real echo backend; and real mTLS clients to call it.

import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Client } from 'undici';
import { stringify } from 'yaml';
import { startApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';

export interface TlsFiles {
  /** Server leaf + chain, PEM. */
  serverCert: string;
  serverKey: string;
  /** What certgate trusts for clients (roots and intermediates), PEM. */
  caBundle: string;
}

export interface ClientCreds {
  /** Leaf (+ chain the client sends), PEM. */
  cert?: string;
  key?: string;
}

export interface Harness {
  readonly app: App;
  readonly backend: EchoBackend;
  readonly dir: string;
  readonly configFile: string;
  readonly port: number;
  readonly adminUrl: string;
  readonly origin: string;
  /** The CA that signed the server certificate, for clients to trust. */
  readonly serverCa: string;
  request(path: string, opts?: RequestOpts): Promise<Reply>;
  /** Rewrites the config file (merged over the base object) without reloading. */
  writeConfig(patch: (cfg: Record<string, unknown>) => void): void;
  close(): Promise<void>;
}

export interface RequestOpts {
  client?: ClientCreds;
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  servername?: string;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

export interface HarnessOptions {
  tls: TlsFiles;
  /** CA PEM that clients use to verify the server. */
  serverCa: string;
  /** Routes; `upstream: BACKEND` is replaced with the echo backend's URL. */
  routes: Record<string, unknown>[];
  /** Extra top-level config keys, merged shallowly. */
  extra?: Record<string, unknown>;
  admin?: boolean;
}

export const BACKEND = '$BACKEND';

export async function startHarness(opts: HarnessOptions): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-test-'));
  writeFileSync(join(dir, 'server.pem'), opts.tls.serverCert);
  writeFileSync(join(dir, 'server-key.pem'), opts.tls.serverKey, { mode: 0o600 });
  writeFileSync(join(dir, 'clients-ca.pem'), opts.tls.caBundle);
  const backend = await startEchoBackend();
  const base: Record<string, unknown> = {
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['clients-ca.pem'] },
    admin: { enabled: opts.admin ?? false, host: '127.0.0.1', port: 0 },
    log: { level: 'silent', access: false },
    watch: { enabled: false },
    ...opts.extra,
    routes: opts.routes.map((r) => ({
      ...r,
      upstream: Array.isArray(r.upstream) ? r.upstream.map((u) => (u === BACKEND ? backend.url : u)) : r.upstream === BACKEND ? backend.url : r.upstream,
    })),
  };
  const configFile = join(dir, 'certgate.yaml');
  writeFileSync(configFile, stringify(base));
  const app = await startApp(loadConfig(configFile));
  const origin = `https://127.0.0.1:${app.port}`;
  const h: Harness = {
    app,
    backend,
    dir,
    configFile,
    port: app.port,
    adminUrl: app.adminPort !== undefined ? `http://127.0.0.1:${app.adminPort}` : '',
    origin,
    serverCa: opts.serverCa,
    request: (path, r = {}) => mtlsRequest(origin, opts.serverCa, path, r),
    writeConfig(patch) {
      patch(base);
      writeFileSync(configFile, stringify(base));
    },
    async close() {
      await app.stop();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

/** One request on a fresh mTLS connection. */
export async function mtlsRequest(origin: string, ca: string, path: string, r: RequestOpts = {}): Promise<Reply> {
  const client = new Client(origin, {
    connect: { ca, cert: r.client?.cert, key: r.client?.key, servername: r.servername ?? 'localhost', rejectUnauthorized: true },
  });
  try {
    const res = await client.request({ path, method: (r.method ?? 'GET') as 'GET', headers: r.headers, body: r.body });
    const text = await res.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, headers: res.headers, text, json };
  } finally {
    await client.close().catch(() => {});
  }
}

/** A raw TLS socket to certgate, for requests undici would refuse to send (smuggling, bad paths). */
export function rawTls(port: number, ca: string, client: ClientCreds = {}, servername = 'localhost'): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, cert: client.cert, key: client.key, servername }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends raw bytes on a socket and collects everything until the peer closes or `ms` pass. */
export function exchange(socket: TLSSocket, data: string | Buffer, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const done = () => {
      clearTimeout(t);
      resolve(out);
    };
    const t = setTimeout(() => {
      socket.destroy();
      done();
    }, ms);
    socket.on('data', (c: Buffer) => (out += c.toString('latin1')));
    socket.once('close', done);
    socket.once('error', done);
    socket.write(data);
  });
}
