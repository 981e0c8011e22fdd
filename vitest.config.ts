import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores in CI: a few files at a time keep socket tests from starving each other.
    maxWorkers: 2,
    pool: 'forks',
  },
});
