// Offload negotiation on VDE cables: how two vde-ts ends of a 2-byte length stream (dpipe and
// stdio, ssh, cmd://, stream://...[framing=2]) agree in-band to carry 64 KiB TCP segments with
// their virtio-net header, while any other peer, and any relay between the two ends, sees
// nothing but valid VDE records.
//
// The rule that keeps everyone safe: every record either end ever writes is a VDE 2-byte record
// of at most CABLE_RECORD_MAX_BYTES (1521, vde2's limit: Debian's wirefilter drops anything
// longer and loses its place in the stream). Before the switch that is today's format; after it
// a large frame travels as a run of records that a relay forwards one by one, unchanged.
//
// Messages: CABLE_ZEROS zero-length records (a no-op everywhere) followed by one 12-byte record,
// a runt every switch drops (shorter than an Ethernet header): "vde-ts", version, type (1 HELLO,
// 2 GO), flags (bit 0: virtio-net header), 3 reserved bytes. A runt without that preamble is
// just a runt.
//
//   HELLO  each end sends one first thing on the stream: "I can decode the segment format".
//   GO     an end that sent its HELLO and received the peer's sends GO and, from the next record
//          on, writes the segment format. The receiver switches its decoder at that record.
//
// Each direction switches on its own at a record boundary marked in-band: nothing waits for a
// round trip and no record is read in the wrong format. A relay that passes records unchanged
// (Debian's wirefilter does) lets the two ends agree through it, which is fine: the segment
// format passes it too.
//
// The segment format: every record starts with a kind byte.
//   PLAIN (1)  the rest is a whole frame without offload (small frames: one byte of overhead).
//   FIRST (2)  a 10-byte virtio-net header, the frame's length (4 bytes, big-endian), then the
//              frame's first bytes.
//   MORE  (3)  the next bytes of the frame the last FIRST began.
// A frame is complete when its bytes add up to its length; a cut, overlong or orphaned run is
// dropped and counted (the records keep the stream in step, so nothing else is lost). The
// receiver gathers a frame straight from the stream buffer into the batch slot (one copy).
//
// Pure: no system calls, no allocation after construction. native/fuzz/cable_decoder.cc drives it.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "batch.h"
#include "offload.h"
#include "stream_decoder.h"

