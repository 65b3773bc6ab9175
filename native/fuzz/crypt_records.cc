// Fuzz target: what a crypt:// endpoint does with records a peer or an attacker sends
// (native/src/crypt_proto.h: record parsing, HELLO handling, session lookup, the replay window,
// AEAD opening through libcrypto).
// fuzz-libs: -lcrypto
//
// Input: byte 0 picks the suites of the two ends (bit 0: A, bit 1: B) and whether B holds a
// second key; then a script of operations, each an opcode byte and its operands:
//   0 LEN  A seals a frame of LEN+14 bytes (content from the input) and B opens it
//   1 IDX  B opens record IDX again (a replay)
//   2 IDX POS BIT  B opens record IDX with one bit flipped (any byte: header, ciphertext, tag)
//   3 LEN BYTES  B opens LEN raw bytes from the input (a forged record or HELLO)
//   4 STEPS  the clock moves STEPS x 0.5 s; both ends tick and exchange their HELLOs
//   5 IDX  B opens record IDX cut short by one byte
//   6 LEN  as 0, as a SEG record (the first 10 frame bytes stand for the virtio-net header)
// A and B share key 1 (and start by exchanging HELLOs until A can send). Invariants:
//   - a record A sealed opens at B exactly once, with the same bytes, in the session it was
//     sealed in (B may refuse it only as NoSession when A's session is one B has dropped);
//   - a replayed, flipped, cut or forged record never opens (a forgery of ChaCha20-Poly1305 or
//     AES-256-GCM is not expected within a fuzzing run);
//   - open() never writes beyond the record's length minus the 32 overhead bytes;
//   - nothing crashes or leaks (ASan, UBSan).
#include <cstring>
#include <vector>

#include "../src/crypt_proto.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

constexpr size_t MAX_RECORDS = 64;
constexpr size_t MAX_FRAME = 2048;
constexpr uint64_t STEP_NS = 500'000'000;
constexpr int MAX_HANDSHAKE_ROUNDS = 8;

struct Sealed {
  std::vector<uint8_t> rec;
  std::vector<uint8_t> frame;
  bool opened = false;
};

CryptKey makeKey(uint8_t id, uint8_t fill) {
  CryptKey k;
  k.id = id;
  memset(k.key, fill, sizeof k.key);
  cryptPrepareKey(k);
  return k;
}

/** Opens rec at `to` (as a datagram: 16 header bytes, then the body); the frame goes to out. */
CrResult openAt(CryptState &to, const std::vector<uint8_t> &rec, std::vector<uint8_t> &out, uint32_t *len, uint64_t now) {
  if (rec.size() < CR_DATA_HEADER_BYTES) return CrResult::Malformed;
  std::vector<uint8_t> body(rec.begin() + CR_DATA_HEADER_BYTES, rec.end());
  out.assign(body.size() + 1, 0xee);  // one guard byte
  CrResult r = to.open(rec.data(), body.data(), body.size(), out.data(), len, now);
  FUZZ_CHECK(out.back() == 0xee, "open() wrote past the frame");
  if (r == CrResult::Ok) FUZZ_CHECK(*len + CR_TAG_BYTES == body.size(), "frame length %u for a %zu-byte body", *len, body.size());
  return r;
}

/** Passes HELLOs both ways until neither end has one to send. */
void exchange(CryptState &a, CryptState &b, uint64_t now) {
  for (int i = 0; i < MAX_HANDSHAKE_ROUNDS; i++) {
    bool any = false;
    uint8_t h[CR_HELLO_BYTES];
    std::vector<uint8_t> out;
    uint32_t len = 0;
    if (a.takeHello(h, now)) {
      any = true;
      FUZZ_CHECK(openAt(b, std::vector<uint8_t>(h, h + CR_HELLO_BYTES), out, &len, now) == CrResult::Hello, "a genuine HELLO refused by B");
    }
    if (b.takeHello(h, now)) {
      any = true;
      FUZZ_CHECK(openAt(a, std::vector<uint8_t>(h, h + CR_HELLO_BYTES), out, &len, now) == CrResult::Hello, "a genuine HELLO refused by A");
    }
    if (!any) return;
    now += HELLO_MIN_INTERVAL_NS;
  }
}

}  // namespace

