// Our vde_plug against our switches and Debian's tools: cables between switches (two locators,
// `= command`, dpipe), stdio framing with bad input, reconnect across a switch restart, and the
// point-to-point, UDP, stream and null endpoint kinds, with Debian's vde_plug at the other end
// where vdeplug4 has the same kind.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { StdioPlug } from '../helpers/stdioplug.js';
import { ROOT, startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const BCAST = 'ff:ff:ff:ff:ff:ff';
const UDP_PORT_BASE = 30000 + (process.pid % 10000);
const procs: ChildProcess[] = [];

function plug(args: string[]): { p: ChildProcess; out: () => string; exit: Promise<number | null> } {
  const p = spawn(process.execPath, [PLUG_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  procs.push(p);
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  return { p, out: () => out, exit };
}

async function activePorts(sw: RunningSwitch): Promise<number> {
  return (await sw.json<unknown[]>('json/port/print')).length;
}

/** Sends a broadcast from a and expects it, intact, at b. */
async function crosses(a: VdeClient | StdioPlug, b: VdeClient | StdioPlug, src: string, len = 200): Promise<boolean> {
  const f = frame(BCAST, src, len - 14);
  a.send(f);
  const hex = src.replace(/:/g, '');
  if (b instanceof StdioPlug) return (await b.recvFrom(hex, 2000))?.equals(f) ?? false;
  const end = Date.now() + 2000;
  while (Date.now() < end) {
    const g = await b.recv(end - Date.now());
    if (g && g.subarray(6, 12).toString('hex') === hex) return g.equals(f);
  }
  return false;
}

beforeAll(async () => {
  await ensureTools({ vde_plug: 'vdeplug', dpipe: 'vdeplug' });
});
afterAll(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

describe('vde_plug cables', () => {
  let s1: RunningSwitch;
  let s2: RunningSwitch;
  beforeAll(async () => {
    s1 = await startSwitch();
    s2 = await startSwitch();
  });
  afterAll(async () => {
    await s1.stop();
    await s2.stop();
  });

  it('joins two switches with two locators, jumbo frames included', async () => {
    const c = plug([`vde://${s1.dir}`, s2.dir]);
    await waitFor(async () => (await activePorts(s1)) === 1 && (await activePorts(s2)) === 1, 5000, 'cable up');
    const a = await VdeClient.connect(s1.dir);
    const b = await VdeClient.connect(s2.dir);
    expect(await crosses(a, b, '02:00:00:00:40:01')).toBe(true);
    expect(await crosses(b, a, '02:00:00:00:40:02', 9234)).toBe(true);
    const ports = await s1.json<Array<{ endpoints: Array<{ description: string }> }>>('json/port/print');
    expect(ports.flatMap((p) => p.endpoints.map((e) => e.description)).some((d) => /^vdeplug: user=\S+ pid=\d+$/.test(d))).toBe(true);
    c.p.kill('SIGTERM');
    expect(await c.exit).toBe(0);
    await waitFor(async () => (await activePorts(s1)) === 1, 5000, 'cable gone');
    a.close();
    b.close();
  });

  // three node plugs start at once here: on a loaded 2-CPU machine that alone took 6.2 s
  const CABLES_UP_TIMEOUT_MS = 20_000;

  it('lays a cable with "vde_plug DIR = vde_plug DIR", with Debian dpipe and mixed with Debian vde_plug', async () => {
    const viaEq = plug([s1.dir, '=', process.execPath, PLUG_BIN, s2.dir]);
    const mixed = spawn('dpipe', [process.execPath, PLUG_BIN, s1.dir, '=', 'vde_plug', s2.dir], { stdio: 'ignore' });
    procs.push(mixed);
    await waitFor(async () => (await activePorts(s1)) === 2 && (await activePorts(s2)) === 2, CABLES_UP_TIMEOUT_MS, 'two cables up');
    // two parallel cables make a loop: keep only one at a time
    const a = await VdeClient.connect(s1.dir);
    const b = await VdeClient.connect(s2.dir);
    mixed.kill('SIGTERM');
    await waitFor(async () => (await activePorts(s2)) === 2, 5000, 'mixed cable gone');
    expect(await crosses(a, b, '02:00:00:00:41:01')).toBe(true);
    viaEq.p.kill('SIGTERM');
    await viaEq.exit;
    const deb = spawn('dpipe', [process.execPath, PLUG_BIN, s1.dir, '=', 'vde_plug', s2.dir], { stdio: 'ignore' });
    procs.push(deb);
    await waitFor(async () => (await activePorts(s1)) === 2 && (await activePorts(s2)) === 2, CABLES_UP_TIMEOUT_MS, 'mixed cable up');
    expect(await crosses(a, b, '02:00:00:00:41:02', 1500)).toBe(true);
    expect(await crosses(b, a, '02:00:00:00:41:03', 1500)).toBe(true);
    deb.kill('SIGTERM');
    a.close();
    b.close();
    await waitFor(async () => (await activePorts(s1)) === 0, 5000, 'all gone');
  });

  it('re-attaches with --reconnect after the switch restarts, and exits without it', async () => {
    const s3 = await startSwitch();
    const dir3 = s3.dir;
    const withFlag = plug(['--reconnect', s1.dir, dir3]);
    const without = plug([s1.dir, dir3]);
    await waitFor(async () => (await activePorts(s3)) === 2, 5000, 'plugs on s3');
    await s3.stop();
    expect(await without.exit).toBe(1);
    expect(without.out()).toMatch(/closed the connection|no such|refused/);
    fs.mkdirSync(path.dirname(dir3), { recursive: true }); // stop() removed the temporary parent
    const s3b = await startSwitch([], { dir: dir3 });
    const t0 = Date.now();
    await waitFor(async () => (await activePorts(s3b)) === 1, 5000, 'reconnected plug');
    const a = await VdeClient.connect(s1.dir);
    const b = await VdeClient.connect(s3b.dir);
    await waitFor(async () => crosses(a, b, '02:00:00:00:42:01'), 5000, 'frames flowing again');
    expect(Date.now() - t0).toBeLessThan(3000);
    withFlag.p.kill('SIGTERM');
    a.close();
    b.close();
    await s3b.stop();
  });
});

describe('vde_plug endpoints and bad input', () => {
  let sw: RunningSwitch;
  beforeAll(async () => {
    sw = await startSwitch();
  });
  afterAll(async () => {
    await sw.stop();
  });

  it('speaks the 2-byte stream on stdin/stdout and ignores zero-length records', async () => {
    const p = new StdioPlug(process.execPath, [PLUG_BIN, sw.dir]);
    procs.push(p.proc);
    await waitFor(async () => (await activePorts(sw)) === 1, 5000, 'plug attached');
    const c = await VdeClient.connect(sw.dir);
    p.proc.stdin!.write(Buffer.from([0, 0])); // no-op record
    expect(await crosses(p, c, '02:00:00:00:43:01', 9234)).toBe(true);
    expect(await crosses(c, p, '02:00:00:00:43:02', 64)).toBe(true);
    c.close();
    await p.close();
  });

  const bad: Array<[string, Buffer, RegExp]> = [
    ['a length above the maximum', Buffer.from([0xff, 0xff, 1, 2, 3]), /frame length above the limit/],
    ['a frame cut by end of input', Buffer.from([0x00, 0x40, 1, 2, 3]), /end of stream inside a frame/],
  ];
  for (const [name, bytes, re] of bad) {
    it(`reports ${name} on stdin and exits 1 without passing anything on`, async () => {
      const c = await VdeClient.connect(sw.dir);
      const p = plug([sw.dir]);
      await waitFor(async () => (await activePorts(sw)) === 2, 5000, 'plug attached');
      p.p.stdin!.end(bytes);
      expect(await p.exit).toBe(1);
      expect(p.out()).toMatch(re);
      expect(await c.recv(300)).toBeNull();
      c.close();
    });
  }

  it('exits 0 when a shell pipe on stdin ends (hang-up, not an error)', async () => {
    const p = spawn('sh', ['-c', `sleep 0.5 | ${process.execPath} ${PLUG_BIN} ${sw.dir}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(p);
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    const code = await new Promise((r) => p.on('exit', r));
    expect(err).toBe('');
    expect(code).toBe(0);
  });

  it('exits 0 at a clean end of stdin', async () => {
    const p = plug([sw.dir]);
    await waitFor(async () => (await activePorts(sw)) === 1, 5000, 'plug attached');
    p.p.stdin!.end();
    expect(await p.exit).toBe(0);
  });

  const locators: Array<[string[], RegExp]> = [
    [['foo://x'], /unknown scheme "foo"/],
    [['udp://5000->nohostport'], /udp/],
    [['vde:///nonexistent/switch'], /no such directory/],
    [['ptp://'], /ptp/],
    [['a', 'b', 'c'], /too many locators/],
    [['--mode', '99', '/tmp'], /--mode: "99" is not an octal mode/],
    [['--bogus-option'], /Unknown argument/i],
    [['/tmp/x', '='], /must be followed by a command/],
  ];
  for (const [args, re] of locators) {
    it(`refuses ${args.join(' ')} with a message naming the problem`, async () => {
      const p = plug(args);
      expect(await p.exit).toBe(1);
      expect(p.out()).toMatch(re);
    });
  }

  it('stays up when both ends live only on the engine thread (null:// <-> udp://)', async () => {
    const p = plug(['null://', `udp://${UDP_PORT_BASE + 5}->127.0.0.1:${UDP_PORT_BASE + 6}`]);
    // running once its UDP socket is bound (however loaded the machine), then still running a while later
    const bound = (): boolean => fs.readFileSync('/proc/net/udp', 'utf8').includes(`:${(UDP_PORT_BASE + 5).toString(16).toUpperCase().padStart(4, '0')} `);
    await waitFor(() => bound() || p.p.exitCode !== null, 15_000, 'the plug to bind its UDP port');
    await new Promise((r) => setTimeout(r, 500));
    expect(p.p.exitCode).toBeNull();
    p.p.kill('SIGTERM');
    expect(await p.exit).toBe(0);
  });

  it('discards frames sent to null://', async () => {
    const p = plug([sw.dir, 'null://']);
    const c = await VdeClient.connect(sw.dir);
    await waitFor(async () => (await activePorts(sw)) === 2, 5000, 'plug attached');
    for (let i = 0; i < 100; i++) c.send(frame(BCAST, '02:00:00:00:44:01'));
    await new Promise((r) => setTimeout(r, 200));
    expect(p.p.exitCode).toBeNull();
    c.close();
    p.p.kill('SIGTERM');
    expect(await p.exit).toBe(0);
  });

  it('joins the switch to Debian vde_plug over ptp:// (vdeplug4 4.0.1 datagrams) and over udp://', async () => {
    const base = tmpdir();
    const ptp = path.join(base, 'ptp');
    const ours = plug([sw.dir, `ptp://${ptp}`]);
    await waitFor(() => fs.existsSync(ptp), 5000, 'ptp socket');
    const theirs = new StdioPlug('vde_plug', [`ptp://${ptp}`]);
    procs.push(theirs.proc);
    const c = await VdeClient.connect(sw.dir);
    await waitFor(async () => {
      theirs.send(frame(BCAST, '02:00:00:00:45:01'));
      const g = await c.recv(200);
      return g !== null;
    }, 5000, 'ptp frames from Debian');
    expect(await crosses(c, theirs, '02:00:00:00:45:02')).toBe(true);
    await theirs.close();
    ours.p.kill('SIGTERM');
    // UDP tunnel on loopback: ours <-> Debian's
    const u1 = UDP_PORT_BASE, u2 = UDP_PORT_BASE + 1;
    const ourUdp = plug([sw.dir, `udp://${u1}->127.0.0.1:${u2}`]);
    const theirUdp = new StdioPlug('vde_plug', [`udp://${u2}->127.0.0.1:${u1}`]);
    procs.push(theirUdp.proc);
    await waitFor(async () => (await activePorts(sw)) === 2, 5000, 'udp plug attached');
    await waitFor(async () => {
      theirUdp.send(frame(BCAST, '02:00:00:00:46:01'));
      return (await c.recv(200)) !== null;
    }, 5000, 'udp frames from Debian');
    expect(await crosses(c, theirUdp, '02:00:00:00:46:02', 1400)).toBe(true);
    await theirUdp.close();
    ourUdp.p.kill('SIGTERM');
    c.close();
    fs.rmSync(base, { recursive: true, force: true });
  });
});
