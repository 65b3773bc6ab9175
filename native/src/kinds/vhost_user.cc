// The vhost-user-net back-end kind (see vhost_user.h): a QEMU started with
// `-netdev vhost-user,chardev=...` and shared guest memory hands the switch its memory table,
// the addresses of its two virtqueues and an eventfd pair per queue; frames then move between
// the guest's rings and the engine's batch with one copy each way and no system call per frame.
//
// Everything happens on the engine thread: the control socket is the endpoint's input fd, and
// its messages (GET/SET_FEATURES, SET_OWNER, SET_MEM_TABLE, SET_VRING_NUM/ADDR/BASE/KICK/CALL/ERR,
// SET_VRING_ENABLE, GET_VRING_BASE, protocol features, GET_QUEUE_NUM) are handled between frames,
// so the rings and the mappings have one owner and no lock. The guest's transmit queue (1) is
// read into the batch when its kick eventfd fires; the receive queue (0) is written by send(),
// and when the guest has no buffers left the engine queues frames and waits for the receive
// queue's kick (txFd() becomes readable, txWaitReadable()). Kick fds change whenever QEMU
// restarts a queue, so the engine polls two epoll sets of the endpoint's own whose members it
// never sees: one holding the transmit kick (an extra input fd), one holding the receive kick
// and a self-signal used when a queue starts with frames waiting.
//
// Offloads: the virtio-net header of guest frames is checked like a tap's (offload.h) and GSO /
// partial-checksum frames travel on as FM_VNET frames; when the guest accepts checksum and TSO
// offloads (GUEST_CSUM, GUEST_TSO4/6) other ports' GSO frames reach it unsegmented, otherwise the
// engine segments them first. Guest memory is mapped only as the memory table describes it, and
// the rings are parsed by vhost_ring.h, which never trusts the guest.
//
// When QEMU disconnects (it exits, or the VM is killed) the control socket closes and so does
// the endpoint, leaving its port inactive; a new connection is a new endpoint.
#include "vhost_user.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "../offload.h"
#include "../vhost_proto.h"
#include "../vhost_ring.h"

