// MAC learning table of the learning policy: bounded, fair under floods, cheap to flush per port.
//
// Maps (MAC, VLAN) — packed into one 64-bit key — to the port it was last seen on and when.
// Entries live in a fixed node array sized to the table's maximum (default 65 536); an
// open-addressing index of node numbers (linear probing, backward-shift deletion, no tombstones)
// finds them. Nothing is allocated after construction or resize(), which only the control path
// calls: learning never grows the table.
//
// Fairness, after Open vSwitch's mac-learning: when the table is full, the entry evicted is the
// least recently seen one of the port that holds the most entries. Each port keeps its entries in
// an LRU list (a refresh moves the entry to the tail), and ports are kept in buckets by entry
// count, so the greediest port is found in O(1). A client flooding random source MACs therefore
// evicts its own entries, not everyone else's. The per-port lists also make a port flush cost that
// port's entries, not the table, and aging walk only expired entries.
//
// Engine thread only, except the statistics, which are atomics any thread may read.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

namespace vde {

/** Packs a 6-byte MAC and a VLAN id into one 64-bit key. */
inline uint64_t macKey(const uint8_t *mac, uint16_t vlan) {
  uint64_t k = 0;
  for (int i = 0; i < 6; i++) k = (k << 8) | mac[i];
  return k | (uint64_t(vlan & 0xfff) << 48);
}

/** The VLAN of a key. */
inline uint16_t keyVlan(uint64_t key) { return uint16_t(key >> 48); }

/** What happened to an entry, for observers (the event stream). */
enum class MacChange : uint8_t { Learned, Moved, Aged, Evicted };

/** Told about entries that are learned, move, age out or are evicted (not about refreshes). */
class MacObserver {
 public:
  virtual ~MacObserver() = default;
  /** key changed: on port (for Moved: from oldPort to port; else oldPort = -1). */
  virtual void macChanged(MacChange what, uint64_t key, int port, int oldPort) = 0;
};

class MacTable {
 public:
  static constexpr uint32_t NIL = ~0u;
  /** Default maximum number of entries. */
  static constexpr uint32_t DEFAULT_MAX_ENTRIES = 65536;
  /** Largest maximum a table may be given. */
  static constexpr uint32_t MAX_ENTRIES_LIMIT = 1u << 20;
  /** Smallest maximum. */
  static constexpr uint32_t MIN_ENTRIES = 16;

  /** One entry as queries report it. */
  struct Info {
    uint64_t key;
    int port;
    uint32_t lastSeen;
    size_t bucket;
  };

  /** Sizes the table for maxEntries entries and numPorts ports. */
  MacTable(uint32_t maxEntries, int numPorts) {
    setPorts(numPorts);
    resize(maxEntries);
  }

  /** Changes the maximum: rebuilds the arrays and keeps the most recent entries that fit (control path). */
  void resize(uint32_t maxEntries) {
    if (maxEntries < MIN_ENTRIES) maxEntries = MIN_ENTRIES;
    if (maxEntries > MAX_ENTRIES_LIMIT) maxEntries = MAX_ENTRIES_LIMIT;
    std::vector<Info> keep;
    keep.reserve(count_);
    for (size_t p = 0; p < ports_.size(); p++)
      for (uint32_t n = ports_[p].head; n != NIL; n = nodes_[n].next) keep.push_back(Info{nodes_[n].key, int(p), nodes_[n].lastSeen, 0});
    size_t idx = 256;
    while (idx < size_t(maxEntries) * 2) idx <<= 1;
    index_.reset(static_cast<uint32_t *>(calloc(idx, sizeof(uint32_t))));
    if (!index_) throw std::bad_alloc();
    nodes_.reset(new Node[maxEntries]);
    mask_ = idx - 1;
    max_ = maxEntries;
    count_ = 0;
    freeHead_ = NIL;
    bump_ = 0;
    for (auto &pe : ports_) pe = PortEntries();
    buckets_.assign(size_t(maxEntries) + 1, NIL);
    maxCount_ = 0;
    // re-insert oldest first so that the LRU order survives; the newest win when they do not all fit
    std::sort(keep.begin(), keep.end(), [](const Info &a, const Info &b) { return a.lastSeen < b.lastSeen; });
    size_t from = keep.size() > maxEntries ? keep.size() - maxEntries : 0;
    for (size_t i = from; i < keep.size(); i++) insertNew(keep[i].key, keep[i].port, keep[i].lastSeen);
    publish();
  }

  /** Sets the number of ports; entries of ports that no longer exist go (control path). */
  void setPorts(int n) {
    if (n < 1) n = 1;
    for (size_t p = size_t(n); p < ports_.size(); p++) flushPort(int(p));
    ports_.resize(size_t(n));
  }

