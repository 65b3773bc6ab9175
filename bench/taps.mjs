/*
 * bench/taps.mjs - where the CPU goes when two namespaces talk TCP through the taps of our switch
 * (`-t A -t B`, tap offloads on), against the same two namespaces on a Linux bridge with veth
 * pairs (offloads on): the "in-switch taps reach the kernel bridge" profile of issue 12.
 *
 *   node bench/taps.mjs [--reps=N] [--secs=S] [--perf] [--plugs]
 *
 * Per run (bridge and ours alternate, --reps each, default 3; iperf3 --secs, default 5):
 * Gbit/s; the CPU of iperf3's two ends (iperf3's own figures, user + system, which include the
 * kernel's TCP and the bridge's forwarding done in their context); for ours also the switch's
 * engine thread (user and system time apart, from /proc/PID/task/TID/stat), the thread's
 * wake-ups (voluntary context switches), the frames it moved and their average size (the taps'
 * counters in the namespaces). Derived: CPU-seconds per Gbit of the whole path, frames per
 * wake-up, and the engine thread's CPU per 64 KiB segment. With --perf, one extra run of ours
 * under `perf record -e cpu-clock` on the engine thread prints its top symbols (kernel included).
 *
 * Local only: namespaces named with this process's PID, removed at exit; every child stopped by
 * PID. Needs root, iperf3, iproute2 (and ethtool for --plugs, linux-perf for --perf).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_DIR, oursArgv } from './reference.mjs';
import { sleep, stopChild, until } from './util.mjs';

const NS_A = `vdbtp-a-${process.pid}`;
const NS_B = `vdbtp-b-${process.pid}`;
const NS_BR = `vdbtp-br-${process.pid}`;
const TAP_A = `vdbtpa${process.pid % 10000}`;
const TAP_B = `vdbtpb${process.pid % 10000}`;
const ADDR_A = '192.0.2.1';             // RFC 5737 documentation range
const ADDR_B = '192.0.2.2';
const IPERF_PORT = 5231;
const SWITCH_START_TIMEOUT_MS = 20000;
const IPERF_GRACE_S = 20;
const CLK_TCK_HZ = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const PERF_SECS = 4;

const args = Object.fromEntries(process.argv.slice(2).map((a) => { const [k, v] = a.replace(/^--/, '').split('='); return [k, v ?? 'true']; }));
const REPS = Math.max(1, Number(args.reps ?? 3));
const SECS = Math.max(2, Number(args.secs ?? 5));
const children = new Set();

function ip(...a) {
  const r = spawnSync('ip', a, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${a.join(' ')}: ${(r.stderr || '').trim()}`);
  return r.stdout;
}
function ipq(...a) { spawnSync('ip', a, { stdio: 'ignore' }); }

function teardown() {
  for (const ns of [NS_A, NS_B, NS_BR]) ipq('netns', 'del', ns);
  for (const l of [TAP_A, TAP_B]) ipq('link', 'del', l);
}

function configure(ns, dev, addr) {
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
  ip('-n', ns, 'link', 'set', dev, 'up');
}

/** Link counters of dev in ns: {txPackets, txBytes, rxPackets, rxBytes}. */
function linkStats(ns, dev) {
  const j = JSON.parse(ip('-n', ns, '-s', '-j', 'link', 'show', 'dev', dev))[0].stats64;
  return { txPackets: j.tx.packets, txBytes: j.tx.bytes, rxPackets: j.rx.packets, rxBytes: j.rx.bytes };
}

/** utime, stime (ticks) and voluntary context switches of one thread. */
function threadStat(pid, tid) {
  const s = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
  return { utime: Number(f[11]), stime: Number(f[12]), vcsw: Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(st)[1]) };
}

/** utime/stime/wake-ups of every thread of pid, by thread id. */
function allThreads(pid) {
  const m = new Map();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try { m.set(tid, threadStat(pid, tid)); } catch { /* the thread ended */ }
  }
  return m;
}

/** The thread of pid that used the most CPU since `before` (the engine thread under load): [tid, before, now]. */
function busiestSince(pid, before) {
  let best = null;
  for (const [tid, t] of allThreads(pid)) {
    const b = before.get(tid);
    if (!b) continue;
    const d = t.utime + t.stime - b.utime - b.stime;
    if (!best || d > best.d) best = { d, tid, b, t };
  }
  return best;
}