namespace vde {
namespace {

/** Control messages handled per wake-up before frames get their turn again. */
constexpr int MAX_MSGS_PER_WAKEUP = 64;
/** The virtio-net header with num_buffers (virtio 1, or mergeable receive buffers). */
constexpr uint32_t VNET_HDR_MRG_BYTES = 12;
/** Reads of a kick fd per clear (an eventfd empties with one). */
constexpr int MAX_CLEAR_READS = 4;
/** Length of the texts reported with errors. */
constexpr size_t ERR_TEXT_BYTES = 192;

/** Closes fd if open and marks it closed. */
void closeFd(int &fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

/** Empties an eventfd (or whatever QEMU handed over); never blocks, bounded. */
void clearEvent(int fd) {
  if (fd < 0) return;
  uint8_t buf[64];
  for (int i = 0; i < MAX_CLEAR_READS; i++)
    if (read(fd, buf, sizeof buf) <= 0) break;
}

/** Signals an eventfd (non-blocking: a peer that let it fill up loses the signal, not the switch). */
void signalEvent(int fd) {
  if (fd < 0) return;
  uint64_t one = 1;
  ssize_t r = write(fd, &one, sizeof one);
  (void)r;
}

/** Makes fd non-blocking; false when that fails (not an fd). */
bool setNonBlocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

/** One mapping of guest memory (munmap'ed with the endpoint or when the table changes). */
struct Mapping {
  void *base = nullptr;
  size_t len = 0;
};

/** What the back-end knows of one virtqueue. */
struct Queue {
  int kick = -1, call = -1, err = -1;
  uint32_t num = 0;
  VringAddrs addrs;
  bool addrSet = false;
  uint16_t base = 0;
  bool enabled = false;
  bool kicked = false;    // SET_VRING_KICK seen since the last stop: the ring should run
  bool reported = false;  // its failure was reported
  Vring ring;
};

class VhostUserEndpoint : public Endpoint {
 public:
  VhostUserEndpoint(int ctl, int kickEp, int waitEp, int selfEv) : ctl_(ctl), kickEp_(kickEp), waitEp_(waitEp), selfEv_(selfEv) {}

  ~VhostUserEndpoint() override {
    // the endpoint owns every fd it holds, whoever created it (also when the engine refused it)
    for (Queue &q : q_) {
      closeFd(q.kick);
      closeFd(q.call);
      closeFd(q.err);
    }
    dropFds();
    unmap(maps_, nmaps_);
    closeFd(ctl_);
    closeFd(kickEp_);
    closeFd(waitEp_);
    closeFd(selfEv_);
  }

  const char *kindName() const override { return "vhost-user"; }
  int rxFd() const override { return ctl_; }
  int txFd() const override { return waitEp_; }
  bool txWaitReadable() const override { return true; }
  int extraFdCount() const override { return 1; }
  int extraFd(int i) const override { return i == 0 ? kickEp_ : -1; }
  bool takesVnet() const override { return has(VIRTIO_NET_F_GUEST_CSUM) && has(VIRTIO_NET_F_GUEST_TSO4) && has(VIRTIO_NET_F_GUEST_TSO6); }
  // a hang-up of the control socket: handle what QEMU sent last, then its end closes the endpoint
  HupAction onHangup(bool) const override { return HupAction::Drain; }

  // --- guest transmit: control messages, then the transmit queue into the batch
  RxResult receive(int fd, Batch &b, DropCounts &d, EpStatus &st) override {
    if (fd == ctl_) {
      if (!control(st)) return RxResult::Closed;
    } else if (fd == kickEp_) {
      clearEvent(q_[VHOST_TXQ].kick);
    }
    Queue &q = q_[VHOST_TXQ];
    if (!q.ring.running()) {
      reportRing(q, st);
      return RxResult::Ok;
    }
    q.ring.notify(false);  // no kicks while we are reading anyway
    while (!b.full()) {
      uint8_t vh[VNET_HDR_MRG_BYTES];
      uint8_t *f = b.next();
      uint32_t len = 0;
      TakeResult r = q.ring.take(vh, hdrBytes_, f, SLOT_BYTES, &len);
      if (r == TakeResult::Empty || r == TakeResult::Broken) break;
      if (r == TakeResult::Runt) {
        d.drops[DROP_RUNT]++;
        continue;
      }
      if (r == TakeResult::Oversize) {
        d.drops[DROP_OVERSIZE]++;
        continue;
      }
      if (!q.enabled || !featuresSet_) {  // a disabled queue is read and its frames discarded (vhost-user.rst)
        d.drops[DROP_FRAMING]++;
        continue;
      }
      if (len < MIN_FRAME_BYTES) {
        d.drops[DROP_RUNT]++;
        continue;
      }
      VnetHdr h;
      vnetDecode(vh, h);
      VnetVerdict v = (h.flags | h.gsoType) ? vnetCheck(h, f, len) : VnetVerdict::Plain;
      if (v == VnetVerdict::Bad) {
        d.drops[DROP_BAD_VNET]++;
        continue;
      }
      if (h.gsoType == VNET_GSO_NONE && len > maxFrame) {
        d.drops[DROP_OVERSIZE]++;
        continue;
      }
      FrameMeta &m = b.meta[b.count];
      b.commit(len);
      if (v == VnetVerdict::NeedsWork) {
        m.flags |= FM_VNET;
        m.vnet = h;
      }
    }
    if (q.ring.publish()) signalEvent(q.call);
    if (q.ring.broken()) {
      reportRing(q, st);
      return RxResult::Ok;
    }
    if (b.full()) return RxResult::More;
    // the queue looked empty: ask for kicks again, and catch a buffer that raced with that
    if (q.ring.notify(true)) return RxResult::More;
    reportRing(q, st);  // (the index read again may have been impossible)
    return RxResult::Ok;
  }

  // --- guest receive: frames into the receive queue
  int wire(const OutFrame &f, uint8_t *pre, struct iovec *iov, uint32_t *wireBytes) const override {
    if (f.vnet) vnetEncode(*f.vnet, f.delta(), pre);
    else memset(pre, 0, VNET_HDR_BYTES);
    pre[10] = pre[11] = 0;  // num_buffers, filled in by Vring::put
    iov[0] = {pre, hdrBytes_};
    *wireBytes = hdrBytes_ + f.wireLen();
    return 1 + f.parts(iov + 1);
  }

  int send(SendCtx &c, const OutFrame *f, int n) override {
    Queue &q = q_[VHOST_RXQ];
    if (q.ring.broken()) {  // until the guest resets the device nothing can be delivered
      c.pc.drop(DROP_TX_ERROR, uint64_t(n));
      reportRing(q, c.st);
      return n;
    }
    if (!rxReady()) return 0;  // queued until the guest's receive queue runs
    int i = 0;
    while (i < n) {
      uint8_t pre[16];
      struct iovec iov[MAX_WIRE_IOV];
      uint32_t len;
      int k = wire(f[i], pre, iov, &len);
      PutResult r = q.ring.put(iov, k, len, mergeable(), hdrBytes_ == VNET_HDR_MRG_BYTES);
      if (r == PutResult::NoRoom) {
        if (q.ring.notify(true)) continue;  // buffers arrived meanwhile: try again
        reportRing(q, c.st);
        break;
      }
      if (r == PutResult::Broken) {  // this frame and the rest are lost
        c.pc.drop(DROP_TX_ERROR, uint64_t(n - i));
        reportRing(q, c.st);
        i = n;
        break;
      }
      if (r == PutResult::Ok) c.pc.out(f[i].wireLen());
      else c.pc.drop(DROP_OVERSIZE);  // TooBig: it can never fit the guest's buffers
      i++;
    }
    if (q.ring.publish()) signalEvent(q.call);
    if (i == n) q.ring.notify(false);
    return i;
  }

  bool drain(SendCtx &c) override {
    Queue &q = q_[VHOST_RXQ];
    clearEvent(q.kick);
    clearEvent(selfEv_);
    if (!rxReady()) return true;
    while (!txq.empty()) {
      struct iovec iov[PktQueue::MAX_ITEM_IOV];
      int k = txq.frontIov(c.pool, iov);
      PutResult r = q.ring.put(iov, k, txq.frontLen(c.pool), mergeable(), hdrBytes_ == VNET_HDR_MRG_BYTES);
      if (r == PutResult::NoRoom) {
        if (q.ring.notify(true)) continue;
        break;
      }
      const ItemMeta &m = txq.frontMeta(c.pool);
      if (r == PutResult::Ok) {
        if (m.flags & ITEM_COUNT_OUT) c.pc.out(m.frameLen);
      } else if (r == PutResult::TooBig) {
        c.pc.drop(DROP_OVERSIZE);
      } else {
        c.pc.drop(DROP_TX_ERROR);
        reportRing(q, c.st);
      }
      txq.pop(c.pool);
    }
    if (q.ring.publish()) signalEvent(q.call);
    if (txq.empty()) q.ring.notify(false);
    return true;
  }

 private:
  bool has(int feature) const { return features_ & bit(feature); }
  bool mergeable() const { return has(VIRTIO_NET_F_MRG_RXBUF); }
  bool rxReady() const { return featuresSet_ && q_[VHOST_RXQ].enabled && q_[VHOST_RXQ].ring.running(); }

  /** Reports a queue that broke or could not start, once per start (and tells QEMU through the error fd). */
  void reportRing(Queue &q, EpStatus &st) {
    if (!q.ring.broken() || q.reported) return;
    q.reported = true;
    snprintf(errText_, sizeof errText_, "guest %s queue stopped: %s", &q == &q_[VHOST_RXQ] ? "receive" : "transmit", q.ring.why());
    st.fail(EPROTO, errText_);
    signalEvent(q.err);
  }

  // --- the control socket

  /** Handles the messages waiting on the control socket; false when the endpoint must close (st says why). */
  bool control(EpStatus &st) {
    for (int m = 0; m < MAX_MSGS_PER_WAKEUP; m++) {
      int r = readMessage(st);
      if (r < 0) return false;
      if (r == 0) return true;
      bool ok = handle(st);
      dropFds();
      have_ = 0;
      if (!ok) return false;
    }
    return true;
  }

  /** Reads towards one whole message: 1 when it is in msg_, 0 when more must arrive, -1 when the endpoint must close. */
  int readMessage(EpStatus &st) {
    for (;;) {
      size_t want;
      if (have_ < VHOST_HDR_BYTES) {
        want = VHOST_HDR_BYTES - have_;
      } else {
        VhostHdr h = vhostDecodeHdr(msg_);
        if (const char *why = vhostCheckHdr(h)) return protoError(st, why);
        size_t full = VHOST_HDR_BYTES + h.size;
        if (have_ >= full) return 1;
        want = full - have_;
      }
      struct iovec iov = {msg_ + have_, want};
      alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * VHOST_MAX_FDS)];
      struct msghdr mh;
      memset(&mh, 0, sizeof mh);
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      mh.msg_control = cbuf;
      mh.msg_controllen = sizeof cbuf;
      ssize_t r = recvmsg(ctl_, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        st.closeWith(errno, "vhost-user socket read error");
        return -1;
      }
      if (!takeFds(mh)) return protoError(st, "a message carries too many file descriptors");
      if (r == 0) {
        st.closeWith(0, have_ ? "QEMU closed the vhost-user connection inside a message" : "QEMU closed the vhost-user connection");
        return -1;
      }
      have_ += size_t(r);
    }
  }

