/**
 * Processes and commands for vde_lab: where our own commands live, running a command with a
 * time limit, starting a detached background process whose output goes to a log file, and
 * stopping a process by its PID (only when its command line still names the lab's run
 * directory, so a reused PID is never killed). Nothing here kills by name.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Time limit of one helper command (ip, sysctl), ms. */
export const COMMAND_TIMEOUT_MS = 30_000;
/** Time between SIGTERM and SIGKILL, ms. */
export const KILL_GRACE_MS = 2_000;
/** Poll interval while waiting for something, ms. */
export const POLL_MS = 25;

/** Absolute path of one of this package's commands (bin/NAME). */
export function ownBin(name: string): string {
  return fileURLToPath(new URL(`../../bin/${name}`, import.meta.url));
}

/** argv that runs one of our commands with the running node. */
export function ownCommand(name: string, args: string[]): string[] {
  return [process.execPath, ownBin(name), ...args];
}

/** Output of a finished command. */
export interface CmdOutput { code: number; stdout: string; stderr: string }

/** Runs argv (no shell) and resolves with its output; rejects with a one-line message on failure unless check is false. */
export function cmd(argv: string[], o: { input?: string; check?: boolean; timeoutMs?: number } = {}): Promise<CmdOutput> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0], argv.slice(1), { timeout: o.timeoutMs ?? COMMAND_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? Number((err as { code: number }).code) : 1) : 0;
      const r = { code, stdout: String(stdout), stderr: String(stderr) };
      if (err && o.check !== false) {
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${argv[0]}: command not found` : (r.stderr.trim().split('\n').pop() || err.message.split('\n')[0]);
        reject(new Error(`${argv.join(' ')}: ${why}`));
      } else resolve(r);
    });
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

/** Starts argv detached (its own session), stdout and stderr appended to logFile; returns the PID. */
export function startDetached(argv: string[], logFile: string, env?: NodeJS.ProcessEnv): number {
  const fd = fs.openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: env ?? process.env });
    if (child.pid === undefined) throw new Error(`${argv[0]}: could not start`);
    child.on('error', () => {});
    child.unref();
    return child.pid;
  } finally {
    fs.closeSync(fd);
  }
}

/** True while the process exists (and, when mark is given, its command line contains mark). */
export function alive(pid: number, mark?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (mark === undefined) return true;
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(st)) return false;
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(mark);
  } catch {
    return false;
  }
}

/** Sleeps ms. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Stops a process we started: SIGTERM, then SIGKILL after the grace time; its process group too when group is set. */
export async function stopPid(pid: number, mark: string, o: { group?: boolean; graceMs?: number } = {}): Promise<void> {
  if (!alive(pid, mark)) return;
  const sig = (s: NodeJS.Signals): void => {
    try {
      process.kill(o.group ? -pid : pid, s);
    } catch {
      try {
        process.kill(pid, s);
      } catch {
        /* gone */
      }
    }
  };
  sig('SIGTERM');
  const until = Date.now() + (o.graceMs ?? KILL_GRACE_MS);
  while (Date.now() < until) {
    if (!alive(pid, mark)) return;
    await sleep(POLL_MS);
  }
  sig('SIGKILL');
  const hard = Date.now() + KILL_GRACE_MS;
  while (Date.now() < hard && alive(pid, mark)) await sleep(POLL_MS);
}

/** Polls fn until it returns a truthy value or the time runs out (then throws with what). */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string, ok?: () => boolean): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (ok && !ok()) throw new Error(`${what}: the process exited (see its log)`);
    if (Date.now() > end) throw new Error(`${what}: not ready within ${timeoutMs} ms`);
    await sleep(POLL_MS);
  }
}

/** Runs fns with at most limit at a time; rejects with the first error after all settled. */
export async function parallel<T>(items: T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  let first: unknown = null;
  const worker = async (): Promise<void> => {
    while (i < items.length) {
      const x = items[i++];
      try {
        await fn(x);
      } catch (e) {
        first ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (first) throw first;
}