  /** The port of key, or -1. */
  int lookup(uint64_t key) const {
    uint32_t n = findNode(key);
    return n == NIL ? -1 : nodes_[n].port;
  }

  /**
   * Learns that key was seen on port at second now: refreshes, moves (if the entry is older than
   * minPersist seconds on another port, as vde2) or inserts, evicting when full.
   */
  void learn(uint64_t key, int port, uint32_t now, uint32_t minPersist) {
    if (port < 0 || size_t(port) >= ports_.size()) return;
    uint32_t n = findNode(key);
    if (n != NIL) {
      Node &e = nodes_[n];
      if (e.port == port) {
        e.lastSeen = now;
        toTail(n);
      } else if (e.lastSeen + minPersist < now) {
        int old = e.port;
        unlinkPort(n);
        e.port = port;
        e.lastSeen = now;
        linkPort(n);
        if (observer) observer->macChanged(MacChange::Moved, key, port, old);
      }
      return;
    }
    if (count_ >= max_) evictOne();
    insertNew(key, port, now);
    publish();
    if (observer) observer->macChanged(MacChange::Learned, key, port, -1);
  }

  /** Removes every entry of port; returns how many. Costs that port's entries. */
  size_t flushPort(int port) {
    if (port < 0 || size_t(port) >= ports_.size()) return 0;
    size_t k = 0;
    while (ports_[port].head != NIL) {
      removeNode(ports_[port].head);
      k++;
    }
    if (k) publish();
    return k;
  }

  /** Removes the entries of port (any port when -1) in vlan (any when -1); returns how many. */
  size_t flush(int port, int vlan) {
    if (vlan < 0) {
      if (port >= 0) return flushPort(port);
      size_t k = 0;
      for (size_t p = 0; p < ports_.size(); p++) k += flushPort(int(p));
      return k;
    }
    size_t k = 0;
    for (size_t p = 0; p < ports_.size(); p++) {
      if (port >= 0 && int(p) != port) continue;
      for (uint32_t n = ports_[p].head; n != NIL;) {
        uint32_t nx = nodes_[n].next;
        if (keyVlan(nodes_[n].key) == vlan) {
          removeNode(n);
          k++;
        }
        n = nx;
      }
    }
    if (k) publish();
    return k;
  }

  /** Removes entries not seen for more than expire seconds; walks only expired entries and the port list. */
  size_t age(uint32_t now, uint32_t expire) {
    size_t k = 0;
    for (auto &pe : ports_)
      while (pe.head != NIL && nodes_[pe.head].lastSeen + expire < now) {
        if (observer) observer->macChanged(MacChange::Aged, nodes_[pe.head].key, nodes_[pe.head].port, -1);
        removeNode(pe.head);
        k++;
      }
    if (k) publish();
    return k;
  }

  /** Calls fn(Info) for every entry, in index order. */
  template <typename Fn>
  void forEach(Fn &&fn) const {
    for (size_t i = 0; i <= mask_; i++) {
      uint32_t v = index_[i];
      if (v) {
        const Node &e = nodes_[v - 1];
        fn(Info{e.key, e.port, e.lastSeen, i});
      }
    }
  }
  /** The entry of key; false when absent. */
  bool find(uint64_t key, Info &out) const {
    uint32_t n = findNode(key);
    if (n == NIL) return false;
    out = Info{nodes_[n].key, nodes_[n].port, nodes_[n].lastSeen, 0};
    return true;
  }
  /** Entries of port. */
  uint32_t portCount(int port) const { return port >= 0 && size_t(port) < ports_.size() ? ports_[port].count : 0; }

  /** Entries (any thread). */
  size_t size() const { return countPub_.load(std::memory_order_relaxed); }
  /** Maximum entries (any thread). */
  size_t maxEntries() const { return maxPub_.load(std::memory_order_relaxed); }
  /** Index slots (any thread). */
  size_t slots() const { return slotsPub_.load(std::memory_order_relaxed); }
  /** Entries evicted because the table was full, since the start (any thread). */
  uint64_t evictions() const { return evictPub_.load(std::memory_order_relaxed); }

  /** Told about learned, moved, aged and evicted entries when set (engine thread; null: nobody). */
  MacObserver *observer = nullptr;

