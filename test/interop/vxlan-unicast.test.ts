// Unicast vxlan:// (static peers, head-end replication) against Linux kernel VXLAN devices set up
// as a cloud or WAN without multicast would have them: `bridge fdb append 00:00:00:00:00:00 dev
// vx0 dst PEER` entries, over a veth underlay in network namespaces, IPv4 and IPv6.
//  - nsO holds our vde_plugs (one per underlay family) joined to taps in nsO;
//  - nsK1 and nsK2 each hold a kernel VXLAN device for VNI 42 (IPv4 underlay) and one for VNI 43
//    (IPv6 underlay), with our endpoint as their static flood entry; nsK1's devices learn, nsK2's
//    have `nolearning` (every frame goes by the static entries);
// Ping crosses to both kernels (so broadcasts were replicated to both), a learned unicast stream
// reaches only its peer (the other peer's underlay counters stay still), a peer removed from the
// peers file is cut off within seconds and comes back when it is added again. Processes are
// stopped by PID and the namespaces deleted afterwards.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { Cleanup, createNetns, createTapInNetns, netnsExec, ping, pollUntil, run, spawnInNetns, tapAttached, uniqueIfname } from '../helpers/netns.js';
import { ROOT, tmpdir } from '../helpers/switchproc.js';

/** Longest wait for a process to open its tap (slow under the sanitizer run on a loaded machine). */
const ATTACH_MS = 30_000;
const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
/**
 * Packets tolerated on the other peer's underlay during a burst of 30 unicast pings (neighbour
 * discovery, router solicitations and the like); flooding the burst would put 60 there.
 */
const UNDERLAY_NOISE_PACKETS = 10;
/** Longest wait for a peers-file change to take effect (the file is polled every second). */
const PEERS_CHANGE_WAIT_MS = 8000;

/** Received packets of an interface in a namespace. */
async function rxPackets(ns: string, ifname: string): Promise<number> {
  const r = await netnsExec(ns, ['cat', `/sys/class/net/${ifname}/statistics/rx_packets`]);
  return Number(r.stdout.trim());
}

