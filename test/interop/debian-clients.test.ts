// Debian's own VDE clients against our switch: vdeplug4's vde_plug in stdio mode (2-byte
// framing, jumbo frames, port requests), dpipe cables between two of our switches, a mixed
// cable between Debian's vde_switch and ours, vde2's wirefilter joining two of our switches, and
// vde2's unixcmd driving our management console with its stock expect-like script.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { StdioPlug } from '../helpers/stdioplug.js';
import { startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame } from '../helpers/vdeclient.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';

beforeAll(async () => {
  await ensureTools({ vde_plug: 'vdeplug', dpipe: 'vdeplug', vde_switch: 'vde2', wirefilter: 'vde2', unixcmd: 'vde2' });
});

describe('Debian vde_plug (vdeplug4) on our switch', () => {
  let sw: RunningSwitch;
  const plugs: StdioPlug[] = [];
  beforeAll(async () => {
    sw = await startSwitch();
  });
  afterAll(async () => {
    for (const p of plugs) await p.close();
    await sw.stop();
  });
  const plug = async (loc: string): Promise<StdioPlug> => {
    const p = new StdioPlug('vde_plug', [loc]);
    plugs.push(p);
    return p;
  };
  const active = async (n: number) => waitFor(async () => (await sw.json<unknown[]>('json/port/print')).length >= n, 5000, `${n} active ports`);

  it('exchanges frames between two plugs, up to 9000-byte jumbo frames, intact', async () => {
    const a = await plug(sw.dir);
    const b = await plug(`vde://${sw.dir}`);
    await active(2);
    for (const len of [60, 1514, 9014]) {
      const f = frame(BCAST, '02:00:00:00:20:01', len - 14);
      a.send(f);
      const got = await b.recvFrom('020000002001');
      expect(got?.equals(f)).toBe(true);
    }
    const back = frame('02:00:00:00:20:01', '02:00:00:00:20:02', 100);
    b.send(back);
    expect((await a.recvFrom('020000002002'))?.equals(back)).toBe(true);
    const ports = await sw.json<Array<{ endpoints: Array<{ description: string }> }>>('json/port/print');
    expect(ports.flatMap((p) => p.endpoints.map((e) => e.description)).every((d) => /^vdeplug: user=root pid=\d+$/.test(d))).toBe(true);
  });

  it('lands on the requested port with vde://DIR[N]', async () => {
    await plug(`vde://${sw.dir}[7]`);
    await waitFor(async () => (await sw.cmd('port/print 7')).status === 0, 5000, 'port 7');
    const text = await sw.cmd('port/print 7');
    expect(text.data[0]).toBe('Port 0007 untagged_vlan=0000 ACTIVE - Unnamed Allocatable');
    expect(text.data[3]).toMatch(/^ OUT: pkts +\d+ +bytes +\d+$/);
    expect(text.data[4]).toMatch(/^ {2}-- endpoint ID \d{4} module unix prog {3}: vdeplug: user=root pid=\d+$/);
  });
});

