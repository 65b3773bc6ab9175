// The vhost-user wire protocol as the switch's back-end speaks it (QEMU docs/interop/
// vhost-user.rst): request numbers, flag bits, the virtio-net and vhost feature bits we offer,
// and the pure checks of a message's payload, kept apart from the socket code so that they can
// be fuzzed. A message is a 12-byte header (u32 request, u32 flags, u32 size; native byte order)
// and `size` payload bytes; file descriptors travel beside it as SCM_RIGHTS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vhost_ring.h"

namespace vde {

constexpr size_t VHOST_HDR_BYTES = 12;
/** Largest payload accepted (the biggest message we handle, a memory table, has 264 bytes). */
constexpr uint32_t VHOST_MAX_PAYLOAD_BYTES = 4096;
/** Most file descriptors one message may carry. */
constexpr int VHOST_MAX_FDS = 8;

// header flags
constexpr uint32_t VHOST_VERSION = 0x1;
constexpr uint32_t VHOST_VERSION_MASK = 0x3;
constexpr uint32_t VHOST_FLAG_REPLY = 0x4;
constexpr uint32_t VHOST_FLAG_NEED_REPLY = 0x8;

// requests (front-end to back-end)
enum VhostRequest : uint32_t {
  VHOST_USER_GET_FEATURES = 1,
  VHOST_USER_SET_FEATURES = 2,
  VHOST_USER_SET_OWNER = 3,
  VHOST_USER_RESET_OWNER = 4,
  VHOST_USER_SET_MEM_TABLE = 5,
  VHOST_USER_SET_LOG_BASE = 6,
  VHOST_USER_SET_LOG_FD = 7,
  VHOST_USER_SET_VRING_NUM = 8,
  VHOST_USER_SET_VRING_ADDR = 9,
  VHOST_USER_SET_VRING_BASE = 10,
  VHOST_USER_GET_VRING_BASE = 11,
  VHOST_USER_SET_VRING_KICK = 12,
  VHOST_USER_SET_VRING_CALL = 13,
  VHOST_USER_SET_VRING_ERR = 14,
  VHOST_USER_GET_PROTOCOL_FEATURES = 15,
  VHOST_USER_SET_PROTOCOL_FEATURES = 16,
  VHOST_USER_GET_QUEUE_NUM = 17,
  VHOST_USER_SET_VRING_ENABLE = 18,
};

// u64 payload of SET_VRING_KICK/CALL/ERR: the ring index in bits 0-7, "no fd" in bit 8
constexpr uint64_t VHOST_VRING_IDX_MASK = 0xff;
constexpr uint64_t VHOST_VRING_NOFD = 0x100;

// feature bits (virtio-net, virtio transport, vhost-user)
constexpr int VIRTIO_NET_F_CSUM = 0;
constexpr int VIRTIO_NET_F_GUEST_CSUM = 1;
constexpr int VIRTIO_NET_F_GUEST_TSO4 = 7;
constexpr int VIRTIO_NET_F_GUEST_TSO6 = 8;
constexpr int VIRTIO_NET_F_GUEST_ECN = 9;
constexpr int VIRTIO_NET_F_HOST_TSO4 = 11;
constexpr int VIRTIO_NET_F_HOST_TSO6 = 12;
constexpr int VIRTIO_NET_F_HOST_ECN = 13;
constexpr int VIRTIO_NET_F_MRG_RXBUF = 15;
constexpr int VIRTIO_F_ANY_LAYOUT = 27;
constexpr int VIRTIO_RING_F_INDIRECT_DESC = 28;
constexpr int VIRTIO_RING_F_EVENT_IDX = 29;
constexpr int VHOST_USER_F_PROTOCOL_FEATURES = 30;
constexpr int VIRTIO_F_VERSION_1 = 32;

constexpr int VHOST_USER_PROTOCOL_F_MQ = 0;
constexpr int VHOST_USER_PROTOCOL_F_REPLY_ACK = 3;

/** Bit n of a feature word. */
constexpr uint64_t bit(int n) { return uint64_t(1) << n; }

/** The device features the back-end offers: offloads both ways, mergeable buffers, indirect descriptors, event indexes, virtio 1. */
constexpr uint64_t VHOST_NET_FEATURES = bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4) |
                                        bit(VIRTIO_NET_F_GUEST_TSO6) | bit(VIRTIO_NET_F_GUEST_ECN) | bit(VIRTIO_NET_F_HOST_TSO4) |
                                        bit(VIRTIO_NET_F_HOST_TSO6) | bit(VIRTIO_NET_F_HOST_ECN) | bit(VIRTIO_NET_F_MRG_RXBUF) |
                                        bit(VIRTIO_F_ANY_LAYOUT) | bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX) |
                                        bit(VHOST_USER_F_PROTOCOL_FEATURES) | bit(VIRTIO_F_VERSION_1);
