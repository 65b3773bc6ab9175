/*
 * Link emulation with real parts: two network namespaces whose taps sit in two of our switches,
 * and between the switches the filter under test — our wirefilter (-v, or in a dpipe cable with
 * our or Debian's dpipe and vde_plug), Debian's /usr/bin/wirefilter side by side with the same
 * options or rc file, our vde_plug --impair, or nothing (the baseline). What the traffic
 * experienced is measured: added delay as the difference of ping RTT medians, rate with iperf3,
 * loss by counting replies against binomial bounds, jumbo frames with 8000-byte pings, the same
 * ICMP sequence numbers lost for the same --seed, and changes made at run time. A third switch
 * holds two taps with offloads to show port/impair carrying 64 KiB GSO frames at a set rate.
 * Only ICMP crosses during the seed test: IPv6 is off and the neighbours are static.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { runCommand } from '../../src/vdecmd/main.js';
import { ensureTools } from '../helpers/deps.js';
import { createNetns, killChild, moveLinkToNetns, netnsExec, pollUntil, run, spawnInNetns, uniqueIfname, withCleanup, type Cleanup } from '../helpers/netns.js';
import { ROOT, SWITCH_BIN } from '../helpers/switchproc.js';

const WF = path.join(ROOT, 'bin', 'wirefilter');
const PLUG = path.join(ROOT, 'bin', 'vde_plug');
const DPIPE = path.join(ROOT, 'bin', 'dpipe');
const DEBIAN_WF = '/usr/bin/wirefilter';
const DEBIAN_PLUG = '/usr/bin/vde_plug';
const DEBIAN_DPIPE = '/usr/bin/dpipe';
const START_TIMEOUT_MS = 15_000;
const JUMBO_MTU_BYTES = 9000;
const IPERF_PORT = 5311;
const ADDR_A = '192.0.2.1';
const ADDR_B = '192.0.2.2';

/** RTTs and sequence numbers of the replies to `count` pings from ns to addr. */
async function pings(ns: string, addr: string, count: number, intervalS: number, size?: number): Promise<{ rtts: number[]; seqs: number[] }> {
  // no -w: with a deadline ping sends until `count` replies came, not `count` requests
  const argv = ['ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1'];
  if (size !== undefined) argv.push('-s', String(size));
  const r = await netnsExec(ns, [...argv, addr], { check: false, timeoutMs: (count * intervalS + 20) * 1000 });
  const rtts: number[] = [];
  const seqs: number[] = [];
  for (const m of r.stdout.matchAll(/icmp_seq=(\d+) .*time=([\d.]+) ms/g)) {
    seqs.push(Number(m[1]));
    rtts.push(Number(m[2]));
  }
  return { rtts, seqs };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The smallest of xs (the lowest RTT of a series). */
function lowest(xs: number[]): number {
  return Math.min(...xs);
}

/** Binomial bounds n·p ± 5 sd. */
function binomial(n: number, p: number): [number, number] {
  const sd = Math.sqrt(n * p * (1 - p));
  return [n * p - 5 * sd, n * p + 5 * sd];
}

/** iperf3 TCP from nsA to nsB for `seconds`; the receiver's rate in Mbit/s. */
async function iperf(nsA: string, nsB: string, seconds: number, cleanup: Cleanup): Promise<number> {
  const server = spawnInNetns(nsB, ['iperf3', '-s', '-1', '-p', String(IPERF_PORT)], { cleanup, stdin: 'ignore' });
  await pollUntil(async () => (await netnsExec(nsB, ['ss', '-ltn'])).stdout.includes(`:${IPERF_PORT}`), 10_000, `iperf3 server (${server.output()})`);
  const r = await netnsExec(nsA, ['iperf3', '-c', ADDR_B, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
  await killChild(server.child);
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e6;
}

describe('link emulation between two switches, measured with ping and iperf3', () => {
  const cleanup = withCleanup();
  let dir: string;
  let nsA: string;
  let nsB: string;
  const sw: Array<{ dir: string; mgmt: string }> = [];

  /** Active ports of a switch. */
  async function activePorts(i: number): Promise<number> {
    const r = await runCommand(sw[i].mgmt, 'json/port/print');
    return (JSON.parse(r.data.join('')) as unknown[]).length;
  }

  const running = new Set<() => Promise<void>>();
  /** Starts a filter between the switches; resolves once both switches see it; returns its stopper. */
  async function filter(argv: string[], o: { mgmt?: string } = {}): Promise<{ stop: () => Promise<void>; output: () => string }> {
    const p = spawnInNetns(null, argv, { cleanup, stdin: 'pipe' });
    const stop = async (): Promise<void> => {
      running.delete(stop);
      await killChild(p.child);
      await pollUntil(async () => (await activePorts(0)) === 1 && (await activePorts(1)) === 1, START_TIMEOUT_MS, `the filter to leave (${p.output()})`);
    };
    running.add(stop);
    await pollUntil(async () => p.child.exitCode !== null || ((await activePorts(0)) === 2 && (await activePorts(1)) === 2 && (!o.mgmt || existsSync(o.mgmt))), START_TIMEOUT_MS, `the filter to plug in (${p.output()})`);
    if (p.child.exitCode !== null) throw new Error(`the filter exited: ${p.output()}`);
    return { output: p.output, stop };
  }
  // a test that failed half-way leaves no filter behind for the next one
  afterEach(async () => {
    for (const stop of [...running]) await stop();
  }, 60_000);
  const ends = (): string => `${sw[0].dir}:${sw[1].dir}`;
  const ours = (args: string[], mgmt?: string) => filter([process.execPath, WF, '--nostdin', ...(mgmt ? ['-M', mgmt] : []), ...args, '-v', ends()], { mgmt });
  const debian = (args: string[], mgmt?: string) => filter([DEBIAN_WF, ...(mgmt ? ['-M', mgmt] : []), ...args, '-v', ends()], { mgmt });
  const rtt = async (count = 60, intervalS = 0.02): Promise<number> => median((await pings(nsA, ADDR_B, count, intervalS)).rtts);
  /** The lowest RTT: scheduling delays on a saturated machine only add, so it stays put while medians drift with the load. */
  const lowestRtt = async (count = 60, intervalS = 0.02): Promise<number> => lowest((await pings(nsA, ADDR_B, count, intervalS)).rtts);
  /**
   * The delay a console command adds: ping RTT medians with it and without it, measured in
   * alternating rounds (the CPUs are shared, so the load drifts; alternating cancels the drift).
   */
  const addedDelay = async (mgmt: string, on: string, off: string, rounds = 4, perRound = 15, stat: (xs: number[]) => number = median): Promise<number> => {
    const withIt: number[] = [];
    const without: number[] = [];
    for (let r = 0; r < rounds; r++) {
      expect((await runCommand(mgmt, off)).status, off).toBe(0);
      without.push(...(await pings(nsA, ADDR_B, perRound, 0.02)).rtts);
      expect((await runCommand(mgmt, on)).status, on).toBe(0);
      withIt.push(...(await pings(nsA, ADDR_B, perRound, 0.02)).rtts);
    }
    return stat(withIt) - stat(without);
  };

  beforeAll(async () => {
    await ensureTools({ ip: 'iproute2', ping: 'iputils-ping', iperf3: 'iperf3', [DEBIAN_WF]: 'vde-wirefilter', [DEBIAN_PLUG]: 'vdeplug', [DEBIAN_DPIPE]: 'vdeplug' });
    dir = cleanup.path(mkdtempSync(path.join(tmpdir(), 'vde-ts-wf-')));
    const taps = [uniqueIfname('wfa'), uniqueIfname('wfb')];
    for (let i = 0; i < 2; i++) {
      const s = { dir: path.join(dir, `sw${i}`), mgmt: path.join(dir, `sw${i}.mgmt`) };
      const p = spawnInNetns(null, [process.execPath, SWITCH_BIN, '-s', s.dir, '-M', s.mgmt, '--nostdin', '-t', taps[i]], { cleanup });
      cleanup.link(taps[i], null);
      await pollUntil(() => existsSync(s.mgmt), START_TIMEOUT_MS, `switch (${p.output()})`);
      sw.push(s);
    }
    nsA = await createNetns('wfA', cleanup);
    nsB = await createNetns('wfB', cleanup);
    for (const [ns, tap, addr] of [[nsA, taps[0], `${ADDR_A}/24`], [nsB, taps[1], `${ADDR_B}/24`]] as const) {
      await run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await moveLinkToNetns(tap, ns, addr, { cleanup, mtu: JUMBO_MTU_BYTES });
    }
    // static neighbours: only the pings themselves cross the cable
    const mac = async (ns: string, tap: string): Promise<string> => /link\/ether ([0-9a-f:]{17})/.exec((await run(['ip', '-n', ns, 'link', 'show', tap])).stdout)![1];
    await run(['ip', '-n', nsA, 'neigh', 'replace', ADDR_B, 'lladdr', await mac(nsB, taps[1]), 'dev', taps[0], 'nud', 'permanent']);
    await run(['ip', '-n', nsB, 'neigh', 'replace', ADDR_A, 'lladdr', await mac(nsA, taps[0]), 'dev', taps[1], 'nud', 'permanent']);
  }, 180_000);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test('added delay: ping medians against the requested value, each direction, ours and Debian side by side', async () => {
    const rows: string[] = [];
    const mgmt = path.join(dir, 'wf-delay.mgmt');
    for (const [name, start] of [['ours', ours], ['Debian', debian]] as const) {
      const f = await start([], mgmt);
      const both = await addedDelay(mgmt, 'delay LR5', 'delay 0');
      const rl = await addedDelay(mgmt, 'delay RL2.5', 'delay 0');
      const small = await addedDelay(mgmt, 'delay LR0.5', 'delay 0');
      await f.stop();
      rows.push(`${name}: LR 5 ms -> ${both.toFixed(3)}, RL 2.5 ms -> ${rl.toFixed(3)}, LR 0.5 ms -> ${small.toFixed(3)}`);
      // within ~50 µs on an idle machine (bench/wirefilter.mjs); the bounds leave room for a busy
      // one, where every held frame waits for the engine thread to be scheduled again
      if (name === 'ours') {
        expect(both, rows.join('; ')).toBeGreaterThan(4.6);
        expect(both, rows.join('; ')).toBeLessThan(6.2);
        expect(rl, rows.join('; ')).toBeGreaterThan(2.2);
        expect(rl, rows.join('; ')).toBeLessThan(3.6);
        expect(small, rows.join('; ')).toBeGreaterThan(0.3);
        expect(small, rows.join('; ')).toBeLessThan(1.4);
      } else {
        expect(small, rows.join('; ')).toBeLessThan(0.25); // its clock counts whole milliseconds: 0.5 ms adds nothing
      }
    }
    console.log(`wirefilter added delay (ping medians, alternating rounds): ${rows.join('; ')}`);
  }, 180_000);

  test('loss: replies counted within binomial bounds, ours and Debian alike', async () => {
    const n = 400;
    for (const start of [ours, debian]) {
      const f = await start(['-l', 'LR20']);
      const { seqs } = await pings(nsA, ADDR_B, n, 0.01);
      await f.stop();
      const [lo, hi] = binomial(n, 0.8);
      expect(seqs.length, start === ours ? 'ours' : 'Debian').toBeGreaterThan(lo);
      expect(seqs.length, start === ours ? 'ours' : 'Debian').toBeLessThan(hi);
    }
  }, 120_000);

  test('rate: iperf3 through a 10 Mbit/s wirefilter (-b in bytes/s) gets TCP goodput of a 10 Mbit/s link', async () => {
    const f = await ours(['-b', '1250000']);
    const mbps = await iperf(nsA, nsB, 4, cleanup);
    await f.stop();
    // 1448 payload bytes in 1514-byte frames: 9.56 Mbit/s of goodput at most
    expect(mbps).toBeGreaterThan(8.5);
    expect(mbps).toBeLessThan(10.05);
  }, 120_000);

  test('jumbo frames: 8000-byte pings pass ours; Debian\'s loses them (2 KB buffer)', async () => {
    const f = await ours(['-d', '1']);
    expect((await pings(nsA, ADDR_B, 3, 0.2, 8000)).seqs).toHaveLength(3);
    await f.stop();
    const d = await debian(['-d', '1']);
    expect((await pings(nsA, ADDR_B, 3, 0.2, 8000)).seqs).toHaveLength(0);
    await d.stop();
  }, 60_000);

  test('the same --seed loses the same ICMP sequence numbers, another seed others', async () => {
    const lostWith = async (seed: number): Promise<number[]> => {
      const f = await ours(['--seed', String(seed), '-l', 'LR30']);
      const { seqs } = await pings(nsA, ADDR_B, 60, 0.02);
      await f.stop();
      return [...Array(60).keys()].map((i) => i + 1).filter((s) => !seqs.includes(s));
    };
    const a = await lostWith(11);
    const b = await lostWith(11);
    const c = await lostWith(12);
    expect(a.length).toBeGreaterThan(3);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  }, 120_000);

  test('run-time changes through the console take effect, and frames held meanwhile are not lost', async () => {
    const mgmt = path.join(dir, 'wf-rt.mgmt');
    const f = await ours(['-d', '1'], mgmt);
    const base = await rtt(30);
    expect((await runCommand(mgmt, 'delay 20')).status).toBe(0);
    expect((await rtt(30)) - base).toBeGreaterThan(17);
    expect((await runCommand(mgmt, 'loss LR100')).status).toBe(0);
    expect((await pings(nsA, ADDR_B, 5, 0.02)).seqs).toHaveLength(0);
    expect((await runCommand(mgmt, 'loss 0')).status).toBe(0);
    expect((await runCommand(mgmt, 'delay 400')).status).toBe(0);
    const during = pings(nsA, ADDR_B, 10, 0.02);
    await new Promise((r) => setTimeout(r, 150));
    expect((await runCommand(mgmt, 'delay 0')).status).toBe(0);
    expect((await during).seqs).toHaveLength(10);
    const j = JSON.parse((await runCommand(mgmt, 'json/showinfo')).data.join('')) as { LR: { counters: Record<string, number> } };
    expect(j.LR.counters.lost).toBe(5);
    expect(j.LR.counters.overCapacity).toBe(0);
    await f.stop();
  }, 120_000);

  test('a vde2 rc file (delay, MTU, a Markov chain) behaves the same on ours and on Debian\'s wirefilter', async () => {
    const rc = path.join(dir, 'plain.rc');
    writeFileSync(rc, 'delay 10\nmtu 1400\n');
    const markov = path.join(dir, 'markov.rc');
    writeFileSync(markov, 'markov-numnodes 2\nmarkov-time 20\nloss 100[1]\nsetedge 0,1,50\nsetedge 1,0,50\n');
    // base and delayed RTTs come from different minutes (the filter restarts in between), so
    // they are compared by their lowest values: at load 15 a median drifted by 2 ms between them
    const f0 = await ours([]);
    const base = await lowestRtt(30);
    await f0.stop();
    for (const [name, start] of [['ours', ours], ['Debian', debian]] as const) {
      const f = await start(['-f', rc]);
      const added = (await lowestRtt(30)) - base;
      // 10 ms each way; Debian's millisecond clock adds up to a few hundred µs more
      expect(added, name).toBeGreaterThan(18);
      expect(added, name).toBeLessThan(23);
      expect((await pings(nsA, ADDR_B, 3, 0.05, 1000)).seqs, name).toHaveLength(3);
      expect((await pings(nsA, ADDR_B, 3, 0.05, 1400)).seqs, name).toHaveLength(0);
      await f.stop();
      const m = await start(['-f', markov]);
      const { seqs } = await pings(nsA, ADDR_B, 300, 0.01);
      await m.stop();
      // the chain spends half its time in the node that loses everything (both directions); its
      // steps come from a timer, late on a busy machine, so the share varies widely between runs
      expect(seqs.length, name).toBeGreaterThan(45);
      expect(seqs.length, name).toBeLessThan(255);
    }
  }, 180_000);

  test('in a dpipe cable: ours under our dpipe and vde_plug, and under Debian\'s', async () => {
    for (const [dpipe, plug] of [[[process.execPath, DPIPE], [process.execPath, PLUG]], [[DEBIAN_DPIPE], [DEBIAN_PLUG]]]) {
      const mgmt = path.join(dir, 'wf-pipe.mgmt');
      const f = await filter([...dpipe, ...plug, sw[0].dir, '=', process.execPath, WF, '-M', mgmt, '=', ...plug, sw[1].dir], { mgmt });
      // what is checked here is the filter working inside the cable (precision: the medians of
      // the first test and the bench), so the lowest RTTs, which the load does not move
      const added = await addedDelay(mgmt, 'delay LR3', 'delay 0', 3, 15, lowest);
      expect(Math.abs(added - 3), `${dpipe.join(' ')}: ${added}`).toBeLessThan(0.6);
      await f.stop();
    }
  }, 120_000);

  test('a vde_plug cable impaired with --impair, and changed through its --mgmt console', async () => {
    const mgmt = path.join(dir, 'plug.mgmt');
    const f = await filter([process.execPath, PLUG, '--impair', 'LR:delay 4ms', '--mgmt', mgmt, sw[0].dir, sw[1].dir], { mgmt });
    // this test checks what the console changes, not precision (the test above and the bench do
    // that): the lowest RTTs, which a saturated machine's scheduling delays (a few ms each,
    // seen in half the pings of a phase at load 12) do not move
    const one = await addedDelay(mgmt, 'impair LR delay 4ms', 'impair LR off', 3, 15, lowest);
    const both = await addedDelay(mgmt, 'impair both delay 5ms', 'impair both off', 3, 15, lowest);
    expect(one, `LR 4 ms: ${one}, both 5 ms: ${both}`).toBeGreaterThan(3.6);
    expect(one, `LR 4 ms: ${one}, both 5 ms: ${both}`).toBeLessThan(6.5);
    expect(both, `LR 4 ms: ${one}, both 5 ms: ${both}`).toBeGreaterThan(9.5);
    expect(both, `LR 4 ms: ${one}, both 5 ms: ${both}`).toBeLessThan(13);
    await f.stop();
  }, 120_000);
});

describe('port/impair on a switch port whose taps carry 64 KiB GSO frames', () => {
  const cleanup = withCleanup();
  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test('a rate set on a tap port holds and releases GSO frames at that rate (iperf3)', async () => {
    await ensureTools({ ip: 'iproute2', iperf3: 'iperf3' });
    const dir = cleanup.path(mkdtempSync(path.join(tmpdir(), 'vde-ts-wfgso-')));
    const mgmt = path.join(dir, 'mgmt');
    const taps = [uniqueIfname('wgc'), uniqueIfname('wgd')];
    const p = spawnInNetns(null, [process.execPath, SWITCH_BIN, '-s', path.join(dir, 'sw'), '-M', mgmt, '--nostdin', '-t', taps[0], '-t', taps[1]], { cleanup });
    for (const t of taps) cleanup.link(t, null);
    await pollUntil(() => existsSync(mgmt), START_TIMEOUT_MS, `switch (${p.output()})`);
    const nsC = await createNetns('wgC', cleanup);
    const nsD = await createNetns('wgD', cleanup);
    await moveLinkToNetns(taps[0], nsC, `${ADDR_A}/24`, { cleanup });
    await moveLinkToNetns(taps[1], nsD, `${ADDR_B}/24`, { cleanup });
    const ports = JSON.parse((await runCommand(mgmt, 'json/port/print')).data.join('')) as Array<{ port: number; endpoints: Array<{ description: string }> }>;
    const portD = ports.find((x) => x.endpoints.some((e) => e.description === taps[1]))!.port;
    const set = await runCommand(mgmt, `port/impair ${portD} out rate 100mbit delay 1ms`);
    expect(set.status, set.data.join('\n')).toBe(0);
    const outBytes = async (): Promise<number> =>
      (JSON.parse((await runCommand(mgmt, 'json/port/print')).data.join('')) as Array<{ port: number; counters: { outBytes: number } }>).find((x) => x.port === portD)!.counters.outBytes;
    const before = await outBytes();
    const t0 = Date.now();
    const mbps = await iperf(nsC, nsD, 4, cleanup);
    const sentMbps = (((await outBytes()) - before) * 8) / ((Date.now() - t0) / 1000) / 1e6;
    // 100 Mbit/s counted on every segment's bytes: 1448/1514 of it is TCP payload (95.6 Mbit/s,
    // 89 to 95 measured on an idle machine); without the rate the same path carries several
    // Gbit/s. The port never sends faster than the rate; on busy shared CPUs (or under the
    // sanitizers) TCP gets less of it, hence the loose low bound.
    expect(sentMbps).toBeLessThan(100.5);
    expect(mbps).toBeGreaterThan(30);
    expect(mbps).toBeLessThan(100.5);
    const j = JSON.parse((await runCommand(mgmt, `json/port/impair ${portD}`)).data.join('')) as Array<{ values: Record<string, number> }>;
    const v = j[0].values;
    // GSO frames crossed the stage whole: far fewer frames than 1514-byte segments
    const segments = (mbps * 1e6 * 4) / 8 / 1514;
    expect(v.frames).toBeLessThan(segments / 4);
  }, 120_000);
});
