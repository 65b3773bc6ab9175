/**
 * The capture stage in-process (test/helpers/harness.ts, fake clock): pcapng blocks in a socket
 * pair that plays the capture client. Checked: the section header at once, one interface block
 * per port before its first frame (ports that appear later too), enhanced packet blocks with the
 * fake wall clock in nanoseconds, the direction flag, snaplen, the 802.1Q edit of egress frames,
 * the frame filter, several sessions on one port, a stalled client that costs only its own drops
 * (forwarding goes on, the stream stays whole blocks), statistics blocks when the session ends,
 * the end reported as a "stage" event, and refusals of bad settings.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import { BT_EPB, BT_IDB, BT_ISB, BT_SHB, parseEpb, parseIdb, parseIsb, PcapngReader, shbApplication, type PcapngBlock } from '../../src/protocol/pcapng.js';
import { frame, Harness, NS_PER_SECOND } from '../helpers/harness.js';

const SOCK_STREAM = 1;
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const BCAST = 'ff:ff:ff:ff:ff:ff';
/** The fake clock's wall time at engine start: FAKE_WALL_EPOCH_NS + FAKE_CLOCK_START_NS (engine.cc). */
const FAKE_WALL_START_NS = 1_700_000_000n * 1_000_000_000n + 1000n * 1_000_000_000n;

let h: Harness | null = null;
const fds: number[] = [];
let nextSession = 1;
afterEach(() => {
  h?.close();
  h = null;
  for (const fd of fds.splice(0)) native().closeFd(fd);
});

/** A capture client: a stream socket pair; the engine gets one end. */
function client(): { engineFd: number; peer: number; reader: PcapngReader; blocks: PcapngBlock[]; eof: boolean; read: () => PcapngBlock[] } {
  const [engineFd, peer] = native().socketPair(SOCK_STREAM);
  native().setNonBlocking(peer, true);
  fds.push(peer);
  const c = {
    engineFd,
    peer,
    reader: new PcapngReader(),
    blocks: [] as PcapngBlock[],
    eof: false,
    read: (): PcapngBlock[] => {
      h!.engine.pollOnce();
      const got: PcapngBlock[] = [];
      for (;;) {
        const b = native().recvFd(peer, 1 << 20);
        if (!b) break;
        if (b.length === 0) {
          c.eof = true;
          break;
        }
        got.push(...c.reader.push(b));
        h!.engine.pollOnce();
      }
      c.blocks.push(...got);
      return got;
    },
  };
  return c;
}

function sessionName(): string {
  return `t${process.pid}x${nextSession++}`;
}

