/**
 * vde_capture against real switch processes, checked with Wireshark's own tools (Debian package
 * `tshark`: tshark, capinfos, mergecap): a capture file that capinfos accepts, with one interface
 * per port named after the switch and port, the frames in order with their direction flags; a
 * live pipe into `tshark -r -`; -c and --duration ends with statistics blocks; captures of two
 * switches merged by mergecap into one timeline; a client killed with SIGKILL and a client that
 * never reads leave the switch forwarding, with no fd left behind; rootless: a switch and
 * vde_capture of `nobody` (setpriv, Debian package util-linux) capture, another user is refused
 * in one line; clear errors for bad input.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { fdCount, ROOT, runBin, startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';
import { run } from '../helpers/netns.js';
import net from 'node:net';
import { native } from '../../src/native/index.js';
import { runCommand } from '../../src/vdecmd/main.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
let tools: Record<string, string>;
const clients: VdeClient[] = [];
const switches: RunningSwitch[] = [];
/** Processes started as another user (the rootless test). */
const rootless: ReturnType<typeof spawn>[] = [];

beforeAll(async () => {
  tools = await ensureTools({ tshark: 'tshark', capinfos: 'tshark', mergecap: 'tshark', setpriv: 'util-linux' });
}, 900_000);

afterAll(async () => {
  for (const p of rootless.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
  for (const c of clients.splice(0)) c.close();
  for (const s of switches.splice(0)) await s.stop();
});

async function sw(args: string[] = []): Promise<RunningSwitch> {
  const s = await startSwitch(args);
  switches.push(s);
  return s;
}

async function client(s: RunningSwitch, port?: number): Promise<VdeClient> {
  const c = await VdeClient.connect(s.dir, { port, description: `test client ${port ?? ''}` });
  clients.push(c);
  return c;
}

/** Starts vde_capture; resolves its exit once it ended. */
function capture(args: string[], o: { stdout?: 'pipe' | number } = {}) {
  const p = spawn(process.execPath, [path.join(ROOT, 'bin', 'vde_capture'), ...args], { stdio: ['ignore', o.stdout ?? 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d) => (err += d));
  const done = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  return { p, done, err: () => err };
}

/** Waits until the switch reports n running capture sessions. */
async function sessions(s: RunningSwitch, n: number): Promise<void> {
  await waitFor(async () => (await s.json<unknown[]>('capture/list')).length === n, 5000, `${n} capture sessions`);
}

/** tshark fields of a capture file, one array per frame. */
async function fields(file: string, ...f: string[]): Promise<string[][]> {
  const r = await run([tools.tshark, '-r', file, '-T', 'fields', '-E', 'separator=|', ...f.flatMap((x) => ['-e', x])]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split('|'));
}

describe('vde_capture', () => {
  it('writes a file capinfos accepts: interfaces per port named after the switch, frames in order, directions, statistics', async () => {
    const s = await sw();
    const c1 = await client(s, 1);
    const c2 = await client(s, 2);
    const file = path.join(tmpdir(), 'cap.pcapng');
    const cap = capture(['-w', file, '-c', '6', s.mgmt]);
    await sessions(s, 1);
    for (let i = 0; i < 3; i++) {
      c1.send(frame(B, A, Buffer.alloc(60, i)));
      expect(await c2.recv()).not.toBeNull();
    }
    expect(await cap.done).toBe(0);
    expect(cap.err()).toMatch(/6 frames captured, 0 dropped by the capture/);
    const info = await run([tools.capinfos, file]);
    expect(info.code, info.stderr).toBe(0);
    expect(info.stdout).toMatch(/File type:\s+Wireshark\/\.\.\. - pcapng/);
    expect(info.stdout).toMatch(/Number of packets:\s+6/);
    expect(info.stdout).toMatch(/Number of interfaces in file: 2/);
    expect(info.stdout).toContain(`${s.dir}[1]`);
    const rows = await fields(file, 'frame.interface_name', 'frame.interface_description', 'frame.packet_flags_direction', 'eth.src', 'data.data');
    // per frame: in on port 1, then out on port 2; payloads in order
    expect(rows.map((r) => [r[0], Number(r[2])])).toEqual([1, 2, 3].flatMap(() => [[`${s.dir}[1]`, 1], [`${s.dir}[2]`, 2]]));
    expect(rows[0][1]).toMatch(/unix prog: test client 1/);
    expect(rows.map((r) => r[4].slice(0, 2))).toEqual(['00', '00', '01', '01', '02', '02']);
    // the statistics blocks the switch wrote when the capture stopped
    const stats = await run([tools.tshark, '-r', file, '-q', '-z', 'io,stat,0']);
    expect(stats.code).toBe(0);
    await sessions(s, 0);
  });

  it('streams live into tshark -r -, and ends quietly when tshark quits', async () => {
    const s = await sw();
    const c1 = await client(s, 1);
    const c2 = await client(s, 2);
    const live = (): { cap: ReturnType<typeof capture>; ts: ReturnType<typeof spawn>; lines: () => string[]; done: Promise<number | null> } => {
      // a real pipe, as a shell makes it (tshark -r - refuses the socket pair Node would make)
      const [r, w] = native().pipe();
      const cap = capture(['--direction', 'in', s.mgmt, '1'], { stdout: w });
      const ts = spawn(tools.tshark, ['-r', '-', '-l', '-T', 'fields', '-e', 'frame.len', '-e', 'frame.packet_flags_direction'], { stdio: [r, 'pipe', 'pipe'] });
      native().closeFd(r);
      native().closeFd(w);
      let out = '';
      ts.stdout!.on('data', (d) => (out += d));
      return { cap, ts, lines: () => out.trim().split('\n').filter(Boolean), done: new Promise((r) => ts.on('exit', (c) => r(c))) };
    };
    const a = live();
    await sessions(s, 1);
    // each frame shows up in tshark while the capture runs
    for (let i = 0; i < 3; i++) {
      c1.send(frame(B, A, 100 + i));
      await c2.recv();
      await waitFor(() => a.lines().length === i + 1, 10_000, `tshark to print frame ${i + 1} live`);
    }
    a.cap.p.kill('SIGINT');
    expect(await a.cap.done).toBe(0);
    expect(await a.done).toBe(0);
    expect(a.lines().map((l) => l.split('\t').map(Number))).toEqual([[114, 1], [115, 1], [116, 1]]);
    await sessions(s, 0);
    // the reader goes away: vde_capture ends at its next write, quietly, and so does the session
    const b = live();
    await sessions(s, 1);
    b.ts.kill('SIGTERM');
    await b.done;
    for (let i = 0; i < 50 && b.cap.p.exitCode === null; i++) {
      c1.send(frame(B, A, 100));
      await c2.recv();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await b.cap.done).toBe(0);
    expect(b.cap.err()).toBe('');
    await sessions(s, 0);
  });

  it('captures of two switches merge with mergecap into one timeline', async () => {
    const s1 = await sw();
    const s2 = await sw();
    const a1 = await client(s1, 1);
    const a2 = await client(s1, 2);
    const b1 = await client(s2, 1);
    const b2 = await client(s2, 2);
    const dir = tmpdir();
    const f1 = path.join(dir, 's1.pcapng');
    const f2 = path.join(dir, 's2.pcapng');
    const c1 = capture(['-w', f1, '--direction', 'in', s1.mgmt, '1']);
    const c2 = capture(['-w', f2, '--direction', 'in', s2.mgmt, '1']);
    await sessions(s1, 1);
    await sessions(s2, 1);
    // alternate between the switches: the merged file must interleave them in sending order
    for (let i = 0; i < 4; i++) {
      const [from, to] = i % 2 ? [b1, b2] : [a1, a2];
      from.send(frame(B, A, Buffer.alloc(60, i)));
      await to.recv();
      await new Promise((r) => setTimeout(r, 20));
    }
    c1.p.kill('SIGINT');
    c2.p.kill('SIGINT');
    expect(await c1.done).toBe(0);
    expect(await c2.done).toBe(0);
    const merged = path.join(dir, 'lab.pcapng');
    const m = await run([tools.mergecap, '-w', merged, f1, f2]);
    expect(m.code, m.stderr).toBe(0);
    const rows = await fields(merged, 'frame.interface_name', 'data.data');
    expect(rows.map((r) => r[1].slice(0, 2))).toEqual(['00', '01', '02', '03']);
    expect(rows.map((r) => r[0])).toEqual([`${s1.dir}[1]`, `${s2.dir}[1]`, `${s1.dir}[1]`, `${s2.dir}[1]`]);
    expect((await run([tools.capinfos, merged])).code).toBe(0);
  });

  it('a capture client killed with SIGKILL leaves the switch unharmed (no session, no fd left)', async () => {
    const s = await sw();
    const c1 = await client(s, 1);
    const c2 = await client(s, 2);
    const fds = fdCount(s.proc.pid!);
    const cap = capture([s.mgmt]);
    await sessions(s, 1);
    c1.send(frame(B, A));
    expect(await c2.recv()).not.toBeNull();
    cap.p.kill('SIGKILL');
    await cap.done;
    await sessions(s, 0);
    for (let i = 0; i < 20; i++) {
      c1.send(frame(B, A));
      expect(await c2.recv()).not.toBeNull();
    }
    await waitFor(() => fdCount(s.proc.pid!) <= fds, 5000, 'the fds of the capture to go');
    expect((await s.cmd('port/print')).status).toBe(0);
  });

  it('a client that never reads costs only its own drops: forwarding goes on, the switch answers', async () => {
    const s = await sw();
    const c1 = await client(s, 1);
    const c2 = await client(s, 2);
    // a raw client that starts a capture and then never reads
    const raw = net.connect({ path: s.mgmt });
    raw.on('error', () => {});
    await new Promise((r) => raw.on('connect', r));
    raw.write('capture/start\n');
    await sessions(s, 1);
    raw.pause();
    const FRAMES = 3000;
    let got = 0;
    for (let i = 0; i < FRAMES; i++) {
      c1.send(frame(B, A, 1400));
      if (await c2.recv()) got++;
    }
    expect(got).toBe(FRAMES);
    const list = await s.json<Array<{ stages: Array<{ port: number; dir: string; seen: number; captured: number; dropped: number }> }>>('capture/list');
    const in1 = list[0].stages.find((x) => x.port === 1 && x.dir === 'in')!;
    expect(in1.seen).toBe(FRAMES);
    expect(in1.dropped).toBeGreaterThan(0);
    expect(in1.captured + in1.dropped).toBe(FRAMES);
    raw.destroy();
    await sessions(s, 0);
  }, 60_000);

  it('is rootless: a switch and vde_capture of an ordinary user capture; a user without access to the socket is refused in one line', async () => {
    // the switch and the capture run as nobody; the test (root) only sends the frames
    const dir = tmpdir();
    fs.chmodSync(dir, 0o777);
    const asUser = (user: string, group: string): string[] => [tools.setpriv, `--reuid=${user}`, `--regid=${group}`, '--clear-groups', 'env', `HOME=${dir}`, process.execPath];
    const swDir = path.join(dir, 'sw');
    const mgmt = path.join(dir, 'sw.mgmt');
    const [setpriv, ...nobody] = asUser('nobody', 'nogroup');
    const swProc = spawn(setpriv, [...nobody, path.join(ROOT, 'bin', 'vde_switch'), '-s', swDir, '-M', mgmt, '--nostdin'], { stdio: 'ignore' });
    rootless.push(swProc);
    await waitFor(() => fs.existsSync(mgmt) && fs.existsSync(path.join(swDir, 'ctl')), 15_000, 'the switch of nobody');
    expect(fs.statSync(mgmt).uid).not.toBe(0);
    const file = path.join(dir, 'nobody.pcapng');
    const cap = spawn(setpriv, [...nobody, path.join(ROOT, 'bin', 'vde_capture'), '-w', file, '-c', '2', mgmt], { stdio: ['ignore', 'ignore', 'pipe'] });
    rootless.push(cap);
    let err = '';
    cap.stderr!.on('data', (d) => (err += d));
    const done = new Promise<number | null>((r) => cap.on('exit', (c) => r(c)));
    await waitFor(async () => ((await runCommand(mgmt, 'capture/list')).data.join('').match(/session/g) ?? []).length === 1, 15_000, 'the capture of nobody');
    // the frames: a plug of nobody replays two frames in vde2's stream framing (2-byte lengths)
    const f = frame('ff:ff:ff:ff:ff:ff', A);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(f.length);
    const plug = await run([setpriv, ...nobody, path.join(ROOT, 'bin', 'vde_plug'), swDir], { check: false, input: Buffer.concat([len, f, len, f]) });
    expect(plug.code, plug.stderr).toBe(0);
    expect(await done, err).toBe(0);
    expect(fs.statSync(file).uid).not.toBe(0);
    const info = await run([tools.capinfos, '-c', file]);
    expect(info.stdout).toMatch(/Number of packets:\s+2/);
    // another ordinary user may not use the socket (mode 0600), so may not capture
    const other = asUser('daemon', 'daemon');
    const refused = await run([...other, path.join(ROOT, 'bin', 'vde_capture'), '-w', '/dev/null', mgmt], { check: false });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/^vde_capture: \S+: permission denied \(whoever may use the management socket may capture/);
  }, 60_000);

  it('refuses bad input with one line naming it', async () => {
    const s = await sw();
    const bad = await runBin('vde_capture', ['-f', 'vlan 99999', '-w', '/dev/null', s.mgmt]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toEqual([`vde_capture: ${s.mgmt}: filter: expected a VLAN id 0..4095 after "vlan" instead of "99999"`]);
    const port = await runBin('vde_capture', ['-w', '/dev/null', s.mgmt, '70000']);
    expect(port.code).toBe(1);
    expect(port.stderr).toMatch(/--port: 70000 is out of range/);
    const range = await runBin('vde_capture', ['-w', '/dev/null', s.mgmt, '999']);
    expect(range.code).toBe(1);
    expect(range.stderr).toMatch(/port 999 out of range/);
    const nosock = await runBin('vde_capture', ['-w', '/dev/null', '/nonexistent/mgmt']);
    expect(nosock.code).toBe(1);
    expect(nosock.stderr).toMatch(/no such socket/);
    const ctl = await runBin('vde_capture', ['-w', '/dev/null', path.join(s.dir, 'ctl')]);
    expect(ctl.code).toBe(1);
    expect(ctl.stderr).toMatch(/management console/);
    const opt = await runBin('vde_capture', ['--vlan', 'ten', s.mgmt]);
    expect(opt.code).toBe(1);
    expect(opt.stderr).toMatch(/--vlan: "ten" is not a whole number/);
    expect(fs.existsSync('/dev/null')).toBe(true);
    expect(bad.out).not.toMatch(/at .*\.js:\d+/);
  });
});
