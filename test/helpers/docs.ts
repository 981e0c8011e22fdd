// Text taken from the docs themselves, so that a test of a documented setup cannot drift from it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.js';

/** The body of the first `cat > PATH <<'YAML'` heredoc for PATH in a doc under docs/. */
export function docHeredoc(doc: string, path: string): string {
  const text = readFileSync(join(ROOT, 'docs', doc), 'utf8');
  const start = text.indexOf(`cat > ${path} <<'YAML'\n`);
  if (start < 0) throw new Error(`docs/${doc} has no heredoc for ${path}`);
  const body = text.slice(start + `cat > ${path} <<'YAML'\n`.length);
  return body.slice(0, body.indexOf('\nYAML\n') + 1);
}

/** docs/ca.md's walkthrough config (ca-demo/certgate.yaml): its own CA, one SPIFFE route. */
export const WALKTHROUGH_CONFIG = docHeredoc('ca.md', 'ca-demo/certgate.yaml');
