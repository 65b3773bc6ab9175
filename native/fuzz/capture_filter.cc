// Fuzz target: the capture stage's frame filter (native/src/capture_filter.h): the parser of the
// filter text a capture client sends (vde_capture -f, --vlan, ...) and the per-frame match.
//
// Input: the filter text up to the first NUL byte, then a frame (any length, also shorter than
// an Ethernet header). Invariants:
//   - parsing never crashes, reads nothing beyond the text, and either succeeds or says why;
//   - a parsed filter prints a canonical text that parses again, prints the same text again
//     (a fixpoint) and decides every frame the same way as the original;
//   - the header fields the filter reads (frameFields) equal those of a reference reader written
//     here from the Ethernet / 802.1Q / IPv4 / IPv6 layouts, never looking past the frame;
//   - "not F" decides the opposite of F, "F and F" and "F or F" the same as F.
#include <cstring>
#include <memory>
#include <string>

#include "../src/capture_filter.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

constexpr size_t MAX_FRAME_BYTES = 2048;

/** Reference reader of the fields (independent of frameFields). */
FrameFields reference(const uint8_t *f, size_t n) {
  FrameFields r;
  if (n < 14) return r;
  for (int i = 0; i < 6; i++) r.dst = r.dst << 8 | f[i];
  for (int i = 6; i < 12; i++) r.src = r.src << 8 | f[i];
  size_t off = 12;
  r.outerType = r.type = fuzz::rdBe16(f + 12);
  while (r.tags < 2 && (r.type == 0x8100 || r.type == 0x88a8 || r.type == 0x9100) && off + 6 <= n) {
    r.vids[r.tags++] = fuzz::rdBe16(f + off + 2) & 0xfff;
    off += 4;
    r.type = fuzz::rdBe16(f + off);
  }
  size_t l3 = off + 2;
  if (r.type == 0x0800 && l3 + 20 <= n && (f[l3] >> 4) == 4) {
    r.ipFamily = 4;
    r.ipProto = f[l3 + 9];
  } else if (r.type == 0x86dd && l3 + 40 <= n && (f[l3] >> 4) == 6) {
    r.ipFamily = 6;
    int nh = f[l3 + 6];
    size_t h = l3 + 40;
    for (int k = 0; k < 4 && nh != -1; k++) {
      if (nh == 0 || nh == 43 || nh == 60) {
        if (h + 2 > n) { nh = -1; break; }
        size_t len = (size_t(f[h + 1]) + 1) * 8;
        nh = f[h];
        h += len;
      } else if (nh == 44) {
        if (h + 8 > n) { nh = -1; break; }
        nh = f[h];
        h += 8;
      } else {
        break;
      }
    }
    r.ipProto = nh;
  }
  return r;
}

bool same(const FrameFields &a, const FrameFields &b) {
  if (a.dst != b.dst || a.src != b.src || a.outerType != b.outerType || a.type != b.type || a.tags != b.tags || a.ipFamily != b.ipFamily || a.ipProto != b.ipProto) return false;
  for (int i = 0; i < a.tags; i++)
    if (a.vids[i] != b.vids[i]) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const void *nul = memchr(data, 0, size);
  size_t textLen = nul ? size_t(static_cast<const uint8_t *>(nul) - data) : size;
  std::string text(reinterpret_cast<const char *>(data), textLen);
  const uint8_t *frame = nul ? data + textLen + 1 : data + size;
  size_t frameLen = size - textLen - (nul ? 1 : 0);
  if (frameLen > MAX_FRAME_BYTES) frameLen = MAX_FRAME_BYTES;
  // a copy of exactly frameLen bytes, so ASan sees any read past the frame
  std::unique_ptr<uint8_t[]> fb(new uint8_t[frameLen ? frameLen : 1]);
  if (frameLen) memcpy(fb.get(), frame, frameLen);
  Packet pk(fb.get(), uint32_t(frameLen));

  FrameFields got = frameFields(pk);
  FrameFields want = reference(fb.get(), frameLen);
  FUZZ_CHECK(same(got, want), "frame fields differ from the reference (len %zu)", frameLen);

  CaptureFilter f;
  std::string err;
  if (!f.parse(text, &err)) {
    FUZZ_CHECK(!err.empty(), "a refused filter says nothing");
    FUZZ_CHECK(err.rfind("filter: ", 0) == 0, "error without the filter: prefix: %s", err.c_str());
    return 0;
  }
  bool m = f.match(pk);
  std::string canon = f.canonical();
  CaptureFilter g;
  std::string err2;
  FUZZ_CHECK(g.parse(canon, &err2), "canonical text does not parse: \"%s\": %s", canon.c_str(), err2.c_str());
  FUZZ_CHECK(g.canonical() == canon, "canonical text is no fixpoint: \"%s\" -> \"%s\"", canon.c_str(), g.canonical().c_str());
  FUZZ_CHECK(g.match(pk) == m, "canonical filter decides differently: \"%s\"", canon.c_str());
  if (f.empty()) {
    FUZZ_CHECK(m, "an empty filter refused a frame");
    return 0;
  }
  CaptureFilter n, a, o;
  if (n.parse("not (" + canon + ")", nullptr)) FUZZ_CHECK(n.match(pk) == !m, "not F is not the opposite of F: %s", canon.c_str());
  if (a.parse("(" + canon + ") and (" + canon + ")", nullptr)) FUZZ_CHECK(a.match(pk) == m, "F and F differs from F: %s", canon.c_str());
  if (o.parse("(" + canon + ") or (" + canon + ")", nullptr)) FUZZ_CHECK(o.match(pk) == m, "F or F differs from F: %s", canon.c_str());
  return 0;
}