/** The protocol features offered: one queue pair announced (MQ), acknowledgements (REPLY_ACK). */
constexpr uint64_t VHOST_PROTOCOL_FEATURES = bit(VHOST_USER_PROTOCOL_F_MQ) | bit(VHOST_USER_PROTOCOL_F_REPLY_ACK);
/** Queue pairs announced by GET_QUEUE_NUM. */
constexpr uint64_t VHOST_QUEUE_PAIRS = 1;
/** Virtqueues of one pair: 0 receive (the device writes), 1 transmit (the device reads). */
constexpr int VHOST_NUM_QUEUES = 2;
constexpr int VHOST_RXQ = 0;
constexpr int VHOST_TXQ = 1;

/** The header of a message. */
struct VhostHdr {
  uint32_t request = 0, flags = 0, size = 0;
};

/** Decodes the 12 header bytes. */
inline VhostHdr vhostDecodeHdr(const uint8_t *b) {
  VhostHdr h;
  memcpy(&h.request, b, 4);
  memcpy(&h.flags, b + 4, 4);
  memcpy(&h.size, b + 8, 4);
  return h;
}

/** Checks a header before its payload is read: version 1, no reply bit, a payload that fits; null when fine, else why. */
inline const char *vhostCheckHdr(const VhostHdr &h) {
  if ((h.flags & VHOST_VERSION_MASK) != VHOST_VERSION) return "unknown protocol version";
  if (h.flags & VHOST_FLAG_REPLY) return "a request carries the reply flag";
  if (h.size > VHOST_MAX_PAYLOAD_BYTES) return "a message is too long";
  return nullptr;
}

/** Payload bytes a request must have (0 when it has none or any size is accepted). */
inline uint32_t vhostPayloadBytes(uint32_t request) {
  switch (request) {
    case VHOST_USER_SET_FEATURES:
    case VHOST_USER_SET_PROTOCOL_FEATURES:
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
      return 8;  // u64
    case VHOST_USER_SET_VRING_NUM:
    case VHOST_USER_SET_VRING_BASE:
    case VHOST_USER_GET_VRING_BASE:
    case VHOST_USER_SET_VRING_ENABLE:
      return 8;  // struct vhost_vring_state: u32 index, u32 num
    case VHOST_USER_SET_VRING_ADDR:
      return 40;  // u32 index, u32 flags, u64 desc, u64 used, u64 avail, u64 log
    case VHOST_USER_SET_MEM_TABLE:
      return 8;  // at least u32 nregions, u32 padding
    default:
      return 0;
  }
}

/** One region of a memory table as the message carries it. */
struct VhostRegionMsg {
  uint64_t gpa, size, uva, mmapOffset;
};

/** Bytes of one region in the memory table. */
constexpr uint32_t VHOST_REGION_BYTES = 32;

/**
 * Decodes a memory table (payload of SET_MEM_TABLE) that came with nfds descriptors: 1..8
 * regions, one fd each, no size 0, no address range that wraps around, and mmap offset + size
 * that fits in 64 bits. Returns the region count, or -1 with *why set.
 */
inline int vhostDecodeMemTable(const uint8_t *p, uint32_t size, int nfds, VhostRegionMsg *out, const char **why) {
  if (size < 8) {
    *why = "a memory table is too short";
    return -1;
  }
  uint32_t n;
  memcpy(&n, p, 4);
  if (n == 0 || n > uint32_t(VHOST_MAX_REGIONS)) {
    *why = "a memory table has no or too many regions";
    return -1;
  }
  if (size < 8 + n * VHOST_REGION_BYTES) {
    *why = "a memory table is shorter than its regions";
    return -1;
  }
  if (nfds != int(n)) {
    *why = "a memory table does not come with one descriptor per region";
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *r = p + 8 + i * VHOST_REGION_BYTES;
    VhostRegionMsg m;
    memcpy(&m.gpa, r, 8);
    memcpy(&m.size, r + 8, 8);
    memcpy(&m.uva, r + 16, 8);
    memcpy(&m.mmapOffset, r + 24, 8);
    if (m.size == 0 || m.gpa + m.size < m.gpa || m.uva + m.size < m.uva || m.mmapOffset + m.size < m.mmapOffset) {
      *why = "a memory region has a bad size or wraps around";
      return -1;
    }
    out[i] = m;
  }
  return int(n);
}

}  // namespace vde
