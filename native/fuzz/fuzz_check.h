// Shared helpers of the fuzz targets in this directory (see README.md): an invariant check that
// names what broke and aborts (libFuzzer then saves the input as a crash), a cursor that takes
// structured values from the fuzzer's bytes, and big-endian helpers written independently of
// the code under test, so a target's reference model does not share its bugs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

/** Aborts with the failed condition and a message when cond is false (a crash for libFuzzer). */
#define FUZZ_CHECK(cond, ...)                                                      \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "\nFUZZ INVARIANT FAILED at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                           \
      std::fprintf(stderr, "\n");                                                  \
      std::abort();                                                                \
    }                                                                              \
  } while (0)

namespace fuzz {

/** Reads structured values from the front of the fuzzer's input; past the end it yields zeros. */
class Cursor {
 public:
  /** Wraps size bytes at data. */
  Cursor(const uint8_t *data, size_t size) : p_(data), n_(size) {}
  /** Next byte (0 when the input is used up). */
  uint8_t u8() { return n_ ? (n_--, *p_++) : 0; }
  /** Next two bytes, big-endian. */
  uint16_t u16() { return uint16_t(u8() << 8 | u8()); }
  /** Next four bytes, big-endian. */
  uint32_t u32() { return uint32_t(u16()) << 16 | u16(); }
  /** Takes up to want bytes; returns how many were taken, their start in *out. */
  size_t take(size_t want, const uint8_t **out) {
    size_t k = want < n_ ? want : n_;
    *out = p_;
    p_ += k;
    n_ -= k;
    return k;
  }
  /** The bytes not read yet. */
  const uint8_t *rest() const { return p_; }
  /** How many bytes are not read yet. */
  size_t left() const { return n_; }

 private:
  const uint8_t *p_;
  size_t n_;
};

/** Big-endian 16-bit value at p. */
inline uint16_t rdBe16(const uint8_t *p) { return uint16_t(p[0] << 8 | p[1]); }
/** Big-endian 32-bit value at p. */
inline uint32_t rdBe32(const uint8_t *p) { return uint32_t(rdBe16(p)) << 16 | rdBe16(p + 2); }

/** Internet checksum (RFC 1071) of n bytes, summed as big-endian words, added to a running sum. */
inline uint64_t sumBe(uint64_t acc, const uint8_t *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += rdBe16(p + i);
  if (n & 1) acc += uint32_t(p[n - 1]) << 8;
  return acc;
}

/** Folds a running sum to 16 bits (end-around carry). */
inline uint16_t foldBe(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return uint16_t(acc);
}

}  // namespace fuzz
