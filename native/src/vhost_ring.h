// Guest memory and split virtqueues as a vhost-user back-end sees them: the pure part of the
// vhost-user kind (kinds/vhost_user.cc), with no system call, so that it can be fuzzed.
//
// GuestMemory is the table of regions QEMU shares (VHOST_USER_SET_MEM_TABLE): each region is a
// range of guest-physical addresses (what descriptors hold), a range of QEMU's virtual addresses
// (what ring addresses are given in) and where its bytes are mapped here. Every translation
// checks that the whole range lies inside one region, with overflow-safe arithmetic; nothing
// outside the mapped regions is ever read or written.
//
// Vring is one split virtqueue (virtio 1.x, 2.7) driven from the device side. The guest owns the
// memory and may change any byte at any time, so every index and descriptor is read once into a
// local copy and checked before use: heads and `next` indexes against the queue size, the
// available index against the ring size, descriptor chains against loops (at most as many
// descriptors as the table has), indirect tables (one level, as the spec allows, whole inside
// guest memory, a multiple of 16 bytes), the direction of every buffer (a TX chain only
// device-readable, an RX chain only device-writable) and every buffer against guest memory.
// A malformed ring is marked broken and never touched again until it is set up anew: the guest
// cannot make the switch loop, read or write outside its memory. Buffers are completed in order,
// so the used index always equals the last available index taken.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vde {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio rings are little-endian; this code reads them natively");

/** Most memory regions of VHOST_USER_SET_MEM_TABLE (VHOST_MEMORY_BASELINE_NREGIONS). */
constexpr int VHOST_MAX_REGIONS = 8;
/** Largest split virtqueue (virtio 1.x: Queue Size ≤ 32768, a power of 2). */
constexpr uint32_t VRING_MAX_ENTRIES = 32768;
/** Bytes of one descriptor (le64 addr, le32 len, le16 flags, le16 next). */
constexpr uint32_t VRING_DESC_BYTES = 16;

constexpr uint16_t VRING_DESC_F_NEXT = 1;
constexpr uint16_t VRING_DESC_F_WRITE = 2;
constexpr uint16_t VRING_DESC_F_INDIRECT = 4;
constexpr uint16_t VRING_USED_F_NO_NOTIFY = 1;
constexpr uint16_t VRING_AVAIL_F_NO_INTERRUPT = 1;

/** One region of guest memory and where it is mapped here. */
struct GuestRegion {
  uint64_t gpa = 0;  // first guest-physical address
  uint64_t uva = 0;  // the same byte in QEMU's address space
  uint64_t size = 0;
  uint8_t *host = nullptr;
};

/** The regions QEMU shares; every translation is bounds-checked. */
class GuestMemory {
 public:
  /** Adds a region; false when the table is full, the size is 0 or an address range wraps around. */
  bool add(uint64_t gpa, uint64_t uva, uint64_t size, uint8_t *host);
  /** Forgets every region (the caller unmaps them). */
  void clear() { n_ = 0; }
  /** Number of regions. */
  int count() const { return n_; }
  /** Region i (0 ≤ i < count()). */
  const GuestRegion &region(int i) const { return r_[i]; }
  /** Host address of [uva, uva+len) when the whole range lies in one region, else null. */
  uint8_t *uvaRange(uint64_t uva, uint64_t len) const;
  /** Host address of [gpa, gpa+len) when the whole range lies in one region, else null. */
  uint8_t *gpaRange(uint64_t gpa, uint64_t len) const;
  /** Host address of gpa and, in *contig, the bytes that follow it in the same region; null when unmapped. */
  uint8_t *gpaPtr(uint64_t gpa, uint64_t *contig) const;

 private:
  GuestRegion r_[VHOST_MAX_REGIONS];
  int n_ = 0;
};

/** QEMU's virtual addresses of a ring's three parts (VHOST_USER_SET_VRING_ADDR). */
struct VringAddrs {
  uint64_t descUva = 0, availUva = 0, usedUva = 0;
};

