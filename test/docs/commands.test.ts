// Every command in README.md and docs/*.md, run as a reader would run it: the ```sh blocks of
// each document in order, with bash, in a fresh copy of the clone's layout (config/, a built
// dist/), `npx certgate` meaning the built CLI, and the documented ports (8443, 9443, 9001)
// replaced by free ones on 127.0.0.1. A block must exit 0 unless EXPECT below says otherwise,
// and a block whose output the document shows must have its output checked here. Commands that
// cannot run in a test (installing, the test suite itself, daemons) are listed in NOT_RUN with
// the reason and the check that stands in for them. A new command in a document runs here
// without any change to this file; a command outside a ```sh block fails the first test.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, ROOT } from '../helpers/cli.js';
import { blocksOf, COMMAND_LINE, docFiles, otherCliForms, type Block } from './blocks.js';

const FILES = docFiles(ROOT);
const BLOCKS = FILES.flatMap((f) => blocksOf(ROOT, f));
const DEMO_READY = /Ctrl-C stops\./;

interface Run {
  code: number | null;
  stdout: string;
  /** stdout and stderr, interleaved as they came. */
  out: string;
}

interface Ports {
  proxy: number;
  admin: number;
  backend: number;
}

/** One document's run: its folder, its ports, and the long-running processes it started. */
interface Ctx {
  dir: string;
  ports: Ports;
  sub(text: string): string;
  bash(script: string, ms?: number): Promise<Run>;
  background(script: string, ready: RegExp): Promise<{ child: ChildProcess; output: () => string }>;
  demo(config: string): Promise<string>;
}

/** Documents whose commands assume `npm start` is running ("With `npm start` running, ..."). */
const NEEDS_DEMO = new Set(['docs/revocation.md', 'docs/lifecycle.md', 'docs/operations.md']);

interface NotRun {
  file: string;
  match: RegExp;
  reason: string;
  instead(ctx: Ctx, block: Block): Promise<void>;
}

const NOT_RUN: NotRun[] = [
  {
    file: 'README.md',
    match: /^npm ci && npm start$/,
    reason: '`npm ci` has run before the tests, and `npm start` runs until stopped',
    async instead(ctx) {
      // npm start = build + `certgate demo --config config/certgate.yaml`; the build is done.
      expect(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.start).toBe(
        'npm run build --silent && node dist/src/cli/main.js demo --config config/certgate.yaml',
      );
      const printed = await ctx.demo('config/certgate.yaml');
      const shown = BLOCKS.find((b) => b.file === 'README.md' && b.text.startsWith('certgate is listening on'))!;
      for (const line of ctx.sub(shown.text).split('\n').filter((l) => l.trim() !== '' && l !== '...')) expect(printed).toContain(line);
      const curl = /^\s+(curl .*client-alice.*)$/m.exec(printed)![1]!;
      const r = await ctx.bash(curl);
      expect(r.code, r.out).toBe(0);
      expect(JSON.parse(r.stdout).headers['x-client-cert-subject']).toBe('CN=alice,OU=payments,O=certgate-dev');
    },
  },
  {
    file: 'README.md',
    match: /^npm ci && npm test$/,
    reason: 'this suite is what `npm test` runs (after `npm ci`); running it here would recurse',
    async instead() {
      const test = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.test as string;
      expect(test).toMatch(/npm run typecheck && npm run build --silent && vitest run/);
    },
  },
  {
    file: 'docs/ca.md',
    match: /^npx certgate demo --config (\S+)$/,
    reason: 'runs until stopped: started in the background and kept for the next commands',
    async instead(ctx, block) {
      const printed = await ctx.demo(/--config (\S+)/.exec(block.text)![1]!);
      expect(printed).toContain(`https://localhost:${ctx.ports.proxy}`);
    },
  },
  {
    file: 'docs/ca.md',
    match: /^npx certgate renew .*\n.* --daemon$/,
    reason: 'a daemon: started as written, checked to schedule its renewal, then stopped',
    async instead(ctx, block) {
      const { child, output } = await ctx.background(block.text, /"event":"scheduled"/);
      const line = JSON.parse(output().split('\n').find((l) => l.includes('"scheduled"'))!) as { renewAt: string; notAfter: string };
      // A 30-day certificate renews at two thirds of its life: about 20 days from now.
      expect(Math.round((Date.parse(line.renewAt) - Date.now()) / 86_400_000)).toBe(20);
      expect(await stop(child)).toBe(0);
    },
  },
  {
    file: 'docs/performance.md',
    match: /^npm run bench +#/,
    reason: 'a full bench run takes minutes (test/bench/ runs a short one)',
    async instead(_ctx, block) {
      const help = await new Promise<string>((done) => execFile(process.execPath, [join(ROOT, 'dist/bench/run.js'), '--help'], (_e, out) => done(out)));
      // --help itself prints the text checked here.
      for (const flag of new Set(block.text.match(/--[a-z][a-z-]*/g) ?? [])) if (flag !== '--help') expect(help, flag).toContain(flag);
      for (const s of /--scenario (\S+)/.exec(block.text)![1]!.split(',')) expect(help).toContain(s);
    },
  },
];

