/**
 * Link emulation with real processes and no root: our wirefilter in pipe mode (the descriptors
 * dpipe hands it: stdin/stdout and ALTERNATE_STDIN/ALTERNATE_STDOUT, or stdin -> stdout alone),
 * between two of our switches with -v and as positional locators (frames sent and counted by
 * test clients of the switches), with its management socket, rc files, --daemon and --seed; and
 * the same impairments on a vde_plug cable (--impair, --mgmt) and on a switch port
 * (port/impair, rc files, json/port/impair). Every assertion is on what the frames experienced:
 * counts, order, bytes, and delays with generous bounds (the CPUs are shared).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/vdecmd/main.js';
import { ROOT, startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

const WF = path.join(ROOT, 'bin', 'wirefilter');
const PLUG = path.join(ROOT, 'bin', 'vde_plug');
const A = '02:00:00:00:aa:01';
const B = '02:00:00:00:bb:02';
const SEQ_OFFSET = 14;
/** How long a started filter may take to serve. */
const START_TIMEOUT_MS = 10_000;

const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

/** Starts one of our commands; its output is collected. */
function start(bin: string, args: string[], stdio: Array<'pipe' | 'ignore'> = ['pipe', 'pipe', 'pipe'], env?: NodeJS.ProcessEnv): { p: ChildProcess; out: () => string } {
  const p = spawn(process.execPath, [bin, ...args], { stdio, env: env ?? process.env });
  procs.push(p);
  let out = '';
  p.stderr?.on('data', (d) => (out += d));
  return { p, out: () => out };
}

async function stop(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return p.exitCode;
  const done = new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
  p.kill('SIGTERM');
  return done;
}

/** A frame with a sequence number. */
function seqFrame(seq: number, payloadBytes = 46, src = A, dst = B): Buffer {
  const f = frame(dst, src, payloadBytes);
  f.writeUInt32BE(seq, SEQ_OFFSET);
  return f;
}

/** Length-prefixed (vde2's 2-byte framing) bytes of frames. */
function framed(fs: Buffer[]): Buffer {
  return Buffer.concat(fs.map((f) => Buffer.concat([Buffer.from([f.length >> 8, f.length & 0xff]), f])));
}

/** Splits 2-byte framed bytes into frames. */
class Deframer {
  private buf = Buffer.alloc(0);
  frames: Array<{ f: Buffer; at: number }> = [];
  push(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
      const n = this.buf.readUInt16BE(0);
      this.frames.push({ f: this.buf.subarray(2, 2 + n), at: Date.now() });
      this.buf = this.buf.subarray(2 + n);
    }
  }
}

/** Sends frames from a client (retrying while its socket is full) and collects what another client receives. */
async function exchange(from: VdeClient, to: VdeClient, frames: Buffer[], windowMs = 600): Promise<Buffer[]> {
  for (const f of frames) {
    const until = Date.now() + 2000;
    while (!from.send(f) && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setImmediate(r));
  }
  return to.drain(windowMs);
}

