// docs/configuration.md, generated from the schema (definition.ts): the descriptions, types,
// defaults and restart-only flags there are the reference. `npm run docs:config` rewrites the
// file; a test fails when the committed one differs from what this produces.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configShape, matcherShape } from './definition.js';
import { Inherit, keyRows, type Key, type Shape } from './schema.js';

const cell = (s: string): string => s.replace(/\|/g, '\\|');

function defaultOf(key: Key<unknown>): string {
  if (key.presence === 'required') return '**required**';
  if (key.docDefault !== undefined) return key.docDefault;
  if (key.presence === 'optional') return '—';
  const d = key.default;
  if (d instanceof Inherit) return `\`${d.from}\``;
  if (d === undefined) return '';
  if (typeof d === 'function') throw new Error('a computed default needs docDefault');
  return `\`${key.type.show ? key.type.show(d) : typeof d === 'string' ? d : JSON.stringify(d)}\``;
}

function table(rows: { path: string; key: Key<unknown> }[]): string[] {
  const out = ['| Key | Type | Default | Description |', '|---|---|---|---|'];
  for (const { path, key } of rows) {
    const notes = [key.doc];
    if (key.restart) notes.push('**Restart only**: a reload that changes it is refused.');
    if (key.aliases?.length) notes.push(`Also accepted as ${key.aliases.map((a) => `\`${a}\``).join(', ')}.`);
    out.push(`| \`${path}\` | ${cell(key.type.name)} | ${cell(defaultOf(key))} | ${cell(notes.join(' '))} |`);
  }
  return out;
}

const notMatchers = (fields: Shape): boolean => fields !== matcherShape;

export function configurationReference(): string {
  const out = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/definition.ts by `npm run docs:config`. Do not edit by hand. -->',
    '',
    'certgate reads one YAML file (`certgate start --config FILE`; `certgate check --config FILE` reports every',
    'problem in it, with `FILE:LINE:COL key.path: message`, and exits 1). Values:',
    '',
    '- **duration**: `500ms`, `10s`, `15m`, `12h`, `7d`; a bare number means milliseconds. At most `24d`.',
    '- **days**: a number of days (`7`) or a duration in whole days (`7d`, `168h`).',
    '- **size**: `512b`, `16kb`, `10mb`, `1gb` (binary units); a bare number means bytes.',
    '- **path**: relative paths are resolved against the folder of the config file.',
    '- A key given with an empty value (`file:` or `file: ~`) takes its default. A `string or list` key takes one value or a list.',
    '- Keys marked **restart only** keep their value on reload (SIGHUP, `POST /reload`, the file watcher): a reload',
    '  that changes one is refused with a message naming it. Every other key takes effect on reload.',
    '',
  ];
  for (const [name, key] of Object.entries(configShape) as [string, Key<unknown>][]) {
    out.push(`## \`${name}\``, '', key.doc, '');
    const fields = key.type.fields;
    const rows = fields ? keyRows({ [name]: key }, '', notMatchers).slice(key.presence === 'optional' ? 0 : 1) : [{ path: name, key }];
    out.push(...table(rows), '');
  }
  out.push(
    '## Matcher entries',
    '',
    'Entries of `routes[].allow`, `routes[].deny` and `admin.tls.allow`: a map of certificate fields. Every field',
    'given must match; a list value matches if any of its values does. Values may use `*` globs (except',
    '`fingerprint` and `serial`). An empty entry `{}` is refused: to allow any trusted client, write `{ subject: "*" }`.',
    '',
    ...table(keyRows(matcherShape)),
    '',
    '`routes[].allow` also takes entries for requests that present no certificate (see docs/policy.md): `{ anonymous: true }`',
    '(no certificate, no API key) and `{ apiKey: NAME }` (a valid key of `apiKeys.file` with that name; globs). They stand',
    'alone (no certificate fields beside them) and are refused with `tls.refuse: handshake`.',
    '',
  );
  return out.join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const target = process.argv[2] ?? 'docs/configuration.md';
  writeFileSync(target, configurationReference());
  process.stdout.write(`wrote ${target}\n`);
}