/** Runs iperf3 A → B for SECS; during it calls hooks.start()/hooks.end(). Resolves iperf3's JSON summary. */
async function iperf(hooks = {}) {
  const srv = spawn('ip', ['netns', 'exec', NS_B, 'iperf3', '-s', '-1', '-p', String(IPERF_PORT)], { stdio: 'ignore' });
  children.add(srv);
  try {
    await sleep(400);
    spawnSync('ip', ['netns', 'exec', NS_A, 'ping', '-c', '2', '-i', '0.2', '-W', '2', ADDR_B], { stdio: 'ignore' });
    const c = spawn('ip', ['netns', 'exec', NS_A, 'iperf3', '-c', ADDR_B, '-p', String(IPERF_PORT), '-t', String(SECS), '-J'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    // the hooks bracket a window inside the transfer: from 1 s after its start (the engine thread
    // is picked by its CPU in the last 0.7 s of that) to 0.3 s before its end
    await sleep(300);
    hooks.warm?.();
    await sleep(700);
    const s0 = hooks.start?.();
    const done = new Promise((r) => c.once('exit', r));
    const timer = setTimeout(() => c.kill('SIGKILL'), (SECS + IPERF_GRACE_S) * 1000);
    await sleep((SECS - 1.3) * 1000);
    const s1 = hooks.end?.(s0);
    await done;
    clearTimeout(timer);
    children.delete(c);
    const j = JSON.parse(out);
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    return { gbps: j.end.sum_received.bits_per_second / 1e9, cpuClient: j.end.cpu_utilization_percent.host_total, cpuServer: j.end.cpu_utilization_percent.remote_total, retrans: j.end.sum_sent.retransmits, window: s1 };
  } finally {
    await stopChild(srv, 500);
    children.delete(srv);
  }
}

async function bridgeRun() {
  teardown();
  try {
    for (const ns of [NS_A, NS_B, NS_BR]) ip('netns', 'add', ns);
    ip('-n', NS_BR, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', NS_BR, 'link', 'set', 'br0', 'up');
    for (const [v, peer, ns] of [['va0', 'va1', NS_A], ['vb0', 'vb1', NS_B]]) {
      ip('-n', NS_BR, 'link', 'add', v, 'type', 'veth', 'peer', 'name', peer, 'netns', ns);
      ip('-n', NS_BR, 'link', 'set', v, 'master', 'br0');
      ip('-n', NS_BR, 'link', 'set', v, 'up');
    }
    configure(NS_A, 'va1', ADDR_A);
    configure(NS_B, 'vb1', ADDR_B);
    return await iperf();
  } finally {
    teardown();
  }
}

async function startOurs(dir) {
  const argv = [...oursArgv('vde_switch'), '--nostdin', '-s', dir, '-t', TAP_A, '-t', TAP_B, '--tap-offload', 'on'];
  const p = spawn(argv[0], argv.slice(1), { cwd: REPO_DIR, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(p);
  let err = '';
  p.stderr.on('data', (d) => { err = (err + d).slice(-500); });
  await until(() => {
    if (p.exitCode !== null) throw new Error(`switch exited: ${err}`);
    return fs.existsSync(path.join(dir, 'ctl')) && spawnSync('ip', ['link', 'show', TAP_B], { stdio: 'ignore' }).status === 0;
  }, SWITCH_START_TIMEOUT_MS, 'the switch and its taps');
  return p;
}

async function oursRun(perf = false) {
  teardown();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vde-bench-taps-'));
  let sw = null;
  try {
    for (const ns of [NS_A, NS_B]) ip('netns', 'add', ns);
    sw = await startOurs(dir);
    ip('link', 'set', TAP_A, 'netns', NS_A);
    ip('link', 'set', TAP_B, 'netns', NS_B);
    configure(NS_A, TAP_A, ADDR_A);
    configure(NS_B, TAP_B, ADDR_B);
    let perfProc = null, perfOut = '', warm = null;
    const hooks = {
      warm: () => { warm = allThreads(sw.pid); },
      start: () => {
        const threads = allThreads(sw.pid);
        if (perf) {
          // the engine thread is the one that used the most CPU during the warm-up second
          const tid = busiestSince(sw.pid, warm).tid;
          perfProc = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-g', '-t', tid, '-o', path.join(dir, 'perf.data'), '--', 'sleep', String(PERF_SECS)], { stdio: 'ignore' });
          children.add(perfProc);
        }
        return { threads, a: linkStats(NS_A, TAP_A), b: linkStats(NS_B, TAP_B), w: Date.now() };
      },
      end: (s0) => {
        const { t, b: t0 } = busiestSince(sw.pid, s0.threads);
        const a = linkStats(NS_A, TAP_A), b = linkStats(NS_B, TAP_B);
        const secs = (Date.now() - s0.w) / 1000;
        // frames the switch read (what the namespaces sent into their taps) and wrote (what they received)
        const framesIn = (a.txPackets - s0.a.txPackets) + (b.txPackets - s0.b.txPackets);
        const bytesIn = (a.txBytes - s0.a.txBytes) + (b.txBytes - s0.b.txBytes);
        const framesOut = (a.rxPackets - s0.a.rxPackets) + (b.rxPackets - s0.b.rxPackets);
        return {
          secs, framesIn, framesOut, avgFrameBytes: bytesIn / Math.max(framesIn, 1),
          userPct: (100 * (t.utime - t0.utime)) / CLK_TCK_HZ / secs,
          sysPct: (100 * (t.stime - t0.stime)) / CLK_TCK_HZ / secs,
          wakeups: t.vcsw - t0.vcsw,
        };
      },
    };
    const r = await iperf(hooks);
    if (perfProc) {
      await new Promise((res) => (perfProc.exitCode !== null ? res() : perfProc.once('exit', res)));
      children.delete(perfProc);
      perfOut = spawnSync('perf', ['report', '-i', path.join(dir, 'perf.data'), '--stdio', '--no-children', '--sort', 'symbol', '-g', 'caller,0.5,callee', '--percent-limit', '1'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout + spawnSync('perf', ['report', '-i', path.join(dir, 'perf.data'), '--stdio', '--children', '--sort', 'symbol', '-g', 'none', '--percent-limit', '3'], { encoding: 'utf8' }).stdout;
    }
    return { ...r, perfOut };
  } finally {
    if (sw) { await stopChild(sw, 2000); children.delete(sw); }
    teardown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU ticks (utime + stime) of a whole process. */
function procTicks(pid) {
  const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Our switch without taps and two of our `vde_plug vde://DIR tap://TAP` plugs (offloads on): the plug path, for comparison. */
async function plugsRun() {
  teardown();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vde-bench-plugs-'));
  const procs = [];
  try {
    for (const ns of [NS_A, NS_B]) ip('netns', 'add', ns);
    const argv = [...oursArgv('vde_switch'), '--nostdin', '-s', dir];
    const sw = spawn(argv[0], argv.slice(1), { cwd: REPO_DIR, stdio: 'ignore' });
    children.add(sw);
    procs.push(sw);
    await until(() => fs.existsSync(path.join(dir, 'ctl')), SWITCH_START_TIMEOUT_MS, 'the switch');
    const plugArgv = oursArgv('vde_plug');
    for (const tap of [TAP_A, TAP_B]) {
      ip('tuntap', 'add', 'dev', tap, 'mode', 'tap');
      const p = spawn(plugArgv[0], [...plugArgv.slice(1), `vde://${dir}`, `tap://${tap}`], { cwd: REPO_DIR, stdio: 'ignore' });
      children.add(p);
      procs.push(p);
    }
    // our plug switches the tap's offloads on once it has opened it
    await until(() => [TAP_A, TAP_B].every((t) => /tcp-segmentation-offload: on/.test(spawnSync('ethtool', ['-k', t], { encoding: 'utf8' }).stdout ?? '')), SWITCH_START_TIMEOUT_MS, 'the plugs');
    ip('link', 'set', TAP_A, 'netns', NS_A);
    ip('link', 'set', TAP_B, 'netns', NS_B);
    configure(NS_A, TAP_A, ADDR_A);
    configure(NS_B, TAP_B, ADDR_B);
    const r = await iperf({
      start: () => ({ t: procs.map((p) => procTicks(p.pid)), w: Date.now() }),
      end: (s0) => {
        const secs = (Date.now() - s0.w) / 1000;
        const pct = procs.map((p, i) => (100 * (procTicks(p.pid) - s0.t[i])) / CLK_TCK_HZ / secs);
        return { switchPct: pct[0], plugsPct: pct[1] + pct[2] };
      },
    });
    return r;
  } finally {
    for (const p of procs.reverse()) { await stopChild(p, 2000); children.delete(p); }
    teardown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN; };

async function main() {
  if (process.getuid?.() !== 0) throw new Error('needs root (namespaces, taps)');
  for (const t of ['ip', 'iperf3']) if (spawnSync('which', [t]).status !== 0) throw new Error(`missing ${t} (Debian packages iproute2, iperf3)`);
  if (args.plugs && spawnSync('which', ['ethtool']).status !== 0) throw new Error('missing ethtool (Debian package ethtool), needed by --plugs');
  const bridge = [], ours = [], plugs = [];
  for (let i = 0; i < REPS; i++) {
    const b = await bridgeRun();
    bridge.push(b);
    console.error(`bridge: ${b.gbps.toFixed(2)} Gbit/s, iperf3 CPU client ${b.cpuClient.toFixed(0)}% server ${b.cpuServer.toFixed(0)}%`);
    const o = await oursRun();
    ours.push(o);
    const w = o.window;
    if (args.plugs) {
      const q = await plugsRun();
      plugs.push(q);
      console.error(`plugs:  ${q.gbps.toFixed(2)} Gbit/s, iperf3 CPU client ${q.cpuClient.toFixed(0)}% server ${q.cpuServer.toFixed(0)}%, switch ${q.window.switchPct.toFixed(0)}%, plugs ${q.window.plugsPct.toFixed(0)}%`);
    }
    console.error(`ours:   ${o.gbps.toFixed(2)} Gbit/s, iperf3 CPU client ${o.cpuClient.toFixed(0)}% server ${o.cpuServer.toFixed(0)}%, engine thread user ${w.userPct.toFixed(0)}% sys ${w.sysPct.toFixed(0)}%, ${(w.framesIn / w.secs / 1000).toFixed(1)} k frames/s in (avg ${w.avgFrameBytes.toFixed(0)} B), ${(w.framesIn / Math.max(w.wakeups, 1)).toFixed(2)} frames per wake-up`);
  }
  const cpuPerGbit = (r, extra = 0) => (r.cpuClient + r.cpuServer + extra) / 100 / r.gbps;
  const lines = [
    `machine: ${os.cpus()[0]?.model ?? '?'}, ${os.cpus().length} CPUs, kernel ${os.release()}, load average before: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`,
    `runs: ${REPS} x ${SECS} s each, bridge and ours alternating; medians`,
    '',
    '| | bridge (veth, offloads on) | ours (`-t A -t B`, offloads on) | ours/bridge |',
    '|---|---|---|---|',
    `| TCP Gbit/s | ${med(bridge.map((r) => r.gbps)).toFixed(2)} | ${med(ours.map((r) => r.gbps)).toFixed(2)} | ${(med(ours.map((r) => r.gbps)) / med(bridge.map((r) => r.gbps))).toFixed(2)}x |`,
    `| iperf3 CPU, client + server (% of one CPU) | ${med(bridge.map((r) => r.cpuClient + r.cpuServer)).toFixed(0)} | ${med(ours.map((r) => r.cpuClient + r.cpuServer)).toFixed(0)} | |`,
    `| switch engine thread CPU, user / system (%) | - | ${med(ours.map((r) => r.window.userPct)).toFixed(1)} / ${med(ours.map((r) => r.window.sysPct)).toFixed(1)} | |`,
    `| CPU-seconds per Gbit, whole path | ${med(bridge.map((r) => cpuPerGbit(r))).toFixed(3)} | ${med(ours.map((r) => cpuPerGbit(r, r.window.userPct + r.window.sysPct))).toFixed(3)} | ${(med(ours.map((r) => cpuPerGbit(r, r.window.userPct + r.window.sysPct))) / med(bridge.map((r) => cpuPerGbit(r)))).toFixed(2)}x |`,
    `| frames through the switch per second (in) / average size | - | ${(med(ours.map((r) => r.window.framesIn / r.window.secs)) / 1000).toFixed(1)} k / ${med(ours.map((r) => r.window.avgFrameBytes)).toFixed(0)} B | |`,
    `| frames per engine wake-up | - | ${med(ours.map((r) => r.window.framesIn / Math.max(r.window.wakeups, 1))).toFixed(2)} | |`,
    `| engine thread CPU per frame (µs) | - | ${med(ours.map((r) => ((r.window.userPct + r.window.sysPct) / 100) * 1e6 / (r.window.framesIn / r.window.secs))).toFixed(2)} | |`,
    `| retransmits | ${med(bridge.map((r) => r.retrans))} | ${med(ours.map((r) => r.retrans))} | |`,
  ];
  if (plugs.length) {
    const g = med(plugs.map((r) => r.gbps));
    lines.push('', `our switch + two of our \`vde_plug tap://\` plugs, same runs: ${g.toFixed(2)} Gbit/s (${(g / med(bridge.map((r) => r.gbps))).toFixed(2)}x the bridge), iperf3 ${med(plugs.map((r) => r.cpuClient + r.cpuServer)).toFixed(0)} %, switch ${med(plugs.map((r) => r.window.switchPct)).toFixed(0)} %, plugs ${med(plugs.map((r) => r.window.plugsPct)).toFixed(0)} % of one CPU; ${med(plugs.map((r) => cpuPerGbit(r, r.window.switchPct + r.window.plugsPct))).toFixed(3)} CPU-seconds per Gbit`);
  }
  console.log(lines.join('\n'));
  if (args.perf) {
    if (spawnSync('which', ['perf']).status !== 0) throw new Error('missing perf (Debian package linux-perf)');
    const o = await oursRun(true);
    console.log(`\nperf record -e cpu-clock on the engine thread (${PERF_SECS} s, ${o.gbps.toFixed(2)} Gbit/s in that run):\n`);
    console.log(o.perfOut.split('\n').filter((l) => l && !l.startsWith('#')).join('\n'));
  }
}

const stopAll = async () => { for (const c of children) await stopChild(c, 500); teardown(); };
process.on('SIGINT', () => { stopAll().finally(() => process.exit(130)); });
main().then(stopAll, async (e) => { await stopAll(); console.error(`bench/taps.mjs: ${e.message}`); process.exit(1); });
