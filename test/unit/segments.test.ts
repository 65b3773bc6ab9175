/*
 * 64 KiB segments between vde-ts ends, in the in-process engine (manual mode, socket-pair ports):
 * a data socket whose two ends agreed on the virtio-net header at the handshake, and a 2-byte
 * stream (a cable end) that negotiates the segment format in-band (native/src/cable.h). GSO
 * frames travel as they are between ends that take them and are segmented and checksummed in
 * software for any other; a peer that never says HELLO (Debian's vde_plug, a file) only ever
 * sees the 2-byte format; every record a cable end writes, before and after the switch, is a
 * VDE record of at most 1521 bytes (what Debian's wirefilter passes); bad headers, malformed
 * runs of records and garbage are dropped and counted, never passed on, and never stop the
 * engine. The cable messages and records are built here from the layout in cable.h's comment,
 * not from the code under test.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { EpKind, native } from '../../src/native/index.js';
import { frame, Harness, SOCK_STREAM } from '../helpers/harness.js';
import { checkSegment, tsoFrame, vnet } from '../helpers/tso.js';

const MSS_BYTES = 1448;
const SEG_LIMIT_BYTES = 65536;
const ZERO_RECORDS = 4;
/** vde2's record limit: no record a cable end writes may be longer. */
const RECORD_MAX_BYTES = 1521;
const PLAIN = 1;
const FIRST = 2;
const MORE = 3;

/** A cable message: four zero-length records, then the 12-byte record (type 1 HELLO, 2 GO). */
function cableMsg(type: number, opts: { zeros?: number; version?: number; flags?: number } = {}): Buffer {
  const rec = Buffer.concat([Buffer.from('vde-ts', 'latin1'), Buffer.from([opts.version ?? 1, type, opts.flags ?? 1, 0, 0, 0])]);
  return Buffer.concat([Buffer.alloc(2 * (opts.zeros ?? ZERO_RECORDS)), Buffer.from([0, rec.length]), rec]);
}
const HELLO = cableMsg(1);
const GO = cableMsg(2);

/** A GSO (TSO, IPv4) frame and its header, as a tap with offloads hands it over. */
function gso(payloadBytes = 60000): { hdr: Buffer; frame: Buffer; payload: Buffer } {
  const payload = randomBytes(payloadBytes);
  const { frame: f, l4 } = tsoFrame(false, false, payload);
  return { hdr: vnet(1, 1, l4 + 32, MSS_BYTES, l4, 16), frame: f, payload };
}

/** A 2-byte length record. */
function rec(payload: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(payload.length);
  return Buffer.concat([len, payload]);
}

/** A frame in the segment format: PLAIN when it fits one record without a header, else FIRST (header, length) and MOREs of chunk bytes. */
function segRecords(hdr: Buffer | null, f: Buffer, chunk = RECORD_MAX_BYTES - 1): Buffer {
  if (!hdr && f.length + 1 <= RECORD_MAX_BYTES) return rec(Buffer.concat([Buffer.from([PLAIN]), f]));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(f.length);
  const head = Buffer.concat([Buffer.from([FIRST]), hdr ?? Buffer.alloc(10), len]);
  const firstChunk = Math.min(f.length, Math.max(0, Math.min(chunk, RECORD_MAX_BYTES - head.length)));
  const out = [rec(Buffer.concat([head, f.subarray(0, firstChunk)]))];
  for (let o = firstChunk; o < f.length; o += chunk) out.push(rec(Buffer.concat([Buffer.from([MORE]), f.subarray(o, o + chunk)])));
  return Buffer.concat(out);
}

interface Parsed {
  legacy: Buffer[];
  zeros: number;
  go: boolean;
  /** Frames of the segment format: hdr null for PLAIN records. */
  segs: Array<{ hdr: Buffer | null; frame: Buffer }>;
  rest: number;
  longest: number;
}

