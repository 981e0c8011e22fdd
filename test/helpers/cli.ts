// The one way tests run the CLI: the built dist/ (as users run it), in a real process. The
// build is checked once per vitest run by test/helpers/build.ts (vitest globalSetup).

import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Starts `certgate args...` without waiting for anything (stdout and stderr piped). */
export function launchCli(args: string[], opts: CliOptions = {}): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs a command to its end; killed after `timeoutMs` (default 2 min: only a hung command gets there). */
export function runCli(args: string[], opts: CliOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = launchCli(args, opts);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c));
    child.stderr!.on('data', (c: Buffer) => (stderr += c));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface RunningCli {
  child: ChildProcess;
  /** Everything written so far on stdout and stderr. */
  output: () => string;
  /** The match of `ready` in the output. */
  match: RegExpExecArray;
}

/** Starts a long-running command and resolves once `ready` matches its output (stdout + stderr). */
export function spawnCli(args: string[], ready: RegExp, opts: CliOptions & { timeoutMs?: number } = {}): Promise<RunningCli> {
  return new Promise((resolve, reject) => {
    const child = launchCli(args, opts);
    let out = '';
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`not ready in time: ${out}`));
    }, opts.timeoutMs ?? 120_000);
    const onData = (c: Buffer) => {
      out += c;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ child, output: () => out, match: m });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`exited ${code}: ${out}`));
    });
  });
}

/** Stops a process and resolves once it has exited (SIGKILL if `signal` has not ended it in 10 s). */
export function stopCli(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.removeAllListeners('exit');
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill(signal);
  });
}

export interface StartedCertgate extends RunningCli {
  /** The proxy port and the admin port from the "listening" log line. */
  readonly port: number;
  readonly adminPort: number | undefined;
}

/** `certgate start --config FILE` as a real process, once its "listening" line (matching `more`) is out. */
export async function startCertgate(file: string, more = ''): Promise<StartedCertgate> {
  const running = await spawnCli(['start', '--config', file], new RegExp(`"event":"listening"[^\\n]*${more}[^\\n]*\\n`));
  const line = running.match[0];
  const admin = /"adminPort":(\d+)/.exec(line);
  return { ...running, port: Number(/"port":(\d+)/.exec(line)![1]), adminPort: admin === null ? undefined : Number(admin[1]) };
}