describe('wirefilter in pipe mode (the descriptors dpipe hands it)', () => {
  it('bidirectional: stdin -> ALTERNATE_STDOUT left to right (delayed), ALTERNATE_STDIN -> stdout right to left', async () => {
    const env = { ...process.env, ALTERNATE_STDIN: '3', ALTERNATE_STDOUT: '4' };
    const { p, out } = start(WF, ['-d', 'LR150'], ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'], env);
    const lr = new Deframer();
    const rl = new Deframer();
    (p.stdio[4] as NodeJS.ReadableStream).on('data', (d: Buffer) => lr.push(d));
    p.stdout!.on('data', (d: Buffer) => rl.push(d));
    await new Promise((r) => setTimeout(r, 800)); // start-up of node
    const t0 = Date.now();
    p.stdin!.write(framed([seqFrame(1), seqFrame(2, 1400)]));
    (p.stdio[3] as NodeJS.WritableStream).write(framed([seqFrame(3, 46, B, A)]));
    await waitFor(() => lr.frames.length === 2 && rl.frames.length === 1, 5000, `frames through the filter (${lr.frames.length} LR, ${rl.frames.length} RL; ${out()})`);
    expect(lr.frames.map((x) => x.f.readUInt32BE(SEQ_OFFSET))).toEqual([1, 2]);
    expect(lr.frames[1].f.length).toBe(1400 + 14);
    expect(lr.frames[0].at - t0).toBeGreaterThanOrEqual(145);
    expect(rl.frames[0].f.readUInt32BE(SEQ_OFFSET)).toBe(3);
    expect(rl.frames[0].at - t0).toBeLessThan(lr.frames[0].at - t0);
    p.stdin!.end(); // EOF on stdin ends the filter with status 0, as vde2's
    expect(await new Promise((r) => p.once('exit', r))).toBe(0);
  });

  it('monodirectional without ALTERNATE_* descriptors: stdin -> stdout, losses counted', async () => {
    const env = { ...process.env };
    delete env.ALTERNATE_STDIN;
    delete env.ALTERNATE_STDOUT;
    const { p } = start(WF, ['-l', '100'], ['pipe', 'pipe', 'pipe'], env);
    const d = new Deframer();
    p.stdout!.on('data', (x: Buffer) => d.push(x));
    await new Promise((r) => setTimeout(r, 800));
    p.stdin!.write(framed([seqFrame(1), seqFrame(2)]));
    await new Promise((r) => setTimeout(r, 500));
    expect(d.frames).toHaveLength(0);
    p.stdin!.end();
    expect(await new Promise((r) => p.once('exit', r))).toBe(0);
    const { p: p2 } = start(WF, [], ['pipe', 'pipe', 'pipe'], env);
    const d2 = new Deframer();
    p2.stdout!.on('data', (x: Buffer) => d2.push(x));
    p2.stdin!.write(framed([seqFrame(1), seqFrame(2)]));
    await waitFor(() => d2.frames.length === 2, 5000, 'frames stdin -> stdout');
    p2.stdin!.end();
    await new Promise((r) => p2.once('exit', r));
  });

  it('refuses a terminal or file as stdin with a one-line message', async () => {
    const { p, out } = start(WF, [], ['ignore', 'pipe', 'pipe']);
    expect(await new Promise((r) => p.once('exit', r))).toBe(1);
    expect(out()).toMatch(/^wirefilter: stdin is not a pipe: run wirefilter inside dpipe, or give -v SOCK1:SOCK2 or two locators\n$/);
  });
});

describe('wirefilter between two switches', () => {
  let s1: RunningSwitch;
  let s2: RunningSwitch;
  let c1: VdeClient;
  let c2: VdeClient;
  let wf: ChildProcess | null = null;
  let mgmt = '';

  async function setup(args: string[], viaV = true): Promise<void> {
    s1 = await startSwitch();
    s2 = await startSwitch();
    c1 = await VdeClient.connect(s1.dir);
    c2 = await VdeClient.connect(s2.dir);
    mgmt = path.join(tmpdir(), 'wf.mgmt');
    const ends = viaV ? ['-v', `${s1.dir}:${s2.dir}`] : [`vde://${s1.dir}`, `vde://${s2.dir}`];
    const w = start(WF, ['-M', mgmt, '--nostdin', ...args, ...ends]);
    wf = w.p;
    await waitFor(() => fs.existsSync(mgmt) || w.p.exitCode !== null, START_TIMEOUT_MS, `wirefilter (${w.out()})`);
    if (w.p.exitCode !== null) throw new Error(w.out());
    await waitFor(async () => (await s1.json<unknown[]>('json/port/print')).length === 2 && (await s2.json<unknown[]>('json/port/print')).length === 2, START_TIMEOUT_MS, 'both ends plugged');
    // teach both switches where the clients are
    c1.send(frame('ff:ff:ff:ff:ff:ff', A));
    c2.send(frame('ff:ff:ff:ff:ff:ff', B));
    await c1.drain(300);
    await c2.drain(300);
  }

  afterEach(async () => {
    if (wf) await stop(wf);
    wf = null;
    c1?.close();
    c2?.close();
    await s1?.stop();
    await s2?.stop();
  });

  const seqs = (fs: Buffer[]): number[] => fs.filter((f) => f.length >= 18).map((f) => f.readUInt32BE(SEQ_OFFSET));

  it('delays one direction, passes the other, and carries 9000-byte frames (vde2 loses frames above 2 KB)', async () => {
    await setup(['-d', 'LR80']);
    const t0 = Date.now();
    c1.send(seqFrame(1, 9000));
    c2.send(seqFrame(2, 46, B, A));
    const back = await c1.recv(2000);
    const tBack = Date.now() - t0;
    const there = await c2.recv(2000);
    const tThere = Date.now() - t0;
    expect(back?.readUInt32BE(SEQ_OFFSET)).toBe(2);
    expect(there?.length).toBe(9014);
    expect(tThere).toBeGreaterThanOrEqual(78);
    expect(tBack).toBeLessThan(tThere);
    const info = await runCommand(mgmt, 'showinfo');
    expect(info.data).toContain('Delay  L->R 80+0U   R->L 0+0U');
  });

  it('loses frames as configured, counts them, and changes at run time without losing held frames', async () => {
    await setup(['-l', 'LR100']);
    expect(await exchange(c1, c2, [seqFrame(1), seqFrame(2)], 300)).toEqual([]);
    let j = JSON.parse((await runCommand(mgmt, 'json/showinfo')).data.join('')) as { LR: { counters: Record<string, number> } };
    expect(j.LR.counters.lost).toBe(3); // and the broadcast that set-up sent
    expect((await s2.json<Array<{ counters: { drops: Record<string, number> } }>>('json/port/print')).length).toBe(2);
    expect((await runCommand(mgmt, 'loss 0')).status).toBe(0);
    expect((await runCommand(mgmt, 'delay 500')).status).toBe(0);
    for (let i = 10; i < 20; i++) c1.send(seqFrame(i));
    await new Promise((r) => setTimeout(r, 150));
    j = JSON.parse((await runCommand(mgmt, 'json/showinfo')).data.join('')) as typeof j;
    expect(j.LR.counters.held).toBe(10);
    expect((await runCommand(mgmt, 'delay 0')).status).toBe(0); // held frames stay, and keep their order
    for (let i = 20; i < 25; i++) c1.send(seqFrame(i));
    const got = seqs(await c2.drain(1200));
    expect(got).toEqual([...Array(15).keys()].map((i) => i + 10));
  });

  it('replays the same losses for the same --seed, other losses for another', async () => {
    const run = async (seed: number): Promise<number[]> => {
      await setup(['-l', 'LR50', '--seed', String(seed)]);
      const frames = Array.from({ length: 200 }, (_, i) => seqFrame(i));
      const got: number[] = [];
      for (let k = 0; k < frames.length; k += 20) {
        for (const f of frames.slice(k, k + 20)) c1.send(f);
        got.push(...seqs(await c2.drain(150)));
      }
      got.push(...seqs(await c2.drain(300)));
      await stop(wf!);
      wf = null;
      c1.close();
      c2.close();
      await s1.stop();
      await s2.stop();
      return got;
    };
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    expect(a.length).toBeGreaterThan(60);
    expect(a.length).toBeLessThan(140);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('runs an rc file (a Markov chain) before the first frame, with locators as arguments', async () => {
    const rc = path.join(tmpdir(), 'wf.rc');
    fs.writeFileSync(rc, ['# two states: clear and broken', 'markov-numnodes 2', 'markov-name 0,clear', 'markov-name 1,broken', 'loss 100[1]', 'setedge 0,1,100', 'setedge 1,0,0', 'markov-time 20', ''].join('\n'));
    await setup(['-f', rc], false);
    // the chain moves to "broken" at its first step and stays: everything is lost
    await new Promise((r) => setTimeout(r, 100));
    expect(await exchange(c1, c2, [seqFrame(1), seqFrame(2)], 300)).toEqual([]);
    expect((await runCommand(mgmt, 'showcurrent')).data).toEqual(['Current Markov Node 1 "broken" (0,..,1)']);
    expect((await runCommand(mgmt, 'markov-setnode 0')).status).toBe(0);
    expect((await runCommand(mgmt, 'markov-numnodes 1')).status).toBe(0);
    expect(seqs(await exchange(c1, c2, [seqFrame(3)], 300))).toEqual([3]);
  });

  it('goes to the background with --daemon and --pidfile, and cleans up on SIGTERM', async () => {
    s1 = await startSwitch();
    s2 = await startSwitch();
    const base = tmpdir();
    const r = await new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, [WF, '--daemon', '--pidfile', 'wf.pid', '-M', 'wf.mgmt', '-v', `${s1.dir}:${s2.dir}`, '--logfile', 'wf.log'], { cwd: base, stdio: 'ignore' });
      p.once('exit', resolve);
    });
    expect(r).toBe(0);
    const pid = parseInt(fs.readFileSync(path.join(base, 'wf.pid'), 'utf8'), 10);
    expect((await runCommand(path.join(base, 'wf.mgmt'), 'showinfo')).status).toBe(0);
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !fs.existsSync(path.join(base, 'wf.pid')), 5000, 'the daemon to exit');
    expect(fs.existsSync(path.join(base, 'wf.mgmt'))).toBe(false);
    c1 = await VdeClient.connect(s1.dir);
    c2 = await VdeClient.connect(s2.dir);
  });
});

