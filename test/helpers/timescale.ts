// How much the test helpers stretch their waits. The sanitized run (scripts/test-sanitized.mjs)
// sets VDE_SANITIZED=1 and everything runs several times slower there. This module imports
// nothing, so child processes spawned by tests (plain node + tsx, no vitest) can use the helpers
// that depend on it.

/** Factor applied to every helper timeout: 4 under the sanitizers, else 1. */
export const TIME_SCALE = process.env.VDE_SANITIZED === '1' ? 4 : 1;
