/*
 * bench/cable.mjs - the "cable" scenario group of bench/switch.mjs (`--only=cable`): Debian's
 * cables against ours between two switches of the SAME kind (two of our switches for every
 * row, so only the cable differs), in the same run, repetitions interleaved Debian/ours.
 *
 * Two cable kinds, each measured for both sides:
 *   pipe: Debian `dpipe vde_plug SW1 = vde_plug SW2` vs `dpipe node bin/vde_plug SW1 = node bin/vde_plug SW2`
 *         (Debian's /usr/bin/dpipe in both rows);
 *   tcp:  Debian `dpipe vde_plug SW1 = socat - TCP:127.0.0.1:P` against
 *         `socat TCP-LISTEN:P EXEC:"vde_plug SW2"` vs our `vde_plug SW1 stream://tcp:127.0.0.1:P[server/framing=2]`
 *         + `vde_plug SW2 stream://tcp:127.0.0.1:P[framing=2]` (no helper process).
 * Rows: frames/s at 64 and 1500 B (bench/.build/vdeload thru, sender on SW1, receiver on SW2
 * via --sock2), raw-frame ping-pong RTT across the cable (vdeload pingpong), TCP Gbit/s
 * (iperf3) and ICMP ping RTT between two namespaces whose taps sit on the two switches
 * (Debian `vde_plug vde://DIR tap://TAP`). Every process is started through the harness's
 * track() and stopped by PID; the namespaces and taps are deleted. Nothing is pinned.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianTool, oursArgv } from './reference.mjs';

// ---------------------------------------------------------------------------
// constants (unit in the name)

const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUR_PLUG_ARGV = oursArgv('vde_plug'); // this checkout's bin/vde_plug, never one on PATH
const DEBIAN_DPIPE = '/usr/bin/dpipe';      // Debian's (vdeplug4) dpipe, for both rows (checked by debianTool)
const DEBIAN_PLUG = '/usr/bin/vde_plug';    // Debian's (vdeplug4) vde_plug (checked by debianTool)

const CABLE_FPS_DURATION_MS = 1000;         // one frames/s repetition
const CABLE_FRAME_SMALL_BYTES = 64;
const CABLE_FRAME_LARGE_BYTES = 1500;
const CABLE_PROBE_ROUNDS = 10;              // readiness probe: ping-pong rounds after vdeload's warm-up
const CABLE_PROBE_DURATION_MS = 8000;       // the cable must carry frames within this time
const CABLE_PINGPONG_ROUNDS = 2000;
const CABLE_PINGPONG_DURATION_MS = 3000;
const CABLE_LISTEN_TIMEOUT_MS = 10000;      // a TCP listener must appear within this time
const CABLE_STOP_GRACE_MS = 1000;
const CABLE_POLL_INTERVAL_MS = 20;
const VDELOAD_MARGIN_MS = 20000;            // vdeload is killed this long after its duration
const CABLE_TCP_PORT_DEBIAN = 5302;         // loopback TCP cable ports (127.0.0.1 only)
const CABLE_TCP_PORT_OURS = 5303;

const CABLE_NS_A = 'vdebench-ca';
const CABLE_NS_B = 'vdebench-cb';
const CABLE_TAP_A = 'vdbctapa';
const CABLE_TAP_B = 'vdbctapb';
const CABLE_ADDR_A = '192.0.2.1';           // RFC 5737 documentation range only
const CABLE_ADDR_B = '192.0.2.2';
const CABLE_PREFIX_BITS = 24;
const CABLE_IPERF_PORT = 5202;
const CABLE_IPERF_DURATION_S = 5;
const CABLE_IPERF_START_DELAY_MS = 400;
const CABLE_PING_COUNT = 50;
const CABLE_PING_INTERVAL_S = 0.02;
const CABLE_TAP_SETTLE_MS = 400;

const TARGET_CABLE_RATIO = 2.0;             // ours/Debian, frames/s and TCP Gbit/s

export const CABLE_KINDS = [
  { kind: 'pipe', title: 'local cable (dpipe, pipes)' },
  { kind: 'tcp', title: 'loopback TCP cable' },
];
const SIDES = ['debian', 'ours'];

// ---------------------------------------------------------------------------
// rows and report

const fmtFps = (v) => (Number.isFinite(v) ? (v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : `${(v / 1e3).toFixed(1)} k`) : 'n/a');
const fmtNum = (d) => (v) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');

function rowsOf(kind, title) {
  const ratio = { min: TARGET_CABLE_RATIO, text: `ours/Debian ≥ ${TARGET_CABLE_RATIO}` };
  return [
    { key: `cable_${kind}_fps64`, what: `${title}: frames 64 B, SW1 → SW2`, unit: 'frames/s', fmt: fmtFps, target: ratio },
    { key: `cable_${kind}_fps1500`, what: `${title}: frames 1500 B, SW1 → SW2`, unit: 'frames/s', fmt: fmtFps, target: ratio },
    { key: `cable_${kind}_eff64`, what: `${title}: 64 B frames per cable CPU-second (capacity; the rest of the chain saturates first)`, unit: 'frames/CPU-s', fmt: fmtFps },
    { key: `cable_${kind}_eff1500`, what: `${title}: 1500 B frames per cable CPU-second`, unit: 'frames/CPU-s', fmt: fmtFps },
    { key: `cable_${kind}_rtt`, what: `${title}: raw-frame ping-pong RTT p50 (vdeload, 2 cable passes)`, unit: 'µs', fmt: fmtNum(1) },
    { key: `cable_${kind}_gbps`, what: `${title}: TCP iperf3 ${CABLE_IPERF_DURATION_S} s, netns↔netns`, unit: 'Gbit/s', fmt: fmtNum(2), target: ratio },
    { key: `cable_${kind}_ping`, what: `${title}: ICMP ping RTT p50, netns↔netns`, unit: 'µs', fmt: fmtNum(0) },
  ];
}

export const CABLE_ROWS = CABLE_KINDS.flatMap(({ kind, title }) => rowsOf(kind, title));

function cell(row, r) {
  if (!r) return 'not run';
  if (r.error) return `n/a (${String(r.error).replace(/\|/g, '/')})`;
  let s = row.fmt(r.value);
  if (r.extra) s += ` [${r.extra}]`;
  return s;
}

/** The cable table (markdown lines), or [] when the cable group did not run. */
export function cableTable(results, oursCmd) {
  if (!CABLE_ROWS.some((r) => results[r.key])) return [];
  const lines = [
    `Cable rows: **both switches are ours in both columns** (\`${oursCmd}\`), only the cable differs.`,
    `Debian cable: \`dpipe vde_plug SW1 = vde_plug SW2\` (vdeplug4, ${DEBIAN_PLUG}); ours: \`dpipe node bin/vde_plug SW1 = node bin/vde_plug SW2\` (Debian's ${DEBIAN_DPIPE} in both).`,
    'Loopback TCP: Debian `dpipe vde_plug SW1 = socat - TCP:127.0.0.1:P` + `socat TCP-LISTEN:P,bind=127.0.0.1 EXEC:"vde_plug SW2"`; ours `vde_plug SW1 stream://tcp:127.0.0.1:P[server/framing=2]` + `vde_plug SW2 stream://tcp:127.0.0.1:P[framing=2]`.',
    `Frames/s: vdeload sender on SW1, receiver on SW2, unpaced, not pinned, vdeload sleeping in ppoll; "cable CPU" = utime+stime of all cable processes / run time; "lost" = frames sent but not delivered.`,
    'The two switches, the cable, the load generator (and in the TCP rows the tap plugs and iperf3) share the CPUs, and every unix datagram socket holds few frames (net.unix.max_dgram_qlen), so frames/s and Gbit/s are bounded by the whole chain; "frames per cable CPU-second" (frames/s ÷ cable CPU) is what the cable itself costs.',
    '',
    '| # | cable scenario (switches: ours ↔ ours) | unit | Debian cable | ours | ours/Debian | target | result |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const row of CABLE_ROWS) {
    const res = results[row.key];
    if (!res) continue;
    const d = res.debian, o = res.ours;
    const ok = (x) => x && !x.error && Number.isFinite(x.value);
    const ratio = ok(d) && ok(o) && d.value ? `${(o.value / d.value).toFixed(2)}x` : 'n/a';
    let tgt = '', verdict = '';
    if (row.target) {
      tgt = row.target.text;
      verdict = ok(d) && ok(o) && d.value ? (o.value / d.value >= row.target.min ? 'PASS' : 'FAIL') : 'n/a';
    }
    lines.push(`| 9 | ${row.what} | ${row.unit} | ${cell(row, d)} | ${cell(row, o)} | ${ratio} | ${tgt} | ${verdict} |`);
  }
  return lines;
}

