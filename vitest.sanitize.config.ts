// Test configuration of the sanitizer run (scripts/test-sanitized.mjs, part of `npm test`): the
// integration tests and the interop tests that drive the engine with real clients, run against
// the AddressSanitizer + UndefinedBehaviorSanitizer build of the addon. The script sets the
// environment (VDE_NATIVE_ADDON, LD_PRELOAD, ASAN_OPTIONS, UBSAN_OPTIONS) that every worker and
// every process the tests start inherit; test/sanitize/loaded.test.ts proves it took effect.
import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config';

/** Interop tests whose clients push frames through the engine's parsers (taps with offloads, VXLAN, slirp, cables). */
export const SANITIZED_INTEROP_TESTS = [
  'test/interop/debian-clients.test.ts',
  'test/interop/cables.test.ts',
  'test/interop/tap-offload.test.ts',
  'test/interop/vxlan.test.ts',
  'test/interop/slirp.test.ts',
];

export default mergeConfig(
  base,
  defineConfig({
    test: {
      include: ['test/sanitize/*.test.ts', 'test/integration/*.test.ts', ...SANITIZED_INTEROP_TESTS],
    },
  }),
  false,
);
