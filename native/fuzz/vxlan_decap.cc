// Fuzz target: VXLAN / VXVDE decapsulation (native/src/vxlan_wire.h), the checks every UDP
// datagram on a vxlan:// or vxvde:// endpoint meets before its frame enters the engine.
//
// Input: 3 bytes of the endpoint's VNI (big-endian), then the datagram (UDP payload). Both
// vxlanDecap and vxvdeDecap see the datagram in a buffer of exactly its size (ASan catches a
// read past it, e.g. of a header that is not there), and their verdicts are compared with a
// reference model written from PROTOCOL.md §2.5 (same order of checks as the receive path, which
// decides what is counted as a runt and what as a framing error):
//   vxlan: > 8 + 14 bytes else Runt; byte 0 == 0x08 else Framing; VNI bytes else Foreign; Frame.
//   vxvde: >= 8 bytes else Runt; flags 0x08 and reserved bytes 1-3, 7 zero else Framing; VNI
//          else Foreign; exactly 8 bytes is Leave; > 8 + 14 bytes else Runt; Frame.
// A Frame is the rest of the datagram after the 8-byte header. vxEncodeHeader's header must be
// a Frame header for its own VNI under both rules.
#include <cstdlib>
#include <cstring>

#include "../src/vxlan_wire.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

constexpr uint32_t VNI_INPUT_BYTES = 3;

/** The verdict PROTOCOL.md §2.5 gives a datagram (vxvde: all 8 header bytes are checked). */
VxVerdict reference(const uint8_t *d, uint32_t n, uint32_t vni, bool vxvde) {
  const bool vniOk = n >= 8 && d[4] == ((vni >> 16) & 0xff) && d[5] == ((vni >> 8) & 0xff) && d[6] == (vni & 0xff);
  if (!vxvde) {
    if (n <= 8 + 14) return VxVerdict::Runt;
    if (d[0] != 0x08) return VxVerdict::Framing;
    return vniOk ? VxVerdict::Frame : VxVerdict::Foreign;
  }
  if (n < 8) return VxVerdict::Runt;
  if (d[0] != 0x08 || d[1] != 0 || d[2] != 0 || d[3] != 0 || d[7] != 0) return VxVerdict::Framing;
  if (!vniOk) return VxVerdict::Foreign;
  if (n == 8) return VxVerdict::Leave;
  return n <= 8 + 14 ? VxVerdict::Runt : VxVerdict::Frame;
}

/** Checks one verdict against the reference and the frame bounds. */
void check(const VxDecap &r, const uint8_t *d, uint32_t n, uint32_t vni, bool vxvde) {
  const char *who = vxvde ? "vxvde" : "vxlan";
  VxVerdict want = reference(d, n, vni, vxvde);
  FUZZ_CHECK(r.verdict == want, "%s: verdict %d, reference %d (%u bytes, VNI %06x)", who, int(r.verdict), int(want), n, vni);
  if (r.verdict == VxVerdict::Frame) {
    FUZZ_CHECK(r.frameOffset == VX_HEADER_BYTES && uint64_t(r.frameOffset) + r.frameLen == n && r.frameLen > VX_ETH_HEADER_BYTES,
               "%s: frame at %u, %u bytes, in a %u-byte datagram", who, r.frameOffset, r.frameLen, n);
  } else {
    FUZZ_CHECK(r.frameOffset == 0 && r.frameLen == 0, "%s: a frame place given with verdict %d", who, int(r.verdict));
  }
}

}  // namespace

/** libFuzzer entry point: VNI + datagram. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < VNI_INPUT_BYTES) return 0;
  const uint32_t vni = uint32_t(data[0]) << 16 | uint32_t(data[1]) << 8 | data[2];
  const uint32_t n = uint32_t(size - VNI_INPUT_BYTES);
  uint8_t *d = static_cast<uint8_t *>(malloc(n));  // exactly the datagram (ASan: even 0 bytes): reads past it are caught
  memcpy(d, data + VNI_INPUT_BYTES, n);
  check(vxlanDecap(d, n, vni), d, n, vni, false);
  check(vxvdeDecap(d, n, vni), d, n, vni, true);
  free(d);
  // our own header, in front of the same bytes as a frame, is ours under both rules
  uint8_t *own = static_cast<uint8_t *>(malloc(VX_HEADER_BYTES + n));
  vxEncodeHeader(vni, own);
  memcpy(own + VX_HEADER_BYTES, data + VNI_INPUT_BYTES, n);
  const uint32_t total = uint32_t(VX_HEADER_BYTES) + n;
  const VxVerdict expect = n > VX_ETH_HEADER_BYTES ? VxVerdict::Frame : VxVerdict::Runt;
  FUZZ_CHECK(vxlanDecap(own, total, vni).verdict == expect, "vxlan refuses its own header (VNI %06x, %u bytes)", vni, total);
  FUZZ_CHECK(vxvdeDecap(own, total, vni).verdict == (n == 0 ? VxVerdict::Leave : expect), "vxvde refuses its own header (VNI %06x, %u bytes)", vni, total);
  free(own);
  return 0;
}
