// docs/errors.md lists exactly the codes of src/errors.ts's table, each with its HTTP status.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('docs/errors.md', () => {
  it('lists every code of the errors table once, with its status, and no other code', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])] as const);
    const documented = rows.map(([code]) => code);
    expect(new Set(documented).size, 'a code is listed twice').toBe(documented.length);
    expect(documented.slice().sort()).toEqual(Object.keys(ErrorCodes).sort());
    for (const [code, status] of rows) expect(status, code).toBe(ErrorCodes[code as keyof typeof ErrorCodes].status);
  });
});
