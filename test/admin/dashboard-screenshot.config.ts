// `npm run docs:screenshot`: runs only dashboard-screenshot.ts, which rewrites
// docs/images/dashboard.png (not part of `npm test`: its include pattern is *.test.ts).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/admin/dashboard-screenshot.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
