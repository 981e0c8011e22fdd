import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds dist/ when it is older than the sources (tests that run the CLI use the build).
    globalSetup: ['test/helpers/build.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores in CI: a few files at a time keep socket tests from starving each other.
    maxWorkers: 2,
    pool: 'forks',
  },
});
