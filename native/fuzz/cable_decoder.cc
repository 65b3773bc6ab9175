// Fuzz target: the cable decoder (native/src/cable.h), what a vde-ts cable end runs on the bytes
// its peer sends: VDE 2-byte records, the in-band HELLO/GO messages, and after GO the segment
// format (PLAIN, FIRST, MORE records gathered into one frame).
//
// Input: byte 0 bit 0 = negotiate; bytes 1-2 the record limit (big-endian, 0 = 9234); byte 3 the
// number k of read sizes that follow (bytes 4..4+k, 0 = as much as there is room for); the rest
// is the stream, fed in those read sizes (cycled).
//
// Invariants: the decoder never asks for a read of 0 bytes (which the stream kind would take for
// an end of stream), never writes beyond the output slot, and hands out the same items (kind,
// frame bytes, virtio-net header) and keeps the same bytes pending as a reference model that
// parses the whole stream at once from the format in cable.h's comment: so where reads split the
// stream never changes what comes out, nothing is invented, and a malformed run never costs more
// than itself.
// fuzz-args: -max_len=200000
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../src/cable.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

constexpr uint32_t DEFAULT_LIMIT_BYTES = 9234;
constexpr uint32_t MIN_FRAME = 14;
constexpr uint32_t ZEROS = 4;
constexpr uint32_t GATHER_MAX = 72 * 1024;
constexpr uint32_t OUT_CAP = SLOT_BYTES;
constexpr uint8_t K_PLAIN = 1, K_FIRST = 2, K_MORE = 3;

using Item = CableDecoder::Item;

struct Got {
  Item kind;
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> vh;
};

bool isMsg(const uint8_t *r, uint32_t l, uint32_t zeros, uint8_t *type) {
  static const uint8_t magic[6] = {'v', 'd', 'e', '-', 't', 's'};
  if (l != 12 || zeros < ZEROS || memcmp(r, magic, 6) != 0 || !(r[8] & 1)) return false;
  // HELLO, or HELLO_ACK (datagram cables' answer), which a stream takes as a HELLO too
  if ((r[7] == 1 || r[7] == 3) && r[6] >= 1) { *type = 1; return true; }
  if (r[7] == 2 && r[6] == 1) { *type = 2; return true; }
  return false;
}

/** The reference: every item of the whole stream, and the bytes left pending. */
std::vector<Got> reference(const uint8_t *s, size_t n, bool negotiate, uint32_t limit, size_t *pending) {
  std::vector<Got> out;
  size_t off = 0;
  uint32_t zeros = 0, discard = 0;
  bool seg = false;
  // the record at p is whole: its length in *l
  auto whole = [&](size_t p, uint32_t *l) { return n - p >= 2 && (*l = fuzz::rdBe16(s + p), n - p - 2 >= *l); };
  for (;;) {
    *pending = n - off;
    if (n - off < 2) return out;
    uint32_t l = fuzz::rdBe16(s + off);
    if (l > limit) { out.push_back({Item::TooLong, {}, {}}); *pending = 0; return out; }
    if (!seg) {
      if (l == 0) { off += 2; zeros++; continue; }
      if (n - off - 2 < l) return out;
      const uint8_t *r = s + off + 2;
      off += 2 + l;
      uint32_t zb = zeros;
      zeros = 0;
      uint8_t type = 0;
      if (l >= MIN_FRAME) out.push_back({Item::Frame, std::vector<uint8_t>(r, r + l), {}});
      else if (negotiate && isMsg(r, l, zb, &type)) {
        out.push_back({type == 1 ? Item::Hello : Item::Go, {}, {}});
        if (type == 2) seg = true;
      } else out.push_back({Item::Runt, {}, {}});
      continue;
    }
    if (!whole(off, &l)) return out;
    if (l == 0) { off += 2; continue; }
    const uint8_t *r = s + off + 2;
    if (r[0] == K_MORE && discard) { discard = l - 1 < discard ? discard - (l - 1) : 0; off += 2 + l; continue; }
    discard = 0;
    if (r[0] == K_PLAIN) {
      off += 2 + l;
      if (l - 1 < MIN_FRAME) out.push_back({Item::Runt, {}, {}});
      else out.push_back({Item::Frame, std::vector<uint8_t>(r + 1, r + l), {}});
      continue;
    }
    if (r[0] != K_FIRST || l < 15) { off += 2 + l; out.push_back({Item::Bad, {}, {}}); continue; }
    uint32_t total = fuzz::rdBe32(r + 11), got = l - 15;
    if (total < MIN_FRAME || total > OUT_CAP || got > total) {
      off += 2 + l;
      discard = total > got ? total - got : 0;
      out.push_back({total < MIN_FRAME && got <= total ? Item::Runt : Item::Bad, {}, {}});
      continue;
    }
    std::vector<uint8_t> frame(r + 15, r + l);
    size_t pos = off + 2 + l;
    bool done = false, stop = false;
    while (!done) {
      if (got == total) { done = true; break; }
      uint32_t rl;
      if (pos - off >= GATHER_MAX) { discard = total - got; out.push_back({Item::Bad, {}, {}}); off = pos; stop = true; break; }
      if (n - pos >= 2 && fuzz::rdBe16(s + pos) > limit) { out.push_back({Item::Bad, {}, {}}); off = pos; stop = true; break; }
      if (!whole(pos, &rl)) return out;  // pending from the FIRST on
      if (rl == 0) { pos += 2; continue; }
      if (s[pos + 2] != K_MORE) { out.push_back({Item::Bad, {}, {}}); off = pos; stop = true; break; }
      if (got + rl - 1 > total) { out.push_back({Item::Bad, {}, {}}); off = pos + 2 + rl; stop = true; break; }
      frame.insert(frame.end(), s + pos + 3, s + pos + 2 + rl);
      got += rl - 1;
      pos += 2 + rl;
    }
    if (stop) continue;
    out.push_back({Item::SegFrame, frame, std::vector<uint8_t>(r + 1, r + 11)});
    off = pos;
  }
}

}  // namespace

