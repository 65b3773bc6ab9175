/**
 * The native engine in-process (test/helpers/harness.ts): learning and flooding, 802.1Q edits,
 * spanning-tree gating, hub mode, mirroring and storm control as stages, aging on a fake clock,
 * the bounded MAC table with fair eviction, egress queues with a switch-wide budget, counters
 * that count what was sent, stream framing with partial writes, and events by value.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, EpKind, native, NativeStpState } from '../../src/native/index.js';
import { frame, Harness, macOf } from '../helpers/harness.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const C = '02:00:00:00:00:0c';

let h: Harness | null = null;
afterEach(() => {
  h?.close();
  h = null;
});

/** A harness with ports 1..n attached (port 0 exists, unattached). */
function switchWith(n: number): { h: Harness; p: ReturnType<Harness['attach']>[] } {
  h = new Harness(n + 1);
  const p = [];
  for (let i = 1; i <= n; i++) p.push(h.attach(i));
  return { h, p };
}

describe('learning policy', () => {
  it('floods unknown destinations, then sends learned unicast to one port only', async () => {
    const { h, p } = switchWith(3);
    h.send(p[0], frame(B, A));
    expect(h.recv(p[1])).toHaveLength(1);
    expect(h.recv(p[2])).toHaveLength(1);
    h.send(p[1], frame(A, B));
    expect(h.recv(p[0])).toHaveLength(1);
    expect(h.recv(p[2])).toHaveLength(0);
    h.send(p[0], frame(B, A));
    expect(h.recv(p[1])).toHaveLength(1);
    expect(h.recv(p[2])).toHaveLength(0);
    const table = await h.engine.macTable();
    expect(table).toEqual(expect.arrayContaining([expect.objectContaining({ mac: A, vlan: 0, port: 1 }), expect.objectContaining({ mac: B, vlan: 0, port: 2 })]));
    expect(await h.engine.macFind(Buffer.from([2, 0, 0, 0, 0, 0x0b]), 0)).toEqual(expect.objectContaining({ port: 2 }));
    expect(await h.engine.macFind(Buffer.from([2, 0, 0, 0, 0, 0x0c]), 0)).toBeNull();
    expect(h.counters(1)).toEqual(expect.objectContaining({ inFrames: 2, outFrames: 1 }));
  });

  it('inserts and strips 802.1Q tags per destination and classifies by the port VLAN', () => {
    const { h, p } = switchWith(3);
    const e = h.engine;
    e.setUntagged(1, 5); // access port in VLAN 5
    e.setUntagged(2, 4095); // trunk: no untagged VLAN...
    e.setTagged(2, 5, true); // ...tagged member of VLAN 5
    e.setUntagged(3, 0); // another VLAN: hears nothing of VLAN 5
    h.send(p[0], frame(BCAST, A));
    const onTrunk = h.recv(p[1]);
    expect(onTrunk).toHaveLength(1);
    expect(onTrunk[0].readUInt16BE(12)).toBe(0x8100);
    expect(onTrunk[0].readUInt16BE(14) & 0xfff).toBe(5);
    expect(h.recv(p[2])).toHaveLength(0);
    h.send(p[1], frame(A, B, { vlan: 5 }));
    const onAccess = h.recv(p[0]);
    expect(onAccess).toHaveLength(1);
    expect(onAccess[0].readUInt16BE(12)).toBe(0x88b5); // stripped
    expect(onAccess[0].length).toBe(frame(A, B).length);
  });

  it('keeps trunk-only ports without a common VLAN apart, VID 4095 included', () => {
    const { h, p } = switchWith(2);
    for (const [port, vlan] of [[1, 10], [2, 20]]) {
      h.engine.setUntagged(port, 4095); // no untagged VLAN
      h.engine.setTagged(port, vlan, true);
    }
    h.send(p[1], frame(BCAST, B, { vlan: 4095 }));
    h.send(p[1], frame(A, B, { vlan: 4095 }));
    h.send(p[1], frame(BCAST, B, { vlan: 10 }));
    expect(h.recv(p[0])).toHaveLength(0);
    expect(h.counters(2).drops.vlan).toBe(3);
  });

  it('passes a foreign-tagged frame through an access port, or drops it when told', () => {
    const { h, p } = switchWith(2);
    h.send(p[0], frame(BCAST, A, { vlan: 77 }));
    const got = h.recv(p[1]);
    expect(got).toHaveLength(1);
    expect(got[0].readUInt16BE(14) & 0xfff).toBe(77); // carried unchanged, tag included
    h.engine.setForeignTags(1);
    h.send(p[0], frame(BCAST, A, { vlan: 77 }));
    expect(h.recv(p[1])).toHaveLength(0);
    expect(h.counters(1).drops.vlan).toBe(1);
  });

  it('ages entries on the engine clock and keeps a MAC on its port for the minimum persistence', async () => {
    const { h, p } = switchWith(3);
    h.engine.setAging(100, 3, 2);
    h.send(p[0], frame(BCAST, A));
    h.advanceSeconds(1);
    h.send(p[1], frame(BCAST, A)); // A appears on port 2 within 3 s: stays on port 1
    expect((await h.engine.macTable()).find((e) => e.mac === A)?.port).toBe(1);
    h.advanceSeconds(4);
    h.send(p[1], frame(BCAST, A)); // later: it moves
    expect((await h.engine.macTable()).find((e) => e.mac === A)?.port).toBe(2);
    h.advanceSeconds(99);
    expect(await h.engine.macTable()).toHaveLength(1);
    h.advanceSeconds(3);
    expect(await h.engine.macTable()).toHaveLength(0);
  });

  it('gates learning and forwarding by spanning-tree state and hands BPDUs to the control plane', async () => {
    const { h, p } = switchWith(2);
    const e = h.engine;
    e.setStpState(1, NativeStpState.Discarding);
    h.send(p[0], frame(BCAST, A));
    expect(h.recv(p[1])).toHaveLength(0);
    expect(h.counters(1).drops.stp).toBe(1);
    expect(await e.macTable()).toHaveLength(0);
    e.setStpState(1, NativeStpState.Learning);
    h.send(p[0], frame(BCAST, A));
    expect(h.recv(p[1])).toHaveLength(0);
    expect(await e.macTable()).toHaveLength(1); // learned, not forwarded
    e.setStpCapture(true);
    h.send(p[1], frame('01:80:c2:00:00:00', B, { ethertype: 0x0026 }));
    expect(h.events.filter((x) => x.type === 'bpdu')).toEqual([expect.objectContaining({ port: 2 })]);
    expect(h.recv(p[0])).toHaveLength(0);
  });

  it('keeps the MAC table bounded and evicts from the port that holds the most entries', async () => {
    const { h, p } = switchWith(3);
    const e = h.engine;
    e.setMacTableMax(64);
    h.send(p[1], frame(BCAST, B));
    h.send(p[2], frame(BCAST, C));
    for (let i = 0; i < 1000; i++) {
      h.ingress(1, frame(BCAST, macOf(1000 + i)));
      if (i % 100 === 0) h.advanceSeconds(1); // the last-source cache is per second
    }
    const s = e.stats();
    expect(s.macMaxEntries).toBe(64);
    expect(s.macEntries).toBe(64);
    expect(s.macEvictions).toBe(1000 - 62);
    const table = await e.macTable();
    expect(table.find((x) => x.mac === B)?.port).toBe(2);
    expect(table.find((x) => x.mac === C)?.port).toBe(3);
    expect(table.filter((x) => x.port === 1)).toHaveLength(62);
    // the flooder's newest entries survive
    expect(table.some((x) => x.mac === macOf(1999))).toBe(true);
    // known unicast still goes to one port
    h.recvAll();
    h.send(p[0], frame(B, A));
    expect(h.recv(p[1])).toHaveLength(1);
    expect(h.recv(p[2])).toHaveLength(0);
  });

  it('forgets only the entries of a port whose last endpoint leaves', async () => {
    const { h, p } = switchWith(3);
    for (let i = 0; i < 50; i++) h.ingress(1, frame(BCAST, macOf(1000 + i)));
    h.send(p[1], frame(BCAST, B));
    h.engine.removeEndpoint(p[0].engineId);
    h.engine.pollOnce();
    const table = await h.engine.macTable();
    expect(table.map((x) => x.mac)).toEqual([B]);
  });
});

