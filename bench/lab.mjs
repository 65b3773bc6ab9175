/*
 * bench/lab.mjs - vde_lab at scale: `up` and `down` time of labs of 10, 50 and 200 hosts (one
 * switch per 10 hosts, the switches joined in a chain by cables), checked against the targets
 * of issue 10 (200 hosts on 20 switches: up <= 30 s, down <= 10 s), and the user-space memory a
 * host costs: the resident memory of every process of the lab (switches, cables) with its hosts,
 * minus the same lab without hosts, per host. The reference for memory is what a host costs
 * when it reaches its switch through a plug process of its own, as vdens does: Debian's
 * vde_plug (vdeplug4, C) and our vde_plug, both measured in the same run. Needs root.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { debianTool, REPO_DIR } from './reference.mjs';
import { sleep, until } from './util.mjs';

const LAB = path.join(REPO_DIR, 'bin', 'vde_lab');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), `vdelab-bench-${process.pid}-`));
const ENV = { ...process.env, VDE_LAB_DIR: path.join(WORK, 'labs') };
/** Host counts of the scaling runs. */
const HOST_COUNTS = [10, 50, 200];
/** Hosts per switch. */
const HOSTS_PER_SWITCH = 10;
/** Targets of issue 10 for 200 hosts, seconds and MiB. */
const UP_TARGET_S = 30;
const DOWN_TARGET_S = 10;
const HOST_MEMORY_TARGET_MIB = 4;
/** Hosts on the one switch of the memory runs, and runs per point. */
const MEMORY_HOSTS = 100;
const MEMORY_RUNS = 3;

function labFile(name, hosts, perSwitch = HOSTS_PER_SWITCH) {
  const switches = Math.max(1, Math.ceil(hosts / perSwitch));
  const lines = [`name: ${name}`, 'switches:'];
  for (let s = 0; s < switches; s++) lines.push(`  s${s}: {}`);
  if (hosts) lines.push('hosts:');
  for (let h = 0; h < hosts; h++) lines.push(`  h${h}: {interfaces: {eth0: {addresses: [10.${Math.floor(h / 250)}.${h % 250}.1/8]}}}`);
  if (hosts || switches > 1) lines.push('links:');
  for (let h = 0; h < hosts; h++) lines.push(`  l${h}: {a: 'h${h}:eth0', b: s${Math.floor(h / perSwitch)}}`);
  for (let s = 1; s < switches; s++) lines.push(`  c${s}: {a: s${s - 1}, b: s${s}}`);
  const f = path.join(WORK, `${name}.yaml`);
  fs.writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
}

