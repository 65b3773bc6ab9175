/*
 * bench/secure.mjs - issue 11's measurements, all in one run on this machine:
 *
 * 1. Cables between two of our switches (the same switches and taps in every row, only the cable
 *    differs), TCP iperf3 between two namespaces whose taps the switches opened themselves (with
 *    offloads, so the cable, carrying 1500-byte frames, is what limits the rows):
 *      plain UDP   vde_plug SW udp://A->B on both ends
 *      crypt UDP   vde_plug SW 'crypt://KEY{udp://A->B}'
 *      plain TCP   vde_plug SW 'stream://tcp:127.0.0.1:P[server/framing=2]' and the client end
 *      crypt TCP   the same inside crypt://KEY{...}
 *      ssh         Debian's dpipe: vde_plug SW1 = ssh root@127.0.0.1 vde_plug SW2 (a private sshd
 *                  on loopback with throw-away keys, OpenSSH's default cipher)
 *    Targets: crypt ≥ 2x the ssh cable and ≥ 70 % of the plain cable of the same transport.
 * 2. Policing, two iperf3 flows into one namespace through one switch: a UDP flood offered at
 *    1 Gbit/s from A and a TCP flow from B to C, without and with `port/police A 100m`; what C
 *    receives of each. Target: the flood gets at most its rate, the TCP flow keeps its share.
 * 3. The EVPN hop: TCP between two "VMs" behind our switches on two hosts joined by VXLAN, (a) the
 *    way FRR/EVPN deployments run it (switch -> tap -> kernel bridge -> kernel VXLAN device with
 *    static flood entries, the data path FRR programs) and (b) with our own unicast vxlan://
 *    endpoint on the switch (what syncing the switch's MAC table with the kernel FDB over
 *    netlink would allow). Decides whether that sync is worth its complexity.
 *
 * Repetitions are interleaved (every variant once per round), medians reported. Processes are
 * stopped by PID, namespaces deleted, temp files removed, also on Ctrl-C. Results go to stdout
 * and bench/results/secure.md with a description of the machine.
 * Usage: node bench/secure.mjs [--reps=N] [--only=cables,police,evpn] [--no-write]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { debianTool, oursArgv, REPO_DIR } from './reference.mjs';

// ---------------------------------------------------------------------------
// constants (unit in the name)

const REPS = Number((process.argv.find((a) => a.startsWith('--reps=')) ?? '--reps=5').slice(7));
const ONLY = (process.argv.find((a) => a.startsWith('--only=')) ?? '--only=cables,police,evpn').slice(7).split(',');
const WRITE = !process.argv.includes('--no-write');
const IPERF_SECONDS = 5;
const IPERF_PORT = 5311;
const SETTLE_MS = 400;
const START_TIMEOUT_MS = 15000;
const CABLE_UP_TIMEOUT_MS = 20000;
const STOP_GRACE_MS = 1500;
const PORT_BASE = 21000 + (process.pid % 2000) * 4;  // loopback TCP/UDP ports, below the ephemeral range
const SSH_PORT = PORT_BASE;
const STREAM_PORT = PORT_BASE + 1;
const UDP_PORT_A = PORT_BASE + 2;
const UDP_PORT_B = PORT_BASE + 3;
const NS_PREFIX = `vdsec${process.pid % 10000}`;
const ADDR = { A: '192.0.2.1', B: '192.0.2.2', C: '192.0.2.3' };
const POLICE_RATE = '100m';
const POLICE_RATE_MBIT = 100;
const FLOOD_OFFERED = '1G';
const TARGET_VS_SSH = 2.0;
const TARGET_VS_PLAIN = 0.7;
const CLOCK_TICKS_PER_SECOND = 100;  // /proc/PID/stat utime/stime unit (USER_HZ)
const PLUG = oursArgv('vde_plug');
const SWITCH = oursArgv('vde_switch');

// ---------------------------------------------------------------------------
// process and namespace bookkeeping

const procs = new Set();
const namespaces = new Set();
const tmpDirs = new Set();

function log(msg) {
  process.stderr.write(`secure: ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 60000 });
  if (opts.check !== false && r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message || r.status}`);
  return r;
}

/** Starts argv in a process group of its own (so it and what it starts, dpipe's children, stop together). */
function start(argv, name, opts = {}) {
  // dpipe makes a process group of its own (and fails as a session leader): it is not detached
  const p = spawn(argv[0], argv.slice(1), { cwd: REPO_DIR, stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'], detached: opts.detached ?? true });
  const h = { p, name, out: '', exited: false };
  p.stdout.on('data', (d) => { h.out = (h.out + d).slice(-200000); });
  p.stderr.on('data', (d) => { h.out = (h.out + d).slice(-200000); });
  p.on('exit', () => { h.exited = true; procs.delete(h); });
  p.on('error', (e) => { h.out += e.message; h.exited = true; });
  procs.add(h);
  return h;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** True while any process of the group led by pgid is alive. */
function groupAlive(pgid) {
  try { process.kill(-pgid, 0); return true; } catch { return false; }
}

/** Stops a process we started and its group (by the group id, which is its PID): SIGTERM, then SIGKILL. */
async function stop(h) {
  const pid = h?.p?.pid;
  if (!pid || !groupAlive(pid)) return;
  try { process.kill(-pid, 'SIGTERM'); } catch { return; }
  const until = Date.now() + STOP_GRACE_MS;
  while (Date.now() < until && groupAlive(pid)) await sleep(20);
  if (groupAlive(pid)) try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
}

function netns(name) {
  const ns = `${NS_PREFIX}${name}`;
  run('ip', ['netns', 'add', ns]);
  namespaces.add(ns);
  run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

function delNetns(ns) {
  const pids = run('ip', ['netns', 'pids', ns], { check: false }).stdout.split(/\s+/).filter(Boolean).map(Number);
  for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  run('ip', ['netns', 'del', ns], { check: false });
  namespaces.delete(ns);
}

async function cleanupAll() {
  for (const h of [...procs]) await stop(h);
  for (const ns of [...namespaces]) delNetns(ns);
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { void cleanupAll().then(() => process.exit(130)); });

function tmp(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}

async function waitUntil(fn, ms, what) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await fn()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

// ---------------------------------------------------------------------------
// building blocks

/** One of our switches in a fresh directory (with a management socket). */
async function ourSwitch(name, extra = []) {
  const dir = tmp(`vdsec-${name}-`);
  const h = start([...SWITCH, '-s', path.join(dir, 'sw'), '-M', path.join(dir, 'mgmt'), '--nostdin', '-n', '16', ...extra], `switch ${name}`);
  await waitUntil(() => h.exited || fs.existsSync(path.join(dir, 'sw', 'ctl')), START_TIMEOUT_MS, `switch ${name}`);
  if (h.exited) throw new Error(`switch ${name} exited: ${h.out}`);
  return { dir: path.join(dir, 'sw'), mgmt: path.join(dir, 'mgmt'), h };
}

function vdecmd(sw, command) {
  return run(process.execPath, [path.join(REPO_DIR, 'bin', 'vdecmd'), '-s', sw.mgmt, command], { check: false });
}

/** A namespace with a tap (addr/24) plugged into a switch port by our vde_plug. */
async function hostOn(sw, key, addr, port) {
  const ns = netns(key);
  const tap = `vst${key}`;
  run('ip', ['-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  run('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', tap]);
  run('ip', ['-n', ns, 'link', 'set', tap, 'up']);
  const plug = start(['ip', 'netns', 'exec', ns, ...PLUG, port ? `vde://${sw.dir}[${port}]` : sw.dir, `tap://${tap}`], `tap plug ${key}`);
  await waitUntil(() => /state UP|LOWER_UP/.test(run('ip', ['-n', ns, 'link', 'show', tap]).stdout) && !/NO-CARRIER/.test(run('ip', ['-n', ns, 'link', 'show', tap]).stdout), START_TIMEOUT_MS, `tap ${key} attached`);
  return { ns, plug };
}

/** A namespace holding a tap that the switch opened itself (-t, with offloads), moved in and given addr/24. */
async function hostOnSwitchTap(tap, key, addr) {
  const ns = netns(key);
  await waitUntil(() => run('ip', ['link', 'show', tap], { check: false }).status === 0, START_TIMEOUT_MS, `tap ${tap}`);
  run('ip', ['link', 'set', tap, 'netns', ns]);
  run('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', tap]);
  run('ip', ['-n', ns, 'link', 'set', tap, 'up']);
  return { ns, plug: null };
}

function pingOk(ns, addr) {
  return run('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', addr], { check: false }).status === 0;
}

/** TCP (or UDP with opts.udp) iperf3 from ns `from` to `to`; resolves with the receiver's Mbit/s. */
async function iperf(from, to, toAddr, port, opts = {}) {
  const srv = start(['ip', 'netns', 'exec', to, 'iperf3', '-s', '-1', '-p', String(port), '-J'], 'iperf3 server');
  await waitUntil(() => new RegExp(`:${port}\\b`).test(run('ip', ['netns', 'exec', to, 'ss', '-ltn']).stdout), 10000, 'iperf3 server');
  const args = ['netns', 'exec', from, 'iperf3', '-c', toAddr, '-p', String(port), '-t', String(opts.seconds ?? IPERF_SECONDS), '-J'];
  if (opts.udp) args.push('-u', '-b', opts.udp, '-l', '1400');
  const c = await new Promise((resolve) => {
    const p = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('exit', () => resolve(out));
  });
  await waitUntil(() => srv.exited, 20000, 'iperf3 server end');
  try {
    if (opts.udp) {
      const j = JSON.parse(srv.out.slice(srv.out.indexOf('{')));
      return j.end.sum_received.bits_per_second / 1e6;
    }
    const j = JSON.parse(c);
    if (j.error) throw new Error(j.error);
    return j.end.sum_received.bits_per_second / 1e6;
  } catch (e) {
    log(`iperf3 ${from} -> ${toAddr}: ${e.message} ${c.slice(0, 200)}`);
    return NaN;
  }
}

// ---------------------------------------------------------------------------
// 1. cables

async function startSshd(dir) {
  const host = path.join(dir, 'host_ed25519');
  const client = path.join(dir, 'client_ed25519');
  for (const k of [host, client]) run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', k]);
  fs.copyFileSync(`${client}.pub`, path.join(dir, 'authorized_keys'));
  const cfg = path.join(dir, 'sshd_config');
  fs.writeFileSync(cfg, [`Port ${SSH_PORT}`, 'ListenAddress 127.0.0.1', `HostKey ${host}`, 'PermitRootLogin prohibit-password',
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`, 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'PrintMotd no', `PidFile ${path.join(dir, 'sshd.pid')}`, ''].join('\n'));
  if (!fs.existsSync('/run/sshd')) fs.mkdirSync('/run/sshd', { mode: 0o755 });
  const sshd = start([run('sh', ['-c', 'command -v sshd || echo /usr/sbin/sshd']).stdout.trim(), '-D', '-e', '-f', cfg], 'sshd');
  const argv = ['ssh', '-F', '/dev/null', '-i', client, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-e', 'none', '-p', String(SSH_PORT), 'root@127.0.0.1'];
  await waitUntil(() => run(argv[0], [...argv.slice(1), 'true'], { check: false }).status === 0, 15000, 'sshd');
  return { sshd, argv };
}

function cableArgv(kind, sw1, sw2, key, ssh) {
  const udp = (a, b) => `udp://127.0.0.1:${a}->127.0.0.1:${b}`;
  const srv = `stream://tcp:127.0.0.1:${STREAM_PORT}[server/framing=2]`;
  const cli = `stream://tcp:127.0.0.1:${STREAM_PORT}[framing=2]`;
  switch (kind) {
    case 'plain-udp': return [[...PLUG, sw1.dir, udp(UDP_PORT_A, UDP_PORT_B)], [...PLUG, sw2.dir, udp(UDP_PORT_B, UDP_PORT_A)]];
    case 'crypt-udp': return [[...PLUG, sw1.dir, `crypt://${key}{${udp(UDP_PORT_A, UDP_PORT_B)}}`], [...PLUG, sw2.dir, `crypt://${key}{${udp(UDP_PORT_B, UDP_PORT_A)}}`]];
    case 'plain-tcp': return [[...PLUG, sw1.dir, srv], [...PLUG, sw2.dir, cli]];
    case 'crypt-tcp': return [[...PLUG, sw1.dir, `crypt://${key}{${srv}}`], [...PLUG, sw2.dir, `crypt://${key}{${cli}}`]];
    case 'ssh': return [[debianTool('dpipe').path, ...PLUG, sw1.dir, '=', ...ssh.argv, ...PLUG, sw2.dir]];
    default: throw new Error(kind);
  }
}

const CABLES = [
  { kind: 'plain-udp', title: 'plain UDP cable (udp://)' },
  { kind: 'crypt-udp', title: 'crypt:// over UDP' },
  { kind: 'plain-tcp', title: 'plain TCP cable (stream://tcp)' },
  { kind: 'crypt-tcp', title: 'crypt:// over TCP' },
  { kind: 'ssh', title: 'ssh cable (dpipe vde_plug = ssh vde_plug)' },
];

async function benchCables() {
  const dir = tmp('vdsec-keys-');
  const key = path.join(dir, 'cable.key');
  fs.writeFileSync(key, `1 ${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const ssh = await startSshd(dir);
  // the switches' own taps (offloads on): the namespaces' TCP reaches the switches in 64 KiB
  // segments, so the cable (1500-byte frames, segmented by the switch) is what limits the rows
  const sw1 = await ourSwitch('s1', ['-t', 'vdsectapa']);
  const sw2 = await ourSwitch('s2', ['-t', 'vdsectapb']);
  const a = await hostOnSwitchTap('vdsectapa', 'a', ADDR.A);
  const b = await hostOnSwitchTap('vdsectapb', 'b', ADDR.B);
  const res = Object.fromEntries(CABLES.map((c) => [c.kind, []]));
  const cpu = Object.fromEntries(CABLES.map((c) => [c.kind, []]));
  // the machine is shared: a ratio is taken within a round (its rows ran back to back), then the median of the rounds
  for (let rep = 0; rep < REPS; rep++) {
    for (const c of CABLES) {
      const hs = [];
      try {
        // the first end (a TCP server) listens before the second end connects
        for (const [i, argv] of cableArgv(c.kind, sw1, sw2, key, ssh).entries()) {
          hs.push(start(argv, `${c.kind} cable ${i}`, { detached: !argv[0].endsWith('dpipe') }));
          if (i === 0 && c.kind.endsWith('tcp')) await waitUntil(() => listening(STREAM_PORT), CABLE_UP_TIMEOUT_MS, 'the cable server');
        }
        await waitUntil(() => pingOk(a.ns, ADDR.B), CABLE_UP_TIMEOUT_MS, `${c.kind} cable up`);
        await sleep(SETTLE_MS);
        const roots = [...hs.map((h) => h.p.pid), ...(c.kind === 'ssh' ? [ssh.sshd.p.pid] : [])];
        const t0 = cpuTicks(roots);
        const mbit = await iperf(a.ns, b.ns, ADDR.B, IPERF_PORT);
        res[c.kind].push(mbit);
        cpu[c.kind].push((cpuTicks(roots) - t0) / CLOCK_TICKS_PER_SECOND / IPERF_SECONDS);
        log(`cables: ${c.kind} rep ${rep + 1}: ${mbit.toFixed(0)} Mbit/s, cable CPU ${(100 * cpu[c.kind].at(-1)).toFixed(0)} %`);
      } catch (e) {
        log(`cables: ${c.kind}: ${e.message} ${hs.map((h) => h.out.slice(-300)).join(' | ')}`);
        res[c.kind].push(NaN);
      } finally {
        for (const h of hs) await stop(h);
        await sleep(SETTLE_MS);
      }
    }
  }
  await stop(sw1.h);
  await stop(sw2.h);
  await stop(ssh.sshd);
  const out = Object.fromEntries(CABLES.map((c) => [c.kind, { mbit: median(res[c.kind]), all: res[c.kind], cpu: median(cpu[c.kind]) }]));
  const ratio = (a, b) => median(res[a].map((v, i) => v / res[b][i]));
  out.ratios = { udpVsSsh: ratio('crypt-udp', 'ssh'), udpVsPlain: ratio('crypt-udp', 'plain-udp'), tcpVsSsh: ratio('crypt-tcp', 'ssh'), tcpVsPlain: ratio('crypt-tcp', 'plain-tcp') };
  // what the cable costs: Mbit carried per CPU-second of its processes (load on the machine changes the rate, less this)
  const eff = (k) => res[k].map((v, i) => v / cpu[k][i]);
  for (const c of CABLES) out[c.kind].eff = median(eff(c.kind));
  const effRatio = (a, b) => median(eff(a).map((v, i) => v / eff(b)[i]));
  out.effRatios = { udpVsSsh: effRatio('crypt-udp', 'ssh'), udpVsPlain: effRatio('crypt-udp', 'plain-udp'), tcpVsSsh: effRatio('crypt-tcp', 'ssh'), tcpVsPlain: effRatio('crypt-tcp', 'plain-tcp') };
  return out;
}

/** True when something listens on TCP port `port` of this namespace. */
function listening(port) {
  return new RegExp(`:${port}\\b`).test(run('ss', ['-ltn']).stdout);
}

/** pid and every process below it (from /proc/PID/task/TID/children). */
function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks = [];
    try { tasks = fs.readdirSync(`/proc/${out[i]}/task`); } catch { continue; }
    for (const t of tasks) {
      try {
        out.push(...fs.readFileSync(`/proc/${out[i]}/task/${t}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
      } catch { /* gone */ }
    }
  }
  return out;
}

/** CPU ticks (user+system) of the processes below the given roots (a cable's processes; for ssh, sshd's side too). */
function cpuTicks(roots) {
  let t = 0;
  for (const root of roots) for (const pid of processTree(root)) {
    try {
      const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      t += Number(f[11]) + Number(f[12]);
    } catch { /* gone */ }
  }
  return t;
}

// ---------------------------------------------------------------------------
// 2. policing

async function benchPolice() {
  const sw = await ourSwitch('p');
  const a = await hostOn(sw, 'pa', ADDR.A, 1);
  const b = await hostOn(sw, 'pb', ADDR.B, 2);
  const c = await hostOn(sw, 'pc', ADDR.C, 3);
  await waitUntil(() => pingOk(a.ns, ADDR.C) && pingOk(b.ns, ADDR.C), 10000, 'police hosts up');
  const out = { alone: [], offFlood: [], offTcp: [], onFlood: [], onTcp: [] };
  for (let rep = 0; rep < REPS; rep++) {
    out.alone.push(await iperf(b.ns, c.ns, ADDR.C, IPERF_PORT));
    for (const policed of [false, true]) {
      vdecmd(sw, policed ? `port/police 1 ${POLICE_RATE}` : 'port/police 1 off');
      const [f, t] = await Promise.all([
        iperf(a.ns, c.ns, ADDR.C, IPERF_PORT + 1, { udp: FLOOD_OFFERED }),
        iperf(b.ns, c.ns, ADDR.C, IPERF_PORT + 2),
      ]);
      (policed ? out.onFlood : out.offFlood).push(f);
      (policed ? out.onTcp : out.offTcp).push(t);
      log(`police: ${policed ? 'on' : 'off'} rep ${rep + 1}: flood ${f.toFixed(0)} Mbit/s, TCP ${t.toFixed(0)} Mbit/s`);
    }
    vdecmd(sw, 'port/police 1 off');
  }
  for (const h of [a.plug, b.plug, c.plug, sw.h]) await stop(h);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, median(v)]));
}

// ---------------------------------------------------------------------------
// 3. the EVPN hop: kernel bridge + VXLAN device, or our vxlan:// endpoint

async function benchEvpnHop() {
  const h = [netns('e1'), netns('e2')];
  run('ip', ['link', 'add', 'vdsecu1', 'netns', h[0], 'type', 'veth', 'peer', 'name', 'vdsecu2', 'netns', h[1]]);
  for (const [i, ifname] of [[0, 'vdsecu1'], [1, 'vdsecu2']]) {
    run('ip', ['-n', h[i], 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', ifname]);
    run('ip', ['-n', h[i], 'link', 'set', ifname, 'up']);
  }
  const res = { kernel: [], ours: [] };
  for (let rep = 0; rep < REPS; rep++) {
    for (const mode of ['kernel', 'ours']) {
      const hs = [];
      const vms = [];
      try {
        for (let i = 0; i < 2; i++) {
          const dir = path.join(tmp(`vdsec-e${i}-`), 'sw');
          if (mode === 'kernel') {
            // the data path FRR programs: the switch's tap in a bridge with a VXLAN device
            run('ip', ['-n', h[i], 'link', 'add', 'br100', 'type', 'bridge']);
            run('ip', ['-n', h[i], 'link', 'add', 'vx100', 'type', 'vxlan', 'id', '100', 'local', `10.77.0.${i + 1}`, 'dstport', '4789', 'nolearning']);
            run('bridge', ['-n', h[i], 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx100', 'dst', `10.77.0.${2 - i}`]);
            run('ip', ['-n', h[i], 'link', 'set', 'vx100', 'master', 'br100']);
            hs.push(start(['ip', 'netns', 'exec', h[i], ...SWITCH, '-s', dir, '--nostdin', '-t', 'vdsectap'], 'switch with a tap'));
            await waitUntil(() => run('ip', ['-n', h[i], 'link', 'show', 'vdsectap'], { check: false }).status === 0, START_TIMEOUT_MS, 'switch tap');
            run('ip', ['-n', h[i], 'link', 'set', 'vdsectap', 'master', 'br100']);
            for (const l of ['vdsectap', 'vx100', 'br100']) run('ip', ['-n', h[i], 'link', 'set', l, 'up']);
          } else {
            hs.push(start([...SWITCH, '-s', dir, '--nostdin'], 'switch'));
            await waitUntil(() => fs.existsSync(path.join(dir, 'ctl')), START_TIMEOUT_MS, 'switch');
            hs.push(start(['ip', 'netns', 'exec', h[i], ...PLUG, dir, `vxlan://10.77.0.${2 - i}/vni=100`], 'vxlan plug'));
          }
          await waitUntil(() => fs.existsSync(path.join(dir, 'ctl')), START_TIMEOUT_MS, 'switch');
          vms.push(await hostOn({ dir }, `v${i}${mode[0]}`, `192.168.77.${i + 1}`));
        }
        await waitUntil(() => pingOk(vms[0].ns, '192.168.77.2'), CABLE_UP_TIMEOUT_MS, `${mode} path up`);
        const mbit = await iperf(vms[0].ns, vms[1].ns, '192.168.77.2', IPERF_PORT);
        res[mode].push(mbit);
        log(`evpn hop: ${mode} rep ${rep + 1}: ${mbit.toFixed(0)} Mbit/s`);
      } finally {
        for (const v of vms) { await stop(v.plug); delNetns(v.ns); }
        for (const x of hs) await stop(x);
        for (let i = 0; i < 2; i++) for (const l of ['br100', 'vx100', 'vdsectap']) run('ip', ['-n', h[i], 'link', 'del', l], { check: false });
      }
    }
  }
  for (const ns of h) delNetns(ns);
  return { kernel: median(res.kernel), ours: median(res.ours) };
}

// ---------------------------------------------------------------------------
// report

function machine() {
  const cpu = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown CPU';
  const ssh = run('ssh', ['-V'], { check: false }).stderr.trim();
  return `${cpu}, ${os.cpus().length} vCPUs, Linux ${os.release()}, Node ${process.version}, OpenSSL ${process.versions.openssl}, ${ssh}`;
}

const fmt = (v) => (Number.isFinite(v) ? v.toFixed(0) : 'n/a');
const pct = (v) => (Number.isFinite(v) ? `${(100 * v).toFixed(0)} %` : 'n/a');
const x = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'n/a');

async function main() {
  for (const t of ['iperf3', 'ip', 'ping', 'ssh', 'ssh-keygen', 'bridge']) if (!run('sh', ['-c', `command -v ${t}`], { check: false }).stdout.trim()) throw new Error(`${t} is missing (apt-get install -y iperf3 iproute2 iputils-ping openssh-client openssh-server)`);
  debianTool('dpipe');
  const lines = [`# crypt, policing and VXLAN (bench/secure.mjs)`, '', `Machine: ${machine()}. ${REPS} interleaved repetitions, medians; iperf3 ${IPERF_SECONDS} s each.`, ''];
  if (ONLY.includes('cables')) {
    log('cables: plain UDP, crypt UDP, plain TCP, crypt TCP, ssh');
    const r = await benchCables();
    const rows = [
      ['crypt:// over UDP vs ssh', r.ratios.udpVsSsh, TARGET_VS_SSH, x],
      ['crypt:// over UDP vs plain UDP', r.ratios.udpVsPlain, TARGET_VS_PLAIN, pct],
      ['crypt:// over TCP vs ssh', r.ratios.tcpVsSsh, TARGET_VS_SSH, x],
      ['crypt:// over TCP vs plain TCP', r.ratios.tcpVsPlain, TARGET_VS_PLAIN, pct],
    ];
    const load = os.loadavg().map((v) => v.toFixed(1)).join(' ');
    lines.push('## TCP through a cable between two switches (iperf3, namespace to namespace)', '',
      '| cable | Mbit/s (median) | all runs | CPU of the cable processes (both ends; ssh with sshd\'s side) | Mbit per cable CPU-second |', '|---|---|---|---|---|');
    for (const c of CABLES) lines.push(`| ${c.title} | ${fmt(r[c.kind].mbit)} | ${r[c.kind].all.map(fmt).join(', ')} | ${pct(r[c.kind].cpu)} | ${fmt(r[c.kind].eff)} |`);
    lines.push('', `Load average at the end of the cable rows: ${load} (2 vCPUs shared with other work).`, '',
      '| ratio (median of the per-round ratios) | throughput | per cable CPU-second | target | throughput vs target |', '|---|---|---|---|---|');
    const effOf = { 'crypt:// over UDP vs ssh': r.effRatios.udpVsSsh, 'crypt:// over UDP vs plain UDP': r.effRatios.udpVsPlain, 'crypt:// over TCP vs ssh': r.effRatios.tcpVsSsh, 'crypt:// over TCP vs plain TCP': r.effRatios.tcpVsPlain };
    for (const [what, v, tgt, f] of rows) lines.push(`| ${what} | ${f(v)} | ${f(effOf[what])} | ≥ ${f(tgt)} | ${Number.isFinite(v) ? (v >= tgt ? 'PASS' : 'FAIL') : 'n/a'} |`);
    lines.push('');
  }
  if (ONLY.includes('police')) {
    log('police: two iperf3 flows, without and with port/police');
    const r = await benchPolice();
    lines.push(`## Policing: a UDP flood offered at ${FLOOD_OFFERED}bit/s and a TCP flow into one namespace`, '', '| | flood received Mbit/s | TCP Mbit/s |', '|---|---|---|',
      `| TCP alone | - | ${fmt(r.alone)} |`, `| no policing | ${fmt(r.offFlood)} | ${fmt(r.offTcp)} |`, `| flood's port policed at ${POLICE_RATE_MBIT} Mbit/s | ${fmt(r.onFlood)} | ${fmt(r.onTcp)} |`, '',
      `Target: the flood gets at most its rate (${fmt(r.onFlood)} ≤ ${POLICE_RATE_MBIT}: ${r.onFlood <= POLICE_RATE_MBIT * 1.05 ? 'PASS' : 'FAIL'}), the TCP flow keeps its share (policed: ${pct(r.onTcp / r.alone)} of its rate alone, without policing ${pct(r.offTcp / r.alone)}).`, '');
  }
  if (ONLY.includes('evpn')) {
    log('evpn hop: kernel bridge + VXLAN device vs our vxlan:// endpoint');
    const r = await benchEvpnHop();
    lines.push('## The EVPN hop: TCP between VMs behind our switches on two hosts over VXLAN', '', '| data path | Mbit/s |', '|---|---|',
      `| switch → tap → kernel bridge → kernel VXLAN device (what FRR programs) | ${fmt(r.kernel)} |`,
      `| switch → our unicast vxlan:// endpoint (what a netlink FDB sync would allow) | ${fmt(r.ours)} |`, '',
      `Ratio ours/kernel path: ${x(r.ours / r.kernel)}.`, '');
  }
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  if (WRITE) fs.writeFileSync(path.join(REPO_DIR, 'bench', 'results', 'secure.md'), `${text}\n`);
}

main()
  .catch((e) => {
    process.stderr.write(`secure: ${e.message}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanupAll());
