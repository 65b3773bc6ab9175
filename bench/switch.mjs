#!/usr/bin/env node
/*
 * bench/switch.mjs - `npm run bench`: side-by-side benchmark of our vde_switch
 * and Debian's vde_switch (2.3.2) in the same run with the same load generator.
 *
 * It compiles bench/vdeload.c (a libvdeplug client) into bench/.build/, starts
 * both switches in private temp directories, runs every scenario against both
 * (repetitions interleaved ref/ours so slow drift of the machine hits both),
 * and prints a table with ours/ref ratios and PASS/FAIL against the targets;
 * the same table plus a machine description goes to bench/results/latest.md.
 * Every process it starts is killed by PID, namespaces/links it creates are
 * deleted and temp directories removed, also on Ctrl-C. See bench/README.md.
 *
 * The cable group (`--only=cable`, bench/cable.mjs) compares Debian's cables with ours
 * between two of our switches and gets its own table.
 *
 * The reference is always Debian's /usr/bin/vde_switch (and /usr/bin/vde_plug for the taps),
 * checked at start to be Debian's ELF binary (bench/reference.mjs), and ours is always this
 * checkout's bin/vde_switch: a vde-ts installed on PATH can never stand in for either.
 *
 * Plain JavaScript on purpose: no compile step is needed to run the bench.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cableTable, scenarioCable } from './cable.mjs';
import { chainTable, scenarioChain } from './chain.mjs';
import { debianTool, oursArgv } from './reference.mjs';

// ---------------------------------------------------------------------------
// constants (unit in the name)

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_DIR = path.resolve(BENCH_DIR, '..');
const BUILD_DIR = path.join(BENCH_DIR, '.build');
const RESULTS_FILE = path.join(BENCH_DIR, 'results', 'latest.md');
const VDELOAD_SRC = path.join(BENCH_DIR, 'vdeload.c');
const VDELOAD_BIN = path.join(BUILD_DIR, 'vdeload');

const OURS_LABEL = 'node bin/vde_switch';   // how reports name our side (oursArgv('vde_switch'))
const OURS_EXTRA_ARGS = ['--nostdin'];

const SWITCH_NUMPORTS = 1100;          // 1000 idle clients + load; 2.3.2 gives N-1 ports
const SWITCH_HASHSIZE_BUCKETS = 131072; // power of two >= 100 000 MACs
const SWITCH_START_TIMEOUT_MS = 15000;
const SWITCH_STOP_GRACE_MS = 2000;
const POLL_INTERVAL_MS = 50;

const THRU_DURATION_MS = 1000;         // one repetition of a throughput run
const DEFAULT_REPS = 3;                // repetitions per switch, median reported
const FRAME_SMALL_BYTES = 64;
const FRAME_LARGE_BYTES = 1500;
const PAIRS_MANY = 4;
const BCAST_RECEIVERS = 3;
const PING_ROUNDS = 10000;             // per repetition
const PING_DURATION_MS = 2000;         // bound of one repetition
const CPU_RATE_FPS = 50000;
const CPU_DURATION_MS = 3000;
const IDLE_CLIENTS = 1000;
const IDLE_READY_TIMEOUT_MS = 60000;
const MANY_MACS = 100000;
// scenario 6b: one client floods source MACs while a paced pair talks (bench twin of test/alone/macflood.test.ts)
const FLOOD_MACS = 2_000_000;
const FLOOD_DURATION_MS = 20_000;
const FLOOD_RATE_FPS = FLOOD_MACS / (FLOOD_DURATION_MS / 1000);
const FLOOD_PAIR_RATE_FPS = 5000;
const FLOOD_PAIR_DELAY_MS = 2000;      // the pair starts once the table is full
const FLOOD_RSS_SAMPLE_MS = 200;
const VDELOAD_TIMEOUT_MARGIN_MS = 20000;
const FOREIGN_LOAD_MAX_PCT = 15;       // other processes' CPU during a run (% of one CPU) before it is retried
const DISTURBED_RETRIES = 2;           // extra tries of a disturbed repetition

const NET_NS_A = 'vdebench-a';
const NET_NS_B = 'vdebench-b';
const NET_TAP_A = 'vdbtapa';
const NET_TAP_B = 'vdbtapb';
const NET_NS_BRIDGE = 'vdebench-br';   // the reference bridge lives in its own netns so
const NET_BRIDGE = 'vdbbr0';           // the root ns (which may own 192.0.2.x) stays out of it
const NET_VETH_A = 'vdbva0';           // bridge side; peer vdbva1 lives in NS A
const NET_VETH_B = 'vdbvb0';
const NET_ADDR_A = '192.0.2.1';        // RFC 5737 documentation range only
const NET_ADDR_B = '192.0.2.2';
const NET_PREFIX_BITS = 24;
const IPERF_DURATION_S = 5;
const IPERF_PORT = 5201;
const IPERF_START_DELAY_MS = 400;
const PING_COUNT = 50;
const PING_INTERVAL_S = 0.02;
const PLUG_SETTLE_MS = 400;
const CMD_TIMEOUT_MS = 30000;
const LOAD_SAMPLE_MS = 1000;           // background CPU load sample before the bench
const LOAD_WARN_FRACTION = 0.1;

const TARGET_THRU_RATIO = 1.5;         // ours/ref frames/s, 64 B, one pair
const TARGET_CPU_RATIO = 0.5;          // ours/ref switch CPU per frame
const TARGET_SCALE_FRACTION = 0.9;     // ours with load vs ours baseline
const TARGET_LATENCY_RATIO = 1.0;      // ours/ref p50
const TARGET_PLUG_TCP_RATIO = 8.0;     // ours (switch + vde_plug tap://) / Debian's, TCP Gbit/s
const TARGET_TAPS_VS_BRIDGE_RATIO = 1.0; // taps in our switch, offloads on / kernel bridge, offloads on
const PLUG_OFFLOAD_TIMEOUT_MS = 15000; // our tap plug must have switched the tap's offloads on

const SCENARIOS = ['thru', 'bcast', 'latency', 'cpu', 'ports', 'macs', 'rss', 'flood', 'net', 'cable', 'chain'];

// ---------------------------------------------------------------------------
// command line

function usage() {
  return `usage: node bench/switch.mjs [options]
  --only=NAME[,NAME]  run only these scenarios: ${SCENARIOS.join(', ')}
                      (rss implies macs; cable = Debian's cables vs ours between
                      two of our switches, bench/cable.mjs; chain = a whole tap-to-tap
                      chain across a cable, Debian's tools vs ours, bench/chain.mjs)
  --reps=N            repetitions per throughput measurement (default ${DEFAULT_REPS}; median)
  --no-pin            do not pin the switch and vdeload to separate CPUs
  --no-write          do not write bench/results/latest.md
  --help              this text
The reference is Debian's /usr/bin/vde_switch (checked to be Debian's ELF binary; stdin = a
pipe), ours is this checkout's bin/vde_switch ("${OURS_EXTRA_ARGS.join(' ')}" appended).
Both switches get: -s DIR -n ${SWITCH_NUMPORTS} --hashsize ${SWITCH_HASHSIZE_BUCKETS}`;
}

function parseArgs(argv) {
  const o = { only: null, reps: DEFAULT_REPS, pin: true, write: true };
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}\n${usage()}`);
    const [, k, v] = m;
    if (k === 'help') { console.log(usage()); process.exit(0); }
    else if (k === 'only') {
      o.only = new Set(String(v ?? '').split(',').filter(Boolean));
      for (const s of o.only) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; known: ${SCENARIOS.join(', ')}`);
      if (o.only.has('rss')) o.only.add('macs');
    } else if (k === 'ours' || k === 'ref') {
      throw new Error(`--${k} is gone: the reference is always Debian's /usr/bin/vde_switch and ours this checkout's bin/vde_switch`);
    } else if (k === 'reps') o.reps = Math.max(1, parseInt(v, 10) || DEFAULT_REPS);
    else if (k === 'no-pin') o.pin = false;
    else if (k === 'no-write') o.write = false;
    else throw new Error(`unknown option --${k}\n${usage()}`);
  }
  return o;
}

// ---------------------------------------------------------------------------
// small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const log = (...a) => console.error('[bench]', ...a);

function which(bin) {
  const r = spawnSync('sh', ['-c', `command -v "${bin}"`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Run a short command synchronously; returns {ok, out, err}. */
