/**
 * Events and metrics of real processes: `vdecmd -s SOCK events` streams JSON lines with a time
 * for ports up and down, endpoints attached and detached (with who), MAC addresses learned,
 * moved and aged, spanning-tree states and roles, stage changes and capture sessions; a client
 * that never reads its events costs the switch nothing. `--metrics` serves Prometheus text that
 * `promtool check metrics` (Debian package `prometheus`) accepts, with counters equal to the
 * frames sent; the plug's `--mgmt` console captures and its `--metrics` serves; bad addresses are
 * refused with the option named; wirefilter's link emulation counters appear as `vde_impair_*`
 * counters by port, direction and reason. Wireshark's extcap protocol: `tshark -D` lists the switch's
 * ports through vde_capture installed as an extcap, and `tshark -i` captures through it.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { run } from '../helpers/netns.js';
import { ROOT, runBin, startSwitch, TIME_SCALE, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

/** Clock ticks per second of /proc/PID/stat times. */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
let tools: Record<string, string>;
const clients: VdeClient[] = [];
const switches: RunningSwitch[] = [];
const procs: ReturnType<typeof spawn>[] = [];
const extcapWrappers: string[] = [];

beforeAll(async () => {
  tools = await ensureTools({ promtool: 'prometheus', tshark: 'tshark' });
}, 900_000);

afterAll(async () => {
  for (const w of extcapWrappers.splice(0)) fs.rmSync(w, { force: true });
  for (const c of clients.splice(0)) c.close();
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const s of switches.splice(0)) await s.stop();
});

async function sw(args: string[] = []): Promise<RunningSwitch> {
  const s = await startSwitch(args);
  switches.push(s);
  return s;
}

async function client(s: RunningSwitch, port?: number, description = 'events test'): Promise<VdeClient> {
  const c = await VdeClient.connect(s.dir, { port, description });
  clients.push(c);
  return c;
}

/** GET /metrics over a unix socket or TCP. */
function scrape(where: { socketPath: string } | { port: number }, p = '/metrics'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ ...where, host: '127.0.0.1', path: p }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
  });
}

/** One sample's value from Prometheus text. */
function value(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  if (!line) throw new Error(`no sample ${sample}`);
  return Number(line.slice(sample.length + 1));
}

