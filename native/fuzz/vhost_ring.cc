// Fuzz target: the device side of split virtqueues (native/src/vhost_ring.{h,cc}), what a
// vhost-user guest controls completely: descriptor tables, indirect tables, the available ring
// and every buffer address and length.
//
// fuzz-sources: ../src/vhost_ring.cc
// fuzz-args: -max_len=32000
//
// Input: a 16-byte header, then the image of guest memory. The header: byte 0 flags (1 indirect
// descriptors negotiated, 2 mergeable receive buffers, 4 12-byte header with num_buffers, 8 event
// indexes: VIRTIO_RING_F_EVENT_IDX); byte 1
// the queue size (1 << (b % 9), up to 256); bytes 2-3 the ring's start index; bytes 4-5 the
// transmit limit (maxBytes, 0..4095); bytes 6-13 eight operations; bytes 14-15 unused. Guest
// memory is five regions, each its own heap buffer of exactly its size (ASan reports any access
// outside one): the descriptor table, the available ring and the used ring (each exactly as large
// as the queue size makes it), and two data regions, contiguous in guest-physical addresses (a
// buffer may cross from one into the other) and followed by a gap. The rest of the input fills
// them in that order, zeros after.
// An operation is, by its low two bits: take() a frame (a transmit ring), put() a frame of
// (op >> 2) * 97 bytes (a receive ring), notify(op & 4), or hasAvail(); the last two break the
// ring only on an available index more than the queue size ahead.
//
// Invariants, besides "no access outside guest memory, no crash, no hang":
// - take() agrees with a reference model written from the virtio 1.x spec (2.7.5-2.7.7,
//   2.7.13) byte by byte: the same verdict (frame, runt, oversize, empty, broken), and for a
//   frame the same header and frame bytes. The model walks chains one byte at a time through its
//   own address translation, with the limits the back-end promises: a head or next index below
//   the queue size, at most queue-size (or table-size) descriptors per chain, one level of
//   indirection only where negotiated and never with NEXT, only device-readable buffers, at most
//   1024 descriptors per frame (then: oversize), and an available index at most queue size ahead
//   (re-read, like the back-end does, only once all buffers up to the last value seen were taken).
// - put() consumes at least one chain when it succeeds, exactly one without mergeable buffers,
//   never more than the queue size, and nothing when it fails.
// - After a publish() that follows a take or put, the used index in guest memory equals
//   lastAvail() (in-order completion), and publish() asks for an interrupt exactly as the spec
//   says (2.7.7 / 2.7.10: the avail flags, or used_event crossed).
// - A broken ring stays broken and takes or puts nothing.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../src/vhost_ring.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

constexpr size_t HEADER_BYTES = 16;
constexpr uint32_t R0_BYTES = 16384, R1_BYTES = 8192;
constexpr uint64_t R0_GPA = 0x100000, R1_GPA = R0_GPA + R0_BYTES;
constexpr uint64_t DESC_GPA = 0x200000, AVAIL_GPA = 0x300000, USED_GPA = 0x400000;
/** QEMU's addresses are the guest's plus this. */
constexpr uint64_t UVA_OFFSET = 0x7f0000000000ull;
/** Descriptors one frame may use (the back-end's VRING_MAX_FRAME_DESCS). */
constexpr uint32_t FRAME_DESCS = 1024;
constexpr uint32_t MAX_PUT_BYTES = 63 * 97 + 16;

struct Region {
  uint64_t gpa;
  uint8_t *p;
  uint32_t n;
};
constexpr int REGIONS = 5;

/** The reference model's view of guest memory: one byte at a guest-physical address, or false. */
bool gpaByte(const Region *r, uint64_t a, uint8_t *out) {
  for (int i = 0; i < REGIONS; i++)
    if (a >= r[i].gpa && a < r[i].gpa + r[i].n) {
      *out = r[i].p[a - r[i].gpa];
      return true;
    }
  return false;
}

