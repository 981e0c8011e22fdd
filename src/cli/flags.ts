// Turns one command's entry of the command table (commands.ts) into both its parseArgs options
// and its --help text, so that the flags a command accepts and the flags it documents are the
// same list. Parsing is node:util parseArgs; its errors (and its hints about `--`) are replaced by
// short usage errors of our own.

import { parseArgs } from 'node:util';
import { parseDuration, type DurationUnit } from '../util/duration.js';
import { tokenize, UsageError } from './usage.js';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Applied by parseArgs and shown in the help. */
  readonly default?: string | boolean;
  /** Placeholder in the help: `--dir DIR`. */
  readonly value?: string;
  readonly description: string;
  /** A duration flag: what a bare number means (`undefined`: a unit is required). */
  readonly duration?: { readonly bare: DurationUnit | undefined };
}

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
}

export interface CommandSpec {
  /** As typed after `certgate`: `scan`, `ca issue`. */
  readonly name: string;
  readonly summary: string;
  /** Synopsis lines after `certgate NAME`; default: positionals, then `[options]`. */
  readonly synopsis?: readonly string[];
  readonly positionals?: readonly PositionalSpec[];
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** Paragraphs after the options: exit codes, notes. */
  readonly notes?: readonly string[];
}

export interface GroupSpec {
  readonly name: string;
  readonly summary: string;
  readonly subcommands: Readonly<Record<string, CommandSpec>>;
  readonly notes?: readonly string[];
}

/** Every command answers --help and -h; no table entry has to declare it. */
const HELP_FLAG: FlagSpec = { type: 'boolean', short: 'h', description: 'show this help' };

type FlagValue<F> = F extends { type: 'boolean' } ? boolean : F extends { multiple: true } ? string[] : string;
type WithDefault<F extends Record<string, FlagSpec>> = { [K in keyof F]: F[K] extends { default: string | boolean } ? K : never }[keyof F];
export type FlagValues<F extends Record<string, FlagSpec>> = { -readonly [K in WithDefault<F>]: FlagValue<F[K]> } & {
  -readonly [K in Exclude<keyof F, WithDefault<F>>]?: FlagValue<F[K]>;
};

/** The parseArgs options of a command: its flags plus --help. */
export function optionsOf(spec: Pick<CommandSpec, 'flags'>): Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean }> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean }> = {};
  for (const [name, f] of Object.entries({ ...spec.flags, help: HELP_FLAG })) {
    options[name] = {
      type: f.type,
      ...(f.short !== undefined ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
      ...(f.default !== undefined ? { default: f.default } : {}),
    };
  }
  return options;
}

/** Thrown by parseCommand on --help/-h; main prints the command's help and exits 0. */
export class HelpRequested extends Error {
  readonly spec: CommandSpec;
  constructor(spec: CommandSpec) {
    super(`certgate ${spec.name} --help`);
    this.spec = spec;
  }
}

/**
 * Parses argv against a table entry. --help anywhere (as an option) wins over every other
 * problem; then unknown options, missing or stray values and unexpected arguments are usage errors.
 */
export function parseCommand<S extends CommandSpec>(spec: S, argv: string[]): { values: FlagValues<S['flags']>; positionals: string[] } {
  const r = tokenize(optionsOf(spec), argv, (spec.positionals?.length ?? 0) > 0);
  if (r.help) throw new HelpRequested(spec);
  delete r.values.help;
  return { values: r.values as FlagValues<S['flags']>, positionals: r.positionals };
}

/** True when argv asks for help (used by main before a command that parses on its own). */
export function asksForHelp(spec: CommandSpec, argv: string[]): boolean {
  return parseArgs({ args: argv, options: optionsOf(spec), strict: false, allowPositionals: true, tokens: true }).tokens.some(
    (t) => t.kind === 'option' && t.name === 'help',
  );
}

