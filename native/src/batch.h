// The receive batch and the frame views every part of the frame path uses.
//
// A Batch is a slab of RX_BATCH_FRAMES slots, each large enough for the biggest frame any kind
// accepts, plus per-frame metadata (length, classified VLAN, whether it arrived tagged, the
// virtio-net header of an offload frame). It is allocated once per engine and reused for every
// wakeup. Packet is a bounds-checked read view of one frame: stages and policies read header
// fields through it and never index raw bytes unchecked. OutFrame describes a frame on its way
// out of a port: the bytes in the slab plus the 802.1Q edit (insert or strip a tag) that the
// destination needs, expressed as iovecs, never as a copy.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "offload.h"

namespace vde {

constexpr uint32_t MIN_FRAME_BYTES = 14;
constexpr uint32_t MAX_VDE_FRAME_BYTES = 9234;      // 9216 MTU + 14 header + 4 tag
constexpr uint32_t MAX_STREAM_FRAME_BYTES = 65536;  // QEMU stream / tap limit we accept
constexpr uint32_t SLOT_BYTES = MAX_STREAM_FRAME_BYTES + 64;
constexpr int RX_BATCH_FRAMES = 64;
constexpr uint16_t VLAN_NONE = 4095;
constexpr int VLAN_COUNT = 4096;
constexpr uint32_t ETH_ADDR_BYTES = 6;
constexpr uint32_t ETH_HEADER_BYTES = 14;
constexpr uint32_t VLAN_TAG_BYTES = 4;

/** Frame flags in FrameMeta. */
constexpr uint8_t FM_TAGGED_IN = 1;  // arrived with an 802.1Q tag of its classified VLAN
constexpr uint8_t FM_VNET = 2;       // carries a non-trivial virtio-net header (GSO / partial checksum)

/** What the engine knows about one frame of a batch. */
struct FrameMeta {
  uint32_t len = 0;
  uint16_t vlan = 0;
  uint8_t flags = 0;
  uint8_t tag[VLAN_TAG_BYTES] = {0x81, 0x00, 0, 0};  // the tag to insert for form TAG_INSERT
  VnetHdr vnet;                                      // with FM_VNET
};

/** How a frame leaves a port relative to how it arrived. */
enum : uint8_t { FORM_ASIS = 0, FORM_TAG_INSERT = 1, FORM_TAG_STRIP = 2 };

/** A bounds-checked read view of a frame. */
class Packet {
 public:
  Packet(const uint8_t *p, uint32_t len) : p_(p), len_(len) {}
  /** Frame length. */
  uint32_t len() const { return len_; }
  /** True when bytes [off, off+n) exist. */
  bool has(uint32_t off, uint32_t n) const { return off <= len_ && n <= len_ - off; }
  /** Pointer to n bytes at off, or nullptr when they do not exist. */
  const uint8_t *ptr(uint32_t off, uint32_t n) const { return has(off, n) ? p_ + off : nullptr; }
  /** Byte at off, or dflt outside the frame. */
  uint8_t u8(uint32_t off, uint8_t dflt = 0) const { return off < len_ ? p_[off] : dflt; }
  /** Big-endian 16-bit field at off, or dflt outside the frame. */
  uint16_t be16(uint32_t off, uint16_t dflt = 0) const { return has(off, 2) ? uint16_t(p_[off] << 8 | p_[off + 1]) : dflt; }
  /** Big-endian 32-bit field at off, or dflt outside the frame. */
  uint32_t be32(uint32_t off, uint32_t dflt = 0) const {
    return has(off, 4) ? uint32_t(p_[off]) << 24 | uint32_t(p_[off + 1]) << 16 | uint32_t(p_[off + 2]) << 8 | p_[off + 3] : dflt;
  }
  /** Copies n bytes at off into out; false (out untouched) when they do not exist. */
  bool read(uint32_t off, void *out, uint32_t n) const {
    if (!has(off, n)) return false;
    memcpy(out, p_ + off, n);
    return true;
  }
  /** Destination MAC (the frame has at least MIN_FRAME_BYTES; callers check before building views). */
  const uint8_t *dst() const { return p_; }
  /** Source MAC. */
  const uint8_t *src() const { return p_ + ETH_ADDR_BYTES; }
  /** True for a group (broadcast or multicast) destination. */
  bool groupDst() const { return len_ >= 1 && (p_[0] & 1); }

