/*
 * Loop protection with real cables and a real Linux bridge. Two vde-ts switches joined by two
 * Debian `dpipe vde_plug = vde_plug` cables must converge to one forwarding path (a broadcast
 * arrives once, counters stay flat) and fail over when that cable dies. A Linux bridge with
 * kernel STP (legacy 802.1D) joined to our switch by two taps (Debian `vde_plug tap://`) must
 * agree on one root and block exactly one port, whichever side is root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { createTap, pollUntil, run, spawnInNetns, tapAttached, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { startSwitch, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
const CONVERGE_TIMEOUT_MS = 45_000;
const STP_ARGS = ['-F', '--stp-hello', '1', '--stp-forward-delay', '4', '--stp-max-age', '6'];

interface StpJson {
  enabled: boolean;
  isRoot: boolean;
  rootId: string;
  ports: Array<{ port: number; role: string; state: string }>;
}

beforeAll(async () => {
  await ensureTools({ vde_plug: 'vdeplug', dpipe: 'vdeplug', ip: 'iproute2', bridge: 'iproute2' });
});

async function copiesOf(rx: VdeClient, srcHex: string, windowMs: number): Promise<number> {
  const frames = await rx.drain(windowMs);
  return frames.filter((f) => f.subarray(6, 12).toString('hex') === srcHex).length;
}

describe('spanning tree between two vde-ts switches', () => {
  let s1: RunningSwitch;
  let s2: RunningSwitch;
  const cables: ChildProcess[] = [];
  beforeAll(async () => {
    s1 = await startSwitch([...STP_ARGS, '--priority', '4096']);
    s2 = await startSwitch(STP_ARGS);
  });
  afterAll(async () => {
    for (const c of cables) c.kill('SIGTERM');
    await s1.stop();
    await s2.stop();
  });

  it('converges to one forwarding path over two cables and fails over when it dies', async () => {
    for (let i = 0; i < 2; i++) cables.push(spawn('dpipe', ['vde_plug', s1.dir, '=', 'vde_plug', s2.dir], { stdio: 'ignore' }));
    const a = await VdeClient.connect(s1.dir);
    const b = await VdeClient.connect(s2.dir);
    const blocked = async (): Promise<number> => {
      const j1 = await s1.json<StpJson>('json/fstp/print');
      const j2 = await s2.json<StpJson>('json/fstp/print');
      return [...j1.ports, ...j2.ports].filter((p) => p.state !== 'forwarding').length;
    };
    await waitFor(async () => (await blocked()) === 1, CONVERGE_TIMEOUT_MS, 'exactly one discarding port');
    const j1 = await s1.json<StpJson>('json/fstp/print');
    const j2 = await s2.json<StpJson>('json/fstp/print');
    expect(j1.isRoot).toBe(true);
    expect(j2.isRoot).toBe(false);
    expect(j2.rootId).toBe(j1.rootId);
    expect(j2.ports.filter((p) => p.role === 'alternate' || p.role === 'backup')).toHaveLength(1);
    // client ports became edge/forwarding; one broadcast arrives exactly once and nothing loops
    await waitFor(async () => {
      a.send(frame(BCAST, '02:00:00:00:30:01'));
      return (await copiesOf(b, '020000003001', 300)) > 0;
    }, CONVERGE_TIMEOUT_MS, 'client ports forwarding');
    await b.drain(500);
    const before = (await s1.json<Array<{ counters: { inFrames: number } }>>('json/port/print')).reduce((n, p) => n + p.counters.inFrames, 0);
    a.send(frame(BCAST, '02:00:00:00:30:01'));
    expect(await copiesOf(b, '020000003001', 1000)).toBe(1);
    const after = (await s1.json<Array<{ counters: { inFrames: number } }>>('json/port/print')).reduce((n, p) => n + p.counters.inFrames, 0);
    expect(after - before).toBeLessThan(20); // the broadcast plus a few BPDUs, no storm

    // kill the cable that forwards: find the forwarding cable port on s2 and kill its dpipe
    const ports = await s2.json<Array<{ port: number; endpoints: Array<{ description: string }> }>>('json/port/print');
    const rootPort = (await s2.json<StpJson>('json/fstp/print')).ports.find((p) => p.role === 'root')!.port;
    const descr = ports.find((p) => p.port === rootPort)!.endpoints[0].description;
    const pid = Number(/pid=(\d+)/.exec(descr)![1]);
    process.kill(pid, 'SIGTERM');
    await waitFor(async () => {
      a.send(frame(BCAST, '02:00:00:00:30:01'));
      return (await copiesOf(b, '020000003001', 300)) > 0;
    }, CONVERGE_TIMEOUT_MS, 'the other cable to take over');
    await b.drain(300);
    a.send(frame(BCAST, '02:00:00:00:30:01'));
    expect(await copiesOf(b, '020000003001', 1000)).toBe(1);
    a.close();
    b.close();
  }, 120_000);
});

describe('spanning tree against a Linux bridge with kernel STP', () => {
  const cleanup = withCleanup();
  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  for (const rootSide of ['ours', 'linux'] as const) {
    it(`blocks exactly one port when ${rootSide === 'ours' ? 'our switch' : 'the Linux bridge'} is root`, async () => {
      const sw = await startSwitch([...STP_ARGS, '--priority', rootSide === 'ours' ? '4096' : '32768']);
      cleanup.add('switch', () => sw.stop().then(() => undefined));
      const br = uniqueIfname('vbr');
      await run(['ip', 'link', 'add', br, 'type', 'bridge', 'stp_state', '1', 'forward_delay', '400', 'hello_time', '100', 'max_age', '600', 'priority', rootSide === 'linux' ? '0' : '61440']);
      cleanup.link(br, null);
      const taps: string[] = [];
      for (let i = 0; i < 2; i++) {
        const t = await createTap(uniqueIfname('vbt'), { cleanup });
        const plug = spawnInNetns(null, ['vde_plug', `vde://${sw.dir}`, `tap://${t}`], { cleanup });
        await pollUntil(() => tapAttached(t), 10_000, `vde_plug on ${t} (${plug.output()})`);
        await run(['ip', 'link', 'set', t, 'master', br]);
        taps.push(t);
      }
      await run(['ip', 'link', 'set', br, 'up']);
      const linuxStates = async (): Promise<string[]> => {
        const r = await run(['bridge', '-j', 'link', 'show']);
        const links = JSON.parse(r.stdout) as Array<{ ifname: string; state: string }>;
        return taps.map((t) => links.find((l) => l.ifname === t)?.state ?? 'missing');
      };
      const ourBlocked = async (): Promise<number> => (await sw.json<StpJson>('json/fstp/print')).ports.filter((p) => p.state !== 'forwarding').length;
      await waitFor(async () => {
        const ls = await linuxStates();
        const linuxBlocked = ls.filter((s) => s === 'blocking').length;
        const linuxFwd = ls.filter((s) => s === 'forwarding').length;
        const ours = await ourBlocked();
        return linuxBlocked + ours === 1 && linuxFwd + linuxBlocked === 2;
      }, CONVERGE_TIMEOUT_MS, 'one blocked port between the Linux bridge and our switch');
      const j = await sw.json<StpJson>('json/fstp/print');
      expect(j.isRoot).toBe(rootSide === 'ours');
      if (rootSide === 'ours') expect((await linuxStates()).filter((s) => s === 'blocking')).toHaveLength(1);
      else expect(await ourBlocked()).toBe(1);
      // a broadcast from a client of ours does not come back through the bridge
      const c = await VdeClient.connect(sw.dir);
      const d = await VdeClient.connect(sw.dir);
      await waitFor(async () => {
        c.send(frame(BCAST, '02:00:00:00:31:01'));
        return (await copiesOf(d, '020000003101', 300)) > 0;
      }, CONVERGE_TIMEOUT_MS, 'client ports forwarding');
      await c.drain(500);
      await d.drain(500);
      c.send(frame(BCAST, '02:00:00:00:31:01'));
      expect(await copiesOf(d, '020000003101', 1500)).toBe(1);
      c.close();
      d.close();
    }, 120_000);
  }
});
