// Test configuration of the sanitizer run (scripts/test-sanitized.mjs, part of `npm test`): every
// test file that drives the native addon (the integration and interop tests; the unit tests are
// pure TypeScript) runs against the AddressSanitizer + UndefinedBehaviorSanitizer build of it. The
// script sets the environment (the ASan node first on PATH, VDE_NATIVE_ADDON, ASAN_OPTIONS,
// UBSAN_OPTIONS) that every worker and every process the tests start inherit;
// test/sanitize/loaded.test.ts, which only this configuration runs, proves it took effect.
import { configDefaults, defineConfig } from 'vitest/config';
import base from './vitest.config';

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['test/sanitize/*.test.ts', 'test/integration/*.test.ts', 'test/interop/*.test.ts', 'test/alone/*.test.ts'],
    // packaging is not native code, and npm would build the tarball's addon against the ASan node's (missing) headers
    exclude: [...configDefaults.exclude, 'test/integration/package.test.ts'],
  },
});