function run(cmd, args, { timeoutMs = CMD_TIMEOUT_MS, quiet = false } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  const ok = r.status === 0 && !r.error;
  if (!ok && !quiet) log(`command failed: ${cmd} ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
  return { ok, out: r.stdout || '', err: (r.stderr || r.error?.message || '').trim() };
}

/** The most telling line of a failed program's output. */
function reasonFrom(output, n = 160) {
  const lines = String(output || '').split('\n').map((l) => l.trim()).filter(Boolean);
  const hit = lines.find((l) => /error|cannot|can't|not found|no such|invalid|failed|usage|denied/i.test(l));
  return tail(hit || lines.slice(-2).join(' '), n);
}

function tail(s, n = 300) {
  s = String(s || '').trim().replace(/\s+/g, ' ');
  return s.length > n ? '…' + s.slice(-n) : s;
}

// ---------------------------------------------------------------------------
// process bookkeeping: everything we start is recorded and killed by PID

const children = new Map(); // pid -> {name, proc}
const cleanupTasks = [];     // functions run at exit (netns, links, temp dirs)

function track(proc, name) {
  if (proc.pid) {
    children.set(proc.pid, { name, proc });
    proc.on('exit', () => children.delete(proc.pid));
    // started while the cleanup runs (the scenario code goes on meanwhile): stop it at once
    if (cleanupRun) { try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ } }
  }
  return proc;
}

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** Descendant PIDs of pid (via /proc/<pid>/stat ppid). */
function descendants(pid) {
  const parent = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(f[1]));
    } catch { /* exited */ }
  }
  const out = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift();
    for (const [c, pp] of parent) if (pp === p) { out.push(c); queue.push(c); }
  }
  return out;
}

/** Run a command asynchronously (so Ctrl-C is handled meanwhile); killed by PID on timeout. */
function runAsync(cmd, args, { timeoutMs = CMD_TIMEOUT_MS } = {}) {
  return new Promise((resolve) => {
    const p = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }), cmd);
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
    const timer = setTimeout(() => { err += ' (timed out)'; killPid(p.pid, 500); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(timer); resolve({ ok: false, out, err: e.message }); });
    p.on('close', (code) => { clearTimeout(timer); resolve({ ok: code === 0, out, err: err.trim() }); });
  });
}

async function killPid(pid, graceMs = SWITCH_STOP_GRACE_MS) {
  if (!pid || !alive(pid)) return;
  const kids = descendants(pid);
  try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  const until = Date.now() + graceMs;
  while (alive(pid) && Date.now() < until) await sleep(20);
  for (const p of [pid, ...kids]) if (alive(p)) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  const until2 = Date.now() + 1000;
  while (alive(pid) && Date.now() < until2) await sleep(10);
}

// One cleanup for everybody: a Ctrl-C under npm (or timeout) delivers SIGINT twice, and the
// second caller must wait for the first cleanup to finish instead of exiting in the middle of it.
let cleanupRun = null;
function cleanupAll() {
  cleanupRun ??= (async () => {
    for (let round = 0; round < 3 && children.size; round++) {
      for (const pid of [...children.keys()]) await killPid(pid, 500);
    }
    for (const t of cleanupTasks.splice(0).reverse()) { try { t(); } catch { /* best effort */ } }
  })();
  return cleanupRun;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, async () => {
    log(`caught ${sig}, cleaning up`);
    await cleanupAll();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------
// /proc readers

let CLK_TCK_HZ = 100;

/** utime+stime of pid and its descendants, in clock ticks. */
function cpuTicks(pid) {
  let sum = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const st = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      sum += Number(f[11]) + Number(f[12]); // fields 14 and 15
    } catch { /* exited */ }
  }
  return sum;
}

/** Busy clock ticks of the whole machine so far (all CPUs, /proc/stat). */
function machineBusyTicks() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...
    return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0);
  } catch {
    return NaN;
  }
}

/** VmRSS / VmHWM (kB) summed over pid and its descendants. */
function memKb(pid) {
  let rss = 0, hwm = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const s = fs.readFileSync(`/proc/${p}/status`, 'utf8');
      rss += Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] || 0);
      hwm += Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] || 0);
    } catch { /* exited */ }
  }
  return { rss, hwm };
}

function allowedCpus() {
  try {
    const s = fs.readFileSync('/proc/self/status', 'utf8');
    const list = /Cpus_allowed_list:\s*(\S+)/.exec(s)?.[1] || '';
    const cpus = [];
    for (const part of list.split(',')) {
      const [a, b] = part.split('-').map(Number);
      for (let c = a; c <= (Number.isFinite(b) ? b : a); c++) cpus.push(c);
    }
    return cpus.length ? cpus : [...Array(os.cpus().length).keys()];
  } catch {
    return [...Array(os.cpus().length).keys()];
  }
}

/** Busy fraction of all CPUs over sampleMs (from /proc/stat), 0..1. */
async function backgroundLoad(sampleMs) {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] || 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = read();
    await sleep(sampleMs);
    const b = read();
    return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
  } catch {
    return NaN;
  }
}

function machineInfo() {
  let cpu = 'unknown';
  try { cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() || cpu; } catch { /* */ }
  let qlen = '?';
  try { qlen = fs.readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8').trim(); } catch { /* */ }
  const memGiB = (os.totalmem() / 2 ** 30).toFixed(1);
  return {
    cpu,
    nproc: run('nproc', [], { quiet: true }).out.trim() || String(os.cpus().length),
    kernel: run('uname', ['-r'], { quiet: true }).out.trim() || os.release(),
    date: new Date().toISOString(),
    node: process.version,
    memGiB,
    qlen,
  };
}

// ---------------------------------------------------------------------------
// the switch under test

class Switch {
  constructor(side, argv, tmpRoot, pinCpus) {
    this.side = side; // 'ref' | 'ours'
    this.argv = argv; // absolute program path first
    this.cmd = side === 'ours' ? OURS_LABEL : argv.join(' '); // for messages
    this.tmpRoot = tmpRoot;
    this.pinCpus = pinCpus;
    this.proc = null;
    this.pid = 0;
    this.dir = null;
    this.output = '';
    this.failed = null; // sticky reason once it could not start
    this.starts = 0;
  }

  async start() {
    if (this.failed) return { ok: false, reason: this.failed };
    this.starts++;
    this.dir = path.join(this.tmpRoot, `${this.side}${this.starts}`);
    const argv = [...this.argv, '-s', this.dir, '-n', String(SWITCH_NUMPORTS),
      '--hashsize', String(SWITCH_HASHSIZE_BUCKETS), ...(this.side === 'ours' ? OURS_EXTRA_ARGS : [])];
    const full = this.pinCpus ? ['taskset', '-c', this.pinCpus, ...argv] : argv;
    this.output = '';
    let spawnErr = null;
    try {
      // stdin is a pipe that we never close: Debian's vde_switch exits on stdin EOF
      this.proc = track(spawn(full[0], full.slice(1), { cwd: REPO_DIR, stdio: ['pipe', 'pipe', 'pipe'] }), `${this.side} switch`);
    } catch (e) {
      spawnErr = e.message;
    }
    if (spawnErr || !this.proc?.pid) {
      return this.fail(`cannot spawn "${this.cmd}": ${spawnErr || 'no pid'}`);
    }
    this.pid = this.proc.pid;
    let exitInfo = null;
    this.proc.on('exit', (code, sig) => { exitInfo = sig ? `signal ${sig}` : `exit code ${code}`; });
    this.proc.on('error', (e) => { exitInfo = e.message; });
    const keep = (d) => { this.output = (this.output + d.toString()).slice(-4000); };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    this.proc.stdin.on('error', () => { /* switch gone */ });
    const until = Date.now() + SWITCH_START_TIMEOUT_MS;
    while (Date.now() < until) {
      if (exitInfo) return this.fail(`"${this.cmd}" did not start (${exitInfo}): ${reasonFrom(this.output) || 'no output'}`);
      if (await ctlReady(path.join(this.dir, 'ctl'))) return { ok: true };
      await sleep(POLL_INTERVAL_MS);
    }
    await this.stop();
    return this.fail(`"${this.cmd}" created no ${this.dir}/ctl within ${SWITCH_START_TIMEOUT_MS} ms`);
  }

  fail(reason) {
    this.failed = reason;
    log(`${this.side}: ${reason}`);
    return { ok: false, reason };
  }

  async stop() {
    if (this.pid) await killPid(this.pid);
    this.pid = 0;
    this.proc = null;
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  ticks() { return this.pid ? cpuTicks(this.pid) : NaN; }
  mem() { return this.pid ? memKb(this.pid) : { rss: NaN, hwm: NaN }; }
}

function ctlReady(sockPath) {
  try {
    if (!fs.statSync(sockPath).isSocket()) return Promise.resolve(false);
  } catch { return Promise.resolve(false); }
  return new Promise((resolve) => {
    const c = net.createConnection({ path: sockPath });
    const done = (v) => { c.destroy(); resolve(v); };
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
    setTimeout(() => done(false), 1000).unref();
  });
}

// ---------------------------------------------------------------------------
// vdeload runner

let LOAD_PIN = null;   // CPU list for vdeload, or null
let LOAD_WAIT = 'poll';

function vdeloadArgv(mode, args) {
  const argv = [VDELOAD_BIN, mode, ...args, '--wait', LOAD_WAIT];
  return LOAD_PIN ? ['taskset', '-c', LOAD_PIN, ...argv] : argv;
}

/** Run vdeload to completion; resolves to its JSON result ({ok:false,error} on failure). */
function runLoad(mode, args, durationMs) {
  return runLoadArgv(vdeloadArgv(mode, args), durationMs);
}

/** Runs a vdeload command line; resolves with its JSON result or {ok: false, error}. */
function runLoadArgv(argv, durationMs) {
  const mode = argv[argv.indexOf(VDELOAD_BIN) + 1];
  return new Promise((resolve) => {
    const p = track(spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }), `vdeload ${mode}`);
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err = (err + d).slice(-2000); });
    const timer = setTimeout(() => { killPid(p.pid, 200); }, durationMs + VDELOAD_TIMEOUT_MARGIN_MS);
    p.on('error', (e) => { clearTimeout(timer); resolve({ ok: false, error: e.message }); });
    p.on('close', (code, sig) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (line) {
        try { return resolve(JSON.parse(line)); } catch { /* fall through */ }
      }
      resolve({ ok: false, error: `vdeload ${mode} ended (${sig || code}) without result: ${tail(err, 200)}` });
    });
  });
}

/** Start vdeload idle; resolves {ok, proc} once READY, or {ok:false, error}. */
function startIdle(dir, clients) {
  return new Promise((resolve) => {
    const argv = vdeloadArgv('idle', ['--sock', dir, '--clients', String(clients)]);
    const p = track(spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] }), 'vdeload idle');
    let out = '', err = '', settled = false;
    const settle = (v) => { if (!settled) { settled = true; clearTimeout(timer); resolve(v); } };
    const timer = setTimeout(async () => {
      await killPid(p.pid, 200);
      settle({ ok: false, error: `idle clients not ready within ${IDLE_READY_TIMEOUT_MS} ms` });
    }, IDLE_READY_TIMEOUT_MS);
    p.stdout.on('data', (d) => {
      out += d;
      if (/^READY \d+/m.test(out)) settle({ ok: true, proc: p });
    });
    p.stderr.on('data', (d) => { err = (err + d).slice(-2000); });
    p.stdin.on('error', () => { /* gone */ });
    p.on('close', () => {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      let msg = tail(err, 200);
      try { if (line) msg = JSON.parse(line).error || msg; } catch { /* */ }
      settle({ ok: false, error: `idle clients failed: ${msg || 'no output'}` });
    });
  });
}

async function stopIdle(idle) {
  if (!idle?.proc?.pid) return;
  try { idle.proc.stdin.end(); } catch { /* */ }
  const until = Date.now() + 3000;
  while (alive(idle.proc.pid) && Date.now() < until) await sleep(20);
  await killPid(idle.proc.pid, 200);
}

// ---------------------------------------------------------------------------
// measurement helpers

/**
 * One measured vdeload run against sw: returns the vdeload JSON plus the
 * switch CPU use during the run (cpuPct, cpuNs).
 */
async function measure(sw, mode, args, durationMs) {
  const t0 = sw.ticks();
  const m0 = machineBusyTicks();
  const w0 = process.hrtime.bigint();
  const r = await runLoad(mode, ['--sock', sw.dir, ...args], durationMs);
  const wallS = Number(process.hrtime.bigint() - w0) / 1e9;
  const dt = sw.ticks() - t0;
  const dm = machineBusyTicks() - m0;
  if (!alive(sw.pid)) return { ok: false, error: `switch died: ${reasonFrom(sw.output)}` };
  if (!r.ok) return r;
  r.cpuNs = (dt * 1e9) / CLK_TCK_HZ;
  r.cpuPct = r.elapsed_s ? (100 * r.cpuNs) / 1e9 / Math.max(r.elapsed_s, 1e-9) : NaN;
  r.wallS = wallS;
  // CPU used by anything but this switch and this vdeload during the run, in % of one CPU
  const loadTicks = Number.isFinite(r.self_cpu_s) ? r.self_cpu_s * CLK_TCK_HZ : 0;
  r.foreignPct = (100 * Math.max(0, dm - dt - loadTicks)) / CLK_TCK_HZ / Math.max(wallS, 1e-9);
  if (process.env.BENCH_DEBUG) log(`${sw.side} ${mode}: machine ${dm} switch ${dt} vdeload ${loadTicks.toFixed(0)} ticks, wall ${wallS.toFixed(2)} s`);
  return r;
}

/** measure(), retried (up to DISTURBED_RETRIES times) while other processes load the CPUs. */
async function measureQuiet(sw, mode, args, durationMs) {
  let best = null;
  for (let i = 0; i <= DISTURBED_RETRIES; i++) {
    const r = await measure(sw, mode, args, durationMs);
    if (!r.ok) return best ?? r;
    if (!best || r.foreignPct < best.foreignPct) best = r;
    if (r.foreignPct <= FOREIGN_LOAD_MAX_PCT) break;
    log(`${sw.side}: ${mode} run disturbed (other processes used ${r.foreignPct.toFixed(0)}% CPU), retrying`);
  }
  best.disturbed = best.foreignPct > FOREIGN_LOAD_MAX_PCT;
  return best;
}

/**
 * Run `fn(sw)` reps times for every running switch, interleaved
 * (ref, ours, ref, ours, ...), and return per side the list of results.
 */
async function interleaved(running, reps, fn) {
  const out = new Map(running.map((sw) => [sw.side, []]));
  for (let i = 0; i < reps; i++) {
    for (const sw of running) out.get(sw.side).push(await fn(sw));
  }
  return out;
}

/** Reduce a list of vdeload results to {value (median of key), cpuPct, n, error}. */
function reduce(list, key) {
  const good = list.filter((r) => r && r.ok);
  if (!good.length) return { error: list.find((r) => r && r.error)?.error || 'no result' };
  return {
    value: median(good.map((r) => r[key])),
    cpuPct: median(good.map((r) => r.cpuPct)),
    n: good.length,
    runs: good.map((r) => r[key]),
    disturbed: good.filter((r) => r.disturbed).length,
  };
}

// ---------------------------------------------------------------------------
// scenarios. Each fills results[key][side] = {value, cpuPct, ...} or {error}.

const results = {};
const notes = [];

function setResult(key, side, v) {
  results[key] ??= {};
  results[key][side] = v;
}

/** Start fresh instances of both switches, run body(running), stop them. */
async function withSwitches(switches, keys, body) {
  const running = [];
  for (const sw of switches) {
    const r = await sw.start();
    if (r.ok) running.push(sw);
    else for (const k of keys) setResult(k, sw.side, { error: 'switch did not start, see notes' });
  }
  try {
    if (running.length) await body(running);
  } finally {
    for (const sw of running) await sw.stop();
  }
}

function flowArgs({ bytes = FRAME_SMALL_BYTES, pairs = 1, macs = 1, rate = 0, durationMs = THRU_DURATION_MS } = {}) {
  return ['--bytes', String(bytes), '--pairs', String(pairs), '--macs', String(macs),
    '--rate', String(rate), '--duration-ms', String(durationMs)];
}

async function scenarioThru(switches, opts) {
  const cases = [
    ['thru_64_1', FRAME_SMALL_BYTES, 1],
    ['thru_1500_1', FRAME_LARGE_BYTES, 1],
    ['thru_64_4', FRAME_SMALL_BYTES, PAIRS_MANY],
    ['thru_1500_4', FRAME_LARGE_BYTES, PAIRS_MANY],
  ];
  await withSwitches(switches, cases.map((c) => c[0]), async (running) => {
    for (const [key, bytes, pairs] of cases) {
      log(`thru: ${bytes} B x ${pairs} pair(s)`);
      const res = await interleaved(running, opts.reps,
        (sw) => measureQuiet(sw, 'thru', flowArgs({ bytes, pairs }), THRU_DURATION_MS));
      for (const [side, list] of res) setResult(key, side, reduce(list, 'fps'));
    }
  });
}

async function scenarioBcast(switches, opts) {
  await withSwitches(switches, ['bcast'], async (running) => {
    log(`bcast: 1 sender, ${BCAST_RECEIVERS} receivers`);
    const res = await interleaved(running, opts.reps, (sw) => measureQuiet(sw, 'bcast',
      ['--receivers', String(BCAST_RECEIVERS), '--bytes', String(FRAME_SMALL_BYTES), '--duration-ms', String(THRU_DURATION_MS)],
      THRU_DURATION_MS));
    for (const [side, list] of res) setResult('bcast', side, reduce(list, 'fps_per_receiver'));
  });
}

async function scenarioLatency(switches, opts) {
  await withSwitches(switches, ['lat_p50', 'lat_p99'], async (running) => {
    log(`latency: ping-pong ${opts.reps} x ${PING_ROUNDS} rounds`);
    const res = await interleaved(running, opts.reps, (sw) => measureQuiet(sw, 'pingpong',
      ['--rounds', String(PING_ROUNDS), '--bytes', String(FRAME_SMALL_BYTES), '--duration-ms', String(PING_DURATION_MS)],
      PING_DURATION_MS));
    for (const [side, list] of res) {
      setResult('lat_p50', side, reduce(list, 'rtt_us_p50'));
      setResult('lat_p99', side, reduce(list, 'rtt_us_p99'));
    }
  });
}

async function scenarioCpu(switches) {
  await withSwitches(switches, ['cpu'], async (running) => {
    log(`cpu: ${CPU_RATE_FPS} frames/s paced for ${CPU_DURATION_MS} ms`);
    const res = await interleaved(running, 1, (sw) => measureQuiet(sw, 'thru',
      flowArgs({ rate: CPU_RATE_FPS, durationMs: CPU_DURATION_MS }), CPU_DURATION_MS));
    for (const [side, list] of res) {
      const r = list[0];
      if (!r?.ok) { setResult('cpu', side, { error: r?.error || 'no result' }); continue; }
      const lost = r.sent - r.delivered;
      setResult('cpu', side, {
        value: r.delivered ? r.cpuNs / r.delivered : NaN,
        cpuPct: r.cpuPct,
        disturbed: r.disturbed ? 1 : 0,
        extra: `${r.delivered} frames delivered${lost > 0 ? `, ${lost} lost` : ''}`,
      });
    }
  });
}

async function scenarioPorts(switches, opts) {
  await withSwitches(switches, ['ports_base', 'ports_idle'], async (running) => {
    log('ports: baseline (2 clients)');
    const base = await interleaved(running, opts.reps, (sw) => measureQuiet(sw, 'thru', flowArgs(), THRU_DURATION_MS));
    for (const [side, list] of base) setResult('ports_base', side, reduce(list, 'fps'));
    log(`ports: connecting ${IDLE_CLIENTS} idle clients`);
    const idle = new Map();
    const withIdle = [];
    for (const sw of running) {
      const t = Date.now();
      const r = await startIdle(sw.dir, IDLE_CLIENTS);
      if (r.ok) { idle.set(sw.side, r); withIdle.push(sw); log(`ports: ${sw.side}: ${IDLE_CLIENTS} clients connected in ${Date.now() - t} ms`); }
      else setResult('ports_idle', sw.side, { error: r.error });
    }
    try {
      const res = await interleaved(withIdle, opts.reps, (sw) => measureQuiet(sw, 'thru', flowArgs(), THRU_DURATION_MS));
      for (const [side, list] of res) setResult('ports_idle', side, reduce(list, 'fps'));
    } finally {
      for (const r of idle.values()) await stopIdle(r);
    }
  });
}

async function scenarioMacs(switches, opts, wantRss) {
  await withSwitches(switches, ['macs_base', 'macs_many', 'rss', 'hwm'], async (running) => {
    const before = new Map(running.map((sw) => [sw.side, sw.mem()]));
    log('macs: baseline (1 source MAC)');
    const base = await interleaved(running, opts.reps, (sw) => measureQuiet(sw, 'thru', flowArgs(), THRU_DURATION_MS));
    for (const [side, list] of base) setResult('macs_base', side, reduce(list, 'fps'));
    log(`macs: ${MANY_MACS} source MACs`);
    const res = await interleaved(running, opts.reps,
      (sw) => measureQuiet(sw, 'thru', flowArgs({ macs: MANY_MACS }), THRU_DURATION_MS));
    for (const [side, list] of res) setResult('macs_many', side, reduce(list, 'fps'));
    if (wantRss) {
      for (const sw of running) {
        const m = sw.mem();
        const b = before.get(sw.side);
        setResult('rss', sw.side, { value: m.rss, extra: `idle before: ${fmtKb(b.rss)}` });
        setResult('hwm', sw.side, { value: m.hwm });
      }
    }
  });
}

/**
 * Scenario 6b: a client sends FLOOD_MACS source MACs in FLOOD_DURATION_MS while a pair of clients
 * exchanges frames at a paced rate. Per switch (one at a time): what the pair still gets through,
 * its longest silence, and how much the switch's memory grew. Both vdeload runs sleep in ppoll
 * (two busy-polling load generators would fight over one CPU).
 */
async function scenarioFlood(switches) {
  const keys = ['flood_pair', 'flood_gap', 'flood_rss'];
  await withSwitches(switches, keys, async (running) => {
    for (const sw of running) {
      log(`flood: ${sw.side}: ${FLOOD_MACS} source MACs in ${FLOOD_DURATION_MS / 1000} s, pair at ${FLOOD_PAIR_RATE_FPS} frames/s`);
      const rss0 = sw.mem().rss;
      let peak = rss0;
      const sampler = setInterval(() => { peak = Math.max(peak, sw.mem().rss || 0); }, FLOOD_RSS_SAMPLE_MS);
      const pin = LOAD_PIN ? ['taskset', '-c', LOAD_PIN] : [];
      const base = [...pin, VDELOAD_BIN, 'thru', '--sock', sw.dir, '--pairs', '1', '--wait', 'poll'];
      const flood = runLoadArgv([...base, '--macs', String(FLOOD_MACS), '--rate', String(FLOOD_RATE_FPS), '--max-frames', String(FLOOD_MACS),
        '--duration-ms', String(FLOOD_DURATION_MS), '--mac-id', '2'], FLOOD_DURATION_MS);
      await sleep(FLOOD_PAIR_DELAY_MS);
      const pairMs = FLOOD_DURATION_MS - 3 * FLOOD_PAIR_DELAY_MS;
      const pair = runLoadArgv([...base, '--rate', String(FLOOD_PAIR_RATE_FPS), '--duration-ms', String(pairMs), '--mac-id', '1'], pairMs);
      const [f, p] = await Promise.all([flood, pair]);
      clearInterval(sampler);
      if (!alive(sw.pid)) {
        for (const k of keys) setResult(k, sw.side, { error: `switch died: ${reasonFrom(sw.output)}` });
        continue;
      }
      const floodNote = f.ok ? `flood: ${fmtFps(f.sent / FLOOD_DURATION_MS * 1000)} sent, ${fmtFps(f.fps)} delivered` : `flood: ${f.error}`;
      if (!p.ok) {
        for (const k of keys) setResult(k, sw.side, { error: p.error });
        continue;
      }
      setResult('flood_pair', sw.side, { value: p.fps, extra: `${((100 * p.delivered) / Math.max(p.sent, 1)).toFixed(1)}% of ${p.sent} delivered; ${floodNote}` });
      setResult('flood_gap', sw.side, { value: p.max_gap_us / 1000 });
      setResult('flood_rss', sw.side, { value: peak - rss0, extra: `peak ${fmtKb(peak)}` });
    }
  });
}

// --- scenario 8: network namespaces --------------------------------------

function ipq(...args) { return run('ip', args, { quiet: true }); }

function netTeardown() {
  for (const ns of [NET_NS_A, NET_NS_B, NET_NS_BRIDGE]) ipq('netns', 'del', ns);
  for (const l of [NET_TAP_A, NET_TAP_B]) ipq('link', 'del', l);
}

/** Moves both taps (already opened by a plug or the switch) into their namespaces; returns an error text or null. */
function netMoveTaps() {
  for (const [tap, ns, addr] of [[NET_TAP_A, NET_NS_A, NET_ADDR_A], [NET_TAP_B, NET_NS_B, NET_ADDR_B]]) {
    const r = run('ip', ['link', 'set', tap, 'netns', ns]);
    if (!r.ok) return `ip link set netns: ${r.err}`;
    const e = netConfigureNs(ns, tap, addr);
    if (e) return e;
  }
  return null;
}

function netConfigureNs(ns, dev, addr) {
  const steps = [
    ['-n', ns, 'link', 'set', 'lo', 'up'],
    ['-n', ns, 'addr', 'add', `${addr}/${NET_PREFIX_BITS}`, 'dev', dev],
    ['-n', ns, 'link', 'set', dev, 'up'],
  ];
  for (const s of steps) {
    const r = run('ip', s);
    if (!r.ok) return `ip ${s.join(' ')}: ${r.err}`;
  }
  return null;
}

async function netMeasure() {
  // ping: one warm-up (ARP), then PING_COUNT timed ones
  const warm = await runAsync('ip', ['netns', 'exec', NET_NS_A, 'ping', '-c', '3', '-W', '2', '-i', '0.2', NET_ADDR_B]);
  if (!warm.ok) return { error: `no connectivity (ping: ${tail(warm.out + warm.err, 120)})` };
  const p = await runAsync('ip', ['netns', 'exec', NET_NS_A, 'ping', '-c', String(PING_COUNT), '-i', String(PING_INTERVAL_S), NET_ADDR_B]);
  const times = [...p.out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  const pingUs = median(times);
  // iperf3: server in B (one test, then exits), client in A
  const srv = track(spawn('ip', ['netns', 'exec', NET_NS_B, 'iperf3', '-s', '-1', '-p', String(IPERF_PORT)],
    { stdio: ['ignore', 'ignore', 'pipe'] }), 'iperf3 server');
  let srvErr = '';
  srv.stderr.on('data', (d) => { srvErr = (srvErr + d).slice(-1000); });
  await sleep(IPERF_START_DELAY_MS);
  let gbps = NaN, retrans = NaN, iperfErr = null;
  const c = await runAsync('ip', ['netns', 'exec', NET_NS_A, 'iperf3', '-c', NET_ADDR_B, '-p', String(IPERF_PORT),
    '-t', String(IPERF_DURATION_S), '-J'], { timeoutMs: (IPERF_DURATION_S + 20) * 1000 });
  try {
    const j = JSON.parse(c.out);
    if (j.error) iperfErr = j.error;
    gbps = j.end.sum_received.bits_per_second / 1e9;
    retrans = j.end.sum_sent.retransmits;
  } catch {
    iperfErr ??= `iperf3 failed: ${tail(c.err || srvErr, 150)}`;
  }
  await killPid(srv.pid, 500);
  return { pingUs, pingN: times.length, gbps, retrans, iperfErr };
}

async function netViaSwitch(sw) {
  const plugs = [];
  try {
    netTeardown();
    for (const ns of [NET_NS_A, NET_NS_B]) {
      const r = run('ip', ['netns', 'add', ns]);
      if (!r.ok) return { error: `ip netns add: ${r.err}` };
    }
    for (const tap of [NET_TAP_A, NET_TAP_B]) {
      const r = run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
      if (!r.ok) return { error: `ip tuntap add: ${r.err}` };
      // Debian's switch with Debian's tap plug; ours with ours (tap offloads, 64 KiB segments to the switch)
      const plugArgv = sw.side === 'ours' ? oursArgv('vde_plug') : [debianTool('vde_plug').path];
      const p = track(spawn(plugArgv[0], [...plugArgv.slice(1), `vde://${sw.dir}`, `tap://${tap}`], { cwd: REPO_DIR, stdio: ['ignore', 'ignore', 'pipe'] }), `vde_plug ${tap}`);
      let perr = '';
      p.stderr.on('data', (d) => { perr = (perr + d).slice(-500); });
      p.on('error', (e) => { perr = e.message; });
      plugs.push({ p, err: () => perr });
    }
    await sleep(PLUG_SETTLE_MS);
    if (sw.side === 'ours') {
      // our plug switches the tap's offloads on once it has opened it
      const until = Date.now() + PLUG_OFFLOAD_TIMEOUT_MS;
      const tso = (tap) => /tcp-segmentation-offload: on/.test(run('ethtool', ['-k', tap], { quiet: true }).out);
      while (!(tso(NET_TAP_A) && tso(NET_TAP_B)) && Date.now() < until && plugs.every(({ p }) => alive(p.pid))) await sleep(POLL_INTERVAL_MS);
    }
    for (const { p, err } of plugs) if (!alive(p.pid)) return { error: `vde_plug exited: ${tail(err(), 150)}` };
    const moved = netMoveTaps();
    if (moved) return { error: moved };
    return await netMeasure();
  } finally {
    for (const { p } of plugs) await killPid(p.pid, 500);
    netTeardown();
  }
}