// ---------------------------------------------------------------------------
// helpers

/** True when a socket listens on TCP port `port` (from /proc/net/tcp{,6}). */
export function listening(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length > 3 && c[1].endsWith(`:${hex}`) && c[3] === '0A') return true;
    }
  }
  return false;
}

/** Starts argv (tracked by the harness, so Ctrl-C kills it by PID); keeps the stderr tail. */
export function startProc(ctx, argv, name) {
  const p = ctx.track(spawn(argv[0], argv.slice(1), { cwd: REPO_DIR, stdio: ['ignore', 'ignore', 'pipe'] }), name);
  const h = { p, name, err: '', exited: false };
  p.stderr.on('data', (d) => { h.err = (h.err + d).slice(-1000); });
  p.on('error', (e) => { h.err += e.message; h.exited = true; });
  p.on('exit', () => { h.exited = true; });
  return h;
}

/** Polls fn until it is true or timeoutMs passes; resolves whether it became true. */
export async function waitUntil(ctx, fn, timeoutMs) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await fn()) return true;
    await ctx.sleep(CABLE_POLL_INTERVAL_MS);
  }
  return false;
}

/** Stops a process tree: the root by PID, then whatever of its descendants is left, by PID. */
export async function stopTree(ctx, h) {
  if (!h?.p?.pid) return;
  const kids = ctx.descendants(h.p.pid);
  await ctx.killPid(h.p.pid, CABLE_STOP_GRACE_MS);
  for (const k of kids) if (ctx.alive(k)) await ctx.killPid(k, CABLE_STOP_GRACE_MS);
}

