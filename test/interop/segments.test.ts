/*
 * 64 KiB segments end to end with real parts: kernel taps with TSO in network namespaces, our
 * `vde_plug tap://` and switch, cables laid with Debian's dpipe, ssh (a private sshd on
 * loopback) and our stream:// TCP, and the Debian tools that must see nothing new: Debian's
 * vde_switch and vde_plug, Debian's wirefilter in the middle of a cable, QEMU `-netdev vde`.
 * Every transfer is a sha256-checked TCP stream (socat) and the receiving kernel must count no
 * TCP checksum errors. Whether segments really travelled is read from the switch: the average
 * size of the frames that entered the port (far above the 1500-byte MTU when they did, at most
 * one MTU when the path fell back to plain frames).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, parseGuestOutput, runGuest } from '../helpers/guest.js';
import { createNetns, createTap, moveLinkToNetns, netnsExec, ping, pollUntil, spawnInNetns, tapAttached, uniqueIfname, withCleanup, type Cleanup } from '../helpers/netns.js';
import { killTree, listening, start } from '../helpers/procs.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { ROOT, startSwitch, type RunningSwitch } from '../helpers/switchproc.js';
import { csumErrors, randomFile, transfer } from '../helpers/transfer.js';

const NODE = process.execPath;
const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const DEBIAN_PLUG = '/usr/bin/vde_plug';
const DEBIAN_SWITCH = '/usr/bin/vde_switch';
const DEBIAN_DPIPE = '/usr/bin/dpipe';
const DEBIAN_WIREFILTER = '/usr/bin/wirefilter';

const TRANSFER_BYTES = 32 * 1024 * 1024;
/** Average frame size above which segments travelled (TSO frames are up to 64 KiB; the MTU is 1500). */
const SEGMENTS_MIN_AVG_BYTES = 8000;
/** Average frame size at or below which the path carried plain frames only. */
const PLAIN_MAX_AVG_BYTES = 1518;

/** Loopback ports (ssh, the stream cable; udp cables at +100 and +200) from our PID, below cables.test's range and the ephemeral one. */
const PORT_BASE = 10000 + (process.pid % 2000) * 4;
const SSH_PORT = PORT_BASE;
const STREAM_PORT = PORT_BASE + 1;
/** Transfers run inside the test's own namespaces: any fixed ports will do. */
const XFER_PORT = 5401;

const NS_A_ADDR = '192.0.2.1';
const NS_B_ADDR = '192.0.2.2';
const PREFIX = '/24';

const SETUP_TIMEOUT_MS = 10 * 60 * 1000;
const TEST_TIMEOUT_MS = 180_000;
const ATTACH_TIMEOUT_MS = 15_000;
const CLEANUP_TIMEOUT_MS = 60_000;
const GUEST_LIFETIME_MS = 240_000;

interface PortJson {
  port: number;
  counters: { inFrames: number; inBytes: number; drops: Record<string, number> };
  endpoints: Array<{ description: string; offload: boolean }>;
}

let tools: Record<string, string> = {};
let file = '';
let want = '';
const shared = withCleanup();

beforeAll(async () => {
  tools = await ensureTools({
    ip: 'iproute2',
    ping: 'iputils-ping',
    socat: 'socat',
    nstat: 'iproute2',
    ethtool: 'ethtool',
    sshd: 'openssh-server',
    ssh: 'openssh-client',
    'ssh-keygen': 'openssh-client',
    [DEBIAN_SWITCH]: 'vde2',
    [DEBIAN_PLUG]: 'vdeplug',
    [DEBIAN_DPIPE]: 'vdeplug',
    [DEBIAN_WIREFILTER]: 'vde-wirefilter',
  });
  ({ file, sha: want } = await randomFile(shared, TRANSFER_BYTES));
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await shared.run();
}, CLEANUP_TIMEOUT_MS);

/** Ports of our switch as json/port/print shows them (all: inactive ones too, whose counters persist). */
async function ports(sw: RunningSwitch, all = false): Promise<PortJson[]> {
  return sw.json<PortJson[]>(all ? 'json/port/allprint' : 'json/port/print');
}

