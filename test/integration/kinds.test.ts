// Endpoint kinds added for vdeplug4 users: ptp:// between two of our plugs (the first end sends
// before the second has said anything), switch:// / hub:// / multi:// nodes that our plugs and
// Debian's libvdeplug clients join, seqpacket://FD, and vlan:// tagging in front of a switch.
// Debian's vde_plug has switch, hub, multi and ptp modules: the interop runs both ways.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import { ensureTools } from '../helpers/deps.js';
import { StdioPlug } from '../helpers/stdioplug.js';
import { ROOT, startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, tag, VdeClient } from '../helpers/vdeclient.js';

const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const BCAST = 'ff:ff:ff:ff:ff:ff';
const plugs: StdioPlug[] = [];

function ours(...args: string[]): StdioPlug {
  const p = new StdioPlug(process.execPath, [PLUG_BIN, ...args]);
  plugs.push(p);
  return p;
}
function debian(...args: string[]): StdioPlug {
  const p = new StdioPlug('vde_plug', args);
  plugs.push(p);
  return p;
}

/** Sends a broadcast from a (resending while nothing arrives, for ends that attach late) and returns the frame b got. */
async function delivered(a: StdioPlug, b: StdioPlug, src: string, timeoutMs = 5000): Promise<Buffer | null> {
  const f = frame(BCAST, src, 60);
  const hex = src.replace(/:/g, '');
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    a.send(f);
    const g = await b.recvFrom(hex, 200);
    if (g) return g;
  }
  return null;
}

beforeAll(async () => {
  await ensureTools({ vde_plug: 'vdeplug' });
  for (const m of ['switch', 'hub', 'multi', 'ptp']) expect(fs.existsSync(`/usr/lib/x86_64-linux-gnu/vdeplug/libvdeplug_${m}.so`), `Debian vdeplug module ${m}`).toBe(true);
});
afterAll(async () => {
  for (const p of plugs) await p.close();
});

describe('ptp://', () => {
  it('the first end reaches the second before the second has sent anything', async () => {
    const p = path.join(tmpdir(), 'link');
    const first = ours(`ptp://${p}`);
    await waitFor(() => fs.existsSync(p), 5000, 'first end');
    const second = ours(`ptp://${p}`);
    await waitFor(() => fs.existsSync(`${p}+`), 5000, 'second end');
    const got = await delivered(first, second, '02:00:00:00:61:01');
    expect(got).not.toBeNull();
    expect(second.stderr).toBe('');
    expect(await delivered(second, first, '02:00:00:00:61:02')).not.toBeNull();
    await first.close();
    await second.close();
    expect(fs.existsSync(p) || fs.existsSync(`${p}+`)).toBe(false);
    expect(first.stderr).not.toMatch(/errno 107/);
  });
});

describe('switch://, hub://, multi://', () => {
  for (const [kind, owner] of [['switch', 'ours'], ['hub', 'ours'], ['multi', 'ours'], ['switch', 'debian'], ['hub', 'debian'], ['multi', 'debian']] as const) {
    it(`${kind}:// run by ${owner === 'ours' ? 'our' : 'Debian\'s'} vde_plug, joined by ${owner === 'ours' ? 'Debian\'s' : 'our'} plugs`, async () => {
      const dir = path.join(tmpdir(), 'node');
      const host = owner === 'ours' ? ours(`${kind}://${dir}`) : debian(`${kind}://${dir}`);
      await waitFor(() => fs.existsSync(path.join(dir, 'ctl')), 5000, `${kind} node`);
      const join = (): StdioPlug => (owner === 'ours' ? debian(dir) : ours(dir));
      const a = join();
      const b = join();
      // every plug reaches the program that runs the node
      expect(await delivered(a, host, '02:00:00:00:62:01')).not.toBeNull();
      expect(await delivered(b, host, '02:00:00:00:62:02')).not.toBeNull();
      // the program reaches every plug
      const f = frame(BCAST, '02:00:00:00:62:03', 60);
      host.send(f);
      expect(await a.recvFrom('020000006203', 2000)).toEqual(f);
      expect(await b.recvFrom('020000006203', 2000)).toEqual(f);
      // plugs reach each other on a switch or hub, never on a multilink
      a.send(frame(BCAST, '02:00:00:00:62:04', 60));
      const across = await b.recvFrom('020000006204', kind === 'multi' ? 500 : 2000);
      if (kind === 'multi') expect(across).toBeNull();
      else expect(across).not.toBeNull();
      await a.close();
      await b.close();
      await host.close();
      await waitFor(() => !fs.existsSync(dir), 5000, 'node directory removed');
    });
  }

  it('a live node directory is refused, not taken over', async () => {
    const dir = path.join(tmpdir(), 'node');
    const host = ours(`switch://${dir}`);
    await waitFor(() => fs.existsSync(path.join(dir, 'ctl')), 5000, 'node');
    const second = ours(`hub://${dir}`);
    await waitFor(() => second.proc.exitCode !== null, 5000, 'second node refused');
    expect(second.proc.exitCode).toBe(1);
    expect(second.stderr).toMatch(/control socket .*ctl is in use by another process/);
    expect(fs.existsSync(path.join(dir, 'ctl'))).toBe(true);
    await host.close();
  });
});