 private:
  struct Node {
    uint64_t key;
    uint32_t lastSeen;
    int32_t port;
    uint32_t prev, next;  // the port's LRU list (head = least recently seen)
  };
  struct PortEntries {
    uint32_t head = NIL, tail = NIL;
    uint32_t count = 0;
    uint32_t bPrev = NIL, bNext = NIL;  // the count bucket's list of ports
  };
  struct Free {
    void operator()(uint32_t *p) const { free(p); }
  };

  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return size_t(k);
  }
  uint32_t findNode(uint64_t key) const {
    size_t i = hash(key) & mask_;
    for (;;) {
      uint32_t v = index_[i];
      if (!v) return NIL;
      if (nodes_[v - 1].key == key) return v - 1;
      i = (i + 1) & mask_;
    }
  }
  void insertNew(uint64_t key, int port, uint32_t now) {
    uint32_t n;
    if (freeHead_ != NIL) {
      n = freeHead_;
      freeHead_ = nodes_[n].next;
    } else {
      n = bump_++;
    }
    nodes_[n] = Node{key, now, port, NIL, NIL};
    size_t i = hash(key) & mask_;
    while (index_[i]) i = (i + 1) & mask_;
    index_[i] = n + 1;
    count_++;
    linkPort(n);
  }
  // Deletes node n from the index (backward shift), its port list and the count.
  void removeNode(uint32_t n) {
    size_t i = hash(nodes_[n].key) & mask_;
    while (index_[i] != n + 1) i = (i + 1) & mask_;
    size_t j = i;
    for (;;) {
      j = (j + 1) & mask_;
      uint32_t v = index_[j];
      if (!v) break;
      size_t home = hash(nodes_[v - 1].key) & mask_;
      // move v into the hole at i unless its home lies cyclically in (i, j]
      bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (!between) {
        index_[i] = v;
        i = j;
      }
    }
    index_[i] = 0;
    unlinkPort(n);
    nodes_[n].next = freeHead_;
    freeHead_ = n;
    count_--;
  }
  void evictOne() {
    if (maxCount_ == 0) return;
    uint32_t p = buckets_[maxCount_];
    if (observer) observer->macChanged(MacChange::Evicted, nodes_[ports_[p].head].key, int(p), -1);
    removeNode(ports_[p].head);
    evictions_++;
  }
  void toTail(uint32_t n) {
    PortEntries &pe = ports_[nodes_[n].port];
    if (pe.tail == n) return;
    listUnlink(pe, n);
    listAppend(pe, n);
  }
  void linkPort(uint32_t n) {
    int p = nodes_[n].port;
    PortEntries &pe = ports_[p];
    listAppend(pe, n);
    setCount(p, pe.count + 1);
  }
  void unlinkPort(uint32_t n) {
    int p = nodes_[n].port;
    PortEntries &pe = ports_[p];
    listUnlink(pe, n);
    setCount(p, pe.count - 1);
  }
  void listAppend(PortEntries &pe, uint32_t n) {
    nodes_[n].prev = pe.tail;
    nodes_[n].next = NIL;
    if (pe.tail != NIL) nodes_[pe.tail].next = n;
    else pe.head = n;
    pe.tail = n;
  }
  void listUnlink(PortEntries &pe, uint32_t n) {
    Node &e = nodes_[n];
    if (e.prev != NIL) nodes_[e.prev].next = e.next;
    else pe.head = e.next;
    if (e.next != NIL) nodes_[e.next].prev = e.prev;
    else pe.tail = e.prev;
  }
  // Moves port p from its count bucket to the bucket of c and keeps maxCount_ true.
  void setCount(int p, uint32_t c) {
    PortEntries &pe = ports_[p];
    if (pe.count) {
      if (pe.bPrev != NIL) ports_[pe.bPrev].bNext = pe.bNext;
      else buckets_[pe.count] = pe.bNext;
      if (pe.bNext != NIL) ports_[pe.bNext].bPrev = pe.bPrev;
    }
    uint32_t old = pe.count;
    pe.count = c;
    pe.bPrev = pe.bNext = NIL;
    if (c) {
      pe.bNext = buckets_[c];
      if (pe.bNext != NIL) ports_[pe.bNext].bPrev = uint32_t(p);
      buckets_[c] = uint32_t(p);
      if (c > maxCount_) maxCount_ = c;
    }
    if (old == maxCount_ && c < old && buckets_[old] == NIL) maxCount_ = c;
  }
  void publish() {
    countPub_.store(count_, std::memory_order_relaxed);
    maxPub_.store(max_, std::memory_order_relaxed);
    slotsPub_.store(mask_ + 1, std::memory_order_relaxed);
    evictPub_.store(evictions_, std::memory_order_relaxed);
  }

  std::unique_ptr<uint32_t[], Free> index_;  // node + 1; 0 = empty
  std::unique_ptr<Node[]> nodes_;
  size_t mask_ = 0;
  uint32_t max_ = 0, count_ = 0, freeHead_ = NIL, bump_ = 0;
  std::vector<PortEntries> ports_;
  std::vector<uint32_t> buckets_;  // count -> first port with that many entries
  uint32_t maxCount_ = 0;
  uint64_t evictions_ = 0;
  std::atomic<size_t> countPub_{0}, maxPub_{0}, slotsPub_{0};
  std::atomic<uint64_t> evictPub_{0};
};

}  // namespace vde
