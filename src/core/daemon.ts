/**
 * Background mode for the command-line tools (`-d`). Node cannot fork, so the tool re-launches
 * itself detached (new session, cwd /, no stdio, `--daemon-child` appended) and waits until the
 * copy reports over IPC that it is serving, or why it failed; then the foreground process exits
 * with 0 or 1. The copy calls reportStarted() once it is up (or failed).
 */
import { spawn } from 'node:child_process';

/** How long the foreground process waits for the background copy to report. */
export const DAEMON_START_TIMEOUT_MS = 15_000;

/** Re-launches the current command in the background; resolves with the exit status for the foreground. */
export function daemonize(program: string, argv: string[]): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv, '--daemon-child'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    cwd: '/',
  });
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      process.stderr.write(`${program}: the background process did not report within ${DAEMON_START_TIMEOUT_MS} ms\n`);
      resolve(1);
    }, DAEMON_START_TIMEOUT_MS);
    child.on('message', (m: { ok: boolean; error?: string }) => {
      clearTimeout(t);
      if (!m.ok) process.stderr.write(`${program}: ${m.error}\n`);
      child.disconnect();
      child.unref();
      resolve(m.ok ? 0 : 1);
    });
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve(code || 1);
    });
  });
}

/** In the background copy: tells the waiting foreground process that start-up succeeded or failed. Returns false outside daemon mode. */
export function reportStarted(error?: string): boolean {
  if (!process.send) return false;
  process.send(error === undefined ? { ok: true } : { ok: false, error });
  if (error === undefined) process.disconnect?.();
  return true;
}
