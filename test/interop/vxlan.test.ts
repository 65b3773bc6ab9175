// vxlan:// and vxvde:// against the real things, in network namespaces joined by veth pairs
// (multicast routed over the veth, addresses from 192.0.2.0/24, groups from 239/8):
//  - our vde_plug with vxlan:// talks to a Linux kernel VXLAN device (ping across, the unicast
//    path proven by the multicast counters and by the kernel's learned forwarding entry);
//  - our vxvde:// talks to Debian vdeplug4's vxvde:// (frames both ways, broadcast and learned
//    unicast, jumbo frames, no own echoes, the "leave" message understood in both directions),
//    and two of our vxvde plugs share one host;
//  - garbage sent to the VXLAN port (runts, header-only, wrong flags, wrong VNI, oversize,
//    random bytes) is dropped and the endpoint keeps working.
// Processes are stopped by PID, namespaces deleted afterwards.
import path from 'node:path';
import readline from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import {
  Cleanup,
  createNetns,
  createTapInNetns,
  netnsExec,
  ping,
  pollUntil,
  run,
  spawnInNetns,
  tapAttached,
  uniqueIfname,
} from '../helpers/netns.js';
import { StdioPlug } from '../helpers/stdioplug.js';
import { ROOT, startSwitch, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame } from '../helpers/vdeclient.js';

const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const BCAST = 'ff:ff:ff:ff:ff:ff';
/** VXLAN header bytes. */
const VX_HEADER_BYTES = 8;
/** How long a test waits for a frame that must arrive. */
const FRAME_WAIT_MS = 3000;
/** How long a test waits to be sure a frame does not arrive. */
const SILENCE_MS = 700;
/** Multicast packets tolerated during a burst that must go unicast (IGMP and the like). */
const MCAST_NOISE_PACKETS = 3;

/** The 8-byte VXLAN header for vni (flags 0x08). */
function vxHeader(vni: number, flags = 0x08, reserved = 0): Buffer {
  return Buffer.from([flags, reserved, reserved, reserved, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff, reserved]);
}

/** Hex of a MAC without colons (StdioPlug.recvFrom's form). */
function hex(mac: string): string {
  return mac.replace(/:/g, '');
}

/** Joins namespaces a and b with a veth pair, addresses them and routes 239/8 over it; returns the two interface names. */
async function linkNamespaces(a: string, b: string, addrA: string, addrB: string, c: Cleanup): Promise<[string, string]> {
  const ia = uniqueIfname('vxa');
  const ib = uniqueIfname('vxb');
  await run(['ip', 'link', 'add', ia, 'netns', a, 'type', 'veth', 'peer', 'name', ib, 'netns', b]);
  c.link(ia, a);
  for (const [ns, ifname, addr] of [[a, ia, addrA], [b, ib, addrB]] as const) {
    await run(['ip', '-n', ns, 'addr', 'add', addr, 'dev', ifname]);
    await run(['ip', '-n', ns, 'link', 'set', ifname, 'up']);
    await run(['ip', '-n', ns, 'route', 'add', '239.0.0.0/8', 'dev', ifname]);
  }
  return [ia, ib];
}

/** Multicast IP packets received so far in namespace ns (IpExt InMcastPkts). */
async function inMcastPackets(ns: string): Promise<number> {
  const r = await netnsExec(ns, ['cat', '/proc/net/netstat']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('IpExt:'));
  const keys = lines[0]!.trim().split(/\s+/);
  const vals = lines[1]!.trim().split(/\s+/);
  const i = keys.indexOf('InMcastPkts');
  if (i < 0) throw new Error('no InMcastPkts in /proc/net/netstat');
  return Number(vals[i]);
}

/** Starts our vde_plug in stdio mode inside namespace ns. */
function ourStdioPlug(ns: string, locator: string, c: Cleanup): StdioPlug {
  const p = new StdioPlug('ip', ['netns', 'exec', ns, process.execPath, PLUG_BIN, locator]);
  c.process(p.proc);
  return p;
}

/** Starts Debian's vde_plug in stdio mode inside namespace ns. */
function debianStdioPlug(ns: string, locator: string, c: Cleanup): StdioPlug {
  const p = new StdioPlug('ip', ['netns', 'exec', ns, 'vde_plug', locator]);
  c.process(p.proc);
  return p;
}

