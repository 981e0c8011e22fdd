// Canonical forms (the core contract): fingerprints are lowercase hex SHA-256 without colons;
// serials are lowercase hex without colons or leading zeros. Inputs in any common form
// (colons, spaces, uppercase, leading 00) are accepted and canonicalised.

const HEX = /^[0-9a-f]+$/;

/** Returns the canonical serial, or undefined when the input is not hex. */
export function canonicalSerial(input: string): string | undefined {
  const s = input.trim().toLowerCase().replace(/^0x/, '').replace(/[:\s-]/g, '');
  if (s.length === 0 || !HEX.test(s)) return undefined;
  const stripped = s.replace(/^0+/, '');
  return stripped.length === 0 ? '0' : stripped;
}

/** Returns the canonical SHA-256 fingerprint, or undefined when it is not 32 bytes of hex. */
export function canonicalFingerprint(input: string): string | undefined {
  const s = input.trim().toLowerCase().replace(/^sha256[:=]/, '').replace(/[:\s-]/g, '');
  if (s.length !== 64 || !HEX.test(s)) return undefined;
  return s;
}
