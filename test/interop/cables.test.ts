/*
 * Cables users actually lay between two of our switches, with the real tools: Debian's dpipe
 * joining our vde_plug to `ssh root@127.0.0.1 vde_plug DIR` (a private sshd on a loopback port
 * with throw-away keys), the same with Debian's vde_plug on the remote end, ssh killed in the
 * middle of a flood; socat relaying the stream over loopback TCP; our own
 * `stream://tcp:...[server/framing=2]` cable with --reconnect; and bad peers on a stream server
 * plug (random bytes, a frame cut short, a peer that never reads). Frames are checked with raw
 * clients on both switches and two network namespaces (192.0.2.1/24, 192.0.2.2/24), plugged in
 * with Debian's `vde_plug vde://DIR tap://TAP`, ping across. Every process is stopped by PID,
 * namespaces, taps and temp files are removed.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import {
  createNetns,
  createTap,
  moveLinkToNetns,
  ping,
  pollUntil,
  spawnInNetns,
  tapAttached,
  uniqueIfname,
  withCleanup,
  type Cleanup,
} from '../helpers/netns.js';
import { ROOT, startSwitch, TIME_SCALE, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';
import { cmdline, descendants, killTree, listening, start, type Proc } from '../helpers/procs.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

const NODE = process.execPath;
const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const BCAST = 'ff:ff:ff:ff:ff:ff';
/** Debian's tools by absolute path: a globally installed vde-ts could shadow them on PATH. */
const DEBIAN_DPIPE = '/usr/bin/dpipe';
const DEBIAN_PLUG = '/usr/bin/vde_plug';

/** TCP ports on 127.0.0.1 derived from our PID, below the ephemeral range (32768+). */
const PORT_BASE = 20000 + (process.pid % 3000) * 4;
const SSH_PORT = PORT_BASE;
const SOCAT_PORT = PORT_BASE + 1;
const STREAM_PORT = PORT_BASE + 2;
const BAD_PEER_PORT = PORT_BASE + 3;

const NS_A_ADDR = '192.0.2.1';
const NS_B_ADDR = '192.0.2.2';
const NS_PREFIX_BITS = 24;

const SETUP_TIMEOUT_MS = 10 * 60 * 1000;
const TEST_TIMEOUT_MS = 90_000;
const CLEANUP_TIMEOUT_MS = 60_000;
const LISTEN_TIMEOUT_MS = 10_000;
const CABLE_UP_TIMEOUT_MS = 15_000;
const CABLE_GONE_TIMEOUT_MS = 10_000;
const PLUG_EXIT_TIMEOUT_MS = 10_000;
const RECONNECT_TIMEOUT_MS = 8_000;
const CROSS_WAIT_MS = 1_000 * TIME_SCALE;
const PING_COUNT = 5;

/** Flood during the ssh kill: at most this many 1500-byte frames within this many ms. */
const FLOOD_MAX_FRAMES = 200_000;
const FLOOD_MAX_MS = 3_000;
const FLOOD_KILL_AFTER_MS = 400;
const FLOOD_AFTER_KILL_MS = 500;
const FLOOD_FRAME_BYTES = 1500;
const FLOOD_BURST_FRAMES = 64;

/** Random bytes written into a stream server plug. */
const GARBAGE_BYTES = 64 * 1024;
/** Frames sent through the switch while a peer refuses to read. */
const DEAF_FLOOD_FRAMES = 20_000;
const DEAF_FLOOD_MAX_MS = 5_000;
/** Longest wait for c to receive one burst of the deaf-peer flood before the next is sent. */
const DEAF_BURST_WAIT_MS = 200;

// ---------------------------------------------------------------------------------------------
// helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Our vde_plug with the given arguments. */
function ourPlug(cleanup: Cleanup, args: string[]): Proc {
  return start(cleanup, [NODE, PLUG_BIN, ...args], `vde_plug ${args.join(' ')}`);
}

/** Resolves with the exit code, or throws after timeoutMs. */
async function exited(p: Proc, timeoutMs: number, what: string): Promise<number | null> {
  const t = sleep(timeoutMs).then(() => 'timeout' as const);
  const r = await Promise.race([p.exit, t]);
  if (r === 'timeout') throw new Error(`${what} still running after ${timeoutMs} ms; output: ${p.out()}`);
  return r;
}