namespace vde {

constexpr uint32_t CABLE_ZEROS = 4;              // zero-length records before a message
constexpr uint32_t CABLE_MSG_BYTES = 12;         // the message record (a runt: < 14 bytes)
constexpr size_t CABLE_MSG_WIRE_BYTES = 2 * CABLE_ZEROS + 2 + CABLE_MSG_BYTES;
constexpr uint8_t CABLE_VERSION = 1;
constexpr uint8_t CABLE_HELLO = 1;
constexpr uint8_t CABLE_GO = 2;
constexpr uint8_t CABLE_HELLO_ACK = 3;           // datagram cables: "I decode segments too" (not answered)
constexpr uint8_t CABLE_F_VNET = 1;
static const uint8_t CABLE_MAGIC[6] = {'v', 'd', 'e', '-', 't', 's'};

constexpr uint8_t CABLE_SEG_PLAIN = 1;
constexpr uint8_t CABLE_SEG_FIRST = 2;
constexpr uint8_t CABLE_SEG_MORE = 3;
/** Longest record either end writes (vde2's stream limit, the strictest relay's). */
constexpr uint32_t CABLE_RECORD_MAX_BYTES = 1521;
/** Bytes of a FIRST record before the frame: kind, virtio-net header, length. */
constexpr uint32_t CABLE_FIRST_HDR_BYTES = 1 + uint32_t(VNET_HDR_BYTES) + 4;
/** Frame bytes a FIRST and a MORE record carry at most. */
constexpr uint32_t CABLE_FIRST_CHUNK_BYTES = CABLE_RECORD_MAX_BYTES - CABLE_FIRST_HDR_BYTES;
constexpr uint32_t CABLE_MORE_CHUNK_BYTES = CABLE_RECORD_MAX_BYTES - 1;
/** Stream bytes one frame may span while it is gathered; a longer run is dropped (records of a few bytes each). */
constexpr uint32_t CABLE_GATHER_MAX_BYTES = 72 * 1024;
/** Largest wire form of one frame: prefix bytes and iovecs (a frame of a whole slot, split in records, its parts cut at two tag edits). */
constexpr size_t CABLE_MAX_PRE_BYTES = 2 + CABLE_FIRST_HDR_BYTES + 3 * ((SLOT_BYTES + CABLE_MORE_CHUNK_BYTES - 1) / CABLE_MORE_CHUNK_BYTES);
constexpr int CABLE_MAX_IOV = 2 * int((SLOT_BYTES + CABLE_MORE_CHUNK_BYTES - 1) / CABLE_MORE_CHUNK_BYTES + 1) + 4;

// Datagram cables (udp://): no stream, so no switch point. Each end sends HELLO (a 12-byte
// datagram: the message record without its length) when it opens and answers a HELLO with
// HELLO_ACK; once an end knows its peer decodes segments it sends every frame as a segment
// datagram: CABLE_DGRAM_MAGIC (8 bytes), the virtio-net header, the frame. A datagram without
// the magic is a plain frame, so nothing depends on the order in which datagrams arrive. Only
// a path whose MTU lets a large segment through whole is offered (see the dgram kind).
static const uint8_t CABLE_DGRAM_MAGIC[8] = {'v', 'd', 'e', '-', 't', 's', CABLE_VERSION, 0xf0};
constexpr size_t CABLE_DGRAM_PREFIX_BYTES = sizeof CABLE_DGRAM_MAGIC + VNET_HDR_BYTES;

/** Writes a message (its zero-length preamble and record, CABLE_MSG_WIRE_BYTES) to out. */
inline size_t cableEncodeMsg(uint8_t type, uint8_t *out) {
  memset(out, 0, CABLE_MSG_WIRE_BYTES);
  uint8_t *r = out + 2 * CABLE_ZEROS;
  r[0] = 0;
  r[1] = uint8_t(CABLE_MSG_BYTES);
  memcpy(r + 2, CABLE_MAGIC, sizeof CABLE_MAGIC);
  r[8] = CABLE_VERSION;
  r[9] = type;
  r[10] = CABLE_F_VNET;
  return CABLE_MSG_WIRE_BYTES;
}

/**
 * The segment-format wire form of f: prefixes written into pre (CABLE_MAX_PRE_BYTES), iovecs
 * into iov (CABLE_MAX_IOV) alternating record prefixes and pieces of the frame's parts (the
 * 802.1Q edit applied). Returns the iovec count; *wireBytes gets the total length.
 */
inline int cableSegWire(const OutFrame &f, uint8_t *pre, struct iovec *iov, uint32_t *wireBytes) {
  struct iovec parts[3];
  int np = f.parts(parts);
  uint32_t total = f.wireLen();
  int c = 0;
  if (!f.vnet && total + 1 <= CABLE_RECORD_MAX_BYTES) {
    pre[0] = uint8_t((total + 1) >> 8);
    pre[1] = uint8_t(total + 1);
    pre[2] = CABLE_SEG_PLAIN;
    iov[c++] = {pre, 3};
    for (int k = 0; k < np; k++) iov[c++] = parts[k];
    *wireBytes = total + 3;
    return c;
  }
  int pi = 0;
  size_t poff = 0;
  uint32_t left = total, wire = 0;
  bool first = true;
  while (first || left) {
    uint32_t room = first ? CABLE_FIRST_CHUNK_BYTES : CABLE_MORE_CHUNK_BYTES;
    uint32_t chunk = left < room ? left : room;
    uint32_t recLen = (first ? CABLE_FIRST_HDR_BYTES : 1) + chunk;
    uint8_t *p = pre;
    p[0] = uint8_t(recLen >> 8);
    p[1] = uint8_t(recLen);
    p[2] = first ? CABLE_SEG_FIRST : CABLE_SEG_MORE;
    size_t plen = 3;
    if (first) {
      if (f.vnet) vnetEncode(*f.vnet, f.delta(), p + 3);
      else memset(p + 3, 0, VNET_HDR_BYTES);
      p[13] = uint8_t(total >> 24);
      p[14] = uint8_t(total >> 16);
      p[15] = uint8_t(total >> 8);
      p[16] = uint8_t(total);
      plen = 2 + CABLE_FIRST_HDR_BYTES;
    }
    iov[c++] = {p, plen};
    pre += plen;
    wire += uint32_t(plen);
    for (uint32_t need = chunk; need;) {
      size_t avail = parts[pi].iov_len - poff;
      size_t take = need < avail ? need : avail;
      iov[c++] = {static_cast<uint8_t *>(parts[pi].iov_base) + poff, take};
      poff += take;
      need -= uint32_t(take);
      if (poff == parts[pi].iov_len) {
        pi++;
        poff = 0;
      }
    }
    wire += chunk;
    left -= chunk;
    first = false;
  }
  *wireBytes = wire;
  return c;
}

/** Decodes a cable: the legacy framing with messages, then (after the peer's GO) the segment format. */
class CableDecoder {
 public:
  /** What next() found. */
  enum class Item : uint8_t { Frame, SegFrame, Runt, Bad, Hello, Go, NeedMore, TooLong };

