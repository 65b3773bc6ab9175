/**
 * Unicast vxlan:// (a static peer list with head-end replication) between endpoints of ours on
 * loopback, each in its own in-process engine (test/helpers/harness.ts) with a client socket on
 * another port: broadcast and unknown unicast reach every peer, a learned unicast only the peer
 * it was learned from; datagrams from an address that is not a peer are dropped and counted as
 * "filter"; the peer list changes at run time (setPeers, and a peers file that is rewritten),
 * and MACs learned behind a removed peer are forgotten; bad peers and peers files are refused
 * with their names. The interop with a Linux VXLAN device is in test/interop/vxlan-unicast.test.ts.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Attachment } from '../../src/ports/attach.js';
import type { OpenedEndpoint } from '../../src/ports/endpoint.js';
import { openEndpoint } from '../../src/ports/registry.js';
import { parseLocator, parseVxlanPeersFile } from '../../src/ports/vnl.js';
import type { VxlanPeerStats } from '../../src/ports/kinds/vxlan.js';
import { frame, Harness, type HarnessPort } from '../helpers/harness.js';
import { freeUdpPort } from '../helpers/udp.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
/** VXLAN header for VNI 42. */
const VX42 = Buffer.from([0x08, 0, 0, 0, 0, 0, 42, 0]);
/** Longest wait for a file change to be taken up (the poll interval is 1 s). */
const PEERS_FILE_WAIT_MS = 15_000; // polled each second; the loop ends as soon as the change shows

interface Node {
  h: Harness;
  client: HarnessPort;
  ep: OpenedEndpoint;
  at: Attachment;
  port: number;
}