/** Sends f from `from` (again every 250 ms) until `to` prints it; proves both ends are up. */
async function sendUntilReceived(from: StdioPlug, to: StdioPlug, f: Buffer, what: string): Promise<void> {
  const src = f.subarray(6, 12).toString('hex');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    from.send(f);
    const got = await to.recvFrom(src, 250);
    if (got?.equals(f)) {
      await new Promise((r) => setTimeout(r, 300));
      while (await to.recv(50)); // drop the copies of the retries
      return;
    }
  }
  throw new Error(`${what}: no frame came through (stderr: ${from.stderr} ${to.stderr})`);
}

/** A datagram seen by a UdpAgent. */
interface Datagram {
  from: string;
  port: number;
  data: Buffer;
}

// A tiny UDP peer run with `node -e` inside a namespace: binds a port (SO_REUSEADDR), optionally
// joins a group, prints every datagram as a JSON line and sends what it is told on stdin.
const AGENT_SCRIPT = `
const dgram = require('node:dgram');
const readline = require('node:readline');
const [port, group, ifaddr] = process.argv.slice(1);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
s.on('message', (m, r) => process.stdout.write(JSON.stringify({ from: r.address, port: r.port, hex: m.toString('hex') }) + '\\n'));
s.bind(Number(port), () => {
  if (group) { s.addMembership(group, ifaddr); s.setMulticastInterface(ifaddr); s.setMulticastLoopback(false); }
  process.stdout.write(JSON.stringify({ ready: true }) + '\\n');
});
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  const c = JSON.parse(l);
  s.send(Buffer.from(c.hex, 'hex'), c.port, c.to);
});
`;

class UdpAgent {
  readonly child: ChildProcess;
  private got: Datagram[] = [];
  private readyFlag = false;

  /** Starts the agent in ns on port; joins group on the interface with address ifaddr when given. */
  constructor(ns: string, port: number, c: Cleanup, group?: string, ifaddr?: string) {
    const args = [String(port), ...(group && ifaddr ? [group, ifaddr] : [])];
    this.child = spawnInNetns(ns, [process.execPath, '-e', AGENT_SCRIPT, ...args], { cleanup: c }).child;
    this.child.stdin!.on('error', () => {});
    readline.createInterface({ input: this.child.stdout! }).on('line', (l) => {
      const m = JSON.parse(l) as { ready?: boolean; from?: string; port?: number; hex?: string };
      if (m.ready) this.readyFlag = true;
      else this.got.push({ from: m.from!, port: m.port!, data: Buffer.from(m.hex!, 'hex') });
    });
  }

  /** Resolves once the socket is bound (and the group joined). */
  async ready(): Promise<void> {
    await pollUntil(() => this.readyFlag, 10_000, 'UDP agent ready');
  }

  /** Sends one datagram. */
  send(to: string, port: number, data: Buffer): void {
    this.child.stdin!.write(`${JSON.stringify({ to, port, hex: data.toString('hex') })}\n`);
  }

  /** Waits for a datagram matching pred (consumed with everything before it); null after timeoutMs. */
  async next(pred: (d: Datagram) => boolean, timeoutMs = FRAME_WAIT_MS): Promise<Datagram | null> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.got.findIndex(pred);
      if (i >= 0) return this.got.splice(0, i + 1)[i]!;
      if (Date.now() >= end) return null;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Stops the agent (by PID). */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const done = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await done;
  }
}

beforeAll(async () => {
  await ensureTools({ vde_plug: 'vdeplug', ip: 'iproute2', ping: 'iputils-ping', bridge: 'iproute2' });
});