/** Average size of the frames that entered the port whose endpoint matches `who`, since `before`. */
async function avgIn(sw: RunningSwitch, who: RegExp, before: PortJson[] = []): Promise<number> {
  const now = (await ports(sw)).find((p) => p.endpoints.some((e) => who.test(e.description)));
  if (!now) throw new Error(`no port with an endpoint matching ${who}`);
  const was = before.find((p) => p.port === now.port)?.counters ?? { inFrames: 0, inBytes: 0 };
  const frames = now.counters.inFrames - was.inFrames;
  return frames ? (now.counters.inBytes - was.inBytes) / frames : 0;
}

/** A tap in the root namespace opened by `plug` (argv without the tap locator), then moved into a new namespace with addr. */
async function tapPlug(cleanup: Cleanup, plug: string[], addr: string, waitTso: boolean): Promise<{ ns: string; tap: string; pid: number }> {
  const tap = await createTap(uniqueIfname('vsg'), { cleanup });
  const p = spawnInNetns(null, [...plug, `tap://${tap}`], { cleanup, stdin: 'ignore' });
  await pollUntil(async () => p.child.exitCode !== null || (await tapAttached(tap)), ATTACH_TIMEOUT_MS, `plug on ${tap} (${p.output()})`);
  if (waitTso)
    await pollUntil(
      async () => p.child.exitCode !== null || /tcp-segmentation-offload: on/.test((await netnsExec(null, ['ethtool', '-k', tap])).stdout),
      ATTACH_TIMEOUT_MS,
      `offloads on ${tap}`,
    );
  if (p.child.exitCode !== null) throw new Error(`tap plug exited: ${p.output()}`);
  const ns = await createNetns('vsg', cleanup);
  await moveLinkToNetns(tap, ns, `${addr}${PREFIX}`, { cleanup });
  return { ns, tap, pid: p.child.pid! };
}

/** Both ways through the path: sha256 of what arrived equals the file's, no TCP checksum errors. */
async function bothWays(cleanup: Cleanup, nsA: string, nsB: string, port: number): Promise<void> {
  const errA = await csumErrors(nsA);
  const errB = await csumErrors(nsB);
  expect(await transfer(cleanup, nsA, nsB, NS_B_ADDR, file, port)).toBe(want);
  expect(await transfer(cleanup, nsB, nsA, NS_A_ADDR, file, port + 1)).toBe(want);
  expect(await csumErrors(nsA)).toBe(errA);
  expect(await csumErrors(nsB)).toBe(errB);
}

