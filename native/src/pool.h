// Frame storage off the receive slab: a switch-wide block pool and FIFO packet queues over it.
//
// Frames that cannot leave at once (an endpoint's socket is full, a stage holds a frame until a
// time) are copied out of the receive slab into fixed-size blocks of one BlockPool. The pool is
// the switch-wide memory budget for queued frames: its blocks live in one virtual reservation
// whose pages become resident only when first used, and a pool never holds more than its budget.
// A PktQueue is a FIFO of items (one frame each, with a small header) chained through the pool's
// per-block "next" array, so queueing allocates nothing and an endpoint or stage costs a few words
// of state whether it is congested or not. Engine thread only.
#pragma once

#include <sys/mman.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "offload.h"

namespace vde {

/** Bytes in one pool block. */
constexpr uint32_t POOL_BLOCK_BYTES = 2048;
/** Largest budget a pool may ever be given (virtual reservation; untouched pages cost nothing). */
constexpr size_t POOL_MAX_BUDGET_BYTES = size_t(1) << 30;
/** Default switch-wide budget for queued and held frames. */
constexpr size_t POOL_DEFAULT_BUDGET_BYTES = size_t(64) << 20;
/** Smallest budget accepted. */
constexpr size_t POOL_MIN_BUDGET_BYTES = size_t(1) << 20;

/** A fixed-size block allocator with a budget; blocks are reused LIFO so hot pages stay hot. */
class BlockPool {
 public:
  static constexpr uint32_t NIL = ~0u;

  /** Reserves address space for the largest budget; throws std::bad_alloc when that fails. */
  explicit BlockPool(size_t budgetBytes) {
    maxBlocks_ = uint32_t(POOL_MAX_BUDGET_BYTES / POOL_BLOCK_BYTES);
    void *m = mmap(nullptr, POOL_MAX_BUDGET_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<uint8_t *>(m);
    next_ = static_cast<uint32_t *>(calloc(maxBlocks_, sizeof(uint32_t)));
    if (!next_) {
      munmap(base_, POOL_MAX_BUDGET_BYTES);
      throw std::bad_alloc();
    }
    setBudget(budgetBytes);
  }
  ~BlockPool() {
    munmap(base_, POOL_MAX_BUDGET_BYTES);
    free(next_);
  }
  BlockPool(const BlockPool &) = delete;
  BlockPool &operator=(const BlockPool &) = delete;

  /** Sets the budget (clamped); blocks in use above a lowered budget are kept until freed. */
  void setBudget(size_t bytes) {
    if (bytes < POOL_MIN_BUDGET_BYTES) bytes = POOL_MIN_BUDGET_BYTES;
    if (bytes > POOL_MAX_BUDGET_BYTES) bytes = POOL_MAX_BUDGET_BYTES;
    limitBlocks_ = uint32_t(bytes / POOL_BLOCK_BYTES);
    budgetBytes_.store(size_t(limitBlocks_) * POOL_BLOCK_BYTES, std::memory_order_relaxed);
  }

  /** Takes a block, or NIL when the budget is used up. */
  uint32_t alloc() {
    if (used_ >= limitBlocks_) return NIL;
    uint32_t b;
    if (freeHead_ != NIL) {
      b = freeHead_;
      freeHead_ = next_[b];
    } else {
      b = bump_++;
    }
    next_[b] = NIL;
    used_++;
    usedBytes_.store(size_t(used_) * POOL_BLOCK_BYTES, std::memory_order_relaxed);
    return b;
  }
  /** Returns a chain of blocks (linked through next()) to the pool. */
  void freeChain(uint32_t b) {
    while (b != NIL) {
      uint32_t n = next_[b];
      next_[b] = freeHead_;
      freeHead_ = b;
      used_--;
      b = n;
    }
    usedBytes_.store(size_t(used_) * POOL_BLOCK_BYTES, std::memory_order_relaxed);
  }
  /** The bytes of block b. */
  uint8_t *data(uint32_t b) const { return base_ + size_t(b) * POOL_BLOCK_BYTES; }
  /** The block after b in its chain. */
  uint32_t &next(uint32_t b) { return next_[b]; }
  /** Blocks that may still be taken. */
  uint32_t freeBlocks() const { return used_ >= limitBlocks_ ? 0 : limitBlocks_ - used_; }
  /** Budget in bytes (readable from any thread). */
  size_t budgetBytes() const { return budgetBytes_.load(std::memory_order_relaxed); }
  /** Bytes in use (readable from any thread). */
  size_t usedBytes() const { return usedBytes_.load(std::memory_order_relaxed); }

 private:
  uint8_t *base_ = nullptr;
  uint32_t *next_ = nullptr;
  uint32_t maxBlocks_ = 0;
  uint32_t limitBlocks_ = 0;
  uint32_t used_ = 0;
  uint32_t bump_ = 0;
  uint32_t freeHead_ = NIL;
  std::atomic<size_t> budgetBytes_{0};
  std::atomic<size_t> usedBytes_{0};
};

/** Item flags. */
constexpr uint16_t ITEM_COUNT_OUT = 1;  // counts as one sent frame when fully written
constexpr uint16_t ITEM_VNET = 2;       // carries a virtio-net header (held frames)

/** What a queue keeps beside the bytes of an item. */
struct ItemMeta {
  uint32_t frameLen = 0;  // the frame's length for counters (bytes minus any wire prefix)
  uint16_t flags = 0;
  uint16_t aux = 0;       // user value (stages: the port or direction)
  uint64_t timeNs = 0;    // user value (stages: the release time)
  VnetHdr vnet;           // with ITEM_VNET
};

/** A FIFO of frames stored in pool blocks. */
class PktQueue {
 public:
  /** Most iovecs one item can need (a 64 KiB frame plus prefix spans 34 blocks). */
  static constexpr int MAX_ITEM_IOV = 40;