async function netViaBridge(offloadsOff = false) {
  try {
    netTeardown();
    for (const ns of [NET_NS_A, NET_NS_B, NET_NS_BRIDGE]) {
      const r = run('ip', ['netns', 'add', ns]);
      if (!r.ok) return { error: `ip netns add: ${r.err}` };
    }
    const br = ['-n', NET_NS_BRIDGE];
    const steps = [
      [...br, 'link', 'add', NET_BRIDGE, 'type', 'bridge'],
      [...br, 'link', 'set', NET_BRIDGE, 'up'],
      [...br, 'link', 'add', NET_VETH_A, 'type', 'veth', 'peer', 'name', 'vdbva1', 'netns', NET_NS_A],
      [...br, 'link', 'add', NET_VETH_B, 'type', 'veth', 'peer', 'name', 'vdbvb1', 'netns', NET_NS_B],
      [...br, 'link', 'set', NET_VETH_A, 'master', NET_BRIDGE],
      [...br, 'link', 'set', NET_VETH_B, 'master', NET_BRIDGE],
      [...br, 'link', 'set', NET_VETH_A, 'up'],
      [...br, 'link', 'set', NET_VETH_B, 'up'],
    ];
    for (const s of steps) {
      const r = run('ip', s);
      if (!r.ok) return { error: `ip ${s.join(' ')}: ${r.err}` };
    }
    for (const [ns, dev, addr] of [[NET_NS_A, 'vdbva1', NET_ADDR_A], [NET_NS_B, 'vdbvb1', NET_ADDR_B]]) {
      const e = netConfigureNs(ns, dev, addr);
      if (e) return { error: e };
    }
    if (offloadsOff) {
      if (!which('ethtool')) return { error: 'missing ethtool' };
      for (const [ns, dev] of [[NET_NS_BRIDGE, NET_VETH_A], [NET_NS_BRIDGE, NET_VETH_B], [NET_NS_A, 'vdbva1'], [NET_NS_B, 'vdbvb1']]) {
        const r = run('ip', ['netns', 'exec', ns, 'ethtool', '-K', dev, 'tso', 'off', 'gso', 'off', 'gro', 'off']);
        if (!r.ok) return { error: `ethtool -K ${dev}: ${r.err}` };
      }
    }
    return await netMeasure();
  } finally {
    netTeardown();
  }
}