describe('vxlan:// against a Linux kernel VXLAN device', () => {
  const c = new Cleanup();
  let sw: RunningSwitch | undefined;
  let nsK = '';
  let nsH = '';

  beforeAll(async () => {
    // nsK: kernel vx0 (VNI 42, group 239.1.1.1) over a veth to nsP, where our plug joins the
    // same group and connects the overlay to our switch; nsH: a tap on that switch.
    nsK = await createNetns('vxk', c);
    const nsP = await createNetns('vxp', c);
    nsH = await createNetns('vxh', c);
    const [vk, vp] = await linkNamespaces(nsK, nsP, '192.0.2.1/30', '192.0.2.2/30', c);
    await run(['ip', '-n', nsK, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'group', '239.1.1.1', 'dev', vk, 'dstport', '4789']);
    await run(['ip', '-n', nsK, 'addr', 'add', '192.0.2.17/28', 'dev', 'vx0']);
    await run(['ip', '-n', nsK, 'link', 'set', 'vx0', 'up']);
    sw = await startSwitch();
    spawnInNetns(nsP, [process.execPath, PLUG_BIN, `vxlan://239.1.1.1/vni=42/if=${vp}`, sw.dir], { cleanup: c });
    const tap = await createTapInNetns(nsH, uniqueIfname('vxt'), '192.0.2.18/28', { cleanup: c });
    spawnInNetns(nsH, ['vde_plug', `vde://${sw.dir}`, `tap://${tap}`], { cleanup: c });
    const s = sw;
    await waitFor(async () => (await s.json<unknown[]>('json/port/print')).length >= 2, 15_000, 'both plugs on the switch');
    await pollUntil(() => tapAttached(tap, nsH), 10_000, 'tap attached');
  });

  afterAll(async () => {
    await c.run();
    await sw?.stop();
  });

  it('carries ping between the kernel VXLAN device and a tap behind our switch, both ways', async () => {
    const there = await ping(nsK, '192.0.2.18', 10);
    expect(there.received, there.output).toBeGreaterThanOrEqual(9);
    const back = await ping(nsH, '192.0.2.17', 10);
    expect(back.received, back.output).toBe(10);
    const big = await ping(nsH, '192.0.2.17', 3, { size: 1350 });
    expect(big.received, big.output).toBe(3);
  });

  it('learns the kernel endpoint and answers it by unicast; the kernel learns us', async () => {
    await ping(nsK, '192.0.2.18', 2); // refresh both sides' tables
    const before = await inMcastPackets(nsK);
    const r = await ping(nsH, '192.0.2.17', 20, { intervalS: 0.05 });
    expect(r.received, r.output).toBe(20);
    const after = await inMcastPackets(nsK);
    expect(after - before).toBeLessThanOrEqual(MCAST_NOISE_PACKETS); // 20 echo requests, none by multicast
    const fdb = await netnsExec(nsK, ['bridge', 'fdb', 'show', 'dev', 'vx0']);
    expect(fdb.stdout).toMatch(/dst 192\.0\.2\.2\b/);
  });
});

