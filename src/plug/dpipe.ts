/**
 * The `dpipe` command (vdeplug4 semantics): runs commands joined by *bidirectional* pipes,
 * `dpipe [OPTIONS] cmd1 args = cmd2 args [= cmd3 ...]`. The pipes are real kernel pipes handed
 * to the children as their descriptors (dpipe never copies a byte); middle commands of a chain
 * talk to the next command on their alternate descriptors (ALTERNATE_STDIN/ALTERNATE_STDOUT),
 * and `=}`…`}=` / `={`…`{=` sections make one-way rings, exactly as vdeplug4's recursion wires
 * them. dpipe stays the parent, closes its copies of every pipe end as soon as the child that
 * uses it is running, waits for all commands and exits with the status of the last one.
 * Node cannot fork, so `-d` (and `-P` when dpipe does not lead its own process group) re-launch
 * dpipe detached (setsid), which makes the new process the leader of a fresh group.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForReport } from '../core/daemon.js';
import { installCrashGuard } from '../core/errors.js';
import { versionLine } from '../core/version.js';
import { native } from '../native/index.js';

/** Exit status of usage errors (vdeplug4 calls exit(-1)). */
export const USAGE_EXIT_STATUS = 255;
/** Exit status recorded for a command that cannot be executed (as the shell and vdeplug4). */
export const EXEC_FAILED_EXIT_STATUS = 127;
/** Exit status of other start-up failures (pipes, pid files). */
export const STARTUP_FAILED_EXIT_STATUS = 1;
/** Pause after the last command ended, so that a queued SIGTERM still decides the exit status. */
const SIGNAL_GRACE_MS = 10;
/** Linux O_CLOEXEC as printed (octal) in /proc/self/fdinfo. */
const O_CLOEXEC_FLAG = 0o2000000;
/** Environment variable marking a re-launched dpipe (value: 'daemon' or 'group'). */
const INNER_ROLE_ENV = 'VDE_TS_DPIPE_INNER';
/** The executable entry point, used to re-launch dpipe. */
const BIN_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'dpipe');

/** A command-line mistake: reported with a hint and exit status 255. */
export class UsageError extends Error {}

/** Parsed options (everything before the first command). */
export interface DpipeOptions {
  daemon: boolean;
  pidFile: string | null;
  pgrpFile: string | null;
  /** -n or -N given (accepted; dpipe always stays the parent, see --help). */
  noWrap: boolean;
  /** -N given: leave the pid/pgrp files in place at exit. */
  noClean: boolean;
  help: boolean;
  /** --version given. */
  version: boolean;
}

/** Direction of a one-way section: '' (bidirectional), '}' (left to right) or '{' (right to left). */
export type Direction = '' | '{' | '}';

/** A parsed chain: commands[i] runs with modes[i], the section mode vdeplug4 calls olddirchar. */
export interface Chain {
  commands: string[][];
  modes: Direction[];
}

/** One end of pipe number `pipe` of a plan. */
export interface PipeEnd {
  pipe: number;
  end: 'r' | 'w';
}

/** How one command is connected. */
export interface CommandWiring {
  argv: string[];
  stdin: PipeEnd;
  stdout: PipeEnd;
  altIn?: PipeEnd;
  altOut?: PipeEnd;
}

/** The full wiring: how many pipes to create and which ends each command gets. */
export interface Plan {
  pipeCount: number;
  commands: CommandWiring[];
}

const LONG_OPTIONS: { name: string; short: string; arg: boolean }[] = [
  { name: 'daemon', short: 'd', arg: false },
  { name: 'pidfile', short: 'p', arg: true },
  { name: 'pgrpfile', short: 'P', arg: true },
  { name: 'nowrapproc', short: 'n', arg: false },
  { name: 'nowrapnoclean', short: 'N', arg: false },
  { name: 'help', short: 'h', arg: false },
  { name: 'version', short: '\0', arg: false }, // long only: NUL never appears in an argument
];