  /** Keeps the descriptors that came with a read; false when there were more than a message may carry. */
  bool takeFds(struct msghdr &mh) {
    bool ok = !(mh.msg_flags & MSG_CTRUNC);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char *data = CMSG_DATA(c);
      for (size_t i = 0; i < n; i++) {
        int fd;
        memcpy(&fd, data + i * sizeof(int), sizeof fd);
        if (nfds_ < VHOST_MAX_FDS) {
          fds_[nfds_++] = fd;
        } else {
          close(fd);
          ok = false;
        }
      }
    }
    return ok;
  }

  /** Closes the descriptors of the current message that no handler took. */
  void dropFds() {
    for (int i = 0; i < nfds_; i++) closeFd(fds_[i]);
    nfds_ = 0;
  }

  /** Takes the message's first descriptor (or -1). */
  int takeFd() {
    if (nfds_ == 0 || fds_[0] < 0) return -1;
    int fd = fds_[0];
    fds_[0] = -1;
    return fd;
  }

  /** Closes the connection for a protocol violation. */
  int protoError(EpStatus &st, const char *why) {
    snprintf(errText_, sizeof errText_, "vhost-user protocol error: %s", why);
    st.closeWith(EPROTO, errText_);
    return -1;
  }

  /** Sends a reply to request h with a payload; false (the connection closes) when QEMU does not take it at once. */
  bool reply(const VhostHdr &h, const void *payload, uint32_t size, EpStatus &st) {
    uint8_t out[VHOST_HDR_BYTES + 16];
    uint32_t flags = VHOST_VERSION | VHOST_FLAG_REPLY;
    memcpy(out, &h.request, 4);
    memcpy(out + 4, &flags, 4);
    memcpy(out + 8, &size, 4);
    memcpy(out + VHOST_HDR_BYTES, payload, size);
    ssize_t r = ::send(ctl_, out, VHOST_HDR_BYTES + size, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r == ssize_t(VHOST_HDR_BYTES + size)) return true;
    st.closeWith(r < 0 ? errno : EAGAIN, "QEMU does not read the vhost-user replies");
    return false;
  }

