// Reading certgate's in-process metrics from a test.

import { metrics } from '../../src/metrics.js';

export async function reloadCount(result: 'success' | 'failure'): Promise<number> {
  const v = (await metrics.reloads.get()).values.find((x) => x.labels.result === result);
  return v?.value ?? 0;
}