  /**
   * hdrBytes (2 or 4) and maxFrame: the framing and record limit of the stream; negotiate (2-byte
   * framing only): recognise messages and switch on GO (otherwise runts stay runts).
   */
  CableDecoder(uint8_t hdrBytes, uint32_t maxFrame, bool negotiate)
      : dec_(hdrBytes, maxFrame, negotiate && hdrBytes == 2 ? CABLE_GATHER_MAX_BYTES : 0), negotiate_(negotiate && hdrBytes == 2) {}

  /** Where the next read may write (see StreamDecoder::space; never 0 bytes). */
  uint8_t *space(size_t *room) { return dec_.space(room); }
  /** Records that n bytes were written at space(). */
  void commit(size_t n) { dec_.commit(n); }
  /** Bytes of an unfinished record (or of a frame still being gathered). */
  size_t pending() const { return dec_.pending(); }
  /** True once the peer's GO switched this direction to the segment format. */
  bool segments() const { return seg_; }

  /**
   * The next item. Frame: a frame copied to out (at most outCap bytes), its length in *len.
   * SegFrame: the same, with its virtio-net header (not validated yet) copied to vh. Runt: a
   * record too short for a frame. Bad: a malformed run of segment records was dropped. Hello:
   * the peer can decode the segment format. Go: from the next record on the peer writes it.
   * NeedMore, TooLong: as StreamDecoder (TooLong is final).
   */
  Item next(uint8_t *out, uint32_t outCap, uint32_t *len, uint8_t *vh) {
    if (seg_) return nextSeg(out, outCap, len, vh);
    const uint8_t *p = nullptr;
    uint32_t l = 0;
    switch (dec_.next(&p, &l, MIN_FRAME_BYTES)) {
      case StreamDecoder::Next::NeedMore:
        return Item::NeedMore;
      case StreamDecoder::Next::TooLong:
        return Item::TooLong;
      case StreamDecoder::Next::Runt:
        if (negotiate_) {
          uint8_t type = message(p, l, dec_.zerosBefore());
          if (type == CABLE_HELLO || type == CABLE_HELLO_ACK) return Item::Hello;
          if (type == CABLE_GO) {
            seg_ = true;
            return Item::Go;
          }
        }
        return Item::Runt;
      case StreamDecoder::Next::Frame:
        break;
    }
    if (l > outCap) return Item::Bad;
    memcpy(out, p, l);
    *len = l;
    return Item::Frame;
  }

  /** The message type of a runt (CABLE_HELLO, CABLE_GO), or 0 when it is none we act on. */
  static uint8_t message(const uint8_t *p, uint32_t len, uint32_t zerosBefore) {
    if (len != CABLE_MSG_BYTES || zerosBefore < CABLE_ZEROS) return 0;
    if (memcmp(p, CABLE_MAGIC, sizeof CABLE_MAGIC) != 0) return 0;
    uint8_t ver = p[6], type = p[7], flags = p[8];
    if (!(flags & CABLE_F_VNET)) return 0;
    if ((type == CABLE_HELLO || type == CABLE_HELLO_ACK) && ver >= CABLE_VERSION) return type;
    if (type == CABLE_GO && ver == CABLE_VERSION) return CABLE_GO;
    return 0;
  }

