/**
 * In-process engine harness: a native engine without its thread ("manual" mode), with a fake
 * clock, whose ports are joined to the test through unix socket pairs. A test injects frames at
 * a port's ingress (or sends them through the port's socket, as a client would), reads what
 * leaves every port, moves the clock forward and compares the engine's JSON-able state. Aging,
 * storm control and stage timers are tested this way without sleeping, in the spirit of Open
 * vSwitch's dummy ports and our spanning-tree simulator.
 */
import { createEngine, EpKind, MAX_VDE_FRAME_BYTES, native, type EngineEvent, type NativeEngine, type PortCounters } from '../../src/native/index.js';

/** AF_UNIX socket types for socketPair(). */
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
/** Nanoseconds per second. */
export const NS_PER_SECOND = 1_000_000_000;

/** One port's attachment: the engine's endpoint id and the test's end of the socket pair. */
export interface HarnessPort {
  port: number;
  engineId: number;
  peerFd: number;
}

/** A manual engine with socket-pair ports. */
export class Harness {
  readonly engine: NativeEngine;
  readonly events: EngineEvent[] = [];
  private attached = new Map<number, HarnessPort[]>();

  /** Creates an engine with ports 0..numPorts-1 (no endpoints yet). */
  constructor(numPorts: number) {
    this.engine = createEngine(numPorts, (evs) => this.events.push(...evs), { manual: true });
  }

  /**
   * Attaches a datagram endpoint (a socket pair) to port; returns the test's side. offload: the
   * datagrams carry a virtio-net header (a data socket whose ends agreed on it at the handshake);
   * wholeSegments: a plain endpoint that takes GSO frames whole (a NAT back-end, such as slirp).
   */
  attach(port: number, maxFrameBytes = MAX_VDE_FRAME_BYTES, opts: { offload?: boolean; wholeSegments?: boolean } = {}): HarnessPort {
    return this.attachPair(port, SOCK_DGRAM, EpKind.Dgram, maxFrameBytes, opts.offload ?? false, opts.wholeSegments ?? false);
  }

  /** Attaches a 2-byte length stream (a socket pair) to port; offload: it negotiates 64 KiB segments in-band (a vde-ts cable end). */
  attachStream(port: number, opts: { offload?: boolean; maxFrameBytes?: number } = {}): HarnessPort {
    return this.attachPair(port, SOCK_STREAM, EpKind.Stream2, opts.maxFrameBytes ?? MAX_VDE_FRAME_BYTES, opts.offload ?? false);
  }

  private attachPair(port: number, type: number, kind: EpKind, maxFrameBytes: number, offload: boolean, wholeSegments = false): HarnessPort {
    const a = native();
    const [mine, theirs] = a.socketPair(type);
    a.setNonBlocking(theirs, true);
    const engineId = this.engine.addEndpoint(port, mine, kind, maxFrameBytes, true, undefined, false, offload, false, wholeSegments);
    if (!engineId) {
      a.closeFd(mine);
      a.closeFd(theirs);
      throw new Error(`harness: the engine refused an endpoint on port ${port}`);
    }
    const hp = { port, engineId, peerFd: theirs };
    this.attached.set(port, [...(this.attached.get(port) ?? []), hp]);
    return hp;
  }

  /** Processes a frame as if port had received it. */
  ingress(port: number, frame: Buffer): void {
    if (!this.engine.ingress(port, frame)) throw new Error(`harness: ingress(${port}) refused`);
  }

  /** Sends a frame from the client side of an attachment and lets the engine read it. */
  send(hp: HarnessPort, frame: Buffer): number {
    const r = native().sendFd(hp.peerFd, frame);
    this.engine.pollOnce();
    return r;
  }

  /** Every frame waiting at the client side of an attachment (after letting the engine run). */
  recv(hp: HarnessPort): Buffer[] {
    this.engine.pollOnce();
    const out: Buffer[] = [];
    for (;;) {
      const b = native().recvFd(hp.peerFd, 70000);
      if (!b) break;
      out.push(b);
      this.engine.pollOnce(); // lets a queued backlog drain into the room just made
    }
    return out;
  }

  /** Writes raw bytes into a stream attachment and lets the engine read them; returns the bytes written or -errno. */
  sendBytes(hp: HarnessPort, bytes: Buffer): number {
    const r = native().sendFd(hp.peerFd, bytes);
    for (let i = 0; i < 4; i++) this.engine.pollOnce();
    return r;
  }

  /** Every byte waiting at the test's side of a stream attachment (after letting the engine run). */
  recvBytes(hp: HarnessPort): Buffer {
    const out: Buffer[] = [];
    this.engine.pollOnce();
    for (;;) {
      const b = native().recvFd(hp.peerFd, 1 << 20);
      if (!b || b.length === 0) break;
      out.push(b);
      this.engine.pollOnce();
    }
    return Buffer.concat(out);
  }

  /** The frames each attached port received, by port number (first attachment of each port). */
  recvAll(): Map<number, Buffer[]> {
    const m = new Map<number, Buffer[]>();
    for (const [port, list] of this.attached) m.set(port, this.recv(list[0]));
    return m;
  }

  /** Moves the fake clock forward. */
  advanceSeconds(s: number): void {
    this.engine.advanceNs(Math.round(s * NS_PER_SECOND));
  }

  /** Counters of a port. */
  counters(port: number): PortCounters {
    return this.engine.counters(port);
  }

  /** Closes the engine and the test's socket ends. */
  close(): void {
    this.engine.close();
    for (const list of this.attached.values()) for (const hp of list) native().closeFd(hp.peerFd);
  }
}

const open: Harness[] = [];

/** A harness with ports 1..n attached (port 0 exists, unattached); closeHarnesses() closes it. */
export function harnessWithPorts(n: number): { h: Harness; p: HarnessPort[] } {
  const h = new Harness(n + 1);
  open.push(h);
  const p: HarnessPort[] = [];
  for (let i = 1; i <= n; i++) p.push(h.attach(i));
  return { h, p };
}

/** Closes every harness harnessWithPorts() made (call it in afterEach). */
export function closeHarnesses(): void {
  for (const h of open.splice(0)) h.close();
}

/** An Ethernet frame: dst, src (6-byte hex strings or Buffers), ethertype, payload of a given size. */
export function frame(dst: string, src: string, opts: { vlan?: number; ethertype?: number; payloadBytes?: number; fill?: number } = {}): Buffer {
  const mac = (s: string): Buffer => Buffer.from(s.split(':').map((x) => parseInt(x, 16)));
  const payload = Buffer.alloc(opts.payloadBytes ?? 46, opts.fill ?? 0xab);
  const et = Buffer.alloc(2);
  et.writeUInt16BE(opts.ethertype ?? 0x88b5);
  if (opts.vlan === undefined) return Buffer.concat([mac(dst), mac(src), et, payload]);
  const tag = Buffer.alloc(4);
  tag.writeUInt16BE(0x8100, 0);
  tag.writeUInt16BE(opts.vlan & 0xfff, 2);
  return Buffer.concat([mac(dst), mac(src), tag, et, payload]);
}

/** A MAC address string for a number (locally administered, unicast). */
export function macOf(n: number): string {
  const b = Buffer.alloc(6);
  b[0] = 0x02;
  b.writeUIntBE(n, 1, 5);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