async function scenarioNet(switches) {
  const missing = ['ip', 'iperf3', 'ping'].filter((b) => !which(b));
  if (missing.length || !fs.existsSync('/dev/net/tun') || process.getuid?.() !== 0) {
    const why = missing.length ? `missing ${missing.join(', ')}` : (process.getuid?.() !== 0 ? 'needs root' : 'no /dev/net/tun');
    for (const k of ['net_gbps', 'net_ping']) for (const s of ['ref', 'ours', 'bridge']) setResult(k, s, { error: why });
    return;
  }
  cleanupTasks.push(netTeardown);
  const store = (side, r) => {
    if (r.error) { setResult('net_gbps', side, { error: r.error }); setResult('net_ping', side, { error: r.error }); return; }
    setResult('net_gbps', side, r.iperfErr ? { error: r.iperfErr } : { value: r.gbps, extra: `${r.retrans} retransmits` });
    setResult('net_ping', side, Number.isFinite(r.pingUs) ? { value: r.pingUs, extra: `${r.pingN} pings` } : { error: 'no ping replies' });
  };
  for (const sw of switches) {
    // unpinned: the data path runs through vde_plug, taps and the kernel
    const pin = sw.pinCpus;
    sw.pinCpus = null;
    await withSwitches([sw], ['net_gbps', 'net_ping'], async () => {
      log(`net: iperf3/ping through ${sw.side} switch`);
      store(sw.side, await netViaSwitch(sw));
    });
    sw.pinCpus = pin;
  }
  log('net: Linux bridge reference');
  store('bridge', await netViaBridge());
  await scenarioNetTaps(switches);
}