/** Runs vdeload to completion (unpinned, sleeping in ppoll); resolves to its JSON result. */
function vdeload(ctx, mode, args, durationMs) {
  return new Promise((resolve) => {
    const p = ctx.track(spawn(ctx.vdeloadBin, [mode, ...args, '--wait', 'poll'], { stdio: ['ignore', 'pipe', 'pipe'] }), `vdeload ${mode}`);
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err = (err + d).slice(-1000); });
    const timer = setTimeout(() => { ctx.killPid(p.pid, 200); }, durationMs + VDELOAD_MARGIN_MS);
    p.on('error', (e) => { clearTimeout(timer); resolve({ ok: false, error: e.message }); });
    p.on('close', (code, sig) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (line) { try { return resolve(JSON.parse(line)); } catch { /* below */ } }
      resolve({ ok: false, error: `vdeload ${mode} ended (${sig || code}) without result: ${ctx.tail(err, 150)}` });
    });
  });
}

// ---------------------------------------------------------------------------
// cables

/** Lays one cable between sw1 and sw2; resolves {procs} or {error}. */
async function layCable(ctx, kind, side, sw1, sw2) {
  if (kind === 'pipe') {
    const argv = side === 'debian'
      ? [DEBIAN_DPIPE, DEBIAN_PLUG, sw1.dir, '=', DEBIAN_PLUG, sw2.dir]
      : [DEBIAN_DPIPE, ...OUR_PLUG_ARGV, sw1.dir, '=', ...OUR_PLUG_ARGV, sw2.dir];
    return { procs: [startProc(ctx, argv, `${side} pipe cable`)] };
  }
  const port = side === 'debian' ? CABLE_TCP_PORT_DEBIAN : CABLE_TCP_PORT_OURS;
  if (!(await waitUntil(ctx, () => !listening(port), CABLE_LISTEN_TIMEOUT_MS))) return { error: `TCP port ${port} is in use` };
  const first = side === 'debian'
    ? startProc(ctx, [ctx.socat, `TCP-LISTEN:${port},reuseaddr,bind=127.0.0.1`, `EXEC:${DEBIAN_PLUG} ${sw2.dir}`], 'socat listener')
    : startProc(ctx, [...OUR_PLUG_ARGV, sw1.dir, `stream://tcp:127.0.0.1:${port}[server/framing=2]`], 'our stream server plug');
  if (!(await waitUntil(ctx, () => first.exited || listening(port), CABLE_LISTEN_TIMEOUT_MS)) || first.exited) {
    await stopTree(ctx, first);
    return { error: `${first.name} did not listen: ${ctx.tail(first.err, 120) || 'no output'}` };
  }
  const second = side === 'debian'
    ? startProc(ctx, [DEBIAN_DPIPE, DEBIAN_PLUG, sw1.dir, '=', ctx.socat, '-', `TCP:127.0.0.1:${port}`], 'dpipe socat cable')
    : startProc(ctx, [...OUR_PLUG_ARGV, sw2.dir, `stream://tcp:127.0.0.1:${port}[framing=2]`], 'our stream client plug');
  return { procs: [first, second] };
}