/** Splits what a cable end wrote: 2-byte records up to a GO (counted: zero-length records), then frames of the segment format. */
function parseCable(b: Buffer, startInSegments = false): Parsed {
  const out: Parsed = { legacy: [], zeros: 0, go: startInSegments, segs: [], rest: 0, longest: 0 };
  let off = 0;
  let open: { hdr: Buffer; total: number; parts: Buffer[]; got: number } | null = null;
  while (off + 2 <= b.length) {
    const l = b.readUInt16BE(off);
    if (off + 2 + l > b.length) break;
    const r = b.subarray(off + 2, off + 2 + l);
    off += 2 + l;
    out.longest = Math.max(out.longest, l);
    if (l === 0) {
      out.zeros++;
      continue;
    }
    if (!out.go) {
      if (l === 12 && r.subarray(0, 6).toString('latin1') === 'vde-ts' && r[7] === 2) out.go = true;
      else out.legacy.push(r);
      continue;
    }
    if (r[0] === PLAIN) out.segs.push({ hdr: null, frame: r.subarray(1) });
    else if (r[0] === FIRST) open = { hdr: r.subarray(1, 11), total: r.readUInt32BE(11), parts: [r.subarray(15)], got: r.length - 15 };
    else if (r[0] === MORE && open) {
      open.parts.push(r.subarray(1));
      open.got += r.length - 1;
    } else throw new Error(`unexpected record kind ${r[0]}`);
    if (open && open.got === open.total) {
      out.segs.push({ hdr: open.hdr, frame: Buffer.concat(open.parts) });
      open = null;
    }
  }
  out.rest = b.length - off + (open ? 1 : 0);
  return out;
}

function drops(h: Harness, port: number, name: string): number {
  return h.counters(port).drops[name] ?? 0;
}

let h: Harness | null = null;
afterEach(() => {
  h?.close();
  h = null;
});