/** libFuzzer entry point: negotiate flag, record limit, read sizes, stream. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Cursor in(data, size);
  const bool negotiate = in.u8() & 1;
  uint32_t limit = in.u16();
  if (limit == 0) limit = DEFAULT_LIMIT_BYTES;
  const uint8_t *chunks;
  const size_t nChunks = in.take(in.u8(), &chunks);
  const uint8_t *s = in.rest();
  const size_t n = in.left();

  size_t wantPending = 0;
  const std::vector<Got> want = reference(s, n, negotiate, limit, &wantPending);
  CableDecoder dec(2, limit, negotiate);
  std::vector<uint8_t> slot(OUT_CAP + 64, 0xee);
  size_t got = 0, fed = 0, round = 0;
  bool dead = false;
  while (!dead) {
    for (;;) {
      uint32_t len = 0;
      uint8_t vh[VNET_HDR_BYTES];
      Item it = dec.next(slot.data(), OUT_CAP, &len, vh);
      for (size_t k = OUT_CAP; k < slot.size(); k++) FUZZ_CHECK(slot[k] == 0xee, "wrote beyond the slot (byte %zu)", k);
      if (it == Item::NeedMore) break;
      FUZZ_CHECK(got < want.size(), "item %zu (kind %d) beyond the reference's %zu", got, int(it), want.size());
      FUZZ_CHECK(it == want[got].kind, "item %zu: kind %d, reference %d", got, int(it), int(want[got].kind));
      if (it == Item::Frame || it == Item::SegFrame) {
        FUZZ_CHECK(len == want[got].bytes.size() && memcmp(slot.data(), want[got].bytes.data(), len) == 0, "item %zu: frame of %u bytes differs from the reference's %zu", got, len, want[got].bytes.size());
      }
      if (it == Item::SegFrame) FUZZ_CHECK(memcmp(vh, want[got].vh.data(), VNET_HDR_BYTES) == 0, "item %zu: virtio-net header differs", got);
      got++;
      if (it == Item::TooLong) {
        dead = true;
        break;
      }
    }
    if (dead || fed == n) break;
    size_t room = 0;
    uint8_t *at = dec.space(&room);
    FUZZ_CHECK(room > 0, "no room to read with %zu of %zu bytes fed (limit %u)", fed, n, limit);
    size_t k = room;
    size_t wantN = nChunks ? chunks[round++ % nChunks] : 0;
    if (wantN && wantN < k) k = wantN;
    if (n - fed < k) k = n - fed;
    memcpy(at, s + fed, k);
    dec.commit(k);
    fed += k;
  }
  FUZZ_CHECK(got == want.size(), "%zu items, the reference has %zu", got, want.size());
  if (!dead) FUZZ_CHECK(dec.pending() == wantPending, "%zu bytes pending at the end, the reference has %zu", dec.pending(), wantPending);
  return 0;
}