// --- scenario 8b: taps opened by the switch itself (-t), tap offloads on/off ----------------

/** Starts `sw` by hand with `-t A -t B` (+ --tap-offload for ours), moves the taps into the namespaces, measures. */
async function netViaSwitchTaps(sw, offload) {
  const dir = path.join(sw.tmpRoot, `${sw.side}-taps-${offload}`);
  const argv = [...sw.argv, '-s', dir, '-t', NET_TAP_A, '-t', NET_TAP_B,
    ...(sw.side === 'ours' ? [...OURS_EXTRA_ARGS, '--tap-offload', offload] : [])];
  let proc = null, out = '';
  try {
    netTeardown();
    for (const ns of [NET_NS_A, NET_NS_B]) {
      const r = run('ip', ['netns', 'add', ns]);
      if (!r.ok) return { error: `ip netns add: ${r.err}` };
    }
    // stdin stays an open pipe: Debian's vde_switch exits on stdin EOF
    proc = track(spawn(argv[0], argv.slice(1), { cwd: REPO_DIR, stdio: ['pipe', 'pipe', 'pipe'] }), `${sw.side} switch -t`);
    const keep = (d) => { out = (out + d).slice(-1000); };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    proc.stdin.on('error', () => {});
    const until = Date.now() + SWITCH_START_TIMEOUT_MS;
    while (!(await ctlReady(path.join(dir, 'ctl')))) {
      if (Date.now() > until || !alive(proc.pid)) return { error: `switch -t did not start: ${tail(out, 150)}` };
      await sleep(POLL_INTERVAL_MS);
    }
    // the control socket listens before the taps are attached: wait for both taps too
    const hasTap = (t) => run('ip', ['link', 'show', t], { quiet: true }).ok;
    while (!(hasTap(NET_TAP_A) && hasTap(NET_TAP_B))) {
      if (Date.now() > until || !alive(proc.pid)) return { error: `switch -t created no taps: ${tail(out, 150)}` };
      await sleep(POLL_INTERVAL_MS);
    }
    const moved = netMoveTaps();
    if (moved) return { error: moved };
    return await netMeasure();
  } finally {
    if (proc) await killPid(proc.pid, 1000);
    fs.rmSync(dir, { recursive: true, force: true });
    netTeardown();
  }
}