describe('cables', () => {
  it('joins two of our switches with dpipe vde_plug = vde_plug', async () => {
    const s1 = await startSwitch();
    const s2 = await startSwitch();
    const cable = spawn('dpipe', ['vde_plug', s1.dir, '=', 'vde_plug', s2.dir], { stdio: 'ignore' });
    const a = new StdioPlug('vde_plug', [s1.dir]);
    const b = new StdioPlug('vde_plug', [s2.dir]);
    try {
      await waitFor(async () => (await s1.json<unknown[]>('json/port/print')).length === 2 && (await s2.json<unknown[]>('json/port/print')).length === 2, 5000, 'cable up');
      const f = frame(BCAST, '02:00:00:00:21:01', 200);
      a.send(f);
      expect((await b.recvFrom('020000002101'))?.equals(f)).toBe(true);
      const g = frame('02:00:00:00:21:01', '02:00:00:00:21:02', 8000);
      b.send(g);
      expect((await a.recvFrom('020000002102'))?.equals(g)).toBe(true);
    } finally {
      await a.close();
      await b.close();
      cable.kill('SIGTERM');
      await s1.stop();
      await s2.stop();
    }
  });

  it('joins Debian vde_switch and ours with a mixed cable', async () => {
    const base = tmpdir();
    const ddir = path.join(base, 'debian');
    const deb = spawn('vde_switch', ['-s', ddir], { stdio: ['pipe', 'ignore', 'ignore'] });
    const ours = await startSwitch();
    let cable: ReturnType<typeof spawn> | null = null;
    const plugs: StdioPlug[] = [];
    try {
      await waitFor(() => fs.existsSync(path.join(ddir, 'ctl')), 5000, 'Debian switch');
      // not detached: vdeplug4's dpipe makes its own process group and fails inside a new session
      cable = spawn('dpipe', ['vde_plug', ddir, '=', 'vde_plug', ours.dir], { stdio: 'ignore' });
      const a = new StdioPlug('vde_plug', [ddir]);
      const b = new StdioPlug('vde_plug', [ours.dir]);
      plugs.push(a, b);
      await waitFor(async () => (await ours.json<unknown[]>('json/port/print')).length === 2, 5000, 'cable on our side');
      await new Promise((r) => setTimeout(r, 300));
      const f = frame(BCAST, '02:00:00:00:22:01', 500);
      a.send(f);
      expect((await b.recvFrom('020000002201'))?.equals(f)).toBe(true);
      const g = frame('02:00:00:00:22:01', '02:00:00:00:22:02', 1000);
      b.send(g);
      expect((await a.recvFrom('020000002202'))?.equals(g)).toBe(true);
    } finally {
      for (const p of plugs) await p.close();
      cable?.kill('SIGTERM');
      deb.kill('SIGTERM');
      await ours.stop();
      execFileSync('rm', ['-rf', base]);
    }
  });
});

describe('vde2 tools', () => {
  it('joins two of our switches with wirefilter -v', async () => {
    const s1 = await startSwitch();
    const s2 = await startSwitch();
    // plug mode with both sides plugs uses stdin as a console: keep it open (spawn's pipe)
    const wf = spawn('wirefilter', ['-v', `${s1.dir}:${s2.dir}`], { stdio: ['pipe', 'ignore', 'ignore'] });
    const a = new StdioPlug('vde_plug', [s1.dir]);
    const b = new StdioPlug('vde_plug', [s2.dir]);
    try {
      await waitFor(async () => (await s2.json<Array<{ endpoints: Array<{ description: string }> }>>('json/port/print')).some((p) => p.endpoints.some((e) => e.description.startsWith('vde_crosscable'))), 5000, 'wirefilter on s2');
      await waitFor(async () => (await s1.json<unknown[]>('json/port/print')).length === 2, 5000, 'wirefilter and plug on s1');
      const f = frame(BCAST, '02:00:00:00:23:01', 300);
      a.send(f);
      expect((await b.recvFrom('020000002301'))?.equals(f)).toBe(true);
      const g = frame('02:00:00:00:23:01', '02:00:00:00:23:02', 300);
      b.send(g);
      expect((await a.recvFrom('020000002302'))?.equals(g)).toBe(true);
    } finally {
      await a.close();
      await b.close();
      wf.kill('SIGTERM');
      await s1.stop();
      await s2.stop();
    }
  });

  it("gives vde2's unixcmd (stock script /etc/vde2/vdecmd) the same answers as Debian's vde_switch", async () => {
    const base = tmpdir();
    const refMgmt = path.join(base, 'ref.mgmt');
    const ref = spawn('vde_switch', ['-s', path.join(base, 'ref'), '-M', refMgmt], { stdio: ['pipe', 'ignore', 'ignore'] });
    const sw = await startSwitch();
    const unixcmd = (sock: string, cmd: string) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn('unixcmd', ['-s', sock, '-f', '/etc/vde2/vdecmd', ...cmd.split(' ')], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout!.on('data', (d) => (out += d));
        const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
        p.on('exit', (code) => {
          clearTimeout(t);
          resolve({ code, out });
        });
      });
    try {
      await waitFor(() => fs.existsSync(refMgmt), 5000, 'reference switch');
      for (const cmd of ['port/showinfo', 'hash/showinfo', 'vlan/create 4094', 'vlan/create 12', 'port/print 3', 'no/such/command']) {
        const mine = await unixcmd(sw.mgmt, cmd);
        const theirs = await unixcmd(refMgmt, cmd);
        expect({ cmd, ...mine }).toEqual({ cmd, ...theirs });
      }
      expect((await unixcmd(sw.mgmt, 'port/showinfo')).out.replace(/\0/g, '')).toBe('Numports=32\nHUB=false\ncounters=true\n');
    } finally {
      ref.kill('SIGTERM');
      await sw.stop();
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
