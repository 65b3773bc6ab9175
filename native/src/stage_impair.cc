// The link-emulation stage "impair": delay, jitter, loss, duplication, corruption, reordering,
// rate, slotting, a channel buffer, an MTU and link state on one port direction, as netem and
// vde2's wirefilter define them, on the engine's µs clock.
//
// Every frame that must wait is copied into the pool (env.store) as an item of its own small
// PktQueue and indexed by a binary heap ordered by (release time, arrival number); the stage's
// deadline is the heap's head and its timer hands due items back to the pipeline
// (env.release). With nothing configured, or nothing to delay, a frame passes untouched and
// nothing is copied. By default the order of frames is kept (a frame never leaves before one
// that arrived earlier, as in wirefilter without -N); fifo=0 lets jitter reorder them, and
// reorder= sends chosen frames ahead of the queue, as netem does.
//
// Randomness comes from one xoshiro256** generator seeded from seed= (and stream=, so two
// directions with one seed draw different numbers); every draw that decides the fate of a frame
// happens when the frame arrives, in a fixed order, so two runs with the same seed and the same
// frames lose, duplicate and corrupt the same frames and give them the same delays. Slot timing
// draws from a second generator, because when the timer runs depends on the machine.
//
// Configuration is a list of canonical name=value pairs (units in the names: _us, _bps, _bytes;
// percentages 0..100) that the TypeScript layer builds from the user's syntax (src/ports/
// impair.ts, src/wirefilter/); the factory validates every value and names the bad one.
// Changing the settings replaces the stage; the new one adopt()s the old one's held frames,
// counters, generator and model states, so nothing queued is lost and no frame overtakes another.
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "offload.h"
#include "stage.h"