describe('stages', () => {
  it('mirrors what enters and what leaves a port to a monitor port', () => {
    const { h, p } = switchWith(3);
    h.engine.setMirror(1, 3, 3);
    h.send(p[0], frame(B, A)); // enters 1 (mirrored in), flooded out of 2
    h.send(p[1], frame(A, B)); // leaves through 1 (mirrored out)
    const mon = h.recv(p[2]);
    // the flood from A reached port 3 itself too, plus the two mirror copies
    expect(mon.length).toBe(3);
    expect(mon.filter((f) => f.subarray(0, 6).equals(Buffer.from([2, 0, 0, 0, 0, 0x0a])))).toHaveLength(1);
    h.engine.setMirror(1, -1, -1);
    h.send(p[1], frame(A, B));
    expect(h.recv(p[2])).toHaveLength(0);
  });

  it('limits broadcast frames per second with storm control, on the engine clock', () => {
    const { h, p } = switchWith(2);
    h.engine.setStorm(1, 5);
    for (let i = 0; i < 10; i++) h.ingress(1, frame(BCAST, A));
    expect(h.recv(p[1])).toHaveLength(5);
    expect(h.counters(1).drops.storm).toBe(5);
    h.ingress(1, frame(B, A)); // unicast is not limited
    expect(h.recv(p[1])).toHaveLength(1);
    h.advanceSeconds(1);
    for (let i = 0; i < 10; i++) h.ingress(1, frame(BCAST, A));
    expect(h.recv(p[1])).toHaveLength(5);
    h.engine.setStorm(1, 0);
    for (let i = 0; i < 10; i++) h.ingress(1, frame(BCAST, A));
    expect(h.recv(p[1])).toHaveLength(10);
  });
});