function runLab(args) {
  const t0 = process.hrtime.bigint();
  execFileSync(process.execPath, [LAB, ...args], { env: ENV, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function rssKiB(pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  } catch {
    return 0;
  }
}

/** Resident memory of every process the lab runs, KiB. */
function labRssKiB(name) {
  const st = JSON.parse(fs.readFileSync(path.join(ENV.VDE_LAB_DIR, name, 'state.json'), 'utf8'));
  const pids = [...Object.values(st.switches).map((s) => s.pid), ...Object.values(st.links).flatMap((l) => l.pids), ...Object.values(st.nat).map((n) => n.pid), ...Object.values(st.hosts).flatMap((h) => [h.startupPid, h.holderPid].filter(Boolean))];
  return pids.reduce((a, p) => a + rssKiB(p), 0);
}

/** RSS of one plug process joining a tap to a switch (the per-host process of vdens), KiB. */
async function plugRssKiB(argv0, args, sw) {
  const tap = `vb${process.pid % 100000}`;
  const p = spawn(argv0[0], [...argv0.slice(1), ...args(sw, tap)], { stdio: 'ignore' });
  await sleep(3000);
  const kib = rssKiB(p.pid);
  p.kill('SIGTERM');
  await new Promise((r) => p.on('close', r));
  return kib;
}

const results = [];
try {
  console.log(`vde_lab bench on ${os.cpus()[0].model} (${os.cpus().length} CPUs), ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${new Date().toISOString()}`);
  for (const n of HOST_COUNTS) {
    const name = `bench${n}`;
    const f = labFile(name, n);
    const up = runLab(['up', f]);
    await sleep(1000);
    const rss = labRssKiB(name);
    const down = runLab(['down', name]);
    results.push({ hosts: n, switches: Math.ceil(n / HOSTS_PER_SWITCH), up, down, rss });
    console.log(`${String(n).padStart(4)} hosts, ${String(Math.ceil(n / HOSTS_PER_SWITCH)).padStart(3)} switches: up ${up.toFixed(2)} s, down ${down.toFixed(2)} s, lab processes ${(rss / 1024).toFixed(0)} MiB`);
  }
  // what hosts add: one switch with MEMORY_HOSTS hosts against the same switch without hosts
  // (median of MEMORY_RUNS runs each: a Node process's RSS moves by a few MiB between runs)
  const rssOf = async (hosts) => {
    const v = [];
    for (let i = 0; i < MEMORY_RUNS; i++) {
      const name = `mem${hosts}`;
      runLab(['up', labFile(name, hosts, Math.max(1, hosts))]);
      await sleep(2000);
      v.push(labRssKiB(name));
      runLab(['down', name]);
    }
    return v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
  };
  const rss0 = await rssOf(0);
  const rssN = await rssOf(MEMORY_HOSTS);
  const perHostMiB = (rssN - rss0) / MEMORY_HOSTS / 1024;
  console.log(`memory: one switch ${(rss0 / 1024).toFixed(1)} MiB alone, ${(rssN / 1024).toFixed(1)} MiB with ${MEMORY_HOSTS} hosts (medians of ${MEMORY_RUNS})`);
  const big = results.find((r) => r.hosts === 200);
  // reference: one plug process per host (vdens' way), Debian's and ours
  const swDir = path.join(WORK, 'sw');
  const sw = spawn(process.execPath, [path.join(REPO_DIR, 'bin', 'vde_switch'), '-s', swDir, '--nostdin'], { stdio: 'ignore' });
  await until(() => fs.existsSync(path.join(swDir, 'ctl')), 20000, 'switch');
  const debianKiB = await plugRssKiB([debianTool('vde_plug').path], (s, t) => [`tap://${t}`, `vde://${s}`], swDir);
  const oursKiB = await plugRssKiB([process.execPath, path.join(REPO_DIR, 'bin', 'vde_plug')], (s, t) => [s, `tap://${t}`], swDir);
  sw.kill('SIGTERM');
  await new Promise((r) => sw.on('close', r));
  console.log('');
  console.log('| scenario | vde_lab | reference | ratio | target | met |');
  console.log('|---|---|---|---|---|---|');
  console.log(`| 200 hosts / 20 switches: up | ${big.up.toFixed(2)} s | - | - | <= ${UP_TARGET_S} s | ${big.up <= UP_TARGET_S ? 'yes' : 'NO'} |`);
  console.log(`| 200 hosts / 20 switches: down | ${big.down.toFixed(2)} s | - | - | <= ${DOWN_TARGET_S} s | ${big.down <= DOWN_TARGET_S ? 'yes' : 'NO'} |`);
  console.log(`| memory per host (user space) vs Debian vde_plug per host | ${perHostMiB.toFixed(3)} MiB | ${(debianKiB / 1024).toFixed(2)} MiB | ${(perHostMiB / (debianKiB / 1024)).toFixed(3)} | <= ${HOST_MEMORY_TARGET_MIB} MiB | ${perHostMiB <= HOST_MEMORY_TARGET_MIB ? 'yes' : 'NO'} |`);
  console.log(`| memory per host (user space) vs our vde_plug per host | ${perHostMiB.toFixed(3)} MiB | ${(oursKiB / 1024).toFixed(2)} MiB | ${(perHostMiB / (oursKiB / 1024)).toFixed(4)} | | |`);
  for (const r of results) console.log(`| ${r.hosts} hosts / ${r.switches} switches | up ${r.up.toFixed(2)} s, down ${r.down.toFixed(2)} s | | | | |`);
} finally {
  for (const n of fs.existsSync(ENV.VDE_LAB_DIR) ? fs.readdirSync(ENV.VDE_LAB_DIR) : []) {
    try {
      execFileSync(process.execPath, [LAB, 'down', n], { env: ENV, stdio: 'ignore' });
    } catch {
      /* already down */
    }
  }
  fs.rmSync(WORK, { recursive: true, force: true });
}