describe('our vde_plug tap:// and switch', () => {
  const cleanup = withCleanup();
  afterAll(() => cleanup.run(), CLEANUP_TIMEOUT_MS);

  test('two of our tap plugs on our switch: the handshake extension carries 64 KiB segments both ways', async () => {
    const sw = await startSwitch();
    cleanup.add('switch', () => sw.stop());
    const a = await tapPlug(cleanup, [NODE, PLUG_BIN, sw.dir], NS_A_ADDR, true);
    const b = await tapPlug(cleanup, [NODE, PLUG_BIN, sw.dir], NS_B_ADDR, true);
    expect((await ping(a.ns, NS_B_ADDR, 3)).received).toBe(3);
    const eps = (await ports(sw)).flatMap((p) => p.endpoints);
    expect(eps.filter((e) => /^vdeplug:/.test(e.description)).map((e) => e.offload)).toEqual([true, true]);
    await bothWays(cleanup, a.ns, b.ns, XFER_PORT);
    expect(await avgIn(sw, new RegExp(`pid=${a.pid}\\b`))).toBeGreaterThan(SEGMENTS_MIN_AVG_BYTES);
    expect(await avgIn(sw, new RegExp(`pid=${b.pid}\\b`))).toBeGreaterThan(SEGMENTS_MIN_AVG_BYTES);
    for (const p of await ports(sw)) expect(p.counters.drops.badVnetHdr ?? 0).toBe(0);
  }, TEST_TIMEOUT_MS);

  test('our tap plug on Debian\'s vde_switch, Debian\'s tap plug across: plain frames, segmented and checksummed by our plug', async () => {
    const dir = cleanup.path(fs.mkdtempSync(path.join(path.dirname(file), 'debsw-')));
    // stdin stays an open pipe: Debian's vde_switch exits on EOF there
    const sw = start(cleanup, [DEBIAN_SWITCH, '-s', path.join(dir, 'sw')], 'Debian vde_switch');
    await pollUntil(() => sw.p.exitCode !== null || fs.existsSync(path.join(dir, 'sw', 'ctl')), ATTACH_TIMEOUT_MS, `vde_switch (${sw.out()})`);
    if (sw.p.exitCode !== null) throw new Error(`vde_switch exited: ${sw.out()}`);
    const a = await tapPlug(cleanup, [NODE, PLUG_BIN, path.join(dir, 'sw')], NS_A_ADDR, true);
    const b = await tapPlug(cleanup, [DEBIAN_PLUG, `vde://${path.join(dir, 'sw')}`], NS_B_ADDR, false);
    expect((await ping(a.ns, NS_B_ADDR, 3)).received).toBe(3);
    await bothWays(cleanup, a.ns, b.ns, XFER_PORT + 2);
    expect(sw.p.exitCode).toBeNull();
  }, TEST_TIMEOUT_MS);

  test('our tap plug with the longest description on a vdeplug4 switch:// node (Debian\'s vde_plug): the offer is ignored, plain frames', async () => {
    const dir = cleanup.path(fs.mkdtempSync(path.join(path.dirname(file), 'debnode-')));
    const node = path.join(dir, 'node');
    const host = start(cleanup, [DEBIAN_PLUG, `switch://${node}`, 'null://'], 'Debian vde_plug switch://');
    await pollUntil(() => host.p.exitCode !== null || fs.existsSync(path.join(node, 'ctl')), ATTACH_TIMEOUT_MS, `switch:// node (${host.out()})`);
    if (host.p.exitCode !== null) throw new Error(`vde_plug switch:// exited: ${host.out()}`);
    // a 127-byte description: cut so that the request with the offer is 255 bytes, the most a vde2-style 256-byte read takes
    const a = await tapPlug(cleanup, [NODE, PLUG_BIN, '-D', 'd'.repeat(127), node], NS_A_ADDR, true);
    const b = await tapPlug(cleanup, [DEBIAN_PLUG, `vde://${node}`], NS_B_ADDR, false);
    expect((await ping(a.ns, NS_B_ADDR, 3)).received).toBe(3);
    await bothWays(cleanup, a.ns, b.ns, XFER_PORT + 4);
    expect(host.p.exitCode).toBeNull();
  }, TEST_TIMEOUT_MS);
});