describe('stage registry', () => {
  it('installs, reports, replaces and removes stages by name, and refuses bad settings with the stage\'s message', async () => {
    const { h, p } = switchWith(3);
    expect(native().stageKinds()).toEqual(expect.arrayContaining(['mirror', 'storm']));
    h.engine.setStage(1, 'in', 'storm', { pps: 2 });
    h.engine.setStage(1, 'out', 'mirror', { target: 3 });
    expect(await h.engine.stages(1)).toEqual([
      { port: 1, dir: 'in', name: 'storm', values: { pps: 2 } },
      { port: 1, dir: 'out', name: 'mirror', values: { target: 3 } },
    ]);
    for (let i = 0; i < 5; i++) h.ingress(1, frame(BCAST, A));
    expect(h.recv(p[1])).toHaveLength(2);
    h.engine.setStage(1, 'in', 'storm', { pps: 4 }); // replaced, not added
    expect((await h.engine.stages(-1)).filter((s) => s.name === 'storm')).toEqual([{ port: 1, dir: 'in', name: 'storm', values: { pps: 4 } }]);
    h.engine.setStage(1, 'in', 'storm', null);
    for (let i = 0; i < 5; i++) h.ingress(1, frame(BCAST, A));
    expect(h.recv(p[1])).toHaveLength(5);
    expect(() => h.engine.setStage(1, 'in', 'storm', { pps: 'many' })).toThrow(/pps: "many" is not a whole number/);
    expect(() => h.engine.setStage(1, 'out', 'storm', { pps: 3 })).toThrow(/ingress stage only/);
    expect(() => h.engine.setStage(1, 'in', 'nosuch', {})).toThrow(/unknown stage "nosuch" \(known: .*mirror/);
    expect(() => h.engine.setStage(1, 'in', 'mirror', { target: 2, bogus: 1 })).toThrow(/unknown setting "bogus"/);
  });
});

describe('wire policy', () => {
  it('copies every frame to every other active port except port 0, without learning', async () => {
    h = new Harness(4);
    const p0 = h.attach(0);
    const p = [h.attach(1), h.attach(2), h.attach(3)];
    h.engine.setHub(true);
    h.send(p[0], frame(B, A));
    h.send(p[1], frame(A, B));
    h.send(p[0], frame(B, A));
    expect(h.recv(p[1])).toHaveLength(2);
    expect(h.recv(p[2])).toHaveLength(3);
    expect(h.recv(p0)).toHaveLength(0);
    expect(await h.engine.macTable()).toHaveLength(0);
  });
});

describe('egress queues', () => {
  it('queues for a client that does not read, counts only what was sent, and drops beyond the queue', () => {
    const { h, p } = switchWith(2);
    const big = 9000;
    for (let i = 0; i < 2000; i++) h.ingress(1, frame(BCAST, A, { payloadBytes: big }));
    const c = h.counters(2);
    // a unix datagram socket pair holds only a few datagrams; the rest waits in the queue or was dropped
    expect(c.drops.queueFull).toBeGreaterThan(0);
    expect(c.outFrames).toBeLessThan(2000);
    const st = h.engine.stats();
    expect(st.queueUsedBytes).toBeGreaterThan(0);
    expect(st.queueUsedBytes).toBeLessThanOrEqual(4 * 1024 * 1024 + 1024 * 2048);
    const got = h.recv(p[1]);
    expect(got.length + c.drops.queueFull).toBe(2000);
    expect(h.counters(2).outFrames).toBe(got.length);
    expect(h.engine.stats().queueUsedBytes).toBe(0);
  });

  it('bounds all queues together by the switch-wide budget', () => {
    h = new Harness(33);
    const deaf = [];
    for (let i = 1; i <= 32; i++) deaf.push(h.attach(i));
    h.engine.setQueueBudget(8 * 1024 * 1024);
    for (let i = 0; i < 800; i++) h.ingress(1, frame(BCAST, A, { payloadBytes: 9000 }));
    const st = h.engine.stats();
    expect(st.queueBudgetBytes).toBe(8 * 1024 * 1024);
    expect(st.queueUsedBytes).toBeLessThanOrEqual(8 * 1024 * 1024);
    let dropped = 0;
    for (let port = 2; port <= 32; port++) dropped += h.counters(port).drops.queueFull;
    expect(dropped).toBeGreaterThan(0);
  });

  it('keeps a byte stream in sync when a frame is written only partly, and counts oversize drops', () => {
    h = new Harness(3);
    const a = native();
    const [mine, theirs] = a.socketPair(1); // SOCK_STREAM
    a.setNonBlocking(theirs, true);
    const id = h.engine.addEndpoint(2, mine, EpKind.Stream2, 9234, true);
    expect(id).toBeGreaterThan(0);
    h.attach(1);
    const sent: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      const f = frame(BCAST, A, { payloadBytes: 1000 + (i % 7) * 997, fill: i & 0xff });
      sent.push(f);
      h.ingress(1, f);
    }
    h.ingress(1, frame(BCAST, A, { payloadBytes: 9300 })); // above the stream's limit
    expect(h.counters(2).drops.oversize).toBe(1);
    // read the stream back and split it on the 2-byte lengths
    let bytes = Buffer.alloc(0);
    for (let round = 0; round < 1000; round++) {
      h.engine.pollOnce();
      const chunk = readAll(theirs);
      if (!chunk.length && h.engine.stats().queueUsedBytes === 0) break;
      bytes = Buffer.concat([bytes, chunk]);
    }
    const got: Buffer[] = [];
    for (let off = 0; off + 2 <= bytes.length; ) {
      const l = bytes.readUInt16BE(off);
      got.push(bytes.subarray(off + 2, off + 2 + l));
      off += 2 + l;
    }
    const dropped = h.counters(2).drops.queueFull;
    expect(got.length + dropped).toBe(400);
    // whatever arrived arrived whole and in order
    let j = 0;
    for (const g of got) {
      while (j < sent.length && !sent[j].equals(g)) j++;
      expect(j).toBeLessThan(sent.length);
    }
    expect(h.counters(2).outFrames).toBe(got.length);
    a.closeFd(theirs);
  });
});