uint16_t rd16(const uint8_t *p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t rd32(const uint8_t *p) { return uint32_t(rd16(p)) | uint32_t(rd16(p + 2)) << 16; }
uint64_t rd64(const uint8_t *p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

/** What the model expects of take(). */
struct Expect {
  TakeResult r = TakeResult::Empty;
  std::vector<uint8_t> bytes;  // header + frame for a Frame
};

/** The reference model of take() (see the file comment); desc and avail are the ring's parts. */
Expect modelTake(const Region *rg, const uint8_t *desc, const uint8_t *avail, uint32_t num, uint16_t last, uint16_t seen0, bool indirectOk,
                 uint32_t hdrBytes, uint32_t maxBytes) {
  Expect e;
  // the available index is read again only when everything up to the last value read was taken
  if (last == seen0) {
    uint16_t ai = rd16(avail + 2);
    if (uint16_t(ai - last) > num) return e.r = TakeResult::Broken, e;
    if (ai == last) return e.r = TakeResult::Empty, e;
  }
  uint16_t head = rd16(avail + 4 + 2 * (last % num));
  if (head >= num) return e.r = TakeResult::Broken, e;
  // the current table: the ring's own (in host memory) or an indirect one (read through gpaByte)
  bool indirect = false;
  uint64_t tableGpa = 0;
  uint32_t tableN = num, seen = 0, used = 0, idx = head;
  uint64_t frameBytes = 0;
  for (;;) {
    if (used == FRAME_DESCS) return e.r = TakeResult::Oversize, e;
    used++;
    if (++seen > tableN) return e.r = TakeResult::Broken, e;
    uint8_t d[16];
    if (!indirect) {
      memcpy(d, desc + 16 * uint64_t(idx), 16);
    } else {
      for (int k = 0; k < 16; k++)
        if (!gpaByte(rg, tableGpa + 16 * uint64_t(idx) + k, &d[k])) return e.r = TakeResult::Broken, e;  // cannot happen: checked whole
    }
    uint64_t addr = rd64(d);
    uint32_t len = rd32(d + 8);
    uint16_t flags = rd16(d + 12), next = rd16(d + 14);
    if (flags & 4) {
      if (!indirectOk || indirect || (flags & 1)) return e.r = TakeResult::Broken, e;
      if (len == 0 || len % 16 || len / 16 > 32768) return e.r = TakeResult::Broken, e;
      // the whole table must lie in one region
      bool inOne = false;
      for (int i = 0; i < REGIONS; i++)
        if (addr >= rg[i].gpa && addr < rg[i].gpa + rg[i].n && len <= rg[i].gpa + rg[i].n - addr) inOne = true;
      if (!inOne) return e.r = TakeResult::Broken, e;
      indirect = true;
      tableGpa = addr;
      tableN = len / 16;
      seen = 0;
      idx = 0;
      continue;
    }
    if (flags & 2) return e.r = TakeResult::Broken, e;  // device-writable in a transmit chain
    for (uint64_t k = 0; k < len; k++) {
      uint8_t b;
      if (addr + k < addr || !gpaByte(rg, addr + k, &b)) return e.r = TakeResult::Broken, e;
      if (e.bytes.size() >= hdrBytes) {
        if (++frameBytes > maxBytes) return e.r = TakeResult::Oversize, e;
      }
      e.bytes.push_back(b);
    }
    if (!(flags & 1)) break;
    if (next >= tableN) return e.r = TakeResult::Broken, e;
    idx = next;
  }
  e.r = e.bytes.size() < hdrBytes ? TakeResult::Runt : TakeResult::Frame;
  return e;
}

}  // namespace

/** libFuzzer entry point: header + guest memory image. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HEADER_BYTES) return 0;
  const uint8_t flags = data[0];
  const uint32_t num = 1u << (data[1] % 9);
  const uint16_t base = uint16_t(data[2] | data[3] << 8);
  const uint32_t maxBytes = uint32_t(data[4] | data[5] << 8) % 4096;
  const uint8_t *ops = data + 6;
  const bool indirect = flags & 1, mergeable = flags & 2, nbField = flags & 4, eventIdx = flags & 8;
  const uint32_t ev = eventIdx ? 2 : 0;
  const uint32_t hdrBytes = nbField ? 12 : 10;

  // guest memory: desc, avail, used, then the two data regions, each exactly its size
  const uint32_t sizes[REGIONS] = {16 * num, 4 + 2 * num + ev, 4 + 8 * num + ev, R0_BYTES, R1_BYTES};
  const uint64_t gpas[REGIONS] = {DESC_GPA, AVAIL_GPA, USED_GPA, R0_GPA, R1_GPA};
  Region rg[REGIONS];
  GuestMemory mem;
  size_t off = HEADER_BYTES;
  for (int i = 0; i < REGIONS; i++) {
    uint8_t *p = static_cast<uint8_t *>(calloc(1, sizes[i]));
    size_t k = off < size ? std::min<size_t>(size - off, sizes[i]) : 0;
    if (k) memcpy(p, data + off, k);
    off += sizes[i];
    rg[i] = Region{gpas[i], p, sizes[i]};
    FUZZ_CHECK(mem.add(gpas[i], gpas[i] + UVA_OFFSET, sizes[i], p), "region %d refused", i);
  }
  uint8_t *desc = rg[0].p, *avail = rg[1].p, *used = rg[2].p;
  FUZZ_CHECK(!mem.gpaRange(R1_GPA + R1_BYTES - 1, 2) && !mem.uvaRange(DESC_GPA + UVA_OFFSET - 1, 2), "a range beyond a region translated");
  uint64_t contig = 1;
  FUZZ_CHECK(!mem.gpaPtr(R1_GPA + R1_BYTES, &contig) && contig == 0, "the gap translated");
  FUZZ_CHECK(mem.gpaPtr(R0_GPA + 10, &contig) == rg[3].p + 10 && contig == R0_BYTES - 10, "a data address translated wrongly");

  VringAddrs a{DESC_GPA + UVA_OFFSET, AVAIL_GPA + UVA_OFFSET, USED_GPA + UVA_OFFSET};
  Vring v;
  const char *why = v.start(mem, num, a, base, indirect, eventIdx);
  FUZZ_CHECK(why == nullptr, "start refused a valid ring: %s", why);
  // a ring that does not fit its region, misaligned, or of a bad size is refused
  Vring bad;
  if (!eventIdx) FUZZ_CHECK(bad.start(mem, num, a, 0, false, true) != nullptr, "event-index words beyond the rings were accepted");
  FUZZ_CHECK(bad.start(mem, num, VringAddrs{a.descUva + 16, a.availUva, a.usedUva}, 0, false, false) != nullptr, "a descriptor table beyond its region was accepted");
  FUZZ_CHECK(bad.start(mem, num, VringAddrs{R0_GPA + UVA_OFFSET + 1, a.availUva, a.usedUva}, 0, false, false) != nullptr, "a misaligned descriptor table was accepted");
  FUZZ_CHECK(bad.start(mem, 3, a, 0, false, false) != nullptr && bad.start(mem, 65536, a, 0, false, false) != nullptr, "a bad queue size was accepted");

  static uint8_t src[MAX_PUT_BYTES];
  for (uint32_t i = 0; i < MAX_PUT_BYTES; i++) src[i] = uint8_t(i * 7 + 1);
  uint8_t *hdr = static_cast<uint8_t *>(malloc(hdrBytes));
  uint8_t *out = static_cast<uint8_t *>(malloc(maxBytes ? maxBytes : 1));
  bool broken = false;

  for (int k = 0; k < 8; k++) {
    const uint8_t op = ops[k];
    const uint16_t before = v.lastAvail();
    switch (op & 3) {
      case 0: {
        Expect want = broken ? Expect{TakeResult::Broken, {}} : modelTake(rg, desc, avail, num, before, v.availSeen(), indirect, hdrBytes, maxBytes);
        uint32_t len = 0xdeadbeef;
        TakeResult r = v.take(hdr, hdrBytes, out, maxBytes, &len);
        FUZZ_CHECK(r == want.r, "take: verdict %d, model %d (queue %u, index %u)", int(r), int(want.r), num, before);
        if (r == TakeResult::Frame) {
          FUZZ_CHECK(len + hdrBytes == want.bytes.size() && len <= maxBytes, "take: %u frame bytes, model %zu with header", len, want.bytes.size());
          FUZZ_CHECK(memcmp(hdr, want.bytes.data(), hdrBytes) == 0 && (len == 0 || memcmp(out, want.bytes.data() + hdrBytes, len) == 0),
                     "take: the bytes differ from the model");
        }
        bool consumed = r == TakeResult::Frame || r == TakeResult::Runt || r == TakeResult::Oversize;
        FUZZ_CHECK(uint16_t(v.lastAvail() - before) == (consumed ? 1 : 0), "take: moved by %u", unsigned(uint16_t(v.lastAvail() - before)));
        if (r == TakeResult::Broken) broken = true;
        break;
      }
      case 1: {
        uint32_t n = uint32_t(op >> 2) * 97 + hdrBytes;
        struct iovec iov[3] = {{src, 5}, {src + 5, 0}, {src + 5, n - 5}};
        PutResult r = v.put(iov, 3, n, mergeable, nbField);
        uint16_t moved = uint16_t(v.lastAvail() - before);
        if (broken) FUZZ_CHECK(r == PutResult::Broken || r == PutResult::NoRoom, "put on a broken ring: %d", int(r));
        if (r == PutResult::Ok) FUZZ_CHECK(moved >= 1 && moved <= num && (mergeable || moved == 1), "put: %u chains for one frame", moved);
        else FUZZ_CHECK(moved == 0, "put failed (%d) but consumed %u chains", int(r), moved);
        if (r == PutResult::Broken) broken = true;
        break;
      }
      default: {
        // notify(on) and hasAvail() read the available index again: a jump breaks the ring
        bool has = (op & 3) == 2 ? v.notify(op & 4) : v.hasAvail();
        FUZZ_CHECK(!has || !v.broken(), "a broken ring reports buffers");
        if (v.broken() && !broken) {
          uint16_t ai = rd16(avail + 2);
          FUZZ_CHECK(uint16_t(ai - before) > num, "broke on an available index %u with last %u, queue %u", ai, before, num);
          broken = true;
        }
        break;
      }
    }
    FUZZ_CHECK(v.broken() == broken, "broken %d, expected %d", int(v.broken()), int(broken));
    const uint16_t now = v.lastAvail();
    bool want = false;  // the interrupt the spec asks for, from guest memory as publish() will see it
    if (now != before) {
      if (eventIdx) {
        uint16_t ue = rd16(avail + 4 + 2 * num);
        want = uint16_t(now - ue - 1) < uint16_t(now - before);
      } else {
        want = !(rd16(avail) & 1);
      }
    }
    bool irq = v.publish();
    FUZZ_CHECK(irq == want, "publish asked for an interrupt: %d, the spec: %d (event index %d)", int(irq), int(want), int(eventIdx));
    if (now != before)  // publish() wrote the index (a guest buffer may overlap it otherwise)
      FUZZ_CHECK(rd16(used + 2) == v.lastAvail(), "used index %u, last available %u", rd16(used + 2), v.lastAvail());
  }
  free(hdr);
  free(out);
  for (Region &r : rg) free(r.p);
  return 0;
}