describe('seqpacket://FD', () => {
  it('carries frames over an inherited SOCK_SEQPACKET socket', async () => {
    const sw = await startSwitch();
    const a = native();
    const [mine, theirs] = a.socketPair(5);
    const p = spawn(process.execPath, [PLUG_BIN, sw.dir, 'seqpacket://3'], { stdio: ['ignore', 'ignore', 'pipe', theirs] });
    a.closeFd(theirs);
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    await waitFor(async () => (await sw.json<unknown[]>('json/port/print')).length === 1, 5000, `plug attached (${err})`);
    const c = await VdeClient.connect(sw.dir);
    const f = frame(BCAST, '02:00:00:00:63:01', 100);
    expect(a.sendFd(mine, f)).toBe(f.length);
    expect(await c.recv(2000)).toEqual(f);
    const g = frame(BCAST, '02:00:00:00:63:02', 100);
    c.send(g);
    await waitFor(() => {
      const got = a.recvFd(mine, 70000);
      return got !== null && got.equals(g);
    }, 3000, 'frame on the seqpacket socket');
    c.close();
    p.kill('SIGTERM');
    await new Promise((r) => p.once('exit', r));
    a.closeFd(mine);
    await sw.stop();
  });
});

describe('vlan://', () => {
  let sw: RunningSwitch;
  beforeAll(async () => {
    sw = await startSwitch();
  });
  afterAll(async () => {
    await sw.stop();
  });

  it('tags on the way to the switch and untags on the way back', async () => {
    const trunk = await VdeClient.connect(sw.dir);
    const p = ours(`vlan://10[tag=20]{vde://${sw.dir}}`);
    await waitFor(async () => (await sw.json<unknown[]>('json/port/print')).length === 2, 5000, `vlan plug attached (${p.stderr})`);
    // untagged from the program: VLAN 10 tagged on the switch
    const f = frame(BCAST, '02:00:00:00:64:01', 60);
    p.send(f);
    expect(await trunk.recv(2000)).toEqual(tag(f, 10));
    // VLAN 10 tagged from the switch: untagged at the program; VLAN 20 stays tagged; VLAN 30 is not passed
    const back = frame(BCAST, '02:00:00:00:64:02', 60);
    trunk.send(tag(back, 10));
    expect(await p.recvFrom('020000006402', 2000)).toEqual(back);
    const t20 = tag(frame(BCAST, '02:00:00:00:64:03', 60), 20);
    trunk.send(t20);
    expect(await p.recvFrom('020000006403', 2000)).toEqual(t20);
    trunk.send(tag(frame(BCAST, '02:00:00:00:64:04', 60), 30));
    expect(await p.recvFrom('020000006404', 500)).toBeNull();
    trunk.close();
    await p.close();
  });

  it('refuses renumbering and 802.1ad with a clear message', async () => {
    for (const [loc, re] of [[`vlan://3[tag=11-12]{vde://${sw.dir}}`, /renumbering VLAN 11 to 12 is not supported/], [`vlan://3/qinq{vde://${sw.dir}}`, /qinq .* is not supported/]] as const) {
      const p = ours(loc);
      await waitFor(() => p.proc.exitCode !== null, 5000, 'refusal');
      expect(p.proc.exitCode).toBe(1);
      expect(p.stderr).toMatch(re);
    }
  });
});
