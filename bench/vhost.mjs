#!/usr/bin/env node
// vhost-user benchmark: TCP between a QEMU guest (the test suite's tiny guest, TCG) and a network
// namespace, the same guest on four back-ends in one run:
//   vhost-user        ours: vde_switch --vhost-user PATH, -netdev vhost-user (shared memfd memory)
//   -netdev vde       ours: vde_switch, QEMU's libvdeplug back-end
//   -netdev stream    ours: vde_switch --qemu-listen unix:PATH, QEMU's 4-byte-framed stream
//   -netdev vde       Debian's /usr/bin/vde_switch (the reference), QEMU's libvdeplug back-end
// The namespace's tap is opened by the switch itself (-t TAP, moved into the namespace; ours with
// --tap-offload on, the default). Every row boots the same guest (same kernel, initramfs, 512 MiB
// of memfd memory, virtio-net-pci with vectors=0: QEMU 7.2 under TCG crashes with vhost-user and
// MSI-X, so all rows run without it). Guest -> namespace: the namespace fetches a random blob
// from the guest's busybox httpd with curl, FETCHES_PER_RUN times per run (REPS runs, median). Namespace -> guest: the guest's
// busybox wget fetches a blob from a node HTTP server in the namespace, timed by the server from
// the request to the connection's close. During each transfer the bench samples CPU time of
// QEMU's threads (the vCPU thread "CPU 0/TCG" apart from the rest: QEMU's main loop, which moves
// the frames of -netdev vde/stream and only eventfd signals of vhost-user) and of the switch, to
// show what bounds each path. Prints a markdown table with ratios and appends it to
// bench/results/latest.md unless --no-write. Needs root (namespaces, taps), QEMU, curl, busybox.
// Run with tsx (it loads test/helpers/guest.ts): node --import tsx bench/vhost.mjs
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianTool, oursArgv } from './reference.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { buildGuest, parseGuestOutput, startGuest } = await import('../test/helpers/guest.ts');
const { Cleanup, createNetns, moveLinkToNetns, pollUntil, spawnInNetns, uniqueIfname } = await import('../test/helpers/netns.ts');

const BLOB_BYTES = 64 * 1024 * 1024;
const GUEST_MEMORY_MB = 512;
const REPS = 3;
/** Fetches of the guest's blob in one curl run (the blob alone crosses in a fraction of a second). */
const FETCHES_PER_RUN = 4;
const GUEST_IP = '192.0.2.10';
const NS_IP = '192.0.2.1';
const NS_HTTP_PORT = 8080;
const ATTACH_TIMEOUT_MS = 15_000;
const GUEST_READY_TIMEOUT_MS = 240_000;
const GUEST_LIFETIME_MS = 600_000;
const CURL_TIMEOUT_S = 120;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const write = !process.argv.includes('--no-write');

let DEBIAN_SWITCH;
try {
  DEBIAN_SWITCH = debianTool('vde_switch').path;
} catch (e) {
  console.error(`bench/vhost.mjs: ${e.message}`);
  process.exit(1);
}

const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });

/** CPU ticks of every thread of pid, by thread name (summed). */
function threadTicks(pid) {
  const out = {};
  let tids = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[comm] = (out[comm] ?? 0) + Number(f[11]) + Number(f[12]);
    } catch {
      /* the thread ended */
    }
  }
  return out;
}
/** CPU shares (of one CPU) between two samples: QEMU's vCPU threads, QEMU's other threads, the switch. */
function cpuShares(a, b, seconds) {
  const share = (x, y, pick) => Object.keys(y).filter(pick).reduce((s, k) => s + (y[k] - (x[k] ?? 0)), 0) / CLK_TCK / seconds;
  const vcpu = (k) => /^CPU \d+\//.test(k);
  return { vcpu: share(a.qemu, b.qemu, vcpu), qemuOther: share(a.qemu, b.qemu, (k) => !vcpu(k)), sw: share(a.sw, b.sw, () => true) };
}
const sample = (qemuPid, swPid) => ({ qemu: threadTicks(qemuPid), sw: threadTicks(swPid), t: process.hrtime.bigint() });
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

/** The node HTTP server run inside the namespace: one random blob; logs START and END <ms> <bytes> per request. */
const SERVER = `
const http = require('http');
const blob = require('crypto').randomBytes(${BLOB_BYTES});
console.log('SHA', require('crypto').createHash('sha256').update(blob).digest('hex'));
http.createServer((req, res) => {
  const t0 = process.hrtime.bigint();
  console.log('START');
  res.setHeader('Content-Length', blob.length);
  req.socket.once('close', () => console.log('END', Number(process.hrtime.bigint() - t0) / 1e6, blob.length));
  res.end(blob);
}).listen(${NS_HTTP_PORT}, '${NS_IP}', () => console.log('LISTENING'));
`;