describe('events', () => {
  it('reports a closed stream by value, and closing the engine with events in flight is safe', async () => {
    const a = native();
    const evs: string[] = [];
    const e = createEngine(3, (x) => evs.push(...x.map((v) => `${v.type}:${v.detail}`)));
    const [mine, theirs] = a.socketPair(1);
    const id = e.addEndpoint(1, mine, EpKind.Stream4, 65536, true);
    expect(id).toBeGreaterThan(0);
    a.closeFd(theirs);
    for (let i = 0; i < 50 && !evs.length; i++) await new Promise((r) => setTimeout(r, 20));
    expect(evs).toContain('epClosed:end of stream');
    expect(e.removeEndpoint(id)).toBe(false); // already gone
    // many endpoints hanging up at once, then close right away
    const ends: number[] = [];
    for (let i = 0; i < 20; i++) {
      const [x, y] = a.socketPair(1);
      e.addEndpoint(2, x, EpKind.Stream2, 9234, true);
      ends.push(y);
    }
    for (const y of ends) a.closeFd(y);
    e.close();
    expect(() => e.setHub(true)).toThrow(/closed/);
  });

  it('bounds spanning-tree frames that JavaScript has not read yet and counts the rest', async () => {
    const a = native();
    let bpdus = 0;
    const e = createEngine(2, (x) => (bpdus += x.filter((v) => v.type === 'bpdu').length));
    e.setStpCapture(true);
    const [mine, theirs] = a.socketPair(2);
    a.setNonBlocking(theirs, true);
    e.addEndpoint(1, mine, EpKind.Dgram, 9234, true);
    const bpdu = frame('01:80:c2:00:00:00', A, { ethertype: 0x0026 });
    // keep this thread busy (no event delivery) while the engine thread receives
    let sent = 0;
    const until = Date.now() + 1500;
    while (sent < 2000 && Date.now() < until) if (a.sendFd(theirs, bpdu) > 0) sent++;
    for (let i = 0; i < 100 && bpdus + e.stats().bpduDrops < sent; i++) await new Promise((r) => setTimeout(r, 10));
    expect(bpdus + e.stats().bpduDrops).toBe(sent);
    expect(sent).toBeGreaterThan(300);
    expect(e.stats().bpduDrops).toBeGreaterThan(0);
    e.close();
    a.closeFd(theirs);
  });
});

/** Reads everything a non-blocking stream socket has. */
function readAll(fd: number): Buffer {
  const parts: Buffer[] = [];
  for (;;) {
    const b = native().recvFd(fd, 1 << 16);
    if (!b || !b.length) break;
    parts.push(b);
  }
  return Buffer.concat(parts);
}
