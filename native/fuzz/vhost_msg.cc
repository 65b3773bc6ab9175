// Fuzz target: the checks of a vhost-user control message (native/src/vhost_proto.h): the
// header (version, reply flag, payload size) and the memory table of SET_MEM_TABLE, whose
// regions the back-end maps.
//
// Input: byte 0 the number of file descriptors that came with the message (b % 12), then a
// 12-byte message header and its payload (whatever follows, however long the header says it
// is). The payload is handed over in a buffer of exactly its size (ASan catches a read past it).
// Invariants, compared with a reference written from docs/interop/vhost-user.rst:
// - vhostCheckHdr accepts exactly version 1 without the reply bit and a size up to 4096;
// - vhostDecodeMemTable accepts exactly: at least 8 bytes, 1..8 regions, a payload holding all
//   of them, one descriptor per region, and regions with a size that is not 0 and guest, user
//   and mmap-offset ranges that do not wrap around 2^64; it returns those regions unchanged.
#include <cstdlib>
#include <cstring>

#include "../src/vhost_proto.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

uint32_t le32(const uint8_t *p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

/** True when a + b does not wrap around 2^64. */
bool fits(uint64_t a, uint64_t b) { return b <= ~uint64_t(0) - a; }

}  // namespace

/** libFuzzer entry point: fd count, header, payload. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 + VHOST_HDR_BYTES) return 0;
  const int nfds = data[0] % 12;
  const uint8_t *h = data + 1;
  VhostHdr hdr = vhostDecodeHdr(h);
  FUZZ_CHECK(hdr.request == le32(h) && hdr.flags == le32(h + 4) && hdr.size == le32(h + 8), "header decoded wrongly");
  bool hdrOk = (hdr.flags & 3) == 1 && !(hdr.flags & 4) && hdr.size <= 4096;
  FUZZ_CHECK((vhostCheckHdr(hdr) == nullptr) == hdrOk, "header verdict differs (flags %#x size %u)", hdr.flags, hdr.size);

  const uint32_t n = uint32_t(size - 1 - VHOST_HDR_BYTES);
  uint8_t *p = static_cast<uint8_t *>(malloc(n ? n : 1));
  memcpy(p, h + VHOST_HDR_BYTES, n);
  VhostRegionMsg out[VHOST_MAX_REGIONS];
  const char *why = nullptr;
  int got = vhostDecodeMemTable(p, n, nfds, out, &why);

  bool ok = n >= 8;
  uint32_t regions = ok ? le32(p) : 0;
  ok = ok && regions >= 1 && regions <= 8 && n >= 8 + 32 * regions && nfds == int(regions);
  for (uint32_t i = 0; ok && i < regions; i++) {
    const uint8_t *r = p + 8 + 32 * i;
    uint64_t gpa = le64(r), sz = le64(r + 8), uva = le64(r + 16), off = le64(r + 24);
    ok = sz != 0 && fits(gpa, sz) && fits(uva, sz) && fits(off, sz);
  }
  FUZZ_CHECK((got >= 0) == ok, "memory table verdict %d, reference %d (%u regions, %u bytes, %d fds)", got, int(ok), regions, n, nfds);
  if (got >= 0) {
    FUZZ_CHECK(uint32_t(got) == regions, "%d regions decoded of %u", got, regions);
    for (int i = 0; i < got; i++) {
      const uint8_t *r = p + 8 + 32 * i;
      FUZZ_CHECK(out[i].gpa == le64(r) && out[i].size == le64(r + 8) && out[i].uva == le64(r + 16) && out[i].mmapOffset == le64(r + 24),
                 "region %d decoded wrongly", i);
    }
  } else {
    FUZZ_CHECK(why && *why, "a refusal without a reason");
  }
  free(p);
  return 0;
}
