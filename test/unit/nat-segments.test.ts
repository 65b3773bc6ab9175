/*
 * Large segments into a NAT back-end, in the in-process engine (manual mode, socket-pair ports):
 * an endpoint added with wholeSegments (slirp://, passt://) gets a GSO frame from a tap with
 * offloads as one plain frame, its IP length and checksums completed (IPv4 and IPv6, with and
 * without an 802.1Q tag), so libslirp or passt reads a 64 KiB TCP segment instead of 45 small
 * ones; a frame larger than that endpoint's limit is still segmented for it, and an ordinary
 * plain endpoint on the same switch still gets MSS-sized segments. Checksums are checked here
 * against a ones'-complement sum written in the test (test/helpers/tso.ts), not the code under test.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness } from '../helpers/harness.js';
import { checkSegment, tsoFrame, vnet } from '../helpers/tso.js';

const MSS_BYTES = 1448;
const LARGE_FRAME_BYTES = 65536;
const SMALL_LIMIT_BYTES = 9234;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const NEEDS_CSUM = 1;

let h: Harness | null = null;
afterEach(() => {
  h?.close();
  h = null;
});

/** A GSO datagram (virtio-net header + frame) as a tap with offloads hands it to a data socket. */
function gso(v6: boolean, vlan: boolean, payload: Buffer): Buffer {
  const { frame, l4 } = tsoFrame(v6, vlan, payload);
  return Buffer.concat([vnet(NEEDS_CSUM, v6 ? GSO_TCPV6 : GSO_TCPV4, l4 + 32, MSS_BYTES, l4, 16), frame]);
}

describe('an endpoint that takes segments whole (a NAT back-end)', () => {
  for (const v6 of [false, true]) {
    it(`gets a 60 KB ${v6 ? 'IPv6' : 'IPv4'} GSO frame as one frame with lengths and checksums completed; a plain port gets its segments`, () => {
      h = new Harness(3);
      const tap = h.attach(0, LARGE_FRAME_BYTES, { offload: true });
      const nat = h.attach(1, LARGE_FRAME_BYTES, { wholeSegments: true });
      const plain = h.attach(2);
      const payload = randomBytes(60000);
      h.send(tap, gso(v6, false, payload));
      const whole = h.recv(nat);
      expect(whole).toHaveLength(1);
      const seg = checkSegment(whole[0]!, v6, 14);
      expect(seg.payload).toEqual(payload);
      expect(seg.flags).toBe(0x19); // FIN/PSH/ACK as the sender set them on the whole segment
      const segs = h.recv(plain);
      expect(segs).toHaveLength(Math.ceil(payload.length / MSS_BYTES));
      expect(Buffer.concat(segs.map((s) => checkSegment(s, v6, 14).payload))).toEqual(payload);
      expect(h.counters(1).outFrames).toBe(1);
    });
  }

  it('keeps an 802.1Q tag and completes the checksum behind it', () => {
    h = new Harness(2);
    const tap = h.attach(0, LARGE_FRAME_BYTES, { offload: true });
    const nat = h.attach(1, LARGE_FRAME_BYTES, { wholeSegments: true });
    h.engine.setTagged(0, 7, true);
    h.engine.setTagged(1, 7, true);
    const payload = randomBytes(30000);
    h.send(tap, gso(false, true, payload));
    const got = h.recv(nat);
    expect(got).toHaveLength(1);
    expect(got[0]!.readUInt16BE(12)).toBe(0x8100);
    expect(checkSegment(got[0]!, false, 18).payload).toEqual(payload);
  });

  it('segments a GSO frame larger than its limit, as for any plain endpoint', () => {
    h = new Harness(2);
    const tap = h.attach(0, LARGE_FRAME_BYTES, { offload: true });
    const nat = h.attach(1, SMALL_LIMIT_BYTES, { wholeSegments: true });
    const payload = randomBytes(20000);
    h.send(tap, gso(false, false, payload));
    const segs = h.recv(nat);
    expect(segs).toHaveLength(Math.ceil(payload.length / MSS_BYTES));
    expect(Buffer.concat(segs.map((s) => checkSegment(s, false, 14).payload))).toEqual(payload);
  });

  it('completes a partial checksum of a frame without GSO', () => {
    h = new Harness(2);
    const tap = h.attach(0, LARGE_FRAME_BYTES, { offload: true });
    const nat = h.attach(1, LARGE_FRAME_BYTES, { wholeSegments: true });
    const payload = randomBytes(1000);
    const { frame, l4 } = tsoFrame(false, false, payload);
    h.send(tap, Buffer.concat([vnet(NEEDS_CSUM, 0, 0, 0, l4, 16), frame]));
    const got = h.recv(nat);
    expect(got).toHaveLength(1);
    expect(checkSegment(got[0]!, false, 14).payload).toEqual(payload);
  });
});
