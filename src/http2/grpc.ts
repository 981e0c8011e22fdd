// gRPC's view of certgate's refusals: a gRPC client reads grpc-status, not the HTTP status, so a
// refused call is answered HTTP 200 with the status mapped from the one certgate would send and
// the certgate error code in grpc-message (after the gRPC spec's HTTP-to-gRPC mapping, with
// 413/429/431 as RESOURCE_EXHAUSTED and 400 as INVALID_ARGUMENT: the call itself was malformed).

export const GrpcStatus = {
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export function grpcStatusOf(httpStatus: number): number {
  switch (httpStatus) {
    case 400: return GrpcStatus.INVALID_ARGUMENT;
    case 401: return GrpcStatus.UNAUTHENTICATED;
    case 403: return GrpcStatus.PERMISSION_DENIED;
    case 404: case 405: return GrpcStatus.UNIMPLEMENTED;
    case 408: return GrpcStatus.DEADLINE_EXCEEDED;
    case 413: case 429: case 431: return GrpcStatus.RESOURCE_EXHAUSTED;
    case 421: return GrpcStatus.FAILED_PRECONDITION;
    case 500: return GrpcStatus.INTERNAL;
    case 502: case 503: case 504: return GrpcStatus.UNAVAILABLE;
    default: return GrpcStatus.UNKNOWN;
  }
}

/** grpc-message is percent-encoded: printable ASCII except '%' stays, everything else as %XX of UTF-8. */
export function grpcMessage(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  return out;
}

/** A request whose content-type starts with application/grpc (headers as a flat raw list). */
export function isGrpcRequest(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length === 12 && n.toLowerCase() === 'content-type') return raw[i + 1]!.toLowerCase().startsWith('application/grpc');
  }
  return false;
}
