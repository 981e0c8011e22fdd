// Reading the YAML tree with positions: every value is read from its node (not via toJS), so
// every error carries the line and column of the node it is about.

import { dirname, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { ConfigIssue } from './issues.js';

export class Ctx {
  readonly issues: ConfigIssue[] = [];
  /** Fills run once the whole tree is read (defaults taken from other keys). */
  readonly after: (() => void)[] = [];
  /** The root value once read, for those fills. */
  root: unknown;
  readonly file: string;
  readonly dir: string;
  readonly #lc: LineCounter;
  readonly #doc: Document;
  constructor(file: string, dir: string, lc: LineCounter, doc: Document) {
    this.file = file;
    this.dir = dir;
    this.#lc = lc;
    this.#doc = doc;
  }
  report(offset: number, path: string, message: string): void {
    const { line, col } = this.#lc.linePos(offset);
    this.issues.push({ file: this.file, line: Math.max(line, 1), col: Math.max(col, 1), path, message });
  }
  lineOf(offset: number): number {
    return Math.max(this.#lc.linePos(offset).line, 1);
  }
  /** Resolves aliases; an alias to nothing is reported and yields undefined. */
  deref(node: unknown, at: number, path: string): unknown {
    if (!isAlias(node)) return node;
    const target = node.resolve(this.#doc);
    if (target === undefined) this.report(at, path, `unknown alias *${node.source}`);
    return target;
  }
  /** A path from the config, resolved against the config file's folder. */
  path(p: string): string {
    return resolve(this.dir, p);
  }
}

/** A value node with where it is and what it is called. */
export interface Val {
  node: unknown;
  at: number;
  path: string;
}

/** Reads one value; reports and returns undefined when it is wrong. */
export type Conv<T> = (ctx: Ctx, v: Val) => T | undefined;

export function offsetOf(node: unknown, fallback: number): number {
  const range = (node as { range?: [number, number, number] | null } | null)?.range;
  return range ? range[0] : fallback;
}

export function isNull(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && node.value === null);
}

export function kindOf(node: unknown): string {
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isNull(node)) return 'nothing';
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(node.source ?? v);
  }
  return 'an unsupported value';
}

export function bad<T>(ctx: Ctx, v: Val, expected: string): T | undefined {
  ctx.report(v.at, v.path, `${expected}, got ${kindOf(v.node)}`);
  return undefined;
}

export function keyPath(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

/** The scalar value of a node (number, string, boolean), else undefined. */
export function scalarOf(node: unknown): unknown {
  return isScalar(node) ? node.value : undefined;
}

/**
 * Parses a YAML file for a schema reader: a Ctx that reports problems at file:line:col, and the
 * document's root, or undefined when the text has syntax errors (already reported: the shape of
 * a tree with syntax errors is a guess, not worth validating).
 */
export function parseYamlFile(text: string, file: string): { ctx: Ctx; contents: unknown } {
  const abs = resolve(file);
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  const ctx = new Ctx(abs, dirname(abs), lc, doc);
  const yamlProblems = [...doc.errors, ...doc.warnings];
  if (yamlProblems.length > 0) {
    for (const e of yamlProblems) ctx.report(e.pos[0], '(yaml)', e.message.split('\n')[0]!);
    return { ctx, contents: undefined };
  }
  return { ctx, contents: ctx.deref(doc.contents, 0, '(root)') };
}
