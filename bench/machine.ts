// The machine's load during a run: load averages before and after each scenario, and, per
// measured window, the CPU that processes outside the bench used (from /proc/stat minus the
// bench's own process tree). CPU per request rises when the measured core is shared, so a
// window where others ran is flagged: its figures are noise, whatever they show.

import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { cpuSeconds, procAvailable } from './procs.js';

const CLK_TCK = 100;

/** Other processes using more than this many cores on average in a window make it noise. */
export const OTHERS_WARN_CORES = 0.2;

export interface CpuSnapshot {
  /** user+nice+system of the whole machine, seconds. */
  readonly busy: number;
  /** Time the hypervisor gave to other guests, seconds. */
  readonly steal: number;
  /** utime+stime of the bench's own process tree (and an external target), seconds. */
  readonly ours: number;
}

export interface WindowLoad {
  /** Cores used on average by processes that are not part of the bench. */
  othersCores: number;
  /** Cores taken by the hypervisor (steal) on average. */
  stealCores: number;
}

export interface ScenarioLoad {
  scenario: string;
  /** 1, 5 and 15 minute load averages. */
  before: number[];
  after: number[];
  /** The worst window of the scenario. */
  othersCoresMax: number;
  stealCoresMax: number;
}

export function loadAverages(): number[] {
  return loadavg().map((x) => Math.round(x * 100) / 100);
}

export function cpuSnapshot(extraPid?: number): CpuSnapshot {
  if (!procAvailable) return { busy: NaN, steal: NaN, ours: NaN };
  const f = readFileSync('/proc/stat', 'utf8').slice(0, 200).split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // cpu  user nice system idle iowait irq softirq steal ...: guest time is already in user.
  const busy = (f[0]! + f[1]! + f[2]!) / CLK_TCK;
  const steal = (f[7] ?? 0) / CLK_TCK;
  const ours = cpuSeconds(process.pid) + (extraPid === undefined ? 0 : cpuSeconds(extraPid));
  return { busy, steal, ours };
}

export function windowLoad(a: CpuSnapshot, b: CpuSnapshot, seconds: number): WindowLoad {
  const r = (x: number) => Math.round(x * 1000) / 1000;
  if (!(seconds > 0)) return { othersCores: NaN, stealCores: NaN };
  // Clock ticks are coarse (10 ms per process): never report a negative share.
  return { othersCores: r(Math.max(0, b.busy - a.busy - (b.ours - a.ours)) / seconds), stealCores: r((b.steal - a.steal) / seconds) };
}

/** One line per scenario whose windows were shared with other processes. */
export function loadWarnings(load: readonly ScenarioLoad[], cores: number): string[] {
  const out: string[] = [];
  for (const l of load) {
    const noisy = l.othersCoresMax > OTHERS_WARN_CORES || l.stealCoresMax > OTHERS_WARN_CORES;
    if (!noisy) continue;
    out.push(
      `WARNING: ${l.scenario}: other processes used up to ${l.othersCoresMax.toFixed(2)} of ${cores} cores` +
        (l.stealCoresMax > 0 ? ` (hypervisor steal up to ${l.stealCoresMax.toFixed(2)})` : '') +
        ` during its windows (load average ${l.before[0]} -> ${l.after[0]}): its figures are noise`,
    );
  }
  return out;
}