/** One row: boots the guest on a back-end, measures both directions. */
async function runRow(row) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'vde-bench-vhost-'));
  const dir = path.join(base, 'sw');
  const vsock = path.join(base, 'vm.vhost');
  const qsock = path.join(base, 'vm.stream');
  const tap = uniqueIfname('vbv');
  const cleanup = new Cleanup();
  try {
    const [node, swBin] = oursArgv('vde_switch');
    const extra = row.id === 'vhost' ? ['--vhost-user', vsock] : row.id === 'stream' ? ['--qemu-listen', `unix:${qsock}`] : [];
    // Debian's vde_switch exits on stdin EOF: spawnInNetns keeps a stdin pipe open
    const swArgv = row.switch === 'ours' ? [node, swBin, '-s', dir, '--nostdin', '-t', tap, ...extra] : [DEBIAN_SWITCH, '-s', dir, '-t', tap];
    const sw = spawnInNetns(null, swArgv, { cleanup });
    cleanup.link(tap, null);
    await pollUntil(() => fs.existsSync(path.join(dir, 'ctl')), ATTACH_TIMEOUT_MS, `switch (${sw.output()})`);
    const ns = await createNetns('vdebench-vhost', cleanup);
    await moveLinkToNetns(tap, ns, `${NS_IP}/24`, { cleanup });
    const server = spawnInNetns(ns, [process.execPath, '-e', SERVER], { cleanup });
    await pollUntil(() => server.output().includes('LISTENING'), ATTACH_TIMEOUT_MS, `the namespace's HTTP server (${server.output()})`);
    const swPid = sw.child.pid;

    const mac = '52:54:00:be:0c:01';
    const dev = ['-device', `virtio-net-pci,netdev=n0,vectors=0,mac=${mac}`];
    const netdev = {
      vhost: ['-chardev', `socket,id=c0,path=${vsock}`, '-netdev', 'vhost-user,id=n0,chardev=c0', ...dev],
      vde: ['-netdev', `vde,id=n0,sock=${dir}`, ...dev],
      debvde: ['-netdev', `vde,id=n0,sock=${dir}`, ...dev],
      stream: ['-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${qsock}`, ...dev],
    }[row.id];
    const guest = await startGuest({
      netdev,
      // debug-threads names the vCPU thread "CPU 0/TCG" (else every thread is "qemu-system-x86")
      extraQemuArgs: ['-name', 'bench,debug-threads=on', '-object', `memory-backend-memfd,id=mem,size=${GUEST_MEMORY_MB}M,share=on`, '-numa', 'node,memdev=mem'],
      memoryMb: GUEST_MEMORY_MB,
      accel: 'tcg',
      // REPS fetches into /dev/null (measured), then one into a file (checked by its sha256)
      cmdline: { ip: `${GUEST_IP}/24`, httpd: 80, httpsize: BLOB_BYTES, wget: `http://${NS_IP}:${NS_HTTP_PORT}/blob`, wgetrepeat: REPS, wgettimeout: CURL_TIMEOUT_S, sleep: 600 },
      timeoutMs: GUEST_LIFETIME_MS,
      cleanup,
    });
    // namespace -> guest: the guest's wget REPS times, each timed by the server; CPU sampled as
    // the server reports the request (START) and the connection's close (END)
    const ins = [];
    let s0 = null;
    let lineBuf = '';
    server.child.stdout.on('data', (d) => {
      lineBuf += d;
      for (let nl = lineBuf.indexOf('\n'); nl >= 0; nl = lineBuf.indexOf('\n')) {
        const line = lineBuf.slice(0, nl);
        lineBuf = lineBuf.slice(nl + 1);
        if (line === 'START') s0 = sample(guest.pid, swPid);
        const m = /^END ([\d.]+) (\d+)$/.exec(line);
        if (m && s0) {
          const ms = Number(m[1]);
          ins.push({ mbps: (Number(m[2]) * 8) / (ms / 1000) / 1e6, ...cpuShares(s0, sample(guest.pid, swPid), ms / 1000) });
          s0 = null;
        }
      }
    });
    await guest.waitFor(/^VT-RESULT wget /m, GUEST_READY_TIMEOUT_MS);
    if (ins.length < REPS) throw new Error(`the guest fetched ${ins.length} of ${REPS} times`);
    const inbound = ins.slice(0, REPS).find((o) => o.mbps === median(ins.slice(0, REPS).map((x) => x.mbps)));
    await guest.waitFor(/^VT-SLEEP /m, GUEST_READY_TIMEOUT_MS);
    const rep = parseGuestOutput(guest.output());
    if (rep.errors.length || !rep.httpdSha || !rep.wgetSha) throw new Error(`guest: ${rep.errors.join('; ') || 'no httpd or no fetch'}`);
    const sha = /^SHA (\w+)$/m.exec(server.output())?.[1];
    if (rep.wgetSha !== sha) throw new Error(`the guest's copy of the blob differs (sha256 ${rep.wgetSha}, sent ${sha})`);
    // guest -> namespace: curl in the namespace fetches the blob FETCHES_PER_RUN times, REPS runs
    const outs = [];
    const url = `http://${GUEST_IP}/blob`;
    const fetchArgs = Array.from({ length: FETCHES_PER_RUN }, () => ['-o', '/dev/null', url]).flat();
    for (let i = 0; i < REPS; i++) {
      const a = sample(guest.pid, swPid);
      const r = sh('ip', ['netns', 'exec', ns, 'curl', '-s', '--max-time', String(CURL_TIMEOUT_S), '-w', '%{size_download} %{time_total}\\n', ...fetchArgs], { timeout: (CURL_TIMEOUT_S + 10) * 1000 });
      const b = sample(guest.pid, swPid);
      const runs = r.trim().split('\n').map((l) => l.split(' ').map(Number));
      const bytes = runs.reduce((n, x) => n + x[0], 0);
      const secs = runs.reduce((n, x) => n + x[1], 0);
      if (bytes !== BLOB_BYTES * FETCHES_PER_RUN) throw new Error(`curl got ${bytes} of ${BLOB_BYTES * FETCHES_PER_RUN} bytes`);
      outs.push({ mbps: (bytes * 8) / secs / 1e6, ...cpuShares(a, b, Number(b.t - a.t) / 1e9) });
    }
    const outbound = outs.find((o) => o.mbps === median(outs.map((x) => x.mbps)));
    await guest.kill();
    return { outbound, inbound, outs: outs.map((o) => o.mbps), ins: ins.slice(0, REPS).map((o) => o.mbps) };
  } catch (e) {
    return { error: String(e.message).split('\n')[0] };
  } finally {
    await cleanup.run();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

await buildGuest();
const ROWS = [
  { id: 'vhost', switch: 'ours', label: 'vhost-user (ours, --vhost-user)' },
  { id: 'vde', switch: 'ours', label: '-netdev vde (ours)' },
  { id: 'stream', switch: 'ours', label: '-netdev stream (ours, --qemu-listen)' },
  { id: 'debvde', switch: 'debian', label: "-netdev vde (Debian's vde_switch, reference)" },
];
const loadBefore = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const results = {};
for (const row of ROWS) {
  process.stderr.write(`bench/vhost.mjs: ${row.label} ...\n`);
  results[row.id] = await runRow(row);
}
const pct = (x) => `${Math.round(x * 100)}%`;
// guest CPU per MiB moved: under TCG the emulated guest is the bound when its vCPU thread is busy
const perMiB = (r) => (r.vcpu * 1000) / (r.mbps / 8 / 1.048576);
const cell = (r) => (r ? `${r.mbps.toFixed(0)} (vCPU ${pct(r.vcpu)} = ${perMiB(r).toFixed(1)} ms/MiB, QEMU other ${pct(r.qemuOther)}, switch ${pct(r.sw)})` : 'n/a');
const ratio = (a, b) => (a && b ? `${(a.mbps / b.mbps).toFixed(2)}x` : 'n/a');
const v = results.vhost;
const lines = [
  '',
  '## vhost-user (bench/vhost.mjs)',
  '',
  `TCP between the test guest (QEMU ${sh('qemu-system-x86_64', ['--version']).split('\n')[0].replace(/^QEMU emulator version /, '')}, TCG, 1 vCPU, ${GUEST_MEMORY_MB} MiB memfd memory) and a namespace behind the switch's own tap, ${BLOB_BYTES >> 20} MiB over HTTP; guest -> namespace is the median of ${REPS} curl runs of ${FETCHES_PER_RUN} fetches each, namespace -> guest the median of ${REPS} busybox wget runs. Mbit/s, with the CPU QEMU's vCPU thread (and what that is per MiB moved), QEMU's other threads and the switch used meanwhile (100% = one CPU). ${os.cpus().length} CPUs, ${os.cpus()[0]?.model ?? ''}; load average ${loadBefore} before the run, ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} after (other processes share the CPUs).`,
  '',
  '| back-end | guest -> namespace | namespace -> guest | vhost-user / this (out, in) |',
  '|---|---|---|---|',
  ...ROWS.map((row) => {
    const r = results[row.id];
    if (r.error) return `| ${row.label} | n/a (${r.error.replace(/\|/g, '/')}) | | |`;
    const rel = row.id === 'vhost' ? '1.00x' : `${ratio(v.outbound, r.outbound)}, ${ratio(v.inbound, r.inbound)}`;
    return `| ${row.label} | ${cell(r.outbound)} | ${cell(r.inbound)} | ${rel} |`;
  }),
  '',
];
const table = lines.join('\n');
process.stdout.write(table);
if (write) {
  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  fs.appendFileSync(path.join(ROOT, 'bench', 'results', 'latest.md'), table);
}
