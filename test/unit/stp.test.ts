/**
 * Unit tests for the spanning tree (src/switch/stp.ts): the BPDU codec against hand-written
 * bytes laid out as in IEEE 802.1D, defensive parsing of garbage, and a tiny in-memory frame
 * bus that connects several SpanningTree instances (and a hand-written legacy STP peer) with
 * links and drives them with simulated tick() time, checking after every simulated step that
 * no forwarding loop exists.
 */
import { describe, expect, it } from 'vitest';
import {
  BPDU_TYPE_TCN,
  CONFIG_BPDU_BYTES,
  ETH_MIN_FRAME_BYTES,
  FLAG_AGREEMENT,
  FLAG_FORWARDING,
  FLAG_LEARNING,
  FLAG_PROPOSAL,
  FLAG_TC,
  FLAG_TC_ACK,
  SpanningTree,
  decodeBpdu,
  encodeBpdu,
  formatBridgeId,
  isBpduFrame,
  makeBridgeId,
  makePortId,
  type Bpdu,
  type PortState,
  type StpHost,
  type StpOptions,
} from '../../src/switch/stp.js';

const STEP_MS = 100;

function mac(last: number): Buffer {
  return Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00, last]);
}

function configBpdu(over: Partial<Bpdu> = {}): Bpdu {
  return {
    type: 'config', version: 0, flags: 0,
    rootId: makeBridgeId(0x1000, mac(0x10)), rootPathCost: 0, bridgeId: makeBridgeId(0x1000, mac(0x10)), portId: 0x8001,
    messageAgeSeconds: 0, maxAgeSeconds: 20, helloSeconds: 2, forwardDelaySeconds: 15,
    ...over,
  };
}

/* ------------------------------------------------------------------------ */
/* Simulated network                                                         */
/* ------------------------------------------------------------------------ */

interface Endpoint { node: string; port: number }

interface SimLink { a: Endpoint; b: Endpoint; up: boolean }

interface SimNode {
  readonly name: string;
  receive(port: number, frame: Buffer): void;
  tick(nowMs: number): void;
}

class SimBridge implements SimNode, StpHost {
  readonly stp: SpanningTree;
  readonly states = new Map<number, PortState>();
  readonly flushes: Array<{ at: number; port: number | undefined }> = [];
  readonly logs: string[] = [];
  readonly sent: Array<{ at: number; port: number; bpdu: Bpdu; bytes: number }> = [];
  readonly rejections: string[] = [];

  constructor(readonly name: string, readonly net: SimNet, opts: StpOptions) {
    this.stp = new SpanningTree(this, opts);
  }

  sendFrame(port: number, frame: Buffer): void {
    const d = decodeBpdu(frame);
    if (!d.ok) throw new Error(`${this.name} sent an undecodable frame: ${d.reason}`);
    this.sent.push({ at: this.net.now, port, bpdu: d.bpdu, bytes: frame.length });
    this.net.transmit({ node: this.name, port }, frame);
  }

  setPortState(port: number, state: PortState): void { this.states.set(port, state); }
  flush(port?: number): void { this.flushes.push({ at: this.net.now, port }); }
  log(msg: string): void { this.logs.push(`${this.net.now}ms ${msg}`); }

  receive(port: number, frame: Buffer): void {
    const r = this.stp.receiveBpdu(port, frame);
    if (!r.ok) this.rejections.push(r.reason);
  }

  tick(nowMs: number): void { this.stp.tick(nowMs); }

  /** A port carries traffic only if its reported state is forwarding (unknown counts as forwarding). */
  forwarding(port: number): boolean { return (this.states.get(port) ?? 'forwarding') === 'forwarding'; }
  role(port: number): string | undefined { return this.stp.status().ports.find((p) => p.port === port)?.role; }
  portStatus(port: number) { return this.stp.status().ports.find((p) => p.port === port)!; }
}

/** Minimal legacy 802.1D-1998 bridge: version-0 Configuration BPDUs every hello, TCN acknowledgement. */
class LegacyPeer implements SimNode {
  readonly received: Array<{ at: number; port: number; bpdu: Bpdu }> = [];
  private lastHelloMs = -Infinity;
  private readonly ackPending = new Set<number>();
  private readonly silentPorts = new Set<number>();
  tcUntilMs = -1;

  constructor(readonly name: string, readonly net: SimNet, readonly bridgeId: bigint, readonly ports: number[]) {}

  receive(port: number, frame: Buffer): void {
    const d = decodeBpdu(frame);
    if (!d.ok) return;
    // A legacy bridge drops anything that is not version 0 (as Linux br_stp_rcv does).
    if (d.bpdu.version !== 0) return;
    this.received.push({ at: this.net.now, port, bpdu: d.bpdu });
    if (d.bpdu.type === 'tcn') {
      this.ackPending.add(port);
      this.tcUntilMs = this.net.now + 35_000;
      this.sendConfig(port); // acknowledge at once, as a legacy designated port does
    } else if (d.bpdu.rootId < this.bridgeId) {
      this.silentPorts.add(port); // superior root heard: this is no longer a designated port
    }
  }

