/*
 * Test dependency helper: makes sure the external programs a test relies on (QEMU, the reference
 * Debian VDE tools, iproute2, ping, busybox, ...) are present, installing the Debian package that
 * provides them with apt-get when they are missing. A missing tool is never skipped silently:
 * if it still cannot be found after installing, an Error naming the Debian package is thrown.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** Upper bound for one apt-get invocation (update or install). */
const APT_TIMEOUT_MS = 15 * 60 * 1000;
/** How long apt-get waits for the dpkg lock held by a parallel install (seconds, apt option). */
const APT_LOCK_TIMEOUT_S = 600;
/** Captured output kept for error messages. */
const APT_MAX_BUFFER_BYTES = 16 * 1024 * 1024;

/** Whether `apt-get update` already ran in this process (it runs at most once). */
let aptUpdated = false;
/** Serialises apt-get runs started from this process. */
let aptQueue: Promise<unknown> = Promise.resolve();

/** Returns the absolute path of an executable found on PATH (or the path itself if absolute), or null. */
export function which(binary: string): string | null {
  const isExec = (p: string): boolean => {
    try {
      accessSync(p, fsConstants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (isAbsolute(binary)) return isExec(binary) ? binary : null;
  // Debian keeps admin tools in sbin; include it even if the test runner's PATH does not.
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (!dirs.includes(extra)) dirs.push(extra);
  }
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    if (isExec(candidate)) return candidate;
  }
  return null;
}

/** Returns true when `p` exists (any file type); used for non-executable files such as kernels. */
function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Runs apt-get with the given arguments (non-interactive, bounded in time); rejects on failure. */
function runApt(args: string[]): Promise<string> {
  const run = (): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile(
        'apt-get',
        ['-o', `DPkg::Lock::Timeout=${APT_LOCK_TIMEOUT_S}`, ...args],
        {
          timeout: APT_TIMEOUT_MS,
          killSignal: 'SIGKILL',
          maxBuffer: APT_MAX_BUFFER_BYTES,
          env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        },
        (err, stdout, stderr) => {
          if (err) {
            reject(new Error(`apt-get ${args.join(' ')} failed: ${err.message}\n${stderr.slice(-4000)}`));
          } else {
            resolve(stdout);
          }
        },
      );
    });
  const next = aptQueue.then(run, run);
  aptQueue = next.catch(() => undefined);
  return next;
}

/** Installs Debian packages with apt-get (running `apt-get update` once and retrying if the first attempt fails). */
export async function aptInstall(packages: string[]): Promise<void> {
  if (packages.length === 0) return;
  const args = ['install', '-y', '--no-install-recommends', ...packages];
  try {
    await runApt(args);
  } catch (first) {
    if (aptUpdated) throw first;
    aptUpdated = true;
    await runApt(['update']);
    await runApt(args);
  }
}

/**
 * Ensures every binary in `map` (binary name or absolute path → Debian package) is available,
 * installing missing packages; returns binary → absolute path, or throws naming the package.
 */
export async function ensureTools(map: Record<string, string>): Promise<Record<string, string>> {
  const locate = (bin: string): string | null => (isAbsolute(bin) ? (exists(bin) ? bin : null) : which(bin));
  const missing = Object.entries(map).filter(([bin]) => locate(bin) === null);
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))];
    let installError: unknown = null;
    try {
      await aptInstall(packages);
    } catch (e) {
      installError = e;
    }
    const still = missing.filter(([bin]) => locate(bin) === null);
    if (still.length > 0) {
      const list = still.map(([bin, pkg]) => `'${bin}' (Debian package ${pkg})`).join(', ');
      const why = installError instanceof Error ? `: ${installError.message}` : '';
      throw new Error(`required tool(s) missing and could not be installed: ${list}${why}`);
    }
  }
  const result: Record<string, string> = {};
  for (const bin of Object.keys(map)) {
    const found = locate(bin);
    if (found === null) throw new Error(`required tool '${bin}' missing (Debian package ${map[bin]})`);
    result[bin] = found;
  }
  return result;
}

/**
 * Ensures a file produced by a Debian package exists: `probe` returns its path or null; when null the
 * package is installed and `probe` is asked again; throws naming the package if it is still missing.
 */
export async function ensureFile(probe: () => string | null, pkg: string, what: string): Promise<string> {
  const first = probe();
  if (first !== null) return first;
  let installError: unknown = null;
  try {
    await aptInstall([pkg]);
  } catch (e) {
    installError = e;
  }
  const second = probe();
  if (second !== null) return second;
  const why = installError instanceof Error ? `: ${installError.message}` : '';
  throw new Error(`required ${what} missing and could not be installed (Debian package ${pkg})${why}`);
}
