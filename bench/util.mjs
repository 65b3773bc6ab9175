/*
 * bench/util.mjs - small helpers the standalone benchmarks (slirp.mjs, wirefilter.mjs) share:
 * sleeping, waiting for a condition with a deadline, and stopping a child process by its PID.
 */

/** Resolves after ms milliseconds. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn (which may throw or return a Promise) every 50 ms until it is truthy; throws after ms naming `what`. */
export async function until(fn, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if (await fn()) return;
    } catch {
      /* not yet */
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Stops a child process: SIGTERM, SIGKILL after graceMs; resolves once it has exited. */
export async function stopChild(p, graceMs = 3000) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(t);
}
