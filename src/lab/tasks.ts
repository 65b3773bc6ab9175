/**
 * The task graph of `vde_lab run`: a task starts when every task in its `after:` list is done
 * (tasks after one that failed or was skipped are skipped), runs with a time limit, and is
 * checked against its expectation (exit status, output regexes, a number taken from the output
 * within bounds). Command tasks run in a host (`ip netns exec`) or on a VM's serial console (a
 * shell there is needed), once per member of a group; control tasks change the running lab
 * (link down/up, impairments, VM power, captures, wait). Each task's output goes to
 * RESULTS/tasks/NAME[.NODE].out; the caller writes the summary.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { LabConfig, TaskConf } from './config.js';
import { hostEnv, inHost, type LabRuntime } from './runtime.js';
import type { LabState } from './state.js';

/** What became of one task. */
export interface TaskResult {
  name: string;
  state: 'passed' | 'failed' | 'skipped';
  /** Per target (command tasks): node, exit status (null: killed at the time limit), why it failed. */
  runs: Array<{ node: string; status: number | null; timedOut: boolean; output: string; value?: number; problem?: string }>;
  problem?: string;
  startMs: number;
  durationMs: number;
}

/** Most output kept per task run for checks and the summary, bytes (the file has all of it). */
export const MAX_CHECKED_OUTPUT_BYTES = 1024 * 1024;

/** Runs a shell command in a host with a time limit; the whole process group is killed at the limit. */
function runInHost(rt: LabRuntime, host: string, command: string, timeoutSeconds: number, outFile: string): Promise<{ status: number | null; timedOut: boolean; output: string }> {
  return new Promise((resolve) => {
    const argv = inHost(rt.st, host, ['sh', '-c', command]);
    const fd = fs.openSync(outFile, 'w', 0o644);
    const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: hostEnv(rt.st, host) });
    let out = '';
    const take = (d: Buffer): void => {
      fs.writeSync(fd, d);
      if (out.length < MAX_CHECKED_OUTPUT_BYTES) out += d.toString('utf8');
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutSeconds * 1000);
    const killGroup = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    runningGroups.add(killGroup);
    child.on('error', (e) => take(Buffer.from(`${e.message}\n`)));
    child.on('close', (code) => {
      clearTimeout(t);
      runningGroups.delete(killGroup);
      // whatever the command left running in its group goes too
      killGroup();
      fs.closeSync(fd);
      resolve({ status: timedOut ? null : code, timedOut, output: out });
    });
  });
}

/** Kill functions of the command tasks that run now (Ctrl-C stops them). */
export const runningGroups = new Set<() => void>();

/** Runs a shell command on a VM's serial console (a shell must answer there); output to outFile when given. */
export function runOnVm(st: LabState, vm: string, command: string, timeoutSeconds: number, outFile: string | null): Promise<{ status: number | null; timedOut: boolean; output: string }> {
  return new Promise((resolve) => {
    const mark = `VDELAB${process.pid}${Date.now() % 1e6}`;
    const c = net.connect(st.vms[vm].serial);
    let buf = '';
    let done = false;
    const finish = (status: number | null, timedOut: boolean, output: string): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      c.destroy();
      if (outFile) fs.writeFileSync(outFile, output);
      resolve({ status, timedOut, output });
    };
    const t = setTimeout(() => finish(null, true, buf), timeoutSeconds * 1000);
    c.on('error', (e) => finish(null, false, `${vm}: serial console: ${e.message}\n`));
    c.on('connect', () => c.write(`\necho ${mark}B; ( ${command} ) 2>&1; echo ${mark}E$?\n`));
    c.on('data', (d) => {
      buf += d.toString('utf8').replace(/\r/g, '');
      const m = new RegExp(`\\n${mark}B\\n([\\s\\S]*?)${mark}E(\\d+)\\n`).exec(buf);
      if (m) finish(Number(m[2]), false, m[1]);
    });
  });
}

/** Checks one run's result against the task's expectation; returns the problem or null. */
export function checkExpect(t: TaskConf, r: { status: number | null; timedOut: boolean; output: string }): { problem: string | null; value?: number } {
  if (r.timedOut) return { problem: `timed out after ${t.timeoutSeconds} s` };
  if (r.status !== t.expect.status) return { problem: `exit status ${r.status}, expected ${t.expect.status}` };
  if (t.expect.output !== undefined && !new RegExp(t.expect.output, 'm').test(r.output)) return { problem: `output does not match /${t.expect.output}/` };
  if (t.expect.notOutput !== undefined && new RegExp(t.expect.notOutput, 'm').test(r.output)) return { problem: `output matches /${t.expect.notOutput}/` };
  if (t.expect.value) {
    const m = new RegExp(t.expect.value.regex, 'm').exec(r.output);
    const v = m ? Number(m[1] ?? m[0]) : NaN;
    if (!Number.isFinite(v)) return { problem: `no number matching /${t.expect.value.regex}/ in the output` };
    if (t.expect.value.min !== undefined && v < t.expect.value.min) return { problem: `value ${v} is below ${t.expect.value.min}`, value: v };
    if (t.expect.value.max !== undefined && v > t.expect.value.max) return { problem: `value ${v} is above ${t.expect.value.max}`, value: v };
    return { problem: null, value: v };
  }
  return { problem: null };
}

