/**
 * `vde_lab`: declarative network experiments. A YAML lab file (schema.ts, config.ts) describes
 * switches, namespace hosts, QEMU VMs, links with impairments and captures, NATs and a task
 * graph; `up` makes it real (or changes a running lab by the difference, plan.ts), `down`
 * removes everything, `status` reads it, `exec` runs a command in a node, `run` does up, the
 * tasks and down and writes a results directory, `graph` draws it and `web` shows it live.
 * The lab's state lives in its run directory (state.ts), so every command works from any shell.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, helpText, toolParser, type Example } from '../core/cli.js';
import { errorText, installCrashGuard } from '../core/errors.js';
import { versionLine } from '../core/version.js';
import { LabFileError, loadLabFile, type LabConfig } from './config.js';
import { plan, type Action } from './plan.js';
import { cmd } from './proc.js';
import { hostEnv, inHost, LabRuntime } from './runtime.js';
import { LAB_SCHEMA } from './schema.js';
import { isPrivileged, newState, readState, runDir, listLabs, writeState, type LabState } from './state.js';
import { labDot, labStatus, statusText } from './status.js';
import { runningGroups, runOnVm, runTasks, type TaskResult } from './tasks.js';
import { serveWeb } from './web.js';

const OPTIONS = {
  json: { type: 'boolean', describe: 'status: print JSON' },
  results: { alias: 'o', type: 'string', describe: 'run: the results directory (default ./results/NAME-TIME)' },
  svg: { type: 'boolean', describe: 'graph: SVG through Graphviz dot instead of DOT' },
  listen: { type: 'string', describe: 'web: HOST:PORT to serve on (default 127.0.0.1:8088; port 0 picks one)' },
  web: { type: 'string', describe: 'up/run: also serve the live web view on HOST:PORT' },
  quiet: { alias: 'q', type: 'boolean', describe: 'no progress lines' },
} as const;

/** The --help examples (each one line, ready to paste). */
export const EXAMPLES: Example[] = [
  { command: 'vde_lab validate examples/labs/two-switches.yaml', what: 'check a lab file (errors name the line and the field)' },
  { command: 'vde_lab up examples/labs/two-switches.yaml', what: 'bring the lab up; run it again after editing the file to apply only the difference' },
  { command: 'vde_lab status two-switches', what: 'nodes, links, counters and impairments (--json for JSON)' },
  { command: 'vde_lab exec two-switches h1 -- ping -c 3 10.0.0.2', what: 'run a command in host h1 (a shell when no command is given)' },
  { command: 'vde_lab graph two-switches --svg > lab.svg', what: 'draw the topology (DOT without --svg)' },
  { command: 'vde_lab web two-switches --listen 127.0.0.1:8088', what: 'a live web view: per-link rates and drops, captures as pcapng' },
  { command: 'vde_lab down two-switches', what: 'remove every process, namespace, tap and socket of the lab' },
  { command: 'vde_lab run examples/labs/two-switches.yaml -o /tmp/results', what: 'up, the task graph, down; exit status 0 when every task met its expectation' },
];

const USAGE = `Usage: vde_lab COMMAND ...

Commands:
  validate FILE             check a lab file
  up FILE                   bring a lab up, or apply the changes of FILE to the running lab
  down NAME                 take lab NAME down
  status [NAME] [--json]    nodes, links, counters, impairments (no NAME: list the labs)
  exec NAME NODE [-- CMD...]  run CMD (default: a shell) in host NODE (or on VM NODE's console)
  run FILE [-o DIR]         up, the tasks, down; results in DIR
  graph NAME|FILE [--svg]   the topology as DOT or SVG
  web NAME [--listen H:P]   a live web view of the lab
  schema                    print the JSON Schema of lab files`;

function parser(argv: string[]) {
  return toolParser(argv, 'vde_lab', USAGE, OPTIONS).parserConfiguration({ 'halt-at-non-option': false, 'populate--': true });
}