describe('capture stage', () => {
  it('writes a section header, an IDB per port before its first frame, and EPBs with the wall clock, direction and 802.1Q edit', () => {
    h = new Harness(4);
    const p1 = h.attach(1);
    const p2 = h.attach(2);
    h.engine.setUntagged(2, 4095);
    h.engine.setTagged(2, 0, true); // port 2 is a trunk: frames of VLAN 0 leave it tagged
    const c = client();
    const s = sessionName();
    h.engine.setStage(1, 'in', `capture:${s}`, { session: s, fd: c.engineFd, ifname: 'sw[1]', ifdescr: 'first port', appl: 'vde-ts test' });
    h.engine.setStage(2, 'out', `capture:${s}`, { session: s, ifname: 'sw[2]', ifdescr: 'the trunk' });
    let blocks = c.read();
    expect(blocks.map((b) => b.type)).toEqual([BT_SHB]);
    expect(shbApplication(blocks[0])).toBe('vde-ts test');
    h.send(p1, frame(BCAST, A, { payloadBytes: 100 }));
    h.advanceSeconds(1.5);
    h.send(p1, frame(B, A, { payloadBytes: 50 }));
    expect(h.recv(p2)).toHaveLength(2);
    blocks = c.read();
    expect(blocks.map((b) => b.type)).toEqual([BT_IDB, BT_EPB, BT_IDB, BT_EPB, BT_EPB, BT_EPB]);
    const idb1 = parseIdb(blocks[0]);
    expect(idb1).toEqual(expect.objectContaining({ linkType: 1, snaplen: 262144, name: 'sw[1]', description: 'first port', unitsPerSecond: 1_000_000_000n }));
    expect(parseIdb(blocks[2]).name).toBe('sw[2]');
    const e = blocks.filter((b) => b.type === BT_EPB).map(parseEpb);
    expect(e.map((x) => [x.interfaceId, x.direction])).toEqual([[0, 1], [1, 2], [0, 1], [1, 2]]);
    expect(e[0].timestamp).toBe(FAKE_WALL_START_NS);
    expect(e[2].timestamp - e[0].timestamp).toBe(1_500_000_000n);
    expect(e[0].data).toEqual(frame(BCAST, A, { payloadBytes: 100 }));
    // egress as it leaves: tag inserted
    expect(e[1].originalLength).toBe(e[0].originalLength + 4);
    expect(e[1].data.readUInt16BE(12)).toBe(0x8100);
  });

  it('honours snaplen and the frame filter, and several sessions capture one port independently', () => {
    h = new Harness(3);
    const p1 = h.attach(1);
    h.attach(2);
    const c1 = client();
    const c2 = client();
    const s1 = sessionName();
    const s2 = sessionName();
    h.engine.setStage(1, 'in', `capture:${s1}`, { session: s1, fd: c1.engineFd, snaplen: 20 });
    h.engine.setStage(1, 'in', `capture:${s2}`, { session: s2, fd: c2.engineFd, filter: 'vlan 7 and ether proto 0x0800 or ether src 02:00:00:00:00:0b' });
    h.send(p1, frame(BCAST, A, { ethertype: 0x0800 }));
    h.send(p1, frame(BCAST, A, { vlan: 7, ethertype: 0x0800 }));
    h.send(p1, frame(BCAST, B, { ethertype: 0x86dd }));
    const all = c1.read().filter((b) => b.type === BT_EPB).map(parseEpb);
    expect(all).toHaveLength(3);
    expect(all.every((x) => x.capturedLength === 20 && x.originalLength >= 60)).toBe(true);
    const some = c2.read().filter((b) => b.type === BT_EPB).map(parseEpb);
    expect(some.map((x) => x.data.subarray(6, 12).toString('hex'))).toEqual(['02000000000a', '02000000000b']);
    return h.engine.stages(1).then((st) => {
      const v = st.find((x) => x.name === `capture:${s2}`)!.values;
      expect(v).toEqual(expect.objectContaining({ seen: 3, matched: 2, captured: 2, dropped: 0 }));
    });
  });

  it('a client that stops reading costs only its own drops; the stream stays whole blocks; statistics blocks at the end', async () => {
    h = new Harness(3);
    const p1 = h.attach(1);
    const p2 = h.attach(2);
    const c = client();
    const s = sessionName();
    h.engine.setStage(1, 'in', `capture:${s}`, { session: s, fd: c.engineFd, buffer: 65536 });
    const FRAMES = 400;
    let forwarded = 0;
    for (let i = 0; i < FRAMES; i++) {
      h.send(p1, frame(B, A, { payloadBytes: 1400 }));
      forwarded += h.recv(p2).length;
    }
    expect(forwarded).toBe(FRAMES);
    expect(h.counters(2).outFrames).toBe(FRAMES);
    const v = (await h.engine.stages(1)).find((x) => x.name === `capture:${s}`)!.values;
    expect(v.seen).toBe(FRAMES);
    expect(v.dropped).toBeGreaterThan(0);
    expect(v.captured + v.dropped).toBe(FRAMES);
    // the client reads again: whole blocks, then the end of the session writes statistics and closes
    c.read();
    h.engine.setStage(1, 'in', `capture:${s}`, null);
    c.read();
    expect(c.eof).toBe(true);
    expect(c.reader.pending()).toBe(0);
    const epbs = c.blocks.filter((b) => b.type === BT_EPB);
    expect(epbs.length).toBe(v.captured);
    const isb = c.blocks.filter((b) => b.type === BT_ISB).map(parseIsb);
    expect(isb).toEqual([expect.objectContaining({ interfaceId: 0, received: BigInt(FRAMES), dropped: BigInt(v.dropped), delivered: BigInt(v.captured) })]);
    const ended = h.events.filter((e) => e.type === 'stage');
    expect(ended).toEqual([expect.objectContaining({ name: `capture:${s}`, detail: 'capture finished' })]);
  });

  it('a client that hangs up ends the session with a stage event; the switch goes on', () => {
    h = new Harness(3);
    const p1 = h.attach(1);
    const p2 = h.attach(2);
    const c = client();
    const s = sessionName();
    h.engine.setStage(1, 'in', `capture:${s}`, { session: s, fd: c.engineFd });
    h.engine.setStage(2, 'in', `capture:${s}`, { session: s });
    native().closeFd(c.peer);
    fds.splice(fds.indexOf(c.peer), 1);
    h.engine.pollOnce();
    expect(h.events.filter((e) => e.type === 'stage')).toEqual([expect.objectContaining({ name: `capture:${s}` })]);
    h.send(p1, frame(B, A));
    expect(h.recv(p2)).toHaveLength(1);
  });

  it('refuses bad settings with a message naming them (and keeps the fd with the caller)', () => {
    h = new Harness(2);
    const [a, b] = native().socketPair(SOCK_STREAM);
    fds.push(a, b);
    const s = sessionName();
    expect(() => h!.engine.setStage(1, 'in', `capture:${s}`, { session: s, fd: a, filter: 'vlan 5000' })).toThrow(/filter: expected a VLAN id/);
    expect(() => h!.engine.setStage(1, 'in', `capture:${s}`, { session: s, fd: a, snaplen: 5 })).toThrow(/snaplen/);
    expect(() => h!.engine.setStage(1, 'in', `capture:${s}`, { session: s, fd: a, bogus: 1 })).toThrow(/unknown setting "bogus"/);
    expect(() => h!.engine.setStage(1, 'in', `capture:${s}`, { fd: a })).toThrow(/session=ID is required/);
    expect(() => h!.engine.setStage(1, 'in', `capture:nope${s}`, { session: `nope${s}` })).toThrow(/is not running/);
    expect(() => h!.engine.setStage(1, 'in', 'capture:bad name', { session: s })).toThrow(/instance name/);
    // the fd was never taken: it still works
    expect(native().sendFd(a, Buffer.from('x'))).toBe(1);
  });

  it('fake wall clock: timestamps move with advanceSeconds exactly', () => {
    h = new Harness(3);
    const p1 = h.attach(1);
    h.attach(2);
    const c = client();
    const s = sessionName();
    h.engine.setStage(1, 'in', `capture:${s}`, { session: s, fd: c.engineFd });
    for (let i = 0; i < 3; i++) {
      h.send(p1, frame(B, A));
      h.engine.advanceNs(NS_PER_SECOND / 4);
    }
    const t = c.read().filter((b) => b.type === BT_EPB).map((b) => parseEpb(b).timestamp);
    expect(t.map((x) => x - t[0])).toEqual([0n, 250_000_000n, 500_000_000n]);
  });
});