/** Sends a broadcast from a and waits for it, intact, at b. */
async function crosses(a: VdeClient, b: VdeClient, src: string, len = 200): Promise<boolean> {
  const f = frame(BCAST, src, len - 14);
  a.send(f);
  const hex = src.replace(/:/g, '');
  const end = Date.now() + CROSS_WAIT_MS;
  while (Date.now() < end) {
    const g = await b.recv(end - Date.now());
    if (g && g.subarray(6, 12).toString('hex') === hex) return g.equals(f);
  }
  return false;
}

/** Waits until a broadcast from a reaches b (the cable may still be coming up), then checks both ways. */
async function cableCarries(a: VdeClient, b: VdeClient, tag: number): Promise<void> {
  const mac = (n: number): string => `02:00:00:c1:${(tag & 0xff).toString(16).padStart(2, '0')}:${n.toString(16).padStart(2, '0')}`;
  let n = 0;
  await waitFor(async () => crosses(a, b, mac(n++ % 200)), CABLE_UP_TIMEOUT_MS, 'the cable to carry frames');
  expect(await crosses(a, b, mac(201), 1514)).toBe(true);
  expect(await crosses(b, a, mac(202), 1514)).toBe(true);
  expect(await crosses(b, a, mac(203), 60)).toBe(true);
}

async function activePorts(sw: RunningSwitch): Promise<number> {
  return (await sw.json<unknown[]>('json/port/print')).length;
}

/** Attaches a new namespace to sw through a root-namespace tap and Debian's vde_plug tap://. */
async function namespaceOn(cleanup: Cleanup, sw: RunningSwitch, addr: string): Promise<string> {
  const ns = await createNetns('vdecab', cleanup);
  const tap = await createTap(uniqueIfname('vdc'), { cleanup });
  const plug = spawnInNetns(null, [DEBIAN_PLUG, `vde://${sw.dir}`, `tap://${tap}`], { cleanup });
  await pollUntil(async () => plug.child.exitCode !== null || (await tapAttached(tap)), CABLE_UP_TIMEOUT_MS, `vde_plug on ${tap} (${plug.output()})`);
  if (plug.child.exitCode !== null) throw new Error(`vde_plug tap:// exited: ${plug.output()}`);
  await moveLinkToNetns(tap, ns, `${addr}/${NS_PREFIX_BITS}`, { cleanup });
  return ns;
}

/** The process in dpipe's tree whose command line starts with `name`. */
function childNamed(root: number, name: RegExp): number | undefined {
  return descendants(root).find((p) => name.test(cmdline(p)));
}

/** vde_plug processes still running below sshd (the remote ends of ssh cables). */
function remotePlugs(sshd: Sshd): number[] {
  return descendants(sshd.proc.p.pid!).filter((p) => /vde_plug/.test(cmdline(p)));
}

// ---------------------------------------------------------------------------------------------

let tools: Record<string, string> = {};

beforeAll(async () => {
  tools = await ensureTools({
    sshd: 'openssh-server',
    ssh: 'openssh-client',
    'ssh-keygen': 'openssh-client',
    socat: 'socat',
    [DEBIAN_DPIPE]: 'vdeplug',
    [DEBIAN_PLUG]: 'vdeplug',
    ip: 'iproute2',
    ping: 'iputils-ping',
  });
}, SETUP_TIMEOUT_MS);

