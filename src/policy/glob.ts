// Matchers compiled once at load. A pattern without '*' is an exact comparison; values taken
// from certificates are only ever the subject of a match, never a pattern.

export type StringMatcher = (value: string) => boolean;

/** How '*' behaves and whether comparison ignores case, per certificate field (core contract). */
export type GlobFlavour = 'path' | 'dns' | 'email' | 'plain' | 'caseless';

const REGEX_SPECIAL = /[.*+?^${}()|[\]\\/]/g;

function escapeRegex(s: string): string {
  return s.replace(REGEX_SPECIAL, '\\$&');
}

/** Translate a glob to a regex body: '**' (path flavour) spans segments, '*' stays within one. */
function globBody(pattern: string, flavour: GlobFlavour): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch !== '*') {
      out += escapeRegex(ch);
      continue;
    }
    if (flavour === 'path' && pattern[i + 1] === '*') {
      out += '.*';
      i++;
    } else if (flavour === 'path') out += '[^/]*';
    else if (flavour === 'dns') out += '[^.]+';
    else out += '.*';
  }
  return out;
}

function compileGlob(pattern: string, flavour: GlobFlavour): StringMatcher {
  if (flavour === 'dns') {
    const p = pattern.toLowerCase();
    if (!p.includes('*')) return (v) => v.length === p.length && v.toLowerCase() === p;
    const re = new RegExp(`^${globBody(p, 'dns')}$`, 'i');
    return (v) => re.test(v);
  }
  if (flavour === 'email') {
    // Local part is case-sensitive, the domain is not (RFC 5321).
    const at = pattern.lastIndexOf('@');
    const local = at < 0 ? pattern : pattern.slice(0, at);
    const domain = at < 0 ? undefined : pattern.slice(at + 1);
    const localM = compileGlob(local, 'plain');
    const domainM = domain === undefined ? undefined : compileGlob(domain, 'caseless');
    return (v) => {
      const vat = v.lastIndexOf('@');
      if (domainM === undefined) return vat < 0 && localM(v);
      if (vat < 0) return false;
      return localM(v.slice(0, vat)) && domainM(v.slice(vat + 1));
    };
  }
  if (flavour === 'caseless') {
    const p = pattern.toLowerCase();
    if (!p.includes('*')) return (v) => v.toLowerCase() === p;
    const re = new RegExp(`^${globBody(p, 'plain')}$`, 'i');
    return (v) => re.test(v);
  }
  if (!pattern.includes('*')) return (v) => v === pattern;
  const re = new RegExp(`^${globBody(pattern, flavour)}$`, 's');
  return (v) => re.test(v);
}

/** A list of patterns: any may match. */
export function compileAny(patterns: readonly string[], flavour: GlobFlavour): StringMatcher {
  const exact = new Set<string>();
  const globs: StringMatcher[] = [];
  const folds = flavour === 'dns';
  for (const p of patterns) {
    if (!p.includes('*') && flavour !== 'email') exact.add(folds ? p.toLowerCase() : p);
    else globs.push(compileGlob(p, flavour));
  }
  if (globs.length === 0) return folds ? (v) => exact.has(v.toLowerCase()) : (v) => exact.has(v);
  return (v) => exact.has(folds ? v.toLowerCase() : v) || globs.some((g) => g(v));
}