describe('vxvde:// against Debian vdeplug4', () => {
  const c = new Cleanup();
  let nsD = '';
  let nsO = '';
  let vd = '';
  let vo = '';
  const MO = '02:00:00:00:30:01'; // ours
  const MD = '02:00:00:00:30:02'; // Debian's
  let ours: StdioPlug;
  let deb: StdioPlug;

  beforeAll(async () => {
    nsD = await createNetns('vxd', c);
    nsO = await createNetns('vxo', c);
    [vd, vo] = await linkNamespaces(nsD, nsO, '192.0.2.33/30', '192.0.2.34/30', c);
    deb = debianStdioPlug(nsD, `vxvde://239.2.2.2/if=${vd}`, c);
    ours = ourStdioPlug(nsO, `vxvde://239.2.2.2/if=${vo}`, c);
    await sendUntilReceived(ours, deb, frame(BCAST, MO, 100), 'ours → Debian');
  });

  afterAll(async () => {
    await c.run();
  });

  it('exchanges broadcast frames both ways and never hears its own echo', async () => {
    const f = frame(BCAST, MO, 500);
    ours.send(f);
    expect((await deb.recvFrom(hex(MO), FRAME_WAIT_MS))?.equals(f)).toBe(true);
    expect(await ours.recvFrom(hex(MO), SILENCE_MS)).toBeNull();
    const g = frame(BCAST, MD, 300);
    deb.send(g);
    expect((await ours.recvFrom(hex(MD), FRAME_WAIT_MS))?.equals(g)).toBe(true);
  });

  it('sends to learned peers by unicast, both ways, up to 9000-byte jumbo frames', async () => {
    // both sides have learned each other from the broadcasts above
    for (const len of [60, 1514, 9014]) {
      const toOurs = frame(MO, MD, len - 14);
      deb.send(toOurs);
      expect((await ours.recvFrom(hex(MD), FRAME_WAIT_MS))?.equals(toOurs), `Debian → ours, ${len} bytes`).toBe(true);
      const toDeb = frame(MD, MO, len - 14);
      ours.send(toDeb);
      expect((await deb.recvFrom(hex(MO), FRAME_WAIT_MS))?.equals(toDeb), `ours → Debian, ${len} bytes`).toBe(true);
    }
    const burst = 10;
    const dBefore = await inMcastPackets(nsD);
    for (let i = 0; i < burst; i++) {
      const f = frame(MD, MO, Buffer.alloc(100, i));
      ours.send(f);
      expect((await deb.recvFrom(hex(MO), FRAME_WAIT_MS))?.equals(f)).toBe(true);
    }
    expect((await inMcastPackets(nsD)) - dBefore).toBeLessThanOrEqual(MCAST_NOISE_PACKETS);
    const oBefore = await inMcastPackets(nsO);
    for (let i = 0; i < burst; i++) {
      const f = frame(MO, MD, Buffer.alloc(100, i));
      deb.send(f);
      expect((await ours.recvFrom(hex(MD), FRAME_WAIT_MS))?.equals(f)).toBe(true);
    }
    expect((await inMcastPackets(nsO)) - oBefore).toBeLessThanOrEqual(MCAST_NOISE_PACKETS);
  });

  it('says goodbye on close, and Debian forgets us at once (a new plug with the same MAC is reached)', async () => {
    const agent = new UdpAgent(nsD, 14789, c, '239.2.2.2', '192.0.2.33');
    await agent.ready();
    await ours.close();
    const leave = await agent.next((d) => d.data.length === VX_HEADER_BYTES && d.from === '192.0.2.34');
    expect(leave?.data.equals(vxHeader(1))).toBe(true);
    await agent.close();
    // a new endpoint (new ephemeral port): Debian must not send to the old address any more
    ours = ourStdioPlug(nsO, `vxvde://239.2.2.2/if=${vo}`, c);
    await sendUntilReceived(deb, ours, frame(BCAST, '02:00:00:00:30:09', 60), 'Debian → new ours');
    const f = frame(MO, MD, 200);
    deb.send(f);
    expect((await ours.recvFrom(hex(MD), FRAME_WAIT_MS))?.equals(f)).toBe(true);
  });

  it("understands Debian's goodbye (a restarted Debian plug is reached at once)", async () => {
    // ours learns MD → Debian's current unicast port
    const g = frame(BCAST, MD, 60);
    deb.send(g);
    expect((await ours.recvFrom(hex(MD), FRAME_WAIT_MS))?.equals(g)).toBe(true);
    await deb.close(); // SIGTERM: vdeplug4 sends its leave message
    deb = debianStdioPlug(nsD, `vxvde://239.2.2.2/if=${vd}`, c);
    await sendUntilReceived(ours, deb, frame(BCAST, '02:00:00:00:30:0a', 60), 'ours → new Debian');
    const f = frame(MD, MO, 200); // without the leave, this would go to Debian's old port and be lost
    ours.send(f);
    expect((await deb.recvFrom(hex(MO), FRAME_WAIT_MS))?.equals(f)).toBe(true);
  });

  it('lets two of our vxvde plugs share one host (no echoes, learned unicast between them)', async () => {
    const a = ourStdioPlug(nsO, `vxvde://239.2.2.3/if=${vo}`, c);
    const b = ourStdioPlug(nsO, `vxvde://239.2.2.3/if=${vo}`, c);
    const MA = '02:00:00:00:31:01';
    const MB = '02:00:00:00:31:02';
    await sendUntilReceived(a, b, frame(BCAST, MA, 80), 'a → b');
    expect(await a.recvFrom(hex(MA), SILENCE_MS)).toBeNull();
    const back = frame(MA, MB, 1000);
    b.send(back);
    expect((await a.recvFrom(hex(MB), FRAME_WAIT_MS))?.equals(back)).toBe(true);
    expect(await b.recvFrom(hex(MB), SILENCE_MS)).toBeNull();
    await a.close();
    await b.close();
  });
});

