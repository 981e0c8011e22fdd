// ioredis declares `class VerbatimString extends String`. Making String.prototype the parent of
// another prototype turns it into a dictionary in V8, and from then on every string method call in
// optimised code (`s.charCodeAt`, `s.toLowerCase`, `s.indexOf`) is a generic property lookup
// instead of a constant: about 10k instructions per proxied request, measured with callgrind
// (bench/instructions.ts). A prototype that objects are read through is marked "should be fast"
// by V8's inline caches and turned back into fast properties, and stays fast after that. So
// certgate reads through one such object at start, once every module is loaded.

function Probe(): void {}
Probe.prototype = String.prototype;

function read(o: object): unknown {
  return (o as { charCodeAt: unknown }).charCodeAt;
}

/** Makes String.prototype fast again if a dependency made it a dictionary. Cheap; idempotent. */
export function keepStringMethodsFast(): void {
  // V8 gives a function feedback (and so inline caches) only after several calls: read often.
  for (let i = 0; i < 1000; i++) read(new (Probe as unknown as new () => object)());
}
