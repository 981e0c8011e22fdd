// The HTTP/1.1 response parser of certgate's upstream client (RFC 9112). Strict where a lenient
// reading could desynchronise a kept-alive connection: a head that is not exactly status line,
// header lines and CRLF CRLF, an obs-fold, a control character, Content-Length beside
// Transfer-Encoding, differing lengths, a malformed chunk line: each is an error, and the
// connection is never used again. Bodies are handed on as slices of the socket's buffers.

/** What the parser hands on; one sink per connection, set once. */
export interface ResponseSink {
  /** A final (2xx-5xx) head; `headers` are the end-to-end ones, hop-by-hop removed. */
  onResponseHead(status: number, reason: string, headers: string[]): void;
  onResponseBody(chunk: Buffer): void;
}

export class ResponseError extends Error {
  readonly code = 'UPSTREAM_BAD_RESPONSE';
}

const enum S {
  Head,
  Length,
  UntilClose,
  ChunkSize,
  ChunkExt,
  ChunkSizeLf,
  ChunkData,
  ChunkDataCr,
  ChunkDataLf,
  /** At the start of a trailer line (or of the empty line that ends the message). */
  Trailer,
  TrailerLine,
  TrailerLineLf,
  TrailerEndLf,
  Done,
}

const HEAD_END = Buffer.from('\r\n\r\n');
/** tchar (RFC 9110 5.6.2), by byte. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;
/** Content-Length digits: 15 are 10^15 bytes, past any real body. */
const MAX_LENGTH_DIGITS = 15;
const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
/** A chunk-size line's hex digits: 13 digits are 2^52, past any real body. */
const MAX_SIZE_DIGITS = 13;

/** What a header's name makes of it. */
const enum Field {
  Plain,
  ContentLength,
  TransferEncoding,
  Connection,
  KeepAlive,
  /** Proxy-Connection, Upgrade, TE, Trailer: hop-by-hop, dropped. */
  Hop,
}

/** The Content-Length value in bytes [from, to): 1 to 15 digits; -1 when it is anything else. */
function lengthOf(buf: Buffer, from: number, to: number): number {
  if (to === from || to - from > MAX_LENGTH_DIGITS) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** What a header's name makes of it; a lowercased copy only for names of the lengths that matter. */
function fieldOf(name: string): Field {
  // The lengths of Content-Length and of the hop-by-hop names: no copy for any other header.
  const n = name.length;
  if (n !== 14 && n !== 17 && n !== 10 && n !== 16 && n !== 7 && n !== 2) return Field.Plain;
  const lower = name.toLowerCase();
  switch (lower) {
    case 'content-length':
      return Field.ContentLength;
    case 'transfer-encoding':
      return Field.TransferEncoding;
    case 'connection':
      return Field.Connection;
    case 'keep-alive':
      return Field.KeepAlive;
    default:
      return hopByHop(lower) ? Field.Hop : Field.Plain;
  }
}

/**
 * The end of the head line starting at `from`: the CR of its CRLF, or `end` (where the head's
 * CRLF CRLF starts). Control characters other than HTAB, and a CR or LF alone, are errors.
 */
function lineEnd(buf: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const c = buf[i]!;
    if (c >= SP) {
      if (c === 127) throw bad('a control character in the head');
      continue;
    }
    // buf[end .. end + 3] is the head's CRLF CRLF, so buf[i + 1] exists.
    if (c === CR && buf[i + 1] === LF) return i;
    if (c !== HTAB) throw bad('a control character, or a CR or LF alone, in the head');
  }
  return end;
}

function bad(message: string): ResponseError {
  return new ResponseError(`invalid response from the upstream: ${message}`);
}

const HTTP_1 = Buffer.from('HTTP/1.');

/** `HTTP/1.` at `at`, compared in place (a subarray would be an object per response). */
function startsWithHttp1(buf: Buffer, at: number): boolean {
  for (let i = 0; i < HTTP_1.length; i++) if (buf[at + i] !== HTTP_1[i]) return false;
  return true;
}