  bool replyU64(const VhostHdr &h, uint64_t v, EpStatus &st) { return reply(h, &v, sizeof v, st); }

  /** Handles the message in msg_; false when the connection must close (st says why). */
  bool handle(EpStatus &st) {
    VhostHdr h = vhostDecodeHdr(msg_);
    const uint8_t *p = msg_ + VHOST_HDR_BYTES;
    if (h.size < vhostPayloadBytes(h.request)) return protoError(st, "a message is shorter than its request needs") >= 0;
    uint64_t u64 = 0;
    uint32_t index = 0, num = 0;
    if (h.size >= 8) {
      memcpy(&u64, p, 8);
      memcpy(&index, p, 4);
      memcpy(&num, p + 4, 4);
    }
    bool ok = true;
    switch (h.request) {
      case VHOST_USER_GET_FEATURES:
        return replyU64(h, VHOST_NET_FEATURES, st);
      case VHOST_USER_GET_PROTOCOL_FEATURES:
        return replyU64(h, VHOST_PROTOCOL_FEATURES, st);
      case VHOST_USER_GET_QUEUE_NUM:
        return replyU64(h, VHOST_QUEUE_PAIRS, st);
      case VHOST_USER_SET_FEATURES:
        if (u64 & ~VHOST_NET_FEATURES) return protoError(st, "QEMU acknowledged features the back-end does not offer") >= 0;
        setFeatures(u64);
        break;
      case VHOST_USER_SET_PROTOCOL_FEATURES:
        if (u64 & ~VHOST_PROTOCOL_FEATURES) return protoError(st, "QEMU acknowledged protocol features the back-end does not offer") >= 0;
        protocol_ = u64;
        break;
      case VHOST_USER_SET_OWNER:
        break;
      case VHOST_USER_RESET_OWNER:
        for (int i = 0; i < VHOST_NUM_QUEUES; i++) resetQueue(q_[i]);
        break;
      case VHOST_USER_SET_MEM_TABLE:
        if (!setMemTable(p, h.size, st)) return false;
        break;
      case VHOST_USER_SET_VRING_NUM:
      case VHOST_USER_SET_VRING_BASE:
      case VHOST_USER_SET_VRING_ENABLE:
      case VHOST_USER_GET_VRING_BASE:
      case VHOST_USER_SET_VRING_ADDR: {
        if (index >= uint32_t(VHOST_NUM_QUEUES)) return protoError(st, "a queue index beyond the one queue pair") >= 0;
        Queue &q = q_[index];
        if (h.request == VHOST_USER_SET_VRING_NUM) {
          q.num = num;
        } else if (h.request == VHOST_USER_SET_VRING_BASE) {
          q.base = uint16_t(num);
        } else if (h.request == VHOST_USER_SET_VRING_ENABLE) {
          q.enabled = num != 0;
          if (q.enabled && int(index) == VHOST_RXQ) signalEvent(selfEv_);  // frames may be waiting
        } else if (h.request == VHOST_USER_GET_VRING_BASE) {
          stopQueue(q);
          uint32_t state[2] = {index, q.base};
          return reply(h, state, sizeof state, st);
        } else {
          memcpy(&q.addrs.descUva, p + 8, 8);
          memcpy(&q.addrs.usedUva, p + 16, 8);
          memcpy(&q.addrs.availUva, p + 24, 8);
          q.addrSet = true;
          if (q.ring.running()) restartQueue(q, st);  // moved while running (QEMU does that for logging)
        }
        break;
      }
      case VHOST_USER_SET_VRING_KICK:
      case VHOST_USER_SET_VRING_CALL:
      case VHOST_USER_SET_VRING_ERR: {
        uint64_t qi = u64 & VHOST_VRING_IDX_MASK;
        if (qi >= uint64_t(VHOST_NUM_QUEUES)) return protoError(st, "a queue index beyond the one queue pair") >= 0;
        Queue &q = q_[qi];
        int fd = (u64 & VHOST_VRING_NOFD) ? -1 : takeFd();
        if (fd >= 0 && !setNonBlocking(fd)) closeFd(fd);
        if (h.request == VHOST_USER_SET_VRING_CALL) {
          closeFd(q.call);
          q.call = fd;
        } else if (h.request == VHOST_USER_SET_VRING_ERR) {
          closeFd(q.err);
          q.err = fd;
        } else {
          if (!setKick(int(qi), fd)) return protoError(st, "a kick descriptor cannot be polled") >= 0;
          q.kicked = fd >= 0;  // no fd would mean polling, which this back-end does not do
          startQueue(q, st);
        }
        break;
      }
      default:
        // not offered, so QEMU does not send it: refuse it and say so
        ok = false;
        snprintf(errText_, sizeof errText_, "vhost-user request %u is not supported", h.request);
        st.fail(ENOTSUP, errText_);
        break;
    }
    if (h.flags & VHOST_FLAG_NEED_REPLY) return replyU64(h, ok ? 0 : 1, st);
    return true;
  }

