/**
 * TCP segmentation offload test material shared by the offload tests: the 10-byte virtio-net
 * header, a TSO frame as a sending kernel hands it to a tap (full lengths, pseudo-header sum in
 * the TCP checksum field), and a checker for the segments the engine makes of it in software
 * (lengths, IPv4 header checksum, TCP checksum with the pseudo-header).
 */
import { expect } from 'vitest';

/** Ones' complement sum of buf (big-endian 16-bit words), folded, starting from init. */
export function csum(buf: Buffer, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length & 1) s += buf[buf.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** A virtio_net_hdr (legacy, little-endian fields). */
export function vnet(flags: number, gsoType: number, hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number): Buffer {
  const b = Buffer.alloc(10);
  b[0] = flags;
  b[1] = gsoType;
  b.writeUInt16LE(hdrLen, 2);
  b.writeUInt16LE(gsoSize, 4);
  b.writeUInt16LE(csumStart, 6);
  b.writeUInt16LE(csumOffset, 8);
  return b;
}

/** A TCP frame as a TSO sender hands it over: full lengths, pseudo-header sum in the checksum field. */
export function tsoFrame(v6: boolean, vlan: boolean, payload: Buffer, tcpFlags = 0x19): { frame: Buffer; l4: number } {
  const l2 = Buffer.from('02000000000202000000000108004500', 'hex').subarray(0, 12);
  const tag = vlan ? Buffer.from([0x81, 0x00, 0x00, 0x07]) : Buffer.alloc(0);
  const et = Buffer.from(v6 ? [0x86, 0xdd] : [0x08, 0x00]);
  const tcp = Buffer.alloc(32);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(5201, 2);
  tcp.writeUInt32BE(0xfffff000, 4); // wraps during segmentation
  tcp.writeUInt32BE(1234, 8);
  tcp[12] = 8 << 4;
  tcp[13] = tcpFlags;
  tcp.writeUInt16BE(65535, 14);
  tcp.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], 20); // NOP NOP timestamps
  let ip: Buffer;
  let pseudo: number;
  const tcpLen = tcp.length + payload.length;
  if (v6) {
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(tcpLen, 4);
    ip[6] = 6;
    ip[7] = 64;
    Buffer.from('20010db8000000000000000000000001', 'hex').copy(ip, 8);
    Buffer.from('20010db8000000000000000000000002', 'hex').copy(ip, 24);
    pseudo = csum(Buffer.concat([ip.subarray(8, 40), Buffer.from([0, 0, tcpLen >> 8, tcpLen & 0xff, 0, 0, 0, 6])]));
  } else {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + tcpLen, 2);
    ip.writeUInt16BE(0xfffe, 4);
    ip.writeUInt16BE(0x4000, 6);
    ip[8] = 64;
    ip[9] = 6;
    Buffer.from([192, 0, 2, 1, 192, 0, 2, 2]).copy(ip, 12);
    ip.writeUInt16BE(0xffff - csum(ip), 10);
    pseudo = csum(Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 6, tcpLen >> 8, tcpLen & 0xff])]));
  }
  tcp.writeUInt16BE(pseudo, 16);
  const frame = Buffer.concat([l2, tag, et, ip, tcp, payload]);
  return { frame, l4: 14 + tag.length + ip.length };
}

/** Checks one segment's lengths and checksums; returns its sequence number, TCP flags and payload. */
export function checkSegment(seg: Buffer, v6: boolean, l3: number): { seq: number; flags: number; payload: Buffer } {
  const l4 = l3 + (v6 ? 40 : 20);
  let pseudo: number;
  const tcpLen = seg.length - l4;
  if (v6) {
    expect(seg.readUInt16BE(l3 + 4)).toBe(tcpLen);
    pseudo = csum(Buffer.concat([seg.subarray(l3 + 8, l3 + 40), Buffer.from([0, 0, tcpLen >> 8, tcpLen & 0xff, 0, 0, 0, 6])]));
  } else {
    expect(seg.readUInt16BE(l3 + 2)).toBe(seg.length - l3);
    expect(csum(seg.subarray(l3, l3 + 20))).toBe(0xffff);
    pseudo = csum(Buffer.concat([seg.subarray(l3 + 12, l3 + 20), Buffer.from([0, 6, tcpLen >> 8, tcpLen & 0xff])]));
  }
  expect(csum(seg.subarray(l4), pseudo)).toBe(0xffff);
  const doff = (seg[l4 + 12]! >> 4) * 4;
  return { seq: seg.readUInt32BE(l4 + 4), flags: seg[l4 + 13]!, payload: seg.subarray(l4 + doff) };
}
