// Test configuration: unit tests (parsers, formats), integration tests (real switch processes)
// and interop tests (Debian vde2/vdeplug4, QEMU, kernel taps in namespaces). The global set-up
// builds the project if needed and installs the Debian packages the tests use. test/sanitize
// belongs to the sanitizer run (vitest.sanitize.config.ts, scripts/test-sanitized.mjs).
import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, 'test/sanitize/**'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