describe('cables between two of our switches with taps (-t) on both ends', () => {
  const cleanup = withCleanup();
  let sshd: Sshd;
  let s1: RunningSwitch;
  let s2: RunningSwitch;
  let nsA: string;
  let nsB: string;
  let nextPort = XFER_PORT + 10;

  beforeAll(async () => {
    sshd = await startSshd(cleanup, tools, SSH_PORT);
    const tapA = uniqueIfname('vsca');
    const tapB = uniqueIfname('vscb');
    cleanup.link(tapA, null);
    cleanup.link(tapB, null);
    s1 = await startSwitch(['-t', tapA]);
    cleanup.add('switch 1', () => s1.stop());
    s2 = await startSwitch(['-t', tapB]);
    cleanup.add('switch 2', () => s2.stop());
    nsA = await createNetns('vsca', cleanup);
    nsB = await createNetns('vscb', cleanup);
    await moveLinkToNetns(tapA, nsA, `${NS_A_ADDR}${PREFIX}`, { cleanup });
    await moveLinkToNetns(tapB, nsB, `${NS_B_ADDR}${PREFIX}`, { cleanup });
  }, SETUP_TIMEOUT_MS);

  afterAll(() => cleanup.run(), CLEANUP_TIMEOUT_MS);

  /**
   * Lays a cable (its processes started in order, each one once the TCP port `waitPort` listens
   * when given), checks both transfers, returns the average size of the frames that crossed it
   * into switch 2.
   */
  async function throughCable(argv: string[][], label: string, waitPort?: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<number> {
    const before = await ports(s2, true);
    const procs: ReturnType<typeof start>[] = [];
    try {
      for (const [i, a] of argv.entries()) {
        if (i && waitPort) await pollUntil(() => procs[0]!.p.exitCode !== null || listening(waitPort, proto), ATTACH_TIMEOUT_MS, `${label} listening`);
        procs.push(start(cleanup, a, `${label} ${i}`));
      }
      await pollUntil(async () => {
        for (const p of procs) if (p.p.exitCode !== null) throw new Error(`${label}: ${p.p.spawnargs.join(" ")} exited with status ${p.p.exitCode} (signal ${p.p.signalCode}): ${p.out()}`);
        return (await ping(nsA, NS_B_ADDR, 1, { deadlineS: 2 })).received === 1;
      }, ATTACH_TIMEOUT_MS * 2, `${label} to carry pings`);
      const port = nextPort;
      nextPort += 2;
      await bothWays(cleanup, nsA, nsB, port);
      return await avgIn(s2, /^vdeplug:/, before);
    } finally {
      for (const p of procs.reverse()) await killTree(p.p.pid);
      await pollUntil(async () => !(await ports(s2)).some((p) => p.endpoints.some((e) => /^vdeplug:/.test(e.description))), ATTACH_TIMEOUT_MS, `${label} to leave switch 2`);
    }
  }

  test('dpipe vde_plug = vde_plug (ours both ends): segments cross the pipes', async () => {
    expect(await throughCable([[DEBIAN_DPIPE, NODE, PLUG_BIN, s1.dir, '=', NODE, PLUG_BIN, s2.dir]], 'dpipe cable')).toBeGreaterThan(SEGMENTS_MIN_AVG_BYTES);
  }, TEST_TIMEOUT_MS);

  test('ssh: dpipe vde_plug SW1 = ssh root@127.0.0.1 vde_plug SW2 (ours both ends): segments cross ssh', async () => {
    expect(await throughCable([[DEBIAN_DPIPE, NODE, PLUG_BIN, s1.dir, '=', ...sshd.client, NODE, PLUG_BIN, s2.dir]], 'ssh cable')).toBeGreaterThan(SEGMENTS_MIN_AVG_BYTES);
  }, TEST_TIMEOUT_MS);

  test('stream://tcp:...[framing=2] between our plugs: segments cross loopback TCP', async () => {
    const server = [NODE, PLUG_BIN, s2.dir, `stream://tcp:127.0.0.1:${STREAM_PORT}[server/framing=2]`];
    const client = [NODE, PLUG_BIN, s1.dir, `stream://tcp:127.0.0.1:${STREAM_PORT}[framing=2]`];
    expect(await throughCable([server, client], 'stream cable', STREAM_PORT)).toBeGreaterThan(SEGMENTS_MIN_AVG_BYTES);
  }, TEST_TIMEOUT_MS);

  test('udp:// between our plugs on loopback (an MTU that takes a segment whole): segment datagrams', async () => {
    const a = `udp://${STREAM_PORT + 100}->127.0.0.1:${STREAM_PORT + 200}`;
    const b = `udp://${STREAM_PORT + 200}->127.0.0.1:${STREAM_PORT + 100}`;
    expect(await throughCable([[NODE, PLUG_BIN, s1.dir, a], [NODE, PLUG_BIN, s2.dir, b]], 'udp cable')).toBeGreaterThan(SEGMENTS_MIN_AVG_BYTES);
  }, TEST_TIMEOUT_MS);

  test('udp:// between our plug and Debian\'s: our HELLO is a runt Debian\'s switch drops, frames stay plain both ways', async () => {
    const a = `udp://${STREAM_PORT + 100}->127.0.0.1:${STREAM_PORT + 200}`;
    const b = `udp://${STREAM_PORT + 200}->127.0.0.1:${STREAM_PORT + 100}`;
    // Debian's plug ends (status 0) on the ECONNREFUSED of a frame it sent before the other end
    // was bound: ours starts first and Debian's only once ours has bound its port
    expect(await throughCable([[NODE, PLUG_BIN, s1.dir, a], [DEBIAN_PLUG, s2.dir, b]], 'udp ours = Debian', STREAM_PORT + 100, 'udp')).toBeLessThanOrEqual(PLAIN_MAX_AVG_BYTES);
    expect(await throughCable([[NODE, PLUG_BIN, s2.dir, b], [DEBIAN_PLUG, s1.dir, a]], 'udp Debian = ours', STREAM_PORT + 200, 'udp')).toBeLessThanOrEqual(PLAIN_MAX_AVG_BYTES);
  }, TEST_TIMEOUT_MS * 2);

  test('mixed cables fall back to plain frames both ways: ours = Debian, Debian = ours', async () => {
    expect(await throughCable([[DEBIAN_DPIPE, NODE, PLUG_BIN, s1.dir, '=', DEBIAN_PLUG, s2.dir]], 'ours = Debian')).toBeLessThanOrEqual(PLAIN_MAX_AVG_BYTES);
    expect(await throughCable([[DEBIAN_DPIPE, DEBIAN_PLUG, s1.dir, '=', NODE, PLUG_BIN, s2.dir]], 'Debian = ours')).toBeLessThanOrEqual(PLAIN_MAX_AVG_BYTES);
  }, TEST_TIMEOUT_MS * 2);

  test('Debian\'s wirefilter between our two plugs: found on the pipes, so no negotiation and one record per read, nothing desynchronised', async () => {
    const avg = await throughCable([[DEBIAN_DPIPE, NODE, PLUG_BIN, s1.dir, '=', DEBIAN_WIREFILTER, '=', NODE, PLUG_BIN, s2.dir]], 'wirefilter cable');
    expect(avg).toBeLessThanOrEqual(PLAIN_MAX_AVG_BYTES);
  }, TEST_TIMEOUT_MS);

  test('--offload off on one end keeps the whole cable plain', async () => {
    const avg = await throughCable([[DEBIAN_DPIPE, NODE, PLUG_BIN, '--offload', 'off', s1.dir, '=', NODE, PLUG_BIN, s2.dir]], 'offload off');
    expect(avg).toBeLessThanOrEqual(PLAIN_MAX_AVG_BYTES);
  }, TEST_TIMEOUT_MS);
});

describe('QEMU -netdev vde beside our tap plug', () => {
  const cleanup = withCleanup();
  beforeAll(async () => {
    await ensureTools({ 'qemu-system-x86_64': 'qemu-system-x86', python3: 'python3' });
    await buildGuest();
  }, SETUP_TIMEOUT_MS);
  afterAll(() => cleanup.run(), CLEANUP_TIMEOUT_MS);

  test('the guest (libvdeplug, plain frames) fetches a file a namespace serves through 64 KiB segments, segmented in software for it', async () => {
    const sw = await startSwitch();
    cleanup.add('switch', () => sw.stop());
    const a = await tapPlug(cleanup, [NODE, PLUG_BIN, sw.dir], NS_A_ADDR, true);
    const http = spawnInNetns(a.ns, ['python3', '-m', 'http.server', '--bind', NS_A_ADDR, '--directory', path.dirname(file), String(XFER_PORT + 6)], { cleanup, stdin: 'ignore' });
    await pollUntil(async () => http.child.exitCode !== null || (await netnsExec(a.ns, ['ss', '-ltn'])).stdout.includes(`:${XFER_PORT + 6} `), ATTACH_TIMEOUT_MS, `http server (${http.output()})`);
    const url = `http://${NS_A_ADDR}:${XFER_PORT + 6}/${path.basename(file)}`;
    const run = await runGuest({
      netdev: ['-netdev', `vde,id=n0,sock=${sw.dir}`, '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:61'],
      cmdline: { ip: `192.0.2.10${PREFIX}`, ping: NS_A_ADDR, count: 3, wget: url, wgettimeout: 120 },
      timeoutMs: GUEST_LIFETIME_MS,
      cleanup,
    });
    const r = parseGuestOutput(run.output);
    expect(r.errors, run.output).toEqual([]);
    expect(r.pings.find((x) => x.target === NS_A_ADDR)?.rx, run.output).toBe(3);
    expect(r.wgetSha, run.output).toBe(want);
    // the namespace's side handed the switch TSO frames, QEMU's port got them segmented
    expect(await avgIn(sw, new RegExp(`pid=${a.pid}\\b`))).toBeGreaterThan(SEGMENTS_MIN_AVG_BYTES);
    expect(await csumErrors(a.ns)).toBe(0);
  }, GUEST_LIFETIME_MS + 60_000);
});