 private:
  const uint8_t *p_;
  uint32_t len_;
};

/** The reusable receive slab and metadata of one engine. */
struct Batch {
  std::unique_ptr<uint8_t[]> slab{new uint8_t[size_t(RX_BATCH_FRAMES) * SLOT_BYTES]};
  FrameMeta meta[RX_BATCH_FRAMES];
  int count = 0;
  // recvmmsg headers pointing at the slots, built once (kinds set the iovec lengths)
  struct mmsghdr msgs[RX_BATCH_FRAMES];
  struct iovec iovs[RX_BATCH_FRAMES];
  // the same for datagrams that start with a prefix (a virtio-net header, or a UDP cable's segment
  // prefix): prefix i lands in vhdr[i] (kinds set its length), the frame in slot i
  static constexpr size_t PREFIX_SCRATCH_BYTES = 24;
  uint8_t vhdr[RX_BATCH_FRAMES][PREFIX_SCRATCH_BYTES];
  struct mmsghdr vmsgs[RX_BATCH_FRAMES];
  struct iovec viovs[RX_BATCH_FRAMES][2];

  Batch() {
    memset(msgs, 0, sizeof msgs);
    memset(vmsgs, 0, sizeof vmsgs);
    for (int i = 0; i < RX_BATCH_FRAMES; i++) {
      iovs[i] = {frame(i), SLOT_BYTES};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      viovs[i][0] = {vhdr[i], VNET_HDR_BYTES};
      viovs[i][1] = {frame(i), SLOT_BYTES};
      vmsgs[i].msg_hdr.msg_iov = viovs[i];
      vmsgs[i].msg_hdr.msg_iovlen = 2;
    }
  }
  Batch(const Batch &) = delete;
  Batch &operator=(const Batch &) = delete;

  /** The bytes of slot i. */
  uint8_t *frame(int i) { return slab.get() + size_t(i) * SLOT_BYTES; }
  /** A checked view of frame i. */
  Packet packet(int i) { return Packet(frame(i), meta[i].len); }
  /** Starts a new batch. */
  void clear() { count = 0; }
  /** Room for more frames. */
  bool full() const { return count >= RX_BATCH_FRAMES; }
  /** The next free slot; the caller fills it and calls commit(len). */
  uint8_t *next() { return frame(count); }
  /** Keeps the frame written into next() with length len (plain, no offload header). */
  void commit(uint32_t len) {
    FrameMeta &m = meta[count++];
    m.len = len;
    m.flags = 0;
  }
};

/** A frame on its way out: bytes, 802.1Q edit and (for offload frames) the virtio-net header. */
struct OutFrame {
  const uint8_t *data = nullptr;
  uint32_t len = 0;
  uint8_t form = FORM_ASIS;
  const uint8_t *tag = nullptr;   // 4 bytes for FORM_TAG_INSERT
  const VnetHdr *vnet = nullptr;  // non-null: GSO / partial-checksum frame

  /** Length on the wire (after the tag edit). */
  uint32_t wireLen() const { return form == FORM_TAG_INSERT ? len + VLAN_TAG_BYTES : form == FORM_TAG_STRIP ? len - VLAN_TAG_BYTES : len; }
  /** The tag edit's shift of header offsets (+4, -4 or 0). */
  int delta() const { return form == FORM_TAG_INSERT ? int(VLAN_TAG_BYTES) : form == FORM_TAG_STRIP ? -int(VLAN_TAG_BYTES) : 0; }
  /** The frame as 1-3 iovecs with the tag edit applied; returns the count. */
  int parts(struct iovec *iov) const {
    uint8_t *f = const_cast<uint8_t *>(data);
    if (form == FORM_TAG_INSERT) {
      iov[0] = {f, 2 * ETH_ADDR_BYTES};
      iov[1] = {const_cast<uint8_t *>(tag), VLAN_TAG_BYTES};
      iov[2] = {f + 2 * ETH_ADDR_BYTES, len - 2 * ETH_ADDR_BYTES};
      return 3;
    }
    if (form == FORM_TAG_STRIP) {
      iov[0] = {f, 2 * ETH_ADDR_BYTES};
      iov[1] = {f + 2 * ETH_ADDR_BYTES + VLAN_TAG_BYTES, len - 2 * ETH_ADDR_BYTES - VLAN_TAG_BYTES};
      return 2;
    }
    iov[0] = {f, len};
    return 1;
  }
};

/** iovecs of a frame with a prefix: the prefix and the frame's 3 parts at most. */
constexpr int PREFIX_WIRE_IOV = 4;
/**
 * Most iovecs and prefix bytes a kind's wire form of one frame may use: a cable's segment format
 * (cable.h) cuts a 64 KiB frame into records, each with its own prefix. Callers of a kind's
 * wire() size their buffers with these; a kind that only calls its own wire() may use less.
 */
constexpr int MAX_WIRE_IOV = 100;
constexpr size_t MAX_WIRE_PRE_BYTES = 160;

}  // namespace vde