  tick(nowMs: number): void {
    if (nowMs - this.lastHelloMs < 2000) return;
    this.lastHelloMs = nowMs;
    for (const p of this.ports) if (!this.silentPorts.has(p)) this.sendConfig(p);
  }

  private sendConfig(port: number): void {
    const flags = (this.net.now < this.tcUntilMs ? FLAG_TC : 0) | (this.ackPending.has(port) ? FLAG_TC_ACK : 0);
    this.ackPending.delete(port);
    const b = configBpdu({ flags, rootId: this.bridgeId, bridgeId: this.bridgeId, portId: 0x8000 | port });
    this.net.transmit({ node: this.name, port }, encodeBpdu(b, mac(0xee)));
  }
}

class SimNet {
  now = 0;
  readonly nodes = new Map<string, SimNode>();
  readonly links: SimLink[] = [];
  private queue: Array<{ to: Endpoint; frame: Buffer }> = [];
  /** When set, frames are handed to the peer inside sendFrame (re-entrant host). */
  synchronous = false;

  bridge(name: string, macLast: number, opts: Partial<StpOptions> = {}): SimBridge {
    const b = new SimBridge(name, this, { bridgeMac: mac(macLast), ...opts });
    this.nodes.set(name, b);
    b.stp.tick(this.now);
    b.stp.enable();
    return b;
  }

  add(node: SimNode): void { this.nodes.set(node.name, node); }

  connect(a: string, pa: number, b: string, pb: number): SimLink {
    const link = { a: { node: a, port: pa }, b: { node: b, port: pb }, up: true };
    this.links.push(link);
    for (const end of [link.a, link.b]) {
      const n = this.nodes.get(end.node);
      if (n instanceof SimBridge) n.stp.addPort(end.port);
    }
    return link;
  }

  transmit(from: Endpoint, frame: Buffer): void {
    const link = this.links.find((l) => l.up && ((l.a.node === from.node && l.a.port === from.port) || (l.b.node === from.node && l.b.port === from.port)));
    if (!link) return;
    const to = link.a.node === from.node && link.a.port === from.port ? link.b : link.a;
    if (this.synchronous) this.nodes.get(to.node)!.receive(to.port, frame);
    else this.queue.push({ to, frame });
  }

  private deliverAll(): void {
    for (let guard = 0; this.queue.length > 0; guard++) {
      if (guard > 100_000) throw new Error('frame storm on the simulated bus');
      const { to, frame } = this.queue.shift()!;
      this.nodes.get(to.node)!.receive(to.port, frame);
    }
  }

  /** Advance simulated time, delivering frames and ticking every node; check() runs after each step. */
  run(ms: number, check: () => void = () => this.assertLoopFree(), stepMs = STEP_MS): void {
    const end = this.now + ms;
    this.deliverAll();
    check();
    while (this.now < end) {
      this.now = Math.min(end, this.now + stepMs);
      for (const n of this.nodes.values()) n.tick(this.now);
      this.deliverAll();
      check();
    }
  }

  /** Run until cond() holds; returns the simulated time it took, or throws after limitMs. */
  runUntil(cond: () => boolean, limitMs: number): number {
    const start = this.now;
    this.run(0);
    while (!cond()) {
      if (this.now - start >= limitMs) throw new Error(`condition not met within ${limitMs} ms`);
      this.run(STEP_MS);
    }
    return this.now - start;
  }

  /** Links that carry traffic: up, and forwarding at both ends. */
  activeLinks(): SimLink[] {
    const fwd = (e: Endpoint): boolean => {
      const n = this.nodes.get(e.node);
      return n instanceof SimBridge ? n.forwarding(e.port) : true;
    };
    return this.links.filter((l) => l.up && fwd(l.a) && fwd(l.b));
  }

  /** Throws if the links carrying traffic contain a cycle (a bridging loop). */
  assertLoopFree(): void {
    const parent = new Map<string, string>();
    const find = (x: string): string => {
      let r = x;
      while (parent.has(r) && parent.get(r) !== r) r = parent.get(r)!;
      return r;
    };
    for (const l of this.activeLinks()) {
      const ra = find(l.a.node);
      const rb = find(l.b.node);
      if (ra === rb) {
        throw new Error(`forwarding loop at ${this.now} ms via ${l.a.node}:${l.a.port}-${l.b.node}:${l.b.port}`);
      }
      parent.set(ra, rb);
    }
  }

  /** True when the traffic-carrying links form one tree spanning all bridges. */
  spansAll(): boolean {
    const names = [...this.nodes.keys()];
    const seen = new Set([names[0]!]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const l of this.activeLinks()) {
        if (seen.has(l.a.node) !== seen.has(l.b.node)) { seen.add(l.a.node); seen.add(l.b.node); grew = true; }
      }
    }
    return seen.size === names.length;
  }

  cut(link: SimLink, removePorts: boolean): void {
    link.up = false;
    if (!removePorts) return;
    for (const end of [link.a, link.b]) {
      const n = this.nodes.get(end.node);
      if (n instanceof SimBridge) n.stp.removePort(end.port);
    }
  }
}

