// Child processes of a bench run and what /proc says about them: CPU time (utime+stime) and
// RSS, summed over a process and its descendants (cluster workers).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';

const CLK_TCK = 100; // USER_HZ on every Linux we run on

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** Every line the process wrote on stderr (for error reports). */
  readonly stderr: string[];
  /** Bytes the process wrote on stdout after its port line (the access log, when it goes there). */
  stdoutBytes(): number;
  stop(): Promise<void>;
}

let tasksetChecked: boolean | undefined;
export function hasTaskset(): boolean {
  if (tasksetChecked === undefined) tasksetChecked = spawnSync('taskset', ['-V']).status === 0;
  return tasksetChecked;
}

/** CPU list for `taskset -c`, or undefined when pinning is off or impossible. */
export function cpuList(cpus: number[] | undefined): string | undefined {
  if (cpus === undefined || cpus.length === 0 || !hasTaskset()) return undefined;
  return cpus.join(',');
}

export function pinSelf(cpus: number[] | undefined): boolean {
  const l = cpuList(cpus);
  if (l === undefined) return false;
  return spawnSync('taskset', ['-pc', l, String(process.pid)]).status === 0;
}

export const CORES = availableParallelism();

/**
 * Starts `node args...` (pinned when `cpus` is given) and waits for the line from which
 * `portOf` reads the listening port.
 */
export function startProc(
  name: string,
  args: string[],
  portOf: (line: string) => number | undefined,
  opts: { cpus?: number[]; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<Proc> {
  const pin = cpuList(opts.cpus);
  const [cmd, argv] = pin !== undefined ? ['taskset', ['-c', pin, process.execPath, ...args]] : [process.execPath, args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => {
    if (stderr.length < 200) stderr.push(l);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start within ${opts.timeoutMs ?? 15000} ms: ${stderr.join('\n')}`));
    }, opts.timeoutMs ?? 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before listening: ${stderr.join('\n')}`));
    });
    const rl = createInterface({ input: child.stdout! });
    let found = false;
    rl.on('line', (line) => {
      if (found) return;
      const port = portOf(line);
      if (port === undefined) return;
      found = true;
      clearTimeout(timer);
      // From here stdout is drained and discarded, as a container runtime's log pipe would be
      // read: the process keeps writing to a pipe (not /dev/null), nothing parses the lines.
      rl.close();
      let out = 0;
      child.stdout!.on('data', (c: Buffer) => (out += c.length));
      child.stdout!.resume();
      child.removeAllListeners('exit');
      const stop = () =>
        new Promise<void>((res) => {
          if (child.exitCode !== null || child.signalCode !== null) return res();
          const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
          child.once('exit', () => {
            clearTimeout(kill);
            res();
          });
          child.kill('SIGTERM');
        });
      resolve({ name, child, pid: child.pid!, port, stderr, stdoutBytes: () => out, stop });
    });
  });
}

/** With taskset in front, the node process is taskset's exec'd self: same pid. */
function descendants(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
        if (kids !== '') for (const k of kids.split(/\s+/)) out.push(Number(k));
      } catch {
        // the task ended meanwhile
      }
    }
  }
  return out;
}

export const procAvailable = existsSync('/proc/self/stat');

/** utime+stime in seconds of pid and its descendants; NaN without /proc. */
export function cpuSeconds(pid: number): number {
  if (!procAvailable) return NaN;
  let ticks = 0;
  for (const p of descendants(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the ")" of comm: state is field 3; utime/stime are fields 14/15.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited
    }
  }
  return ticks / CLK_TCK;
}

/** Resident set size in bytes of pid and its descendants; NaN without /proc. */
export function rssBytes(pid: number): number {
  if (!procAvailable) return NaN;
  let kb = 0;
  for (const p of descendants(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // exited
    }
  }
  return kb * 1024;
}

/** Peak RSS (VmHWM) in bytes, summed over the process tree. */
export function peakRssBytes(pid: number): number {
  if (!procAvailable) return NaN;
  let kb = 0;
  for (const p of descendants(pid)) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // exited
    }
  }
  return kb * 1024;
}