  /** Appends the bytes of iov as one item; false (nothing queued) when the pool is out of blocks. */
  bool push(BlockPool &pool, const struct iovec *iov, int iovcnt, size_t len, const ItemMeta &meta) {
    size_t need = (len + HDR_BYTES + POOL_BLOCK_BYTES - 1) / POOL_BLOCK_BYTES;
    if (need > pool.freeBlocks() || need > size_t(MAX_ITEM_IOV)) return false;
    uint32_t first = pool.alloc();
    Hdr *h = reinterpret_cast<Hdr *>(pool.data(first));
    h->nextItem = BlockPool::NIL;
    h->len = uint32_t(len);
    h->meta = meta;
    uint32_t blk = first;
    size_t off = HDR_BYTES;
    for (int k = 0; k < iovcnt; k++) {
      const uint8_t *src = static_cast<const uint8_t *>(iov[k].iov_base);
      size_t n = iov[k].iov_len;
      while (n) {
        if (off == POOL_BLOCK_BYTES) {
          uint32_t nb = pool.alloc();
          pool.next(blk) = nb;
          blk = nb;
          off = 0;
        }
        size_t take = n < POOL_BLOCK_BYTES - off ? n : POOL_BLOCK_BYTES - off;
        memcpy(pool.data(blk) + off, src, take);
        off += take;
        src += take;
        n -= take;
      }
    }
    if (tail_ == BlockPool::NIL) head_ = first;
    else reinterpret_cast<Hdr *>(pool.data(tail_))->nextItem = first;
    tail_ = first;
    count_++;
    bytes_ += len;
    return true;
  }

  /** True when no item waits. */
  bool empty() const { return head_ == BlockPool::NIL; }
  /** Items waiting. */
  uint32_t count() const { return count_; }
  /** Bytes waiting. */
  size_t bytes() const { return bytes_; }
  /** Bytes of the head item already written (byte streams). */
  size_t headOffset() const { return headOffset_; }
  /** Records that n more bytes of the head item were written. */
  void advanceHead(size_t n) { headOffset_ += n; }

  /** Metadata of the head item (queue must not be empty). */
  const ItemMeta &frontMeta(const BlockPool &pool) const { return reinterpret_cast<const Hdr *>(pool.data(head_))->meta; }
  /** Length of the head item. */
  uint32_t frontLen(const BlockPool &pool) const { return reinterpret_cast<const Hdr *>(pool.data(head_))->len; }

  /** Fills iov with the unwritten bytes of the head item; returns the iovec count. */
  int frontIov(BlockPool &pool, struct iovec *iov) const { return itemIov(pool, head_, headOffset_, iov); }

  /** Calls fn(iov, iovcnt, len, meta) for up to max items from the head (no offset); returns how many. */
  template <typename Fn>
  int peek(BlockPool &pool, int max, Fn &&fn) const {
    int n = 0;
    for (uint32_t it = head_; it != BlockPool::NIL && n < max; n++) {
      const Hdr *h = reinterpret_cast<const Hdr *>(pool.data(it));
      fn(it, h->len, h->meta);
      it = h->nextItem;
    }
    return n;
  }
  /** iovecs of the item starting at block `item`, skipping `skip` bytes. */
  static int itemIov(BlockPool &pool, uint32_t item, size_t skip, struct iovec *iov) {
    const Hdr *h = reinterpret_cast<const Hdr *>(pool.data(item));
    size_t left = h->len;
    uint32_t blk = item;
    size_t off = HDR_BYTES;
    int c = 0;
    while (left) {
      size_t take = left < POOL_BLOCK_BYTES - off ? left : POOL_BLOCK_BYTES - off;
      if (skip >= take) {
        skip -= take;
      } else {
        iov[c++] = {pool.data(blk) + off + skip, take - skip};
        skip = 0;
      }
      left -= take;
      if (left) {
        blk = pool.next(blk);
        off = 0;
      }
    }
    return c;
  }

  /** Copies the head item's bytes to out (at least frontLen bytes); returns the length. */
  uint32_t copyFront(BlockPool &pool, uint8_t *out) const {
    struct iovec iov[MAX_ITEM_IOV];
    int c = itemIov(pool, head_, 0, iov);
    size_t o = 0;
    for (int k = 0; k < c; k++) {
      memcpy(out + o, iov[k].iov_base, iov[k].iov_len);
      o += iov[k].iov_len;
    }
    return uint32_t(o);
  }

  /** Drops the head item and returns its blocks. */
  void pop(BlockPool &pool) {
    Hdr *h = reinterpret_cast<Hdr *>(pool.data(head_));
    uint32_t nextItem = h->nextItem;
    bytes_ -= h->len;
    count_--;
    headOffset_ = 0;
    pool.freeChain(head_);
    head_ = nextItem;
    if (head_ == BlockPool::NIL) tail_ = BlockPool::NIL;
  }
  /** Drops every item. */
  void clear(BlockPool &pool) {
    while (!empty()) pop(pool);
  }

 private:
  struct Hdr {
    uint32_t nextItem;
    uint32_t len;
    ItemMeta meta;
  };
  static constexpr size_t HDR_BYTES = (sizeof(Hdr) + 15) & ~size_t(15);

  uint32_t head_ = BlockPool::NIL, tail_ = BlockPool::NIL;
  uint32_t count_ = 0;
  size_t bytes_ = 0;
  size_t headOffset_ = 0;
};

}  // namespace vde
