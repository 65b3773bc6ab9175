// Test configuration of the tests that measure rates and gaps with real processes (test/alone):
// they run after the main suite, one file at a time and nothing beside them, so that another
// test's QEMU guest or iperf3 never competes with them for the CPUs. `npm test` runs them.
import { defineConfig } from 'vitest/config';
import base from './vitest.config';

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['test/alone/*.test.ts'],
    exclude: [],
    maxWorkers: 1,
    fileParallelism: false,
  },
});