describe('unicast vxlan:// against Linux VXLAN devices with static FDB entries', () => {
  const c = new Cleanup();
  let nsO = '';
  const nsK: string[] = [];
  const underlay: string[] = []; // the kernels' ends of the veths
  let peersFile = '';
  let dir = '';

  beforeAll(async () => {
    await ensureTools({ ip: 'iproute2', bridge: 'iproute2', ping: 'iputils-ping' });
    dir = c.path(tmpdir('vdets-vxu-'));
    nsO = await createNetns('vxuo', c);
    for (let k = 1; k <= 2; k++) {
      const ns = await createNetns(`vxk${k}`, c);
      nsK.push(ns);
      const io = uniqueIfname('vuo');
      const ik = uniqueIfname('vuk');
      await run(['ip', 'link', 'add', io, 'netns', nsO, 'type', 'veth', 'peer', 'name', ik, 'netns', ns]);
      c.link(io, nsO);
      underlay.push(ik);
      for (const [n, ifname, v4, v6] of [[nsO, io, `10.77.${k}.1/24`, `fd77:${k}::1/64`], [ns, ik, `10.77.${k}.2/24`, `fd77:${k}::2/64`]] as const) {
        await run(['ip', '-n', n, 'addr', 'add', v4, 'dev', ifname]);
        await run(['ip', '-n', n, 'addr', 'add', v6, 'dev', ifname, 'nodad']);
        await run(['ip', '-n', n, 'link', 'set', ifname, 'up']);
      }
      const learn = k === 1 ? [] : ['nolearning'];
      await run(['ip', '-n', ns, 'link', 'add', 'vx4', 'type', 'vxlan', 'id', '42', 'dstport', '4789', 'local', `10.77.${k}.2`, ...learn]);
      await run(['ip', '-n', ns, 'link', 'add', 'vx6', 'type', 'vxlan', 'id', '43', 'dstport', '4789', 'local', `fd77:${k}::2`, ...learn]);
      await run(['bridge', '-n', ns, 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx4', 'dst', `10.77.${k}.1`]);
      await run(['bridge', '-n', ns, 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx6', 'dst', `fd77:${k}::1`]);
      await run(['ip', '-n', ns, 'addr', 'add', `192.168.77.${k + 1}/24`, 'dev', 'vx4']);
      await run(['ip', '-n', ns, 'addr', 'add', `192.168.78.${k + 1}/24`, 'dev', 'vx6']);
      await run(['ip', '-n', ns, 'link', 'set', 'vx4', 'up']);
      await run(['ip', '-n', ns, 'link', 'set', 'vx6', 'up']);
    }
    const tap4 = await createTapInNetns(nsO, uniqueIfname('vu4'), '192.168.77.1/24', { cleanup: c });
    const tap6 = await createTapInNetns(nsO, uniqueIfname('vu6'), '192.168.78.1/24', { cleanup: c });
    peersFile = path.join(dir, 'peers');
    fs.writeFileSync(peersFile, '# IPv4 underlay peers\n10.77.1.2\n10.77.2.2\n');
    spawnInNetns(nsO, [process.execPath, PLUG_BIN, `vxlan:///vni=42/peers='${peersFile}'`, `tap://${tap4}`], { cleanup: c });
    spawnInNetns(nsO, [process.execPath, PLUG_BIN, 'vxlan://[fd77:1::2],[fd77:2::2]/vni=43', `tap://${tap6}`], { cleanup: c });
    await pollUntil(() => tapAttached(tap4, nsO), ATTACH_MS, 'IPv4-underlay tap attached');
    await pollUntil(() => tapAttached(tap6, nsO), ATTACH_MS, 'IPv6-underlay tap attached');
  });

  afterAll(async () => {
    await c.run();
  });

  it('reaches both kernel devices over IPv4 and over IPv6 (broadcasts replicated to every peer)', async () => {
    for (const net of ['192.168.77', '192.168.78']) {
      for (const host of [2, 3]) {
        const r = await ping(nsO, `${net}.${host}`, 5);
        expect(r.received, r.output).toBeGreaterThanOrEqual(4);
      }
      // and from the kernels' side (the nolearning one floods its unicast to us as well)
      const back = await ping(nsK[1], `${net}.1`, 5);
      expect(back.received, back.output).toBe(5);
    }
    const big = await ping(nsO, '192.168.77.2', 3, { size: 1400 });
    expect(big.received, big.output).toBe(3);
  });

  it('sends learned unicast to the one peer its MAC was learned from', async () => {
    for (const [net, other] of [['192.168.77', 1], ['192.168.78', 1]] as const) {
      await ping(nsO, `${net}.2`, 2); // both sides know each other's MAC
      const before = await rxPackets(nsK[other], underlay[other]);
      const r = await ping(nsO, `${net}.2`, 30, { intervalS: 0.02 });
      expect(r.received, r.output).toBe(30);
      const after = await rxPackets(nsK[other], underlay[other]);
      expect(after - before, `${net}: datagrams at the other peer`).toBeLessThanOrEqual(UNDERLAY_NOISE_PACKETS);
    }
  });

  it('cuts off a peer removed from the peers file and takes it back when it returns', async () => {
    fs.writeFileSync(peersFile, '10.77.2.2\n');
    await pollUntil(async () => (await ping(nsO, '192.168.77.2', 1, { deadlineS: 1 })).received === 0, PEERS_CHANGE_WAIT_MS, 'peer 1 cut off');
    const still = await ping(nsO, '192.168.77.3', 3);
    expect(still.received, still.output).toBe(3);
    // what peer 1 sends is not heard either
    const fromK1 = await ping(nsK[0], '192.168.77.1', 2, { deadlineS: 3 });
    expect(fromK1.received, fromK1.output).toBe(0);
    fs.writeFileSync(peersFile, '10.77.2.2\n10.77.1.2\n');
    await pollUntil(async () => (await ping(nsO, '192.168.77.2', 1, { deadlineS: 1 })).received === 1, PEERS_CHANGE_WAIT_MS, 'peer 1 back');
  });
});
