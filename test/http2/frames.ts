// A raw HTTP/2 client over mTLS for the attacks Node's client will not produce: frames built by
// hand (HPACK literals only), frames read back (GOAWAY and RST_STREAM codes).

import { connect, type TLSSocket } from 'node:tls';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 1, END_HEADERS: 4, ACK: 1 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an n-bit prefix. */
function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Literal header field without indexing, new name (or with incremental indexing when `index`). */
export function literal(name: string, value: string, index = false): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([index ? 0x40 : 0x00]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v]);
}

/** An indexed header field (a reference into the static or dynamic table). */
export const indexed = (i: number): Buffer => hpackInt(i, 7, 0x80);

export function requestBlock(path: string, extra: Buffer[] = [], method = 'GET'): Buffer {
  return Buffer.concat([literal(':method', method), literal(':scheme', 'https'), literal(':path', path), literal(':authority', 'localhost'), ...extra]);
}

export interface RawH2 {
  readonly socket: TLSSocket;
  /** Frames received so far. */
  readonly frames: { type: number; flags: number; stream: number; payload: Buffer }[];
  send(...frames: Buffer[]): void;
  /** The GOAWAY error code, once one arrived. */
  goawayCode(): number | undefined;
  rstCode(stream: number): number | undefined;
  closed(): boolean;
}

export function rawH2(port: number, ca: string, client: { cert: string; key: string }): Promise<RawH2> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, ...client, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
      resolve(raw);
    });
    let buf = Buffer.alloc(0);
    let isClosed = false;
    const frames: RawH2['frames'] = [];
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f = { type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        frames.push(f);
        // Acknowledge the server's SETTINGS, as any client must.
        if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0 && !socket.destroyed) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        buf = buf.subarray(9 + len);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => (isClosed = true));
    socket.once('error', reject);
    const raw: RawH2 = {
      socket,
      frames,
      send: (...fs) => !socket.destroyed && socket.write(Buffer.concat(fs)),
      goawayCode: () => {
        const g = frames.find((f) => f.type === FRAME.GOAWAY);
        return g === undefined ? undefined : g.payload.readUInt32BE(4);
      },
      rstCode: (stream) => {
        const r = frames.find((f) => f.type === FRAME.RST_STREAM && f.stream === stream);
        return r === undefined ? undefined : r.payload.readUInt32BE(0);
      },
      closed: () => isClosed,
    };
  });
}
