/**
 * passt:// — passt(1) (Debian package `passt`) as the NAT behind an engine port. The kind starts
 * a private passt for each endpoint: one end of a unix stream socketpair is handed to passt as
 * `--fd 3` (no socket path anyone else could reach), the other end goes to the engine as a QEMU
 * stream (4-byte big-endian lengths, the framing passt speaks to QEMU), so frames never pass
 * through JavaScript. passt's own options (port forwards, MTU, addresses, DNS, ...) are passed
 * through from the locator. The endpoint is ready when passt has written its pid file (after its
 * configuration and its port-forward sockets); a passt that exits early is reported with the
 * first line it printed. Closing the endpoint stops passt (SIGTERM, then SIGKILL); passt dying
 * on its own is reported through onLost with its exit status, so `vde_plug --reconnect` (or the
 * switch's `--passt`) starts a new one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { log } from '../../core/log.js';
import { EpKind, MAX_STREAM_FRAME_BYTES, native } from '../../native/index.js';
import type { OpenedEndpoint } from '../endpoint.js';
import type { PasstLocator } from '../vnl.js';

/** How long passt may take to configure itself and write its pid file. */
export const PASST_START_TIMEOUT_MS = 10_000;
/** How long a stopping passt gets between SIGTERM and SIGKILL. */
export const PASST_KILL_GRACE_MS = 1_000;
/** Poll interval while waiting for the pid file. */
const PASST_POLL_MS = 10;
/** How much of passt's stderr is kept for messages. */
const PASST_STDERR_KEEP_BYTES = 4096;
/** The socket type for socketPair: a byte stream. */
const SOCK_STREAM = 1;
/** Options whose value may list several addresses with commas: given to passt once per address. */
const PASST_REPEATED_KEYS = new Set(['address', 'dns', 'outbound', 'dns-forward']);
/** The passt program on PATH, or null. */
export function findPasst(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const d of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const p = path.join(d, 'passt');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* next directory */
    }
  }
  return null;
}

/** passt's command-line arguments for a locator's options (after the ones the kind sets itself). */
export function passtArgs(options: Record<string, string>): string[] {
  const args: string[] = [];
  for (const [k, v] of Object.entries(options)) {
    if (v === '') args.push(`--${k}`);
    else if (PASST_REPEATED_KEYS.has(k)) for (const one of v.split(',')) args.push(`--${k}`, one);
    else args.push(`--${k}`, v);
  }
  return args;
}

/** What passt printed, without the lines about the system logger it cannot reach. */
function cleanStderr(s: string): string[] {
  return s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^Failed to send \d+ bytes to syslog/.test(l) && !/^Don't run as root/.test(l));
}

/** How long explainLoss waits for a passt whose socket closed to become a zombie. */
const PASST_EXIT_WAIT_MS = 200;
const PASST_EXIT_POLL_MS = 5;

/** A process's state letter and its wait status (/proc/PID/stat fields 3 and 52), or null when it cannot be read. */
function procState(pid: number): { state: string; waitStatus: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: f[0] ?? '', waitStatus: Number(f[49] ?? 0) };
  } catch {
    return null;
  }
}

