// PEM (RFC 7468): the one place that writes and splits "-----BEGIN label-----" blocks.

export interface PemBlock {
  readonly label: string;
  /** The block's text, BEGIN line to END line (no trailing newline). */
  readonly text: string;
  readonly der: Uint8Array;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** PEM text of DER bytes under a label, 64 columns, LF line ends, trailing newline. */
export function pemEncode(der: ArrayBuffer | Uint8Array, label: string): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += b64.slice(i, i + 64) + '\n';
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/** Every PEM block in the text, in order; only those whose label is in `labels` when given. */
export function pemBlocks(text: string, ...labels: string[]): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    if (labels.length > 0 && !labels.includes(m[1]!)) continue;
    // Buffer's base64 decoder skips the line breaks and other whitespace of the body.
    out.push({ label: m[1]!, text: m[0], der: new Uint8Array(Buffer.from(m[2]!, 'base64')) });
  }
  return out;
}

/** The text of each block with this label (e.g. the certificates of a chain file), in order. */
export function splitPem(text: string, label: string): string[] {
  return pemBlocks(text, label).map((b) => b.text);
}