namespace vde {
namespace {

constexpr const char *IMPAIR_NAME = "impair";
constexpr double NS_PER_US = 1000.0;
constexpr double NS_PER_S = 1e9;
/** Default and largest number of frames one direction may hold. */
constexpr uint32_t DEFAULT_LIMIT_FRAMES = 10000;
constexpr uint32_t MAX_LIMIT_FRAMES = 1u << 20;
/** Most copies one frame may become (vde2's dup repeats while a draw succeeds: 100 % would never end). */
constexpr int MAX_COPIES = 64;
/** Longest delay, slot or flap period accepted: one hour. */
constexpr double MAX_TIME_US = 3600e6;
/** Highest rate accepted: 10 Tbit/s. */
constexpr double MAX_RATE_BPS = 1e13;
/** Largest seed: 2^53 - 1, so that JSON and JavaScript numbers carry it exactly. */
constexpr double MAX_SEED = 9007199254740991.0;
/** Most bits one frame gets flipped by noise. */
constexpr double MAX_FLIPS = 4096;
/** netem's pareto table is clamped at 32767 / 8192 standard units. */
constexpr double PARETO_CLAMP = 32767.0 / 8192.0;

// ---------------------------------------------------------------------------------------------
// random numbers

uint64_t splitmix64(uint64_t &x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/** xoshiro256** (Blackman and Vigna), seeded through splitmix64. */
struct Rng {
  uint64_t s[4] = {1, 2, 3, 4};
  /** Seeds the generator from a seed and a stream number. */
  void seed(uint64_t seedValue, uint64_t stream) {
    uint64_t x = seedValue ^ (stream * 0xd1b54a32d192ed03ull);
    for (auto &w : s) w = splitmix64(x);
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  /** Next 64 random bits. */
  uint64_t next() {
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
  /** Uniform in [0, 1). */
  double u01() { return double(next() >> 11) * 0x1.0p-53; }
  /** Uniform whole number in [0, n). */
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};

/**
 * Uniform draws whose successive values are correlated with coefficient rho, with the marginal
 * kept exactly uniform: an AR(1) process in normal space (z = rho·z' + sqrt(1-rho²)·e) mapped
 * back through the normal distribution function. (netem mixes (1-rho)·u + rho·last, which
 * narrows the distribution: its "correlated" delays and losses are not those asked for.)
 */
struct CorrUniform {
  double rho = 0;
  double lastZ = 0;
  /** Next draw in [0, 1). */
  double next(Rng &r);
};

/**
 * Events (loss, duplication, corruption, reordering) of probability p whose successive outcomes
 * have lag-1 correlation rho: a two-state chain with P(hit | hit) = p + rho·(1-p) and
 * P(hit | miss) = p·(1-rho), whose long-run rate is exactly p.
 */
struct CorrEvent {
  double rho = 0;
  bool last = false;
  /** One outcome. */
  bool next(Rng &r, double p) {
    if (p <= 0) return last = false;
    if (p >= 1) return last = true;
    double q = rho <= 0 ? p : last ? p + rho * (1 - p) : p * (1 - rho);
    return last = r.u01() < q;
  }
};

/** Distributions of a varying value (netem's delay distributions; vde2 uses uniform and normal). */
enum class Dist : uint8_t { Uniform, Normal, Pareto, ParetoNormal };

/** Inverse of the standard normal distribution function (Acklam's rational approximation). */
double normalQuantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
  const double lo = 0.02425, hi = 1 - lo;
  if (p <= 0) p = 1e-300;
  if (p >= 1) p = 1 - 1e-16;
  if (p < lo) {
    double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > hi) {
    double q = std::sqrt(-2 * std::log(1 - p));
    return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

double CorrUniform::next(Rng &r) {
  double u = r.u01();
  if (rho <= 0) return u;
  double e = normalQuantile(u);
  lastZ = rho * lastZ + std::sqrt(1 - rho * rho) * e;
  double v = 0.5 * std::erfc(-lastZ / std::sqrt(2.0));
  return std::min(std::max(v, 0.0), 0x1.fffffffffffffp-1);
}

/** netem's pareto table value at quantile u: ((1-u)^(-1/3) - 1.5) · 4/3, clamped. */
double paretoQuantile(double u) {
  double x = std::pow(1 - u, -1.0 / 3.0);
  return std::min((x - 1.5) * (4.0 / 3.0), PARETO_CLAMP);
}

/** A number drawn around a mean: mean + jitter · t, t from the distribution at a (correlated) quantile. */
struct Varying {
  double mean = 0, jitter = 0;
  Dist dist = Dist::Uniform;
  CorrUniform u;

  /** True when the value can be above zero (vde2's max_wirevalue > 0). */
  bool active() const { return mean + jitter > 0; }
  /** True when a draw is needed at all. */
  bool varies() const { return jitter != 0; }
  /** Draws one value. */
  double sample(Rng &r) {
    if (jitter == 0) return mean;
    double q = u.next(r);
    double t;
    switch (dist) {
      case Dist::Uniform: t = 2 * q - 1; break;
      case Dist::Normal: t = normalQuantile(q); break;
      case Dist::Pareto: t = paretoQuantile(q); break;
      default: t = 0.25 * normalQuantile(q) + 0.75 * paretoQuantile(q); break;  // netem's paretonormal table
    }
    return mean + jitter * t;
  }
};

enum class LossModel : uint8_t { None, Bernoulli, Burst, GilbertElliott, FourState };

/** The validated settings of one stage. */
struct ImpairConfig {
  uint64_t seed = 0;
  bool seedGiven = false;
  uint64_t stream = 0;
  Varying delayUs, loss, dup, noise, rateBps, speedBps, capacityBytes, slotUs, burst;
  double lossCorr = 0, dupCorr = 0, corrupt = 0, corruptCorr = 0, reorder = 0, reorderCorr = 0;
  uint32_t gap = 0;
  bool dupRepeat = false;
  LossModel lossModel = LossModel::None;
  double ge[4] = {0, 100, 100, 0};              // p, r, 1-h, 1-k (percent), netem's defaults
  double s4[5] = {0, 100, 0, 100, 0};           // p13, p31, p32, p23, p14 (percent)
  bool geGiven[4] = {}, s4Given[5] = {};
  int32_t overheadBytes = 0;
  uint32_t cellBytes = 0;
  int32_t cellOverheadBytes = 0;
  uint32_t slotPackets = 0, slotBytes = 0;
  uint32_t limit = DEFAULT_LIMIT_FRAMES;
  uint32_t mtu = 0;
  bool down = false;
  double flapUpUs = 0, flapDownUs = 0;
  bool fifo = true;
};

// ---------------------------------------------------------------------------------------------
// parsing the configuration

bool parseNumber(const std::string &key, const std::string &v, double lo, double hi, double *out, std::string *err) {
  char *end = nullptr;
  double x = v.empty() ? 0 : std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !std::isfinite(x) || x < lo || x > hi) {
    char range[96];
    snprintf(range, sizeof range, "%.17g..%.17g", lo, hi);
    *err = "impair: " + key + ": \"" + v + "\" is not a number in " + range;
    return false;
  }
  *out = x;
  return true;
}

bool parseDist(const std::string &key, const std::string &v, bool all, Dist *out, std::string *err) {
  if (v == "uniform") *out = Dist::Uniform;
  else if (v == "normal") *out = Dist::Normal;
  else if (all && v == "pareto") *out = Dist::Pareto;
  else if (all && v == "paretonormal") *out = Dist::ParetoNormal;
  else {
    *err = "impair: " + key + ": \"" + v + "\" is not a distribution (" + (all ? "uniform, normal, pareto, paretonormal" : "uniform, normal") + ")";
    return false;
  }
  return true;
}

/** A varying setting: NAME<unit>, NAME_jitter<unit>, NAME_dist, NAME_corr. */
struct VaryingKey {
  const char *base;
  const char *unit;
  double max;
  bool allDists;
  bool corr;  // NAME_corr correlates the draws of the jitter (loss and dup: of the event, parsed apart)
  Varying ImpairConfig::*field;
};

const VaryingKey VARYING_KEYS[] = {
    {"delay", "_us", MAX_TIME_US, true, true, &ImpairConfig::delayUs},
    {"slot", "_us", MAX_TIME_US, true, true, &ImpairConfig::slotUs},
    {"loss", "", 100, false, false, &ImpairConfig::loss},
    {"dup", "", 100, false, false, &ImpairConfig::dup},
    {"noise", "", 8.0 * 1048576, false, true, &ImpairConfig::noise},
    {"burst", "", 1e9, false, true, &ImpairConfig::burst},
    {"rate", "_bps", MAX_RATE_BPS, false, true, &ImpairConfig::rateBps},
    {"speed", "_bps", MAX_RATE_BPS, false, true, &ImpairConfig::speedBps},
    {"capacity", "_bytes", 4294967295.0, false, true, &ImpairConfig::capacityBytes},
};

const char *const KNOWN_KEYS =
    "seed, stream, delay_us, slot_us, loss, dup, noise, burst, rate_bps, speed_bps, capacity_bytes (each with _jitter and "
    "_dist forms, and _corr but for loss and dup), loss_corr, dup_corr, dup_repeat, corrupt, corrupt_corr, reorder, reorder_corr, gap, ge_p, ge_r, ge_1h, "
    "ge_1k, s4_p13, s4_p31, s4_p32, s4_p23, s4_p14, overhead_bytes, cell_bytes, cell_overhead_bytes, slot_packets, "
    "slot_bytes, limit, mtu, down, flap_up_us, flap_down_us, fifo";

bool parseVaryingKey(const std::string &k, const std::string &v, ImpairConfig &c, bool *matched, std::string *err) {
  *matched = true;
  for (const VaryingKey &vk : VARYING_KEYS) {
    std::string base = vk.base;
    Varying &f = c.*(vk.field);
    if (k == base + vk.unit) return parseNumber(k, v, 0, vk.max, &f.mean, err);
    if (k == base + "_jitter" + vk.unit) return parseNumber(k, v, 0, vk.max, &f.jitter, err);
    if (k == base + "_dist") return parseDist(k, v, vk.allDists, &f.dist, err);
    if (vk.corr && k == base + "_corr") {
      double x;
      if (!parseNumber(k, v, 0, 100, &x, err)) return false;
      f.u.rho = x / 100;
      return true;
    }
  }
  *matched = false;
  return true;
}

bool parseFlag(const std::string &k, const std::string &v, bool *out, std::string *err) {
  if (v == "1" || v == "true") *out = true;
  else if (v == "0" || v == "false") *out = false;
  else {
    *err = "impair: " + k + ": \"" + v + "\" is not 0 or 1";
    return false;
  }
  return true;
}

bool parseWhole(const std::string &k, const std::string &v, double lo, double hi, double *out, std::string *err) {
  if (!parseNumber(k, v, lo, hi, out, err)) return false;
  if (*out != std::floor(*out)) {
    *err = "impair: " + k + ": \"" + v + "\" is not a whole number";
    return false;
  }
  return true;
}

/** A setting that is a plain number: its range and where it goes. */
struct NumberKey {
  const char *name;
  double lo, hi;
  bool whole;
  void (*store)(ImpairConfig &c, double x);
};

const NumberKey NUMBER_KEYS[] = {
    {"seed", 0, MAX_SEED, true, [](ImpairConfig &c, double x) { c.seed = uint64_t(x), c.seedGiven = true; }},
    {"stream", 0, 4294967295.0, true, [](ImpairConfig &c, double x) { c.stream = uint64_t(x); }},
    {"loss_corr", 0, 100, false, [](ImpairConfig &c, double x) { c.lossCorr = x; }},
    {"dup_corr", 0, 100, false, [](ImpairConfig &c, double x) { c.dupCorr = x; }},
    {"corrupt", 0, 100, false, [](ImpairConfig &c, double x) { c.corrupt = x; }},
    {"corrupt_corr", 0, 100, false, [](ImpairConfig &c, double x) { c.corruptCorr = x; }},
    {"reorder", 0, 100, false, [](ImpairConfig &c, double x) { c.reorder = x; }},
    {"reorder_corr", 0, 100, false, [](ImpairConfig &c, double x) { c.reorderCorr = x; }},
    {"gap", 0, 4294967295.0, true, [](ImpairConfig &c, double x) { c.gap = uint32_t(x); }},
    {"overhead_bytes", -65535, 65535, true, [](ImpairConfig &c, double x) { c.overheadBytes = int32_t(x); }},
    {"cell_bytes", 0, 65535, true, [](ImpairConfig &c, double x) { c.cellBytes = uint32_t(x); }},
    {"cell_overhead_bytes", -65535, 65535, true, [](ImpairConfig &c, double x) { c.cellOverheadBytes = int32_t(x); }},
    {"slot_packets", 0, 4294967295.0, true, [](ImpairConfig &c, double x) { c.slotPackets = uint32_t(x); }},
    {"slot_bytes", 0, 4294967295.0, true, [](ImpairConfig &c, double x) { c.slotBytes = uint32_t(x); }},
    {"limit", 1, MAX_LIMIT_FRAMES, true, [](ImpairConfig &c, double x) { c.limit = uint32_t(x); }},
    {"mtu", 0, 65536, true, [](ImpairConfig &c, double x) { c.mtu = uint32_t(x); }},
    {"flap_up_us", 0, MAX_TIME_US, false, [](ImpairConfig &c, double x) { c.flapUpUs = x; }},
    {"flap_down_us", 0, MAX_TIME_US, false, [](ImpairConfig &c, double x) { c.flapDownUs = x; }},
    {"ge_p", 0, 100, false, [](ImpairConfig &c, double x) { c.ge[0] = x, c.geGiven[0] = true; }},
    {"ge_r", 0, 100, false, [](ImpairConfig &c, double x) { c.ge[1] = x, c.geGiven[1] = true; }},
    {"ge_1h", 0, 100, false, [](ImpairConfig &c, double x) { c.ge[2] = x, c.geGiven[2] = true; }},
    {"ge_1k", 0, 100, false, [](ImpairConfig &c, double x) { c.ge[3] = x, c.geGiven[3] = true; }},
    {"s4_p13", 0, 100, false, [](ImpairConfig &c, double x) { c.s4[0] = x, c.s4Given[0] = true; }},
    {"s4_p31", 0, 100, false, [](ImpairConfig &c, double x) { c.s4[1] = x, c.s4Given[1] = true; }},
    {"s4_p32", 0, 100, false, [](ImpairConfig &c, double x) { c.s4[2] = x, c.s4Given[2] = true; }},
    {"s4_p23", 0, 100, false, [](ImpairConfig &c, double x) { c.s4[3] = x, c.s4Given[3] = true; }},
    {"s4_p14", 0, 100, false, [](ImpairConfig &c, double x) { c.s4[4] = x, c.s4Given[4] = true; }},
};

/** A setting that is 0 or 1. */
struct FlagKey {
  const char *name;
  bool ImpairConfig::*field;
};

const FlagKey FLAG_KEYS[] = {{"dup_repeat", &ImpairConfig::dupRepeat}, {"down", &ImpairConfig::down}, {"fifo", &ImpairConfig::fifo}};

/** Validates a configuration; false with *err naming the setting otherwise. */
bool parseConfig(const StageConfig &cfg, ImpairConfig &c, std::string *err) {
  bool lossCorrGiven = false;
  for (const auto &[k, v] : cfg) {
    bool matched = false;
    if (!parseVaryingKey(k, v, c, &matched, err)) return false;
    for (const NumberKey &nk : NUMBER_KEYS) {
      if (matched || k != nk.name) continue;
      matched = true;
      double x = 0;
      if (!(nk.whole ? parseWhole(k, v, nk.lo, nk.hi, &x, err) : parseNumber(k, v, nk.lo, nk.hi, &x, err))) return false;
      nk.store(c, x);
      if (k == "loss_corr") lossCorrGiven = true;
    }
    for (const FlagKey &fk : FLAG_KEYS) {
      if (matched || k != fk.name) continue;
      matched = true;
      if (!parseFlag(k, v, &(c.*(fk.field)), err)) return false;
    }
    if (!matched) {
      *err = "impair: unknown setting \"" + k + "\" (known: " + KNOWN_KEYS + ")";
      return false;
    }
  }
  // the loss model follows from the settings given; at most one
  bool ge = c.geGiven[0] || c.geGiven[1] || c.geGiven[2] || c.geGiven[3];
  bool s4 = c.s4Given[0] || c.s4Given[1] || c.s4Given[2] || c.s4Given[3] || c.s4Given[4];
  bool burst = c.burst.active();
  bool plain = c.loss.active() || lossCorrGiven;
  if (int(ge) + int(s4) + int(burst && !ge && !s4) > 1 || ((ge || s4) && plain)) {
    *err = "impair: give one loss model: loss (with burst for wirefilter's Gilbert model), ge_* (Gilbert-Elliott) or s4_* (4-state)";
    return false;
  }
  if (ge && !c.geGiven[0]) {
    *err = "impair: the Gilbert-Elliott model needs ge_p";
    return false;
  }
  if (s4 && !c.s4Given[0]) {
    *err = "impair: the 4-state model needs s4_p13";
    return false;
  }
  if (s4) {  // netem's defaults follow p13
    if (!c.s4Given[1]) c.s4[1] = 100 - c.s4[0];
    if (c.s4[0] + c.s4[4] > 100 || c.s4[1] + c.s4[2] > 100) {
      *err = "impair: 4-state model: p13 + p14 and p31 + p32 must not exceed 100";
      return false;
    }
  }
  if (burst && !c.loss.active()) burst = false;  // wirefilter: lostburst without loss loses nothing
  c.lossModel = ge ? LossModel::GilbertElliott : s4 ? LossModel::FourState : burst ? LossModel::Burst : c.loss.active() ? LossModel::Bernoulli : LossModel::None;
  if ((c.flapUpUs > 0) != (c.flapDownUs > 0)) {
    *err = "impair: a flap schedule needs both flap_up_us and flap_down_us";
    return false;
  }
  if (c.reorder > 0 && c.gap == 0) c.gap = 1;  // as tc: reorder without gap is gap 1
  return true;
}

// ---------------------------------------------------------------------------------------------
// the stage

/** One held item: its release time, its arrival number, and the queue that holds it. */
struct HeapEntry {
  uint64_t t;
  uint64_t seq;
  uint32_t slot;
  uint32_t len;
};

/**
 * Room for held frames: a PktQueue per slot, the heap, a stack of freed slots. The arrays are
 * anonymous mappings, so they cost address space only until used (a stage replaced ten times a
 * second by a Markov chain allocates nothing that is touched); a slot's queue is constructed the
 * first time the slot is taken. Moves by swapping.
 */
class SlotArrays {
 public:
  SlotArrays() = default;
  SlotArrays(const SlotArrays &) = delete;
  SlotArrays &operator=(const SlotArrays &) = delete;
  ~SlotArrays() { release(); }

  /** Maps room for n slots (control path); false when the address space is not there. */
  bool reserve(uint32_t n) {
    release();
    size_t bytes = size_t(n) * (sizeof(PktQueue) + sizeof(HeapEntry) + sizeof(uint32_t));
    void *m = bytes ? mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) : MAP_FAILED;
    if (m == MAP_FAILED) return false;
    base_ = m;
    bytes_ = bytes;
    queues_ = static_cast<PktQueue *>(m);
    heap_ = reinterpret_cast<HeapEntry *>(queues_ + n);
    free_ = reinterpret_cast<uint32_t *>(heap_ + n);
    cap_ = n;
    return true;
  }
  /** Takes a free slot; false when all are in use. */
  bool take(uint32_t *slot) {
    if (nfree_) {
      *slot = free_[--nfree_];
      return true;
    }
    if (bump_ == cap_) return false;
    *slot = bump_++;
    new (&queues_[*slot]) PktQueue();
    return true;
  }
  /** Returns a slot (its queue is empty). */
  void give(uint32_t slot) { free_[nfree_++] = slot; }
  /** Slots that may still be taken. */
  uint32_t available() const { return nfree_ + (cap_ - bump_); }
  uint32_t capacity() const { return cap_; }
  PktQueue &queue(uint32_t slot) { return queues_[slot]; }
  HeapEntry *heap() { return heap_; }
  const HeapEntry *heap() const { return heap_; }
  /** Copies what `o` holds (its first `heapN` heap entries) into these larger arrays (control path). */
  void copyFrom(const SlotArrays &o, uint32_t heapN) {
    memcpy(static_cast<void *>(queues_), o.queues_, size_t(o.bump_) * sizeof(PktQueue));
    memcpy(heap_, o.heap_, size_t(heapN) * sizeof(HeapEntry));
    memcpy(free_, o.free_, size_t(o.nfree_) * sizeof(uint32_t));
    bump_ = o.bump_;
    nfree_ = o.nfree_;
  }
  void swap(SlotArrays &o) {
    std::swap(base_, o.base_);
    std::swap(bytes_, o.bytes_);
    std::swap(queues_, o.queues_);
    std::swap(heap_, o.heap_);
    std::swap(free_, o.free_);
    std::swap(cap_, o.cap_);
    std::swap(bump_, o.bump_);
    std::swap(nfree_, o.nfree_);
  }

 private:
  void release() {
    if (base_) munmap(base_, bytes_);
    base_ = nullptr;
    queues_ = nullptr;
    heap_ = nullptr;
    free_ = nullptr;
    cap_ = bump_ = nfree_ = 0;
  }

  void *base_ = nullptr;
  size_t bytes_ = 0;
  PktQueue *queues_ = nullptr;
  HeapEntry *heap_ = nullptr;
  uint32_t *free_ = nullptr;
  uint32_t cap_ = 0, bump_ = 0, nfree_ = 0;
};

class ImpairStage : public Stage {
 public:
  /** A stage with validated settings, for a port's ingress or egress. */
  ImpairStage(const ImpairConfig &c, bool ingress) : c_(c), ingress_(ingress) {
    lossCorr_.rho = c.lossCorr / 100;
    dupCorr_.rho = c.dupCorr / 100;
    corruptCorr_.rho = c.corruptCorr / 100;
    reorderCorr_.rho = c.reorderCorr / 100;
    uint64_t seed = c.seed;
    if (!c.seedGiven) {
      std::random_device rd;
      seed = ((uint64_t(rd()) << 32) ^ rd()) & uint64_t(MAX_SEED);
      c_.seed = seed;
    }
    rng_.seed(seed, c.stream);
    slotRng_.seed(seed, c.stream ^ 0x5107ull);
    slots_.reserve(c.limit);  // a failed mapping leaves no room: frames that must wait are dropped (capacity)
    trivial_ = !c.down && c.flapUpUs <= 0 && c.mtu == 0 && c.lossModel == LossModel::None && !c.dup.active() && c.corrupt <= 0 &&
               !c.noise.active() && c.reorder <= 0 && !c.rateBps.active() && !c.speedBps.active() && !c.delayUs.active() && !slotting() &&
               !c.capacityBytes.active();
    if (c.corrupt > 0 || c.noise.active()) {
      scratch_.reset(new uint8_t[OFFLOAD_SCRATCH_BYTES]);
      segLens_.reset(new uint32_t[MAX_GSO_SEGS]);
    }
  }

  const char *name() const override { return IMPAIR_NAME; }
  // the emulated cable lies outside the port: first on the way in, last on the way out
  int rank() const override { return ingress_ ? RANK_IMPAIR_IN : RANK_IMPAIR_OUT; }
  bool usesTimer() const override { return true; }

  uint64_t deadlineNs() const override {
    if (!heapN_) return NO_DEADLINE_NS;
    uint64_t t = slots_.heap()[0].t;
    if (slotting() && slotNext_ >= t) return slotNext_;
    return t;
  }

  Verdict process(StageEnv &env, const StageFrame &f, DropReason *why) override {
    frames_++;
    if (trivial_ && heapN_ == 0) {
      passed_++;
      return Verdict::Pass;
    }
    uint64_t now = env.nowNs();
    lastNow_ = now;
    if (!flapEpoch_) flapEpoch_ = now;
    if (c_.down || flapDown(now)) {
      linkDown_++;
      *why = DROP_LINK_DOWN;
      return Verdict::Drop;
    }
    uint32_t len = f.out.wireLen();
    uint32_t segs = 1, segMax = len, wireBytes = len;
    gsoShape(f, &segs, &segMax, &wireBytes);
    if (c_.mtu && segMax > c_.mtu) {
      overMtu_++;
      *why = DROP_MTU;
      return Verdict::Drop;
    }
    if (lossEvent()) {
      lost_++;
      *why = DROP_LOSS;
      return Verdict::Drop;
    }
    int copies = 1 + dupCount();
    duplicated_ += uint64_t(copies - 1);
    bool reordered = reorderEvent();
    bool passOriginal = false, held = false;
    for (int copy = 0; copy < copies; copy++) {
      int flips = corruptBits(wireBytes);
      uint64_t t;
      bool ahead = copy == 0 && reordered;
      double rateSave = rateNext_, speedSave = speedNext_;
      if (ahead) {
        t = now;
      } else {
        if (c_.capacityBytes.active()) {
          double cap = c_.capacityBytes.sample(rng_);
          if (double(heldBytes_) + len > cap) {
            overCapacity_++;
            continue;
          }
        }
        double dep = double(now);
        if (c_.speedBps.active() && !serialize(speedNext_, c_.speedBps, dep, segs, wireBytes, &dep)) {
          overCapacity_++;
          continue;
        }
        if (c_.rateBps.active() && !serialize(rateNext_, c_.rateBps, dep, segs, wireBytes, &dep)) {
          overCapacity_++;
          continue;
        }
        double d = c_.delayUs.active() ? c_.delayUs.sample(rng_) * NS_PER_US : 0;
        if (d < 0) d = 0;
        t = uint64_t(dep + d);
        if (c_.fifo && t < lastT_) t = lastT_;
      }
      // the original leaves at once when nothing makes it wait and no earlier frame is still held
      if (copy == 0 && t <= now && flips == 0 && !slotting() && (heapN_ == 0 || ahead || !c_.fifo)) {
        if (ahead) reordered_++;
        passOriginal = true;
        continue;
      }
      if (!hold(env, f, t, flips)) {
        rateNext_ = rateSave;
        speedNext_ = speedSave;
        overCapacity_++;
        continue;
      }
      if (ahead) reordered_++;
      else if (c_.fifo) lastT_ = std::max(lastT_, t);
      held = true;
    }
    if (passOriginal) {
      passed_++;
      return Verdict::Pass;
    }
    if (held) return Verdict::Hold;
    *why = DROP_CAPACITY;
    return Verdict::Drop;
  }

  void timer(StageEnv &env, int port, bool ingress, int index) override {
    uint64_t now = env.nowNs();
    lastNow_ = now;
    while (heapN_) {
      const HeapEntry h = slots_.heap()[0];
      if (h.t > now) break;
      if (slotting()) {
        if (slotNext_ < h.t) newSlot(h.t);  // the link was idle: the next slot starts from here (netem)
        if (slotNext_ > now) break;
      }
      popHeap();
      if (h.seq < maxReleasedSeq_) reordered_++;  // overtaken by a later frame (fifo=0 with jitter)
      else maxReleasedSeq_ = h.seq;
      env.release(slots_.queue(h.slot), port, ingress, index);
      lateNsTotal_ += now - h.t;
      lateNsMax_ = std::max(lateNsMax_, now - h.t);
      slots_.give(h.slot);
      heldBytes_ -= h.len;
      released_++;
      if (slotting()) {
        slotPacketsLeft_--;
        slotBytesLeft_ -= int64_t(h.len);
        if ((c_.slotPackets && slotPacketsLeft_ <= 0) || (c_.slotBytes && slotBytesLeft_ <= 0)) newSlot(now);
      }
    }
  }

  void clear(BlockPool &pool) override {
    for (uint32_t i = 0; i < heapN_; i++) {
      slots_.queue(slots_.heap()[i].slot).clear(pool);
      slots_.give(slots_.heap()[i].slot);
    }
    heapN_ = 0;
    heldBytes_ = 0;
  }

  void adopt(Stage &previous, BlockPool &pool) override {
    (void)pool;
    if (std::strcmp(previous.name(), IMPAIR_NAME) != 0) return;
    ImpairStage &o = static_cast<ImpairStage &>(previous);
    // held frames: the old arrays move over whole when they are large enough for the new limit,
    // else they are copied into this stage's larger ones
    if (o.slots_.capacity() >= c_.limit || slots_.capacity() < o.slots_.capacity()) slots_.swap(o.slots_);
    else slots_.copyFrom(o.slots_, o.heapN_);
    heapN_ = o.heapN_;
    heldBytes_ = o.heldBytes_;
    o.heapN_ = 0;
    o.heldBytes_ = 0;
    seq_ = o.seq_;
    lastT_ = o.lastT_;
    maxReleasedSeq_ = o.maxReleasedSeq_;
    rateNext_ = o.rateNext_;
    speedNext_ = o.speedNext_;
    slotNext_ = o.slotNext_;
    slotPacketsLeft_ = o.slotPacketsLeft_;
    slotBytesLeft_ = o.slotBytesLeft_;
    lastNow_ = o.lastNow_;
    if (c_.flapUpUs > 0 && o.c_.flapUpUs > 0) flapEpoch_ = o.flapEpoch_;
    // model states
    gilbertBad_ = o.gilbertBad_;
    geBad_ = o.geBad_;
    s4State_ = o.s4State_;
    reorderCounter_ = o.reorderCounter_;
    lossCorr_.last = o.lossCorr_.last;
    dupCorr_.last = o.dupCorr_.last;
    corruptCorr_.last = o.corruptCorr_.last;
    reorderCorr_.last = o.reorderCorr_.last;
    c_.delayUs.u.lastZ = o.c_.delayUs.u.lastZ;
    // the random sequence goes on unless a different seed was asked for
    if (!c_.seedGiven || c_.seed == o.c_.seed) {
      rng_ = o.rng_;
      slotRng_ = o.slotRng_;
      c_.seed = o.c_.seed;
    }
    // counters are cumulative
    frames_ = o.frames_;
    passed_ = o.passed_;
    released_ = o.released_;
    lost_ = o.lost_;
    duplicated_ = o.duplicated_;
    corrupted_ = o.corrupted_;
    reordered_ = o.reordered_;
    overCapacity_ = o.overCapacity_;
    overMtu_ = o.overMtu_;
    linkDown_ = o.linkDown_;
    lateNsTotal_ = o.lateNsTotal_;
    lateNsMax_ = o.lateNsMax_;
  }

  void describe(StageValues &out) const override {
    out.emplace_back("frames", double(frames_));
    out.emplace_back("passed", double(passed_));
    out.emplace_back("released", double(released_));
    out.emplace_back("held", double(heapN_));
    out.emplace_back("heldBytes", double(heldBytes_));
    out.emplace_back("lost", double(lost_));
    out.emplace_back("duplicated", double(duplicated_));
    out.emplace_back("corrupted", double(corrupted_));
    out.emplace_back("reordered", double(reordered_));
    out.emplace_back("overCapacity", double(overCapacity_));
    out.emplace_back("overMtu", double(overMtu_));
    out.emplace_back("linkDown", double(linkDown_));
    out.emplace_back("lateUsMean", released_ ? double(lateNsTotal_) / double(released_) / NS_PER_US : 0);
    out.emplace_back("lateUsMax", double(lateNsMax_) / NS_PER_US);
    out.emplace_back("up", c_.down || (lastNow_ && flapDown(lastNow_)) ? 0 : 1);
    out.emplace_back("seed", double(c_.seed));
    out.emplace_back("limit", double(c_.limit));
  }

 private:
  bool slotting() const { return c_.slotUs.active() || c_.slotPackets || c_.slotBytes; }

  bool flapDown(uint64_t now) const {
    if (c_.flapUpUs <= 0) return false;
    uint64_t up = uint64_t(c_.flapUpUs * NS_PER_US), down = uint64_t(c_.flapDownUs * NS_PER_US);
    if (up + down == 0) return false;
    uint64_t phase = (now - flapEpoch_) % (up + down);
    return phase >= up;
  }

  /** Segments a GSO frame stands for, the longest segment and the bytes all of them put on the wire. */
  static void gsoShape(const StageFrame &f, uint32_t *segs, uint32_t *segMax, uint32_t *wireBytes) {
    const VnetHdr *h = f.out.vnet;
    if (!h || h->gsoType == VNET_GSO_NONE || !h->gsoSize) return;
    uint32_t hdr = uint32_t(int(h->hdrLen) + f.out.delta());
    uint32_t len = f.out.wireLen();
    if (hdr >= len) return;
    uint32_t n = (len - hdr + h->gsoSize - 1) / h->gsoSize;
    *segs = n;
    *segMax = std::min(len, hdr + h->gsoSize);
    *wireBytes = len + (n - 1) * hdr;
  }

  /** Time on the wire at rate r for a frame; false when the drawn rate is not above zero (vde2 then loses the frame). */
  bool serialize(double &next, Varying &r, double start, uint32_t segs, uint32_t bytes, double *finish) {
    double bps = r.sample(rng_);
    if (bps <= 0) return false;
    double wire = double(bytes) + double(segs) * c_.overheadBytes;
    if (c_.cellBytes) {
      double perSeg = wire / segs;
      double cells = std::ceil(perSeg / c_.cellBytes);
      wire = segs * cells * (double(c_.cellBytes) + c_.cellOverheadBytes);
    }
    if (wire < 0) wire = 0;
    double onWire = wire * 8 * NS_PER_S / bps;
    if (!(onWire <= MAX_TIME_US * NS_PER_US)) return false;  // a drawn rate near zero: the frame never leaves
    double s = std::max(next, start);
    next = s + onWire;
    *finish = next;
    return true;
  }

  bool lossEvent() {
    switch (c_.lossModel) {
      case LossModel::None:
        return false;
      case LossModel::Bernoulli: {
        double p = c_.loss.sample(rng_) / 100;
        if (p <= 0) return false;
        if (p >= 1) return true;
        return lossCorr_.next(rng_, p);
      }
      case LossModel::Burst: {  // wirefilter's Gilbert model: bursts of mean length `burst`
        double p = c_.loss.sample(rng_) / 100;
        if (p >= 1) return true;
        double len = c_.burst.sample(rng_);
        if (p <= 0 || len <= 0) {
          gilbertBad_ = false;
          return false;
        }
        double alpha = p / (len * (1 - p)), beta = 1 / len;
        if (!gilbertBad_) {
          if (rng_.u01() < alpha) gilbertBad_ = true;
        } else if (rng_.u01() < beta) {
          gilbertBad_ = false;
        }
        return gilbertBad_;
      }
      case LossModel::GilbertElliott: {  // netem's loss_gilb_ell
        double p = c_.ge[0] / 100, r = c_.ge[1] / 100, lossBad = c_.ge[2] / 100, lossGood = c_.ge[3] / 100;
        if (!geBad_) {
          if (rng_.u01() < p) geBad_ = true;
          if (rng_.u01() < lossGood) return true;
        } else {
          if (rng_.u01() < r) geBad_ = false;
          if (rng_.u01() < lossBad) return true;
        }
        return false;
      }
      case LossModel::FourState: {  // netem's loss_4state
        double p13 = c_.s4[0] / 100, p31 = c_.s4[1] / 100, p32 = c_.s4[2] / 100, p23 = c_.s4[3] / 100, p14 = c_.s4[4] / 100;
        double u = rng_.u01();
        switch (s4State_) {
          case 1:  // transmitting, good period
            if (u < p14) {
              s4State_ = 4;
              return true;
            }
            if (u < p14 + p13) {
              s4State_ = 3;
              return true;
            }
            return false;
          case 2:  // transmitting inside a burst
            if (u < p23) {
              s4State_ = 3;
              return true;
            }
            return false;
          case 3:  // lost inside a burst
            if (u < p32) {
              s4State_ = 2;
              return false;
            }
            if (u < p32 + p31) {
              s4State_ = 1;
              return false;
            }
            return true;
          default:  // an isolated loss
            s4State_ = 1;
            return false;
        }
      }
    }
    return false;
  }

  int dupCount() {
    if (!c_.dup.active()) return 0;
    double p = c_.dup.sample(rng_) / 100;
    if (p <= 0) return 0;
    if (!c_.dupRepeat) return dupCorr_.next(rng_, p) ? 1 : 0;
    int n = 0;
    while (n < MAX_COPIES - 1 && rng_.u01() < p) n++;  // wirefilter: another copy while a draw succeeds
    return n;
  }

  bool reorderEvent() {
    if (c_.reorder <= 0) return false;
    if (reorderCounter_ + 1 < c_.gap || !reorderCorr_.next(rng_, c_.reorder / 100)) {
      reorderCounter_++;
      return false;
    }
    reorderCounter_ = 0;
    return true;
  }

  /** Bits to flip in this copy: netem's corrupt (one bit) plus wirefilter's noise (per MiB). */
  int corruptBits(uint32_t bytes) {
    int n = 0;
    if (c_.corrupt > 0 && corruptCorr_.next(rng_, c_.corrupt / 100)) n++;
    if (c_.noise.active()) {
      // noise N damages N bits per MiB: a Poisson number of bits with mean bytes·N/2^20 (wirefilter
      // draws a geometric number, which never ends once the mean reaches one bit per frame)
      double lambda = double(bytes) * std::max(c_.noise.sample(rng_), 0.0) / 1048576.0;
      double cap = std::min<double>(double(bytes) * 8, MAX_FLIPS);
      n += int(std::min(poisson(lambda), cap));
    }
    return n;
  }

  /** A Poisson-distributed number (multiplication method below 30, a rounded normal above). */
  double poisson(double lambda) {
    if (lambda <= 0) return 0;
    if (lambda >= 30) return std::max(0.0, std::floor(lambda + std::sqrt(lambda) * normalQuantile(rng_.u01()) + 0.5));
    double limit = std::exp(-lambda), prod = rng_.u01();
    int k = 0;
    while (prod > limit && k < 1000) {
      prod *= rng_.u01();
      k++;
    }
    return k;
  }

  /** Stores a copy of f for time t (GSO frames to be corrupted are segmented first, as netem does). */
  bool hold(StageEnv &env, const StageFrame &f, uint64_t t, int flips) {
    if (flips > 0 && f.out.vnet && scratch_) {
      int k = vnetResolve(*f.out.vnet, f.out.data, f.out.len, scratch_.get(), segLens_.get());
      if (k <= 0 || heapN_ + uint32_t(k) > c_.limit || slots_.available() < uint32_t(k)) return false;
      int victim = int(rng_.below(uint64_t(k)));
      uint8_t *o = scratch_.get();
      for (int j = 0; j < k; j++) {
        StageFrame seg = f;
        seg.out = OutFrame{o, segLens_[j], f.out.form, f.out.tag, nullptr};
        o += segLens_[j];
        if (!holdOne(env, seg, t, j == victim ? flips : 0)) return j > 0;
      }
      return true;
    }
    return holdOne(env, f, t, flips);
  }

  bool holdOne(StageEnv &env, const StageFrame &f, uint64_t t, int flips) {
    uint32_t slot;
    if (heapN_ >= c_.limit || !slots_.take(&slot)) return false;
    PktQueue &q = slots_.queue(slot);
    if (!env.store(q, f, t, 0)) {
      slots_.give(slot);
      return false;
    }
    uint32_t len = q.frontLen(env.pool());
    if (flips > 0) {
      flip(env.pool(), q, len, flips);
      corrupted_++;
    }
    pushHeap(HeapEntry{t, ++seq_, slot, len});
    heldBytes_ += len;
    return true;
  }

  void flip(BlockPool &pool, PktQueue &q, uint32_t len, int flips) {
    struct iovec iov[PktQueue::MAX_ITEM_IOV];
    int n = q.frontIov(pool, iov);
    for (int i = 0; i < flips && len; i++) {
      uint64_t bit = rng_.below(uint64_t(len) * 8);
      uint64_t byte = bit >> 3;
      for (int k = 0; k < n; k++) {
        if (byte < iov[k].iov_len) {
          static_cast<uint8_t *>(iov[k].iov_base)[byte] ^= uint8_t(1u << (bit & 7));
          break;
        }
        byte -= iov[k].iov_len;
      }
    }
  }

  void newSlot(uint64_t from) {
    double d = c_.slotUs.active() ? c_.slotUs.sample(slotRng_) * NS_PER_US : 0;
    slotNext_ = from + uint64_t(std::max(d, 0.0));
    slotPacketsLeft_ = int64_t(c_.slotPackets);
    slotBytesLeft_ = int64_t(c_.slotBytes);
  }

  static bool before(const HeapEntry &a, const HeapEntry &b) { return a.t < b.t || (a.t == b.t && a.seq < b.seq); }

  void pushHeap(const HeapEntry &e) {
    HeapEntry *heap = slots_.heap();
    uint32_t k = heapN_++;
    while (k > 0) {
      uint32_t parent = (k - 1) / 2;
      if (!before(e, heap[parent])) break;
      heap[k] = heap[parent];
      k = parent;
    }
    heap[k] = e;
  }

  void popHeap() {
    HeapEntry *heap = slots_.heap();
    HeapEntry last = heap[--heapN_];
    uint32_t k = 0;
    for (;;) {
      uint32_t child = 2 * k + 1;
      if (child >= heapN_) break;
      if (child + 1 < heapN_ && before(heap[child + 1], heap[child])) child++;
      if (!before(heap[child], last)) break;
      heap[k] = heap[child];
      k = child;
    }
    if (heapN_) heap[k] = last;
  }

  ImpairConfig c_;
  bool ingress_;
  bool trivial_ = false;
  Rng rng_, slotRng_;
  CorrEvent lossCorr_, dupCorr_, corruptCorr_, reorderCorr_;
  // held frames: one single-item queue per slot, a heap over them, the free slots
  SlotArrays slots_;
  uint32_t heapN_ = 0;
  uint64_t heldBytes_ = 0;
  uint64_t seq_ = 0, maxReleasedSeq_ = 0;
  uint64_t lastT_ = 0;         // latest release time given (fifo)
  double rateNext_ = 0, speedNext_ = 0;
  uint64_t slotNext_ = 0;
  int64_t slotPacketsLeft_ = 0, slotBytesLeft_ = 0;
  uint64_t flapEpoch_ = 0, lastNow_ = 0;
  bool gilbertBad_ = false, geBad_ = false;
  int s4State_ = 1;
  uint32_t reorderCounter_ = 0;
  std::unique_ptr<uint8_t[]> scratch_;
  std::unique_ptr<uint32_t[]> segLens_;
  // counters
  uint64_t lateNsTotal_ = 0, lateNsMax_ = 0;  // how late the timer released frames (the clock's and scheduler's share of the error)
  uint64_t frames_ = 0, passed_ = 0, released_ = 0, lost_ = 0, duplicated_ = 0, corrupted_ = 0, reordered_ = 0, overCapacity_ = 0,
           overMtu_ = 0, linkDown_ = 0;
};

std::unique_ptr<Stage> makeImpair(const StageConfig &cfg, bool ingress, std::string *err) {
  ImpairConfig c;
  if (!parseConfig(cfg, c, err)) return nullptr;
  return std::make_unique<ImpairStage>(c, ingress);
}

const bool registered = registerStageKind(IMPAIR_NAME, &makeImpair);

}  // namespace
}  // namespace vde