/** Outcome of taking one frame from a ring the device reads (guest transmit). */
enum class TakeResult : uint8_t { Frame, Runt, Oversize, Empty, Broken };
/** Outcome of putting one frame into a ring the device writes (guest receive). */
enum class PutResult : uint8_t { Ok, NoRoom, TooBig, Broken };

/** One split virtqueue, device side (see the file comment). */
class Vring {
 public:
  /**
   * Maps the ring through mem and starts it at index base: num must be a power of two ≤
   * VRING_MAX_ENTRIES, every part must lie inside one region and be aligned (desc 16, avail 2,
   * used 4). eventIdx (VIRTIO_RING_F_EVENT_IDX) adds the two event-index words to the sizes
   * checked and makes notifications use them instead of the flags. Returns null on success,
   * else the reason (the ring stays stopped).
   */
  const char *start(const GuestMemory &mem, uint32_t num, const VringAddrs &a, uint16_t base, bool indirect, bool eventIdx);
  /** Stops the ring (nothing is touched until the next start). */
  void stop() { started_ = false; }
  /** True between start() and stop() and while not broken. */
  bool running() const { return started_ && !broken_; }
  /** True once a malformed ring was seen (reset by start()). */
  bool broken() const { return broken_; }
  /** Why the ring broke (static text). */
  const char *why() const { return why_; }
  /** The next available index the device will take (VHOST_USER_GET_VRING_BASE). */
  uint16_t lastAvail() const { return lastAvail_; }
  /** The guest's available index as last read (re-read only once everything up to it was taken); for the fuzz model. */
  uint16_t availSeen() const { return availIdx_; }

  /**
   * Takes one chain from the available ring: its first hdrBytes bytes go to hdr, the rest (up to
   * maxBytes) to out, *len gets the frame length. The chain is returned to the used ring at once
   * (length 0: the device wrote nothing). Runt: shorter than the header; Oversize: longer than
   * maxBytes (nothing usable in out); Empty: nothing available; Broken: see why().
   */
  TakeResult take(uint8_t *hdr, uint32_t hdrBytes, uint8_t *out, uint32_t maxBytes, uint32_t *len);

  /**
   * Writes one frame (the gather list iov, total bytes) into guest buffers: one chain, or with
   * mergeable as many chains as needed, writing their count as the 16-bit num_buffers at byte
   * offset 10 of the frame when numBuffersField. NoRoom: not enough buffers are available
   * (nothing was consumed); TooBig: it can never fit (nothing consumed, drop it).
   */
  PutResult put(const struct iovec *iov, int iovcnt, uint64_t total, bool mergeable, bool numBuffersField);

  /** Publishes the used index after take()/put() calls; true when the guest wants an interrupt (its flag, or its used_event index crossed). */
  bool publish();
  /**
   * Asks the guest for kicks (on) or not (off): the used ring's flag, or with event indexes the
   * avail_event word (set to the last available index seen; off leaves it behind). With on,
   * returns true when the guest made buffers available since the last look (re-read after the
   * request, so that none is missed).
   */
  bool notify(bool on);
  /** True when the guest has made buffers available that the device has not taken. */
  bool hasAvail();

 private:
  bool fail(const char *why) {
    broken_ = true;
    why_ = why;
    return false;
  }
  bool refreshAvail();
  uint16_t *availEvent() const;
  uint16_t headAt(uint16_t idx) const;
  void writeUsed(uint16_t id, uint32_t len);

  const GuestMemory *mem_ = nullptr;
  uint8_t *desc_ = nullptr, *avail_ = nullptr, *used_ = nullptr;
  uint32_t num_ = 0;
  uint16_t lastAvail_ = 0, usedIdx_ = 0, availIdx_ = 0, published_ = 0, usedFlags_ = 0;
  bool indirect_ = false, eventIdx_ = false, started_ = false, broken_ = false;
  const char *why_ = "";
};

}  // namespace vde