/** The reason phrase; "OK", nearly every response's, without a new string. */
function reasonOf(line: string, at: number, eol: number): string {
  if (eol - at === 2 && line.charCodeAt(at) === 79 && line.charCodeAt(at + 1) === 75) return 'OK';
  return line.slice(at, eol);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Headers a proxy never passes on to the client (RFC 9110 7.6.1), by lowercased name. */
export function hopByHop(lower: string): boolean {
  return lower === 'connection' || lower === 'keep-alive' || lower === 'proxy-connection' || lower === 'transfer-encoding' || lower === 'upgrade' || lower === 'te' || lower === 'trailer';
}

export class ResponseParser {
  readonly #sink: ResponseSink;
  readonly #maxHead: number;
  #state = S.Done;
  #noBody = false;
  #partial: Buffer | undefined = undefined;
  /** Body bytes left: of the Content-Length, or of the current chunk. */
  #left = 0;
  #digits = 0;
  /** Bytes of the chunk extensions and trailer section read, bounded like a head. */
  #extra = 0;
  /** The connection can carry another request once this response is done. */
  keepAlive = false;
  /** From a `Keep-Alive: timeout=N` header, in ms; 0 when none. */
  keepAliveHint = 0;
  /** Bytes came after the end of the response: the connection must not be used again. */
  trailing = false;
  /** Any byte of this response has been read. */
  started = false;
  /** The last Keep-Alive header value read and the timeout in it (ms, 0 when none). */
  #keepAliveValue = '';
  #keepAliveMs = 0;

  constructor(sink: ResponseSink, maxHeadBytes: number) {
    this.#sink = sink;
    this.#maxHead = maxHeadBytes;
  }

  /** Expect a response to a new request (`noBody`: a HEAD request). */
  expect(noBody: boolean): void {
    this.#state = S.Head;
    this.#noBody = noBody;
    this.#partial = undefined;
    this.keepAlive = false;
    this.trailing = false;
    this.started = false;
  }

  get done(): boolean {
    return this.#state === S.Done;
  }

  /** Reads bytes from the socket; throws ResponseError. Bytes past the response set `trailing`. */
  execute(buf: Buffer): void {
    if (buf.length === 0) return;
    if (this.#state === S.Done) {
      this.trailing = true;
      return;
    }
    this.started = true;
    let at = 0;
    while (at < buf.length) {
      switch (this.#state) {
        case S.Head:
          at = this.#head(buf, at);
          if (at < 0) return;
          break;
        case S.Length: {
          const n = Math.min(this.#left, buf.length - at);
          this.#left -= n;
          this.#sink.onResponseBody(at === 0 && n === buf.length ? buf : buf.subarray(at, at + n));
          at += n;
          if (this.#left === 0) this.#state = S.Done;
          break;
        }
        case S.UntilClose:
          this.#sink.onResponseBody(at === 0 ? buf : buf.subarray(at));
          return;
        case S.ChunkData: {
          const n = Math.min(this.#left, buf.length - at);
          this.#left -= n;
          this.#sink.onResponseBody(buf.subarray(at, at + n));
          at += n;
          if (this.#left === 0) this.#state = S.ChunkDataCr;
          break;
        }
        case S.Done:
          this.trailing = true;
          return;
        default:
          at = this.#chunkFraming(buf, at);
      }
    }
  }

  /** The upstream closed the connection: ends a close-delimited body, else throws. */
  end(): void {
    if (this.#state === S.UntilClose) this.#state = S.Done;
    else if (this.#state !== S.Done) throw bad(this.started ? 'the connection closed before the response was complete' : 'the connection closed before a response');
  }

  /** Returns the offset after the head, or -1 when more bytes are needed. */
  #head(input: Buffer, from: number): number {
    // With a partial head from earlier reads, parse their concatenation; offsets are mapped back.
    const partial = this.#partial;
    const buf = partial === undefined ? input : Buffer.concat([partial, input.subarray(from)]);
    const at = partial === undefined ? from : 0;
    const back = partial === undefined ? 0 : from - partial.length;
    this.#partial = undefined;
    const end = buf.indexOf(HEAD_END, at);
    if (end < 0) {
      if (buf.length - at > this.#maxHead) throw bad(`the response head is larger than ${this.#maxHead} bytes`);
      this.#partial = Buffer.from(buf.subarray(at));
      return -1;
    }
    if (end - at > this.#maxHead) throw bad(`the response head is larger than ${this.#maxHead} bytes`);
    // The head is read from the bytes: one pass per line, strings only for names and values.
    const eol = lineEnd(buf, at, end);
    const status = this.#statusLine(buf, at, eol);
    const next = end + 4 + back;
    if (status < 200) {
      // 1xx (100 Continue, 103 Early Hints): informational, read past. 101 was never asked for.
      if (status === 101) throw bad('101 Switching Protocols to a request that did not ask to upgrade');
      for (let s = eol; s < end; ) s = lineEnd(buf, s + 2, end);
      return next;
    }
    // One string for the whole head, sliced for names and values: each Buffer#toString is a call
    // into C++ that costs more than the slicing.
    const text = buf.toString('latin1', at, end);
    this.#fields(buf, text, at, eol, end, status, eol - at > 13 ? reasonOf(text, 13, eol - at) : '');
    return next;
  }

  #statusLine(buf: Buffer, at: number, eol: number): number {
    if (eol - at < 12 || !startsWithHttp1(buf, at) || (buf[at + 7] !== 49 && buf[at + 7] !== 48) || buf[at + 8] !== SP) throw bad('a malformed status line');
    let status = 0;
    for (let i = at + 9; i < at + 12; i++) {
      const d = buf[i]! - 48;
      if (d < 0 || d > 9) throw bad('a malformed status code');
      status = status * 10 + d;
    }
    if (status < 100) throw bad('a malformed status code');
    if (eol - at > 12 && buf[at + 12] !== SP) throw bad('a malformed status line');
    this.keepAlive = buf[at + 7] === 49;
    return status;
  }

  /** The header lines after the status line (which ends at `eol`), up to `end`; `text` is the head from `at`. */
  #fields(buf: Buffer, text: string, at: number, eol: number, end: number, status: number, reason: string): void {
    const headers: string[] = [];
    let length = -1;
    let chunked = false;
    let encoded = false;
    let hop: string[] | undefined;
    for (let s = eol + 2; eol < end; s = eol + 2) {
      eol = lineEnd(buf, s, end);
      let colon = s;
      while (colon < eol && TCHAR[buf[colon]!] === 1) colon++;
      if (colon === s || buf[colon] !== 58 /* : */) {
        const c0 = buf[s];
        if (c0 === SP || c0 === HTAB) throw bad('an obs-folded header line');
        throw bad(buf[colon] === 58 ? 'an empty header name' : colon === eol ? 'a header line without a colon' : 'an invalid header name');
      }
      // Optional whitespace is SP and HTAB only (String.trim would also take NBSP, a latin1 byte).
      let from = colon + 1;
      let to = eol;
      while (from < to && (buf[from] === SP || buf[from] === HTAB)) from++;
      while (to > from && (buf[to - 1] === SP || buf[to - 1] === HTAB)) to--;
      const name = text.slice(s - at, colon - at);
      const kind = fieldOf(name);
      if (kind === Field.Plain) {
        headers.push(name, text.slice(from - at, to - at));
        continue;
      }
      if (kind === Field.Hop) continue;
      const value = text.slice(from - at, to - at);
      if (kind === Field.ContentLength) {
        const n = lengthOf(buf, from, to);
        if (n < 0) throw bad('an invalid Content-Length');
        if (length >= 0 && length !== n) throw bad('differing Content-Length values');
        length = n;
        headers.push(name, value);
      } else if (kind === Field.TransferEncoding) {
        // Only chunked: the client's side is framed by Node, which could not say that the
        // body is still gzip- or otherwise transfer-coded, so such a body is refused.
        encoded = true;
        if (chunked || value.toLowerCase() !== 'chunked') throw bad(`Transfer-Encoding ${JSON.stringify(value)} (certgate reads only a single chunked)`);
        chunked = true;
      } else if (kind === Field.Connection) {
        // What nearly every kept-alive upstream sends, without splitting it.
        if (value === 'keep-alive') continue;
        for (const t of value.toLowerCase().split(',')) {
          const tok = t.trim();
          if (tok === 'close') this.keepAlive = false;
          else if (tok !== '' && tok !== 'keep-alive') (hop ??= []).push(tok);
        }
      } else if (kind === Field.KeepAlive) {
        // An upstream sends the same value on every response: read once per connection.
        if (value !== this.#keepAliveValue) {
          this.#keepAliveValue = value;
          const m = /(?:^|[,;\s])timeout\s*=\s*(\d{1,6})/i.exec(value);
          this.#keepAliveMs = m === null ? 0 : Number(m[1]) * 1000;
        }
        if (this.#keepAliveMs > 0) this.keepAliveHint = this.#keepAliveMs;
      }
    }
    if (hop !== undefined) {
      // Headers the upstream named in Connection are hop-by-hop too.
      for (let i = headers.length - 2; i >= 0; i -= 2) if (hop.includes(headers[i]!.toLowerCase())) headers.splice(i, 2);
    }
    if (encoded && length >= 0) throw bad('both Content-Length and Transfer-Encoding');
    if (this.#noBody || status === 204 || status === 304) this.#state = S.Done;
    else if (encoded) {
      this.#state = S.ChunkSize;
      this.#digits = 0;
      this.#left = 0;
      this.#extra = 0;
    } else if (length >= 0) {
      this.#left = length;
      this.#state = length === 0 ? S.Done : S.Length;
    } else {
      this.#state = S.UntilClose;
      this.keepAlive = false;
    }
    this.#sink.onResponseHead(status, reason, headers);
  }

  /** Chunk-size lines, the CRLF after each chunk, the trailer section; returns the next offset. */
  #chunkFraming(buf: Buffer, at: number): number {
    while (at < buf.length) {
      const c = buf[at]!;
      switch (this.#state) {
        case S.ChunkSize: {
          const h = hexValue(c);
          if (h >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) throw bad('a chunk size too large');
            this.#left = this.#left * 16 + h;
          } else if (this.#digits === 0) throw bad('a malformed chunk size');
          else if (c === CR) this.#state = S.ChunkSizeLf;
          else if (c === 59 /* ; */ || c === 32 || c === 9) this.#state = S.ChunkExt;
          else throw bad('a malformed chunk size');
          break;
        }
        case S.ChunkExt:
          if (c === CR) this.#state = S.ChunkSizeLf;
          else if ((c < 32 && c !== 9) || c === 127) throw bad('a control character in a chunk extension');
          else if (++this.#extra > this.#maxHead) throw bad('chunk extensions too long');
          break;
        case S.ChunkSizeLf:
          if (c !== LF) throw bad('a chunk size line without CRLF');
          this.#digits = 0;
          if (this.#left === 0) this.#state = S.Trailer;
          else {
            this.#state = S.ChunkData;
            return at + 1;
          }
          break;
        case S.ChunkDataCr:
          if (c !== CR) throw bad('chunk data longer than its size');
          this.#state = S.ChunkDataLf;
          break;
        case S.ChunkDataLf:
          if (c !== LF) throw bad('chunk data without CRLF');
          this.#state = S.ChunkSize;
          this.#left = 0;
          break;
        // Trailer fields are read past: HTTP/1.1 responses to clients carry none from here.
        case S.Trailer:
          if (c === CR) this.#state = S.TrailerEndLf;
          else if (c === LF) throw bad('a bare LF in the trailer section');
          else this.#state = S.TrailerLine;
          break;
        case S.TrailerLine:
          if (c === CR) this.#state = S.TrailerLineLf;
          else if (c === LF) throw bad('a bare LF in the trailer section');
          else if (++this.#extra > this.#maxHead) throw bad('a trailer section too large');
          break;
        case S.TrailerLineLf:
          if (c !== LF) throw bad('a bare CR in the trailer section');
          this.#state = S.Trailer;
          break;
        case S.TrailerEndLf:
          if (c !== LF) throw bad('a bare CR in the trailer section');
          this.#state = S.Done;
          return at + 1;
        default:
          return at;
      }
      at++;
    }
    return at;
  }
}