describe('impairments on a vde_plug cable and on a switch port', () => {
  const sws: RunningSwitch[] = [];
  afterEach(async () => {
    for (const s of sws.splice(0)) await s.stop();
  });

  it('vde_plug --impair loses one direction; its console changes that at run time', async () => {
    const s1 = await startSwitch();
    const s2 = await startSwitch();
    sws.push(s1, s2);
    const c1 = await VdeClient.connect(s1.dir);
    const c2 = await VdeClient.connect(s2.dir);
    const mgmt = path.join(tmpdir(), 'plug.mgmt');
    const { p, out } = start(PLUG, ['--impair', 'LR:loss 100%', '--seed', '3', '--mgmt', mgmt, s1.dir, s2.dir]);
    try {
      await waitFor(() => fs.existsSync(mgmt) || p.exitCode !== null, START_TIMEOUT_MS, `vde_plug (${out()})`);
      c1.send(frame('ff:ff:ff:ff:ff:ff', A));
      c2.send(frame('ff:ff:ff:ff:ff:ff', B));
      expect(await c2.drain(300)).toEqual([]); // left to right: lost
      expect((await c1.drain(300)).length).toBe(1); // right to left: passes
      const j = JSON.parse((await runCommand(mgmt, 'json/showinfo')).data.join('')) as { impair: Array<{ dir: string; spec: string; values: Record<string, number> }> };
      expect(j.impair.find((x) => x.dir === 'LR')).toMatchObject({ spec: 'loss 100%', values: { lost: 1, seed: 3 } });
      const bad = await runCommand(mgmt, 'impair LR delay 10');
      expect(bad.status).toBe(22);
      expect(bad.data).toEqual(['impair: delay: "10" needs a unit (us, ms, s)']);
      expect((await runCommand(mgmt, 'impair LR delay 50ms')).status).toBe(0);
      const t0 = Date.now();
      c1.send(seqFrame(5));
      const f = await c2.recv(2000);
      expect(f?.readUInt32BE(SEQ_OFFSET)).toBe(5);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(48);
    } finally {
      c1.close();
      c2.close();
      await stop(p);
    }
  });

  it('vde_plug refuses a bad --impair before opening anything', async () => {
    const { p, out } = start(PLUG, ['--impair', 'LR:delay 10ms', '--impair', 'LR:loss 1%', 'null://', 'null://']);
    expect(await new Promise((r) => p.once('exit', r))).toBe(1);
    expect(out()).toMatch(/--impair: direction LR is given twice/);
    const { p: p2, out: out2 } = start(PLUG, ['--impair', 'loss 5% loss gemodel 1%', 'null://', 'null://']);
    expect(await new Promise((r) => p2.once('exit', r))).toBe(1);
    expect(out2()).toMatch(/--impair: loss is given twice/);
  });

  it('port/impair delays what a port sends, from an rc file and at run time, with counters in JSON', async () => {
    const rc = path.join(tmpdir(), 'sw.rc');
    fs.writeFileSync(rc, 'port/create 2\nport/impair 2 out delay 100ms\n');
    const sw = await startSwitch(['-f', rc]);
    sws.push(sw);
    const a = await VdeClient.connect(sw.dir, { port: 1 });
    const b = await VdeClient.connect(sw.dir, { port: 2 });
    try {
      const t0 = Date.now();
      a.send(seqFrame(1, 46, A, 'ff:ff:ff:ff:ff:ff'));
      const f = await b.recv(2000);
      expect(f?.readUInt32BE(SEQ_OFFSET)).toBe(1);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(95);
      const bad = await sw.cmd('port/impair 2 out rate 10');
      expect(bad.status).toBe(22);
      expect(bad.data[0]).toMatch(/port\/impair: rate: "10" needs a unit/);
      expect((await sw.cmd('port/impair 2 both loss 100%')).status).toBe(0);
      a.send(seqFrame(2, 46, A, 'ff:ff:ff:ff:ff:ff'));
      b.send(seqFrame(3, 46, B, 'ff:ff:ff:ff:ff:ff'));
      expect(await b.drain(300)).toEqual([]);
      expect(await a.drain(300)).toEqual([]);
      const j = await sw.json<Array<{ port: number; dir: string; spec: string; values: Record<string, number> }>>('json/port/impair 2');
      expect(j.map((x) => `${x.dir}:${x.spec}:${x.values.lost}`)).toEqual(['in:loss 100%:1', 'out:loss 100%:1']);
      const text = await sw.cmd('port/showimpair');
      expect(text.data[0]).toBe('Port 0002 in: loss 100%');
      expect((await sw.cmd('port/impair 2 both off')).status).toBe(0);
      a.send(seqFrame(4, 46, A, 'ff:ff:ff:ff:ff:ff'));
      expect((await b.recv(2000))?.readUInt32BE(SEQ_OFFSET)).toBe(4);
      const drops = (await sw.json<Array<{ port: number; counters: { drops: Record<string, number> } }>>('json/port/print')).find((x) => x.port === 2);
      expect(drops?.counters.drops.loss).toBe(2);
    } finally {
      a.close();
      b.close();
    }
  });
});
