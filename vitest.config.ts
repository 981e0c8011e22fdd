import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds dist/ when it is older than the sources (tests that run the CLI use the build).
    globalSetup: ['test/helpers/build.ts'],
    // Only a hung test should reach these: tests that start real processes (the CLI, cluster
    // workers) take tens of seconds on a loaded 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores in CI: a few files at a time keep socket tests from starving each other.
    maxWorkers: 2,
    pool: 'forks',
  },
});
