#!/usr/bin/env node
/*
 * bench/observe.mjs - part of `npm run bench`: what observation costs.
 *
 * 1. Frames/s through our switch (bench/vdeload.c, one pair, 64 and 1500 bytes) with no
 *    capture, with every port captured by a vde_capture that writes to /dev/null, and with
 *    every port captured by a client that never reads (its frames are dropped and counted);
 *    Debian's vde_switch (the reference, no capture) runs the same load in the same run.
 *    Target: captured >= 80 % of uncaptured.
 * 2. Scrape time of /metrics on a switch with 1000 ports (1000 idle libvdeplug clients),
 *    median of SCRAPES, measured at the HTTP client; and frames/s while a scraper runs
 *    SCRAPE_HZ times a second against frames/s without it. Target: a scrape under 50 ms.
 *
 * Repetitions alternate between the variants so slow drift hits all of them; medians are
 * reported. Prints a table and appends nothing: BENCHMARKS.md records the numbers by hand.
 * Every process it starts is killed by PID and its temp directory removed.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianTool, oursArgv } from './reference.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_DIR = path.resolve(BENCH_DIR, '..');
const VDELOAD_BIN = path.join(BENCH_DIR, '.build', 'vdeload');
const VDELOAD_SRC = path.join(BENCH_DIR, 'vdeload.c');
const THRU_DURATION_MS = 1500;
const REPS = Number(process.env.OBS_REPS ?? 5);
const FRAME_SIZES_BYTES = [64, 1500];
const IDLE_CLIENTS = 1000;
const SCRAPES = 20;
const SCRAPE_HZ = 10;
const START_TIMEOUT_MS = 60000;
const TARGET_CAPTURE_FRACTION = 0.8;
const TARGET_SCRAPE_MS = 50;
const CLK_TCK_HZ = 100;

const procs = new Set();
const dirs = [];
const log = (m) => process.stderr.write(`observe: ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function track(p) {
  procs.add(p);
  p.on('exit', () => procs.delete(p));
  return p;
}

async function killAll() {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
  await sleep(300);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await killAll(); process.exit(130); });

async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

/** Starts a switch (ours: extra args allowed); resolves {dir, mgmt, pid}. */
async function startSwitch(ours, extra = []) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'vde-obsbench-'));
  dirs.push(base);
  const dir = path.join(base, 'sw');
  const mgmt = path.join(base, 'mgmt');
  const argv = ours ? [...oursArgv('vde_switch'), '--nostdin', '-n', '1100', '-s', dir, '-M', mgmt, ...extra] : [debianTool('vde_switch').path, '-n', '1100', '-s', dir, '-M', mgmt];
  const p = track(spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] }));
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  await waitFor(() => p.exitCode !== null || (fs.existsSync(path.join(dir, 'ctl')) && fs.existsSync(mgmt)), START_TIMEOUT_MS, `the switch (${argv.join(' ')})`);
  if (p.exitCode !== null) throw new Error(`the switch exited: ${err.trim()}`);
  return { dir, mgmt, proc: p };
}

/** CPU time a process used so far, seconds (utime + stime, /proc/PID/stat). */
function cpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK_HZ;
  } catch {
    return NaN;
  }
}

/** One throughput run: frames/s, and the switch's CPU microseconds per frame. */
async function thru(sw, bytes) {
  const c0 = cpuSeconds(sw.proc.pid);
  const r = await thruRun(sw, bytes);
  const c1 = cpuSeconds(sw.proc.pid);
  return { fps: r.fps, usPerFrame: r.frames ? ((c1 - c0) * 1e6) / r.frames : NaN };
}

function thruRun(sw, bytes) {
  return new Promise((resolve) => {
    const p = track(spawn(VDELOAD_BIN, ['thru', '--sock', sw.dir, '--pairs', '1', '--bytes', String(bytes), '--duration-ms', String(THRU_DURATION_MS), '--wait', 'poll'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', () => {
      try {
        const j = JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).pop());
        resolve({ fps: j.fps, frames: j.fps * j.elapsed_s });
      } catch {
        resolve({ fps: NaN, frames: 0 });
      }
    });
  });
}

/** A capture of every port: a vde_capture to /dev/null, or a raw client that never reads. */
async function startCapture(sw, kind) {
  if (kind === 'reader') {
    const p = track(spawn(process.execPath, [path.join(REPO_DIR, 'bin', 'vde_capture'), '-q', '-w', '/dev/null', sw.mgmt], { stdio: 'ignore' }));
    await sleep(500);
    return () => p.kill('SIGTERM');
  }
  const s = net.connect({ path: sw.mgmt });
  s.on('error', () => {});
  await new Promise((r) => s.on('connect', r));
  s.write('capture/start\n');
  await sleep(500);
  s.pause();
  return () => s.destroy();
}

function scrape(port) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let n = 0;
      res.on('data', (d) => (n += d.length));
      res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes: n }));
    }).on('error', reject);
  });
}

async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const port = srv.address().port;
  await new Promise((r) => srv.close(r));
  return port;
}

const rows = [];