/** Sleeps the thread for ms milliseconds (used only on the loss path, never per frame). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** How a child ended, in words. */
function exitWords(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with status ${code}`;
}

/** Opens passt://: starts a private passt on a socketpair; the engine gets our end as a QEMU stream. */
export async function openPasst(loc: PasstLocator): Promise<OpenedEndpoint & { pid: number }> {
  const bin = findPasst();
  if (!bin) throw new Error('passt://: the passt program is not installed (Debian package "passt"; not found in PATH)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vde-ts-passt-'));
  // passt started by root drops to "nobody" before it writes its pid file: the file exists already, writable
  fs.chmodSync(dir, 0o711);
  const pidFile = path.join(dir, 'passt.pid');
  fs.writeFileSync(pidFile, '', { mode: 0o666 });
  fs.chmodSync(pidFile, 0o666);
  const a = native();
  const [ours, theirs] = a.socketPair(SOCK_STREAM);
  const args = ['--foreground', '--quiet', '--stderr', '--fd', '3', '--pid', pidFile, ...passtArgs(loc.options)];
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe', theirs] });
  } catch (e) {
    a.closeFd(ours);
    a.closeFd(theirs);
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`passt://: cannot start ${bin}: ${(e as Error).message}`);
  }
  a.closeFd(theirs);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-PASST_STDERR_KEEP_BYTES);
  });
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitWaiters: Array<() => void> = [];
  child.on('exit', (code, signal) => {
    exited = { code, signal };
    for (const w of exitWaiters.splice(0)) w();
  });
  child.on('error', () => {}); // spawn failures surface as exit (ENOENT races) or in the wait below
  const pid = child.pid ?? 0;
  const why = (): string => {
    const e = exited as { code: number | null; signal: NodeJS.Signals | null } | null;
    const lines = cleanStderr(stderr);
    return `passt (pid ${pid}) ${e ? exitWords(e.code, e.signal) : 'is gone'}${lines.length ? `: ${lines[0]}` : ''}`;
  };
  const cleanupDir = (): void => fs.rmSync(dir, { recursive: true, force: true });

  // ready when the pid file is written (configuration done, forwards bound), or failed when passt exits first
  const started = Date.now();
  for (;;) {
    if (exited) {
      await new Promise((r) => setTimeout(r, 50)); // the last of stderr
      a.closeFd(ours);
      cleanupDir();
      throw new Error(`passt://: ${why()}`);
    }
    let content = '';
    try {
      content = fs.readFileSync(pidFile, 'utf8');
    } catch {
      /* not yet */
    }
    if (/^\d+\s*$/.test(content)) break;
    if (Date.now() - started > PASST_START_TIMEOUT_MS) {
      child.kill('SIGKILL');
      a.closeFd(ours);
      cleanupDir();
      throw new Error(`passt://: passt (pid ${pid}) did not start within ${PASST_START_TIMEOUT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, PASST_POLL_MS));
  }

  let lostCb: ((why: string) => void) | null = null;
  let closing = false;
  child.on('exit', () => {
    if (closing) return; // we stopped it, or the engine saw its socket close first and explainLoss told why
    setTimeout(() => {
      const msg = why();
      log('warning', msg);
      lostCb?.(msg);
    }, 50);
  });
  /** passt's own account of the loss: how it ended, when it ended (waiting briefly for the exit after its socket closed). */
  const explainLoss = (engineWhy: string): string => {
    for (let waited = 0; ; waited += PASST_EXIT_POLL_MS) {
      if (exited) return why();
      const st = procState(pid);
      if (st?.state === 'Z' || st?.state === 'X') {
        const sig = st.waitStatus & 0x7f;
        const name = sig ? Object.entries(os.constants.signals).find(([, n]) => n === sig)?.[0] : undefined;
        const lines = cleanStderr(stderr);
        return `passt (pid ${pid}) ${sig ? `was killed by ${name ?? `signal ${sig}`}` : `exited with status ${(st.waitStatus >> 8) & 0xff}`}${lines.length ? `: ${lines[0]}` : ''}`;
      }
      if (waited >= PASST_EXIT_WAIT_MS) return engineWhy;
      sleepSync(PASST_EXIT_POLL_MS);
    }
  };
  const opts = passtArgs(loc.options).join(' ');
  return {
    fd: ours,
    kind: EpKind.Stream4,
    maxFrameBytes: MAX_STREAM_FRAME_BYTES,
    wholeSegments: true,
    name: `passt (pid ${pid}${opts ? ` ${opts}` : ''})`,
    pid,
    explainLoss,
    onLost: (cb) => {
      lostCb = cb;
      if (exited) setTimeout(() => cb(why()), 0);
    },
    close: () => {
      closing = true;
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => {
          if (!exited) child.kill('SIGKILL');
        }, PASST_KILL_GRACE_MS);
        t.unref();
        exitWaiters.push(() => clearTimeout(t));
      }
      cleanupDir();
    },
  };
}
