import type { CompiledRoute } from './policy/compile.js';

// The one table of refusal codes. Every JSON error body, log line and metric label uses these
// codes; they are public API (documented in the README), never renamed.

export const ErrorCodes = {
  certificate_required: { status: 401, message: 'a client certificate is required' },
  api_key_invalid: { status: 401, message: 'the API key is not valid' },
  api_key_expired: { status: 401, message: 'the API key has expired; use a client certificate' },
  certificate_untrusted: { status: 403, message: 'the client certificate is not issued by a trusted CA' },
  certificate_expired: { status: 403, message: 'the client certificate has expired' },
  certificate_not_yet_valid: { status: 403, message: 'the client certificate is not yet valid' },
  certificate_revoked: { status: 403, message: 'the client certificate has been revoked' },
  revocation_unknown: { status: 403, message: 'the revocation status of the client certificate could not be determined' },
  weak_certificate: { status: 403, message: 'the client certificate does not meet the certificate policy' },
  identity_not_allowed: { status: 403, message: 'this identity is not allowed on this route' },
  route_not_found: { status: 404, message: 'no route matches this request' },
  payload_too_large: { status: 413, message: 'the request body exceeds the limit of this route' },
  misdirected_request: { status: 421, message: 'the Host header does not match the TLS server name' },
  headers_too_large: { status: 431, message: 'the request headers are too large' },
  bad_path: { status: 400, message: 'the request path is not in canonical form' },
  bad_request: { status: 400, message: 'the request is malformed' },
  request_timeout: { status: 408, message: 'the request was not received in time' },
  upstream_unavailable: { status: 502, message: 'the upstream could not be reached' },
  upstream_timeout: { status: 504, message: 'the upstream did not answer in time' },
  service_unavailable: { status: 503, message: 'certgate is shutting down' },
  // Admin API
  unauthorized: { status: 401, message: 'authentication is required' },
  admin_forbidden: { status: 403, message: 'this admin endpoint needs the admin role' },
  not_found: { status: 404, message: 'not found' },
  method_not_allowed: { status: 405, message: 'method not allowed' },
  invalid_argument: { status: 400, message: 'the request body is invalid' },
  internal_error: { status: 500, message: 'internal error' },
  enrollment_refused: { status: 403, message: 'enrollment refused' },
  too_many_requests: { status: 429, message: 'too many requests' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

/** The JSON body of every refusal: {"error":{"code","message","requestId"}}. */
export function errorBody(code: ErrorCode, requestId: string, message?: string): string {
  return JSON.stringify({ error: { code, message: message ?? ErrorCodes[code].message, requestId } });
}

/**
 * The one refusal: the code decides the status, the message goes to the body and the log.
 * Returned by request admission (with the route matched so far, for the access log) and thrown
 * by EST. `close` ends the connection after the answer.
 */
export class Refusal extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly close: boolean;
  readonly route: CompiledRoute | undefined;
  constructor(code: ErrorCode, message?: string, close = false, route?: CompiledRoute) {
    super(message ?? ErrorCodes[code].message);
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.close = close;
    this.route = route;
  }
}

// Config errors moved to src/config/issues.ts; re-exported so that importers keep working.
export { ConfigError, formatConfigIssue, type ConfigIssue } from './config/issues.js';
