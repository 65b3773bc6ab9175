// Per-port counters that the engine thread writes and any thread reads without a lock.
//
// The engine thread is the only writer, so a counter is bumped with a relaxed load and store of
// an aligned 64-bit atomic (a plain add on x86-64 and arm64, no lock prefix); readers see each
// counter whole, never torn. Counters live in fixed chunks that are allocated once and never
// moved or freed while the engine exists, so a reader can hold a pointer across a change of the
// number of ports. This is how JavaScript reads every port of a 1000-port switch in one call.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>

namespace vde {

/** Why a frame was dropped; the names are what JSON and the docs show. */
enum DropReason {
  DROP_RUNT, DROP_OVERSIZE, DROP_VLAN, DROP_STP, DROP_STORM, DROP_QUEUE_FULL, DROP_TX_ERROR,
  DROP_FRAMING, DROP_BAD_VNET,
  // stages: link emulation (random loss, a full channel buffer, above the link MTU), filters,
  // policers, authenticated encryption that failed; link emulation again: the link is down
  DROP_LOSS, DROP_CAPACITY, DROP_MTU, DROP_FILTER, DROP_POLICE, DROP_AUTH, DROP_LINK_DOWN,
  DROP_COUNT
};
extern const char *const DROP_NAMES[DROP_COUNT];

/** Drops counted by code that runs without the port's counters at hand (endpoint kinds). */
struct DropCounts {
  uint64_t drops[DROP_COUNT] = {};
};

/** One port's counters. */
struct PortCounters {
  std::atomic<uint64_t> inFrames{0}, inBytes{0}, outFrames{0}, outBytes{0};
  std::atomic<uint64_t> drops[DROP_COUNT] = {};
  // gauges: frames and bytes waiting in the egress queues of the port's endpoints (never reset)
  std::atomic<uint64_t> queuedFrames{0}, queuedBytes{0};

  /** Adds n to a counter (single writer: the engine thread). */
  static inline void bump(std::atomic<uint64_t> &c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  /** Counts one drop. */
  inline void drop(DropReason r, uint64_t n = 1) { bump(drops[r], n); }
  /** Counts a received frame. */
  inline void in(uint64_t bytes) {
    bump(inFrames);
    bump(inBytes, bytes);
  }
  /** Counts a sent frame. */
  inline void out(uint64_t bytes) {
    bump(outFrames);
    bump(outBytes, bytes);
  }
  /** Adds drops counted elsewhere. */
  void add(const DropCounts &d) {
    for (int i = 0; i < DROP_COUNT; i++)
      if (d.drops[i]) bump(drops[i], d.drops[i]);
  }
  /** Sets the queue gauges (single writer: the engine thread). */
  inline void queued(uint64_t frames, uint64_t bytes) {
    queuedFrames.store(frames, std::memory_order_relaxed);
    queuedBytes.store(bytes, std::memory_order_relaxed);
  }
  /** Zeroes every counter, not the gauges (engine thread). */
  void reset() {
    for (auto *c : {&inFrames, &inBytes, &outFrames, &outBytes}) c->store(0, std::memory_order_relaxed);
    for (auto &c : drops) c.store(0, std::memory_order_relaxed);
  }
};

/** A plain copy of one port's counters. */
struct CounterSnapshot {
  uint64_t inFrames = 0, inBytes = 0, outFrames = 0, outBytes = 0;
  uint64_t drops[DROP_COUNT] = {};
  uint64_t queuedFrames = 0, queuedBytes = 0;
};

/** Counters for ports 0..MAX_PORTS-1 in chunks that never move. */
class CounterTable {
 public:
  static constexpr int CHUNK_PORTS = 256;
  static constexpr int MAX_PORTS = 65536 + CHUNK_PORTS;
  static constexpr int MAX_CHUNKS = MAX_PORTS / CHUNK_PORTS;

  CounterTable() {
    for (auto &c : chunks_) c.store(nullptr, std::memory_order_relaxed);
  }
  ~CounterTable() {
    for (auto &c : chunks_) delete[] c.load(std::memory_order_relaxed);
  }
  CounterTable(const CounterTable &) = delete;
  CounterTable &operator=(const CounterTable &) = delete;

  /** Makes sure ports 0..n-1 have counters (allocates whole chunks; call off the frame path). */
  void ensure(int n) {
    for (int c = 0; c < MAX_CHUNKS && c * CHUNK_PORTS < n; c++)
      if (!chunks_[c].load(std::memory_order_acquire)) chunks_[c].store(new PortCounters[CHUNK_PORTS], std::memory_order_release);
  }
  /** The counters of port p (ensure() must have covered it). */
  PortCounters &at(int p) { return chunks_[p / CHUNK_PORTS].load(std::memory_order_relaxed)[p % CHUNK_PORTS]; }
  /** A copy of port p's counters from any thread (zeros for a port never created). */
  CounterSnapshot read(int p) const {
    CounterSnapshot s;
    if (p < 0 || p >= MAX_PORTS) return s;
    PortCounters *chunk = chunks_[p / CHUNK_PORTS].load(std::memory_order_acquire);
    if (!chunk) return s;
    const PortCounters &c = chunk[p % CHUNK_PORTS];
    s.inFrames = c.inFrames.load(std::memory_order_relaxed);
    s.inBytes = c.inBytes.load(std::memory_order_relaxed);
    s.outFrames = c.outFrames.load(std::memory_order_relaxed);
    s.outBytes = c.outBytes.load(std::memory_order_relaxed);
    for (int i = 0; i < DROP_COUNT; i++) s.drops[i] = c.drops[i].load(std::memory_order_relaxed);
    s.queuedFrames = c.queuedFrames.load(std::memory_order_relaxed);
    s.queuedBytes = c.queuedBytes.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::atomic<PortCounters *> chunks_[MAX_CHUNKS];
};

}  // namespace vde
