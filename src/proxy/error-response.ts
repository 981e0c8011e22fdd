// The one error writer: every refusal certgate answers itself (proxy, upgrades, parser errors,
// EST, admin API) gets the same JSON body and the same headers.

import type { ServerResponse } from 'node:http';
import { ErrorCodes, errorBody, type ErrorCode } from '../errors.js';

/**
 * Writes `{"error":{code,message,requestId}}` with its status; `close` ends the connection after.
 * `extra` adds headers (e.g. www-authenticate). A response already started is cut instead.
 */
export function sendError(res: ServerResponse, requestId: string, code: ErrorCode, message: string | undefined, close: boolean, extra?: readonly string[]): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
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
