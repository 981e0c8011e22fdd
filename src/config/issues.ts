// Config errors: where they are and what is wrong, in one printed form everywhere (check, start,
// reload, the log): `FILE:LINE:COL key.path: message`, FILE always the absolute path, so that
// the same problem reads the same whatever the working directory of the process reporting it.

/** One problem with a config, at the line and column of the key (or value) it is about. */
export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
}

/** `/etc/certgate/certgate.yaml:14:7 routes[1].allow[0].cnn: unknown key`. The only formatter. */
export function formatConfigIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.col} ${i.path}: ${i.message}`;
}

export class ConfigError extends Error {
  readonly code = 'CERTGATE_CONFIG_INVALID';
  readonly issues: readonly ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatConfigIssue).join('\n'));
    this.issues = issues;
  }
}

/** File order; issues at one position keep the order they were found in (schema order). */
export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.sort((a, b) => a.line - b.line || a.col - b.col);
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The closest known word at edit distance <= 2 (case-insensitive), else one it begins, if any. */
export function didYouMean(word: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  // `path` for `pathPrefix`: a truncated key is a likely slip too.
  best ??= word.length >= 3 ? known.find((k) => k.toLowerCase().startsWith(word.toLowerCase())) : undefined;
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}