type Args = { json?: boolean; results?: string; svg?: boolean; listen?: string; web?: string; quiet?: boolean; version?: boolean; help?: boolean; _: (string | number)[]; '--'?: (string | number)[] };

/** Entry point of bin/vde_lab; returns the exit status (-1: keep running, e.g. the web view). */
export async function main(argv: string[]): Promise<number> {
  installCrashGuard('vde_lab');
  process.stdout.on('error', () => {});
  let a: Args;
  try {
    a = (await parser(argv).parseAsync()) as Args;
  } catch (e) {
    process.stderr.write(`vde_lab: ${errorText(e)}\n`);
    return 1;
  }
  if (a.help) {
    process.stdout.write(await helpText(parser([]), EXAMPLES));
    return 0;
  }
  if (a.version) {
    process.stdout.write(`${versionLine('vde_lab')}\n`);
    return 0;
  }
  const [command, ...rest] = a._.map(String);
  const say = a.quiet ? () => {} : (l: string) => process.stderr.write(`${l}\n`);
  try {
    switch (command) {
      case 'validate': return validate(one(rest, 'FILE'));
      case 'up': return await up(one(rest, 'FILE'), say, a.web);
      case 'down': return await down(one(rest, 'NAME'), say);
      case 'status': return await status(rest[0], a.json === true);
      case 'exec': return await exec(rest, (a['--'] ?? []).map(String));
      case 'run': return await runLab(one(rest, 'FILE'), a.results, say, a.web);
      case 'graph': return await graph(one(rest, 'NAME or FILE'), a.svg === true);
      case 'web': return await web(one(rest, 'NAME'), a.listen ?? '127.0.0.1:8088', say);
      case 'schema': process.stdout.write(`${JSON.stringify(LAB_SCHEMA, null, 2)}\n`); return 0;
      case undefined: throw new CliError('no command given (try: vde_lab --help)');
      default: throw new CliError(`unknown command "${command}" (validate, up, down, status, exec, run, graph, web, schema)`);
    }
  } catch (e) {
    if (e instanceof LabFileError) process.stderr.write(e.problems.map((p) => `vde_lab: ${p}\n`).join(''));
    else process.stderr.write(`vde_lab: ${errorText(e)}\n`);
    return 1;
  }
}

function one(rest: string[], what: string): string {
  if (rest.length !== 1) throw new CliError(rest.length ? `one ${what} expected, got ${rest.length} arguments` : `${what} missing`);
  return rest[0];
}

function validate(file: string): number {
  const cfg = loadLabFile(file);
  process.stdout.write(`${file}: lab ${cfg.name}: ${Object.keys(cfg.switches).length} switches, ${Object.keys(cfg.hosts).length} hosts, ${Object.keys(cfg.vms).length} VMs, ${Object.keys(cfg.links).length} links, ${Object.keys(cfg.nat).length} NATs, ${Object.keys(cfg.tasks).length} tasks: valid\n`);
  return 0;
}

/** Unprivileged: refuses a lab when the kernel allows no user namespaces, with the reason. */
async function checkPrivilege(cfg: LabConfig): Promise<void> {
  if (isPrivileged()) return;
  const needs = Object.keys(cfg.hosts).length || Object.values(cfg.links).some((l) => l.type === 'host-host');
  if (!needs) return;
  const r = await cmd(['unshare', '--user', '--map-root-user', '--net', 'true'], { check: false });
  if (r.code !== 0) {
    throw new Error(`lab ${cfg.name}: hosts (network namespaces with taps) need root, or unprivileged user namespaces, which this kernel refuses (${r.stderr.trim().split('\n').pop() || `unshare exit status ${r.code}`}; see sysctl kernel.unprivileged_userns_clone and user.max_user_namespaces)`);
  }
}