interface Expect {
  file: string;
  match: RegExp;
  code?: number;
  out: RegExp[];
}

const EXPECT: Expect[] = [
  { file: 'README.md', match: /client-alice\.pem/, out: [/"x-client-cert-subject":"CN=alice,OU=payments,O=certgate-dev"/, /"x-client-cert-spiffe":"spiffe:\/\/certgate.dev\/ns\/dev\/sa\/alice"/] },
  { file: 'README.md', match: /client-mallory\.pem/, out: [/^\{"error":\{"code":"identity_not_allowed","message":"this identity is not allowed on this route","requestId":"[^"]+"\}\}\n\{"error":\{"code":"certificate_required","message":"no client certificate was presented","requestId":"[^"]+"\}\}\n$/] },
  { file: 'README.md', match: /--version/, out: [/^certgate \d+\.\d+\.\d+\n/] },
  { file: 'docs/revocation.md', match: /^curl -s -o \/dev\/null/, out: [/^200\n$/] },
  { file: 'docs/revocation.md', match: /POST http:\/\/127\.0\.0\.1:9443\/revocations/, out: [/"reason": "laptop lost"/, /"actor": "token@127\.0\.0\.1"/, /"id": "[0-9a-f]+"/] },
  { file: 'docs/revocation.md', match: /^curl -s --cacert .*client-bob/, out: [/^\{"error":\{"code":"certificate_revoked","message":"the client certificate has been revoked","requestId":"[^"]+"\}\}$/] },
  { file: 'docs/revocation.md', match: /revocations delete/, out: [/"reason": "key rotated"/, /"removed": \{\n {4}"id": "[0-9a-f]+"/] },
  { file: 'docs/lifecycle.md', match: /\/reload$/, out: [/^\{\n {2}"ok": true,\n {2}"errors": \[\],\n {2}"generation": 2\n\}\n$/] },
  { file: 'docs/lifecycle.md', match: /^npx certgate inventory --admin http:\/\/127\.0\.0\.1:9443$/, out: [/^DAYS LEFT +NOT AFTER +SUBJECT +SERIAL +KEY +REQUESTS +LAST SEEN +ROUTES +REFUSED +DECISION\n/] },
  { file: 'docs/lifecycle.md', match: /--ca certs-dev\/root-ca\.pem$/, out: [/^ENDPOINT +STATUS +TLS +DAYS LEFT +VERIFY +HOSTNAME +SUBJECT\n127\.0\.0\.1:\d+ +ok +TLSv1\.3 +36[45] +ok +match +CN=localhost,O=certgate-dev\n/, /\[from trust store\]/, /\n {2}healthy\n$/] },
  { file: 'docs/lifecycle.md', match: /--warn-days 400$/, code: 1, out: [/127\.0\.0\.1:\d+ +PROBLEM +TLSv1\.3 +36[45] +ok +match/, /problem: the server certificate expires in 36[45] days/] },
  { file: 'docs/operations.md', match: /readyz/, out: [/^\{\n {2}"status": "ready",\n {2}"generation": 1\n\}/, /^certgate_open_connections \d+$/m] },
  { file: 'docs/ca.md', match: /^curl --cacert .*billing-api/, out: [/"x-client-cert-subject":"CN=billing-api,OU=payments"/] },
  { file: 'docs/ca.md', match: /--ttl 2m/, out: [/^renewed: serial [0-9a-f]+, valid until \S+; wrote ca-demo\/short\.pem and ca-demo\/short-key\.pem$/m] },
  { file: 'docs/policy.md', match: /--subject "CN=mallory/, code: 3, out: [/^ {3}3\. default +matched$/m, /^ {4}yes deny\[0\] +<- decides\n +\+ cn mallory matches mallory$/m, /^decision {2}refused: identity_not_allowed \(HTTP 403\) by deny\[0\]\n$/m] },
  { file: 'docs/policy.md', match: /certgate test --config/, out: [/^ok {4}alice reaches the admin API: allow on route admin-api, decided by allow\[0\]$/m, /^ok {4}mallory is kept out by name: identity_not_allowed \(403\) on route default, decided by deny\[0\]$/m, /^4 cases: 4 passed, 0 failed\n$/m] },
  { file: 'docs/ca.md', match: /simpleenroll/, out: [/^subject=OU ?= ?payments, ?CN ?= ?new-svc$/m] },
  { file: 'docs/ca.md', match: /ca revoke/, out: [/\{"error":\{"code":"certificate_revoked"/] },
];

const used = new Set<NotRun | Expect>();
const ranFiles = new Set<string>();
const find = <T extends { file: string; match: RegExp }>(list: T[], b: Block) => list.filter((e) => e.file === b.file && e.match.test(b.text));


describe('the documentation', () => {
  it('shows commands only in ```sh blocks, each calling certgate as `npx certgate`', () => {
    const stray = BLOCKS.filter((b) => b.lang !== 'sh').flatMap((b) => b.text.split('\n').filter((l) => COMMAND_LINE.test(l)).map((l) => `${b.file}:${b.line}: ${l}`));
    expect(stray).toEqual([]);
    const forms = BLOCKS.filter((b) => b.lang === 'sh').flatMap((b) => otherCliForms(b.text).map((l) => `${b.file}:${b.line}: ${l}`));
    expect(forms).toEqual([]);
    expect(BLOCKS.filter((b) => b.lang === 'sh').length).toBeGreaterThan(20);
  });

  it('checks every output it shows: a ```sh block followed by its output has an expectation here', () => {
    const unchecked = BLOCKS.filter((b) => b.lang === 'sh' && b.output !== undefined && find(EXPECT, b).length === 0 && find(NOT_RUN, b).length === 0);
    expect(unchecked.map((b) => `${b.file}:${b.line}`)).toEqual([]);
    for (const b of BLOCKS.filter((x) => x.lang === 'sh')) {
      expect(find(NOT_RUN, b).length + find(EXPECT, b).length, `${b.file}:${b.line} matches more than one entry`).toBeLessThanOrEqual(1);
    }
  });

  // What `npx certgate` runs in a clone is package.json's bin, linked as node_modules/.bin/certgate
  // and started through its #! line. How npx finds it is npm's part and differs between npm
  // releases and machines (the CI machine's npx failed where this one's passed), so this checks
  // our part: the bin entry, the #! line, and the built file answering through a link of that name.
  it('`npx certgate` runs package.json\'s bin: a built file with a node #! line', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin?: Record<string, string> };
    const target = join(ROOT, pkg.bin?.certgate ?? 'missing');
    expect(target).toBe(CLI);
    expect(readFileSync(target, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    const dir = mkdtempSync(join(tmpdir(), 'certgate-bin-'));
    try {
      symlinkSync(target, join(dir, 'certgate'));
      const r = await new Promise<Run>((done) =>
        execFile(process.execPath, [join(dir, 'certgate'), '--version'], { cwd: ROOT, timeout: 30_000 }, (err, out, errOut) =>
          done({ code: err ? 1 : 0, stdout: out, out: out + errOut }),
        ),
      );
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/^certgate \d+\.\d+\.\d+/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);

  for (const file of FILES.filter((f) => BLOCKS.some((b) => b.file === f && b.lang === 'sh'))) {
    it(`${file}: every command runs in order with the exit code and output it shows`, async () => {
      await withLayout(async (ctx) => {
        if (NEEDS_DEMO.has(file)) await ctx.demo('config/certgate.yaml');
        for (const block of BLOCKS.filter((b) => b.file === file && b.lang === 'sh')) {
          const where = `${block.file}:${block.line}`;
          const special = find(NOT_RUN, block)[0];
          if (special !== undefined) {
            used.add(special);
            await special.instead(ctx, block);
            continue;
          }
          const exp = find(EXPECT, block)[0];
          if (exp !== undefined) used.add(exp);
          const r = await ctx.bash(ctx.sub(block.text));
          expect(r.code, `${where}\n${block.text}\n${r.out}`).toBe(exp?.code ?? 0);
          for (const re of exp?.out ?? []) expect(r.out, where).toMatch(re);
        }
      });
      ranFiles.add(file);
    }, 240_000);
  }
});

afterAll(() => {
  // Only meaningful when every document ran to the end (not under a name filter, no failure).
  if (FILES.some((f) => BLOCKS.some((b) => b.file === f && b.lang === 'sh') && !ranFiles.has(f))) return;
  const stale = [...NOT_RUN, ...EXPECT].filter((e) => !used.has(e)).map((e) => `${e.file} ${e.match}`);
  expect(stale, 'entries that no documented command matches any more').toEqual([]);
});

async function withLayout(body: (ctx: Ctx) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-docs-'));
  const shim = join(dir, '.bin');
  mkdirSync(shim);
  // `npx certgate ...` is the built CLI; any other npx use in a document is an error.
  writeFileSync(
    join(shim, 'npx'),
    `#!/bin/sh\nif [ "$1" = certgate ]; then shift; exec "${process.execPath}" "${CLI}" "$@"; fi\necho "docs test: unexpected npx $*" >&2\nexit 127\n`,
  );
  chmodSync(join(shim, 'npx'), 0o755);
  mkdirSync(join(dir, 'config'));
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'dist'), join(dir, 'dist'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const [proxy, admin, backend] = await freePorts(3);
  const ports = { proxy: proxy!, admin: admin!, backend: backend! };
  const sub = (t: string) => t.replace(/\b8443\b/g, String(ports.proxy)).replace(/\b9443\b/g, String(ports.admin)).replace(/\b9001\b/g, String(ports.backend));
  writeFileSync(join(dir, 'config', 'certgate.yaml'), sub(readFileSync(join(ROOT, 'config', 'certgate.yaml'), 'utf8')));
  const env = { ...process.env, PATH: `${shim}:${process.env.PATH ?? ''}` };
  const children: ChildProcess[] = [];
  const background: Ctx['background'] = (script, ready) =>
    new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', `exec ${script}`], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      const t = setTimeout(() => reject(new Error(`not ready in 30 s: ${script}\n${out}`)), 30_000);
      const onData = (c: Buffer) => {
        out += c.toString();
        if (ready.test(out)) {
          clearTimeout(t);
          resolve({ child, output: () => out });
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`exited ${code} before it was ready: ${script}\n${out}`));
      });
    });
  const ctx: Ctx = {
    dir,
    ports,
    sub,
    bash: (script, ms = 60_000) =>
      new Promise((resolve) => {
        const child = spawn('bash', ['-c', `set -eo pipefail\n${script}`], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let stdout = '';
        child.stdout.on('data', (c: Buffer) => {
          stdout += c.toString();
          out += c.toString();
        });
        child.stderr.on('data', (c: Buffer) => (out += c.toString()));
        const t = setTimeout(() => child.kill('SIGKILL'), ms);
        child.on('close', (code) => {
          clearTimeout(t);
          resolve({ code, stdout, out });
        });
      }),
    background,
    async demo(config) {
      const { output } = await background(`npx certgate demo --config ${config} --backend-port ${ports.backend}`, DEMO_READY);
      return output();
    },
  };
  try {
    await body(ctx);
  } finally {
    for (const c of children) await stop(c);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** SIGTERM, then the exit code; SIGKILL if it has not exited within 10 s. */
function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

/** Distinct free ports on 127.0.0.1 (held open together so that they differ). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