function blockedEnds(net: SimNet): Endpoint[] {
  const out: Endpoint[] = [];
  for (const l of net.links) {
    if (!l.up) continue;
    for (const e of [l.a, l.b]) {
      const n = net.nodes.get(e.node);
      if (n instanceof SimBridge && !n.forwarding(e.port)) out.push(e);
    }
  }
  return out;
}

/* ------------------------------------------------------------------------ */
/* Codec                                                                     */
/* ------------------------------------------------------------------------ */

describe('BPDU codec', () => {
  it('encodes a Configuration BPDU byte for byte as laid out in 802.1D', () => {
    const frame = encodeBpdu(configBpdu({
      flags: FLAG_TC | FLAG_TC_ACK,
      rootId: makeBridgeId(0x8000, Buffer.from([0x00, 0x11, 0x22, 0x33, 0x44, 0x55])),
      rootPathCost: 0x00004e20,
      bridgeId: makeBridgeId(0x9000, Buffer.from([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee])),
      portId: 0x8003,
      messageAgeSeconds: 1, maxAgeSeconds: 20, helloSeconds: 2, forwardDelaySeconds: 15,
    }), Buffer.from([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]));
    const expected = Buffer.from([
      0x01, 0x80, 0xc2, 0x00, 0x00, 0x00, // destination: bridge group address
      0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, // source: bridge MAC
      0x00, 0x26, // 802.3 length: 3 (LLC) + 35 (BPDU)
      0x42, 0x42, 0x03, // LLC DSAP, SSAP, UI
      0x00, 0x00, // protocol identifier
      0x00, // protocol version: STP
      0x00, // BPDU type: Configuration
      0x81, // flags: TC ack | TC
      0x80, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, // root identifier
      0x00, 0x00, 0x4e, 0x20, // root path cost 20000
      0x90, 0x00, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, // bridge identifier
      0x80, 0x03, // port identifier
      0x01, 0x00, // message age 1 s (256/256)
      0x14, 0x00, // max age 20 s
      0x02, 0x00, // hello time 2 s
      0x0f, 0x00, // forward delay 15 s
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // padding: 14 + 3 + 35 = 52, up to 60 bytes
    ]);
    expect(expected.length).toBe(ETH_MIN_FRAME_BYTES);
    expect(frame.toString('hex')).toBe(expected.toString('hex'));
  });

  it('round-trips Configuration, RST and TCN BPDUs', () => {
    const cfg = configBpdu({ flags: FLAG_TC, rootPathCost: 123456, messageAgeSeconds: 3 + 5 / 256, helloSeconds: 1.5 });
    const rst: Bpdu = {
      ...configBpdu(), type: 'rst', version: 2,
      flags: FLAG_PROPOSAL | FLAG_AGREEMENT | FLAG_LEARNING | FLAG_FORWARDING | (3 << 2),
      rootPathCost: 0xffffffff, portId: 0xf0ff,
    };
    const tcn: Bpdu = {
      type: 'tcn', version: 0, flags: 0, rootId: 0n, rootPathCost: 0, bridgeId: 0n, portId: 0,
      messageAgeSeconds: 0, maxAgeSeconds: 0, helloSeconds: 0, forwardDelaySeconds: 0,
    };
    for (const b of [cfg, rst, tcn]) {
      const f = encodeBpdu(b, mac(1));
      expect(f.length).toBe(ETH_MIN_FRAME_BYTES);
      expect(isBpduFrame(f)).toBe(true);
      const d = decodeBpdu(f);
      expect(d).toEqual({ ok: true, bpdu: b });
    }
    const rstFrame = encodeBpdu(rst, mac(1));
    expect(rstFrame.readUInt16BE(12)).toBe(39);
    expect(rstFrame[14 + 3 + 35]).toBe(0); // version 1 length
    const tcnFrame = encodeBpdu(tcn, mac(1));
    expect(tcnFrame.readUInt16BE(12)).toBe(7);
    expect(tcnFrame[17 + 3]).toBe(BPDU_TYPE_TCN);
  });

  it('accepts unpadded frames (Linux sends 52-byte Configuration BPDUs) and MSTP BPDUs as RST', () => {
    const full = encodeBpdu(configBpdu(), mac(1));
    const unpadded = full.subarray(0, 14 + 3 + CONFIG_BPDU_BYTES);
    expect(decodeBpdu(unpadded).ok).toBe(true);
    const mst = Buffer.concat([encodeBpdu({ ...configBpdu(), type: 'rst', version: 2 }, mac(1)), Buffer.alloc(64)]);
    mst[19] = 3; // protocol version 3 (MSTP)
    mst.writeUInt16BE(3 + 102, 12);
    const d = decodeBpdu(mst);
    expect(d.ok && d.bpdu.type === 'rst' && d.bpdu.version === 3).toBe(true);
  });

  it('formats identifiers like Linux', () => {
    expect(formatBridgeId(makeBridgeId(0x8000, Buffer.from([0x02, 0x42, 0xac, 0x11, 0x00, 0x02])))).toBe('8000.0242ac110002');
    expect(makePortId(128, 3)).toBe(0x8003);
    expect(makePortId(240, 0x1234)).toBe(0xf234);
  });
});