describe('ssh cables: dpipe vde_plug SW1 = ssh root@127.0.0.1 vde_plug SW2', () => {
  const cleanup = withCleanup();
  let sshd: Sshd;
  let s1: RunningSwitch;
  let s2: RunningSwitch;
  let nsA: string;
  let a: VdeClient;
  let b: VdeClient;

  beforeAll(async () => {
    sshd = await startSshd(cleanup, tools, SSH_PORT);
    s1 = await startSwitch();
    cleanup.add('switch 1', () => s1.stop());
    s2 = await startSwitch();
    cleanup.add('switch 2', () => s2.stop());
    nsA = await namespaceOn(cleanup, s1, NS_A_ADDR);
    await namespaceOn(cleanup, s2, NS_B_ADDR);
    a = await VdeClient.connect(s1.dir);
    cleanup.add('client a', () => a.close());
    b = await VdeClient.connect(s2.dir);
    cleanup.add('client b', () => b.close());
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await cleanup.run();
  }, CLEANUP_TIMEOUT_MS);

  /** Lays the cable; `remote` is the command ssh runs on the far end. */
  const layCable = (remote: string[]): Proc => start(cleanup, [DEBIAN_DPIPE, NODE, PLUG_BIN, s1.dir, '=', ...sshd.client, ...remote], 'dpipe ssh cable');

  const unplug = async (cable: Proc): Promise<void> => {
    const before = await activePorts(s1);
    await killTree(cable.p.pid);
    await exited(cable, PLUG_EXIT_TIMEOUT_MS, 'dpipe');
    await waitFor(async () => (await activePorts(s1)) < before, CABLE_GONE_TIMEOUT_MS, 'the cable to leave switch 1');
    await waitFor(() => remotePlugs(sshd).length === 0, CABLE_GONE_TIMEOUT_MS, 'the remote vde_plug to exit');
  };

  it('our vde_plug on both ends: frames cross both ways and the namespaces ping across', async () => {
    const cable = layCable([NODE, PLUG_BIN, s2.dir]);
    await cableCarries(a, b, 1);
    const r = await ping(nsA, NS_B_ADDR, PING_COUNT);
    expect(r.received, r.output).toBe(PING_COUNT);
    // the remote end really is our vde_plug, started by sshd
    expect(remotePlugs(sshd).map(cmdline).join('\n')).toContain(PLUG_BIN);
    await unplug(cable);
    expect(cable.p.exitCode).toBe(0);
  }, TEST_TIMEOUT_MS);

  it("mixed: our vde_plug locally, Debian's vde_plug on the remote end", async () => {
    const cable = layCable([DEBIAN_PLUG, s2.dir]);
    await cableCarries(a, b, 2);
    const r = await ping(nsA, NS_B_ADDR, PING_COUNT);
    expect(r.received, r.output).toBe(PING_COUNT);
    expect(remotePlugs(sshd).map(cmdline).join('\n')).toContain(DEBIAN_PLUG);
    await unplug(cable);
  }, TEST_TIMEOUT_MS);

  it('ssh dying mid-frame: both switches keep working, old clients talk, a new cable works', async () => {
    const c1 = await VdeClient.connect(s1.dir);
    const c2 = await VdeClient.connect(s2.dir);
    try {
      const cable = layCable([NODE, PLUG_BIN, s2.dir]);
      await cableCarries(a, b, 3);
      // b announces itself so that switch 1 sends the flood down the cable as unicast
      const bMac = '02:00:00:c1:03:b0';
      b.send(frame(BCAST, bMac, 46));
      await sleep(200);
      const sshPid = childNamed(cable.p.pid!, /^\S*ssh /);
      expect(sshPid, 'ssh client below dpipe').toBeGreaterThan(0);
      // flood 1500-byte frames from a to b and kill ssh (SIGKILL, by PID) in the middle of it
      const flood = frame(bMac, '02:00:00:c1:03:a0', FLOOD_FRAME_BYTES - 14);
      let sent = 0;
      let killedAt = -1;
      const t0 = Date.now();
      let received = 0;
      let stopAt = t0 + FLOOD_MAX_MS;
      while (sent < FLOOD_MAX_FRAMES && Date.now() < stopAt) {
        for (let i = 0; i < FLOOD_BURST_FRAMES && a.send(flood); i++) sent++;
        received += (await b.drain(1)).length;
        if (killedAt < 0 && Date.now() - t0 >= FLOOD_KILL_AFTER_MS) {
          killedAt = sent;
          try { process.kill(sshPid!, "SIGKILL"); } catch (e) { throw new Error(`ssh gone before the kill: ${cable.out()}`); }
          stopAt = Math.min(stopAt, Date.now() + FLOOD_AFTER_KILL_MS);
        }
      }
      expect(killedAt, 'ssh killed during the flood').toBeGreaterThan(0);
      expect(received, 'frames crossed before the kill').toBeGreaterThan(0);
      // the local plug sees its stdin/stdout die and exits; dpipe follows; the remote plug exits too
      await exited(cable, PLUG_EXIT_TIMEOUT_MS, 'dpipe after ssh was killed');
      // our local plug stopped with a message at most, never a crash (no stack trace)
      expect(cable.out()).not.toMatch(/\n\s+at .*:\d+:\d+|TypeError|RangeError/);
      await waitFor(() => remotePlugs(sshd).length === 0, CABLE_GONE_TIMEOUT_MS, 'the remote vde_plug to exit');
      await waitFor(async () => (await activePorts(s1)) === 3 && (await activePorts(s2)) === 3, CABLE_GONE_TIMEOUT_MS, 'cable ports gone');
      expect(s1.proc.exitCode).toBeNull();
      expect(s2.proc.exitCode).toBeNull();
      // the rest of the flood, now flooded to every port of switch 1, is not of interest
      for (const x of [a, b, c1, c2]) await x.drain(200);
      // existing clients on each switch still exchange frames
      expect(await crosses(a, c1, '02:00:00:c1:03:01')).toBe(true);
      expect(await crosses(c1, a, '02:00:00:c1:03:02', 1514)).toBe(true);
      expect(await crosses(b, c2, '02:00:00:c1:03:03')).toBe(true);
      expect(await crosses(c2, b, '02:00:00:c1:03:04', 1514)).toBe(true);
      // and a new cable works, for the clients and for the namespaces
      const again = layCable([NODE, PLUG_BIN, s2.dir]);
      await cableCarries(a, b, 4);
      expect(await crosses(c1, c2, '02:00:00:c1:04:01')).toBe(true);
      const r = await ping(nsA, NS_B_ADDR, PING_COUNT);
      expect(r.received, r.output).toBe(PING_COUNT);
      await unplug(again);
    } finally {
      c1.close();
      c2.close();
    }
  }, TEST_TIMEOUT_MS);
});