/** Parses the options getopt_long-style ("+dp:P:hnN": stops at the first non-option); returns them and the chain arguments. */
export function parseOptions(argv: string[]): { opts: DpipeOptions; rest: string[] } {
  const opts: DpipeOptions = { daemon: false, pidFile: null, pgrpFile: null, noWrap: false, noClean: false, help: false, version: false };
  const apply = (short: string, value?: string): void => {
    if (short === 'd') opts.daemon = true;
    else if (short === 'p') opts.pidFile = value!;
    else if (short === 'P') opts.pgrpFile = value!;
    else if (short === 'n') opts.noWrap = true;
    else if (short === 'N') opts.noWrap = opts.noClean = true;
    else if (short === 'h') opts.help = true;
    else if (short === '\0') opts.version = true;
  };
  let i = 0;
  while (i < argv.length) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const exact = LONG_OPTIONS.find((o) => o.name === name);
      const matches = exact ? [exact] : LONG_OPTIONS.filter((o) => o.name.startsWith(name));
      if (matches.length !== 1) {
        throw new UsageError(matches.length ? `option "--${name}" is ambiguous (${matches.map((o) => `--${o.name}`).join(', ')})` : `unknown option "--${name}"`);
      }
      const o = matches[0];
      i++;
      if (o.arg) {
        let v: string | undefined = eq >= 0 ? a.slice(eq + 1) : argv[i++];
        if (v === undefined || v === '') throw new UsageError(`option "--${o.name}" needs a file name`);
        apply(o.short, v);
      } else {
        if (eq >= 0) throw new UsageError(`option "--${o.name}" takes no value`);
        apply(o.short);
      }
      continue;
    }
    if (a.length < 2 || a[0] !== '-') break;
    i++;
    for (let j = 1; j < a.length; j++) {
      const o = LONG_OPTIONS.find((x) => x.short === a[j]);
      if (!o) throw new UsageError(`unknown option "-${a[j]}"`);
      if (!o.arg) {
        apply(o.short);
        continue;
      }
      const v = j + 1 < a.length ? a.slice(j + 1) : argv[i++];
      if (v === undefined || v === '') throw new UsageError(`option "-${o.short}" needs a file name`);
      apply(o.short, v);
      break;
    }
  }
  return { opts, rest: argv.slice(i) };
}

/** Splits the chain arguments at the separators (`=`, `=}`, `={`, and the closers `}=`, `{=`), checking the syntax. */
export function parseChain(args: string[]): Chain {
  const commands: string[][] = [[]];
  const modes: Direction[] = [''];
  let dir: Direction = '';
  for (const original of args) {
    let arg = original;
    if (arg.startsWith('}=') || arg.startsWith('{=')) {
      if (arg[0] !== dir) {
        throw new UsageError(
          dir
            ? `"${original}" does not close the one-way section opened by "=${dir}" (expected "${dir}=")`
            : `"${original}" closes a one-way section that was never opened with "=${arg[0]}"`,
        );
      }
      arg = arg.slice(1);
      dir = '';
    }
    if (arg.startsWith('=')) {
      if (commands[commands.length - 1].length === 0) {
        throw new UsageError(
          commands.length === 1 ? `a separator ("${original}") cannot come before the first command` : `separator "${original}" follows another separator: a command is missing between them`,
        );
      }
      // as in vdeplug4, a plain "=" inside a one-way section keeps the section's direction
      if (arg[1] === '{' || arg[1] === '}') dir = arg[1];
      commands.push([]);
      modes.push(dir);
    } else {
      commands[commands.length - 1].push(arg);
    }
  }
  if (commands.length < 2) throw new UsageError(args.length ? 'no "=" separator: dpipe needs at least two commands' : 'no command given');
  if (commands[commands.length - 1].length === 0) throw new UsageError('a separator cannot be the last argument: the last command is missing');
  if (dir) throw new UsageError(`the one-way section opened by "=${dir}" is never closed with "${dir}="`);
  return { commands, modes };
}