/** Milliseconds from a duration flag, with the bare-number meaning its table entry documents. */
export function durationFlag(spec: CommandSpec, flag: string, raw: string): number {
  const f = spec.flags[flag];
  if (f?.duration === undefined) throw new Error(`--${flag} of ${spec.name} is not a duration flag`);
  const ms = parseDuration(raw, f.duration.bare);
  if (ms === undefined) throw new UsageError(`--${flag}: "${raw}" is not a duration (${durationHint(f.duration.bare)})`);
  if (!(ms > 0)) throw new UsageError(`--${flag} must be positive, got "${raw}"`);
  return ms;
}

const UNIT_NAMES: Record<DurationUnit, string> = { ms: 'milliseconds', s: 'seconds', m: 'minutes', h: 'hours', d: 'days' };

function durationHint(bare: DurationUnit | undefined): string {
  return `a duration such as 90s, 15m, 2h, 30d; ${bare === undefined ? 'the unit is required' : `a bare number means ${UNIT_NAMES[bare]}`}`;
}

/** A whole number >= min from a flag. */
export function wholeNumberFlag(flag: string, raw: string, min = 1): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min) throw new UsageError(`--${flag} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, got "${raw}"`);
  return Number(raw);
}

function flagLabel(name: string, f: FlagSpec): string {
  const long = `--${name}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}`;
  return f.short !== undefined ? `-${f.short}, ${long}` : `    ${long}`;
}

function flagText(f: FlagSpec): string {
  let text = f.description;
  if (f.duration !== undefined) text += ` (${durationHint(f.duration.bare)})`;
  if (f.multiple) text += ' (repeatable)';
  if (f.default !== undefined && f.type === 'string') text += ` (default: ${f.default})`;
  return text;
}

/** Two columns: the label, then the text wrapped under itself. */
function columns(rows: readonly [string, string][], width = 100): string[] {
  const left = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  const lines: string[] = [];
  for (const [label, text] of rows) {
    const words = text.split(' ');
    let line = `  ${label.padEnd(left)}`;
    if (label.length >= left) {
      lines.push(`  ${label}`);
      line = ' '.repeat(left + 2);
    }
    let empty = true;
    for (const w of words) {
      if (!empty && line.length + 1 + w.length > width) {
        lines.push(line);
        line = ' '.repeat(left + 2);
        empty = true;
      }
      line += (empty ? '' : ' ') + w;
      empty = false;
    }
    lines.push(line);
  }
  return lines;
}

/** A paragraph wrapped at word boundaries. */
function wrap(text: string, width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const w of text.split(' ')) {
    if (line !== '' && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  return [...lines, line].join('\n');
}

export function synopsisOf(spec: CommandSpec): string[] {
  const lines = spec.synopsis ?? [[...(spec.positionals ?? []).map((p) => p.name), '[options]'].join(' ')];
  return lines.map((l, i) => `${i === 0 ? 'Usage: ' : '       '}certgate ${spec.name} ${l}`);
}

export function renderHelp(spec: CommandSpec): string {
  const out = [`certgate ${spec.name}: ${spec.summary}`, '', ...synopsisOf(spec), ''];
  if (spec.positionals !== undefined && spec.positionals.length > 0) {
    out.push('Arguments:', ...columns(spec.positionals.map((p) => [p.name, p.description])), '');
  }
  const flags = Object.entries({ ...spec.flags, help: HELP_FLAG });
  out.push('Options:', ...columns(flags.map(([n, f]) => [flagLabel(n, f), flagText(f)])), '');
  for (const n of spec.notes ?? []) out.push(wrap(n), '');
  return out.join('\n');
}

export function renderGroupHelp(group: GroupSpec): string {
  const subs = Object.values(group.subcommands);
  const out = [`certgate ${group.name}: ${group.summary}`, '', `Usage: certgate ${group.name} COMMAND [options]`, '', 'Commands:'];
  out.push(...columns(subs.map((s) => [s.name.slice(group.name.length + 1), s.summary])), '');
  out.push(`"certgate ${group.name} COMMAND --help" shows the options of each.`, '');
  for (const n of group.notes ?? []) out.push(wrap(n), '');
  return out.join('\n');
}
