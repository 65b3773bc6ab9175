/**
 * Starts vde-ts switches (bin/vde_switch) as real processes for integration tests, waits until
 * they serve, runs console commands over their management socket, and stops them by PID,
 * checking that nothing is left behind. Each switch gets its own temporary directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import { TIME_SCALE } from './timescale.js';
import { runCommand, type CmdResult } from '../../src/vdecmd/main.js';

export { TIME_SCALE };

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SWITCH_BIN = path.join(ROOT, 'bin', 'vde_switch');
/** How long a switch may take to create its control socket. */
export const START_TIMEOUT_MS = 10_000;

export interface RunningSwitch {
  dir: string;
  mgmt: string;
  proc: ChildProcess;
  output: () => string;
  cmd: (command: string) => Promise<CmdResult>;
  /** Data lines of a json/... command parsed as JSON. */
  json: <T = unknown>(command: string) => Promise<T>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

const createdDirs: string[] = [];
const startedSwitches: ChildProcess[] = [];
// whatever a test file started or made goes when the file is done, even after a failure
afterAll(() => {
  for (const p of startedSwitches.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of createdDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Makes a fresh temporary directory for a test (removed after the test file). */
export function tmpdir(prefix = 'vdets-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  createdDirs.push(d);
  return d;
}


/** Waits until fn() is true (polling), throwing after timeoutMs (stretched by TIME_SCALE) with the given message. */
export async function waitFor(fn: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  timeoutMs *= TIME_SCALE;
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Starts our switch with the given extra arguments in a fresh directory. */
export async function startSwitch(args: string[] = [], opts: { dir?: string; stdin?: boolean } = {}): Promise<RunningSwitch> {
  const base = tmpdir();
  const dir = opts.dir ?? path.join(base, 'sw');
  const mgmt = path.join(base, 'mgmt');
  const proc = spawn(process.execPath, [SWITCH_BIN, '-s', dir, '-M', mgmt, ...(opts.stdin ? [] : ['--nostdin']), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  startedSwitches.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  let exited = false;
  proc.on('exit', () => (exited = true));
  await waitFor(() => exited || (fs.existsSync(path.join(dir, 'ctl')) && fs.existsSync(mgmt)), START_TIMEOUT_MS, `switch in ${dir}`);
  if (exited) throw new Error(`switch exited at start: ${out}`);
  const sw: RunningSwitch = {
    dir: fs.realpathSync(dir),
    mgmt,
    proc,
    output: () => out,
    cmd: (c) => runCommand(mgmt, c),
    json: async (c) => {
      const r = await runCommand(mgmt, c);
      if (r.status !== 0) throw new Error(`${c}: ${r.statusText}`);
      return JSON.parse(r.data.join('\n'));
    },
    stop: async (signal = 'SIGTERM') => {
      if (exited) return proc.exitCode;
      const done = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000 * TIME_SCALE);
      const code = await done;
      clearTimeout(t);
      fs.rmSync(base, { recursive: true, force: true });
      return code;
    },
  };
  return sw;
}

/** Runs one of our commands (bin/NAME) to its end, killed after timeoutMs; stdin is /dev/null or the file given. */
export function runBin(
  name: string,
  args: string[],
  o: { cwd?: string; stdin?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; out: string }> {
  return new Promise((resolve) => {
    const stdin = o.stdin === undefined ? 'ignore' : fs.openSync(o.stdin, 'r');
    const p = spawn(process.execPath, [path.join(ROOT, 'bin', name), ...args], { cwd: o.cwd, stdio: [stdin, 'pipe', 'pipe'] });
    if (typeof stdin === 'number') fs.closeSync(stdin);
    let stdout = '';
    let stderr = '';
    let out = '';
    p.stdout!.on('data', (d) => {
      stdout += d;
      out += d;
    });
    p.stderr!.on('data', (d) => {
      stderr += d;
      out += d;
    });
    const t = setTimeout(() => p.kill('SIGKILL'), (o.timeoutMs ?? 8000) * TIME_SCALE);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr, out });
    });
  });
}

/** Lists the open file descriptors of a process. */
export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}
