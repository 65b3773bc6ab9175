/**
 * Unix socket paths that a tool binds (a switch's ctl and data sockets, its management socket,
 * QEMU listeners, ptp:// and stream:// servers, switch:// nodes): the one place that decides
 * whether an existing path may be taken over, creates sockets with their final mode atomically,
 * and removes at exit only what this process created.
 *
 * - An existing socket is probed with a connect of each socket type (stream, then datagram): if
 *   anything answers, or the socket exists with a type we cannot reach, it is live and refused;
 *   only a socket that refuses connections (ECONNREFUSED) is stale and unlinked.
 * - A path that exists but is not a socket (a regular file, a directory) is never deleted.
 * - A missing parent directory is reported as such (not as a permission error).
 * - Sockets are bound under a temporary umask, so they never exist with a looser mode.
 * - OwnedPath remembers the inode (and birth time) of what we created; release() unlinks it
 *   only if the path still names that file (a successor's socket at the same path is left alone).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { native } from '../native/index.js';

/** How long a liveness probe of an existing stream socket may take. */
export const PROBE_TIMEOUT_MS = 1000;

/** What is at a socket path: nothing, a live socket, a stale socket, or something that is not a socket. */
export type PathState = 'absent' | 'live' | 'stale' | 'notsocket';

function streamProbe(p: string): Promise<'live' | 'stale' | 'othertype'> {
  return new Promise((resolve) => {
    const c = net.connect({ path: p });
    const t = setTimeout(() => {
      c.destroy();
      resolve('live');
    }, PROBE_TIMEOUT_MS);
    c.once('connect', () => {
      clearTimeout(t);
      c.destroy();
      resolve('live');
    });
    c.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      if (e.code === 'ECONNREFUSED') resolve('stale');
      else if (e.code === 'EPROTOTYPE') resolve('othertype');
      else resolve('live'); // EACCES, EAGAIN (full backlog), ...: somebody's socket, not ours to take
    });
  });
}

function dgramProbe(p: string): 'live' | 'stale' {
  const a = native();
  const fd = a.unixDgramSocket();
  try {
    a.unixConnect(fd, p);
    return 'live';
  } catch (e) {
    return (e as { errno?: number }).errno === 111 ? 'stale' : 'live';
  } finally {
    a.closeFd(fd);
  }
}

/** What is at p before any connect: nothing, something that is not a socket, or a socket. */
function presence(p: string): 'absent' | 'notsocket' | 'socket' {
  try {
    return fs.lstatSync(p).isSocket() ? 'socket' : 'notsocket';
  } catch {
    return 'absent';
  }
}

/** Probes a socket path: 'absent', 'live' (something answers on it, of any type), 'stale', or 'notsocket'. */
export async function probeSocketPath(p: string): Promise<PathState> {
  const what = presence(p);
  if (what !== 'socket') return what;
  const s = await streamProbe(p);
  if (s !== 'othertype') return s;
  return dgramProbe(p);
}

/** Synchronous probe of a datagram socket path (for data sockets, which only datagram peers use). */
export function probeDgramPath(p: string): PathState {
  const what = presence(p);
  return what === 'socket' ? dgramProbe(p) : what;
}

/** Throws a clear message when the directory that should hold `p` does not exist or is not a directory. */
export function checkParentDir(p: string, what: string): void {
  const dir = path.dirname(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new Error(`${what} ${p}: the directory ${dir} does not exist`);
    throw new Error(`${what} ${p}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new Error(`${what} ${p}: ${dir} is not a directory`);
}

/**
 * Makes `p` free for a new socket: nothing there, or a stale socket (unlinked). Throws a one-line
 * message naming `what` when the path is live, is not a socket, or its directory is missing.
 */
export async function claimSocketPath(p: string, what: string): Promise<void> {
  checkParentDir(p, what);
  const s = await probeSocketPath(p);
  if (s === 'live') throw new Error(`${what} ${p} is in use by another process`);
  if (s === 'notsocket') throw new Error(`${what} ${p} exists and is not a socket; not removing it`);
  if (s === 'stale') fs.rmSync(p, { force: true });
}

/** Runs fn (which creates a socket file) with a umask that gives the file exactly `mode`. */
export function withSocketMode<T>(mode: number, fn: () => T): T {
  const old = process.umask(~mode & 0o777);
  try {
    return fn();
  } finally {
    process.umask(old);
  }
}

/** Listens on a unix stream socket path with its final mode from the start (bind happens inside listen, under the umask). */
export function listenUnix(srv: net.Server, p: string, mode: number, backlog?: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    srv.once('error', onError);
    withSocketMode(mode, () =>
      srv.listen({ path: p, backlog }, () => {
        srv.off('error', onError);
        resolve();
      }),
    );
  });
}

/** Removes a directory this process created, if it is empty; says why not otherwise (never recursive). */
export function removeCreatedDir(dir: string, warn: (msg: string) => void): void {
  try {
    fs.rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') warn(`could not remove ${dir}: ${(e as Error).message}`);
  }
}

/** A file this process created; release() removes it only while the path still names it. */
export class OwnedPath {
  private constructor(
    readonly path: string,
    private readonly ino: number,
    private readonly dev: number,
    private readonly birthMs: number,
  ) {}

  /** Records the file now at `p` as ours (call right after creating it). */
  static record(p: string): OwnedPath {
    const st = fs.lstatSync(p);
    return new OwnedPath(p, st.ino, st.dev, st.birthtimeMs);
  }

  /** True while `path` still names the file we created. */
  stillOurs(): boolean {
    try {
      const st = fs.lstatSync(this.path);
      // inode numbers are reused at once: the birth time tells a successor apart
      return st.ino === this.ino && st.dev === this.dev && st.birthtimeMs === this.birthMs;
    } catch {
      return false;
    }
  }

  /** Unlinks the file if it is still ours. */
  release(): void {
    if (this.stillOurs()) fs.rmSync(this.path, { force: true });
  }
}