/** Computes which pipe ends every command gets, following vdeplug4's start_dpipe/rec_dpipe step by step. */
export function planWiring(chain: Chain): Plan {
  let pipeCount = 0;
  const newPipe = (): number => pipeCount++;
  const r = (p: number): PipeEnd => ({ pipe: p, end: 'r' });
  const w = (p: number): PipeEnd => ({ pipe: p, end: 'w' });
  const commands: CommandWiring[] = [];
  const n = chain.commands.length;
  // first command: its stdin is p1, its stdout p2; dpipe keeps p2's read end and p1's write end
  const p1 = newPipe();
  const p2 = newPipe();
  commands.push({ argv: chain.commands[0], stdin: r(p1), stdout: w(p2) });
  let sIn = r(p2);
  let sOut = w(p1);
  for (let i = 1; i < n - 1; i++) {
    const argv = chain.commands[i];
    const q1 = newPipe();
    switch (chain.modes[i]) {
      case '': {
        // ... = this = ...: the next command talks to this one's alternate descriptors
        const q2 = newPipe();
        commands.push({ argv, stdin: sIn, stdout: sOut, altIn: r(q1), altOut: w(q2) });
        sIn = r(q2);
        sOut = w(q1);
        break;
      }
      case '{':
        // ... ={ this {= ...: data flows right to left through this command
        commands.push({ argv, stdin: r(q1), stdout: sOut });
        sOut = w(q1);
        break;
      case '}':
        // ... =} this }= ...: data flows left to right through this command
        commands.push({ argv, stdin: sIn, stdout: w(q1) });
        sIn = r(q1);
        break;
    }
  }
  commands.push({ argv: chain.commands[n - 1], stdin: sIn, stdout: sOut });
  return { pipeCount, commands };
}

/** Lists the data paths of a plan as "i.out>j.in" strings (out/alt-out of i feeds in/alt-in of j), for checks and debugging. */
export function planEdges(plan: Plan): string[] {
  const writers = new Map<number, string>();
  const readers = new Map<number, string>();
  plan.commands.forEach((c, i) => {
    readers.set(c.stdin.pipe, `${i}.in`);
    writers.set(c.stdout.pipe, `${i}.out`);
    if (c.altIn) readers.set(c.altIn.pipe, `${i}.altin`);
    if (c.altOut) writers.set(c.altOut.pipe, `${i}.altout`);
  });
  const edges: string[] = [];
  for (let p = 0; p < plan.pipeCount; p++) edges.push(`${writers.get(p) ?? '?'}>${readers.get(p) ?? '?'}`);
  return edges.sort();
}

/** Returns the first `count` descriptor numbers >= 3 that a child would find free (not inherited without close-on-exec). */
export function firstFreeFds(count = 2): number[] {
  const inherited = new Set<number>();
  try {
    for (const name of fs.readdirSync('/proc/self/fd')) {
      const fd = Number(name);
      if (fd < 3) continue;
      try {
        const m = /^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
        if (m && (parseInt(m[1], 8) & O_CLOEXEC_FLAG) === 0) inherited.add(fd);
      } catch {
        // closed meanwhile (e.g. the directory handle itself)
      }
    }
  } catch {
    // no /proc: assume nothing is inherited
  }
  const out: number[] = [];
  for (let fd = 3; out.length < count; fd++) if (!inherited.has(fd)) out.push(fd);
  return out;
}

/** Reads this process's group and session ids from /proc (null when /proc is unavailable). */
function processGroup(): { pgrp: number; session: number } | null {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pgrp: Number(f[2]), session: Number(f[3]) };
  } catch {
    return null;
  }
}