/** Prints the table of what was measured. */
function printTable() {
  const fmt = (v) => (typeof v === 'number' ? Math.round(v).toLocaleString('en-US') : v);
  const out = ['| measurement | value | ratio | target |', '|---|---|---|---|', ...rows.map((r) => `| ${r.map(fmt).join(' | ')} |`)].join('\n');
  process.stdout.write(`\n## Observation (bench/observe.mjs), ${os.cpus().length} CPUs ${os.cpus()[0]?.model ?? ''}, ${new Date().toISOString()}\n\n${out}\n`);
}

async function main() {
  if (!fs.existsSync(VDELOAD_BIN)) {
    fs.mkdirSync(path.dirname(VDELOAD_BIN), { recursive: true });
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', VDELOAD_BIN, VDELOAD_SRC, '-lvdeplug', '-lpthread'], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('cannot build bench/vdeload.c (needs cc and libvdeplug-dev)');
  }
  // 1. capture cost
  const ours = await startSwitch(true);
  const ref = await startSwitch(false);
  for (const bytes of FRAME_SIZES_BYTES) {
    const res = { ref: [], none: [], reader: [], stalled: [] };
    for (let i = 0; i < REPS; i++) {
      log(`${bytes} B, repetition ${i + 1}/${REPS}`);
      res.ref.push(await thru(ref, bytes));
      res.none.push(await thru(ours, bytes));
      for (const kind of ['reader', 'stalled']) {
        const stop = await startCapture(ours, kind);
        res[kind].push(await thru(ours, bytes));
        stop();
        await sleep(300);
      }
    }
    const m = Object.fromEntries(Object.entries(res).map(([k, v]) => [k, median(v.map((x) => x.fps))]));
    const cpu = Object.fromEntries(Object.entries(res).map(([k, v]) => [k, median(v.map((x) => x.usPerFrame))]));
    const us = (k) => `${cpu[k].toFixed(2)} µs CPU/frame`;
    rows.push([`frames/s ${bytes} B, no capture`, m.none, `${(m.none / m.ref).toFixed(2)} x ref; ${us('none')}`, '']);
    rows.push([`frames/s ${bytes} B, every port captured (vde_capture reads)`, m.reader, `${(m.reader / m.none).toFixed(2)} of uncaptured; ${us('reader')}`, m.reader / m.none >= TARGET_CAPTURE_FRACTION ? 'PASS' : 'FAIL']);
    rows.push([`frames/s ${bytes} B, every port captured (client never reads)`, m.stalled, `${(m.stalled / m.none).toFixed(2)} of uncaptured; ${us('stalled')}`, m.stalled / m.none >= TARGET_CAPTURE_FRACTION ? 'PASS' : 'FAIL']);
    rows.push([`frames/s ${bytes} B, Debian vde_switch`, m.ref, us('ref'), '']);
  }
  ours.proc.kill('SIGTERM');
  ref.proc.kill('SIGTERM');
  await sleep(1000);
  // 2. scrapes of a 1000-port switch
  const port = await freePort();
  const big = await startSwitch(true, ['--metrics', `tcp:127.0.0.1:${port}`]);
  const idle = track(spawn(VDELOAD_BIN, ['idle', '--sock', big.dir, '--clients', String(IDLE_CLIENTS)], { stdio: ['pipe', 'pipe', 'ignore'] }));
  let ready = '';
  idle.stdout.on('data', (d) => (ready += d));
  await waitFor(() => /^READY/m.test(ready), 60000, 'idle clients');
  await scrape(port);
  const times = [];
  let bytes = 0;
  for (let i = 0; i < SCRAPES; i++) {
    const r = await scrape(port);
    times.push(r.ms);
    bytes = r.bytes;
  }
  const scrapeMs = median(times);
  rows.push([`scrape of ${IDLE_CLIENTS} active ports (${(bytes / 1024).toFixed(0)} KiB), median of ${SCRAPES}`, `${scrapeMs.toFixed(1)} ms`, `p100 ${Math.max(...times).toFixed(1)} ms`, scrapeMs < TARGET_SCRAPE_MS ? 'PASS' : 'FAIL']);
  const quiet = [];
  const scraped = [];
  for (let i = 0; i < REPS; i++) {
    quiet.push((await thru(big, 64)).fps);
    let on = true;
    const loop = (async () => {
      while (on) {
        await scrape(port);
        await sleep(1000 / SCRAPE_HZ);
      }
    })();
    scraped.push((await thru(big, 64)).fps);
    on = false;
    await loop;
  }
  rows.push([`frames/s 64 B with ${IDLE_CLIENTS} clients, no scrapes`, median(quiet), '', '']);
  rows.push([`frames/s 64 B with ${IDLE_CLIENTS} clients, ${SCRAPE_HZ} scrapes/s`, median(scraped), `${(median(scraped) / median(quiet)).toFixed(2)} of unscraped`, '']);
  idle.stdin.end();
  await killAll();
  printTable();
}

main().catch(async (e) => {
  log(e.message);
  await killAll();
  if (rows.length) printTable();
  process.exit(1);
});
