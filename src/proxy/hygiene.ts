// Request hygiene: the path that is authorised is exactly the path the backend receives.
// Anything a backend might normalise differently (dot segments, encoded separators, backslashes,
// repeated slashes) is refused, never rewritten.

/** Returns the path part (no query) when the target is canonical, else undefined. */
export function canonicalPath(target: string): string | undefined {
  if (target.charCodeAt(0) !== 47 /* '/' */) return undefined; // absolute-form, '*', garbage
  let end = target.indexOf('?');
  if (end < 0) end = target.length;
  let prevSlash = false;
  for (let i = 0; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 47) {
      if (prevSlash) return undefined; // '//'
      // A dot segment: '/.' or '/..' followed by '/' or the end of the path.
      if (target.charCodeAt(i + 1) === 46) {
        const j = target.charCodeAt(i + 2) === 46 ? i + 3 : i + 2;
        if (j >= end || target.charCodeAt(j) === 47) return undefined;
      }
      prevSlash = true;
      continue;
    }
    prevSlash = false;
    if (c === 92 /* \ */ || c === 35 /* # */ || c < 0x21 || c === 0x7f) return undefined;
    if (c === 37 /* % */) {
      const h1 = target.charCodeAt(i + 1);
      const h2 = target.charCodeAt(i + 2) | 0x20; // lowercase the second hex digit
      // %2e '.', %2f '/', %5c '\', %00 NUL: the backend could decode them into a different path.
      if (h1 === 50 && (h2 === 101 || h2 === 102)) return undefined;
      if (h1 === 53 && h2 === 99) return undefined;
      if (h1 === 48 && h2 === 48) return undefined;
      if (!isHex(h1) || !isHex(target.charCodeAt(i + 2))) return undefined;
    }
  }
  // The query may carry anything encoded, but never raw control characters or a fragment.
  for (let i = end; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c < 0x21 || c === 0x7f || c === 35) return undefined;
  }
  return end === target.length ? target : target.slice(0, end);
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** Host header value -> lowercased host without port; undefined when malformed. */
export function hostOnly(host: string): string | undefined {
  let h = host;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const close = h.indexOf(']');
    if (close < 0) return undefined;
    const rest = h.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    return h.slice(1, close).toLowerCase();
  }
  const colon = h.indexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return undefined;
    h = h.slice(0, colon);
  }
  if (h.length === 0 || !/^[A-Za-z0-9.\-_]+$/.test(h)) return undefined;
  return h.toLowerCase();
}