/** The --help text. */
export function helpText(): string {
  return `Usage: dpipe [OPTIONS] cmd1 [args...] = cmd2 [args...] [= cmd3 [args...] ...]

Runs the commands connected by bidirectional pipes: the standard output of cmd1 is the
standard input of cmd2 and vice versa (the pipes are kernel pipes between the commands;
dpipe itself never copies data).

  a = b          a's stdout -> b's stdin, b's stdout -> a's stdin
  a = b = c      a and b as above; b talks to c on its alternate descriptors:
                 c's stdout -> b's alternate stdin, b's alternate stdout -> c's stdin.
                 Their numbers (normally 3 and 4) are exported to every command as
                 ALTERNATE_STDIN and ALTERNATE_STDOUT (wirefilter uses them).
  a =} b }= c    one-way ring a -> b -> c -> a (b handles left-to-right data only)
  a ={ b {= c    one-way ring in the other direction: a -> c -> b -> a
  a =} b }={ c {= d = e   notations mix: a -> b -> d -> c -> a, d's alternate fds <-> e

dpipe stays the parent of all commands, waits for all of them and exits with the exit
status of the LAST command (128+N if killed by signal N), or 127 when any command could not
be executed (vdeplug4 would report the last command's success in that case).
When a command exits its pipes close, so its neighbours see end-of-file.

Options (they must precede cmd1; the first non-option starts the chain):
  -d, --daemon            run in the background: detached, in its own session and process
                          group, in / (like daemon(3): give absolute paths), with stdin,
                          stdout and stderr on /dev/null; start-up errors (a command that
                          cannot be executed, an unwritable pid file) are reported first
  -p, --pidfile FILE      write dpipe's process id to FILE (removed at exit)
  -P, --pgrpfile FILE     write "-PGID" to FILE, the process group of dpipe and all its
                          commands, so that "kill -- $(cat FILE)" stops them all (removed at
                          exit). If dpipe does not already lead its own process group (as it
                          does when started by an interactive shell), it re-launches itself
                          in a new session to get one; the commands then have no controlling
                          terminal (an ssh password prompt needs -P from a job-control shell).
  -n, --nowrapproc        accepted for compatibility, same as the default: vdeplug4 execs the
                          last command in dpipe's own process, but Node cannot exec in place,
                          so dpipe always remains the parent process
  -N, --nowrapnoclean     like -n; also leaves the pid/pgrp files in place at exit
  -h, --help              show this help
      --version           print the version

Signals: SIGTERM, SIGINT and SIGHUP remove the pid files and send SIGTERM to the commands;
then dpipe exits 0 on SIGTERM and dies of the signal itself on SIGINT/SIGHUP.
Usage errors exit with status 255.

Examples:
  dpipe vde_plug /tmp/s1 = vde_plug /tmp/s2
      a cable between the switches /tmp/s1 and /tmp/s2
  dpipe vde_plug /tmp/s1 = ssh host vde_plug /tmp/s2
      a cable to a switch on another host
  dpipe vde_plug /tmp/s1 = wirefilter -l 10 = vde_plug /tmp/s2
      a cable losing 10% of the frames
  dpipe -d -p /run/cable.pid vde_plug /tmp/s1 = vde_plug /tmp/s2
      the same cable in the background
`;
}

/** Writes `-<pid>`-style files; returns an error message or null. */
function writePidFile(file: string, content: string): string | null {
  try {
    fs.writeFileSync(file, content);
    return null;
  } catch (e) {
    return `cannot write ${file}: ${(e as Error).message}`;
  }
}

/** Human-readable reason a command could not be started. */
function execError(cmd: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const why =
    err.code === 'ENOENT' ? (cmd.includes('/') ? 'no such file' : 'command not found') : err.code === 'EACCES' ? 'permission denied' : (err.message ?? String(e));
  return `dpipe: cannot execute "${cmd}": ${why}${err.code ? ` (${err.code})` : ''}`;
}

/** Exit status a shell would report for a command that ended with (code, signal). */
function statusOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? osConstants.signals[signal] : undefined;
  return n ? 128 + n : 1;
}

/** Re-launches dpipe as the leader of a new session and process group (Node cannot fork or setpgid). */
function relaunch(role: 'daemon' | 'group', opts: DpipeOptions, chainArgs: string[]): ChildProcess {
  const args: string[] = [];
  if (opts.pidFile) args.push('-p', opts.pidFile);
  if (opts.pgrpFile) args.push('-P', opts.pgrpFile);
  if (opts.noClean) args.push('-N');
  args.push('--', ...chainArgs);
  return spawn(process.execPath, [...process.execArgv, BIN_PATH, ...args], {
    detached: true,
    stdio: role === 'daemon' ? ['ignore', 'ignore', 'ignore', 'ipc'] : 'inherit',
    cwd: role === 'daemon' ? '/' : undefined,
    env: { ...process.env, [INNER_ROLE_ENV]: role },
  });
}

