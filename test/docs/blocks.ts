// Reads the fenced code blocks of the README and docs/*.md: ```sh blocks are commands to run;
// every other block is shown text (output, config, JSON) and must not hold a command.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Block {
  file: string;
  line: number;
  lang: string;
  text: string;
  /** The shown output: a non-sh block that follows this one with only blank lines between. */
  output?: Block;
}

export function docFiles(root: string): string[] {
  const docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort();
  return ['README.md', ...docs.map((f) => `docs/${f}`)];
}

export function blocksOf(root: string, file: string): Block[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n');
  const blocks: Block[] = [];
  let lastEnd = -2;
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j]!)) body.push(lines[j++]!.slice(indent));
    if (j >= lines.length) throw new Error(`${file}:${i + 1}: unclosed code block`);
    const block: Block = { file, line: i + 1, lang: open[2]!, text: body.join('\n') };
    const prev = blocks.at(-1);
    const gap = lines.slice(lastEnd + 1, i);
    if (prev !== undefined && prev.lang === 'sh' && block.lang !== 'sh' && gap.every((l) => l.trim() === '')) prev.output = block;
    blocks.push(block);
    lastEnd = j;
    i = j;
  }
  return blocks;
}

/** A line of a non-sh block that reads like a command someone would paste. */
export const COMMAND_LINE = /^(\$ |npx |npm |node |curl |openssl |kill |certgate (start|check|dev-certs|demo|inventory|scan|ca|renew|revoke|revocations|explain|-)\b)/;

/** In sh blocks, certgate is run one way: `npx certgate` (works from a clone after a build). */
export function otherCliForms(text: string): string[] {
  return text.split('\n').filter((l) => /node\s+dist\/|(^|[;&|(]\s*)certgate\s/.test(l.replace(/#.*$/, '')));
}
