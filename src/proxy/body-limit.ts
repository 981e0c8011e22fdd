// A route's request body limit: refused up front from Content-Length, or counted while a chunked
// body streams through.

import { Transform } from 'node:stream';

/** Counts streamed request body bytes and fails the stream past the route's limit. */
export function limitBytes(max: number, onExceed: () => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > max) {
        onExceed();
        cb(new Error('request body too large'));
        return;
      }
      cb(null, chunk);
    },
  });
}

/** The Content-Length is over the route's limit (refused before anything is forwarded). */
export function declaredTooLarge(contentLength: string | undefined, max: number): boolean {
  return contentLength !== undefined && Number(contentLength) > max;
}

export const tooLargeMessage = (max: number): string => `the request body exceeds ${max} bytes`;