describe('BPDU parsing is defensive', () => {
  const good = encodeBpdu(configBpdu(), mac(1));
  const mutate = (fn: (b: Buffer) => void): Buffer => { const b = Buffer.from(good); fn(b); return b; };
  const cases: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /truncated/],
    ['Ethernet header only', good.subarray(0, 14), /truncated/],
    ['truncated BPDU', Buffer.concat([good.subarray(0, 30)]), /truncated/],
    ['length field beyond the frame', mutate((b) => b.writeUInt16BE(200, 12)), /truncated/],
    ['length field too short for the type', mutate((b) => b.writeUInt16BE(3 + 10, 12)), /truncated config/],
    ['oversize', Buffer.concat([good, Buffer.alloc(2000)]), /oversize/],
    ['wrong LLC', mutate((b) => { b[14] = 0xaa; b[15] = 0xaa; }), /LLC/],
    ['wrong destination', mutate((b) => { b[5] = 0x0e; }), /destination/],
    ['EtherType instead of length', mutate((b) => b.writeUInt16BE(0x8100, 12)), /EtherType/],
    ['protocol id', mutate((b) => b.writeUInt16BE(1, 17)), /protocol identifier/],
    ['unknown type', mutate((b) => { b[20] = 0x42; }), /unknown BPDU type/],
    ['unknown version of a config BPDU', mutate((b) => { b[19] = 7; }), /unknown protocol version/],
    ['RST type with version 0', mutate((b) => { b[20] = 0x02; b.writeUInt16BE(39, 12); }), /unknown protocol version/],
    ['RST type with a future version', mutate((b) => { b[19] = 9; b[20] = 0x02; b.writeUInt16BE(39, 12); }), /unknown protocol version/],
    ['RST one byte short', mutate((b) => { b[19] = 2; b[20] = 0x02; }), /truncated rst/],
  ];
  for (const [name, frame, reason] of cases) {
    it(`rejects ${name}`, () => {
      const d = decodeBpdu(frame);
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.reason).toMatch(reason);
    });
  }

  it('never throws out of decodeBpdu or receiveBpdu on random garbage and mutations', () => {
    const net = new SimNet();
    const b = net.bridge('A', 1);
    b.stp.addPort(1);
    let seed = 12345;
    const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    const inputs: unknown[] = [undefined, null, 'string', 42, {}, new Uint8Array(60)];
    for (let i = 0; i < 3000; i++) {
      const kind = rnd(3);
      let f: Buffer;
      if (kind === 0) {
        f = Buffer.alloc(rnd(120));
        for (let j = 0; j < f.length; j++) f[j] = rnd(256);
      } else {
        f = Buffer.from(i % 2 ? good : encodeBpdu({ ...configBpdu(), type: 'rst', version: 2 }, mac(2)));
        for (let k = 0; k < 1 + rnd(4); k++) f[rnd(f.length)] = rnd(256);
        if (kind === 2) f = f.subarray(0, rnd(f.length + 1));
      }
      inputs.push(f);
    }
    for (const input of inputs) {
      expect(() => decodeBpdu(input as Buffer)).not.toThrow();
      const r = b.stp.receiveBpdu(1, input as Buffer);
      if (!r.ok) expect(typeof r.reason).toBe('string');
    }
    expect(b.stp.receiveBpdu(99, good)).toEqual({ ok: false, reason: 'unknown port 99' });
    expect(() => net.run(5000, () => {})).not.toThrow();
  });

  it('rejects its own BPDU looped back and stale message ages, with a reason', () => {
    const net = new SimNet();
    const a = net.bridge('A', 1);
    a.stp.addPort(1);
    net.run(0, () => {});
    const own = encodeBpdu(configBpdu({ rootId: makeBridgeId(32768, mac(1)), bridgeId: makeBridgeId(32768, mac(1)), portId: 0x8001 }), mac(1));
    expect(a.stp.receiveBpdu(1, own)).toEqual({ ok: false, reason: 'own BPDU looped back to the sending port' });
    const old = encodeBpdu(configBpdu({ messageAgeSeconds: 20 }), mac(9));
    const r = a.stp.receiveBpdu(1, old);
    expect(r.ok).toBe(false);
    expect(a.logs.some((l) => l.includes('BPDU rejected'))).toBe(true);
  });
});

/* ------------------------------------------------------------------------ */
/* Simulated networks                                                        */
/* ------------------------------------------------------------------------ */