async function unplug(ctx, cable) {
  for (const h of cable?.procs ?? []) await stopTree(ctx, h);
}

/** CPU ticks used so far by the cable's processes and their descendants. */
function cableTicks(ctx, cable) {
  return cable.procs.reduce((s, h) => s + (h.p.pid && !h.exited ? ctx.cpuTicks(h.p.pid) : 0), 0);
}

function deadCable(ctx, cable) {
  const dead = cable.procs.find((h) => h.exited);
  return dead ? `${dead.name} exited: ${ctx.tail(dead.err, 120) || 'no output'}` : null;
}

/** frames/s of one vdeload thru run across the cable, with the cable's CPU use. */
async function measureFps(ctx, cable, sw1, sw2, bytes) {
  const t0 = cableTicks(ctx, cable);
  const r = await vdeload(ctx, 'thru', ['--sock', sw1.dir, '--sock2', sw2.dir, '--bytes', String(bytes), '--pairs', '1',
    '--duration-ms', String(CABLE_FPS_DURATION_MS)], CABLE_FPS_DURATION_MS);
  const dt = cableTicks(ctx, cable) - t0;
  const dead = deadCable(ctx, cable);
  if (dead) return { ok: false, error: dead };
  if (!r.ok) return r;
  r.cableCpuPct = (100 * dt) / ctx.clkTck() / Math.max(r.elapsed_s, 1e-9);
  r.lostPct = r.sent ? (100 * Math.max(0, r.sent - r.delivered)) / r.sent : NaN;
  return r;
}

/** Median frames/s of the repetitions, and the median frames per cable CPU-second. */
function reduceFps(ctx, list) {
  const good = list.filter((r) => r?.ok);
  if (!good.length) {
    const error = list.find((r) => r?.error)?.error || 'no result';
    return { fps: { error }, eff: { error } };
  }
  const value = ctx.median(good.map((r) => r.fps));
  const cpu = ctx.median(good.map((r) => r.cableCpuPct));
  const lost = ctx.median(good.map((r) => r.lostPct));
  const eff = ctx.median(good.filter((r) => r.cableCpuPct > 0).map((r) => r.fps / (r.cableCpuPct / 100)));
  return {
    fps: { value, extra: `cable CPU ${cpu.toFixed(0)}%, lost ${lost.toFixed(1)}%, ${good.length} runs` },
    eff: Number.isFinite(eff) ? { value: eff } : { error: 'no CPU figure' },
  };
}

