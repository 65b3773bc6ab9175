/**
 * pcapng (draft-ietf-opsawg-pcapng) as far as vde-ts reads and writes it: a block reader that
 * splits a live byte stream into whole blocks (what `vde_capture` copies, counts and ends on) and
 * decoders of the blocks the capture stage writes: Section Header, Interface Description,
 * Enhanced Packet and Interface Statistics blocks, with their options. The writer side is native
 * (native/src/stage_capture.cc). Input is untrusted: a block shorter than 12 bytes, not a
 * multiple of 4, longer than MAX_PCAPNG_BLOCK_BYTES, with a trailer that does not repeat its
 * length, or a stream that does not start with a Section Header Block, is an error naming what
 * is wrong; nothing here grows without bound.
 */

export const BT_SHB = 0x0a0d0d0a;
export const BT_IDB = 1;
export const BT_ISB = 5;
export const BT_EPB = 6;
/** Largest block accepted (a 256 KiB frame plus options fits many times over). */
export const MAX_PCAPNG_BLOCK_BYTES = 16 << 20;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const MIN_BLOCK_BYTES = 12;

/** One block: its type, the bytes between the length fields, the whole block as it came. */
export interface PcapngBlock {
  type: number;
  body: Buffer;
  raw: Buffer;
  littleEndian: boolean;
}

/** A malformed stream. */
export class PcapngError extends Error {}

/** Splits a byte stream into blocks; push() returns the blocks completed by a chunk. */
export class PcapngReader {
  private buf: Buffer = Buffer.alloc(0);
  private le: boolean | null = null;

  /** Adds bytes; returns the whole blocks now available (throws PcapngError on a malformed stream). */
  push(chunk: Buffer): PcapngBlock[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: PcapngBlock[] = [];
    let off = 0;
    while (this.buf.length - off >= 12) {
      const typeLE = this.buf.readUInt32LE(off);
      if (this.le === null || typeLE === BT_SHB) {
        if (typeLE !== BT_SHB) throw new PcapngError('the stream does not start with a pcapng Section Header Block');
        const magic = this.buf.readUInt32LE(off + 8);
        if (magic === BYTE_ORDER_MAGIC) this.le = true;
        else if (this.buf.readUInt32BE(off + 8) === BYTE_ORDER_MAGIC) this.le = false;
        else throw new PcapngError('Section Header Block with a bad byte-order magic');
      }
      const le = this.le;
      const len = le ? this.buf.readUInt32LE(off + 4) : this.buf.readUInt32BE(off + 4);
      if (len < MIN_BLOCK_BYTES || len % 4 !== 0 || len > MAX_PCAPNG_BLOCK_BYTES) throw new PcapngError(`bad block length ${len}`);
      if (this.buf.length - off < len) break;
      const trailer = le ? this.buf.readUInt32LE(off + len - 4) : this.buf.readUInt32BE(off + len - 4);
      if (trailer !== len) throw new PcapngError(`block length ${len} and trailer ${trailer} differ`);
      const raw = this.buf.subarray(off, off + len);
      out.push({ type: le ? raw.readUInt32LE(0) : raw.readUInt32BE(0), body: raw.subarray(8, len - 4), raw, littleEndian: le });
      off += len;
    }
    // the blocks handed out view this.buf: keep the unfinished rest in a buffer of its own
    this.buf = off ? Buffer.from(this.buf.subarray(off)) : this.buf;
    return out;
  }

  /** Bytes of an unfinished block held. */
  pending(): number {
    return this.buf.length;
  }
}

/** Options of a block: code -> values (a code may repeat). */
export type PcapngOptions = Map<number, Buffer[]>;

/** Reads the options that start at `off` in a block body. */
export function readOptions(body: Buffer, off: number, le: boolean): PcapngOptions {
  const m: PcapngOptions = new Map();
  while (off + 4 <= body.length) {
    const code = le ? body.readUInt16LE(off) : body.readUInt16BE(off);
    const len = le ? body.readUInt16LE(off + 2) : body.readUInt16BE(off + 2);
    if (code === 0) break;
    if (off + 4 + len > body.length) throw new PcapngError(`option ${code} runs past its block`);
    const list = m.get(code) ?? [];
    list.push(body.subarray(off + 4, off + 4 + len));
    m.set(code, list);
    off += 4 + ((len + 3) & ~3);
  }
  return m;
}

