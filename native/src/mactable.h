// MAC learning table of the switch engine.
//
// Maps a (MAC address, VLAN id) pair to the port it was last seen on and the second it was
// last seen. The key packs the 48-bit MAC and the 12-bit VLAN into one 64-bit word, so a lookup
// is one multiply-shift hash and a short linear probe in a flat array: no per-entry allocation,
// no pointer chasing, and it stays fast at 100 000+ addresses because the array doubles whenever
// it is half full. Deletion (aging, port flushes) rebuilds the array from the survivors; that is
// O(entries) but happens at most once per sweep interval or configuration change, never per frame.
// The table is owned by the engine thread and guarded by the engine mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace vde {

/** Packs a 6-byte MAC and a VLAN id into one 64-bit key. */
inline uint64_t macKey(const uint8_t *mac, uint16_t vlan) {
  uint64_t k = 0;
  for (int i = 0; i < 6; i++) k = (k << 8) | mac[i];
  return k | (uint64_t(vlan & 0xfff) << 48);
}

struct MacEntry {
  uint64_t key;      // macKey(); 0 never occurs for a learned unicast address with VLAN 0? see EMPTY_KEY
  uint32_t lastSeen; // engine clock, seconds
  int32_t port;      // output port
};

class MacTable {
 public:
  static constexpr uint64_t EMPTY_KEY = ~uint64_t(0);
  static constexpr size_t MIN_SLOTS = 256;

  explicit MacTable(size_t initialSlots = 1024) { reset(initialSlots); }

  /** Drops every entry and sizes the array for at least `slots` entries. */
  void reset(size_t slots) {
    size_t n = MIN_SLOTS;
    while (n < slots) n <<= 1;
    slots_.assign(n, MacEntry{EMPTY_KEY, 0, -1});
    mask_ = n - 1;
    count_ = 0;
  }

  /** Returns the entry for key or nullptr. */
  MacEntry *find(uint64_t key) {
    size_t i = hash(key) & mask_;
    for (;;) {
      MacEntry &e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == EMPTY_KEY) return nullptr;
      i = (i + 1) & mask_;
    }
  }

  /** Inserts a new entry (key must not be present) and returns it. */
  MacEntry *insert(uint64_t key, int32_t port, uint32_t now) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    size_t i = hash(key) & mask_;
    while (slots_[i].key != EMPTY_KEY) i = (i + 1) & mask_;
    slots_[i] = MacEntry{key, now, port};
    count_++;
    return &slots_[i];
  }

  /** Removes every entry for which drop(entry) is true; returns how many went. */
  size_t removeIf(const std::function<bool(const MacEntry &)> &drop) {
    size_t dropped = 0;
    for (const MacEntry &e : slots_)
      if (e.key != EMPTY_KEY && drop(e)) dropped++;
    if (dropped == 0) return 0;
    std::vector<MacEntry> old;
    old.swap(slots_);
    size_t keep = count_ - dropped;
    size_t n = MIN_SLOTS;
    while (n < keep * 2 + 2) n <<= 1;
    slots_.assign(n, MacEntry{EMPTY_KEY, 0, -1});
    mask_ = n - 1;
    count_ = 0;
    for (const MacEntry &e : old)
      if (e.key != EMPTY_KEY && !drop(e)) insert(e.key, e.port, e.lastSeen);
    return dropped;
  }

  /** Calls fn for every entry in slot order. */
  void forEach(const std::function<void(size_t slot, const MacEntry &)> &fn) const {
    for (size_t i = 0; i < slots_.size(); i++)
      if (slots_[i].key != EMPTY_KEY) fn(i, slots_[i]);
  }

  size_t size() const { return count_; }
  size_t slots() const { return slots_.size(); }

 private:
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return size_t(k);
  }
  void grow() {
    std::vector<MacEntry> old;
    old.swap(slots_);
    size_t n = old.size() * 2;
    slots_.assign(n, MacEntry{EMPTY_KEY, 0, -1});
    mask_ = n - 1;
    count_ = 0;
    for (const MacEntry &e : old)
      if (e.key != EMPTY_KEY) insert(e.key, e.port, e.lastSeen);
  }

  std::vector<MacEntry> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

}  // namespace vde
