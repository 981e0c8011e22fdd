// The one error writer: every refusal certgate answers itself (proxy, upgrades, parser errors,
// EST, admin API) gets the same JSON body and the same headers; a gRPC call over HTTP/2 gets the
// same refusal as grpc-status and grpc-message instead.

import type { ServerResponse } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { ErrorCodes, errorBody, type ErrorCode } from '../errors.js';
import { grpcMessage, grpcStatusOf } from '../http2/grpc.js';

const kGrpc = Symbol('certgate.grpc');
type MaybeGrpc = ServerResponse & { [kGrpc]?: ServerHttp2Stream };

/** Marks the response of an HTTP/2 gRPC call: its refusals are written as gRPC statuses. */
export function answerAsGrpc(res: ServerResponse, stream: ServerHttp2Stream): void {
  (res as MaybeGrpc)[kGrpc] = stream;
}

/**
 * Writes `{"error":{code,message,requestId}}` with its status; `close` ends the connection after.
 * `extra` adds headers (e.g. www-authenticate). A response already started is cut instead.
 */
export function sendError(res: ServerResponse, requestId: string, code: ErrorCode, message: string | undefined, close: boolean, extra?: readonly string[]): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const grpc = (res as MaybeGrpc)[kGrpc];
  if (grpc !== undefined) return grpcError(grpc, requestId, code, message);
  const body = errorBody(code, requestId, message);
  if (close) res.shouldKeepAlive = false;
  const headers = [
    'content-type', 'application/json',
    'content-length', String(Buffer.byteLength(body)),
    'x-request-id', requestId,
    'cache-control', 'no-store',
  ];
  if (extra !== undefined) headers.push(...extra);
  res.writeHead(ErrorCodes[code].status, headers);
  res.end(body);
}

/** A trailers-only gRPC answer: one HEADERS frame that ends the stream, as gRPC clients expect. */
function grpcError(stream: ServerHttp2Stream, requestId: string, code: ErrorCode, message: string | undefined): void {
  if (stream.destroyed) return;
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(grpcStatusOf(ErrorCodes[code].status)),
      'grpc-message': grpcMessage(`${code}: ${message ?? ErrorCodes[code].message}`),
      'x-request-id': requestId,
    },
    { endStream: true },
  );
}

/** The same response as raw bytes, for sockets with no ServerResponse (upgrades, parser errors). */
export function rawErrorResponse(code: ErrorCode, requestId: string, message?: string): string {
  const body = errorBody(code, requestId, message);
  return (
    `HTTP/1.1 ${ErrorCodes[code].status} ${code.replace(/_/g, ' ')}\r\n` +
    `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `x-request-id: ${requestId}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`
  );
}

const PLAIN_BODY = 'This port speaks TLS (HTTPS): a plain HTTP request was sent. Use https://\n';

/** What a plain-HTTP client gets on the TLS port (like nginx's 400 "plain HTTP request was sent to HTTPS port"). */
export const PLAIN_HTTP_ON_TLS_PORT =
  `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(PLAIN_BODY)}\r\n` +
  `cache-control: no-store\r\nconnection: close\r\n\r\n${PLAIN_BODY}`;