/** Lock of a lab's run directory while a command changes it. */
function lock(dir: string): () => void {
  const f = path.join(dir, 'lock');
  for (let i = 0; i < 2; i++) {
    try {
      fs.writeFileSync(f, String(process.pid), { flag: 'wx', mode: 0o600 });
      return () => fs.rmSync(f, { force: true });
    } catch {
      const pid = Number(fs.readFileSync(f, 'utf8'));
      let live = false;
      try {
        process.kill(pid, 0);
        live = true;
      } catch {
        live = false;
      }
      if (live && pid !== process.pid) throw new Error(`${dir} is being changed by process ${pid}`);
      fs.rmSync(f, { force: true });
    }
  }
  throw new Error(`${dir}: cannot lock`);
}

/** Ctrl-C / SIGTERM while a lab changes: remember it, stop running tasks; the caller cleans up. */
function interruptible(): { aborted: () => boolean; done: () => void } {
  let hit = false;
  const on = (): void => {
    if (hit) return;
    hit = true;
    process.stderr.write('vde_lab: interrupted, taking the lab down\n');
    for (const k of runningGroups) k();
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  process.on('SIGHUP', on);
  return { aborted: () => hit, done: () => { process.off('SIGINT', on); process.off('SIGTERM', on); process.off('SIGHUP', on); } };
}

/** Brings the lab of FILE up (or changes it); on failure or interruption nothing is left. */
async function bringUp(cfg: LabConfig, file: string, say: (l: string) => void, aborted: () => boolean): Promise<{ st: LabState; rt: LabRuntime; actions: Action[] }> {
  await checkPrivilege(cfg);
  let st = readState(cfg.name);
  if (!st) st = newState(cfg.name, path.resolve(file));
  const unlock = lock(st.dir);
  const rt = new LabRuntime(st, say);
  try {
    if (st.config === null && (Object.keys(st.switches).length || Object.keys(st.hosts).length)) {
      say(`lab ${cfg.name}: a previous up did not finish; starting over`);
      await rt.destroyAll();
    }
    const actions = plan(st.config, cfg);
    st.file = path.resolve(file);
    writeState(st);
    const t0 = Date.now();
    const guard = setInterval(() => {
      if (aborted()) rt.abort();
    }, 50);
    try {
      await rt.apply(cfg, actions);
    } finally {
      clearInterval(guard);
    }
    if (aborted()) throw new Error('interrupted');
    say(`lab ${cfg.name} up in ${((Date.now() - t0) / 1000).toFixed(2)} s (${actions.length ? Array.from(actions.map((x) => x.op).reduce((m, o) => m.set(o, (m.get(o) ?? 0) + 1), new Map<string, number>()).entries()).map(([o, n]) => `${o} ${n}`).join(', ') : 'nothing to change'})`);
    return { st, rt, actions };
  } catch (e) {
    say(`lab ${cfg.name}: ${errorText(e)}; taking it down`);
    const errors = await rt.destroyAll();
    // a failure keeps its logs for a look; Ctrl-C leaves nothing
    if (!aborted()) keepLogs(st, say);
    removeRunDir(st);
    for (const x of errors) say(`  cleanup: ${x}`);
    throw e;
  } finally {
    unlock();
  }
}

/** Keeps the logs of a lab that failed to come up (in the system's temporary directory). */
function keepLogs(st: LabState, say: (l: string) => void): void {
  const logs = path.join(st.dir, 'log');
  if (!fs.existsSync(logs)) return;
  const to = fs.mkdtempSync(path.join(os.tmpdir(), `vde_lab-${st.name}-logs-`));
  fs.cpSync(logs, to, { recursive: true });
  say(`lab ${st.name}: its logs are in ${to}`);
}

function removeRunDir(st: LabState): void {
  fs.rmSync(st.dir, { recursive: true, force: true });
}

async function up(file: string, say: (l: string) => void, webAt: string | undefined): Promise<number> {
  const cfg = loadLabFile(file);
  const intr = interruptible();
  try {
    await bringUp(cfg, file, say, intr.aborted);
  } finally {
    intr.done();
  }
  if (webAt) {
    await web(cfg.name, webAt, say);
    return -1;
  }
  return 0;
}

async function down(name: string, say: (l: string) => void): Promise<number> {
  const st = readState(name);
  if (!st) throw new Error(`no lab "${name}" is up (run directory ${runDir(name)} has no state)${listLabs().length ? `; running: ${listLabs().join(', ')}` : ''}`);
  const t0 = Date.now();
  const unlock = lock(st.dir);
  let errors: string[];
  try {
    errors = await new LabRuntime(st, say).destroyAll();
  } finally {
    unlock();
  }
  if (errors.length) {
    for (const x of errors) say(`vde_lab: ${x}`);
    return 1;
  }
  removeRunDir(st);
  say(`lab ${name} down in ${((Date.now() - t0) / 1000).toFixed(2)} s`);
  return 0;
}

async function status(name: string | undefined, asJson: boolean): Promise<number> {
  if (!name) {
    const labs = listLabs();
    process.stdout.write(asJson ? `${JSON.stringify(labs)}\n` : labs.map((l) => `${l}\n`).join(''));
    return 0;
  }
  const st = readState(name);
  if (!st) throw new Error(`no lab "${name}" is up`);
  const s = await labStatus(st);
  process.stdout.write(asJson ? `${JSON.stringify(s, null, 1)}\n` : statusText(s));
  return 0;
}

async function exec(rest: string[], command: string[]): Promise<number> {
  if (rest.length !== 2) throw new CliError('exec needs NAME NODE, then -- and the command (vde_lab exec NAME NODE -- CMD...)');
  const [name, node] = rest;
  const st = readState(name);
  if (!st) throw new Error(`no lab "${name}" is up`);
  if (st.vms[node]) {
    if (!command.length) {
      // interactive: the VM's serial console
      const r = spawnSync('socat', ['-,raw,echo=0', `UNIX-CONNECT:${st.vms[node].serial}`], { stdio: 'inherit' });
      return r.status ?? 1;
    }
    const r = await runOnVm(st, node, command.join(' '), 3600, null);
    process.stdout.write(r.output);
    return r.status ?? 124;
  }
  if (!st.hosts[node]) throw new Error(`lab ${name} has no host or VM "${node}" (hosts: ${Object.keys(st.hosts).join(', ') || 'none'})`);
  const argv = inHost(st, node, command.length ? command : [process.env.SHELL || '/bin/sh']);
  // interactive when stdin is a terminal: the command inherits it; exit status passes through
  const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit', env: hostEnv(st, node) });
  const forward = (s: NodeJS.Signals) => () => child.kill(s);
  const ignoreInt = forward('SIGINT');
  const term = forward('SIGTERM');
  process.on('SIGINT', ignoreInt);
  process.on('SIGTERM', term);
  return new Promise((resolve) => child.on('close', (code, sig) => {
    process.off('SIGINT', ignoreInt);
    process.off('SIGTERM', term);
    resolve(code ?? (sig ? 128 + 15 : 1));
  }));
}

async function graph(what: string, svg: boolean): Promise<number> {
  let cfg: LabConfig | null;
  if (fs.existsSync(what) && fs.statSync(what).isFile()) cfg = loadLabFile(what);
  else {
    const st = readState(what);
    if (!st) throw new Error(`"${what}" is neither a lab file nor a running lab`);
    cfg = st.config;
    if (!cfg) throw new Error(`lab ${what} is still coming up`);
  }
  const dot = labDot(cfg);
  if (!svg) {
    process.stdout.write(dot);
    return 0;
  }
  const r = await cmd(['dot', '-Tsvg'], { input: dot }).catch((e: Error) => {
    throw new Error(/command not found/.test(e.message) ? '--svg needs Graphviz\'s dot (Debian package graphviz)' : e.message);
  });
  process.stdout.write(r.stdout);
  return 0;
}

async function web(name: string, listen: string, say: (l: string) => void): Promise<number> {
  const st = readState(name);
  if (!st) throw new Error(`no lab "${name}" is up`);
  const srv = await serveWeb(name, listen);
  say(`web view of lab ${name} on http://${srv.address}/`);
  process.stdout.write(`http://${srv.address}/\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      srv.close();
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

/** Time stamp for a results directory name. */
function stampNow(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

async function runLab(file: string, results: string | undefined, say: (l: string) => void, webAt: string | undefined): Promise<number> {
  const cfg = loadLabFile(file);
  if (readState(cfg.name)) throw new Error(`lab ${cfg.name} is already up: take it down first (vde_lab down ${cfg.name}), a run starts from nothing`);
  const dir = path.resolve(results ?? path.join('results', `${cfg.name}-${stampNow()}`));
  fs.mkdirSync(dir, { recursive: true });
  const intr = interruptible();
  const t0 = Date.now();
  let tasks: TaskResult[] = [];
  let rt: LabRuntime | null = null;
  let failure: string | null = null;
  let srv: { close(): void } | null = null;
  try {
    rt = (await bringUp(cfg, file, say, intr.aborted)).rt;
    if (webAt) {
      const w = await serveWeb(cfg.name, webAt);
      srv = w;
      say(`web view on http://${w.address}/`);
    }
    tasks = await runTasks(cfg, rt, dir, say, intr.aborted);
    const st = rt.st;
    fs.writeFileSync(path.join(dir, 'metrics.json'), `${JSON.stringify(await labStatus(st), null, 1)}\n`);
  } catch (e) {
    failure = errorText(e);
  } finally {
    srv?.close();
    if (rt && readState(cfg.name)) {
      const st = rt.st;
      for (const l of Object.keys(st.links)) await rt.stopCapture(l).catch(() => {});
      const caps = path.join(st.dir, 'captures');
      if (fs.existsSync(caps)) fs.cpSync(caps, path.join(dir, 'captures'), { recursive: true });
      if (fs.existsSync(path.join(st.dir, 'log'))) fs.cpSync(path.join(st.dir, 'log'), path.join(dir, 'log'), { recursive: true });
      const errors = await rt.destroyAll();
      removeRunDir(st);
      for (const x of errors) say(`vde_lab: cleanup: ${x}`);
    }
    intr.done();
  }
  const passed = tasks.filter((t) => t.state === 'passed').length;
  const ok = failure === null && !intr.aborted() && passed === Object.keys(cfg.tasks).length;
  const summary = { lab: cfg.name, file: path.resolve(file), ok, error: failure, interrupted: intr.aborted(), durationMs: Date.now() - t0, passed, failed: tasks.filter((t) => t.state === 'failed').length, skipped: tasks.filter((t) => t.state === 'skipped').length, tasks };
  fs.writeFileSync(path.join(dir, 'summary.json'), `${JSON.stringify(summary, null, 1)}\n`);
  const lines = [`lab ${cfg.name}: ${ok ? 'every task met its expectation' : failure ? `failed: ${failure}` : 'some tasks did not meet their expectation'}`, `${passed} passed, ${summary.failed} failed, ${summary.skipped} skipped in ${(summary.durationMs / 1000).toFixed(1)} s`, ''];
  for (const t of tasks) lines.push(`${t.state.padEnd(8)} ${t.name}${t.problem ? `: ${t.problem}` : ''}`);
  fs.writeFileSync(path.join(dir, 'summary.txt'), `${lines.join('\n')}\n`);
  say(`${lines[0]}; ${lines[1]}; results in ${dir}`);
  if (failure) process.stderr.write(`vde_lab: ${failure}\n`);
  return intr.aborted() ? 130 : ok ? 0 : 1;
}
