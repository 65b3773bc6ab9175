// Offload negotiation on VDE cables: how two vde-ts ends of a 2-byte length stream (dpipe and
// stdio, ssh, cmd://, stream://...[framing=2]) agree in-band to carry 64 KiB segments with a
// virtio-net header, while any other peer sees nothing but today's format.
//
// The messages ride in the 2-byte framing every VDE stream tool already parses: CABLE_ZEROS
// zero-length records (a no-op for vde2 and vdeplug4) followed by one 12-byte record, a runt
// that every switch drops (frames shorter than an Ethernet header). A relay that parses the
// framing (Debian's wirefilter, a vde_plug) swallows the zero-length records, so a message only
// counts when its preamble arrives intact: two vde-ts ends never mistake a Debian relay between
// them for a direct link. ssh, socat and pipes carry the bytes unchanged, so ends joined by them
// do agree.
//
//   HELLO  each end sends one first thing on the stream: "I can decode the segment format".
//   GO     an end that sent its HELLO and received the peer's sends GO and, from the byte after
//          it, writes the segment format. The receiver switches its decoder at that byte.
//
// Each direction switches on its own, at a record boundary marked in-band, so nothing waits for
// a round trip and no byte is ever read in the wrong format. The segment format: a 4-byte
// big-endian length, then a 10-byte virtio-net header (offload.h), then the frame; the length
// counts header and frame. A zero length is a no-op, as before.
//
// Message record (12 bytes): "vde-ts", version, type (1 HELLO, 2 GO), flags (bit 0: virtio-net
// header format), 3 reserved bytes (0). HELLO's version is the highest the sender speaks; GO's
// is the format it switches to (only 1 exists).
//
// Pure: no system calls, no allocation after construction. native/fuzz/cable_decoder.cc drives it.
#pragma once

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
constexpr uint8_t CABLE_F_VNET = 1;
constexpr uint8_t CABLE_SEG_LEN_BYTES = 4;       // length field of the segment format
/** Largest record of the segment format: virtio-net header + a frame as large as a batch slot. */
constexpr uint32_t CABLE_MAX_SEG_RECORD_BYTES = uint32_t(VNET_HDR_BYTES) + SLOT_BYTES;
static const uint8_t CABLE_MAGIC[6] = {'v', 'd', 'e', '-', 't', 's'};

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

/** Writes the segment format's prefix of a frame: 4-byte length and the virtio-net header (14 bytes). */
inline size_t cableEncodeSegPrefix(const VnetHdr *h, int delta, uint32_t frameLen, uint8_t *out) {
  uint32_t l = uint32_t(VNET_HDR_BYTES) + frameLen;
  out[0] = uint8_t(l >> 24);
  out[1] = uint8_t(l >> 16);
  out[2] = uint8_t(l >> 8);
  out[3] = uint8_t(l);
  if (h) vnetEncode(*h, delta, out + CABLE_SEG_LEN_BYTES);
  else memset(out + CABLE_SEG_LEN_BYTES, 0, VNET_HDR_BYTES);
  return CABLE_SEG_LEN_BYTES + VNET_HDR_BYTES;
}

/** Decodes a cable: the legacy 2-byte framing with messages, then (after a GO) the segment format. */
class CableDecoder {
 public:
  /** What next() found. */
  enum class Item : uint8_t { Frame, SegFrame, Runt, Hello, Go, NeedMore, TooLong };

  /**
   * hdrBytes (2 or 4) and maxFrame: the framing the stream starts with; negotiate (2-byte framing
   * only): recognise messages and switch on GO (otherwise runts stay runts and nothing switches).
   */
  CableDecoder(uint8_t hdrBytes, uint32_t maxFrame, bool negotiate)
      : dec_(hdrBytes, maxFrame, negotiate && hdrBytes == 2 ? CABLE_MAX_SEG_RECORD_BYTES : 0), negotiate_(negotiate && hdrBytes == 2) {}

  /** Where the next read may write (see StreamDecoder::space). */
  uint8_t *space(size_t *room) { return dec_.space(room); }
  /** Records that n bytes were written at space(). */
  void commit(size_t n) { dec_.commit(n); }
  /** Bytes of an unfinished record. */
  size_t pending() const { return dec_.pending(); }
  /** True once the peer's GO switched this direction to the segment format. */
  bool segments() const { return seg_; }

  /**
   * The next item. Frame: a legacy frame in f/len. SegFrame: a frame of the segment format in
   * f/len with its virtio-net header (not validated yet) in vh. Runt: a record too short for
   * a frame (or an unknown message). Hello: the peer can decode the segment format. Go: from
   * here on the peer writes it (the decoder switched). NeedMore, TooLong: as StreamDecoder.
   */
  Item next(const uint8_t **f, uint32_t *len, const uint8_t **vh) {
    for (;;) {
      const uint8_t *p = nullptr;
      uint32_t l = 0;
      uint32_t minRecord = seg_ ? uint32_t(VNET_HDR_BYTES) + MIN_FRAME_BYTES : MIN_FRAME_BYTES;
      StreamDecoder::Next r = dec_.next(&p, &l, minRecord);
      if (r == StreamDecoder::Next::NeedMore) return Item::NeedMore;
      if (r == StreamDecoder::Next::TooLong) return Item::TooLong;
      if (r == StreamDecoder::Next::Runt) {
        if (!seg_ && negotiate_) {
          uint8_t type = message(p, l, dec_.zerosBefore());
          if (type == CABLE_HELLO) return Item::Hello;
          if (type == CABLE_GO) {
            seg_ = true;
            dec_.switchFraming(CABLE_SEG_LEN_BYTES, CABLE_MAX_SEG_RECORD_BYTES);
            return Item::Go;
          }
        }
        return Item::Runt;
      }
      if (!seg_) {
        *f = p;
        *len = l;
        return Item::Frame;
      }
      *vh = p;
      *f = p + VNET_HDR_BYTES;
      *len = l - uint32_t(VNET_HDR_BYTES);
      return Item::SegFrame;
    }
  }

  /** The message type of a runt (CABLE_HELLO, CABLE_GO), or 0 when it is none we act on. */
  static uint8_t message(const uint8_t *p, uint32_t len, uint32_t zerosBefore) {
    if (len != CABLE_MSG_BYTES || zerosBefore < CABLE_ZEROS) return 0;
    if (memcmp(p, CABLE_MAGIC, sizeof CABLE_MAGIC) != 0) return 0;
    uint8_t ver = p[6], type = p[7], flags = p[8];
    if (!(flags & CABLE_F_VNET)) return 0;
    if (type == CABLE_HELLO && ver >= CABLE_VERSION) return CABLE_HELLO;
    if (type == CABLE_GO && ver == CABLE_VERSION) return CABLE_GO;
    return 0;
  }

 private:
  StreamDecoder dec_;
  bool negotiate_;
  bool seg_ = false;
};

}  // namespace vde