/** A free TCP port on 127.0.0.1 (bound and released). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** `vdecmd -s SOCK events` as a process; its parsed lines so far. */
function events(mgmt: string): { lines: () => Array<Record<string, unknown>>; wait: (pred: (e: Record<string, unknown>) => boolean, what: string) => Promise<Record<string, unknown>> } {
  const p = spawn(process.execPath, [path.join(ROOT, 'bin', 'vdecmd'), '-s', mgmt, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  const lines = (): Array<Record<string, unknown>> => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    lines,
    wait: async (pred, what) => {
      let hit: Record<string, unknown> | undefined;
      await waitFor(() => (hit = lines().find(pred)) !== undefined, 15_000, `event ${what} (got ${out})`);
      return hit!;
    },
  };
}

describe('events', () => {
  it('streams ports, endpoints, MACs, stages and captures as JSON lines with a time', async () => {
    const s = await sw();
    const ev = events(s.mgmt);
    await ev.wait((e) => e.type === 'events/start', 'events/start');
    const c1 = await client(s, 1, 'client one');
    const c2 = await client(s, 2);
    const attach = await ev.wait((e) => e.type === 'endpoint/attach' && e.port === 1, 'endpoint/attach');
    expect(attach).toEqual(expect.objectContaining({ module: 'unix prog', description: 'client one', user: 'root' }));
    expect(Date.parse(String(attach.time))).toBeGreaterThan(Date.now() - 60_000);
    await ev.wait((e) => e.type === 'port/up' && e.port === 2, 'port/up');
    c1.send(frame(B, A));
    await c2.recv();
    await ev.wait((e) => e.type === 'mac/learned' && e.mac === A && e.port === 1 && e.vlan === 0, 'mac/learned');
    // the same source on another port after the minimum persistence: moved
    expect((await s.cmd('hash/setminper 0')).status).toBe(0);
    await new Promise((r) => setTimeout(r, 1100));
    c2.send(frame(B, A));
    await ev.wait((e) => e.type === 'mac/moved' && e.mac === A && e.port === 2 && e.from === 1, 'mac/moved');
    expect((await s.cmd('port/stormctl 1 100')).status).toBe(0);
    await ev.wait((e) => e.type === 'stage' && e.stage === 'storm' && e.port === 1, 'stage');
    expect((await s.cmd('hash/setexpire 1')).status).toBe(0);
    expect((await s.cmd('hash/setgcint 1')).status).toBe(0);
    await ev.wait((e) => e.type === 'mac/aged' && e.mac === A, 'mac/aged');
    c2.close();
    await ev.wait((e) => e.type === 'endpoint/detach' && e.port === 2, 'endpoint/detach');
    await ev.wait((e) => e.type === 'port/down' && e.port === 2, 'port/down');
    const cap = spawn(process.execPath, [path.join(ROOT, 'bin', 'vde_capture'), '-w', '/dev/null', '-q', s.mgmt, '1'], { stdio: 'ignore' });
    procs.push(cap);
    await ev.wait((e) => e.type === 'capture/start', 'capture/start');
    cap.kill('SIGINT');
    await ev.wait((e) => e.type === 'capture/stop', 'capture/stop');
    expect(ev.lines().every((e) => typeof e.time === 'string' && typeof e.type === 'string')).toBe(true);
  }, 60_000);

  it('reports spanning-tree roles and states', async () => {
    const s = await sw(['-F', '--stp-forward-delay', '4']);
    const ev = events(s.mgmt);
    await ev.wait((e) => e.type === 'events/start', 'events/start');
    await client(s, 3);
    await ev.wait((e) => e.type === 'stp/role' && e.port === 3 && e.role === 'designated', 'stp/role');
    await ev.wait((e) => e.type === 'stp/state' && e.port === 3 && e.state === 'forwarding', 'stp/state forwarding');
  }, 60_000);

  it('a client that never reads its events costs the switch nothing', async () => {
    const s = await sw();
    const raw = net.connect({ path: s.mgmt });
    raw.on('error', () => {});
    await new Promise((r) => raw.on('connect', r));
    raw.write('events\n');
    await new Promise((r) => setTimeout(r, 300));
    raw.pause();
    const c1 = await client(s, 1);
    const c2 = await client(s, 2);
    // 3000 new source addresses: 3000 mac/learned events nobody reads
    for (let i = 0; i < 3000; i++) {
      c1.send(frame(B, `02:00:00:01:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`));
      if (i % 100 === 99) expect(await c2.recv()).not.toBeNull();
    }
    const r = await s.cmd('port/print');
    expect(r.status).toBe(0);
    raw.destroy();
  }, 60_000);
});

describe('metrics', () => {
  it('promtool accepts the switch metrics, and the counters are the frames sent', async () => {
    const dir = tmpdir();
    const sock = path.join(dir, 'metrics.sock');
    const s = await sw(['--metrics', `unix:${sock}`]);
    const c1 = await client(s, 1);
    const c2 = await client(s, 2);
    const N = 25;
    for (let i = 0; i < N; i++) {
      c1.send(frame(B, A, 100));
      expect(await c2.recv()).not.toBeNull();
    }
    expect((await s.cmd('port/setvlan 2 0')).status).toBe(0);
    const m = await scrape({ socketPath: sock });
    expect(m.status).toBe(200);
    expect(m.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const check = await run([tools.promtool, 'check', 'metrics'], { input: Buffer.from(m.body), check: false });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect((check.stdout + check.stderr).trim()).toBe('');
    expect(value(m.body, 'vde_port_receive_frames_total{port="1"}')).toBe(N);
    expect(value(m.body, 'vde_port_receive_bytes_total{port="1"}')).toBe(N * 114);
    expect(value(m.body, 'vde_port_transmit_frames_total{port="2"}')).toBe(N);
    expect(value(m.body, 'vde_port_dropped_frames_total{port="1",reason="runt"}')).toBe(0);
    expect(value(m.body, 'vde_port_up{port="1"}')).toBe(1);
    expect(value(m.body, 'vde_port_stp_state{port="1",state="forwarding"}')).toBe(1);
    expect(value(m.body, 'vde_port_vlan_member{port="2",vlan="0",tagged="false"}')).toBe(1);
    expect(value(m.body, 'vde_mac_table_entries')).toBe(1);
    expect(value(m.body, 'vde_port_egress_queue_frames{port="2"}')).toBe(0);
    expect((await scrape({ socketPath: sock }, '/other')).status).toBe(404);
  });

  it('a 1000-port switch scrapes in under 50 ms of server time', async () => {
    const port = await freePort();
    const s = await sw(['-n', '1000', '--metrics', `tcp:127.0.0.1:${port}`]);
    for (let p = 1; p <= 1000; p++) expect((await s.cmd(`port/create ${p}`)).status).toBe(0);
    await scrape({ port });
    // server time = the switch's CPU time (utime + stime, all its threads) over SCRAPES scrapes:
    // unlike the time seen from here it does not grow while other tests hold the two CPUs (at
    // load 15 the median from here was 300 ms); it includes the idle engine thread and GC (27-31
    // ms measured at load 13); the sanitized run stretches the bound as it stretches waits
    const SCRAPES = 10;
    const cpuMs = (): number => {
      const f = fs.readFileSync(`/proc/${s.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
    };
    const t0 = cpuMs();
    const wall0 = process.hrtime.bigint();
    for (let i = 0; i < SCRAPES; i++) {
      const m = await scrape({ port });
      expect(m.body).toContain('vde_port_receive_frames_total{port="1000"} 0');
    }
    const perScrapeMs = (cpuMs() - t0) / SCRAPES;
    const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6 / SCRAPES;
    console.log(`1000-port scrape: ${perScrapeMs.toFixed(1)} ms of switch CPU, ${wallMs.toFixed(1)} ms seen from the client`);
    expect(perScrapeMs, `CPU per scrape ${perScrapeMs} ms, wall time per scrape seen from here ${wallMs.toFixed(1)} ms`).toBeLessThan(50 * TIME_SCALE);
  }, 120_000);

  it('vde_plug --mgmt captures and --metrics serves; bad addresses name the option', async () => {
    const s = await sw();
    const dir = tmpdir();
    const plugMgmt = path.join(dir, 'plug.mgmt');
    const port = await freePort();
    const plug = spawn(process.execPath, [path.join(ROOT, 'bin', 'vde_plug'), '--mgmt', plugMgmt, '--metrics', `tcp:${port}`, s.dir, 'null://'], { stdio: 'ignore' });
    procs.push(plug);
    await waitFor(() => fs.existsSync(plugMgmt), 10_000, 'the plug console');
    const ports = JSON.parse((await runBin('vdecmd', ['-s', plugMgmt, 'capture/ports'])).stdout) as { title: string; ports: Array<{ port: number; name: string; description: string }> };
    expect(ports.title).toMatch(/^vde_plug \d+$/);
    expect(ports.ports.map((p) => p.port)).toEqual([1, 2]);
    const file = path.join(dir, 'plug.pcapng');
    const cap = spawn(process.execPath, [path.join(ROOT, 'bin', 'vde_capture'), '-w', file, '-c', '2', plugMgmt], { stdio: 'ignore' });
    procs.push(cap);
    await waitFor(async () => (await runBin('vdecmd', ['-s', plugMgmt, 'capture/list'])).stdout.includes('session'), 10_000, 'the plug capture');
    const c1 = await client(s);
    c1.send(frame('ff:ff:ff:ff:ff:ff', A));
    await new Promise<number | null>((r) => cap.on('exit', r));
    const rows = await run([tools.tshark, '-r', file, '-T', 'fields', '-e', 'frame.interface_name', '-e', 'eth.src']);
    expect(rows.stdout.trim().split('\n')).toEqual([`vde_plug ${plug.pid} side 1\t${A}`, `vde_plug ${plug.pid} side 2\t${A}`]);
    const m = await scrape({ port });
    expect(value(m.body, 'vde_port_receive_frames_total{port="1"}')).toBe(1);
    expect(value(m.body, `vde_info{tool="vde_plug",version="${JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version}"}`)).toBe(1);
    for (const [bin, args] of [['vde_switch', ['--metrics', 'tcp:host']], ['vde_plug', ['--metrics', 'http://x', s.dir, 'null://']], ['slirpvde', ['--metrics', 'tcp:1.2.3.4:99999', s.dir]]] as const) {
      const r = await runBin(bin, [...args]);
      expect(r.code, r.out).toBe(1);
      expect(r.stderr).toMatch(/--metrics: "[^"]+" is not tcp:HOST:PORT|--metrics: "[^"]+": port \d+ is out of range/);
    }
  }, 60_000);

  it('wirefilter -M captures both sides after the impairment and --metrics shows its counters', async () => {
    const s1 = await sw();
    const s2 = await sw();
    const dir = tmpdir();
    const wfMgmt = path.join(dir, 'wf.mgmt');
    const port = await freePort();
    const wf = spawn(process.execPath, [path.join(ROOT, 'bin', 'wirefilter'), '-M', wfMgmt, '--metrics', `tcp:${port}`, '--nostdin', '-d', '1', '-v', `${s1.dir}:${s2.dir}`], { stdio: 'ignore' });
    procs.push(wf);
    await waitFor(() => fs.existsSync(wfMgmt), 10_000, 'the wirefilter console');
    const ports = JSON.parse((await runBin('vdecmd', ['-s', wfMgmt, 'capture/ports'])).stdout) as { title: string; ports: Array<{ port: number }> };
    expect(ports.title).toBe(`wirefilter ${wf.pid}`);
    expect(ports.ports.map((p) => p.port)).toEqual([1, 2]);
    // vde2's own commands still answer as before
    expect((await runBin('vdecmd', ['-s', wfMgmt, 'showinfo'])).stdout).toMatch(/Delay/);
    const file = path.join(dir, 'wf.pcapng');
    const cap = spawn(process.execPath, [path.join(ROOT, 'bin', 'vde_capture'), '-w', file, '-c', '2', wfMgmt], { stdio: 'ignore' });
    procs.push(cap);
    await waitFor(async () => (await runBin('vdecmd', ['-s', wfMgmt, 'capture/list'])).stdout.includes('session'), 10_000, 'the wirefilter capture');
    const c1 = await client(s1);
    const c2 = await client(s2);
    c1.send(frame('ff:ff:ff:ff:ff:ff', A));
    expect(await c2.recv()).not.toBeNull();
    await new Promise<number | null>((r) => cap.on('exit', r));
    const rows = await run([tools.tshark, '-r', file, '-T', 'fields', '-e', 'frame.interface_name', '-e', 'eth.src']);
    expect(rows.stdout.trim().split('\n')).toEqual([`wirefilter ${wf.pid} side 1\t${A}`, `wirefilter ${wf.pid} side 2\t${A}`]);
    const m = await scrape({ port });
    expect(value(m.body, 'vde_port_receive_frames_total{port="1"}')).toBe(1);
    expect(value(m.body, 'vde_port_transmit_frames_total{port="2"}')).toBe(1);
    expect(m.body).toMatch(/vde_stage_value\{[^}]*stage="impair[^}]*\} \d/);
    // link emulation's own counters, Prometheus style: left to right is the impair stage on the
    // way out of side 2; frames lost there are counted by reason, and promtool accepts it all
    expect((await runBin('vdecmd', ['-s', wfMgmt, 'loss', 'LR100'])).code).toBe(0);
    const LOST = 3;
    for (let i = 0; i < LOST; i++) c1.send(frame('ff:ff:ff:ff:ff:ff', A));
    await waitFor(async () => value((await scrape({ port })).body, 'vde_impair_frames_total{port="2",direction="out"}') === 1 + LOST, 10_000, 'the lost frames to be counted');
    const m2 = await scrape({ port });
    expect(value(m2.body, 'vde_impair_dropped_frames_total{port="2",direction="out",reason="loss"}')).toBe(LOST);
    expect(value(m2.body, 'vde_impair_dropped_frames_total{port="1",direction="out",reason="loss"}')).toBe(0);
    expect(value(m2.body, 'vde_port_dropped_frames_total{port="2",reason="loss"}')).toBe(LOST);
    expect(value(m2.body, 'vde_impair_link_up{port="2",direction="out"}')).toBe(1);
    expect(value(m2.body, 'vde_impair_held_frames{port="2",direction="out"}')).toBe(0);
    expect(m2.body).toMatch(/^# TYPE vde_impair_dropped_frames_total counter$/m);
    const check = await run([tools.promtool, 'check', 'metrics'], { input: Buffer.from(m2.body), check: false });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect((check.stdout + check.stderr).trim()).toBe('');
  }, 60_000);
});

describe('Wireshark extcap', () => {
  it('tshark -D lists the ports and tshark -i captures through vde_capture', async () => {
    const s = await sw();
    const c1 = await client(s, 1);
    const c2 = await client(s, 2);
    const home = tmpdir();
    // Debian 12's Wireshark 4.0 reads extcaps from its global folder only (no personal one, and
    // WIRESHARK_EXTCAP_DIR is for build trees): install a wrapper there for this test, as root
    const folders = await run([tools.tshark, '-G', 'folders']);
    const extcapDir = /^Extcap path:\s*(\S+)/m.exec(folders.stdout)![1];
    const wrapper = path.join(extcapDir, `vde_capture_test_${process.pid}`);
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${path.join(ROOT, 'bin', 'vde_capture')} "$@"\n`, { mode: 0o755 });
    extcapWrappers.push(wrapper);
    const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), VDE_CAPTURE_SOCKETS: s.mgmt };
    const list = await run(['env', `HOME=${home}`, `XDG_CONFIG_HOME=${env.XDG_CONFIG_HOME}`, `VDE_CAPTURE_SOCKETS=${s.mgmt}`, tools.tshark, '-D'], { check: false });
    expect(list.stdout).toContain(`vde:${s.mgmt}:1 (vde_switch ${s.dir}: port 1`);
    expect(list.stdout).toContain(`vde:${s.mgmt} (vde_switch ${s.dir}: all ports)`);
    const file = path.join(home, 'x.pcapng');
    const ts = spawn(tools.tshark, ['-i', `vde:${s.mgmt}:1`, '-c', '3', '-w', file], { env, stdio: 'ignore' });
    procs.push(ts);
    await waitFor(async () => (await s.json<unknown[]>('capture/list')).length === 1, 20_000, 'the extcap capture');
    for (let i = 0; i < 10 && ts.exitCode === null; i++) {
      c1.send(frame(B, A));
      await c2.recv();
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor(() => ts.exitCode !== null, 20_000, 'tshark to end');
    const rows = await run([tools.tshark, '-r', file, '-T', 'fields', '-e', 'eth.src']);
    expect(rows.stdout.trim().split('\n')).toEqual([A, A, A]);
    await waitFor(async () => (await s.json<unknown[]>('capture/list')).length === 0, 10_000, 'the extcap capture to end');
  }, 60_000);
});
