// The admin listener: separate from the proxy listener (127.0.0.1 by default), never reachable
// through it. Plain HTTP: reads are open on loopback (token off loopback), mutations need the
// bearer token. With admin.tls: HTTPS with required client certificates, admitted by the proxy's
// handshake admission and matched against admin.tls.allow (roles); see access.ts.

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ErrorCode } from '../errors.js';
import { createIdentityCache } from '../identity/identity.js';
import { sendError } from '../proxy/error-response.js';
import type { RevocationChecker } from '../revocation/types.js';
import { secureContextOptions } from '../tls/material.js';
import { authorizeAdmin, PLAIN_EXPOSED_WARNING, type AdminAccess, type AdminRole } from './access.js';
import { bearerMatches } from './auth.js';
import { AdminConnections } from './connections.js';

export interface AdminRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  /** Path parameters, e.g. {id} from '/revocations/:id'. */
  readonly params: Record<string, string>;
  readonly query: URLSearchParams;
  /** Who made the request, for the audit log: 'cert:<subject> sha256:<fingerprint>', 'token',
   *  'read-token' or 'anonymous'. */
  readonly actor: string;
  json(status: number, body: unknown): void;
  text(status: number, body: string, contentType?: string): void;
  error(code: ErrorCode, message?: string): void;
  /** Reads a JSON body up to 64 KiB; answers 400 and returns undefined when it is not JSON. */
  body(): Promise<unknown>;
}

export type AdminHandler = (r: AdminRequest) => void | Promise<void>;

interface AdminRoute {
  readonly method: string;
  readonly parts: readonly string[];
  readonly handler: AdminHandler;
  readonly mutation: boolean;
}

export interface AdminServerOptions {
  /** admin.tokenFile's token: every endpoint. */
  readonly token: string;
  readonly access: AdminAccess;
  /** Revocation applies to admin certificates as to proxy clients. */
  readonly revocation?: () => Pick<RevocationChecker, 'check'>;
}

export class AdminServer {
  readonly #routes: AdminRoute[] = [];
  readonly #server: Server;
  readonly #log: Logger;
  readonly #conns: AdminConnections | undefined;
  #token: string;
  #access: AdminAccess;
  #seq = 0;

  constructor(log: Logger, opts: AdminServerOptions) {
    this.#log = log;
    this.#token = opts.token;
    this.#access = opts.access;
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res);
    const tls = opts.access.tls;
    if (tls === undefined) {
      this.#server = createServer(handler);
    } else {
      // Own ticket keys: a session made on the proxy listener never resumes here.
      const ticketKeys = randomBytes(48);
      const https = createHttpsServer(
        { ...secureContextOptions(tls.config, tls.tls, ticketKeys), sessionIdContext: 'certgate-admin', requestCert: true, rejectUnauthorized: false },
        handler,
      );
      this.#conns = new AdminConnections(https, createIdentityCache(1000), opts.revocation ?? (() => undefined), () => this.#access.tls, ticketKeys);
      this.#server = https;
    }
    this.#warnIfExposed();
  }

  /** A reload: new TLS material and allow list for new handshakes and every next request. */
  apply(access: AdminAccess): void {
    this.#access = access;
    if (access.tls !== undefined) this.#conns?.setMaterial(access.tls);
    this.#warnIfExposed();
  }

  #warnIfExposed(): void {
    if (this.#access.exposedPlain) this.#log.warn({ event: 'admin_exposed', host: this.#access.host }, PLAIN_EXPOSED_WARNING);
  }

  /** Registers a handler. `mutation: true` requires the bearer token and is audit-logged. */
  route(method: string, path: string, handler: AdminHandler, opts: { mutation?: boolean } = {}): void {
    this.#routes.push({ method, parts: path.split('/').filter(Boolean), handler, mutation: opts.mutation ?? method !== 'GET' });
  }

  setToken(token: string): void {
    this.#token = token;
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.closeAllConnections();
      this.#server.close(() => resolve());
    });
  }

  get server(): Server {
    return this.#server;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = `admin-${++this.#seq}`;
    const url = new URL(req.url ?? '/', 'http://admin');
    const parts = url.pathname.split('/').filter(Boolean);
    let params: Record<string, string> | undefined;
    let pathKnown = false;
    let route: AdminRoute | undefined;
    for (const r of this.#routes) {
      const p = matchParts(r.parts, parts);
      if (p === undefined) continue;
      pathKnown = true;
      if (r.method === req.method || (r.method === 'GET' && req.method === 'HEAD')) {
        route = r;
        params = p;
        break;
      }
    }
    const access = this.#access;
    const token: AdminRole | undefined =
      bearerMatches(req.headers.authorization, this.#token) ? 'admin'
      : access.readToken !== undefined && bearerMatches(req.headers.authorization, access.readToken) ? 'read'
      : undefined;
    const cert = this.#conns === undefined ? { state: 'none' as const } : await this.#conns.standing(req.socket as TLSSocket);
    const verdict = authorizeAdmin({ mutation: route?.mutation ?? req.method !== 'GET', path: url.pathname, cert, token }, access);
    const r: AdminRequest = {
      req,
      res,
      requestId,
      params: params ?? {},
      query: url.searchParams,
      actor: verdict.ok ? verdict.actor : 'anonymous',
      json(status, body) {
        const text = JSON.stringify(body, null, 2) + '\n';
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-request-id': requestId, 'cache-control': 'no-store' });
        res.end(text);
      },
      text(status, body, contentType = 'text/plain; charset=utf-8') {
        res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'x-request-id': requestId, 'cache-control': 'no-store' });
        res.end(body);
      },
      error(code, message) {
        sendError(res, requestId, code, message, false);
      },
      async body() {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of req) {
          size += (c as Buffer).length;
          if (size > 64 * 1024) {
            r.error('payload_too_large', 'admin request bodies are limited to 64 KiB');
            return undefined;
          }
          chunks.push(c as Buffer);
        }
        try {
          return chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          r.error('invalid_argument', 'the body is not valid JSON');
          return undefined;
        }
      },
    };
    if (!verdict.ok) {
      const peer = cert.state === 'allowed' ? cert.id : cert.state === 'refused' ? cert.peer : undefined;
      this.#log.warn(
        { event: 'admin_refused', code: verdict.code, method: req.method, path: url.pathname, remote: req.socket.remoteAddress, subject: peer?.subject, fingerprint: peer?.fingerprint },
        `admin request refused: ${verdict.message}`,
      );
      return r.error(verdict.code, verdict.message);
    }
    if (route === undefined) return r.error(pathKnown ? 'method_not_allowed' : 'not_found');
    try {
      await route.handler(r);
    } catch (err) {
      this.#log.error({ event: 'admin_error', path: url.pathname, err }, 'admin handler failed');
      if (!res.headersSent) r.error('internal_error', (err as Error).message);
      else res.destroy();
    }
  }
}

function matchParts(pattern: readonly string[], parts: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(parts[i]!);
    else if (p !== parts[i]) return undefined;
  }
  return params;
}
