// The police stage: a token bucket that lets a port take at most `rate` bits per second, with
// bursts of up to `burst` bytes, and drops the rest (counted on the port as "police").
//
// The bucket fills at the rate from the engine clock (env.nowNs(): monotonic, or the harness's
// fake clock) up to the burst size. A frame passes when the bucket holds at least its size, or,
// for a frame larger than the whole burst (64 KiB segments from offload taps), when the bucket is
// full; either way its full size is taken out, so the bucket may go into debt and the long-run
// rate stays exact. Tokens are counted in units of 1e-9 bit (1 byte = 8e9 units) in a signed
// 64-bit integer, so the arithmetic is exact and cannot overflow with the accepted ranges.
// Nothing is held: policing drops, it never delays. Registered as "police" (`rate=BITS/s`,
// `burst=BYTES`); normally an ingress stage.
#include <cctype>
#include <cstdint>

#include "stage.h"

namespace vde {
namespace {

constexpr int64_t UNITS_PER_BYTE = 8'000'000'000;  // 1 bit = 1e9 units: a rate in bit/s adds `rate` units per ns
constexpr uint64_t MIN_RATE_BITS = 8000;            // 1 kB/s
constexpr uint64_t MAX_RATE_BITS = 1'000'000'000'000;  // 1 Tbit/s
constexpr uint64_t MIN_BURST_BYTES = 64;
constexpr uint64_t MAX_BURST_BYTES = 1ull << 30;  // 1 GiB: 8.6e18 units, within int64

class PoliceStage : public Stage {
 public:
  static constexpr const char *NAME = "police";
  PoliceStage(uint64_t rateBits, uint64_t burstBytes)
      : rate_(int64_t(rateBits)), burst_(int64_t(burstBytes) * UNITS_PER_BYTE), tokens_(burst_), rateBits_(rateBits), burstBytes_(burstBytes) {}
  const char *name() const override { return NAME; }
  int rank() const override { return RANK_POLICE; }

  /** Passes a frame the bucket can pay for (see the file comment), else drops it. */
  Verdict process(StageEnv &env, const StageFrame &f, DropReason *why) override {
    refill(env.nowNs());
    int64_t cost = int64_t(f.out.wireLen()) * UNITS_PER_BYTE;
    if (tokens_ >= (cost < burst_ ? cost : burst_)) {
      tokens_ -= cost;
      passed_++;
      passedBytes_ += f.out.wireLen();
      return Verdict::Pass;
    }
    dropped_++;
    droppedBytes_ += f.out.wireLen();
    *why = DROP_POLICE;
    return Verdict::Drop;
  }

  /** rate (bit/s), burst (bytes), tokens (bytes, negative in debt), passed/dropped frames and bytes. */
  void describe(StageValues &out) const override {
    out.emplace_back("rate", double(rateBits_));
    out.emplace_back("burst", double(burstBytes_));
    out.emplace_back("tokens", double(tokens_) / double(UNITS_PER_BYTE));
    out.emplace_back("passed", double(passed_));
    out.emplace_back("passedBytes", double(passedBytes_));
    out.emplace_back("dropped", double(dropped_));
    out.emplace_back("droppedBytes", double(droppedBytes_));
  }

 private:
  // Adds what the rate earned since the last frame, up to the burst.
  void refill(uint64_t now) {
    if (!started_) {
      started_ = true;
      last_ = now;
      return;
    }
    if (now <= last_) return;
    uint64_t dt = now - last_;
    last_ = now;
    int64_t missing = burst_ - tokens_;  // at most the burst plus one frame's debt
    if (dt > uint64_t(missing / rate_)) {
      tokens_ = burst_;
      return;
    }
    tokens_ += int64_t(dt) * rate_;  // dt * rate_ <= missing: no overflow
  }

  int64_t rate_;     // units per ns (= bit/s)
  int64_t burst_;    // units
  int64_t tokens_;   // units; negative while in debt
  uint64_t rateBits_, burstBytes_;
  bool started_ = false;
  uint64_t last_ = 0;
  uint64_t passed_ = 0, passedBytes_ = 0, dropped_ = 0, droppedBytes_ = 0;
};

// Reads N[suffix] where the suffix k/m/g multiplies by step, step^2, step^3; false when malformed or outside [lo, hi].
bool quantity(const std::string &v, uint64_t step, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (v.empty() || v.size() > 24) return false;
  size_t i = 0;
  uint64_t x = 0;
  while (i < v.size() && isdigit(static_cast<unsigned char>(v[i]))) {
    if (x > (~uint64_t(0) - 9) / 10) return false;
    x = x * 10 + uint64_t(v[i++] - '0');
  }
  if (i == 0) return false;
  if (i < v.size()) {
    int power = 0;
    switch (tolower(static_cast<unsigned char>(v[i]))) {
      case 'k': power = 1; break;
      case 'm': power = 2; break;
      case 'g': power = 3; break;
      default: return false;
    }
    if (++i != v.size()) return false;
    for (int p = 0; p < power; p++) {
      if (x > hi) return false;
      x *= step;
    }
  }
  if (x < lo || x > hi) return false;
  *out = x;
  return true;
}

std::unique_ptr<Stage> makePolice(const StageConfig &cfg, bool, std::string *err) {
  uint64_t rate = 0, burst = 0;
  for (const auto &[k, v] : cfg) {
    if (k == "rate") {
      if (!quantity(v, 1000, MIN_RATE_BITS, MAX_RATE_BITS, &rate)) {
        *err = "police: rate: \"" + v.substr(0, 40) + "\" is not a rate in bit/s from 8000 to 1000000000000 (suffixes k, m, g: x1000)";
        return nullptr;
      }
    } else if (k == "burst") {
      if (!quantity(v, 1024, MIN_BURST_BYTES, MAX_BURST_BYTES, &burst)) {
        *err = "police: burst: \"" + v.substr(0, 40) + "\" is not a size in bytes from 64 to 1073741824 (suffixes k, m, g: x1024)";
        return nullptr;
      }
    } else {
      *err = "police: unknown setting \"" + k.substr(0, 40) + "\" (known: rate, burst)";
      return nullptr;
    }
  }
  if (!rate || !burst) {
    *err = !rate ? "police: rate=BITS_PER_SECOND is required" : "police: burst=BYTES is required";
    return nullptr;
  }
  return std::make_unique<PoliceStage>(rate, burst);
}

const bool registered = registerStageKind(PoliceStage::NAME, &makePolice);

}  // namespace
}  // namespace vde