 private:
  static uint32_t be16(const uint8_t *p) { return uint32_t(p[0]) << 8 | p[1]; }
  static uint32_t be32(const uint8_t *p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

  // One record of the segment format at d (n bytes available): false while it is incomplete.
  bool record(const uint8_t *d, size_t n, uint32_t *l) {
    if (n < 2) return false;
    *l = be16(d);
    return n - 2 >= *l;
  }

  Item nextSeg(uint8_t *out, uint32_t outCap, uint32_t *len, uint8_t *vh) {
    for (;;) {
      if (bad_) return Item::TooLong;
      const uint8_t *d = dec_.data();
      size_t n = dec_.pending();
      uint32_t l;
      if (n >= 2 && be16(d) > dec_.maxFrame()) {
        bad_ = true;
        return Item::TooLong;
      }
      if (!record(d, n, &l)) return Item::NeedMore;
      if (l == 0) {
        dec_.consume(2);
        continue;
      }
      uint8_t kind = d[2];
      if (kind == CABLE_SEG_MORE && discard_) {  // the rest of a frame that was given up
        uint32_t chunk = l - 1;
        discard_ = chunk < discard_ ? discard_ - chunk : 0;
        dec_.consume(2 + l);
        continue;
      }
      discard_ = 0;
      if (kind == CABLE_SEG_PLAIN) {
        dec_.consume(2 + l);
        if (l - 1 < MIN_FRAME_BYTES) return Item::Runt;
        if (l - 1 > outCap) return Item::Bad;
        memcpy(out, d + 3, l - 1);
        *len = l - 1;
        return Item::Frame;
      }
      if (kind != CABLE_SEG_FIRST || l < CABLE_FIRST_HDR_BYTES) {  // unknown kind, orphan MORE, short FIRST
        dec_.consume(2 + l);
        return Item::Bad;
      }
      uint32_t total = be32(d + 2 + 1 + VNET_HDR_BYTES);
      uint32_t got = l - CABLE_FIRST_HDR_BYTES;
      if (total < MIN_FRAME_BYTES || total > outCap || got > total) {
        dec_.consume(2 + l);
        discard_ = total > got ? total - got : 0;
        return total < MIN_FRAME_BYTES && got <= total ? Item::Runt : Item::Bad;
      }
      // find the frame's MORE records; gather only once all are here
      size_t pos = 2 + l;
      while (got < total) {
        uint32_t rl;
        if (pos >= CABLE_GATHER_MAX_BYTES) {  // a frame in records of a few bytes each: give it up
          dec_.consume(pos);
          discard_ = total - got;
          return Item::Bad;
        }
        if (n - pos >= 2 && be16(d + pos) > dec_.maxFrame()) {
          dec_.consume(pos);  // the next record breaks the stream: drop the frame, then stop
          return Item::Bad;
        }
        if (!record(d + pos, n - pos, &rl)) return Item::NeedMore;
        if (rl == 0) {
          pos += 2;
          continue;
        }
        if (d[pos + 2] != CABLE_SEG_MORE) {  // cut short by another record: drop, read that record next
          dec_.consume(pos);
          return Item::Bad;
        }
        if (got + (rl - 1) > total) {
          dec_.consume(pos + 2 + rl);
          return Item::Bad;
        }
        got += rl - 1;
        pos += 2 + rl;
      }
      // gather: the first chunk, then every MORE chunk, skipping zero-length records
      memcpy(vh, d + 3, VNET_HDR_BYTES);
      uint32_t o = l - CABLE_FIRST_HDR_BYTES;
      memcpy(out, d + 2 + CABLE_FIRST_HDR_BYTES, o);
      for (size_t q = 2 + l; q < pos;) {
        uint32_t rl = be16(d + q);
        if (rl) {
          memcpy(out + o, d + q + 3, rl - 1);
          o += rl - 1;
        }
        q += 2 + rl;
      }
      dec_.consume(pos);
      *len = total;
      return Item::SegFrame;
    }
  }

  StreamDecoder dec_;
  bool negotiate_;
  bool seg_ = false;
  bool bad_ = false;
  uint32_t discard_ = 0;  // bytes of a given-up frame whose MORE records are still to be skipped
};

}  // namespace vde