describe('RSTP between instances', () => {
  it('two bridges with two parallel links: one link ends up non-forwarding on one side', () => {
    const net = new SimNet();
    const a = net.bridge('A', 0x0a);
    const b = net.bridge('B', 0x0b);
    net.connect('A', 1, 'B', 1);
    net.connect('A', 2, 'B', 2);
    const t = net.runUntil(() => net.spansAll() && blockedEnds(net).length === 1, 10_000);
    expect(t).toBeLessThan(2000); // proposal/agreement: no forward-delay wait
    net.run(60_000);
    expect(blockedEnds(net)).toEqual([{ node: 'B', port: 2 }]);
    expect(a.stp.status().isRoot).toBe(true);
    const sb = b.stp.status();
    expect(sb.isRoot).toBe(false);
    expect(sb.rootId).toBe(a.stp.status().bridgeId);
    expect(sb.rootPort).toBe(1);
    expect(sb.rootPathCost).toBe(20000);
    expect(b.role(2)).toBe('alternate');
    expect(a.role(1)).toBe('designated');
    expect(a.role(2)).toBe('designated');
    expect(sb.ports.every((p) => p.protocol === 'rstp' && p.designatedBridge === a.stp.status().bridgeId)).toBe(true);
    // Every BPDU sent is a padded version-2 RST BPDU; a quiet network sends about one per hello per designated port.
    expect(a.sent.every((s) => s.bpdu.type === 'rst' && s.bpdu.version === 2 && s.bytes === 60)).toBe(true);
    const lastMinute = a.sent.filter((s) => s.at > net.now - 60_000).length;
    expect(lastMinute).toBeGreaterThanOrEqual(58);
    expect(lastMinute).toBeLessThanOrEqual(64);
  });

  it('triangle: exactly one port blocked, the lowest bridge id is root', () => {
    const net = new SimNet();
    const a = net.bridge('A', 0x30); // highest MAC but best priority: must win
    const b = net.bridge('B', 0x10, { priority: 32768 });
    const c = net.bridge('C', 0x20, { priority: 32768 });
    a.stp.setBridgePriority(4096);
    net.connect('A', 1, 'B', 1);
    net.connect('A', 2, 'C', 1);
    net.connect('B', 2, 'C', 2);
    net.runUntil(() => net.spansAll() && blockedEnds(net).length === 1, 10_000);
    net.run(30_000);
    expect(a.stp.status().isRoot).toBe(true);
    for (const x of [b, c]) expect(x.stp.status().rootId).toBe(a.stp.status().bridgeId);
    expect(blockedEnds(net)).toEqual([{ node: 'C', port: 2 }]); // B (0x10) beats C (0x20) on the B-C link
    expect(c.role(2)).toBe('alternate');
    expect(b.role(2)).toBe('designated');
    expect(net.spansAll()).toBe(true);
  });

  it('link failure (removePort on both ends) makes the blocked path forward quickly, with flushes', () => {
    const net = new SimNet();
    const a = net.bridge('A', 1);
    const b = net.bridge('B', 2);
    const c = net.bridge('C', 3);
    net.connect('A', 1, 'B', 1);
    const ac = net.connect('A', 2, 'C', 1);
    net.connect('B', 2, 'C', 2);
    net.run(30_000);
    expect(blockedEnds(net)).toEqual([{ node: 'C', port: 2 }]);
    const flushMark = net.now;
    net.cut(ac, true);
    const t = net.runUntil(() => c.forwarding(2) && net.spansAll(), 10_000);
    expect(t).toBeLessThanOrEqual(1000); // RSTP: alternate port takes over without timers
    net.run(10_000);
    expect(c.stp.status().rootPort).toBe(2);
    expect(c.stp.status().rootPathCost).toBe(40000);
    expect(blockedEnds(net)).toEqual([]);
    // The removed ports were flushed; C's new root port going forwarding is a topology change
    // that reached B, which flushed its other active port (towards A).
    expect(a.flushes.some((f) => f.at >= flushMark && f.port === 2)).toBe(true);
    expect(c.flushes.some((f) => f.at >= flushMark && f.port === 1)).toBe(true);
    expect(b.flushes.some((f) => f.at >= flushMark && f.port === 1)).toBe(true);
    expect(c.stp.status().topologyChangeCount).toBeGreaterThan(0);
  });

  it('a root port that stops hearing BPDUs ages out after 3 hellos and the tree re-forms', () => {
    const net = new SimNet();
    net.bridge('A', 1);
    net.bridge('B', 2);
    const c = net.bridge('C', 3);
    net.connect('A', 1, 'B', 1);
    const ac = net.connect('A', 2, 'C', 1);
    net.connect('B', 2, 'C', 2);
    net.run(30_000);
    net.cut(ac, false); // silent failure: no link-down event on either side
    const t = net.runUntil(() => c.forwarding(2) && c.stp.status().rootPort === 2, 30_000);
    expect(t).toBeGreaterThanOrEqual(4000);
    expect(t).toBeLessThanOrEqual(8000); // 3 x hello (6 s) + one-second timer granularity
    expect(c.logs.some((l) => l.includes('aged out'))).toBe(true);
  });

  it('higher-cost path loses; raising a cost moves the blocked port', () => {
    const net = new SimNet();
    net.bridge('A', 1);
    const b = net.bridge('B', 2);
    net.connect('A', 1, 'B', 1);
    net.connect('A', 2, 'B', 2);
    b.stp.setPortCost(1, 100000);
    net.run(10_000);
    expect(blockedEnds(net)).toEqual([{ node: 'B', port: 1 }]);
    b.stp.setPortCost(1, 1000);
    net.run(10_000);
    expect(blockedEnds(net)).toEqual([{ node: 'B', port: 2 }]);
    expect(b.stp.status().rootPathCost).toBe(1000);
  });

  it('adding a bridge later causes a topology change that flushes the other bridges', () => {
    const net = new SimNet();
    const a = net.bridge('A', 1);
    const b = net.bridge('B', 2);
    const d = net.bridge('D', 4);
    net.connect('A', 1, 'B', 1);
    net.connect('A', 2, 'D', 1);
    net.run(20_000);
    const mark = net.now;
    net.bridge('C', 3);
    net.connect('B', 2, 'C', 1);
    net.run(10_000);
    expect(net.spansAll()).toBe(true);
    // B's new designated port went forwarding: B flushes its root port, the TC reaches A over
    // that link and A flushes its other active port (towards D). Ports that received the TC keep
    // their entries, as 802.1D specifies.
    expect(b.flushes.some((f) => f.at >= mark && f.port === 1)).toBe(true);
    expect(a.flushes.some((f) => f.at >= mark && f.port === 2)).toBe(true);
    expect(a.flushes.some((f) => f.at >= mark && f.port === 1)).toBe(false);
    expect(d.flushes.filter((f) => f.at >= mark)).toEqual([]);
  });

  it('edge ports forward at once and do not cause topology changes; silent ports become edge by themselves', () => {
    const net = new SimNet();
    const a = net.bridge('A', 1);
    const b = net.bridge('B', 2);
    net.connect('A', 1, 'B', 1);
    net.run(20_000);
    const flushesBefore = a.flushes.length + b.flushes.length;
    const tcBefore = a.stp.status().topologyChangeCount;
    a.stp.setEdge(5, true);
    a.stp.addPort(5);
    expect(a.states.get(5)).toBe('forwarding');
    expect(a.role(5)).toBe('edge');
    // A port with nothing behind it that speaks STP: AutoEdge after the 3 s migrate time.
    a.stp.addPort(6);
    expect(a.states.get(6)).toBe('discarding');
    const t = net.runUntil(() => a.states.get(6) === 'forwarding', 10_000);
    expect(t).toBeGreaterThanOrEqual(2000);
    expect(t).toBeLessThanOrEqual(4000);
    expect(a.portStatus(6).edge).toBe(true);
    net.run(5000);
    expect(a.flushes.length + b.flushes.length).toBe(flushesBefore);
    expect(a.stp.status().topologyChangeCount).toBe(tcBefore);
  });

  it('gives the same tree whatever the tick period, and with a re-entrant (synchronous) host', () => {
    const build = (synchronous: boolean): SimNet => {
      const net = new SimNet();
      net.synchronous = synchronous;
      net.bridge('A', 4);
      net.bridge('B', 2);
      net.bridge('C', 3);
      net.bridge('D', 1);
      net.connect('A', 1, 'B', 1);
      net.connect('B', 2, 'C', 1);
      net.connect('C', 2, 'D', 1);
      net.connect('D', 2, 'A', 2);
      net.connect('A', 3, 'C', 3);
      return net;
    };
    const results: string[] = [];
    for (const [synchronous, stepMs] of [[false, 100], [false, 1000], [false, 3700], [true, 250]] as const) {
      const net = build(synchronous);
      net.run(90_000, () => net.assertLoopFree(), stepMs);
      expect(net.spansAll()).toBe(true);
      results.push(JSON.stringify(blockedEnds(net)));
      const d = net.nodes.get('D') as SimBridge;
      expect(d.stp.status().isRoot).toBe(true);
    }
    expect(new Set(results).size).toBe(1);
  });

  it('random meshes with link churn that keeps them connected never form a loop', () => {
    // Count-to-infinity (and its known transient loops) needs the root to be cut off from a
    // cycle; while every bridge can still reach the root, RSTP must stay loop-free throughout.
    for (let seed = 1; seed <= 40; seed++) {
      let s = seed * 7919;
      const rnd = (n: number): number => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s % n; };
      const net = new SimNet();
      const count = 3 + rnd(6);
      const nextPort = new Map<string, number>();
      for (let i = 0; i < count; i++) {
        net.bridge(`B${i}`, 1 + i * 37, { priority: 28672 + rnd(3) * 4096 });
        nextPort.set(`B${i}`, 1);
      }
      const link = (a: string, b: string): void => {
        const pa = nextPort.get(a)!;
        const pb = nextPort.get(b)!;
        nextPort.set(a, pa + 1);
        nextPort.set(b, pb + 1);
        net.connect(a, pa, b, pb);
      };
      for (let i = 1; i < count; i++) link(`B${i}`, `B${rnd(i)}`);
      for (let k = rnd(count * 2) + count; k > 0; k--) {
        const a = rnd(count);
        const b = rnd(count);
        if (a !== b) link(`B${a}`, `B${b}`);
      }
      const stepMs = [100, 250, 1000, 1700][rnd(4)]!;
      const connectedWithout = (l: SimLink): boolean => {
        l.up = false;
        const seen = new Set(['B0']);
        for (let grew = true; grew;) {
          grew = false;
          for (const x of net.links) {
            if (x.up && seen.has(x.a.node) !== seen.has(x.b.node)) { seen.add(x.a.node); seen.add(x.b.node); grew = true; }
          }
        }
        l.up = true;
        return seen.size === count;
      };
      net.run(30_000, () => net.assertLoopFree(), stepMs);
      for (let round = 0; round < 8; round++) {
        const l = net.links[rnd(net.links.length)]!;
        if (l.up && connectedWithout(l)) net.cut(l, rnd(2) === 0); // sometimes silently
        else if (!l.up) {
          l.up = true; // a reconnection is a link flap on both ends
          for (const e of [l.a, l.b]) {
            const stp = (net.nodes.get(e.node) as SimBridge).stp;
            stp.removePort(e.port);
            stp.addPort(e.port);
          }
        }
        net.run(rnd(20_000), () => net.assertLoopFree(), stepMs);
      }
      net.run(30_000, () => net.assertLoopFree(), stepMs);
      expect(net.spansAll()).toBe(true);
      const ids = [...net.nodes.values()].map((n) => (n as SimBridge).stp.status());
      expect(ids.filter((x) => x.isRoot).map((x) => x.bridgeId)).toEqual([ids.map((x) => x.bridgeId).sort()[0]]);
    }
  });

  it('disabled spanning tree forwards everywhere and sends nothing', () => {
    const net = new SimNet();
    const a = new SimBridge('A', net, { bridgeMac: mac(1) });
    net.add(a);
    a.stp.addPort(1);
    a.stp.addPort(2);
    net.run(10_000, () => {});
    expect(a.states.get(1)).toBe('forwarding');
    expect(a.sent.length).toBe(0);
    expect(a.stp.status().enabled).toBe(false);
    expect(a.stp.receiveBpdu(1, encodeBpdu(configBpdu(), mac(9)))).toEqual({ ok: false, reason: 'spanning tree disabled' });
    a.stp.enable();
    expect(a.states.get(1)).toBe('discarding');
    expect(a.sent.length).toBe(2);
    a.stp.disable();
    expect(a.states.get(1)).toBe('forwarding');
    expect(a.flushes.at(-1)?.port).toBeUndefined();
    const sent = a.sent.length;
    net.run(10_000, () => {});
    expect(a.sent.length).toBe(sent);
  });

  it('rounds priorities down with a warning', () => {
    const logs: string[] = [];
    const host: StpHost = { sendFrame: () => {}, setPortState: () => {}, flush: () => {}, log: (m) => logs.push(m) };
    const stp = new SpanningTree(host, { bridgeMac: mac(1), priority: 40000 });
    expect(stp.status().bridgeId).toBe('9000.020000000001');
    expect(logs.some((l) => /priority 40000 rounded down to 36864/.test(l))).toBe(true);
    stp.setPortPriority(1, 100);
    stp.addPort(1);
    stp.enable();
    expect(stp.status().ports[0]!.portId).toBe('6001');
    expect(() => new SpanningTree(host, { bridgeMac: Buffer.alloc(3) })).toThrow(/6-byte/);
  });
});