describe('loopback TCP cables', () => {
  const cleanup = withCleanup();
  let s1: RunningSwitch;
  let s2: RunningSwitch;
  let a: VdeClient;
  let b: VdeClient;

  beforeAll(async () => {
    s1 = await startSwitch();
    cleanup.add('switch 1', () => s1.stop());
    s2 = await startSwitch();
    cleanup.add('switch 2', () => s2.stop());
    a = await VdeClient.connect(s1.dir);
    cleanup.add('client a', () => a.close());
    b = await VdeClient.connect(s2.dir);
    cleanup.add('client b', () => b.close());
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await cleanup.run();
  }, CLEANUP_TIMEOUT_MS);

  it('dpipe vde_plug SW1 = socat - TCP:127.0.0.1:P against socat TCP-LISTEN:P EXEC:"vde_plug SW2"', async () => {
    const listener = start(cleanup, [tools.socat!, `TCP-LISTEN:${SOCAT_PORT},reuseaddr,bind=127.0.0.1`, `EXEC:${NODE} ${PLUG_BIN} ${s2.dir}`], 'socat listener');
    await pollUntil(() => listener.p.exitCode !== null || listening(SOCAT_PORT), LISTEN_TIMEOUT_MS, `socat on ${SOCAT_PORT}`);
    expect(listener.p.exitCode, listener.out()).toBeNull();
    const cable = start(cleanup, [DEBIAN_DPIPE, NODE, PLUG_BIN, s1.dir, '=', tools.socat!, '-', `TCP:127.0.0.1:${SOCAT_PORT}`], 'dpipe socat cable');
    await cableCarries(a, b, 5);
    await killTree(cable.p.pid);
    await exited(cable, PLUG_EXIT_TIMEOUT_MS, 'dpipe');
    // the listener (no fork option) ends with its one connection, and its vde_plug with it
    await exited(listener, PLUG_EXIT_TIMEOUT_MS, 'socat listener');
    await waitFor(async () => (await activePorts(s1)) === 1 && (await activePorts(s2)) === 1, CABLE_GONE_TIMEOUT_MS, 'cable ports gone');
  }, TEST_TIMEOUT_MS);

  it('our own TCP stream (framing=2), no helper; with --reconnect a restarted server brings frames back', async () => {
    const serverLoc = `stream://tcp:127.0.0.1:${STREAM_PORT}[server/framing=2]`;
    const server = ourPlug(cleanup, [s1.dir, serverLoc]);
    await pollUntil(() => server.p.exitCode !== null || listening(STREAM_PORT), LISTEN_TIMEOUT_MS, `server plug on ${STREAM_PORT}`);
    const client = ourPlug(cleanup, ['--reconnect', s2.dir, `stream://tcp:127.0.0.1:${STREAM_PORT}[framing=2]`]);
    await cableCarries(a, b, 6);
    // jumbo frames pass as well (vdeplug4's limit, 9234 bytes)
    expect(await crosses(a, b, '02:00:00:c1:06:f0', 9234)).toBe(true);
    server.p.kill('SIGTERM');
    expect(await exited(server, PLUG_EXIT_TIMEOUT_MS, 'server plug')).toBe(0);
    await waitFor(async () => (await activePorts(s1)) === 1, CABLE_GONE_TIMEOUT_MS, 'server plug gone from switch 1');
    expect(await crosses(a, b, '02:00:00:c1:06:f1')).toBe(false);
    await sleep(300);
    expect(client.p.exitCode, `client plug gave up: ${client.out()}`).toBeNull();
    const server2 = ourPlug(cleanup, [s1.dir, serverLoc]);
    const t0 = Date.now();
    // (no wait for the listener: the retrying client may be accepted, and the listener closed,
    // before a poll could see it)
    const mac = (n: number): string => `02:00:00:c1:07:${n.toString(16).padStart(2, '0')}`;
    let n = 0;
    await waitFor(async () => {
      if (server2.p.exitCode !== null) throw new Error(`restarted server plug exited: ${server2.out()}`);
      return crosses(a, b, mac(n++ % 200));
    }, RECONNECT_TIMEOUT_MS, 'frames after the server restart');
    expect(Date.now() - t0).toBeLessThan(RECONNECT_TIMEOUT_MS * TIME_SCALE); // (waitFor stretches the same way)
    expect(await crosses(b, a, mac(250), 1514)).toBe(true);
    expect(client.p.exitCode).toBeNull();
    client.p.kill('SIGTERM');
    server2.p.kill('SIGTERM');
    await exited(client, PLUG_EXIT_TIMEOUT_MS, 'client plug');
    await exited(server2, PLUG_EXIT_TIMEOUT_MS, 'server plug');
  }, TEST_TIMEOUT_MS);
});

