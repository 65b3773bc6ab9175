// Fuzz target: length-prefixed stream reassembly (VDE's 2-byte and QEMU's 4-byte big-endian
// framing): native/src/stream_decoder.h, what the stream kind runs.
//
// stream_decoder.h's interface: StreamDecoder(hdrBytes, maxFrame); space(&room) / commit(n) to
// read into it; next(&frame, &len, minFrame) -> Frame, Runt, NeedMore or TooLong (sticky);
// pending() for the bytes of an unfinished record.
//
// Input: byte 0 bit 0 chooses the framing (0: 2-byte, 1: 4-byte); bytes 1-2 the frame limit
// (big-endian, 0 = 65536); byte 3 the number k of chunk sizes that follow (bytes 4..4+k, 0 =
// as much as there is room for); the rest is the stream, fed in those chunks (cycled). The
// items and the final pending() must equal those of a reference decoder that sees the whole
// stream at once: so where the reads split the stream never matters, nothing is lost, cut,
// or invented, and the decoder never runs out of room.
// fuzz-requires: ../src/stream_decoder.h
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../src/stream_decoder.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

constexpr uint32_t MIN_RECORD_FRAME_BYTES = 14;
constexpr uint32_t DEFAULT_LIMIT_BYTES = 65536;

/** One decoded record: kind and, for a frame, its bytes. */
struct Item {
  StreamDecoder::Next kind;
  std::vector<uint8_t> bytes;
};

/** The reference: every item of the whole stream, and the bytes of an unfinished record left. */
std::vector<Item> reference(const uint8_t *s, size_t n, unsigned hdr, uint32_t limit, size_t *pending) {
  std::vector<Item> out;
  size_t off = 0;
  for (;;) {
    if (n - off < hdr) break;
    uint32_t len = hdr == 2 ? fuzz::rdBe16(s + off) : fuzz::rdBe32(s + off);
    if (len == 0) { off += hdr; continue; }
    if (len > limit) { out.push_back({StreamDecoder::Next::TooLong, {}}); *pending = 0; return out; }
    if (n - off - hdr < len) break;
    if (len < MIN_RECORD_FRAME_BYTES) out.push_back({StreamDecoder::Next::Runt, {}});
    else out.push_back({StreamDecoder::Next::Frame, std::vector<uint8_t>(s + off + hdr, s + off + hdr + len)});
    off += hdr + len;
  }
  *pending = n - off;
  return out;
}

}  // namespace

/** libFuzzer entry point: framing, limit, chunk sizes, stream. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Cursor in(data, size);
  const unsigned hdr = (in.u8() & 1) ? 4 : 2;
  uint32_t limit = in.u16();
  if (limit == 0) limit = DEFAULT_LIMIT_BYTES;
  const uint8_t *chunks;
  const size_t nChunks = in.take(in.u8(), &chunks);
  const uint8_t *s = in.rest();
  const size_t n = in.left();

  size_t wantPending = 0;
  const std::vector<Item> want = reference(s, n, hdr, limit, &wantPending);
  StreamDecoder dec(uint8_t(hdr), limit);
  size_t got = 0, fed = 0, round = 0;
  bool dead = false;
  while (!dead) {
    // drain everything complete
    for (;;) {
      const uint8_t *f = nullptr;
      uint32_t len = 0;
      StreamDecoder::Next it = dec.next(&f, &len, MIN_RECORD_FRAME_BYTES);
      if (it == StreamDecoder::Next::NeedMore) break;
      FUZZ_CHECK(got < want.size(), "item %zu (kind %d) beyond the reference's %zu", got, int(it), want.size());
      FUZZ_CHECK(it == want[got].kind, "item %zu: kind %d, reference %d", got, int(it), int(want[got].kind));
      if (it == StreamDecoder::Next::Frame) {
        FUZZ_CHECK(len == want[got].bytes.size() && memcmp(f, want[got].bytes.data(), len) == 0, "item %zu: frame of %u bytes differs from the reference's %zu", got, len, want[got].bytes.size());
      }
      got++;
      if (it == StreamDecoder::Next::TooLong) {
        const uint8_t *f2 = nullptr;
        uint32_t len2 = 0;
        FUZZ_CHECK(dec.next(&f2, &len2, MIN_RECORD_FRAME_BYTES) == StreamDecoder::Next::TooLong, "the stream came back to life after TooLong");
        dead = true;
        break;
      }
    }
    if (dead || fed == n) break;
    size_t room = 0;
    uint8_t *at = dec.space(&room);
    FUZZ_CHECK(room > 0, "no room to read with %zu of %zu bytes fed (limit %u)", fed, n, limit);
    size_t want_n = nChunks ? chunks[round++ % nChunks] : 0;
    size_t k = room;
    if (want_n && want_n < k) k = want_n;
    if (n - fed < k) k = n - fed;
    memcpy(at, s + fed, k);
    dec.commit(k);
    fed += k;
  }
  FUZZ_CHECK(got == want.size(), "%zu items, the reference has %zu", got, want.size());
  if (!dead) FUZZ_CHECK(dec.pending() == wantPending, "%zu bytes pending at the end, the reference has %zu", dec.pending(), wantPending);
  return 0;
}
