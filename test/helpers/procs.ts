/*
 * Processes of the interop tests: spawn a command with its output collected and registered for
 * kill-by-PID with its whole tree (dpipe, ssh and socat start children), find descendants and
 * command lines from /proc, and tell whether a TCP port is listening.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { killPid, type Cleanup } from './netns.js';

/** PIDs of every descendant of pid (from /proc/PID/stat parent links). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const [c, pp] of parent) {
      if (pp === p) {
        out.push(c);
        queue.push(c);
      }
    }
  }
  return out;
}

/** Command line of a process ('' if it is gone). */
export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** Stops a process and everything below it, each by its PID (the children are listed first). */
export async function killTree(pid: number | undefined): Promise<void> {
  if (!pid) return;
  const kids = descendants(pid);
  await killPid(pid);
  for (const k of kids) await killPid(k);
}

/** True when something listens on TCP port `port` (any address), or with proto 'udp' has a UDP socket bound to it, from /proc/net. */
export function listening(port: number, proto: 'tcp' | 'udp' = 'tcp'): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const f of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 3 && cols[1]!.endsWith(`:${hex}`) && (proto === 'udp' || cols[3] === '0A')) return true;
    }
  }
  return false;
}

/** A started process: the child, its output so far, its exit. */
export interface Proc {
  p: ChildProcess;
  out: () => string;
  exit: Promise<number | null>;
}

/** Spawns argv (no shell), collects its output and registers it for kill-by-PID (whole tree). */
export function start(cleanup: Cleanup, argv: string[], label: string): Proc {
  const p = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer): void => {
    if (out.length < 256 * 1024) out += d.toString();
  };
  p.stdout!.on('data', keep);
  p.stderr!.on('data', keep);
  p.stdin!.on('error', () => {});
  p.on('error', (e) => (out += `\n[spawn error: ${e.message}]`));
  const exit = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  cleanup.add(label, () => (p.exitCode === null && p.signalCode === null ? killTree(p.pid) : undefined));
  return { p, out: () => out, exit };
}