const nodes: Node[] = [];
const tmpDirs: string[] = [];
afterEach(() => {
  for (const n of nodes.splice(0)) {
    n.at.close();
    n.h.close();
  }
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** An engine with a client on port 1 and a vxlan endpoint (locator) on port 2. */
async function node(port: number, locator: string): Promise<Node> {
  const h = new Harness(3);
  const client = h.attach(1);
  const ep = await openEndpoint(parseLocator(locator));
  const at = Attachment.attach(h.engine, 2, ep);
  h.engine.pollOnce();
  const n = { h, client, ep, at, port };
  nodes.push(n);
  return n;
}

/** Lets every engine read what arrived (loopback delivery is immediate, a few rounds settle chains). */
function settle(): void {
  for (let k = 0; k < 3; k++) for (const n of nodes) n.h.engine.pollOnce();
}

function received(n: Node): Buffer[] {
  settle();
  return n.h.recv(n.client);
}

function stats(n: Node): VxlanPeerStats {
  return n.ep.info!() as VxlanPeerStats;
}

describe('unicast vxlan:// between our endpoints', () => {
  it('replicates broadcast and unknown unicast to every peer and sends learned unicast to one', async () => {
    const [pa, pb, pc] = [await freeUdpPort(), await freeUdpPort(), await freeUdpPort()];
    const peer = (p: number): string => `127.0.0.1:${p}`;
    const a = await node(pa, `vxlan://${peer(pb)},${peer(pc)}/vni=42/port=${pa}/local=127.0.0.1`);
    const b = await node(pb, `vxlan://${peer(pa)},${peer(pc)}/vni=42/port=${pb}/local=127.0.0.1`);
    const c = await node(pc, `vxlan://${peer(pa)},${peer(pb)}/vni=42/port=${pc}/local=127.0.0.1`);
    const A = '02:00:00:00:00:0a';
    const B = '02:00:00:00:00:0b';
    a.h.send(a.client, frame(BCAST, A));
    expect(received(b)).toHaveLength(1);
    expect(received(c)).toHaveLength(1);
    expect(stats(a)).toMatchObject({ floodFrames: 1, floodCopies: 2, unicastFrames: 0, peers: [peer(pb), peer(pc)] });
    // B answers A: a's endpoint learns B behind b (and b learned A behind a)
    b.h.send(b.client, frame(A, B));
    expect(received(a)).toHaveLength(1);
    expect(received(c)).toHaveLength(0); // b learned A from a's broadcast: unicast to a only
    expect(stats(b)).toMatchObject({ unicastFrames: 1, floodFrames: 0 });
    for (let i = 0; i < 5; i++) a.h.send(a.client, frame(B, A, { payloadBytes: 100 + i }));
    expect(received(b)).toHaveLength(5);
    expect(received(c)).toHaveLength(0);
    expect(stats(a)).toMatchObject({ unicastFrames: 5, floodFrames: 1 });
    // unknown unicast floods
    a.h.send(a.client, frame('02:00:00:00:00:99', A));
    expect(received(b)).toHaveLength(1);
    expect(received(c)).toHaveLength(1);
  });

  it('drops and counts datagrams from addresses that are not peers; takes jumbo frames', async () => {
    const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
    const a = await node(pa, `vxlan://127.0.0.1:${pb}/vni=42/port=${pa}/local=127.0.0.1`);
    const stranger = dgram.createSocket('udp4');
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.2', r));
    try {
      const f = frame(BCAST, '02:00:00:00:00:66');
      for (let i = 0; i < 3; i++) await new Promise<void>((r) => stranger.send(Buffer.concat([VX42, f]), pa, '127.0.0.1', () => r()));
      expect(received(a)).toHaveLength(0);
      expect(a.h.counters(2).drops.filter).toBe(3);
      expect(stats(a).notPeer).toBe(3);
      // the peer itself (from its own port) is heard, a 9000-byte frame included
      const b = await node(pb, `vxlan://127.0.0.1:${pa}/vni=42/port=${pb}/local=127.0.0.1`);
      b.h.send(b.client, frame(BCAST, '02:00:00:00:00:0b', { payloadBytes: 9000 - 14 }));
      const got = received(a);
      expect(got).toHaveLength(1);
      expect(got[0].length).toBe(9000);
    } finally {
      stranger.close();
    }
  });

  it('changes peers at run time and forgets MACs learned behind a removed peer', async () => {
    // three hosts: three loopback addresses (a peer is known by its address, so they must differ)
    const [pa, pb, pc] = [await freeUdpPort(), await freeUdpPort(), await freeUdpPort()];
    const a = await node(pa, `vxlan://127.0.0.2:${pb}/vni=42/port=${pa}/local=127.0.0.1`);
    const b = await node(pb, `vxlan://127.0.0.1:${pa}/vni=42/port=${pb}/local=127.0.0.2`);
    const c = await node(pc, `vxlan://127.0.0.1:${pa}/vni=42/port=${pc}/local=127.0.0.3`);
    const A = '02:00:00:00:00:0a';
    const C = '02:00:00:00:00:0c';
    c.h.send(c.client, frame(A, C)); // c is not a's peer yet
    expect(received(a)).toHaveLength(0);
    expect(stats(a).notPeer).toBe(1);
    await a.ep.setPeers!([{ host: '127.0.0.2', port: pb }, { host: '127.0.0.3', port: pc }]);
    a.h.send(a.client, frame(BCAST, A));
    expect(received(b)).toHaveLength(1);
    expect(received(c)).toHaveLength(1);
    c.h.send(c.client, frame(A, C));
    expect(received(a)).toHaveLength(1);
    a.h.send(a.client, frame(C, A)); // learned: to c only
    expect(received(c)).toHaveLength(1);
    expect(received(b)).toHaveLength(0);
    await a.ep.setPeers!([{ host: '127.0.0.2', port: pb }]); // c removed
    a.h.send(a.client, frame(C, A)); // C was learned behind c: forgotten, so it floods to b
    expect(received(c)).toHaveLength(0);
    expect(received(b)).toHaveLength(1);
    c.h.send(c.client, frame(A, C));
    expect(received(a)).toHaveLength(0);
    await expect(a.ep.setPeers!([{ host: '239.1.1.1' }])).rejects.toThrow(/peer 239\.1\.1\.1 is not a unicast address/);
    await expect(a.ep.setPeers!([{ host: '::1' }])).rejects.toThrow(/peer "::1" is not an IPv4 address/);
    expect(stats(a).peers).toEqual([`127.0.0.2:${pb}`]); // a refused list changes nothing
  });

  it('follows a peers file that is rewritten while it runs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-vxpeers-'));
    tmpDirs.push(dir);
    const file = path.join(dir, 'peers');
    const [pa, pb, pc] = [await freeUdpPort(), await freeUdpPort(), await freeUdpPort()];
    fs.writeFileSync(file, `# our peers\n127.0.0.1:${pb}\n`);
    const a = await node(pa, `vxlan:///vni=42/port=${pa}/local=127.0.0.1/peers='${file}'`);
    await node(pb, `vxlan://127.0.0.1:${pa}/vni=42/port=${pb}/local=127.0.0.1`);
    const c = await node(pc, `vxlan://127.0.0.1:${pa}/vni=42/port=${pc}/local=127.0.0.1`);
    expect(stats(a).peers).toEqual([`127.0.0.1:${pb}`]);
    fs.writeFileSync(file, `127.0.0.1:${pb}\n127.0.0.1:${pc}  # added\n`);
    const t0 = Date.now();
    while (stats(a).peers.length !== 2 && Date.now() - t0 < PEERS_FILE_WAIT_MS) await new Promise((r) => setTimeout(r, 100));
    expect(stats(a).peers).toEqual([`127.0.0.1:${pb}`, `127.0.0.1:${pc}`]);
    a.h.send(a.client, frame(BCAST, '02:00:00:00:00:0a'));
    expect(received(c)).toHaveLength(1);
    // a broken file is reported and ignored: the peers stay
    fs.writeFileSync(file, `127.0.0.1:${pb}\nnot a peer at all\n`);
    await new Promise((r) => setTimeout(r, 2500));
    expect(stats(a).peers).toHaveLength(2);
  });

  it('refuses bad peers, bad peers files and a port in use, naming them', async () => {
    const p = await freeUdpPort();
    await expect(openEndpoint(parseLocator(`vxlan://no.such.host.invalid/port=${p}`))).rejects.toThrow(/peer "no\.such\.host\.invalid": cannot resolve an IPv4 address/);
    await expect(openEndpoint(parseLocator(`vxlan:///port=${p}/peers=/nonexistent/peers`.replace('peers=/nonexistent/peers', "peers='/nonexistent/peers'")))).rejects.toThrow(/peers file: ENOENT/);
    expect(() => parseVxlanPeersFile('10.0.0.1\n\n10.0.0.2:99999\n', 'f')).toThrow(/^f:3: peer port: 99999 is out of range/);
    expect(() => parseVxlanPeersFile('10.0.0.1 10.0.0.2', 'f')).toThrow(/^f:1: peer "10\.0\.0\.1 10\.0\.0\.2"/);
    expect(parseVxlanPeersFile('# c\n[2001:db8::1]:4790\n2001:db8::2\nhost.example\n', 'f')).toEqual([{ host: '2001:db8::1', port: 4790 }, { host: '2001:db8::2' }, { host: 'host.example' }]);
    await node(p, `vxlan://127.0.0.1:9/port=${p}/local=127.0.0.1`);
    await expect(openEndpoint(parseLocator(`vxlan://127.0.0.1:9/port=${p}/local=127.0.0.1`))).rejects.toThrow(/already uses this port/);
  });

  it('works over an IPv6 underlay', async () => {
    const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
    const a = await node(pa, `vxlan://[::1]:${pb}/vni=7/port=${pa}/local=::1`);
    const b = await node(pb, `vxlan://[::1]:${pa}/vni=7/port=${pb}/local=::1`);
    a.h.send(a.client, frame(BCAST, '02:00:00:00:00:0a'));
    expect(received(b)).toHaveLength(1);
    b.h.send(b.client, frame('02:00:00:00:00:0a', '02:00:00:00:00:0b'));
    expect(received(a)).toHaveLength(1);
    expect(stats(b)).toMatchObject({ unicastFrames: 1, peers: [`[::1]:${pa}`] });
  });
});
