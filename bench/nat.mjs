#!/usr/bin/env node
// NAT benchmark: TCP from a network namespace to an iperf3 server on the host's 127.0.0.1,
// reached as the gateway 10.0.2.2, through each NAT path, all in the same run and alternated
// round by round so that load from other work on the machine falls on every row alike:
//   - pasta --config-net (Debian package passt) running iperf3 in its own namespace: the reference;
//   - our switch + our tap plug in the namespace (offloads) + our `vde_plug SW slirp:///mtu=65520`
//     with the namespace at MTU 65520 (the target: ≥ 0.5x pasta);
//   - the same with everything at its defaults (namespace MTU 1500, slirp's MTU 1500: the
//     namespace's 64 KiB TSO segments still reach slirp whole);
//   - the same switch and tap plug + our `vde_plug SW passt:///...` (passt as the NAT back-end);
//   - Debian's `vde_plug slirp://` with Debian's tap plug on our switch (the old reference).
// CPU per Gbit: user + system CPU seconds of the path's own processes (switch, plugs, slirp or
// passt or pasta; not iperf3) over the gigabits moved. Prints a markdown table and appends it to
// bench/results/latest.md unless --no-write. Debian's binaries are checked by bench/reference.mjs.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianTool, oursArgv } from './reference.mjs';
import { sleep, until } from './util.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IPERF_SECONDS = 5;
const ROUNDS = Number(process.env.NAT_BENCH_ROUNDS ?? 3);
const IPERF_PORT = 5311;
const ATTACH_TIMEOUT_MS = 15_000;
const LARGE_MTU = 65520;
const GUEST = '10.0.2.15';
const GATEWAY = '10.0.2.2';
const NS = `vdebench-nat-${process.pid}`;
const TAP = `vbn${process.pid % 100000}`;
const CLK_TCK = 100;
const write = !process.argv.includes('--no-write');
const procs = [];

const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
function have(tool) {
  try {
    sh('sh', ['-c', `command -v ${tool}`]);
    return true;
  } catch {
    return false;
  }
}
for (const [tool, pkg] of [['pasta', 'passt'], ['passt', 'passt'], ['iperf3', 'iperf3']]) {
  if (!have(tool)) {
    console.error(`bench/nat.mjs: ${tool} is missing (Debian package ${pkg})`);
    process.exit(1);
  }
}
let DEBIAN_PLUG;
try {
  DEBIAN_PLUG = debianTool('vde_plug').path;
} catch (e) {
  console.error(`bench/nat.mjs: ${e.message}`);
  process.exit(1);
}