async function scenarioNetTaps(switches) {
  const keys = ['net_tap_on', 'net_tap_off'];
  const put = (key, side, r) => setResult(key, side, r.error || r.iperfErr ? { error: r.error || r.iperfErr }
    : { value: r.gbps, extra: `${r.retrans} retransmits` });
  for (const sw of switches) {
    if (sw.failed) { for (const k of keys) setResult(k, sw.side, { error: 'switch did not start, see notes' }); continue; }
    if (sw.side === 'ref') {
      log('net: taps in the ref switch (-t; vde2 has no tap offloads)');
      const r = await netViaSwitchTaps(sw, 'off');
      for (const k of keys) put(k, 'ref', r);
      continue;
    }
    for (const [key, offload] of [['net_tap_on', 'on'], ['net_tap_off', 'off']]) {
      log(`net: taps in our switch (-t), --tap-offload ${offload}`);
      put(key, 'ours', await netViaSwitchTaps(sw, offload));
    }
  }
  if (results.net_gbps?.bridge) setResult('net_tap_on', 'bridge', results.net_gbps.bridge);
  if (results.net_tap_on?.ours) setResult('net_tap_vs_bridge', 'ours', results.net_tap_on.ours);
  if (results.net_gbps?.bridge) setResult('net_tap_vs_bridge', 'ref', results.net_gbps.bridge);
  log('net: Linux bridge reference, offloads off (ethtool -K tso/gso/gro off)');
  put('net_tap_off', 'bridge', await netViaBridge(true));
}

// ---------------------------------------------------------------------------
// report