describe('vxlan:// under bad input', () => {
  const c = new Cleanup();
  let nsF = '';
  let nsG = '';
  let plug: StdioPlug;
  let agent: UdpAgent;
  const PLUG_IP = '192.0.2.42';
  const AGENT_IP = '192.0.2.41';
  const MG = '02:00:00:00:40:01'; // behind the agent
  const MP = '02:00:00:00:40:02'; // behind the plug
  const VNI = 7;
  const valid = (f: Buffer): Buffer => Buffer.concat([vxHeader(VNI), f]);

  beforeAll(async () => {
    nsG = await createNetns('vxg', c);
    nsF = await createNetns('vxf', c);
    const [, vf] = await linkNamespaces(nsG, nsF, `${AGENT_IP}/30`, `${PLUG_IP}/30`, c);
    plug = ourStdioPlug(nsF, `vxlan://239.3.3.3/vni=${VNI}/if=${vf}`, c);
    agent = new UdpAgent(nsG, 4789, c, '239.3.3.3', AGENT_IP);
    await agent.ready();
    const hello = frame(BCAST, MG, 50);
    const deadline = Date.now() + 15_000;
    for (;;) {
      agent.send(PLUG_IP, 4789, valid(hello));
      if ((await plug.recvFrom(hex(MG), 250))?.equals(hello)) break;
      if (Date.now() > deadline) throw new Error(`plug does not come up: ${plug.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 300));
    while (await plug.recv(50)); // drain duplicates of the hello frame
  });

  afterAll(async () => {
    await c.run();
  });

  it('drops runts, header-only, wrong flags, wrong VNI, oversize and random datagrams, and keeps working', async () => {
    const f = frame(MP, MG, 46);
    const garbage: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from([0x08, 0, 0]),
      vxHeader(VNI).subarray(0, 7),
      vxHeader(VNI), // header only
      Buffer.concat([vxHeader(VNI), f.subarray(0, 14)]), // frame of exactly 14 bytes: too short
      Buffer.concat([vxHeader(VNI, 0x0c), f]), // an extra flag
      Buffer.concat([vxHeader(VNI, 0x00), f]), // I flag missing
      Buffer.concat([vxHeader(VNI, 0x88), f]),
      Buffer.concat([vxHeader(VNI + 1), f]), // another network
      Buffer.concat([vxHeader(0), f]),
      Buffer.concat([vxHeader(VNI), frame(MP, MG, 9300)]), // larger than any VDE frame
    ];
    // random bytes: short ones can never be valid; longer ones get a wrong flags byte
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 150; i++) {
      const len = rnd(23);
      garbage.push(Buffer.from(Array.from({ length: len }, () => rnd(256))));
    }
    for (let i = 0; i < 50; i++) {
      const b = Buffer.from(Array.from({ length: 23 + rnd(200) }, () => rnd(256)));
      if (b[0] === 0x08) b[0] = 0x09;
      garbage.push(b);
    }
    for (const g of garbage) agent.send(PLUG_IP, 4789, g);
    for (const g of garbage.slice(0, 12)) agent.send('239.3.3.3', 4789, g); // the same through the group
    const good = frame(MP, MG, Buffer.from('after the garbage'));
    agent.send(PLUG_IP, 4789, valid(good));
    const first = await plug.recv(FRAME_WAIT_MS);
    expect(first?.toString('hex')).toBe(good.toString('hex'));
    expect(await plug.recv(SILENCE_MS)).toBeNull();
    // reserved bits are ignored (as vdeplug4 and RFC 7348 say)
    const reservedSet = frame(MP, MG, Buffer.from('reserved bits set'));
    agent.send(PLUG_IP, 4789, Buffer.concat([vxHeader(VNI, 0x08, 0xff), reservedSet]));
    expect((await plug.recv(FRAME_WAIT_MS))?.equals(reservedSet)).toBe(true);
  });

  it('still sends: broadcast to the group, learned unicast to the sender at the VXLAN port', async () => {
    const b = frame(BCAST, MP, 64);
    plug.send(b);
    const gotB = await agent.next((d) => d.data.subarray(VX_HEADER_BYTES).equals(b));
    expect(gotB?.data.subarray(0, VX_HEADER_BYTES).equals(vxHeader(VNI))).toBe(true);
    expect(gotB?.from).toBe(PLUG_IP);
    expect(gotB?.port).toBe(4789);
    const before = await inMcastPackets(nsG);
    for (let i = 0; i < 10; i++) {
      const u = frame(MG, MP, Buffer.alloc(300, i));
      plug.send(u);
      const gotU = await agent.next((d) => d.data.subarray(VX_HEADER_BYTES).equals(u));
      expect(gotU?.data.equals(valid(u))).toBe(true);
    }
    expect((await inMcastPackets(nsG)) - before).toBeLessThanOrEqual(MCAST_NOISE_PACKETS);
  });

  it('refuses a second vxlan endpoint on the same port and an unknown interface, with clear messages', async () => {
    const again = await netnsExec(nsF, [process.execPath, PLUG_BIN, 'vxlan://239.3.3.3/vni=7', 'null://'], { check: false });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/vxlan:\/\/239\.3\.3\.3.*bind 0\.0\.0\.0:4789.*already uses this port.*Address already in use/);
    const noIf = await netnsExec(nsF, [process.execPath, PLUG_BIN, 'vxlan://239.3.3.4/if=nosuchif0', 'null://'], { check: false });
    expect(noIf.code).toBe(1);
    expect(noIf.stderr).toMatch(/if=nosuchif0/);
    await expect(plug.recv(100)).resolves.toBeNull(); // and the running plug is untouched
  });
});
