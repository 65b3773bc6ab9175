#!/usr/bin/env node
// Slirp benchmark: TCP throughput from a network namespace through a slirp NAT endpoint to an
// iperf3 server on the host's loopback (reached as the gateway 10.0.2.2), Debian's
// `vde_plug slirp://` (package libvdeplug-slirp) against ours (`vde_plug slirp://`), both on the
// same vde-ts switch so only the slirp endpoint differs. The namespace's tap is plugged in with
// Debian's `vde_plug tap://` in both rows. Prints a markdown table with the ratio and the target
// (ours no slower) and appends it to bench/results/latest.md unless --no-write. Debian's side is
// /usr/bin/vde_plug, checked at start to be Debian's ELF binary (bench/reference.mjs); ours is
// always this checkout's bin/, never a vde-ts installed on PATH.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianTool, oursArgv } from './reference.mjs';
import { sleep, until } from './util.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IPERF_SECONDS = 5;
const IPERF_PORT = 5301;
const ATTACH_TIMEOUT_MS = 10_000;
const NS = `vdebench-slirp-${process.pid}`;
const TAP = `vbs${process.pid % 100000}`;
const write = !process.argv.includes('--no-write');
const procs = [];
let DEBIAN_PLUG;
try {
  DEBIAN_PLUG = debianTool('vde_plug').path;
} catch (e) {
  console.error(`bench/slirp.mjs: ${e.message}`);
  process.exit(1);
}

const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
function start(cmd, args) {
  const p = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  p.errText = () => err;
  procs.push(p);
  return p;
}
function cleanup() {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  try { sh('ip', ['netns', 'del', NS]); } catch { /* gone */ }
  try { sh('ip', ['link', 'del', TAP]); } catch { /* gone */ }
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });

async function run(label, slirpCmd) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'vde-bench-slirp-'));
  const dir = path.join(base, 'sw');
  const [node, swBin] = oursArgv('vde_switch');
  const sw = start(node, [swBin, '-s', dir, '--nostdin']);
  try {
    await until(() => fs.existsSync(path.join(dir, 'ctl')), ATTACH_TIMEOUT_MS, 'switch');
    sh('ip', ['tuntap', 'add', 'dev', TAP, 'mode', 'tap']);
    sh('ip', ['link', 'set', TAP, 'up']);
    start(DEBIAN_PLUG, [`vde://${dir}`, `tap://${TAP}`]);
    await until(() => !sh('ip', ['-o', 'link', 'show', TAP]).includes('NO-CARRIER'), ATTACH_TIMEOUT_MS, 'tap plug');
    sh('ip', ['netns', 'add', NS]);
    sh('ip', ['link', 'set', TAP, 'netns', NS]);
    sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', NS, 'addr', 'add', '10.0.2.15/24', 'dev', TAP]);
    sh('ip', ['-n', NS, 'link', 'set', TAP, 'up']);
    sh('ip', ['-n', NS, 'route', 'add', 'default', 'via', '10.0.2.2']);
    const slirp = start(slirpCmd[0], [...slirpCmd.slice(1), dir]);
    await until(() => sh('ip', ['netns', 'exec', NS, 'ping', '-c', '1', '-W', '1', '10.0.2.2']).includes('1 received'), ATTACH_TIMEOUT_MS, `${label} slirp (${slirp.errText()})`);
    const server = start('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(IPERF_PORT)]);
    await sleep(300);
    const out = sh('ip', ['netns', 'exec', NS, 'iperf3', '-c', '10.0.2.2', '-p', String(IPERF_PORT), '-t', String(IPERF_SECONDS), '-J'], { timeout: (IPERF_SECONDS + 20) * 1000 });
    const j = JSON.parse(out);
    server.kill('SIGTERM');
    return { gbps: j.end.sum_received.bits_per_second / 1e9, retrans: j.end.sum_sent.retransmits ?? 0 };
  } catch (e) {
    return { error: e.message.split('\n')[0] };
  } finally {
    for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await sleep(200);
    cleanup();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

const fmt = (r) => (r.error ? `n/a (${r.error.replace(/\|/g, '/')})` : `${r.gbps.toFixed(2)} [${r.retrans} retransmits]`);
const ref = await run('Debian', [DEBIAN_PLUG, 'slirp://']);
const ours = await run('ours', [...oursArgv('vde_plug'), 'slirp://']);
const ratio = !ref.error && !ours.error ? ours.gbps / ref.gbps : NaN;
const table = [
  '',
  '## Slirp (bench/slirp.mjs)',
  '',
  `TCP from a namespace through slirp to iperf3 on the host's 127.0.0.1 (via 10.0.2.2), ${IPERF_SECONDS} s; same vde-ts switch and Debian tap plug in both rows.`,
  '',
  '| scenario | unit | Debian vde_plug slirp:// (ref) | ours | ours/ref | target | result |',
  '|---|---|---|---|---|---|---|',
  `| TCP namespace → host through slirp | Gbit/s | ${fmt(ref)} | ${fmt(ours)} | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : 'n/a'} | ours ≥ ref | ${Number.isFinite(ratio) ? (ratio >= 1 ? 'PASS' : 'FAIL') : 'n/a'} |`,
  '',
].join('\n');
process.stdout.write(table);
if (write) fs.appendFileSync(path.join(ROOT, 'bench', 'results', 'latest.md'), table);