const fmtNum = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const fmtFps = (v) => (Number.isFinite(v) ? (v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : `${(v / 1e3).toFixed(1)} k`) : 'n/a');
const fmtKb = (kb) => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MiB` : 'n/a');

const ROWS = [
  { key: 'thru_64_1', scen: '1', what: 'unicast 64 B, 1 pair', unit: 'frames/s', fmt: fmtFps, cpu: true,
    target: { kind: 'ratio', min: TARGET_THRU_RATIO, text: `ours/ref ≥ ${TARGET_THRU_RATIO}` } },
  { key: 'thru_64_1_eff', scen: '1', what: 'unicast 64 B, 1 pair: frames per switch CPU-second (capacity; the load generator saturates first)', unit: 'frames/CPU-s', fmt: fmtFps },
  { key: 'thru_1500_1', scen: '1', what: 'unicast 1500 B, 1 pair', unit: 'frames/s', fmt: fmtFps, cpu: true },
  { key: 'thru_64_4', scen: '1', what: `unicast 64 B, ${PAIRS_MANY} pairs`, unit: 'frames/s', fmt: fmtFps, cpu: true },
  { key: 'thru_1500_4', scen: '1', what: `unicast 1500 B, ${PAIRS_MANY} pairs`, unit: 'frames/s', fmt: fmtFps, cpu: true },
  { key: 'bcast', scen: '2', what: `broadcast 64 B, 1→${BCAST_RECEIVERS}`, unit: 'frames/s per receiver', fmt: fmtFps, cpu: true },
  { key: 'lat_p50', scen: '3', what: 'ping-pong RTT p50 (2 switch passes)', unit: 'µs', fmt: (v) => fmtNum(v, 1),
    target: { kind: 'ratio', max: TARGET_LATENCY_RATIO, text: 'ours ≤ ref' } },
  { key: 'lat_p99', scen: '3', what: 'ping-pong RTT p99', unit: 'µs', fmt: (v) => fmtNum(v, 1) },
  { key: 'cpu', scen: '4', what: `switch CPU per frame at ${CPU_RATE_FPS / 1000} k frames/s`, unit: 'ns/frame', fmt: (v) => fmtNum(v, 0), cpu: true,
    target: { kind: 'ratio', max: TARGET_CPU_RATIO, text: `ours/ref ≤ ${TARGET_CPU_RATIO}` } },
  { key: 'ports_base', scen: '5', what: '64 B, 1 pair, no idle clients (baseline)', unit: 'frames/s', fmt: fmtFps, cpu: true },
  { key: 'ports_idle', scen: '5', what: `64 B, 1 pair, ${IDLE_CLIENTS} idle clients`, unit: 'frames/s', fmt: fmtFps, cpu: true,
    target: { kind: 'self', base: 'ports_base', min: TARGET_SCALE_FRACTION, text: `ours ≥ ${TARGET_SCALE_FRACTION * 100}% of ours baseline` } },
  { key: 'macs_base', scen: '6', what: '64 B, 1 pair, 1 source MAC (baseline)', unit: 'frames/s', fmt: fmtFps, cpu: true },
  { key: 'macs_many', scen: '6', what: `64 B, 1 pair, ${MANY_MACS / 1000} k source MACs`, unit: 'frames/s', fmt: fmtFps, cpu: true,
    target: { kind: 'self', base: 'macs_base', min: TARGET_SCALE_FRACTION, text: `ours ≥ ${TARGET_SCALE_FRACTION * 100}% of ours baseline` } },
  { key: 'flood_pair', scen: '6b', what: `a pair at ${FLOOD_PAIR_RATE_FPS / 1000} k frames/s while another client floods ${FLOOD_MACS / 1e6} M source MACs`, unit: 'frames/s', fmt: fmtFps,
    target: { kind: 'abs', min: 0.8 * FLOOD_PAIR_RATE_FPS, text: '≥ 80% of the offered rate' } },
  { key: 'flood_gap', scen: '6b', what: 'longest silence in the pair\'s stream during the flood', unit: 'ms', fmt: (v) => fmtNum(v, 1),
    target: { kind: 'abs', max: 20, text: '≤ 20 ms' } },
  { key: 'flood_rss', scen: '6b', what: 'switch memory growth during the flood (peak VmRSS − before)', unit: 'MiB', fmt: fmtKb,
    target: { kind: 'abs', max: 32 * 1024, text: '< 32 MiB' } },
  { key: 'rss', scen: '7', what: `switch VmRSS after scenario 6`, unit: 'MiB', fmt: fmtKb },
  { key: 'hwm', scen: '7', what: 'switch VmHWM after scenario 6', unit: 'MiB', fmt: fmtKb },
  { key: 'net_gbps', scen: '8', what: `TCP iperf3 ${IPERF_DURATION_S} s, netns↔netns, each namespace's tap on a vde_plug tap:// (ref: Debian's switch and plugs; ours: our switch and plugs)`, unit: 'Gbit/s', fmt: (v) => fmtNum(v, 2), bridge: true,
    target: { kind: 'ratio', min: TARGET_PLUG_TCP_RATIO, text: `ours/ref ≥ ${TARGET_PLUG_TCP_RATIO}` } },
  { key: 'net_ping', scen: '8', what: 'ICMP ping RTT p50, netns↔netns (same plugs)', unit: 'µs', fmt: (v) => fmtNum(v, 0), bridge: true },
  { key: 'net_tap_on', scen: '8b', what: `TCP iperf3 ${IPERF_DURATION_S} s between taps in the switch (-t), offloads on (ref: vde_switch -t, no offloads)`, unit: 'Gbit/s', fmt: (v) => fmtNum(v, 2), bridge: true },
  { key: 'net_tap_vs_bridge', scen: '8b', what: `TCP iperf3 ${IPERF_DURATION_S} s between taps in our switch (-t), offloads on, against the kernel bridge with offloads (ref column: the bridge)`, unit: 'Gbit/s', fmt: (v) => fmtNum(v, 2),
    target: { kind: 'ratio', min: TARGET_TAPS_VS_BRIDGE_RATIO, text: `ours/bridge ≥ ${TARGET_TAPS_VS_BRIDGE_RATIO}` } },
  { key: 'net_tap_off', scen: '8b', what: `TCP iperf3 ${IPERF_DURATION_S} s between taps in the switch (-t), --tap-offload off (bridge: tso/gso/gro off)`, unit: 'Gbit/s', fmt: (v) => fmtNum(v, 2), bridge: true },
];

let anyDisturbed = false;

function cell(row, r) {
  if (!r) return 'not run';
  if (r.error) return `n/a (${r.error.replace(/\|/g, '/')})`;
  let s = row.fmt(r.value);
  if (row.cpu && Number.isFinite(r.cpuPct)) s += ` (CPU ${r.cpuPct.toFixed(0)}%)`;
  if (r.extra) s += ` [${r.extra}]`;
  if (r.disturbed) { s += ' ⚠'; anyDisturbed = true; }
  return s;
}

function verdict(row, res) {
  const t = row.target;
  if (!t) return ['', ''];
  const ours = res?.ours, ref = res?.ref;
  if (!ours || ours.error || !Number.isFinite(ours.value)) return [t.text, 'n/a'];
  if (t.kind === 'abs') {
    const pass = t.min !== undefined ? ours.value >= t.min : ours.value <= t.max;
    return [t.text, pass ? 'PASS' : 'FAIL'];
  }
  if (t.kind === 'ratio') {
    if (!ref || ref.error || !Number.isFinite(ref.value) || !ref.value) return [t.text, 'n/a'];
    const q = ours.value / ref.value;
    const pass = t.min !== undefined ? q >= t.min : q <= t.max;
    return [t.text, pass ? 'PASS' : 'FAIL'];
  }
  const base = results[t.base]?.ours;
  if (!base || base.error || !Number.isFinite(base.value) || !base.value) return [t.text, 'n/a'];
  const q = ours.value / base.value;
  return [`${t.text} (${(q * 100).toFixed(0)}%)`, q >= t.min ? 'PASS' : 'FAIL'];
}

// Frames per CPU-second of the switch: on a 2-CPU machine the load generator (one CPU) is
// the bottleneck before our switch is, so raw frames/s understate the switch's capacity.
function deriveEfficiency() {
  const src = results.thru_64_1;
  if (!src) return;
  for (const side of ['ref', 'ours']) {
    const r = src[side];
    if (r && !r.error && Number.isFinite(r.value) && Number.isFinite(r.cpuPct) && r.cpuPct > 0) setResult('thru_64_1_eff', side, { value: r.value / (r.cpuPct / 100) });
    else setResult('thru_64_1_eff', side, { error: r?.error ?? 'no CPU figure' });
  }
}

function buildTable(selected) {
  if (!ROWS.some((row) => results[row.key])) return '';
  const lines = [
    '| # | scenario | unit | vde_switch (ref) | ours | ours/ref | target | result |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const row of ROWS) {
    const res = results[row.key];
    if (!res) continue;
    const ref = res.ref, ours = res.ours;
    const ratio = ref && ours && !ref.error && !ours.error && Number.isFinite(ref.value) && Number.isFinite(ours.value) && ref.value
      ? `${(ours.value / ref.value).toFixed(2)}x` : 'n/a';
    const [tgt, pass] = verdict(row, res);
    lines.push(`| ${row.scen} | ${row.what} | ${row.unit} | ${cell(row, ref)} | ${cell(row, ours)} | ${ratio} | ${tgt} | ${pass} |`);
    if (row.bridge && res.bridge) {
      lines.push(`| ${row.scen} | ↳ same through a Linux bridge + veth (physical reference) | ${row.unit} | bridge: ${cell(row, res.bridge)} | | | | |`);
    }
  }
  if (anyDisturbed) {
    notes.push(`⚠ = at least one repetition kept for this value ran while other processes used more than ${FOREIGN_LOAD_MAX_PCT}% of a CPU (after ${DISTURBED_RETRIES} retries): treat it with care.`);
  }
  if (selected.has('ports') || selected.has('macs')) {
    // the reference's own scaling, for context
    for (const [key, base, label] of [['ports_idle', 'ports_base', `${IDLE_CLIENTS} idle clients`], ['macs_many', 'macs_base', `${MANY_MACS} MACs`]]) {
      const a = results[key]?.ref, b = results[base]?.ref;
      if (a && b && Number.isFinite(a.value) && Number.isFinite(b.value) && b.value) {
        notes.push(`vde_switch (ref) with ${label} keeps ${(100 * a.value / b.value).toFixed(0)}% of its own baseline.`);
      }
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// main

async function compileVdeload() {
  fs.mkdirSync(BUILD_DIR, { recursive: true });
  if (!which('cc')) return 'no C compiler (cc)';
  if (!fs.existsSync('/usr/include/libvdeplug.h')) return 'libvdeplug.h missing (apt-get install libvdeplug-dev)';
  const r = run('cc', ['-O2', '-Wall', '-o', VDELOAD_BIN, VDELOAD_SRC, '-lvdeplug', '-lpthread'], { quiet: true });
  return r.ok ? null : `cannot compile vdeload: ${tail(r.err, 200)}`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const selected = opts.only ?? new Set(SCENARIOS);
  const t0 = Date.now();
  try { CLK_TCK_HZ = Number(run('getconf', ['CLK_TCK'], { quiet: true }).out.trim()) || 100; } catch { /* */ }

  // the reference binaries are checked before anything runs: a wrong one fails the bench here
  const refSwitch = debianTool('vde_switch');
  if (selected.has('net') || selected.has('cable') || selected.has('chain')) debianTool('vde_plug');
  if (selected.has('cable') || selected.has('chain')) debianTool('dpipe');
  log(`ref: ${refSwitch.path} (Debian package ${refSwitch.pkg}); ours: ${oursArgv('vde_switch').join(' ')}`);

  const machine = machineInfo();
  const bgLoad = await backgroundLoad(LOAD_SAMPLE_MS);
  if (bgLoad > LOAD_WARN_FRACTION) {
    notes.push(`other processes kept the CPUs ${(bgLoad * 100).toFixed(0)}% busy just before the run: results are noisy.`);
  }
  const cpus = allowedCpus();
  let pinNote = 'not pinned';
  if (opts.pin && cpus.length >= 2 && which('taskset')) {
    LOAD_PIN = String(cpus[cpus.length - 1]);
    const swCpus = cpus.slice(0, -1);
    opts.switchPin = swCpus.length === 1 ? String(swCpus[0]) : `${swCpus[0]}-${swCpus[swCpus.length - 1]}`;
    if (swCpus.some((c, i) => i && c !== swCpus[i - 1] + 1)) opts.switchPin = swCpus.join(',');
    LOAD_WAIT = 'spin';
    pinNote = `switch on CPU ${opts.switchPin}, vdeload on CPU ${LOAD_PIN} (busy-polling)`;
  } else {
    pinNote = `not pinned (${!opts.pin ? '--no-pin' : cpus.length < 2 ? 'single CPU' : 'no taskset'}), vdeload sleeps in ppoll`;
  }
  log(`machine: ${machine.cpu}, ${machine.nproc} CPUs, kernel ${machine.kernel}; ${pinNote}`);

  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'vde-bench-'));
  cleanupTasks.push(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

  const ref = new Switch('ref', [refSwitch.path], tmpRoot, opts.switchPin ?? null);
  const ours = new Switch('ours', oursArgv('vde_switch'), tmpRoot, opts.switchPin ?? null);
  const switches = [ref, ours];

  let loadErr = null;
  try {
    loadErr = await compileVdeload();
    if (loadErr) {
      log(loadErr);
      notes.push(`vdeload unavailable: ${loadErr}`);
      const keys = ['thru_64_1', 'thru_1500_1', 'thru_64_4', 'thru_1500_4', 'bcast', 'lat_p50', 'lat_p99', 'cpu',
        'ports_base', 'ports_idle', 'macs_base', 'macs_many', 'rss', 'hwm'];
      for (const k of keys) for (const s of ['ref', 'ours']) setResult(k, s, { error: loadErr });
    } else {
      if (selected.has('thru')) await scenarioThru(switches, opts);
      if (selected.has('bcast')) await scenarioBcast(switches, opts);
      if (selected.has('latency')) await scenarioLatency(switches, opts);
      if (selected.has('cpu')) await scenarioCpu(switches);
      if (selected.has('ports')) await scenarioPorts(switches, opts);
      if (selected.has('macs')) await scenarioMacs(switches, opts, selected.has('rss'));
      if (selected.has('flood')) await scenarioFlood(switches);
    }
    if (selected.has('net')) await scenarioNet(switches);
    const groupCtx = {
      track, killPid, alive, descendants, cpuTicks, run, runAsync, sleep, median, tail, log, which, setResult,
      cleanupTasks, notes, reps: opts.reps, clkTck: () => CLK_TCK_HZ, stopping: () => cleanupRun !== null,
      vdeloadBin: loadErr ? null : VDELOAD_BIN, vdeloadErr: loadErr,
      // a switch of its own directory: ours by default, or side ('ref'|'ours') started from argv
      makeSwitch: (name, side = 'ours', argv = oursArgv('vde_switch')) => {
        const root = path.join(tmpRoot, name);
        fs.mkdirSync(root, { recursive: true });
        return new Switch(side, argv, root, null);
      },
    };
    if (selected.has('cable')) await scenarioCable(groupCtx);
    if (selected.has('chain')) await scenarioChain(groupCtx);
  } finally {
    await cleanupAll();
  }

  for (const sw of switches) if (sw.failed) notes.push(`${sw.side} n/a: ${sw.failed}`);
  deriveEfficiency();
  const table = buildTable(selected);
  const cable = cableTable(results, `${OURS_LABEL} ${OURS_EXTRA_ARGS.join(' ')}`);
  const chain = chainTable(results);
  const elapsedS = ((Date.now() - t0) / 1000).toFixed(0);
  const md = [
    '# vde_switch benchmark: ours vs Debian vde_switch',
    '',
    'Generated by `npm run bench` (bench/switch.mjs); scenarios and targets are described in bench/README.md.',
    '',
    `- date: ${machine.date}`,
    `- CPU: ${machine.cpu}; nproc: ${machine.nproc}; memory: ${machine.memGiB} GiB`,
    `- kernel: ${machine.kernel}; node ${machine.node}; net.unix.max_dgram_qlen = ${machine.qlen}`,
    `- background CPU load before the run: ${Number.isFinite(bgLoad) ? (bgLoad * 100).toFixed(0) + '%' : 'n/a'} of all CPUs (${LOAD_SAMPLE_MS} ms sample)`,
    `- ref: \`${refSwitch.path}\` (Debian package ${refSwitch.pkg}); ours: \`${OURS_LABEL} ${OURS_EXTRA_ARGS.join(' ')}\` (this checkout); both with \`-n ${SWITCH_NUMPORTS} --hashsize ${SWITCH_HASHSIZE_BUCKETS}\``,
    `- placement: ${pinNote}; load generator: bench/vdeload.c (libvdeplug ${fs.existsSync('/usr/include/libvdeplug.h') ? 'vdeplug4' : '?'})`,
    `- throughput rows: median of ${opts.reps} × ${THRU_DURATION_MS} ms runs; latency: median of ${opts.reps} × ${PING_ROUNDS} rounds; ref/ours interleaved; "CPU" = switch utime+stime / run time`,
    `- bench wall time: ${elapsedS} s${opts.only ? `; only: ${[...selected].join(', ')}` : ''}`,
    '',
    ...(table ? [table, ''] : []),
    ...(cable.length ? [...cable, ''] : []),
    ...(chain.length ? [...chain, ''] : []),
    ...(notes.length ? ['Notes:', '', ...notes.map((n) => `- ${n}`), ''] : []),
  ].join('\n');
  console.log('\n' + md);
  if (opts.write) {
    fs.mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    fs.writeFileSync(RESULTS_FILE, md);
    log(`wrote ${path.relative(REPO_DIR, RESULTS_FILE)}`);
  }
}

main().catch(async (e) => {
  console.error(e?.message || e);
  await cleanupAll();
  process.exit(1);
});