describe('a data socket with a virtio-net header (the handshake extension)', () => {
  it('carries a GSO frame as it is to another such socket and segments it, checksummed, for a plain one', () => {
    h = new Harness(3);
    const a = h.attach(0, SEG_LIMIT_BYTES, { offload: true });
    const b = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    const c = h.attach(2);
    const g = gso();
    expect(h.send(a, Buffer.concat([g.hdr, g.frame]))).toBe(g.hdr.length + g.frame.length);
    const got = h.recv(b);
    expect(got).toHaveLength(1);
    expect(got[0]!.subarray(0, 10)).toEqual(g.hdr);
    expect(got[0]!.subarray(10)).toEqual(g.frame);
    const segs = h.recv(c);
    expect(segs).toHaveLength(Math.ceil(g.payload.length / MSS_BYTES));
    const payload = Buffer.concat(segs.map((s) => checkSegment(s, false, 14).payload));
    expect(payload).toEqual(g.payload);
    for (const s of segs) expect(s.length).toBeLessThanOrEqual(14 + 20 + 32 + MSS_BYTES);
    expect(h.counters(0).inFrames).toBe(1);
    expect(h.counters(1).outFrames).toBe(1);
    expect(h.counters(2).outFrames).toBe(segs.length);
  });

  it('hands plain frames to such a socket behind a zero header, and takes plain frames from it', () => {
    h = new Harness(2);
    const a = h.attach(0, SEG_LIMIT_BYTES, { offload: true });
    const c = h.attach(1);
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:09', { payloadBytes: 1400 });
    h.send(c, f);
    expect(h.recv(a)).toEqual([Buffer.concat([Buffer.alloc(10), f])]);
    const f2 = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a', { payloadBytes: 60 });
    h.send(a, Buffer.concat([Buffer.alloc(10), f2]));
    expect(h.recv(c)).toEqual([f2]);
  });

  it('drops and counts bad headers, short datagrams and oversize plain frames, and keeps serving', () => {
    h = new Harness(2);
    const a = h.attach(0, 9234, { offload: true });
    const c = h.attach(1);
    const g = gso(3000);
    const bad: Array<[string, Buffer, string]> = [
      ['unknown flag bits', Buffer.concat([vnet(0x81, 1, 66, MSS_BYTES, 34, 16), g.frame]), 'badVnetHdr'],
      ['an unknown GSO type', Buffer.concat([vnet(1, 3, 66, MSS_BYTES, 34, 16), g.frame]), 'badVnetHdr'],
      ['a checksum offset beyond the frame', Buffer.concat([vnet(1, 0, 0, 0, 60000, 16), g.frame]), 'badVnetHdr'],
      ['GSO with a zero segment size', Buffer.concat([vnet(1, 1, 66, 0, 34, 16), g.frame]), 'badVnetHdr'],
      ['GSO on a frame that is not TCP', Buffer.concat([vnet(1, 1, 66, MSS_BYTES, 34, 16), frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', { payloadBytes: 3000 })]), 'badVnetHdr'],
      ['GSO IPv6 type on an IPv4 frame', Buffer.concat([vnet(1, 4, 66, MSS_BYTES, 34, 16), g.frame]), 'badVnetHdr'],
      ['a header without a frame', vnet(0, 0, 0, 0, 0, 0), 'runt'],
      ['5 bytes', Buffer.alloc(5, 1), 'runt'],
      ['a plain frame above the limit', Buffer.concat([Buffer.alloc(10), frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01', { payloadBytes: 9300 })]), 'oversize'],
    ];
    for (const [what, dgram, counter] of bad) {
      const before = drops(h, 0, counter);
      h.send(a, dgram);
      expect(drops(h, 0, counter), what).toBe(before + 1);
      expect(h.recv(c), what).toEqual([]);
    }
    const ok = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01');
    h.send(a, Buffer.concat([Buffer.alloc(10), ok]));
    expect(h.recv(c)).toEqual([ok]);
  });

  it('survives random headers and frames: whatever reaches a plain port is a whole frame within its limit', () => {
    h = new Harness(2);
    const a = h.attach(0, 9234, { offload: true });
    const c = h.attach(1);
    const g = gso(20000);
    for (let i = 0; i < 1500; i++) {
      const hdr = randomBytes(10);
      if (i % 3 === 0) hdr[0]! &= 3; // valid flag bits: reach the deeper checks
      if (i % 5 === 0) hdr[1] = [0, 1, 4, 0x81][i % 4]!;
      const body = i % 2 ? g.frame.subarray(0, 14 + ((i * 7919) % g.frame.length)) : randomBytes((i * 104729) % 12000);
      native().sendFd(a.peerFd, Buffer.concat([hdr, body]));
      if (i % 16 === 0) for (const f of h.recv(c)) expect(f.length).toBeGreaterThanOrEqual(14), expect(f.length).toBeLessThanOrEqual(9234);
    }
    for (const f of h.recv(c)) expect(f.length).toBeLessThanOrEqual(9234);
    const ok = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:01');
    h.send(a, Buffer.concat([Buffer.alloc(10), ok]));
    expect(h.recv(c)).toContainEqual(ok);
  });
});

describe('a cable end negotiating segments in-band (cable.h)', () => {
  it('says HELLO first, and keeps the 2-byte format for a peer that never answers (GSO frames segmented)', () => {
    h = new Harness(2);
    const s = h.attachStream(0, { offload: true });
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    expect(h.recvBytes(s)).toEqual(HELLO);
    const g = gso();
    h.send(v, Buffer.concat([g.hdr, g.frame]));
    const p = parseCable(h.recvBytes(s));
    expect(p.go).toBe(false);
    expect(p.rest).toBe(0);
    expect(p.legacy).toHaveLength(Math.ceil(g.payload.length / MSS_BYTES));
    expect(Buffer.concat(p.legacy.map((f) => checkSegment(f, false, 14).payload))).toEqual(g.payload);
  });

  it('after the peer\'s HELLO writes GO, then GSO frames as they are in the segment format', () => {
    h = new Harness(3);
    const s = h.attachStream(0, { offload: true });
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    const plain = h.attach(2);
    h.recvBytes(s);
    h.sendBytes(s, HELLO);
    expect(drops(h, 0, 'runt')).toBe(0); // a message is not a runt
    const g = gso();
    h.send(v, Buffer.concat([g.hdr, g.frame]));
    const bytes = h.recvBytes(s);
    expect(bytes.subarray(0, GO.length)).toEqual(GO);
    const p = parseCable(bytes);
    expect(p.legacy).toEqual([]);
    expect(p.segs).toEqual([{ hdr: g.hdr, frame: g.frame }]);
    expect(p.rest).toBe(0);
    expect(p.longest).toBeLessThanOrEqual(RECORD_MAX_BYTES);
    h.recv(plain);
    // plain frames follow in the segment format too, one record each
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:07', { payloadBytes: 100 });
    h.send(plain, f);
    expect(parseCable(h.recvBytes(s), true).segs).toEqual([{ hdr: null, frame: f }]);
  });

  it('switches its decoder at the peer\'s GO: segment records arrive whole where they can, segmented elsewhere', () => {
    h = new Harness(3);
    const s = h.attachStream(0, { offload: true });
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    const plain = h.attach(2);
    const g = gso();
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:05', { payloadBytes: 200 });
    // a legacy frame, the GO, then two records split at awkward places
    const stream = Buffer.concat([Buffer.from([0, f.length]), f, GO, segRecords(g.hdr, g.frame), segRecords(null, f)]);
    // fed in pieces: the format switch happens exactly at the GO, whatever the reads
    let off = 0;
    for (const n of [1, 25, 3, 60000, stream.length]) {
      h.sendBytes(s, stream.subarray(off, Math.min(off + n, stream.length)));
      off = Math.min(off + n, stream.length);
      if (off === stream.length) break;
    }
    const atV = h.recv(v);
    expect(atV).toEqual([Buffer.concat([Buffer.alloc(10), f]), Buffer.concat([g.hdr, g.frame]), Buffer.concat([Buffer.alloc(10), f])]);
    const atPlain = h.recv(plain);
    expect(atPlain[0]).toEqual(f);
    expect(atPlain.at(-1)).toEqual(f);
    expect(Buffer.concat(atPlain.slice(1, -1).map((x) => checkSegment(x, false, 14).payload))).toEqual(g.payload);
    expect(h.counters(0).inFrames).toBe(3);
  });

  for (const [what, msg] of [
    ['without its zero-length preamble (a relay such as wirefilter swallowed it)', Buffer.concat([Buffer.from([0, 12]), HELLO.subarray(10)])],
    ['with only three zero-length records', cableMsg(1, { zeros: 3 })],
    ['without the virtio-net flag', cableMsg(1, { flags: 0 })],
    ['of version 0', cableMsg(1, { version: 0 })],
    ['cut short (11 bytes)', Buffer.concat([Buffer.alloc(8), Buffer.from([0, 11]), HELLO.subarray(10, 21)])],
  ] as const) {
    it(`takes a HELLO ${what} for a runt and keeps the 2-byte format`, () => {
      h = new Harness(2);
      const s = h.attachStream(0, { offload: true });
      const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
      h.recvBytes(s);
      h.sendBytes(s, msg);
      expect(drops(h, 0, 'runt')).toBe(1);
      const g = gso(5000);
      h.send(v, Buffer.concat([g.hdr, g.frame]));
      const p = parseCable(h.recvBytes(s));
      expect(p.go).toBe(false);
      expect(p.legacy.length).toBe(Math.ceil(5000 / MSS_BYTES));
    });
  }

  it('puts a GO decided while frames wait in the queue behind them: nothing is read in the wrong format', () => {
    h = new Harness(2);
    const s = h.attachStream(0, { offload: true });
    const plain = h.attach(1);
    h.recvBytes(s);
    const sent: Buffer[] = [];
    const next = (): Buffer => {
      const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:03', { payloadBytes: 1400 });
      f.writeUInt32BE(sent.length, 20);
      sent.push(f);
      return f;
    };
    // the peer does not read: fill the socket and the engine's queue
    for (let i = 0; i < 600 && (h.engine.stats().queueUsedBytes === 0 || i < 400); i++) h.send(plain, next());
    expect(h.engine.stats().queueUsedBytes).toBeGreaterThan(0);
    h.sendBytes(s, HELLO);
    // these join the queue in the 2-byte format: the GO goes behind them once the peer reads
    for (let i = 0; i < 20; i++) h.send(plain, next());
    const first = h.recvBytes(s);
    for (let i = 0; i < 20; i++) h.send(plain, next());
    const p = parseCable(Buffer.concat([first, h.recvBytes(s)]));
    expect(p.go).toBe(true);
    expect(p.rest).toBe(0);
    expect(p.segs.length).toBeGreaterThanOrEqual(20);
    for (const x of p.segs) expect(x.hdr).toBeNull();
    expect(p.longest).toBeLessThanOrEqual(RECORD_MAX_BYTES);
    const got = [...p.legacy, ...p.segs.map((x) => x.frame)];
    // order kept, nothing lost but what the bounded queue refused (counted)
    expect(got.length + (h.counters(0).drops.queueFull ?? 0)).toBe(sent.length);
    const ids = got.map((f) => f.readUInt32BE(20));
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
    expect(ids.at(-1)).toBe(sent.length - 1);
  });

  it('closes on a length above the limit after GO, with a reason, and the other ports go on', () => {
    h = new Harness(3);
    const s = h.attachStream(0, { offload: true });
    const a = h.attach(1);
    const b = h.attach(2);
    h.sendBytes(s, Buffer.concat([GO, Buffer.from([0xff, 0xff]), randomBytes(100)]));
    expect(h.events.some((e) => e.type === 'epClosed' && /frame length above the limit/.test(e.detail))).toBe(true);
    expect(drops(h, 0, 'framing')).toBe(1);
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:04');
    h.send(a, f);
    expect(h.recv(b)).toEqual([f]);
  });

  it('drops a frame with a bad header or a runt frame, counts it, and reads on', () => {
    h = new Harness(2);
    const s = h.attachStream(0, { offload: true });
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    const g = gso(4000);
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:06');
    h.sendBytes(s, Buffer.concat([GO, segRecords(vnet(0x80, 1, 66, MSS_BYTES, 34, 16), g.frame), segRecords(null, Buffer.alloc(5)), Buffer.alloc(4), segRecords(null, f)]));
    expect(drops(h, 0, 'badVnetHdr')).toBe(1);
    expect(drops(h, 0, 'runt')).toBe(1);
    expect(h.recv(v)).toEqual([Buffer.concat([Buffer.alloc(10), f])]);
  });

  it('drops malformed runs of records (counted as framing) and keeps its place in the stream', () => {
    h = new Harness(2);
    const s = h.attachStream(0, { offload: true });
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    const g = gso(8000);
    const whole = segRecords(g.hdr, g.frame);
    const firstLen = whole.readUInt16BE(0) + 2;
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0b');
    const tooLong = Buffer.alloc(4);
    tooLong.writeUInt32BE(70000);
    const runs: Array<[string, Buffer, number]> = [
      ['a MORE without a FIRST', rec(Buffer.from([MORE, 1, 2, 3])), 1],
      ['an unknown record kind', rec(Buffer.from([9, 1, 2, 3])), 1],
      ['a FIRST too short for its header', rec(Buffer.from([FIRST, 0, 0])), 1],
      ['a frame cut short by the next frame', whole.subarray(0, firstLen + 1523), 1],
      ['a frame whose records overshoot its length', Buffer.concat([whole, rec(Buffer.from([MORE, 7]))]), 1],
      ['a FIRST announcing more than a slot (its MOREs are skipped)', Buffer.concat([rec(Buffer.concat([Buffer.from([FIRST]), Buffer.alloc(10), tooLong, Buffer.alloc(100)])), rec(Buffer.concat([Buffer.from([MORE]), Buffer.alloc(1000)]))]), 1],
    ];
    h.sendBytes(s, GO);
    for (const [what, bytes, bad] of runs) {
      const before = drops(h, 0, 'framing');
      h.sendBytes(s, Buffer.concat([bytes, segRecords(null, f)]));
      expect(drops(h, 0, 'framing') - before, what).toBe(bad);
      const got = h.recv(v);
      expect(got.at(-1), what).toEqual(Buffer.concat([Buffer.alloc(10), f]));
    }
    // a frame in records of one byte each spans more stream than a frame may: given up, the rest read on
    const slow = gso(30000);
    h.sendBytes(s, Buffer.concat([segRecords(slow.hdr, slow.frame, 1), segRecords(null, f)]));
    expect(h.recv(v)).toEqual([Buffer.concat([Buffer.alloc(10), f])]);
    // and the same frame in records of 100 bytes arrives whole
    h.sendBytes(s, segRecords(slow.hdr, slow.frame, 100));
    expect(h.recv(v)).toEqual([Buffer.concat([slow.hdr, slow.frame])]);
  });

  it('without negotiation (a file, a terminal, --offload off) never writes HELLO and takes one for a runt', () => {
    h = new Harness(2);
    const s = h.attachStream(0);
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    expect(h.recvBytes(s)).toEqual(Buffer.alloc(0));
    h.sendBytes(s, Buffer.concat([HELLO, GO]));
    expect(drops(h, 0, 'runt')).toBe(2);
    const g = gso(3000);
    h.send(v, Buffer.concat([g.hdr, g.frame]));
    expect(parseCable(h.recvBytes(s)).go).toBe(false);
  });

  it('never negotiates on QEMU\'s 4-byte framing', () => {
    h = new Harness(2);
    const a = native();
    const [mine, theirs] = a.socketPair(SOCK_STREAM);
    a.setNonBlocking(theirs, true);
    try {
      expect(h.engine.addEndpoint(0, mine, EpKind.Stream4, SEG_LIMIT_BYTES, true, undefined, false, true)).toBeGreaterThan(0);
      h.engine.pollOnce();
      expect(a.recvFd(theirs, 100)).toBeNull();
    } finally {
      a.closeFd(theirs);
    }
  });

  it('survives random bytes after a GO: the endpoint closes or reads on, the engine never stops', () => {
    for (let round = 0; round < 30; round++) {
      h = new Harness(2);
      const s = h.attachStream(0, { offload: true });
      const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
      const junk = randomBytes(1000 + round * 997);
      if (round % 2) junk.writeUInt32BE(10 + 14 + (round % 50), 0); // plausible first length
      h.sendBytes(s, Buffer.concat([GO, junk]));
      for (const d of h.recv(v)) expect(d.length).toBeLessThanOrEqual(10 + 65600);
      const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:08');
      const w = h.attach(0);
      h.send(w, f);
      expect(h.recv(v)).toEqual([Buffer.concat([Buffer.alloc(10), f])]);
      h.close();
      h = null;
    }
  });
});

describe('a UDP cable end negotiating segment datagrams (cable.h, datagram cables)', () => {
  const MAGIC = Buffer.concat([Buffer.from('vde-ts', 'latin1'), Buffer.from([1, 0xf0])]);
  const dgramMsg = (type: number): Buffer => cableMsg(type).subarray(10);
  /** Two UDP sockets on loopback connected to each other: one for the engine, one for the test. */
  const udpPair = (): { engineFd: number; testFd: number } => {
    const a = native();
    const base = 20000 + (process.pid % 4000) * 2;
    for (let k = 0; k < 100; k++) {
      const e = a.udpSocket(4);
      const t = a.udpSocket(4);
      try {
        a.ipBind(e, '127.0.0.1', base + 2 * k);
        a.ipBind(t, '127.0.0.1', base + 2 * k + 1);
        a.ipConnect(e, '127.0.0.1', base + 2 * k + 1);
        a.ipConnect(t, '127.0.0.1', base + 2 * k);
        return { engineFd: e, testFd: t };
      } catch {
        a.closeFd(e); // a port was taken: the next pair
        a.closeFd(t);
      }
    }
    throw new Error('no free loopback UDP port pair');
  };
  let testFd = -1;
  afterEach(() => {
    if (testFd >= 0) native().closeFd(testFd);
    testFd = -1;
  });
  const attachUdp = (hh: Harness, port: number): void => {
    const p = udpPair();
    testFd = p.testFd;
    expect(hh.engine.addEndpoint(port, p.engineFd, EpKind.Dgram, 9234, true, undefined, false, true)).toBeGreaterThan(0);
    hh.engine.pollOnce();
  };
  const recvAll = (hh: Harness): Buffer[] => {
    const out: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      hh.engine.pollOnce();
      const b = native().recvFd(testFd, 70000);
      if (!b) {
        if (i > 2) break;
        continue;
      }
      out.push(b);
    }
    return out;
  };
  const sendUdp = (hh: Harness, b: Buffer): void => {
    native().sendFd(testFd, b);
    for (let i = 0; i < 3; i++) hh.engine.pollOnce();
  };

  it('says HELLO at open, answers a HELLO with HELLO_ACK, then sends GSO frames whole behind the magic and header', () => {
    h = new Harness(2);
    attachUdp(h, 0);
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    expect(recvAll(h)).toEqual([dgramMsg(1)]);
    sendUdp(h, dgramMsg(1));
    expect(recvAll(h)).toEqual([dgramMsg(3)]);
    const g = gso(60000);
    h.send(v, Buffer.concat([g.hdr, g.frame]));
    expect(recvAll(h)).toEqual([Buffer.concat([MAGIC, g.hdr, g.frame])]);
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:31', { payloadBytes: 100 });
    h.send(v, Buffer.concat([Buffer.alloc(10), f]));
    expect(recvAll(h)).toEqual([Buffer.concat([MAGIC, Buffer.alloc(10), f])]);
  });

  it('segments a GSO frame too large for one datagram, and keeps plain frames plain for a peer that never said HELLO', () => {
    h = new Harness(2);
    attachUdp(h, 0);
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    recvAll(h);
    const g = gso(20000);
    h.send(v, Buffer.concat([g.hdr, g.frame]));
    const plain = recvAll(h);
    expect(plain).toHaveLength(Math.ceil(20000 / MSS_BYTES));
    expect(Buffer.concat(plain.map((x) => checkSegment(x, false, 14).payload))).toEqual(g.payload);
    sendUdp(h, dgramMsg(3)); // an ACK counts as a HELLO
    const big = gso(65480); // a 65 546-byte frame: above the 65 489 bytes one datagram carries on loopback
    h.send(v, Buffer.concat([big.hdr, big.frame]));
    const segs = recvAll(h);
    expect(segs.length).toBe(Math.ceil(65480 / MSS_BYTES));
    // each a complete segment behind the magic and an empty header
    for (const x of segs) expect(x.subarray(0, 18)).toEqual(Buffer.concat([MAGIC, Buffer.alloc(10)]));
    expect(Buffer.concat(segs.map((x) => checkSegment(x.subarray(18), false, 14).payload))).toEqual(big.payload);
  });

  it('takes segment datagrams as they are, plain datagrams as frames, and drops bad ones counted', () => {
    h = new Harness(2);
    attachUdp(h, 0);
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    recvAll(h);
    const g = gso(30000);
    sendUdp(h, Buffer.concat([MAGIC, g.hdr, g.frame]));
    expect(h.recv(v)).toEqual([Buffer.concat([g.hdr, g.frame])]);
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:32', { payloadBytes: 3 });
    sendUdp(h, f); // a plain frame shorter than the scratch prefix
    const f2 = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:33', { payloadBytes: 1400 });
    sendUdp(h, f2);
    expect(h.recv(v)).toEqual([Buffer.concat([Buffer.alloc(10), f]), Buffer.concat([Buffer.alloc(10), f2])]);
    sendUdp(h, Buffer.concat([MAGIC, vnet(0x40, 1, 66, MSS_BYTES, 34, 16), g.frame]));
    expect(drops(h, 0, 'badVnetHdr')).toBe(1);
    sendUdp(h, Buffer.concat([MAGIC, Buffer.alloc(10), Buffer.alloc(5)]));
    sendUdp(h, Buffer.alloc(9));
    expect(drops(h, 0, 'runt')).toBe(2);
    expect(h.recv(v)).toEqual([]);
  });

  it('without offloads neither says HELLO nor takes the magic', () => {
    h = new Harness(2);
    const p = udpPair();
    testFd = p.testFd;
    expect(h.engine.addEndpoint(0, p.engineFd, EpKind.Dgram, 9234, true)).toBeGreaterThan(0);
    const v = h.attach(1, SEG_LIMIT_BYTES, { offload: true });
    expect(recvAll(h)).toEqual([]);
    const g = gso(2000);
    sendUdp(h, Buffer.concat([MAGIC, g.hdr, g.frame]));
    const got = h.recv(v);
    expect(got).toHaveLength(1);
    expect(got[0]!.subarray(10, 18)).toEqual(MAGIC); // a frame like any other, its header zero
  });
});
