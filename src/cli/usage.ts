// Usage errors exit with 2 (like getopt tools); runtime failures with 1.

import { parseArgs } from 'node:util';

export class UsageError extends Error {
  readonly exitCode = 2;
}

type Options = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean }>;

/** parseArgs in lenient mode, then our own checks on its tokens, for messages without Node's hints. */
export function tokenize(options: Options, argv: string[], allowPositionals: boolean) {
  const { values, positionals, tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const help = 'help' in options && tokens.some((t) => t.kind === 'option' && t.name === 'help');
  if (!help) {
    for (const t of tokens) {
      if (t.kind === 'positional' && !allowPositionals) throw new UsageError(`unexpected argument "${t.value}"`);
      if (t.kind !== 'option') continue;
      const o = options[t.name];
      if (o === undefined) throw new UsageError(`unknown option ${t.rawName}`);
      if (o.type === 'boolean' && t.value !== undefined) throw new UsageError(`${t.rawName} takes no value`);
      if (o.type === 'string' && t.value === undefined) throw new UsageError(`${t.rawName} needs a value`);
      // As parseArgs' strict mode: `--cert --key k.pem` is a forgotten value, not a cert named "--key".
      if (o.type === 'string' && !t.inlineValue && t.value!.startsWith('-')) {
        throw new UsageError(`${t.rawName} needs a value (write ${t.rawName}=${t.value} if "${t.value}" is meant)`);
      }
    }
  }
  return { help, values: values as Record<string, string | boolean | (string | boolean)[] | undefined>, positionals };
}

/** parseArgs with unknown flags and stray positionals turned into UsageError. */
export function parseFlags<O extends Options>(argv: string[], options: O, positionals = false) {
  const r = tokenize(options, argv, positionals);
  return { values: r.values as ReturnType<typeof parseArgs<{ options: O; allowPositionals: true }>>['values'], positionals: r.positionals };
}

export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing required flag ${flag}`);
  return value;
}
