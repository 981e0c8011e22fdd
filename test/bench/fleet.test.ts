// The two-instance propagation bench runs: a tiny count through real certgate processes and a
// real redis-server, every sample measured. No timing assertions: this machine's numbers say
// nothing here.

import { describe, expect, it } from 'vitest';
import { runFleetBench } from '../../bench/fleet.js';

describe('fleet propagation bench', () => {
  it('measures POST /revocations on A to B closing the connection, for every sample', async () => {
    const r = await runFleetBench(3);
    expect(r.samples).toBe(3);
    expect(r.p50Ms).toBeGreaterThan(0);
    expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
    expect(r.maxMs).toBeGreaterThanOrEqual(r.p99Ms);
  }, 120_000);
});
