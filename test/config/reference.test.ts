import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configurationReference } from '../../src/config/reference.js';
import { configShape } from '../../src/config/definition.js';
import { keyRows } from '../../src/config/schema.js';
import { ROOT } from '../helpers/cli.js';

describe('docs/configuration.md', () => {
  it('is what the schema generates (run `npm run docs:config` after changing src/config/definition.ts)', () => {
    expect(readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8')).toBe(configurationReference());
  });

  it('documents every key of the schema with a one-line description', () => {
    const doc = configurationReference();
    for (const { path, key } of keyRows(configShape)) {
      expect(key.doc.trim(), path).not.toBe('');
      expect(key.doc, path).not.toContain('\n');
      // Top-level sections are headings; matcher fields (allow, deny, trustedProxies) have their own table.
      const shown = path.includes('.') || path.includes('[') ? `| \`${path}\` |` : `## \`${path}\``;
      if (!/\.(allow|deny|trustedProxies)\[\]\./.test(path)) expect(doc, path).toContain(shown);
    }
  });
});