/** Runs the task graph of cfg on the running lab; progress goes to say(). */
export async function runTasks(cfg: LabConfig, rt: LabRuntime, resultsDir: string, say: (line: string) => void, aborted: () => boolean): Promise<TaskResult[]> {
  const taskDir = path.join(resultsDir, 'tasks');
  fs.mkdirSync(taskDir, { recursive: true });
  const t0 = Date.now();
  const results = new Map<string, TaskResult>();
  const running = new Map<string, Promise<void>>();
  const names = Object.keys(cfg.tasks);
  const stamp = (): string => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`;
  const runOne = async (name: string): Promise<void> => {
    const t = cfg.tasks[name];
    const res: TaskResult = { name, state: 'passed', runs: [], startMs: Date.now() - t0, durationMs: 0 };
    const blocker = t.after.find((d) => results.get(d)?.state !== 'passed');
    if (blocker || aborted()) {
      res.state = 'skipped';
      res.problem = aborted() ? 'the run was interrupted' : `task "${blocker}" did not pass`;
      results.set(name, res);
      say(`${stamp()} - ${name}: skipped (${res.problem})`);
      return;
    }
    say(`${stamp()} > ${name}${t.run !== undefined ? ` on ${t.on}: ${t.run}` : `: ${t.action}${t.link ? ` ${t.link}` : ''}${t.vm ? ` ${t.vm}` : ''}`}`);
    const started = Date.now();
    try {
      if (t.run !== undefined) {
        await Promise.all(t.targets.map(async (node) => {
          const file = path.join(taskDir, t.targets.length > 1 || t.on !== node ? `${name}.${node}.out` : `${name}.out`);
          const r = cfg.vms[node] ? await runOnVm(rt.st, node, t.run!, t.timeoutSeconds, file) : await runInHost(rt, node, t.run!, t.timeoutSeconds, file);
          const chk = checkExpect(t, r);
          res.runs.push({ node, status: r.status, timedOut: r.timedOut, output: r.output.slice(-4096), ...(chk.value !== undefined ? { value: chk.value } : {}), ...(chk.problem ? { problem: chk.problem } : {}) });
        }));
        const bad = res.runs.filter((r) => r.problem);
        if (bad.length) {
          res.state = 'failed';
          res.problem = bad.map((r) => `${r.node}: ${r.problem}`).join('; ');
        }
      } else {
        await withTimeout(control(t, rt), t.action === 'wait' ? t.seconds + t.timeoutSeconds : t.timeoutSeconds, name);
      }
    } catch (e) {
      res.state = 'failed';
      res.problem = (e as Error).message;
    }
    res.durationMs = Date.now() - started;
    results.set(name, res);
    const value = res.runs.find((r) => r.value !== undefined)?.value;
    say(`${stamp()} ${res.state === 'passed' ? 'ok' : 'FAIL'} ${name} (${(res.durationMs / 1000).toFixed(2)} s)${value !== undefined ? ` value=${value}` : ''}${res.problem ? `: ${res.problem}` : ''}`);
  };
  // start every task whose parents are all done; repeat until all are done
  while (results.size < names.length) {
    for (const n of names) {
      if (results.has(n) || running.has(n)) continue;
      if (cfg.tasks[n].after.every((d) => results.has(d))) {
        const p = runOne(n).finally(() => running.delete(n));
        running.set(n, p);
      }
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  return names.map((n) => results.get(n)!);
}

function withTimeout<T>(p: Promise<T>, seconds: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: timed out after ${seconds} s`)), seconds * 1000);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e instanceof Error ? e : new Error(String(e))); });
  });
}

/** Carries out a control task. */
async function control(t: TaskConf, rt: LabRuntime): Promise<void> {
  switch (t.action) {
    case 'link-down': return rt.setLinkState(t.link!, false);
    case 'link-up': return rt.setLinkState(t.link!, true);
    case 'impair': return rt.setImpair(t.link!, t.ab ?? '', t.ba ?? '');
    case 'capture-start': return rt.startCapture(t.link!);
    case 'capture-stop': return rt.stopCapture(t.link!);
    case 'vm-off': return rt.vmPowerOff(t.vm!);
    case 'vm-on': return rt.vmPowerOn(t.vm!);
    case 'vm-reset': return rt.vmReset(t.vm!);
    case 'wait': return new Promise((r) => setTimeout(r, t.seconds * 1000));
    default: throw new Error(`unknown action ${String(t.action)}`);
  }
}