/** libFuzzer entry point: see the file comment. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Cursor c(data, size);
  uint8_t cfg = c.u8();
  CryptState a(cfg & 1 ? CR_SUITE_AES_256_GCM : CR_SUITE_CHACHA20_POLY1305);
  CryptState b(cfg & 2 ? CR_SUITE_AES_256_GCM : CR_SUITE_CHACHA20_POLY1305);
  uint64_t now = 1'000 * CR_NS_PER_SECOND;
  a.setKeys({makeKey(1, 0x11)}, 1, now);
  std::vector<CryptKey> bk = {makeKey(1, 0x11)};
  if (cfg & 4) bk.push_back(makeKey(2, 0x22));
  b.setKeys(bk, 1, now);
  exchange(a, b, now);
  a.tick(now + HELLO_RETRY_NS);
  b.tick(now + HELLO_RETRY_NS);
  exchange(a, b, now + HELLO_RETRY_NS);
  FUZZ_CHECK(a.established() && b.established(), "no session after the handshake");
  std::vector<Sealed> recs;
  std::vector<uint8_t> out;
  uint32_t len = 0;
  int ops = 0;
  while (c.left() && ops++ < 256) {
    uint8_t op = c.u8() % 7;
    switch (op) {
      case 0:
      case 6: {  // seal and open (6: a SEG record)
        const bool seg = op == 6;
        size_t n = 14 + c.u8() * (MAX_FRAME / 256);
        Sealed s;
        s.frame.resize(n);
        for (size_t i = 0; i < n; i++) s.frame[i] = c.left() ? c.u8() : uint8_t(i);
        s.rec.resize(n + CR_OVERHEAD_BYTES);
        struct iovec iov = {s.frame.data(), n};
        if (!a.seal(&iov, 1, n, s.rec.data(), now, seg)) break;
        FUZZ_CHECK(s.rec[1] == (seg ? CR_DATA_SEG : CR_DATA), "record type %u", s.rec[1]);
        CrResult r = openAt(b, s.rec, out, &len, now);
        FUZZ_CHECK(r == CrResult::Ok || r == CrResult::NoSession, "a genuine record refused: %d", int(r));
        if (r == CrResult::Ok) {
          FUZZ_CHECK(len == n && memcmp(out.data(), s.frame.data(), n) == 0, "opened bytes differ from the sealed frame");
          s.opened = true;
        }
        if (recs.size() < MAX_RECORDS) recs.push_back(std::move(s));
        break;
      }
      case 1: {  // replay
        if (recs.empty()) break;
        Sealed &s = recs[c.u8() % recs.size()];
        CrResult r = openAt(b, s.rec, out, &len, now);
        if (s.opened) FUZZ_CHECK(r != CrResult::Ok, "a replayed record opened again");
        if (r == CrResult::Ok) {
          FUZZ_CHECK(len == s.frame.size() && memcmp(out.data(), s.frame.data(), len) == 0, "late record opened to other bytes");
          s.opened = true;
        }
        break;
      }
      case 2: {  // one bit flipped
        if (recs.empty()) break;
        Sealed &s = recs[c.u8() % recs.size()];
        std::vector<uint8_t> m = s.rec;
        size_t pos = size_t(c.u16()) % m.size();
        m[pos] ^= uint8_t(1u << (c.u8() % 8));
        FUZZ_CHECK(openAt(b, m, out, &len, now) != CrResult::Ok, "a record with a flipped bit (byte %zu) opened", pos);
        break;
      }
      case 3: {  // forged bytes
        size_t n = c.u16() % 4096;
        const uint8_t *p;
        n = c.take(n, &p);
        std::vector<uint8_t> m(p, p + n);
        CrResult r = openAt(b, m, out, &len, now);
        FUZZ_CHECK(r != CrResult::Ok, "forged bytes opened as a frame");
        break;
      }
      case 4: {  // time passes: ticks (rekeys) and HELLOs
        now += STEP_NS * (1 + c.u8() % 64);
        a.tick(now);
        b.tick(now);
        exchange(a, b, now);
        break;
      }
      case 5: {  // cut short
        if (recs.empty()) break;
        std::vector<uint8_t> m = recs[c.u8() % recs.size()].rec;
        m.pop_back();
        FUZZ_CHECK(openAt(b, m, out, &len, now) != CrResult::Ok, "a record cut short opened");
        break;
      }
    }
  }
  return 0;
}