/** -d: starts the background dpipe and returns once it reports its commands running (or why it failed). */
function daemonize(opts: DpipeOptions, chainArgs: string[]): Promise<number> {
  return waitForReport('dpipe', relaunch('daemon', opts, chainArgs));
}

/** -P without an own process group: runs dpipe again as a group leader and mirrors its fate. */
function groupProxy(opts: DpipeOptions, chainArgs: string[]): Promise<number> {
  const child = relaunch('group', opts, chainArgs);
  const forward = (sig: NodeJS.Signals) => (): void => {
    try {
      if (child.pid) process.kill(child.pid, sig);
    } catch {
      // already gone
    }
  };
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of sigs) process.on(s, forward(s));
  return new Promise((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`dpipe: cannot re-launch itself: ${e.message}\n`);
      resolve(STARTUP_FAILED_EXIT_STATUS);
    });
    child.on('exit', (code, signal) => {
      for (const s of sigs) process.removeAllListeners(s);
      if (signal && code === null && signal !== 'SIGTERM') {
        process.kill(process.pid, signal);
        return;
      }
      resolve(statusOf(code, signal));
    });
  });
}

/** Runs the chain in this process: pid files, pipes, children, signals; resolves with the last command's status. */
async function runChain(plan: Plan, opts: DpipeOptions, role: string | undefined): Promise<number> {
  const daemonChild = role === 'daemon' && typeof process.send === 'function';
  const startupErrors: string[] = [];
  let started = false;
  const report = (msg: string): void => {
    if (daemonChild && !started) startupErrors.push(msg);
    else if (!daemonChild) process.stderr.write(`${msg}\n`);
  };
  const finishStartup = (status: number): void => {
    if (!daemonChild || started) return;
    started = true;
    try {
      process.send!({ errors: startupErrors, status });
      process.disconnect();
    } catch {
      // the launcher is gone
    }
  };

  let addon: ReturnType<typeof native>;
  try {
    addon = native();
  } catch (e) {
    report(`dpipe: ${(e as Error).message}`);
    finishStartup(STARTUP_FAILED_EXIT_STATUS);
    return STARTUP_FAILED_EXIT_STATUS;
  }
  const written: string[] = [];
  const cleanup = (): void => {
    if (opts.noClean) return;
    for (const f of written.splice(0)) fs.rmSync(f, { force: true });
  };
  for (const [file, content] of [
    [opts.pidFile, `${process.pid}\n`],
    [opts.pgrpFile, `-${process.pid}\n`], // callers guarantee this process leads its group
  ] as const) {
    if (!file) continue;
    const err = writePidFile(file, content);
    if (err) {
      report(`dpipe: ${err}`);
      cleanup();
      finishStartup(STARTUP_FAILED_EXIT_STATUS);
      return STARTUP_FAILED_EXIT_STATUS;
    }
    written.push(file);
  }

  const children: (ChildProcess | null)[] = [];
  const onSignal = (sig: NodeJS.Signals): void => {
    cleanup();
    for (const c of children) {
      if (c?.pid && c.exitCode === null && c.signalCode === null) {
        try {
          process.kill(c.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    }
    if (sig === 'SIGTERM') process.exit(0);
    process.removeAllListeners(sig);
    process.kill(process.pid, sig);
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  // like vdeplug4, do not die of signals aimed at the whole group for the commands' sake
  for (const s of ['SIGUSR1', 'SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGIO', 'SIGPWR'] as const) process.on(s, () => {});

  const fds: [number, number][] = [];
  try {
    for (let i = 0; i < plan.pipeCount; i++) fds.push(addon.pipe());
  } catch (e) {
    for (const [a, b] of fds) addon.closeFd(a), addon.closeFd(b);
    report(`dpipe: cannot create pipes: ${(e as Error).message}`);
    cleanup();
    finishStartup(STARTUP_FAILED_EXIT_STATUS);
    return STARTUP_FAILED_EXIT_STATUS;
  }
  const fdOf = (e: PipeEnd): number => fds[e.pipe][e.end === 'r' ? 0 : 1];
  const closeEnd = (e: PipeEnd): void => {
    const k = e.end === 'r' ? 0 : 1;
    if (fds[e.pipe][k] >= 0) addon.closeFd(fds[e.pipe][k]);
    fds[e.pipe][k] = -1;
  };

  const [altIn, altOut] = firstFreeFds(2);
  const env: NodeJS.ProcessEnv = { ...process.env, ALTERNATE_STDIN: String(altIn), ALTERNATE_STDOUT: String(altOut) };
  const last = plan.commands.length - 1;
  let running = plan.commands.length;
  let lastStatus = EXEC_FAILED_EXIT_STATUS;
  let anyExecFailed = false;
  let resolveAll!: () => void;
  const allDone = new Promise<void>((r) => (resolveAll = r));
  const finished = (i: number, status: number): void => {
    if (i === last) lastStatus = status;
    if (--running === 0) resolveAll();
  };

  plan.commands.forEach((cmd, i) => {
    const stdio: StdioOptions = [fdOf(cmd.stdin), fdOf(cmd.stdout), 'inherit'];
    if (cmd.altIn && cmd.altOut) {
      // positions between 3 and the alternate fds stay 'ignore', which leaves inherited fds alone
      while (stdio.length <= Math.max(altIn, altOut)) stdio.push('ignore');
      stdio[altIn] = fdOf(cmd.altIn);
      stdio[altOut] = fdOf(cmd.altOut);
    }
    let done = false;
    const fail = (e: unknown): void => {
      if (done) return;
      done = true;
      anyExecFailed = true;
      report(execError(cmd.argv[0], e));
      finished(i, EXEC_FAILED_EXIT_STATUS);
    };
    try {
      const child = spawn(cmd.argv[0], cmd.argv.slice(1), { stdio, env });
      children.push(child);
      child.on('error', (e) => {
        if (child.pid === undefined) fail(e);
      });
      child.on('exit', (code, signal) => {
        if (done) return;
        done = true;
        finished(i, statusOf(code, signal));
      });
    } catch (e) {
      children.push(null);
      fail(e);
    }
    // the child has its own copies now: drop ours, or the other ends would never see EOF
    for (const e of [cmd.stdin, cmd.stdout, cmd.altIn, cmd.altOut]) if (e) closeEnd(e);
  });
  // spawn failures are reported on the next tick
  await new Promise((r) => setImmediate(r));
  finishStartup(anyExecFailed ? EXEC_FAILED_EXIT_STATUS : 0);
  await allDone;
  // a signal that killed the commands may still be queued behind their exits: let it run first
  await new Promise((r) => setTimeout(r, SIGNAL_GRACE_MS));
  cleanup();
  // the last command's status; a command that could not be executed at all is never a success
  return anyExecFailed && lastStatus === 0 ? EXEC_FAILED_EXIT_STATUS : lastStatus;
}

/** Entry point of bin/dpipe; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  installCrashGuard('dpipe');
  process.title = 'dpipe';
  const role = process.env[INNER_ROLE_ENV];
  delete process.env[INNER_ROLE_ENV];
  let opts: DpipeOptions;
  let rest: string[];
  let plan: Plan;
  try {
    ({ opts, rest } = parseOptions(argv));
    if (opts.help) {
      process.stdout.write(helpText());
      return 0;
    }
    if (opts.version) {
      process.stdout.write(`${versionLine('dpipe')}\n`);
      return 0;
    }
    plan = planWiring(parseChain(rest));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`dpipe: ${e.message}\nUsage: dpipe [OPTIONS] cmd1 [args...] = cmd2 [args...] [= cmd3 ...]   (dpipe --help for more)\n`);
    return USAGE_EXIT_STATUS;
  }
  if (opts.pidFile) opts.pidFile = path.resolve(opts.pidFile);
  if (opts.pgrpFile) opts.pgrpFile = path.resolve(opts.pgrpFile);
  if (!role) {
    if (opts.daemon) return daemonize(opts, rest);
    if (opts.pgrpFile) {
      const g = processGroup();
      if (!g || g.pgrp !== process.pid) return groupProxy(opts, rest);
    }
  }
  return runChain(plan, opts, role);
}
