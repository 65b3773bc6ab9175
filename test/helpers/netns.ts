/*
 * Linux network-namespace helpers for vde-ts tests: namespaces act as small "hosts" attached to a
 * switch through tap interfaces. Names include process.pid so parallel test files never clash, and
 * every namespace, interface, process and temp path can be registered in a Cleanup registry that a
 * test's afterAll runs (processes are killed by PID only). Anything still registered when the
 * process exits is removed synchronously as a last resort.
 *
 * Attaching a namespace to a switch through a tap, two ways:
 *  - createTap(name) in the root namespace, let the root-namespace process (switch `-tap`, or
 *    `vde_plug vde://SW tap://NAME`) open it, then moveLinkToNetns(name, ns, addr): the open file
 *    descriptor keeps working after the move (needed when the switch itself opens the tap);
 *  - createTapInNetns(ns, name, addr) and start the opener inside the namespace with spawnInNetns
 *    (a unix-socket path such as the switch directory is reachable from any network namespace).
 */
import { execFile, execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { rmSync } from 'node:fs';
import { ensureTools } from './deps.js';

/** Default time limit for one helper command. */
const COMMAND_TIMEOUT_MS = 30_000;
/** Time between SIGTERM and SIGKILL when stopping a process. */
const KILL_GRACE_MS = 2_000;
/** Poll interval used while waiting for a process to die or a condition to hold. */
const POLL_INTERVAL_MS = 50;
/** Linux interface names are at most 15 characters (IFNAMSIZ - 1). */
const IFNAME_MAX_CHARS = 15;
/** Time limit for each synchronous command of the process-exit fallback cleanup. */
const EXIT_CLEANUP_TIMEOUT_MS = 5_000;

/** Output of a finished command. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Options for run()/netnsExec(). */
export interface ExecOptions {
  /** Time limit (default 30 s); the command is killed when it is reached. */
  timeoutMs?: number;
  /** Throw when the command fails (default true). */
  check?: boolean;
  /** Data written to the command's stdin. */
  input?: string | Buffer;
}

/** Result of ping(). */
export interface PingResult {
  transmitted: number;
  received: number;
  lossPercent: number;
  rttMinMs: number | null;
  rttAvgMs: number | null;
  rttMaxMs: number | null;
  output: string;
}

let counter = 0;
/** Next per-process sequence number for unique names. */
function nextId(): number {
  counter += 1;
  return counter;
}

/** Runs argv (no shell) in the root namespace with a time limit; throws on failure unless check is false. */
export function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('run: empty argv'));
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? COMMAND_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        const result = { stdout: String(stdout), stderr: String(stderr), code };
        if (err && opts.check !== false) {
          reject(new Error(`command failed (${err.message.split('\n')[0]}): ${argv.join(' ')}\n${result.stderr}${result.stdout}`));
        } else {
          resolve(result);
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs argv inside network namespace `ns` (`ip netns exec`); `ns` null means the root namespace. */
export function netnsExec(ns: string | null, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return run(ns === null ? argv : ['ip', 'netns', 'exec', ns, ...argv], opts);
}

/** Ensures iproute2 (ip) and iputils-ping (ping) are installed. */
export async function ensureNetTools(): Promise<void> {
  await ensureTools({ ip: 'iproute2', ping: 'iputils-ping' });
}

/** Returns true if `pid` still exists (signal 0 probe). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sleeps for `ms` milliseconds. */
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` every 50 ms until it returns a truthy value or `timeoutMs` passes (then throws `what`). */
export async function pollUntil<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(POLL_INTERVAL_MS);
  }
}

/** Stops a process by PID: SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone (bounded). */
export async function killPid(pid: number, graceMs: number = KILL_GRACE_MS): Promise<void> {
  if (!(pid > 0) || !alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const termDeadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < termDeadline) await sleep(POLL_INTERVAL_MS);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    const killDeadline = Date.now() + graceMs;
    while (alive(pid) && Date.now() < killDeadline) await sleep(POLL_INTERVAL_MS);
  }
}

/** Stops a child process we spawned (by its PID) and waits for its exit event (bounded). */
export async function killChild(child: ChildProcess, graceMs: number = KILL_GRACE_MS): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await killPid(child.pid, graceMs);
  // Zombies still answer kill(0) until reaped; the exit event confirms the reap.
  await Promise.race([exited, sleep(graceMs)]);
}

type CleanupItem =
  | { kind: 'netns'; ns: string }
  | { kind: 'link'; name: string; ns: string | null }
  | { kind: 'process'; pid: number; child?: ChildProcess }
  | { kind: 'path'; path: string }
  | { kind: 'fn'; label: string; fn: () => unknown };

/** Registries whose items have not been cleaned yet (for the process-exit fallback). */
const liveRegistries = new Set<Cleanup>();
let exitHookInstalled = false;

/** Signals after which the fallback cleanup runs (vitest stops its fork workers with SIGTERM). */
const FALLBACK_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
/** The fallback signal handlers, so they can remove themselves. */
const handlers = new Map<NodeJS.Signals, () => void>();

/** Installs the synchronous process-exit fallback that removes anything still registered. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const runAll = (): void => {
    for (const reg of [...liveRegistries]) reg.runSync();
  };
  process.on('exit', runAll);
  for (const sig of FALLBACK_SIGNALS) {
    const handler = (): void => {
      runAll();
      // Restore the previous behaviour: if nobody else handles the signal, die from it as before.
      for (const s of FALLBACK_SIGNALS) process.removeListener(s, handlers.get(s)!);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    handlers.set(sig, handler);
    process.on(sig, handler);
  }
}

/** Registry of things a test created; run() removes them in reverse order of registration. */
export class Cleanup {
  private items: CleanupItem[] = [];

  /** Creates an empty registry (also covered by the process-exit fallback). */
  constructor() {
    installExitHook();
    liveRegistries.add(this);
  }

  /** Registers a network namespace for deletion (its remaining processes are killed by PID first). */
  netns(ns: string): string {
    this.items.push({ kind: 'netns', ns });
    return ns;
  }

  /** Registers a network interface (in namespace `ns`, null = root) for deletion. */
  link(name: string, ns: string | null = null): string {
    this.items.push({ kind: 'link', name, ns });
    return name;
  }

  /** Registers a process (ChildProcess or PID) to be killed by PID; a ChildProcess is dropped once it exits. */
  process<T extends ChildProcess | number>(p: T): T {
    if (typeof p === 'number') {
      this.items.push({ kind: 'process', pid: p });
    } else if (p.pid !== undefined && p.exitCode === null && p.signalCode === null) {
      const item: CleanupItem = { kind: 'process', pid: p.pid, child: p };
      this.items.push(item);
      // Forget it once reaped, so its PID can never be signalled after being reused.
      p.once('exit', () => {
        const i = this.items.indexOf(item);
        if (i >= 0) this.items.splice(i, 1);
      });
    }
    return p;
  }

  /** Registers a file or directory for recursive removal. */
  path(path: string): string {
    this.items.push({ kind: 'path', path });
    return path;
  }

  /** Registers an arbitrary cleanup function. */
  add(label: string, fn: () => unknown): void {
    this.items.push({ kind: 'fn', label, fn });
  }

  /** Removes everything registered (last registered first); throws an AggregateError listing failures. */
  async run(): Promise<void> {
    const errors: Error[] = [];
    while (this.items.length > 0) {
      const item = this.items.pop()!;
      try {
        await cleanItem(item);
      } catch (e) {
        errors.push(e instanceof Error ? e : new Error(String(e)));
      }
    }
    liveRegistries.delete(this);
    if (errors.length > 0) throw new AggregateError(errors, `cleanup: ${errors.map((e) => e.message).join('; ')}`);
  }

  /** Synchronous best-effort variant of run() used when the process exits. */
  runSync(): void {
    while (this.items.length > 0) {
      const item = this.items.pop()!;
      try {
        switch (item.kind) {
          case 'process':
            if (item.child && (item.child.exitCode !== null || item.child.signalCode !== null)) break;
            if (alive(item.pid)) process.kill(item.pid, 'SIGKILL');
            break;
          case 'netns':
            for (const pid of nsPidsSync(item.ns)) if (alive(pid)) process.kill(pid, 'SIGKILL');
            execFileSync('ip', ['netns', 'del', item.ns], { stdio: 'ignore', timeout: EXIT_CLEANUP_TIMEOUT_MS });
            break;
          case 'link':
            execFileSync('ip', [...(item.ns ? ['-n', item.ns] : []), 'link', 'del', item.name], {
              stdio: 'ignore',
              timeout: EXIT_CLEANUP_TIMEOUT_MS,
            });
            break;
          case 'path':
            rmSync(item.path, { recursive: true, force: true });
            break;
          case 'fn':
            void item.fn();
            break;
        }
      } catch {
        /* best effort at exit */
      }
    }
    liveRegistries.delete(this);
  }
}

/** PIDs of processes inside namespace `ns` (synchronous; empty on error). */
function nsPidsSync(ns: string): number[] {
  try {
    const out = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: EXIT_CLEANUP_TIMEOUT_MS });
    return out.split(/\s+/).filter(Boolean).map(Number).filter((n) => n > 0);
  } catch {
    return [];
  }
}

/** Removes one registered item. */
async function cleanItem(item: CleanupItem): Promise<void> {
  switch (item.kind) {
    case 'process':
      if (item.child) await killChild(item.child);
      else await killPid(item.pid);
      return;
    case 'netns':
      await deleteNetns(item.ns);
      return;
    case 'link':
      await deleteLink(item.name, item.ns);
      return;
    case 'path':
      rmSync(item.path, { recursive: true, force: true });
      return;
    case 'fn':
      await item.fn();
      return;
  }
}

/** Registry used when a helper is called without an explicit Cleanup (cleaned at process exit). */
export const defaultCleanup = new Cleanup();

/** Returns a new Cleanup registry; call `await registry.run()` in afterAll. */
export function withCleanup(): Cleanup {
  return new Cleanup();
}

/** Returns a unique interface name `prefix` + pid + counter (base 36), at most 15 characters. */
export function uniqueIfname(prefix: string): string {
  const name = `${prefix}${process.pid.toString(36)}${nextId().toString(36)}`;
  if (name.length > IFNAME_MAX_CHARS || !/^[A-Za-z0-9_-]+$/.test(name)) {
    throw new Error(`interface name ${name} invalid or longer than ${IFNAME_MAX_CHARS} chars; use a shorter prefix`);
  }
  return name;
}

/** Creates a network namespace named `prefix-<pid>-<n>` with loopback up and returns its name. */
export async function createNetns(prefix: string, cleanup: Cleanup = defaultCleanup): Promise<string> {
  await ensureNetTools();
  const ns = `${prefix}-${process.pid}-${nextId()}`;
  await run(['ip', 'netns', 'add', ns]);
  cleanup.netns(ns);
  await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

/** Deletes a namespace, first killing (by PID) any processes still running inside it; missing is fine. */
export async function deleteNetns(ns: string): Promise<void> {
  const pids = await run(['ip', 'netns', 'pids', ns], { check: false });
  if (pids.code !== 0) return; // namespace already gone
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) await killPid(pid);
  const r = await run(['ip', 'netns', 'del', ns], { check: false });
  if (r.code !== 0 && !/No such file|not found/i.test(r.stderr)) {
    throw new Error(`ip netns del ${ns} failed: ${r.stderr.trim()}`);
  }
}

/** Deletes an interface (in namespace `ns`, null = root); a missing interface or namespace is fine. */
export async function deleteLink(name: string, ns: string | null = null): Promise<void> {
  const r = await run(['ip', ...(ns ? ['-n', ns] : []), 'link', 'del', name], { check: false });
  if (r.code !== 0 && !/Cannot find device|does not exist|No such|Invalid netns/i.test(r.stderr)) {
    throw new Error(`ip link del ${name} failed: ${r.stderr.trim()}`);
  }
}

/** Creates a persistent tap `name` in the root namespace (link up) for a switch or plug to open by name. */
export async function createTap(
  name: string,
  opts: { mtu?: number; cleanup?: Cleanup } = {},
): Promise<string> {
  await ensureNetTools();
  await run(['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap']);
  (opts.cleanup ?? defaultCleanup).link(name, null);
  if (opts.mtu !== undefined) await run(['ip', 'link', 'set', name, 'mtu', String(opts.mtu)]);
  await run(['ip', 'link', 'set', name, 'up']);
  return name;
}

/** Returns true once some process has the root-namespace tap `name` open (carrier on). */
export async function tapAttached(name: string, ns: string | null = null): Promise<boolean> {
  const r = await run(['ip', ...(ns ? ['-n', ns] : []), '-o', 'link', 'show', 'dev', name], { check: false });
  return r.code === 0 && !/NO-CARRIER/.test(r.stdout) && /[<,]UP[,>]/.test(r.stdout);
}

/** Moves interface `link` from the root namespace into `ns`, sets optional MTU, adds `addrCidr` and brings it up. */
export async function moveLinkToNetns(
  link: string,
  ns: string,
  addrCidr: string | null,
  opts: { mtu?: number; cleanup?: Cleanup } = {},
): Promise<void> {
  await run(['ip', 'link', 'set', link, 'netns', ns]);
  (opts.cleanup ?? defaultCleanup).link(link, ns);
  await configureLink(link, ns, addrCidr, opts.mtu);
}

/** Sets MTU/address on `link` inside `ns` and brings it up. */
async function configureLink(link: string, ns: string, addrCidr: string | null, mtu?: number): Promise<void> {
  if (mtu !== undefined) await run(['ip', '-n', ns, 'link', 'set', link, 'mtu', String(mtu)]);
  if (addrCidr !== null) await run(['ip', '-n', ns, 'addr', 'add', addrCidr, 'dev', link]);
  await run(['ip', '-n', ns, 'link', 'set', link, 'up']);
}

/**
 * Creates a persistent tap `ifname` directly inside namespace `ns` with `addrCidr`; it can only be
 * opened by a process running in that namespace (start it with spawnInNetns).
 */
export async function createTapInNetns(
  ns: string,
  ifname: string,
  addrCidr: string | null,
  opts: { mtu?: number; cleanup?: Cleanup } = {},
): Promise<string> {
  await ensureNetTools();
  await run(['ip', '-n', ns, 'tuntap', 'add', 'dev', ifname, 'mode', 'tap']);
  (opts.cleanup ?? defaultCleanup).link(ifname, ns);
  await configureLink(ifname, ns, addrCidr, opts.mtu);
  return ifname;
}

/**
 * Starts argv inside namespace `ns` (null = root) and registers it for kill-by-PID cleanup. stdin is a
 * pipe by default and is kept open (VDE tools exit on stdin EOF); output is collected in `output()`.
 */
export function spawnInNetns(
  ns: string | null,
  argv: string[],
  opts: { cleanup?: Cleanup; stdin?: 'pipe' | 'ignore'; echo?: boolean } = {},
): { child: ChildProcess; output: () => string } {
  const full = ns === null ? argv : ['ip', 'netns', 'exec', ns, ...argv];
  const stdio: StdioOptions = [opts.stdin ?? 'pipe', 'pipe', 'pipe'];
  // `ip netns exec` execs the command in place (no fork), so child.pid is the command's PID.
  const child = spawn(full[0]!, full.slice(1), { stdio });
  (opts.cleanup ?? defaultCleanup).process(child);
  let out = '';
  const collect = (b: Buffer): void => {
    const s = b.toString();
    if (opts.echo) process.stderr.write(s);
    if (out.length < 1024 * 1024) out += s;
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  child.on('error', (e) => {
    out += `\n[spawn error: ${e.message}]\n`;
  });
  return { child, output: () => out };
}

/** Pings `addr` `count` times from namespace `ns` (null = root) and returns parsed loss and RTT. */
export async function ping(
  ns: string | null,
  addr: string,
  count: number,
  opts: { intervalS?: number; deadlineS?: number; size?: number } = {},
): Promise<PingResult> {
  await ensureNetTools();
  const intervalS = opts.intervalS ?? 0.2;
  const deadlineS = opts.deadlineS ?? Math.ceil(count * intervalS + 5);
  const argv = ['ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1', '-w', String(deadlineS)];
  if (opts.size !== undefined) argv.push('-s', String(opts.size));
  argv.push(addr);
  const r = await netnsExec(ns, argv, { check: false, timeoutMs: (deadlineS + 10) * 1000 });
  const output = r.stdout + r.stderr;
  const stats = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  const rtt = /(?:rtt|round-trip) min\/avg\/max(?:\/mdev)? = ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(output);
  const transmitted = stats ? Number(stats[1]) : 0;
  const received = stats ? Number(stats[2]) : 0;
  return {
    transmitted,
    received,
    lossPercent: transmitted > 0 ? (100 * (transmitted - received)) / transmitted : 100,
    rttMinMs: rtt ? Number(rtt[1]) : null,
    rttAvgMs: rtt ? Number(rtt[2]) : null,
    rttMaxMs: rtt ? Number(rtt[3]) : null,
    output,
  };
}