// ---------------------------------------------------------------------------
// namespaces on the two switches

function ipq(ctx, ...args) { return ctx.run('ip', args, { quiet: true }); }

function nsTeardown(ctx) {
  for (const ns of [CABLE_NS_A, CABLE_NS_B]) ipq(ctx, 'netns', 'del', ns);
  for (const l of [CABLE_TAP_A, CABLE_TAP_B]) ipq(ctx, 'link', 'del', l);
}

/** Two namespaces, each on its own switch through a Debian tap plug; resolves {plugs} or {error}. */
async function nsSetup(ctx, sw1, sw2) {
  nsTeardown(ctx);
  const plugs = [];
  for (const ns of [CABLE_NS_A, CABLE_NS_B]) {
    const r = ctx.run('ip', ['netns', 'add', ns]);
    if (!r.ok) return { plugs, error: `ip netns add: ${r.err}` };
  }
  for (const [tap, sw] of [[CABLE_TAP_A, sw1], [CABLE_TAP_B, sw2]]) {
    const r = ctx.run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    if (!r.ok) return { plugs, error: `ip tuntap add: ${r.err}` };
    plugs.push(startProc(ctx, [DEBIAN_PLUG, `vde://${sw.dir}`, `tap://${tap}`], `vde_plug ${tap}`));
  }
  await ctx.sleep(CABLE_TAP_SETTLE_MS);
  for (const h of plugs) if (h.exited) return { plugs, error: `vde_plug tap:// exited: ${ctx.tail(h.err, 120)}` };
  for (const [tap, ns, addr] of [[CABLE_TAP_A, CABLE_NS_A, CABLE_ADDR_A], [CABLE_TAP_B, CABLE_NS_B, CABLE_ADDR_B]]) {
    const steps = [
      ['link', 'set', tap, 'netns', ns],
      ['-n', ns, 'link', 'set', 'lo', 'up'],
      ['-n', ns, 'addr', 'add', `${addr}/${CABLE_PREFIX_BITS}`, 'dev', tap],
      ['-n', ns, 'link', 'set', tap, 'up'],
    ];
    for (const s of steps) {
      const r = ctx.run('ip', s);
      if (!r.ok) return { plugs, error: `ip ${s.join(' ')}: ${r.err}` };
    }
  }
  return { plugs };
}