function start(cmd, args, opts = {}) {
  const p = spawn(cmd, args, { stdio: [opts.stdin ?? 'pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  p.text = () => out;
  procs.push(p);
  return p;
}
function cleanup() {
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  try { sh('ip', ['netns', 'del', NS]); } catch { /* gone */ }
  try { sh('ip', ['link', 'del', TAP]); } catch { /* gone */ }
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });

/** CPU seconds (user + system) of pids and their children (passt under vde_plug); gone processes count 0. */
function cpuSeconds(pids) {
  const all = new Set(pids);
  for (const pid of pids) {
    try {
      for (const c of sh('ps', ['-o', 'pid=', '--ppid', String(pid)]).split('\n').map((s) => Number(s.trim())).filter(Boolean)) all.add(c);
    } catch { /* no children */ }
  }
  return cpuOnly([...all]);
}

/** Runs iperf3 (argv prefix: how to run it in the namespace) against the host server; measures the path's CPU. */
async function iperf(prefix, pathPids, label) {
  const server = start('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(IPERF_PORT)]);
  await sleep(300);
  const cpu0 = cpuSeconds(pathPids());
  const client = start(prefix[0], [...prefix.slice(1), 'iperf3', '-c', GATEWAY, '-p', String(IPERF_PORT), '-t', String(IPERF_SECONDS), '-J'], { stdin: 'ignore' });
  const code = await new Promise((r) => client.on('exit', (c) => r(c)));
  const cpu = cpuSeconds(pathPids()) - cpu0;
  server.kill('SIGTERM');
  const text = client.text();
  const j = JSON.parse(text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1));
  if (code !== 0 && !j.end?.sum_received) throw new Error(`${label}: iperf3 failed: ${j.error ?? text.slice(-200)}`);
  const gbps = j.end.sum_received.bits_per_second / 1e9;
  return { gbps, retrans: j.end.sum_sent.retransmits ?? 0, cpuPerGbit: cpu / (gbps * IPERF_SECONDS) };
}

/** CPU seconds of exactly these pids (pasta: not its iperf3 child). */
function cpuOnly(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch { /* gone */ }
  }
  return ticks / CLK_TCK;
}

/** pasta --config-net running iperf3 in its own namespace; pasta's CPU is sampled while it runs (it exits with iperf3). */
async function runPasta() {
  const argv = ['pasta', '--config-net', '-q', ...(process.getuid() === 0 ? ['--runas', '0'] : []), '-a', GUEST, '-n', '24', '-g', GATEWAY, '--',
    'iperf3', '-c', GATEWAY, '-p', String(IPERF_PORT), '-t', String(IPERF_SECONDS), '-J'];
  const srv = start('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(IPERF_PORT)]);
  try {
    await sleep(300);
    const client = start(argv[0], argv.slice(1), { stdin: 'ignore' });
    const exited = new Promise((res) => client.on('exit', (c) => res(c)));
    let first = null;
    let last = 0;
    const t = setInterval(() => {
      const c = cpuOnly([client.pid]);
      if (c > 0 || first !== null) {
        if (first === null) first = c;
        last = c;
      }
    }, 50);
    await exited;
    clearInterval(t);
    const text = client.text();
    const j = JSON.parse(text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1));
    if (!j.end?.sum_received) throw new Error(`pasta: iperf3 failed: ${j.error ?? text.slice(-200)}`);
    const gbps = j.end.sum_received.bits_per_second / 1e9;
    return { gbps, retrans: j.end.sum_sent.retransmits ?? 0, cpuPerGbit: (last - (first ?? 0)) / (gbps * IPERF_SECONDS) };
  } finally {
    if (srv.exitCode === null) srv.kill('SIGTERM');
    procs.splice(0);
  }
}

/** Our switch, a tap plug in a namespace at mtu, and a NAT plug (argv) on the switch. */
async function runSwitchPath(label, { tapPlug, natArgv, mtu }) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'vde-bench-nat-'));
  const dir = path.join(base, 'sw');
  const [node, swBin] = oursArgv('vde_switch');
  const sw = start(node, [swBin, '-s', dir, '--nostdin']);
  try {
    await until(() => fs.existsSync(path.join(dir, 'ctl')), ATTACH_TIMEOUT_MS, 'switch');
    sh('ip', ['netns', 'add', NS]);
    sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    let plug;
    if (tapPlug === 'ours') {
      sh('ip', ['-n', NS, 'tuntap', 'add', 'dev', TAP, 'mode', 'tap']);
      const [n, plugBin] = oursArgv('vde_plug');
      plug = start('ip', ['netns', 'exec', NS, n, plugBin, `vde://${dir}`, `tap://${TAP}`]);
      await until(() => !sh('ip', ['-n', NS, '-o', 'link', 'show', TAP]).includes('NO-CARRIER'), ATTACH_TIMEOUT_MS, `${label}: tap plug (${plug.text()})`);
    } else {
      sh('ip', ['tuntap', 'add', 'dev', TAP, 'mode', 'tap']);
      sh('ip', ['link', 'set', TAP, 'up']);
      plug = start(DEBIAN_PLUG, [`vde://${dir}`, `tap://${TAP}`]);
      await until(() => !sh('ip', ['-o', 'link', 'show', TAP]).includes('NO-CARRIER'), ATTACH_TIMEOUT_MS, `${label}: tap plug`);
      sh('ip', ['link', 'set', TAP, 'netns', NS]);
    }
    sh('ip', ['-n', NS, 'link', 'set', TAP, 'mtu', String(mtu)]);
    sh('ip', ['-n', NS, 'addr', 'add', `${GUEST}/24`, 'dev', TAP]);
    sh('ip', ['-n', NS, 'link', 'set', TAP, 'up']);
    sh('ip', ['-n', NS, 'route', 'add', 'default', 'via', GATEWAY]);
    const nat = start(natArgv[0], [...natArgv.slice(1), `vde://${dir}`]);
    // ready when a TCP connection reaches the host through the NAT (passt, as "nobody", may not ping)
    await until(() => { try { sh('ip', ['netns', 'exec', NS, 'timeout', '2', 'bash', '-c', `exec 3<>/dev/tcp/${GATEWAY}/${probePort}`]); return true; } catch { return false; } }, ATTACH_TIMEOUT_MS, `${label}: NAT (${nat.text()})`);
    return await iperf(['ip', 'netns', 'exec', NS], () => [sw.pid, plug.pid, nat.pid], label);
  } catch (e) {
    return { error: e.message.split('\n')[0] };
  } finally {
    for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await sleep(300);
    cleanup();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

const probe = net.createServer((c) => c.destroy());
await new Promise((r) => probe.listen(0, '127.0.0.1', r));
const probePort = probe.address().port;
const ours = (loc) => [...oursArgv('vde_plug'), loc];
const ROWS = [
  { key: 'pasta', name: '`pasta --config-net` (ref)', run: () => runPasta().catch((e) => ({ error: e.message })) },
  { key: 'slirp', name: 'our switch + tap plug + `slirp:///mtu=65520`, namespace MTU 65520', run: () => runSwitchPath('slirp 65520', { tapPlug: 'ours', natArgv: ours(`slirp:///mtu=${LARGE_MTU}`), mtu: LARGE_MTU }), target: 0.5 },
  { key: 'slirp1500', name: 'the same at defaults (`slirp://`, namespace MTU 1500)', run: () => runSwitchPath('slirp 1500', { tapPlug: 'ours', natArgv: ours('slirp://'), mtu: 1500 }) },
  { key: 'passt', name: 'our switch + tap plug + `passt://` (MTU 65520)', run: () => runSwitchPath('passt', { tapPlug: 'ours', natArgv: ours(`passt:///address=${GUEST}/netmask=24/gateway=${GATEWAY}`), mtu: LARGE_MTU }) },
  { key: 'debian', name: "Debian's tap plug + Debian's `vde_plug slirp://` on our switch (old reference)", run: () => runSwitchPath('Debian slirp', { tapPlug: 'debian', natArgv: [DEBIAN_PLUG, 'slirp://'], mtu: 1500 }) },
];

const results = Object.fromEntries(ROWS.map((r) => [r.key, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const row of ROWS) {
    const r = await row.run();
    results[row.key].push(r);
    process.stderr.write(`round ${round + 1} ${row.key}: ${r.error ? `error ${r.error}` : `${r.gbps.toFixed(2)} Gbit/s, ${r.cpuPerGbit.toFixed(2)} CPU-s/Gbit`}\n`);
  }
}
const mean = (rs, k) => {
  const ok = rs.filter((r) => !r.error);
  return ok.length ? ok.reduce((s, r) => s + r[k], 0) / ok.length : NaN;
};
const refGbps = mean(results.pasta, 'gbps');
const lines = [
  '',
  '## NAT paths (bench/nat.mjs)',
  '',
  `TCP from a namespace to iperf3 on the host's 127.0.0.1 (as ${GATEWAY}), ${IPERF_SECONDS} s, mean of ${ROUNDS} alternated rounds (per round: ${ROWS.map((r) => `${r.key} ${results[r.key].map((x) => (x.error ? 'n/a' : x.gbps.toFixed(2))).join('/')}`).join(', ')}); CPU = user+system seconds of the path's processes (switch, plugs, slirp/passt/pasta; not iperf3) per Gbit moved. Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at the end.`,
  '',
  '| path | Gbit/s | × pasta | CPU-s per Gbit | target | result |',
  '|---|---|---|---|---|---|',
];
for (const row of ROWS) {
  const rs = results[row.key];
  const g = mean(rs, 'gbps');
  const c = mean(rs, 'cpuPerGbit');
  const err = rs.find((r) => r.error)?.error;
  const ratio = g / refGbps;
  const target = row.target !== undefined ? `≥ ${row.target}x` : row.key === 'pasta' ? '—' : 'report';
  const result = row.target === undefined ? '' : Number.isFinite(ratio) ? (ratio >= row.target ? 'PASS' : 'FAIL') : 'n/a';
  lines.push(`| ${row.name} | ${Number.isFinite(g) ? g.toFixed(2) : `n/a (${(err ?? '').replace(/\|/g, '/')})`} | ${row.key === 'pasta' ? '1.00x' : Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : 'n/a'} | ${Number.isFinite(c) ? c.toFixed(2) : 'n/a'} | ${target} | ${result} |`);
}
lines.push('');
const table = lines.join('\n');
probe.close();
process.stdout.write(table);
if (write) fs.appendFileSync(path.join(ROOT, 'bench', 'results', 'latest.md'), table);
