// Test configuration: unit tests (parsers, formats), integration tests (real switch processes)
// and interop tests (Debian vde2/vdeplug4, QEMU, kernel taps in namespaces). The global set-up
// builds the project if needed and installs the Debian packages the tests use. test/sanitize
// belongs to the sanitizer run (vitest.sanitize.config.ts, scripts/test-sanitized.mjs); test/alone
// holds tests that measure rates and gaps and so run afterwards, one at a time, with the machine
// to themselves (vitest.alone.config.ts).
import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, 'test/sanitize/**', 'test/alone/**'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