describe('legacy STP peers', () => {
  it('follows a legacy root: Configuration/TCN BPDUs, one port blocked, TCN until acknowledged', () => {
    const net = new SimNet();
    const us = net.bridge('S', 5);
    const peerId = makeBridgeId(0x1000, mac(0xee));
    const peer = new LegacyPeer('L', net, peerId, [1, 2]);
    net.add(peer);
    net.connect('S', 1, 'L', 1);
    net.connect('S', 2, 'L', 2);
    // Port 3 leads to a bridge-less segment but is not allowed to become an edge port, so it
    // reaches forwarding only after its timers run out, which is a topology change.
    us.stp.setAutoEdge(3, false);
    us.stp.addPort(3);
    net.run(10_000);
    const st = us.stp.status();
    expect(st.rootId).toBe(formatBridgeId(peerId));
    expect(st.rootPort).toBe(1);
    expect(st.rootPathCost).toBe(20000);
    expect(us.role(2)).toBe('alternate');
    expect(us.forwarding(1)).toBe(true); // root port: rapid transition is safe, the old paths are blocked
    expect(us.forwarding(2)).toBe(false);
    expect(us.portStatus(1).protocol).toBe('stp');
    expect(us.portStatus(2).protocol).toBe('stp');
    expect(us.portStatus(3).protocol).toBe('rstp');
    expect(us.forwarding(3)).toBe(false);
    const tcnAt = net.runUntil(() => peer.received.some((r) => r.bpdu.type === 'tcn'), 30_000);
    expect(us.forwarding(3)).toBe(true);
    expect(net.now).toBeLessThan(30_000);
    expect(tcnAt).toBeGreaterThan(0);
    // A TCN went out of the root port only; the legacy root acknowledged it and the TCNs stop.
    net.run(2000);
    const tcns = peer.received.filter((r) => r.bpdu.type === 'tcn');
    expect(tcns.every((r) => r.port === 1 && r.bpdu.version === 0)).toBe(true);
    const before = tcns.length;
    net.run(10_000);
    expect(peer.received.filter((r) => r.bpdu.type === 'tcn').length).toBe(before);
    // Only version-0 BPDUs ever reached the legacy peer after migration: it would drop anything else.
    expect(us.sent.filter((s) => s.port !== 3 && s.at > 6000).every((s) => s.bpdu.version === 0)).toBe(true);
    // The legacy root now advertises the topology change in every Configuration BPDU; each
    // receipt flushes our other active port (3). Port 1 was flushed when port 3's change began.
    const tcStart = peer.tcUntilMs - 35_000;
    expect(us.flushes.filter((f) => f.port === 3 && f.at > tcStart).length).toBeGreaterThan(3);
    expect(us.flushes.some((f) => f.port === 1 && f.at >= tcStart - 2000)).toBe(true);
    expect(us.flushes.some((f) => f.port === 2)).toBe(false); // alternate ports learn nothing
  });

  it('blocks the right port when the legacy root link fails, and notifies with a TCN', () => {
    const net = new SimNet();
    const us = net.bridge('S', 5);
    const peer = new LegacyPeer('L', net, makeBridgeId(0x1000, mac(0xee)), [1, 2]);
    net.add(peer);
    const l1 = net.connect('S', 1, 'L', 1);
    net.connect('S', 2, 'L', 2);
    net.run(15_000);
    expect(us.stp.status().rootPort).toBe(1);
    const tcnsBefore = peer.received.filter((r) => r.bpdu.type === 'tcn').length;
    net.cut(l1, true);
    const t = net.runUntil(() => us.forwarding(2), 5000);
    expect(t).toBeLessThanOrEqual(1000);
    expect(us.stp.status().rootPort).toBe(2);
    net.run(3000);
    const tcns = peer.received.filter((r) => r.bpdu.type === 'tcn').slice(tcnsBefore);
    expect(tcns.length).toBeGreaterThan(0);
    expect(tcns.every((r) => r.port === 2)).toBe(true);
  });

  it('becomes root over a legacy bridge: Configuration BPDUs, listening/learning with forward delay', () => {
    const net = new SimNet();
    const us = net.bridge('S', 5, { priority: 4096 });
    const peer = new LegacyPeer('L', net, makeBridgeId(32768, mac(0xee)), [1]);
    net.add(peer);
    net.connect('S', 1, 'L', 1);
    net.run(25_000);
    expect(us.stp.status().isRoot).toBe(true);
    expect(us.role(1)).toBe('designated');
    expect(us.portStatus(1).protocol).toBe('stp');
    expect(us.portStatus(1).edge).toBe(false);
    expect(us.forwarding(1)).toBe(false); // no rapid transition without an RSTP partner
    const t = net.runUntil(() => us.forwarding(1), 30_000);
    expect(net.now).toBeGreaterThanOrEqual(30_000); // at least two forward delays in total
    expect(t).toBeLessThan(15_000);
    // The legacy peer got periodic version-0 Configuration BPDUs naming us root.
    const cfgs = peer.received.filter((r) => r.bpdu.type === 'config');
    expect(cfgs.length).toBeGreaterThan(10);
    expect(cfgs.at(-1)!.bpdu.rootId).toBe(makeBridgeId(4096, mac(5)));
    expect(peer.received.every((r) => r.bpdu.version === 0)).toBe(true);
  });

  it('goes back to RSTP when an RSTP partner replaces the legacy one', () => {
    const net = new SimNet();
    const us = net.bridge('S', 5);
    const peer = new LegacyPeer('L', net, makeBridgeId(0x1000, mac(0xee)), [1]);
    net.add(peer);
    const l = net.connect('S', 1, 'L', 1);
    net.run(10_000);
    expect(us.portStatus(1).protocol).toBe('stp');
    l.up = false;
    us.stp.removePort(1);
    net.bridge('R', 3);
    net.connect('S', 1, 'R', 1);
    net.run(10_000);
    expect(us.portStatus(1).protocol).toBe('rstp');
    expect(us.stp.status().rootId).toBe(formatBridgeId(makeBridgeId(32768, mac(3))));
  });
});
