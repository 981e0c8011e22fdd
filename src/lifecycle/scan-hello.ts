// A bare TLS ClientHello and the first message the server answers with: what testssl.sh calls
// "sockets" mode. The scan uses it to ask "would you negotiate this?" for protocol versions and
// cipher suites that the local OpenSSL (and so Node) can no longer offer (SSLv3, RC4, 3DES,
// export, NULL), and it learns the answer from the ServerHello, before any client certificate
// is asked for, so an mTLS endpoint is probed as well as a public one.

import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { connect } from 'node:net';

export const SSL3 = 0x0300;
export const TLS10 = 0x0301;
export const TLS11 = 0x0302;
export const TLS12 = 0x0303;

/** The server's answer to one ClientHello. */
export type HelloAnswer =
  | { readonly kind: 'accepted'; readonly version: number; readonly suite: number }
  | { readonly kind: 'refused'; readonly reason: string }
  | { readonly kind: 'inconclusive'; readonly reason: string };

const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);
const ext = (type: number, body: Buffer): Buffer => Buffer.concat([u16(type), vec16(body)]);

// x25519, P-256, P-384, P-521, ffdhe2048/3072
const GROUPS = [0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101];
// ECDSA/RSA-PSS/RSA PKCS#1 with SHA-256/384/512, then SHA-1 (old servers sign with nothing else)
const SIG_ALGS = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201];

/** The ClientHello record: `version` is the highest the client claims (no supported_versions: TLS 1.2 at most). */
export function clientHello(version: number, suites: readonly number[], servername: string | undefined): Buffer {
  const exts: Buffer[] = [];
  if (servername !== undefined && isIP(servername) === 0) {
    const name = Buffer.from(servername, 'ascii');
    exts.push(ext(0x0000, vec16(Buffer.concat([Buffer.from([0]), vec16(name)]))));
  }
  exts.push(ext(0x000a, vec16(Buffer.concat(GROUPS.map(u16)))));
  exts.push(ext(0x000b, Buffer.from([1, 0]))); // ec_point_formats: uncompressed
  if (version >= TLS12) exts.push(ext(0x000d, vec16(Buffer.concat(SIG_ALGS.map(u16)))));
  exts.push(ext(0xff01, Buffer.from([0]))); // renegotiation_info (empty): servers insist on it
  const body = Buffer.concat([
    u16(version),
    randomBytes(32),
    Buffer.from([0]), // no session id
    vec16(Buffer.concat([...suites.map(u16), u16(0x00ff)])), // + TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    Buffer.from([1, 0]), // compression: null
    ...(version > SSL3 ? [vec16(Buffer.concat(exts))] : []),
  ]);
  const handshake = Buffer.concat([Buffer.from([0x01]), u24(body.length), body]);
  return Buffer.concat([Buffer.from([0x16]), u16(Math.min(version, TLS10)), u16(handshake.length), handshake]);
}

/** The first record the server sends, read into an answer; undefined while it is incomplete. */
export function readAnswer(buf: Buffer): HelloAnswer | undefined {
  if (buf.length < 5) return undefined;
  const type = buf[0]!;
  const len = buf.readUInt16BE(3);
  if (type === 0x15) return buf.length < 7 ? undefined : { kind: 'refused', reason: `alert ${buf[6]}` };
  if (type !== 0x16) return { kind: 'inconclusive', reason: `not TLS (record type ${type})` };
  // The ServerHello: type(1) length(3) version(2) random(32) session_id(1+n) suite(2)
  const need = 5 + Math.min(len, 4 + 2 + 32 + 1);
  if (buf.length < need) return undefined;
  if (buf[5] !== 0x02) return { kind: 'inconclusive', reason: `handshake message ${buf[5]} instead of ServerHello` };
  const sidLen = buf[5 + 4 + 2 + 32]!;
  const at = 5 + 4 + 2 + 32 + 1 + sidLen;
  if (buf.length < at + 2) return undefined;
  return { kind: 'accepted', version: buf.readUInt16BE(9), suite: buf.readUInt16BE(at) };
}

/** Sends one ClientHello to host:port and reads the answer (bounded by timeoutMs). */
export function sendHello(host: string, port: number, hello: Buffer, timeoutMs: number): Promise<HelloAnswer> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const socket = connect({ host, port });
    const finish = (a: HelloAnswer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => finish({ kind: 'inconclusive', reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => socket.write(hello));
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const a = readAnswer(buf);
      if (a !== undefined) finish(a);
    });
    // A server that does not like the hello often just closes: that is a refusal.
    socket.once('end', () => finish({ kind: 'refused', reason: 'connection closed' }));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNRESET' ? { kind: 'refused', reason: 'connection reset' } : { kind: 'inconclusive', reason: `${err.code ?? ''} ${err.message}`.trim() }),
    );
  });
}
