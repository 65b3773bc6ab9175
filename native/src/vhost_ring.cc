// Guest memory translation and the device side of split virtqueues (see vhost_ring.h).
#include "vhost_ring.h"

namespace vde {

namespace {

/** Descriptors one frame may use (all its chains together, indirect entries included). */
constexpr uint32_t VRING_MAX_FRAME_DESCS = 1024;
/** Byte offset of the first entry of the available ring (le16 flags, le16 idx). */
constexpr uint64_t AVAIL_RING_OFFSET = 4;
/** Byte offset of the first entry of the used ring (le16 flags, le16 idx). */
constexpr uint64_t USED_RING_OFFSET = 4;
/** Bytes of one used element (le32 id, le32 len). */
constexpr uint64_t USED_ELEM_BYTES = 8;
/** Byte offset of num_buffers in the virtio-net header. */
constexpr uint64_t NUM_BUFFERS_OFFSET = 10;

/** How a chain walk ended. */
enum class Walk : uint8_t { Done, Stopped, Budget, Bad };

inline uint16_t ld16(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

inline void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// guest memory

bool GuestMemory::add(uint64_t gpa, uint64_t uva, uint64_t size, uint8_t *host) {
  if (n_ >= VHOST_MAX_REGIONS || size == 0 || !host) return false;
  if (gpa + size < gpa || uva + size < uva) return false;  // wraps around
  r_[n_++] = GuestRegion{gpa, uva, size, host};
  return true;
}

uint8_t *GuestMemory::uvaRange(uint64_t uva, uint64_t len) const {
  for (int i = 0; i < n_; i++) {
    const GuestRegion &r = r_[i];
    if (uva >= r.uva && uva - r.uva < r.size && len <= r.size - (uva - r.uva)) return r.host + (uva - r.uva);
  }
  return nullptr;
}

uint8_t *GuestMemory::gpaRange(uint64_t gpa, uint64_t len) const {
  for (int i = 0; i < n_; i++) {
    const GuestRegion &r = r_[i];
    if (gpa >= r.gpa && gpa - r.gpa < r.size && len <= r.size - (gpa - r.gpa)) return r.host + (gpa - r.gpa);
  }
  return nullptr;
}

uint8_t *GuestMemory::gpaPtr(uint64_t gpa, uint64_t *contig) const {
  for (int i = 0; i < n_; i++) {
    const GuestRegion &r = r_[i];
    if (gpa >= r.gpa && gpa - r.gpa < r.size) {
      *contig = r.size - (gpa - r.gpa);
      return r.host + (gpa - r.gpa);
    }
  }
  *contig = 0;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// starting and stopping

const char *Vring::start(const GuestMemory &mem, uint32_t num, const VringAddrs &a, uint16_t base, bool indirect, bool eventIdx) {
  started_ = false;
  broken_ = false;
  why_ = "";
  if (num == 0 || num > VRING_MAX_ENTRIES || (num & (num - 1))) return "the queue size is not a power of two up to 32768";
  uint64_t extra = eventIdx ? 2 : 0;
  uint8_t *d = mem.uvaRange(a.descUva, uint64_t(num) * VRING_DESC_BYTES);
  uint8_t *av = mem.uvaRange(a.availUva, AVAIL_RING_OFFSET + 2 * uint64_t(num) + extra);
  uint8_t *u = mem.uvaRange(a.usedUva, USED_RING_OFFSET + USED_ELEM_BYTES * num + extra);
  if (!d || !av || !u) return "a ring address lies outside guest memory";
  if ((reinterpret_cast<uintptr_t>(d) & 15) || (reinterpret_cast<uintptr_t>(av) & 1) || (reinterpret_cast<uintptr_t>(u) & 3))
    return "a ring address is not aligned";
  mem_ = &mem;
  desc_ = d;
  avail_ = av;
  used_ = u;
  num_ = num;
  indirect_ = indirect;
  eventIdx_ = eventIdx;
  lastAvail_ = usedIdx_ = published_ = availIdx_ = base;
  usedFlags_ = 0;
  __atomic_store_n(reinterpret_cast<uint16_t *>(used_), usedFlags_, __ATOMIC_RELAXED);
  if (eventIdx_) __atomic_store_n(availEvent(), base, __ATOMIC_RELAXED);  // a kick for the first buffer
  started_ = true;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// indexes and notifications

bool Vring::refreshAvail() {
  uint16_t a = __atomic_load_n(reinterpret_cast<const uint16_t *>(avail_ + 2), __ATOMIC_ACQUIRE);
  if (uint16_t(a - lastAvail_) > num_) return fail("the available index moved by more than the queue size");
  availIdx_ = a;
  return a != lastAvail_;
}

uint16_t Vring::headAt(uint16_t idx) const { return ld16(avail_ + AVAIL_RING_OFFSET + 2 * uint64_t(idx & (num_ - 1))); }

void Vring::writeUsed(uint16_t id, uint32_t len) {
  uint8_t *e = used_ + USED_RING_OFFSET + USED_ELEM_BYTES * uint64_t(usedIdx_ & (num_ - 1));
  st32(e, id);
  st32(e + 4, len);
  usedIdx_++;
}

uint16_t *Vring::availEvent() const { return reinterpret_cast<uint16_t *>(used_ + USED_RING_OFFSET + USED_ELEM_BYTES * num_); }

bool Vring::publish() {
  if (!started_ || usedIdx_ == published_) return false;
  uint16_t old = published_;
  __atomic_store_n(reinterpret_cast<uint16_t *>(used_ + 2), usedIdx_, __ATOMIC_RELEASE);
  published_ = usedIdx_;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);  // the guest's flags are read after it can see the index
  if (eventIdx_) {
    // virtio 2.7.10: interrupt when used_event lies in [old, new)
    uint16_t ue = __atomic_load_n(reinterpret_cast<const uint16_t *>(avail_ + AVAIL_RING_OFFSET + 2 * uint64_t(num_)), __ATOMIC_RELAXED);
    return uint16_t(usedIdx_ - ue - 1) < uint16_t(usedIdx_ - old);
  }
  uint16_t f = __atomic_load_n(reinterpret_cast<const uint16_t *>(avail_), __ATOMIC_RELAXED);
  return !(f & VRING_AVAIL_F_NO_INTERRUPT);
}

bool Vring::notify(bool on) {
  if (!running()) return false;
  if (eventIdx_) {
    if (!on) return false;  // avail_event stays behind: the guest kicks again only once it is moved
    __atomic_store_n(availEvent(), availIdx_, __ATOMIC_RELAXED);
  } else {
    uint16_t f = on ? 0 : VRING_USED_F_NO_NOTIFY;
    if (f != usedFlags_) {
      usedFlags_ = f;
      __atomic_store_n(reinterpret_cast<uint16_t *>(used_), f, __ATOMIC_RELAXED);
    }
    if (!on) return false;
  }
  __atomic_thread_fence(__ATOMIC_SEQ_CST);  // a buffer added before the guest saw the request is found here
  uint16_t seen = availIdx_;
  refreshAvail();
  return availIdx_ != seen;
}

bool Vring::hasAvail() { return running() && (lastAvail_ != availIdx_ || refreshAvail()); }

// ---------------------------------------------------------------------------------------------
// descriptor chains

namespace {

// Walks the chain that starts at head, calling visit(host, bytes) for each piece of each buffer
// (a buffer that crosses regions comes in several pieces); visit returns false to stop early.
// budget counts the descriptors the frame may still use. Bad sets *why.
template <class Visit>
Walk walkChain(const GuestMemory &mem, const uint8_t *desc, uint32_t num, bool indirectOk, uint16_t head, bool wantWrite,
               uint32_t &budget, const char **why, Visit &&visit) {
  if (head >= num) {
    *why = "a descriptor index is beyond the queue size";
    return Walk::Bad;
  }
  const uint8_t *table = desc;
  uint32_t tableN = num, seen = 0, i = head;
  bool inIndirect = false;
  for (;;) {
    if (budget == 0) return Walk::Budget;
    budget--;
    if (++seen > tableN) {
      *why = "a descriptor chain loops";
      return Walk::Bad;
    }
    uint8_t raw[VRING_DESC_BYTES];
    memcpy(raw, table + uint64_t(i) * VRING_DESC_BYTES, VRING_DESC_BYTES);  // read once: the guest may change it
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
    memcpy(&addr, raw, 8);
    memcpy(&len, raw + 8, 4);
    memcpy(&flags, raw + 12, 2);
    memcpy(&next, raw + 14, 2);
    if (flags & VRING_DESC_F_INDIRECT) {
      if (!indirectOk || inIndirect || (flags & VRING_DESC_F_NEXT)) {
        *why = "an indirect descriptor is not allowed here";
        return Walk::Bad;
      }
      if (len == 0 || len % VRING_DESC_BYTES || len / VRING_DESC_BYTES > VRING_MAX_ENTRIES) {
        *why = "an indirect table has a bad length";
        return Walk::Bad;
      }
      table = mem.gpaRange(addr, len);
      if (!table) {
        *why = "an indirect table lies outside guest memory";
        return Walk::Bad;
      }
      tableN = len / VRING_DESC_BYTES;
      inIndirect = true;
      seen = 0;
      i = 0;
      continue;
    }
    if (bool(flags & VRING_DESC_F_WRITE) != wantWrite) {
      *why = wantWrite ? "a receive buffer is not device-writable" : "a transmit buffer is device-writable";
      return Walk::Bad;
    }
    uint64_t a = addr, left = len;
    while (left) {
      uint64_t contig;
      uint8_t *h = mem.gpaPtr(a, &contig);
      if (!h) {
        *why = "a buffer lies outside guest memory";
        return Walk::Bad;
      }
      uint64_t n = left < contig ? left : contig;
      if (!visit(h, n)) return Walk::Stopped;
      a += n;
      left -= n;
    }
    if (!(flags & VRING_DESC_F_NEXT)) return Walk::Done;
    if (next >= tableN) {
      *why = "a descriptor index is beyond the queue size";
      return Walk::Bad;
    }
    i = next;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// guest transmit: the device reads

TakeResult Vring::take(uint8_t *hdr, uint32_t hdrBytes, uint8_t *out, uint32_t maxBytes, uint32_t *len) {
  if (!running()) return broken_ ? TakeResult::Broken : TakeResult::Empty;
  if (lastAvail_ == availIdx_ && !refreshAvail()) return broken_ ? TakeResult::Broken : TakeResult::Empty;
  uint16_t head = headAt(lastAvail_);
  uint64_t total = 0;
  bool over = false;
  uint32_t budget = VRING_MAX_FRAME_DESCS;
  const char *why = "";
  Walk w = walkChain(*mem_, desc_, num_, indirect_, head, false, budget, &why, [&](const uint8_t *p, uint64_t n) {
    uint64_t off = total;
    total += n;
    if (off < hdrBytes) {
      uint64_t k = n < hdrBytes - off ? n : hdrBytes - off;
      memcpy(hdr + off, p, k);
      p += k;
      n -= k;
      off += k;
    }
    if (!n) return true;
    uint64_t fo = off - hdrBytes;
    if (fo + n > maxBytes) {
      over = true;
      return false;
    }
    memcpy(out + fo, p, n);
    return true;
  });
  if (w == Walk::Bad) {
    fail(why);
    return TakeResult::Broken;
  }
  lastAvail_++;
  writeUsed(head, 0);
  if (over || w == Walk::Budget) return TakeResult::Oversize;
  if (total < hdrBytes) return TakeResult::Runt;
  *len = uint32_t(total - hdrBytes);
  return TakeResult::Frame;
}

// ---------------------------------------------------------------------------------------------
// guest receive: the device writes

PutResult Vring::put(const struct iovec *iov, int iovcnt, uint64_t total, bool mergeable, bool numBuffersField) {
  if (!running()) return broken_ ? PutResult::Broken : PutResult::NoRoom;
  int si = 0;
  size_t so = 0;
  uint64_t done = 0;
  uint8_t *nb[2] = {nullptr, nullptr};
  uint16_t idx = lastAvail_;
  uint32_t heads = 0, budget = VRING_MAX_FRAME_DESCS;
  while (done < total || heads == 0) {
    if (heads > 0 && !mergeable) return PutResult::TooBig;
    if (heads >= num_) return PutResult::TooBig;
    if (idx == availIdx_ && !refreshAvail()) return broken_ ? PutResult::Broken : PutResult::NoRoom;
    if (idx == availIdx_) return PutResult::NoRoom;
    uint16_t head = headAt(idx);
    uint64_t wrote = 0;
    const char *why = "";
    Walk w = walkChain(*mem_, desc_, num_, indirect_, head, true, budget, &why, [&](uint8_t *p, uint64_t n) {
      while (n && done < total) {
        while (si < iovcnt && so >= iov[si].iov_len) {
          si++;
          so = 0;
        }
        if (si >= iovcnt) {  // the gather list is shorter than total: end the frame here
          total = done;
          break;
        }
        uint64_t k = iov[si].iov_len - so;
        if (k > n) k = n;
        if (numBuffersField)
          for (uint64_t t = 0; t < 2; t++)
            if (NUM_BUFFERS_OFFSET + t >= done && NUM_BUFFERS_OFFSET + t < done + k) nb[t] = p + (NUM_BUFFERS_OFFSET + t - done);
        memcpy(p, static_cast<const uint8_t *>(iov[si].iov_base) + so, k);
        p += k;
        n -= k;
        so += k;
        done += k;
        wrote += k;
      }
      return done < total;
    });
    if (w == Walk::Bad) {
      fail(why);
      return PutResult::Broken;
    }
    if (w == Walk::Budget) return PutResult::TooBig;
    uint8_t *e = used_ + USED_RING_OFFSET + USED_ELEM_BYTES * uint64_t(uint16_t(usedIdx_ + heads) & (num_ - 1));
    st32(e, head);
    st32(e + 4, uint32_t(wrote));
    heads++;
    idx++;
  }
  if (nb[0]) *nb[0] = uint8_t(heads);
  if (nb[1]) *nb[1] = uint8_t(heads >> 8);
  lastAvail_ = idx;
  usedIdx_ = uint16_t(usedIdx_ + heads);
  return PutResult::Ok;
}

}  // namespace vde