describe('bad peers on a stream server plug', () => {
  const cleanup = withCleanup();
  let sw: RunningSwitch;
  let a: VdeClient;
  let c: VdeClient;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    sw = await startSwitch();
    cleanup.add('switch', () => sw.stop());
    a = await VdeClient.connect(sw.dir);
    cleanup.add('client a', () => a.close());
    c = await VdeClient.connect(sw.dir);
    cleanup.add('client c', () => c.close());
    cleanup.add('peer sockets', () => sockets.forEach((s) => s.destroy()));
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await cleanup.run();
  }, CLEANUP_TIMEOUT_MS);

  /** Connects a raw peer to host:port (TCP) or to a unix path. */
  const peer = (to: { port: number } | { path: string }): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const s = 'port' in to ? net.connect({ host: '127.0.0.1', port: to.port }) : net.connect({ path: to.path });
      sockets.push(s);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });

  /** The switch still forwards between its clients and answers its console. */
  const switchWorks = async (tag: number): Promise<void> => {
    expect(sw.proc.exitCode).toBeNull();
    expect(await crosses(a, c, `02:00:00:c1:${tag.toString(16).padStart(2, '0')}:01`)).toBe(true);
    expect(await crosses(c, a, `02:00:00:c1:${tag.toString(16).padStart(2, '0')}:02`, 1514)).toBe(true);
    expect(await activePorts(sw)).toBe(2);
  };

  it('random garbage into stream://tcp:...[server/framing=2]: the plug exits with a clear message', async () => {
    const plug = ourPlug(cleanup, [sw.dir, `stream://tcp:127.0.0.1:${BAD_PEER_PORT}[server/framing=2]`]);
    await pollUntil(() => plug.p.exitCode !== null || listening(BAD_PEER_PORT), LISTEN_TIMEOUT_MS, 'server plug');
    await waitFor(async () => (await activePorts(sw)) === 3, CABLE_UP_TIMEOUT_MS, 'plug on the switch');
    const s = await peer({ port: BAD_PEER_PORT });
    s.on('error', () => {});
    s.write(randomBytes(GARBAGE_BYTES));
    // the peer stays connected: the plug must notice the garbage itself, not an end of stream
    expect(await exited(plug, PLUG_EXIT_TIMEOUT_MS, 'plug fed garbage')).toBe(1);
    expect(plug.out()).toMatch(new RegExp(`^vde_plug: stream tcp 127\\.0\\.0\\.1:${BAD_PEER_PORT}: frame length above the limit`, 'm'));
    s.destroy();
    await waitFor(async () => (await activePorts(sw)) === 2, CABLE_GONE_TIMEOUT_MS, 'plug gone from the switch');
    await a.drain(100);
    await c.drain(100);
    await switchWorks(0x10);
  }, TEST_TIMEOUT_MS);

  it('a frame cut short by the peer (unix stream server): the plug exits naming it', async () => {
    const dir = cleanup.path(tmpdir('vdets-cut-'));
    const sock = path.join(dir, 'stream.sock');
    const plug = ourPlug(cleanup, [sw.dir, `stream://unix:${sock}[server/framing=2]`]);
    await pollUntil(() => plug.p.exitCode !== null || fs.existsSync(sock), LISTEN_TIMEOUT_MS, 'unix server plug');
    const s = await peer({ path: sock });
    // a header announcing 1500 bytes, then 100 bytes, then the end
    const head = Buffer.alloc(2);
    head.writeUInt16BE(1500);
    s.end(Buffer.concat([head, Buffer.alloc(100, 0xa5)]));
    expect(await exited(plug, PLUG_EXIT_TIMEOUT_MS, 'plug with a cut frame')).toBe(1);
    expect(plug.out()).toMatch(/stream unix .*: end of stream inside a frame/);
    await waitFor(async () => (await activePorts(sw)) === 2, CABLE_GONE_TIMEOUT_MS, 'plug gone from the switch');
    await switchWorks(0x11);
  }, TEST_TIMEOUT_MS);

  it('a peer that never reads does not hold up the switch', async () => {
    const plug = ourPlug(cleanup, [sw.dir, `stream://tcp:127.0.0.1:${BAD_PEER_PORT}[server/framing=2]`]);
    await pollUntil(() => plug.p.exitCode !== null || listening(BAD_PEER_PORT), LISTEN_TIMEOUT_MS, 'server plug');
    const s = await peer({ port: BAD_PEER_PORT });
    s.pause(); // never read: the plug's socket fills up
    await waitFor(async () => (await activePorts(sw)) === 3, CABLE_UP_TIMEOUT_MS, 'plug on the switch');
    // broadcast flood from a: reaches c and the deaf plug
    const f = frame(BCAST, '02:00:00:c1:12:a0', 1500 - 14);
    let sent = 0;
    let got = 0;
    const t0 = Date.now();
    while (sent < DEAF_FLOOD_FRAMES && Date.now() - t0 < DEAF_FLOOD_MAX_MS) {
      for (let i = 0; i < FLOOD_BURST_FRAMES && a.send(f); i++) sent++;
      // paced by c (the next burst once c has this one, or after a bounded wait), so that only a
      // switch held up by the deaf plug loses frames here, never a slow reader in this test
      const burstEnd = Date.now() + DEAF_BURST_WAIT_MS;
      do got += (await c.drain(1)).length;
      while (got < sent && Date.now() < burstEnd);
    }
    got += (await c.drain(300)).length;
    expect(sent).toBeGreaterThan(1000);
    // c got most of it although the plug's peer took nothing
    expect(got).toBeGreaterThan(sent * 0.8);
    expect(plug.p.exitCode, plug.out()).toBeNull();
    await c.drain(100);
    await a.drain(100);
    expect(await crosses(a, c, '02:00:00:c1:12:01')).toBe(true);
    expect(await activePorts(sw)).toBe(3);
    s.destroy();
    expect(await exited(plug, PLUG_EXIT_TIMEOUT_MS, 'plug after its peer left')).toBe(1);
    expect(plug.out()).toMatch(/stream tcp .*: (end of stream|hang-up|read error|write error)/);
    await waitFor(async () => (await activePorts(sw)) === 2, CABLE_GONE_TIMEOUT_MS, 'plug gone from the switch');
    await switchWorks(0x13);
  }, TEST_TIMEOUT_MS);
});