/** ping RTT p50 and iperf3 Gbit/s from namespace A to B (across the cable), with the cable's CPU during iperf3. */
async function nsMeasure(ctx, cable) {
  const warm = await ctx.runAsync('ip', ['netns', 'exec', CABLE_NS_A, 'ping', '-c', '3', '-W', '2', '-i', '0.2', CABLE_ADDR_B]);
  if (!warm.ok) return { error: `no connectivity (ping: ${ctx.tail(warm.out + warm.err, 120)})` };
  const p = await ctx.runAsync('ip', ['netns', 'exec', CABLE_NS_A, 'ping', '-c', String(CABLE_PING_COUNT), '-i', String(CABLE_PING_INTERVAL_S), CABLE_ADDR_B]);
  const times = [...p.out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  const srv = startProc(ctx, ['ip', 'netns', 'exec', CABLE_NS_B, 'iperf3', '-s', '-1', '-p', String(CABLE_IPERF_PORT)], 'iperf3 server');
  await ctx.sleep(CABLE_IPERF_START_DELAY_MS);
  let gbps = NaN, retrans = NaN, iperfErr = null;
  const t0 = cableTicks(ctx, cable);
  const w0 = Date.now();
  const c = await ctx.runAsync('ip', ['netns', 'exec', CABLE_NS_A, 'iperf3', '-c', CABLE_ADDR_B, '-p', String(CABLE_IPERF_PORT),
    '-t', String(CABLE_IPERF_DURATION_S), '-J'], { timeoutMs: (CABLE_IPERF_DURATION_S + 20) * 1000 });
  const cpuPct = (100 * (cableTicks(ctx, cable) - t0)) / ctx.clkTck() / Math.max((Date.now() - w0) / 1000, 1e-9);
  try {
    const j = JSON.parse(c.out);
    if (j.error) iperfErr = j.error;
    gbps = j.end.sum_received.bits_per_second / 1e9;
    retrans = j.end.sum_sent.retransmits;
  } catch {
    iperfErr ??= `iperf3 failed: ${ctx.tail(c.err || srv.err, 150)}`;
  }
  await stopTree(ctx, srv);
  return { pingUs: ctx.median(times), pingN: times.length, gbps, retrans, iperfErr, cpuPct };
}

// ---------------------------------------------------------------------------
// the scenario

/**
 * Runs the cable group. ctx is provided by bench/switch.mjs: track, killPid, alive, descendants,
 * cpuTicks, clkTck(), run, runAsync, sleep, median, tail, log, which, setResult, cleanupTasks,
 * notes, makeSwitch(name), vdeloadBin (null if it could not be built), vdeloadErr, reps,
 * stopping() (true once Ctrl-C started the harness's cleanup: start nothing new).
 */
export async function scenarioCable(ctx) {
  const keysOf = (kind) => rowsOf(kind, '').map((r) => r.key);
  const failAll = (keys, why) => { for (const k of keys) for (const s of SIDES) ctx.setResult(k, s, { error: why }); };
  // Debian's binaries, not whatever a global install put at these paths (throws with the fix)
  debianTool('dpipe');
  debianTool('vde_plug');
  ctx.socat = ctx.which('socat');
  const netMissing = ['ip', 'iperf3', 'ping'].filter((b) => !ctx.which(b));
  const netWhy = netMissing.length ? `missing ${netMissing.join(', ')}`
    : process.getuid?.() !== 0 ? 'needs root' : !fs.existsSync('/dev/net/tun') ? 'no /dev/net/tun' : null;
  ctx.cleanupTasks.push(() => nsTeardown(ctx));

  for (const { kind, title } of CABLE_KINDS) {
    if (ctx.stopping()) return;
    const keys = keysOf(kind);
    if (kind === 'tcp' && !ctx.socat) { failAll(keys, 'socat missing (Debian package socat)'); continue; }
    const sw1 = ctx.makeSwitch(`cable-${kind}-1`);
    const sw2 = ctx.makeSwitch(`cable-${kind}-2`);
    const s1 = await sw1.start();
    const s2 = s1.ok ? await sw2.start() : s1;
    if (!s1.ok || !s2.ok) {
      failAll(keys, `our switch did not start: ${ctx.tail(s1.reason || s2.reason, 120)}`);
      await sw1.stop();
      await sw2.stop();
      continue;
    }
    let ns = { plugs: [] };
    try {
      if (netWhy) ns.error = netWhy;
      else if (!ctx.stopping()) ns = await nsSetup(ctx, sw1, sw2);
      const fps = Object.fromEntries([CABLE_FRAME_SMALL_BYTES, CABLE_FRAME_LARGE_BYTES].map((b) => [b, new Map(SIDES.map((s) => [s, []]))]));
      for (let rep = 0; rep < ctx.reps && !ctx.stopping(); rep++) {
        for (const side of SIDES) {
          if (ctx.stopping()) break;
          ctx.log(`cable: ${title}, ${side} cable, repetition ${rep + 1}/${ctx.reps}`);
          const cable = await layCable(ctx, kind, side, sw1, sw2);
          try {
            if (cable.error) {
              for (const b of [CABLE_FRAME_SMALL_BYTES, CABLE_FRAME_LARGE_BYTES]) fps[b].get(side).push({ ok: false, error: cable.error });
              if (rep === 0) for (const k of ['rtt', 'gbps', 'ping']) ctx.setResult(`cable_${kind}_${k}`, side, { error: cable.error });
              continue;
            }
            // readiness: a few raw-frame round trips must cross the cable
            if (ctx.vdeloadBin) {
              const probe = await vdeload(ctx, 'pingpong', ['--sock', sw1.dir, '--sock2', sw2.dir, '--rounds', String(CABLE_PROBE_ROUNDS),
                '--duration-ms', String(CABLE_PROBE_DURATION_MS)], CABLE_PROBE_DURATION_MS);
              const dead = deadCable(ctx, cable);
              if (!probe.ok || dead) {
                const why = `cable carries no frames: ${dead || probe.error}`;
                for (const b of [CABLE_FRAME_SMALL_BYTES, CABLE_FRAME_LARGE_BYTES]) fps[b].get(side).push({ ok: false, error: why });
                if (rep === 0) for (const k of ['rtt', 'gbps', 'ping']) ctx.setResult(`cable_${kind}_${k}`, side, { error: why });
                continue;
              }
              for (const b of [CABLE_FRAME_SMALL_BYTES, CABLE_FRAME_LARGE_BYTES]) fps[b].get(side).push(await measureFps(ctx, cable, sw1, sw2, b));
            } else {
              for (const b of [CABLE_FRAME_SMALL_BYTES, CABLE_FRAME_LARGE_BYTES]) fps[b].get(side).push({ ok: false, error: ctx.vdeloadErr });
            }
            if (rep !== 0) continue;
            // once per side: raw-frame round trips, then the namespaces
            if (ctx.vdeloadBin) {
              const pp = await vdeload(ctx, 'pingpong', ['--sock', sw1.dir, '--sock2', sw2.dir, '--rounds', String(CABLE_PINGPONG_ROUNDS),
                '--bytes', String(CABLE_FRAME_SMALL_BYTES), '--duration-ms', String(CABLE_PINGPONG_DURATION_MS)], CABLE_PINGPONG_DURATION_MS);
              ctx.setResult(`cable_${kind}_rtt`, side, pp.ok ? { value: pp.rtt_us_p50, extra: `p99 ${pp.rtt_us_p99.toFixed(0)} µs, ${pp.rounds} rounds` } : { error: pp.error });
            } else {
              ctx.setResult(`cable_${kind}_rtt`, side, { error: ctx.vdeloadErr });
            }
            if (ns.error) {
              ctx.setResult(`cable_${kind}_gbps`, side, { error: ns.error });
              ctx.setResult(`cable_${kind}_ping`, side, { error: ns.error });
            } else {
              ctx.log(`cable: ${title}, ${side} cable: ping and iperf3 between the namespaces`);
              const r = await nsMeasure(ctx, cable);
              const dead = deadCable(ctx, cable);
              if (r.error || dead) {
                ctx.setResult(`cable_${kind}_gbps`, side, { error: r.error || dead });
                ctx.setResult(`cable_${kind}_ping`, side, { error: r.error || dead });
              } else {
                ctx.setResult(`cable_${kind}_gbps`, side, r.iperfErr ? { error: r.iperfErr } : { value: r.gbps, extra: `cable CPU ${r.cpuPct.toFixed(0)}%, ${r.retrans} retransmits` });
                ctx.setResult(`cable_${kind}_ping`, side, Number.isFinite(r.pingUs) ? { value: r.pingUs, extra: `${r.pingN} pings` } : { error: 'no ping replies' });
              }
            }
          } finally {
            await unplug(ctx, cable);
          }
        }
      }
      for (const side of SIDES) {
        for (const b of [CABLE_FRAME_SMALL_BYTES, CABLE_FRAME_LARGE_BYTES]) {
          const r = reduceFps(ctx, fps[b].get(side));
          ctx.setResult(`cable_${kind}_fps${b}`, side, r.fps);
          ctx.setResult(`cable_${kind}_eff${b}`, side, r.eff);
        }
      }
    } finally {
      for (const h of ns.plugs ?? []) await stopTree(ctx, h);
      nsTeardown(ctx);
      await sw1.stop();
      await sw2.stop();
    }
  }
}