  /** Applies acknowledged device features: the header size, and rings enabled at once without protocol features. */
  void setFeatures(uint64_t f) {
    features_ = f;
    featuresSet_ = true;
    hdrBytes_ = (has(VIRTIO_F_VERSION_1) || has(VIRTIO_NET_F_MRG_RXBUF)) ? VNET_HDR_MRG_BYTES : uint32_t(VNET_HDR_BYTES);
    if (!has(VHOST_USER_F_PROTOCOL_FEATURES))
      for (Queue &q : q_) q.enabled = true;
  }

  /** Puts fd (or nothing) in the epoll set that watches queue qi's kicks; false when it cannot be polled (fd closed). */
  bool setKick(int qi, int fd) {
    Queue &q = q_[qi];
    int set = qi == VHOST_TXQ ? kickEp_ : waitEp_;
    if (q.kick >= 0) {
      epoll_ctl(set, EPOLL_CTL_DEL, q.kick, nullptr);
      closeFd(q.kick);
    }
    if (fd < 0) return true;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(set, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      return false;
    }
    q.kick = fd;
    return true;
  }

  /** Starts a queue once it has everything (size, addresses, kick, memory); a bad ring is reported. */
  void startQueue(Queue &q, EpStatus &st) {
    if (!q.kicked || !q.addrSet || q.num == 0 || mem_.count() == 0) return;
    if (const char *why = q.ring.start(mem_, q.num, q.addrs, q.base, has(VIRTIO_RING_F_INDIRECT_DESC), has(VIRTIO_RING_F_EVENT_IDX))) {
      snprintf(errText_, sizeof errText_, "guest %s queue cannot start: %s", &q == &q_[VHOST_RXQ] ? "receive" : "transmit", why);
      st.fail(EPROTO, errText_);
      signalEvent(q.err);
      return;
    }
    q.reported = false;
    if (&q == &q_[VHOST_RXQ]) signalEvent(selfEv_);  // frames queued while it was stopped
  }

