// gRPC over HTTP/2 as the bench speaks it, without a gRPC library: a unary call is one POST
// with `content-type: application/grpc` whose body is one length-prefixed message (1 byte
// compressed flag, 4 bytes big-endian length, the bytes), answered by one message and the
// `grpc-status` trailer. The bench's generic service carries opaque bytes.

export const GRPC_PATH = '/bench.Bench/Echo';
export const GRPC_PREFIX = '/bench.Bench/';

/** One uncompressed length-prefixed message. */
export function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** A small request message, as a typical unary call carries (an id and a few fields). */
export const GRPC_REQUEST = grpcFrame(Buffer.alloc(32, 0x71));
export const GRPC_REPLY = grpcFrame(Buffer.from('{"ok":true}'));