/** An Interface Description Block. */
export interface Idb {
  linkType: number;
  snaplen: number;
  name?: string;
  description?: string;
  /** Timestamp units per second (if_tsresol; 10^6 by default). */
  unitsPerSecond: bigint;
}

/** Decodes an IDB. */
export function parseIdb(b: PcapngBlock): Idb {
  if (b.type !== BT_IDB || b.body.length < 8) throw new PcapngError('not an Interface Description Block');
  const le = b.littleEndian;
  const o = readOptions(b.body, 8, le);
  const res = o.get(9)?.[0]?.[0];
  let units = 1_000_000n;
  if (res !== undefined) units = res & 0x80 ? 2n ** BigInt(res & 0x7f) : 10n ** BigInt(res & 0x7f);
  return {
    linkType: le ? b.body.readUInt16LE(0) : b.body.readUInt16BE(0),
    snaplen: le ? b.body.readUInt32LE(4) : b.body.readUInt32BE(4),
    name: o.get(2)?.[0]?.toString('utf8'),
    description: o.get(3)?.[0]?.toString('utf8'),
    unitsPerSecond: units,
  };
}

/** An Enhanced Packet Block. */
export interface Epb {
  interfaceId: number;
  /** Timestamp in the interface's units. */
  timestamp: bigint;
  capturedLength: number;
  originalLength: number;
  data: Buffer;
  /** epb_flags direction: 1 inbound, 2 outbound, 0 unknown. */
  direction: 0 | 1 | 2;
}

/** Decodes an EPB. */
export function parseEpb(b: PcapngBlock): Epb {
  if (b.type !== BT_EPB || b.body.length < 20) throw new PcapngError('not an Enhanced Packet Block');
  const le = b.littleEndian;
  const u32 = (o: number): number => (le ? b.body.readUInt32LE(o) : b.body.readUInt32BE(o));
  const cap = u32(12);
  if (20 + cap > b.body.length) throw new PcapngError(`captured length ${cap} runs past its block`);
  const o = readOptions(b.body, 20 + ((cap + 3) & ~3), le);
  const flags = o.get(2)?.[0];
  const f = flags && flags.length >= 4 ? (le ? flags.readUInt32LE(0) : flags.readUInt32BE(0)) : 0;
  return {
    interfaceId: u32(0),
    timestamp: (BigInt(u32(4)) << 32n) | BigInt(u32(8)),
    capturedLength: cap,
    originalLength: u32(16),
    data: b.body.subarray(20, 20 + cap),
    direction: (f & 3) as 0 | 1 | 2,
  };
}

/** An Interface Statistics Block: the counters vde-ts writes (undefined when absent). */
export interface Isb {
  interfaceId: number;
  received?: bigint;
  dropped?: bigint;
  filterAccepted?: bigint;
  delivered?: bigint;
}

/** Decodes an ISB. */
export function parseIsb(b: PcapngBlock): Isb {
  if (b.type !== BT_ISB || b.body.length < 12) throw new PcapngError('not an Interface Statistics Block');
  const le = b.littleEndian;
  const o = readOptions(b.body, 12, le);
  const u64 = (code: number): bigint | undefined => {
    const v = o.get(code)?.[0];
    return v && v.length >= 8 ? (le ? v.readBigUInt64LE(0) : v.readBigUInt64BE(0)) : undefined;
  };
  return { interfaceId: le ? b.body.readUInt32LE(0) : b.body.readUInt32BE(0), received: u64(4), dropped: u64(5), filterAccepted: u64(6), delivered: u64(8) };
}

/** The application that wrote a section (shb_userappl), if any. */
export function shbApplication(b: PcapngBlock): string | undefined {
  if (b.type !== BT_SHB || b.body.length < 16) return undefined;
  return readOptions(b.body, 16, b.littleEndian).get(4)?.[0]?.toString('utf8');
}