  /** Starts a running queue again where it is (new addresses or memory). */
  void restartQueue(Queue &q, EpStatus &st) {
    q.base = q.ring.lastAvail();
    q.ring.stop();
    startQueue(q, st);
  }

  /** Stops a queue (GET_VRING_BASE): its base is kept for the answer and the next start, its kick closed. */
  void stopQueue(Queue &q) {
    if (q.ring.running() || q.ring.broken()) q.base = q.ring.lastAvail();
    q.ring.stop();
    q.kicked = false;
    setKick(int(&q - q_), -1);
  }

  /** Forgets a queue entirely (RESET_OWNER). */
  void resetQueue(Queue &q) {
    stopQueue(q);
    q.num = 0;
    q.addrSet = false;
    q.base = 0;
    q.enabled = false;
    q.reported = false;
    closeFd(q.call);
    closeFd(q.err);
  }

  /** Unmaps the first n mappings of m. */
  static void unmap(Mapping *m, int n) {
    for (int i = 0; i < n; i++)
      if (m[i].base) munmap(m[i].base, m[i].len);
  }

  /** SET_MEM_TABLE: maps every region of the new table exactly as described, then moves the running rings onto it. */
  bool setMemTable(const uint8_t *p, uint32_t size, EpStatus &st) {
    VhostRegionMsg regs[VHOST_MAX_REGIONS];
    const char *why = "";
    int n = vhostDecodeMemTable(p, size, nfds_, regs, &why);
    if (n < 0) return protoError(st, why) >= 0;
    Mapping next[VHOST_MAX_REGIONS];
    int made = 0;
    GuestMemory mem;
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < n; i++) {
      struct stat sb;
      const VhostRegionMsg &r = regs[i];
      uint64_t len = r.mmapOffset + r.size;
      const char *bad = nullptr;
      if (fstat(fds_[i], &sb) < 0 || !S_ISREG(sb.st_mode)) bad = "a memory region's descriptor is not a file";
      else if (uint64_t(sb.st_size) < len) bad = "a memory region is larger than its file";  // access beyond it would fault
      if (!bad) {
        // hugetlbfs maps whole huge pages: round up to the file's block size while the file covers it
        uint64_t blk = uint64_t(sb.st_blksize);
        if (blk > uint64_t(page) && !(blk & (blk - 1)) && ((len + blk - 1) & ~(blk - 1)) <= uint64_t(sb.st_size)) len = (len + blk - 1) & ~(blk - 1);
        void *a = len <= SIZE_MAX ? mmap(nullptr, size_t(len), PROT_READ | PROT_WRITE, MAP_SHARED, fds_[i], 0) : MAP_FAILED;
        if (a == MAP_FAILED) bad = "guest memory cannot be mapped";
        else {
          next[made++] = Mapping{a, size_t(len)};
          if (!mem.add(r.gpa, r.uva, r.size, static_cast<uint8_t *>(a) + r.mmapOffset)) bad = "a memory region is invalid";
        }
      }
      if (bad) {
        int e = errno;
        unmap(next, made);
        snprintf(errText_, sizeof errText_, "vhost-user: %s", bad);
        st.closeWith(e ? e : EINVAL, errText_);
        return false;
      }
    }
    Mapping old[VHOST_MAX_REGIONS];
    int oldN = nmaps_;
    for (int i = 0; i < oldN; i++) old[i] = maps_[i];
    for (int i = 0; i < made; i++) maps_[i] = next[i];
    nmaps_ = made;
    mem_ = mem;
    for (Queue &q : q_) {
      if (q.ring.running()) restartQueue(q, st);
      else if (q.kicked && !q.ring.broken()) startQueue(q, st);
    }
    unmap(old, oldN);
    return true;
  }

  int ctl_, kickEp_, waitEp_, selfEv_;
  Queue q_[VHOST_NUM_QUEUES];
  GuestMemory mem_;
  Mapping maps_[VHOST_MAX_REGIONS];
  int nmaps_ = 0;
  uint64_t features_ = 0, protocol_ = 0;
  bool featuresSet_ = false;
  uint32_t hdrBytes_ = VNET_HDR_MRG_BYTES;
  // the message being read, and the descriptors that came with it
  uint8_t msg_[VHOST_HDR_BYTES + VHOST_MAX_PAYLOAD_BYTES];
  size_t have_ = 0;
  int fds_[VHOST_MAX_FDS];
  int nfds_ = 0;
  char errText_[ERR_TEXT_BYTES] = {0};
};

}  // namespace

std::unique_ptr<Endpoint> makeVhostUserEndpoint(int fd) {
  int kickEp = epoll_create1(EPOLL_CLOEXEC);
  int waitEp = kickEp >= 0 ? epoll_create1(EPOLL_CLOEXEC) : -1;
  int selfEv = waitEp >= 0 ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;
  bool ok = selfEv >= 0 && setNonBlocking(fd);
  if (ok) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = selfEv;
    ok = epoll_ctl(waitEp, EPOLL_CTL_ADD, selfEv, &ev) == 0;
  }
  if (!ok) {
    int err = errno ? errno : EINVAL;
    for (int f : {fd, kickEp, waitEp, selfEv})
      if (f >= 0) close(f);
    errno = err;
    return nullptr;
  }
  return std::make_unique<VhostUserEndpoint>(fd, kickEp, waitEp, selfEv);
}

}  // namespace vde
