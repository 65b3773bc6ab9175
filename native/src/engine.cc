// Implementation of the frame engine (see engine.h for the design).
//
// The per-frame work lives in processFrames/forwardOne (classify, learn, decide destinations)
// and flushOut/sendToEndpoint (one sendmmsg or writev per destination endpoint). Everything
// else is configuration under the mutex or the slow paths: egress queueing on EAGAIN, stream
// reassembly, aging sweeps and error reporting.
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace vde {

const char *const DROP_NAMES[DROP_COUNT] = {"runt",      "oversize",   "vlan",     "stp", "storm",
                                            "queueFull", "txError", "framing", "badVnetHdr"};

static constexpr uint64_t WAKE_TAG = ~uint64_t(0);
static constexpr uint64_t TX_TAG = uint64_t(1) << 62;  // epoll tag bit: the write side of a split endpoint
static constexpr uint64_t EXTRA_TAG = uint64_t(1) << 61;  // epoll tag bit: an extra input fd of a custom endpoint
static constexpr int EXTRA_FD_SHIFT = 32;                 // the fd number rides in bits 32..60 of the tag
static constexpr int EPOLL_WAIT_MS = 200;
static constexpr int EP_ID_BITS = 20;
static constexpr uint32_t EP_ID_MASK = (1u << EP_ID_BITS) - 1;
static constexpr int RX_ROUNDS_PER_WAKEUP = 1;
static constexpr size_t STREAM_RX_BYTES = 2 * (MAX_STREAM_FRAME_BYTES + 4);
static constexpr uint16_t ETH_P_8021Q_BE = 0x0081;  // 0x8100 as read little-endian from the wire

static inline bool isGroup(const uint8_t *mac) { return mac[0] & 1; }

Engine::Engine(int numPorts, EventSink sink)
    : sink_(std::move(sink)), macs_(1024) {
  ports_.resize(std::max(numPorts, 1));
  pending_.resize(ports_.size());
  flood_.resize(VLAN_COUNT);
  slab_.resize(size_t(RX_BATCH_FRAMES) * SLOT_BYTES);
  memset(rxMsgs_, 0, sizeof rxMsgs_);
  for (int i = 0; i < RX_BATCH_FRAMES; i++) {
    rxIovs_[i].iov_base = slab_.data() + size_t(i) * SLOT_BYTES;
    rxIovs_[i].iov_len = rxIovLen_;
    rxMsgs_[i].msg_hdr.msg_iov = &rxIovs_[i];
    rxMsgs_[i].msg_hdr.msg_iovlen = 1;
  }
  epSlots_.resize(1, nullptr);
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = WAKE_TAG;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  now_ = nowSeconds();
  nextGc_ = now_ + gcIntervalSeconds_;
  thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  stop();
  for (Endpoint *ep : epSlots_) {
    if (!ep) continue;
    if (ep->closeFd) {
      close(ep->fd);
      if (ep->txFd != ep->fd) close(ep->txFd);
    }
    delete ep;
  }
  if (epfd_ >= 0) close(epfd_);
  if (wakefd_ >= 0) close(wakefd_);
}

void Engine::stop() {
  if (!running_.exchange(false)) return;
  uint64_t one = 1;
  ssize_t r = write(wakefd_, &one, sizeof one);
  (void)r;
  if (thread_.joinable()) thread_.join();
}

uint32_t Engine::nowSeconds() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint32_t(ts.tv_sec);
}

// ---------------------------------------------------------------------------------------------
// configuration

void Engine::setNumPorts(int n) {
  std::lock_guard<std::mutex> g(mu_);
  if (n < 1) n = 1;
  if (size_t(n) < ports_.size()) {
    for (size_t p = n; p < ports_.size(); p++)
      for (Endpoint *ep : std::vector<Endpoint *>(ports_[p].eps)) closeEndpointLocked(ep, nullptr, 0);
  }
  ports_.resize(n);
  pending_.resize(n);
  macs_.removeIf([n](const MacEntry &e) { return e.port >= n; });
  for (Port &p : ports_) {
    if (p.mirrorIn >= n) p.mirrorIn = -1;
    if (p.mirrorOut >= n) p.mirrorOut = -1;
  }
  floodDirty_ = true;
}

uint32_t Engine::addEndpoint(int port, int fd, EpKind kind, uint32_t maxFrame, bool closeFd, int txFd,
                             bool adoptPeer, bool vnetHdr) {
  std::lock_guard<std::mutex> g(mu_);
  if (port < 0 || size_t(port) >= ports_.size()) return 0;
  if (txFd < 0) txFd = fd;
  for (int f : {fd, txFd}) {
    int flags = fcntl(f, F_GETFL);
    if (flags < 0) return 0;
    fcntl(f, F_SETFL, flags | O_NONBLOCK);
  }
  size_t idx = 0;
  for (size_t i = 1; i < epSlots_.size(); i++)
    if (!epSlots_[i]) { idx = i; break; }
  if (idx == 0) {
    if (epSlots_.size() > EP_ID_MASK) return 0;
    idx = epSlots_.size();
    epSlots_.push_back(nullptr);
  }
  Endpoint *ep = new Endpoint();
  ep->id = uint32_t(idx) | ((nextGen_++ & 0xfff) << EP_ID_BITS);
  if (ep->id == 0) ep->id = uint32_t(idx) | (1u << EP_ID_BITS);
  ep->fd = fd;
  ep->txFd = txFd;
  ep->adoptPeer = adoptPeer;
  ep->peerConnected = !adoptPeer;
  ep->port = port;
  ep->kind = kind;
  ep->maxFrame = std::min<uint32_t>(std::max<uint32_t>(maxFrame, MIN_FRAME_BYTES), MAX_STREAM_FRAME_BYTES);
  ep->closeFd = closeFd;
  ep->vnetHdr = vnetHdr && kind == EpKind::Tap;
  if (kind == EpKind::Tap) {  // a tap opened with IFF_VNET_HDR says so itself: never mismatch
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (ioctl(fd, TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_VNET_HDR)) {
      int sz = int(VNET_HDR_BYTES);
      if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
        delete ep;
        return 0;
      }
      ep->vnetHdr = true;
    } else {
      ep->vnetHdr = false;
    }
  }
  if (kind == EpKind::Stream2 || kind == EpKind::Stream4) ep->rx.resize(STREAM_RX_BYTES);
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = ep->id;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
    delete ep;
    return 0;
  }
  epSlots_[idx] = ep;
  ports_[port].eps.push_back(ep);
  floodDirty_ = true;
  return ep->id;
}

uint32_t Engine::addCustomEndpoint(int port, std::unique_ptr<EndpointIo> io, uint32_t maxFrame) {
  int fd = io->fd();
  std::vector<int> extra = io->extraFds();
  uint32_t id = addEndpoint(port, fd, EpKind::Custom, maxFrame, false);
  if (!id) return 0;  // io (and its fds) released by the unique_ptr
  std::lock_guard<std::mutex> g(mu_);
  Endpoint *ep = lookup(id);
  ep->io = std::move(io);
  for (int x : extra) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = uint64_t(id) | EXTRA_TAG | (uint64_t(uint32_t(x)) << EXTRA_FD_SHIFT);
    epoll_ctl(epfd_, EPOLL_CTL_ADD, x, &ev);
  }
  return id;
}

Endpoint *Engine::lookup(uint32_t id) {
  size_t idx = id & EP_ID_MASK;
  if (idx == 0 || idx >= epSlots_.size()) return nullptr;
  Endpoint *ep = epSlots_[idx];
  return ep && ep->id == id ? ep : nullptr;
}

void Engine::closeEndpointLocked(Endpoint *ep, const char *why, int err) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, ep->fd, nullptr);
  if (ep->io)
    for (int x : ep->io->extraFds()) epoll_ctl(epfd_, EPOLL_CTL_DEL, x, nullptr);
  if (ep->txFd != ep->fd && ep->wantOut) epoll_ctl(epfd_, EPOLL_CTL_DEL, ep->txFd, nullptr);
  if (ep->closeFd) {
    close(ep->fd);
    if (ep->txFd != ep->fd) close(ep->txFd);
  }
  Port &p = ports_[ep->port];
  p.eps.erase(std::remove(p.eps.begin(), p.eps.end(), ep), p.eps.end());
  if (p.eps.empty()) {
    int port = ep->port;
    macs_.removeIf([port](const MacEntry &e) { return e.port == port; });
    for (Port &q : ports_) q.lastSrcKey = MacTable::EMPTY_KEY;
    floodDirty_ = true;
  }
  if (ep->paused) pausedCount_--;
  epSlots_[ep->id & EP_ID_MASK] = nullptr;
  if (why) {
    EngineEvent e;
    e.type = "epClosed";
    e.port = ep->port;
    e.ep = ep->id;
    e.err = err;
    e.detail = why;
    pushEvent(std::move(e));
  }
  delete ep;
}

bool Engine::removeEndpoint(uint32_t id) {
  std::lock_guard<std::mutex> g(mu_);
  Endpoint *ep = lookup(id);
  if (!ep) return false;
  closeEndpointLocked(ep, nullptr, 0);
  return true;
}

void Engine::setHub(bool on) {
  std::lock_guard<std::mutex> g(mu_);
  hub_ = on;
  macs_.removeIf([](const MacEntry &) { return true; });
  for (Port &q : ports_) q.lastSrcKey = MacTable::EMPTY_KEY;
  floodDirty_ = true;
}

void Engine::setBackpressure(bool on) {
  std::lock_guard<std::mutex> g(mu_);
  backpressure_ = on;
  if (!on) resumePaused();
}

bool Engine::othersQueued(int port) const {
  for (size_t p = 0; p < ports_.size(); p++) {
    if (int(p) == port) continue;
    for (const Endpoint *o : ports_[p].eps)
      if (!o->txq.empty()) return true;
  }
  return false;
}

void Engine::setPaused(Endpoint *ep, bool paused) {
  if (ep->paused == paused) return;
  ep->paused = paused;
  pausedCount_ += paused ? 1 : -1;
  struct epoll_event ev = {};
  ev.events = (paused ? 0u : uint32_t(EPOLLIN)) | (ep->wantOut && ep->txFd == ep->fd ? uint32_t(EPOLLOUT) : 0u);
  ev.data.u64 = ep->id;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, ep->fd, &ev);
}

void Engine::resumePaused() {
  if (!pausedCount_) return;
  for (Endpoint *ep : epSlots_)
    if (ep && ep->paused && (!backpressure_ || !othersQueued(ep->port))) setPaused(ep, false);
}

void Engine::setUntagged(int port, uint16_t vlan) {
  std::lock_guard<std::mutex> g(mu_);
  if (port < 0 || size_t(port) >= ports_.size()) return;
  ports_[port].untagged = vlan & 0xfff;
  macs_.removeIf([port](const MacEntry &e) { return e.port == port; });
  ports_[port].lastSrcKey = MacTable::EMPTY_KEY;
  floodDirty_ = true;
}

void Engine::setTagged(int port, uint16_t vlan, bool on) {
  std::lock_guard<std::mutex> g(mu_);
  if (port < 0 || size_t(port) >= ports_.size()) return;
  ports_[port].tagged.set(vlan & 0xfff, on);
  if (!on) {
    uint64_t v = vlan & 0xfff;
    macs_.removeIf([port, v](const MacEntry &e) { return e.port == port && (e.key >> 48) == v; });
    ports_[port].lastSrcKey = MacTable::EMPTY_KEY;
  }
  floodDirty_ = true;
}

void Engine::setForeignTags(ForeignTags mode) {
  std::lock_guard<std::mutex> g(mu_);
  foreign_ = mode;
}

void Engine::setStpCapture(bool on) {
  std::lock_guard<std::mutex> g(mu_);
  stpCapture_ = on;
}

void Engine::setStpState(int port, StpState s) {
  std::lock_guard<std::mutex> g(mu_);
  if (port < 0 || size_t(port) >= ports_.size()) return;
  ports_[port].stp = s;
  if (s == StpState::Discarding) {
    macs_.removeIf([port](const MacEntry &e) { return e.port == port; });
    ports_[port].lastSrcKey = MacTable::EMPTY_KEY;
  }
  floodDirty_ = true;
}

void Engine::setAging(uint32_t expireSeconds, uint32_t minPersistSeconds, uint32_t gcIntervalSeconds) {
  std::lock_guard<std::mutex> g(mu_);
  expireSeconds_ = expireSeconds;
  minPersistSeconds_ = minPersistSeconds;
  gcIntervalSeconds_ = std::max<uint32_t>(gcIntervalSeconds, 1);
  nextGc_ = now_ + gcIntervalSeconds_;
}

void Engine::setStorm(int port, uint32_t pps) {
  std::lock_guard<std::mutex> g(mu_);
  if (port < 0 || size_t(port) >= ports_.size()) return;
  ports_[port].stormLimitPps = pps;
  ports_[port].stormTokens = pps;
}

void Engine::setMirror(int port, int inTarget, int outTarget) {
  std::lock_guard<std::mutex> g(mu_);
  if (port < 0 || size_t(port) >= ports_.size()) return;
  int n = int(ports_.size());
  ports_[port].mirrorIn = inTarget < n ? inTarget : -1;
  ports_[port].mirrorOut = outTarget < n ? outTarget : -1;
}

void Engine::resizeMacTable(size_t slots) {
  std::lock_guard<std::mutex> g(mu_);
  macs_.reset(slots);
  for (Port &q : ports_) q.lastSrcKey = MacTable::EMPTY_KEY;
}

size_t Engine::flushMacs(int port, int vlan) {
  std::lock_guard<std::mutex> g(mu_);
  for (Port &q : ports_) q.lastSrcKey = MacTable::EMPTY_KEY;
  return macs_.removeIf([port, vlan](const MacEntry &e) {
    return (port < 0 || e.port == port) && (vlan < 0 || int(e.key >> 48) == vlan);
  });
}

void Engine::resetCounters(int port) {
  std::lock_guard<std::mutex> g(mu_);
  for (size_t p = 0; p < ports_.size(); p++)
    if (port < 0 || int(p) == port) ports_[p].c = PortCounters();
}

bool Engine::injectFrame(int port, const uint8_t *data, size_t len) {
  std::lock_guard<std::mutex> g(mu_);
  if (port < 0 || size_t(port) >= ports_.size() || len < MIN_FRAME_BYTES || len > SLOT_BYTES) return false;
  memcpy(slab_.data(), data, len);
  lens_[0] = uint32_t(len);
  Port &p = ports_[port];
  for (Endpoint *ep : std::vector<Endpoint *>(p.eps)) {
    int slot = 0;
    uint8_t form = 0;
    sendToEndpoint(ep, port, &slot, &form, 1);
  }
  p.c.outFrames++;
  p.c.outBytes += len;
  return true;
}

// ---------------------------------------------------------------------------------------------
// queries

std::vector<MacInfo> Engine::macTable() {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<MacInfo> out;
  out.reserve(macs_.size());
  uint32_t now = nowSeconds();
  macs_.forEach([&](size_t slot, const MacEntry &e) {
    out.push_back(MacInfo{e.key, e.port, now - std::min(now, e.lastSeen), slot});
  });
  return out;
}

bool Engine::macFind(uint64_t key, MacInfo &out) {
  std::lock_guard<std::mutex> g(mu_);
  MacEntry *e = macs_.find(key);
  if (!e) return false;
  uint32_t now = nowSeconds();
  out = MacInfo{e->key, e->port, now - std::min(now, e->lastSeen), 0};
  return true;
}

PortCounters Engine::counters(int port) {
  std::lock_guard<std::mutex> g(mu_);
  if (port < 0 || size_t(port) >= ports_.size()) return PortCounters();
  return ports_[port].c;
}

size_t Engine::macCount() {
  std::lock_guard<std::mutex> g(mu_);
  return macs_.size();
}

size_t Engine::macSlots() {
  std::lock_guard<std::mutex> g(mu_);
  return macs_.slots();
}

int Engine::numPorts() {
  std::lock_guard<std::mutex> g(mu_);
  return int(ports_.size());
}

std::vector<EngineEvent> Engine::takeEvents() {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<EngineEvent> out;
  out.swap(events_);
  eventsSignalled_ = false;
  return out;
}

void Engine::pushEvent(EngineEvent &&e) {
  static constexpr size_t MAX_QUEUED_EVENTS = 4096;
  if (events_.size() >= MAX_QUEUED_EVENTS) return;
  events_.push_back(std::move(e));
}

// ---------------------------------------------------------------------------------------------
// the loop

void Engine::run() {
  static constexpr int MAX_EVENTS = 256;
  struct epoll_event evs[MAX_EVENTS];
  while (running_.load(std::memory_order_relaxed)) {
    int n = epoll_wait(epfd_, evs, MAX_EVENTS, EPOLL_WAIT_MS);
    if (n < 0 && errno != EINTR) break;
    bool signal = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      now_ = nowSeconds();
      if (floodDirty_) rebuildFlood();
      for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == WAKE_TAG) {
          uint64_t v;
          ssize_t r = read(wakefd_, &v, sizeof v);
          (void)r;
          continue;
        }
        Endpoint *ep = lookup(uint32_t(evs[i].data.u64));
        if (!ep) continue;
        uint32_t e = evs[i].events;
        if (evs[i].data.u64 & EXTRA_TAG) {
          if (ep->io) handleCustomRx(ep, int((evs[i].data.u64 >> EXTRA_FD_SHIFT) & 0x1fffffff));
          continue;
        }
        if (evs[i].data.u64 & TX_TAG) {  // the separate write side became writable (or failed)
          if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) flushTx(ep);
          continue;
        }
        if (e & EPOLLOUT) {
          if (!flushTx(ep)) continue;
        }
        if (e & EPOLLIN) {
          if (backpressure_ && othersQueued(ep->port)) {
            setPaused(ep, true);  // read again once the other side has drained its queue
            continue;
          }
          uint32_t id = ep->id;
          handleRx(ep);
          if (!(ep = lookup(id))) continue;
        }
        if ((e & EPOLLHUP) && (ep->kind == EpKind::Stream2 || ep->kind == EpKind::Stream4) && !(e & EPOLLIN)) {
          handleStreamRx(ep);  // drain what is left, then report the end of stream (or a cut frame)
          continue;
        }
        if ((e & (EPOLLHUP | EPOLLERR)) && !(e & EPOLLIN)) {
          int err = 0;
          socklen_t l = sizeof err;
          getsockopt(ep->fd, SOL_SOCKET, SO_ERROR, &err, &l);
          if (ep->kind == EpKind::Dgram && !(e & EPOLLHUP)) {
            if (!ep->failed) failEndpoint(ep, err, "socket error");
          } else {
            closeEndpointLocked(ep, (e & EPOLLHUP) ? "hang-up" : "socket error", err);
          }
        }
      }
      if (now_ >= nextGc_) {
        gc();
        nextGc_ = now_ + gcIntervalSeconds_;
      }
      if (!events_.empty() && !eventsSignalled_) {
        eventsSignalled_ = true;
        signal = true;
      }
    }
    if (signal && sink_) sink_();
  }
}

void Engine::gc() {
  uint32_t now = now_, exp = expireSeconds_;
  size_t dropped = macs_.removeIf([now, exp](const MacEntry &e) { return e.lastSeen + exp < now; });
  if (dropped)
    for (Port &q : ports_) q.lastSrcKey = MacTable::EMPTY_KEY;
}

bool Engine::portForwards(int p) const {
  return !ports_[p].eps.empty() && ports_[p].stp == StpState::Forwarding;
}

void Engine::rebuildFlood() {
  for (auto &v : flood_) v.clear();
  hubFlood_.clear();
  for (size_t p = 0; p < ports_.size(); p++) {
    if (ports_[p].eps.empty()) continue;
    if (p != 0) hubFlood_.push_back(int(p));
    if (ports_[p].stp != StpState::Forwarding) continue;
    const Port &q = ports_[p];
    if (q.untagged != VLAN_NONE) flood_[q.untagged].push_back(int(p));
    if (q.tagged.any())
      for (int v = 0; v < VLAN_COUNT; v++)
        if (q.tagged.test(v) && v != q.untagged) flood_[v].push_back(int(p));
  }
  floodDirty_ = false;
}

void Engine::failEndpoint(Endpoint *ep, int err, const char *what) {
  ep->failed = true;
  EngineEvent e;
  e.type = "epError";
  e.port = ep->port;
  e.ep = ep->id;
  e.err = err;
  e.detail = what;
  pushEvent(std::move(e));
}

void Engine::handleRx(Endpoint *ep) {
  int inPort = ep->port;
  if (ep->kind == EpKind::Dgram && ep->adoptPeer) {
    handleAdoptRx(ep);
    return;
  }
  if (ep->kind == EpKind::Custom) {
    if (ep->io) handleCustomRx(ep, ep->fd);
    return;
  }
  if (ep->kind == EpKind::Dgram) {
    struct mmsghdr *msgs = rxMsgs_;
    if (rxIovLen_ != ep->maxFrame) {  // headers are built once; only the length may change
      for (int i = 0; i < RX_BATCH_FRAMES; i++) rxIovs_[i].iov_len = ep->maxFrame;
      rxIovLen_ = ep->maxFrame;
    }
    for (int round = 0; round < RX_ROUNDS_PER_WAKEUP; round++) {
      int n = recvmmsg(ep->fd, msgs, RX_BATCH_FRAMES, MSG_DONTWAIT, nullptr);
      if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EINTR && !ep->failed) failEndpoint(ep, errno, "receive error");
        return;
      }
      int kept = 0;
      Port &p = ports_[inPort];
      for (int i = 0; i < n; i++) {
        uint32_t len = msgs[i].msg_len;
        if (len == 0) continue;  // VDE "hang-up" datagram: ignored by switches
        if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) { p.c.drops[DROP_OVERSIZE]++; continue; }
        if (len < MIN_FRAME_BYTES) { p.c.drops[DROP_RUNT]++; continue; }
        if (kept != i) memcpy(slab_.data() + size_t(kept) * SLOT_BYTES, slab_.data() + size_t(i) * SLOT_BYTES, len);
        lens_[kept++] = len;
      }
      processFrames(inPort, kept);
      if (n < RX_BATCH_FRAMES) return;
    }
    return;
  }
  if (ep->kind == EpKind::Tap && ep->vnetHdr) {
    // virtio-net header first, then the frame (up to 64 KiB with TSO); the header is checked
    // here once so that every destination can trust it
    int kept = 0;
    Port &p = ports_[inPort];
    rxVnet_ = true;
    for (int i = 0; i < RX_BATCH_FRAMES; i++) {
      uint8_t vh[VNET_HDR_BYTES];
      uint8_t *f = slab_.data() + size_t(kept) * SLOT_BYTES;
      struct iovec iov[2] = {{vh, VNET_HDR_BYTES}, {f, SLOT_BYTES}};
      ssize_t r = readv(ep->fd, iov, 2);
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          int err = errno;
          processFrames(inPort, kept);
          rxVnet_ = false;
          closeEndpointLocked(ep, "read error", err);
          return;
        }
        break;
      }
      if (r == 0) break;
      if (size_t(r) < VNET_HDR_BYTES + MIN_FRAME_BYTES) { p.c.drops[DROP_RUNT]++; continue; }
      uint32_t len = uint32_t(size_t(r) - VNET_HDR_BYTES);
      if (len >= SLOT_BYTES) { p.c.drops[DROP_OVERSIZE]++; continue; }
      VnetHdr &h = vnet_[kept];
      vnetDecode(vh, h);
      VnetVerdict v = (h.flags | h.gsoType) ? vnetCheck(h, f, len) : VnetVerdict::Plain;
      if (v == VnetVerdict::Bad) { p.c.drops[DROP_BAD_VNET]++; continue; }
      if (h.gsoType == VNET_GSO_NONE && len > ep->maxFrame) { p.c.drops[DROP_OVERSIZE]++; continue; }
      needSw_[kept] = v == VnetVerdict::NeedsWork;
      if (v == VnetVerdict::Plain) h = VnetHdr();
      lens_[kept++] = len;
    }
    processFrames(inPort, kept);
    rxVnet_ = false;
    return;
  }
  if (ep->kind == EpKind::Tap) {
    int kept = 0;
    Port &p = ports_[inPort];
    for (int i = 0; i < RX_BATCH_FRAMES; i++) {
      ssize_t r = read(ep->fd, slab_.data() + size_t(kept) * SLOT_BYTES, SLOT_BYTES);
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          int err = errno;
          processFrames(inPort, kept);
          closeEndpointLocked(ep, "read error", err);
          return;
        }
        break;
      }
      if (r == 0) break;
      if (uint32_t(r) > ep->maxFrame) { p.c.drops[DROP_OVERSIZE]++; continue; }
      if (r < MIN_FRAME_BYTES) { p.c.drops[DROP_RUNT]++; continue; }
      lens_[kept++] = uint32_t(r);
    }
    processFrames(inPort, kept);
    return;
  }
  handleStreamRx(ep);
}

// Datagram endpoint without a fixed peer (QEMU -netdev dgram, point-to-point "female" side):
// the first sender becomes the peer (the socket is connected to it, so from then on only it is
// heard and frames go back to it); a zero-length datagram is VDE's hang-up and dissolves the
// association so that the next sender can take over.
void Engine::handleAdoptRx(Endpoint *ep) {
  int inPort = ep->port;
  Port &p = ports_[inPort];
  int kept = 0;
  for (int i = 0; i < RX_BATCH_FRAMES; i++) {
    struct sockaddr_storage from;
    socklen_t fromLen = sizeof from;
    ssize_t r = recvfrom(ep->fd, slab_.data() + size_t(kept) * SLOT_BYTES, ep->maxFrame + 1, MSG_DONTWAIT,
                         reinterpret_cast<struct sockaddr *>(&from), &fromLen);
    if (r < 0) {
      if (errno != EAGAIN && errno != EINTR && !ep->failed) failEndpoint(ep, errno, "receive error");
      break;
    }
    if (r == 0) {
      struct sockaddr unspec = {};
      unspec.sa_family = AF_UNSPEC;
      connect(ep->fd, &unspec, sizeof unspec);
      ep->peerConnected = false;
      continue;
    }
    if (!ep->peerConnected && fromLen > sizeof(sa_family_t)) {
      if (connect(ep->fd, reinterpret_cast<struct sockaddr *>(&from), fromLen) == 0) {
        ep->peerConnected = true;
        ep->failed = false;
      }
    }
    if (uint32_t(r) > ep->maxFrame) { p.c.drops[DROP_OVERSIZE]++; continue; }
    if (r < MIN_FRAME_BYTES) { p.c.drops[DROP_RUNT]++; continue; }
    lens_[kept++] = uint32_t(r);
  }
  processFrames(inPort, kept);
}

void Engine::handleCustomRx(Endpoint *ep, int readyFd) {
  int inPort = ep->port;
  int n = ep->io->receive(readyFd, slab_.data(), SLOT_BYTES, ep->maxFrame, lens_, RX_BATCH_FRAMES, ports_[inPort].c);
  for (int i = 0; i < n; i++)
    if (lens_[i] < MIN_FRAME_BYTES || lens_[i] > ep->maxFrame) {  // never trust a plug-in with the bounds
      lens_[i] = 0;
    }
  int kept = 0;
  for (int i = 0; i < n; i++) {
    if (!lens_[i]) { ports_[inPort].c.drops[DROP_RUNT]++; continue; }
    if (kept != i) {
      memmove(slab_.data() + size_t(kept) * SLOT_BYTES, slab_.data() + size_t(i) * SLOT_BYTES, lens_[i]);
      lens_[kept] = lens_[i];
    }
    kept++;
  }
  processFrames(inPort, kept);
}

// Byte streams: 2-byte (VDE) or 4-byte (QEMU) big-endian length, then the frame. Partial
// headers and frames are kept across reads. A length of 0 is a no-op (as in VDE); a length
// above the endpoint's limit means the stream cannot be trusted any more: it is closed with a
// reason instead of being "resynchronised" on garbage.
void Engine::handleStreamRx(Endpoint *ep) {
  const size_t hdr = ep->kind == EpKind::Stream2 ? 2 : 4;
  int inPort = ep->port;
  uint32_t id = ep->id;
  ssize_t r = read(ep->fd, ep->rx.data() + ep->rxLen, ep->rx.size() - ep->rxLen);
  if (r == 0) {
    if (ep->rxLen) ports_[inPort].c.drops[DROP_FRAMING]++;
    closeEndpointLocked(ep, ep->rxLen ? "end of stream inside a frame" : "end of stream", 0);
    return;
  }
  if (r < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    closeEndpointLocked(ep, "read error", errno);
    return;
  }
  ep->rxLen += size_t(r);
  size_t off = 0;
  int kept = 0;
  Port &p = ports_[inPort];
  const char *fatal = nullptr;
  while (ep->rxLen - off >= hdr) {
    const uint8_t *h = ep->rx.data() + off;
    uint32_t len = hdr == 2 ? (uint32_t(h[0]) << 8 | h[1])
                            : (uint32_t(h[0]) << 24 | uint32_t(h[1]) << 16 | uint32_t(h[2]) << 8 | h[3]);
    if (len == 0) { off += hdr; continue; }
    if (len > ep->maxFrame) { p.c.drops[DROP_FRAMING]++; fatal = "frame length above the limit"; break; }
    if (ep->rxLen - off - hdr < len) break;
    if (len < MIN_FRAME_BYTES) {
      p.c.drops[DROP_RUNT]++;
    } else {
      memcpy(slab_.data() + size_t(kept) * SLOT_BYTES, h + hdr, len);
      lens_[kept++] = len;
    }
    off += hdr + len;
    if (kept == RX_BATCH_FRAMES) {
      processFrames(inPort, kept);
      kept = 0;
      if (!lookup(id)) return;
    }
  }
  if (kept) processFrames(inPort, kept);
  if (!(ep = lookup(id))) return;
  if (fatal) {
    closeEndpointLocked(ep, fatal, EMSGSIZE);
    return;
  }
  if (off) {
    memmove(ep->rx.data(), ep->rx.data() + off, ep->rxLen - off);
    ep->rxLen -= off;
  }
}

// ---------------------------------------------------------------------------------------------
// forwarding

void Engine::processFrames(int inPort, int count) {
  if (count <= 0) return;
  if (floodDirty_) rebuildFlood();
  for (int i = 0; i < count; i++) forwardOne(inPort, i);
  flushOut();
}

void Engine::queueOut(int port, int slot, uint8_t form) {
  Pending &pd = pending_[port];
  if (pd.slots.empty()) touched_.push_back(port);
  pd.slots.push_back(slot);
  pd.forms.push_back(form);
  Port &q = ports_[port];
  if (q.mirrorOut >= 0 && q.mirrorOut != port) {
    Pending &m = pending_[q.mirrorOut];
    if (m.slots.empty()) touched_.push_back(q.mirrorOut);
    m.slots.push_back(slot);
    m.forms.push_back(form);
  }
}

// forms: 0 = unchanged, 1 = insert an 802.1Q tag (tagBytes_[slot]), 2 = strip the tag
void Engine::forwardOne(int inPort, int slot) {
  Port &p = ports_[inPort];
  uint8_t *f = slab_.data() + size_t(slot) * SLOT_BYTES;
  uint32_t len = lens_[slot];
  p.c.inFrames++;
  p.c.inBytes += len;
  if (p.mirrorIn >= 0 && p.mirrorIn != inPort) queueOut(p.mirrorIn, slot, 0);

  if (hub_) {
    for (int q : hubFlood_)
      if (q != inPort) queueOut(q, slot, 0);
    return;
  }
  // spanning tree BPDUs go to the control plane, never forwarded
  static const uint8_t BPDU_DST[6] = {0x01, 0x80, 0xc2, 0x00, 0x00, 0x00};
  if (stpCapture_ && memcmp(f, BPDU_DST, 6) == 0) {
    EngineEvent e;
    e.type = "bpdu";
    e.port = inPort;
    e.frame.assign(f, f + len);
    pushEvent(std::move(e));
    return;
  }
  // VLAN classification
  uint16_t vlan;
  bool tagged = false;
  uint16_t et;
  memcpy(&et, f + 12, 2);
  if (et == ETH_P_8021Q_BE && len >= 18) {
    uint16_t vid = uint16_t((f[14] & 0x0f) << 8 | f[15]);
    if (vid == p.untagged || p.tagged.test(vid)) {
      vlan = vid;
      tagged = true;
    } else if (foreign_ == ForeignTags::Pass && p.untagged != VLAN_NONE) {
      vlan = p.untagged;  // carried through as an opaque untagged frame of the access VLAN
    } else {
      p.c.drops[DROP_VLAN]++;
      return;
    }
  } else {
    if (p.untagged == VLAN_NONE) { p.c.drops[DROP_VLAN]++; return; }
    vlan = p.untagged;
  }
  if (p.stp == StpState::Discarding) { p.c.drops[DROP_STP]++; return; }
  const uint8_t *dst = f, *src = f + 6;
  // learning, with the last-source cache
  if (!isGroup(src)) {
    uint64_t key = macKey(src, vlan);
    if (key != p.lastSrcKey || p.lastSrcSeen != now_) {
      MacEntry *e = macs_.find(key);
      if (!e) {
        macs_.insert(key, inPort, now_);
      } else if (e->port == inPort) {
        e->lastSeen = now_;
      } else if (e->lastSeen + minPersistSeconds_ < now_) {
        e->port = inPort;
        e->lastSeen = now_;
      }
      p.lastSrcKey = key;
      p.lastSrcSeen = now_;
    }
  }
  if (p.stp != StpState::Forwarding) { p.c.drops[DROP_STP]++; return; }
  vlanOf_[slot] = vlan;
  taggedIn_[slot] = tagged;
  if (!tagged) {
    tagBytes_[slot][0] = 0x81;
    tagBytes_[slot][1] = 0x00;
    tagBytes_[slot][2] = uint8_t(vlan >> 8);
    tagBytes_[slot][3] = uint8_t(vlan);
  }
  auto formFor = [&](int q) -> uint8_t {
    const Port &o = ports_[q];
    bool outTagged = o.untagged != vlan;  // member ports are untagged in vlan or tagged members
    if (tagged == outTagged) return 0;
    return tagged ? 2 : 1;
  };
  int outPort = -1;
  if (!isGroup(dst)) {
    MacEntry *e = macs_.find(macKey(dst, vlan));
    if (e) outPort = e->port;
  } else if (p.stormLimitPps) {
    if (p.stormSecond != now_) {
      p.stormSecond = now_;
      p.stormTokens = p.stormLimitPps;
    }
    if (p.stormTokens == 0) { p.c.drops[DROP_STORM]++; return; }
    p.stormTokens--;
  }
  if (outPort >= 0) {
    if (outPort != inPort && portForwards(outPort)) queueOut(outPort, slot, formFor(outPort));
    return;
  }
  for (int q : flood_[vlan])
    if (q != inPort) queueOut(q, slot, formFor(q));
}

void Engine::flushOut() {
  for (int port : touched_) {
    Pending &pd = pending_[port];
    Port &q = ports_[port];
    int n = int(pd.slots.size());
    for (int i = 0; i < n; i++) {
      uint32_t len = lens_[pd.slots[i]];
      if (pd.forms[i] == 1) len += 4;
      else if (pd.forms[i] == 2) len -= 4;
      q.c.outFrames++;
      q.c.outBytes += len;
    }
    // snapshot the ids: an endpoint may be closed (and the port's list changed) while sending
    static constexpr size_t INLINE_EPS = 8;
    uint32_t inlineIds[INLINE_EPS];
    std::vector<uint32_t> manyIds;
    size_t ne = q.eps.size();
    uint32_t *ids = inlineIds;
    if (ne > INLINE_EPS) {
      manyIds.resize(ne);
      ids = manyIds.data();
    }
    for (size_t k = 0; k < ne; k++) ids[k] = q.eps[k]->id;
    for (size_t k = 0; k < ne; k++) {
      Endpoint *ep = lookup(ids[k]);
      if (ep) sendToEndpoint(ep, port, pd.slots.data(), pd.forms.data(), n);
    }
    pd.slots.clear();
    pd.forms.clear();
  }
  touched_.clear();
}

// Builds the iovecs for one frame in the given form; returns the iovec count and the length.
static inline int frameIov(uint8_t *f, uint32_t len, uint8_t form, uint8_t *tag, struct iovec *iov,
                           uint32_t *outLen) {
  if (form == 0) {
    iov[0] = {f, len};
    *outLen = len;
    return 1;
  }
  if (form == 1) {
    iov[0] = {f, 12};
    iov[1] = {tag, 4};
    iov[2] = {f + 12, len - 12};
    *outLen = len + 4;
    return 3;
  }
  iov[0] = {f, 12};
  iov[1] = {f + 16, len - 16};
  *outLen = len - 4;
  return 2;
}

void Engine::sendToEndpoint(Endpoint *ep, int port, const int *slots, const uint8_t *forms, int n) {
  Port &q = ports_[port];
  if (rxVnet_ && !ep->vnetHdr) {  // GSO / partial-checksum frames for a plain destination?
    for (int i = 0; i < n; i++)
      if (needSw_[slots[i]]) {
        sendSoftware(ep, port, slots, forms, n);
        return;
      }
  }
  auto frameOf = [&](int i, struct iovec *iov, uint32_t *len) {
    int s = slots[i];
    uint8_t *tag = tagBytes_[s];
    return frameIov(slab_.data() + size_t(s) * SLOT_BYTES, lens_[s], forms[i], tag, iov, len);
  };
  // a vnet-header tap: the (tag-adjusted) header of the frame, or a zero one, goes first; a GSO
  // frame may exceed the endpoint's frame limit (the kernel segments it)
  uint8_t vhBuf[VNET_HDR_BYTES];
  auto tapFrameOf = [&](int i, struct iovec *iov, uint32_t *len, uint32_t *limit, uint32_t *extra) -> int {
    *limit = ep->maxFrame;
    *extra = 0;
    if (!ep->vnetHdr) return frameOf(i, iov, len);
    int s = slots[i];
    if (rxVnet_ && needSw_[s]) {
      vnetEncode(vnet_[s], forms[i] == 1 ? 4 : forms[i] == 2 ? -4 : 0, vhBuf);
      if (vnet_[s].gsoType != VNET_GSO_NONE) *limit = SLOT_BYTES;
    } else {
      memset(vhBuf, 0, sizeof vhBuf);
    }
    iov[0] = {vhBuf, VNET_HDR_BYTES};
    *extra = VNET_HDR_BYTES;
    return 1 + frameOf(i, iov + 1, len);
  };
  if (ep->kind == EpKind::Dgram || ep->kind == EpKind::Tap || ep->kind == EpKind::Custom) {
    int i = 0;
    if (ep->txq.empty()) {
      if (ep->kind == EpKind::Dgram) {
        struct mmsghdr msgs[RX_BATCH_FRAMES];
        struct iovec iovs[RX_BATCH_FRAMES][3];
        int m = 0;
        while (i < n) {
          int base = i;
          m = 0;
          for (; i < n && m < RX_BATCH_FRAMES; i++, m++) {
            uint32_t l;
            memset(&msgs[m].msg_hdr, 0, sizeof msgs[m].msg_hdr);
            msgs[m].msg_hdr.msg_iov = iovs[m];
            msgs[m].msg_hdr.msg_iovlen = frameOf(i, iovs[m], &l);
            if (l > ep->maxFrame) {  // cannot be carried by this endpoint
              q.c.drops[DROP_OVERSIZE]++;
              m--;
              continue;
            }
          }
          int sent = 0;
          while (sent < m) {
            int r = sendmmsg(ep->txFd, msgs + sent, unsigned(m - sent), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (r > 0) { sent += r; continue; }
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) break;
            // hard error: count the frame, report once, go on with the rest
            if (!ep->failed) failEndpoint(ep, errno, "send error");
            q.c.drops[DROP_TX_ERROR]++;
            sent++;
          }
          if (sent < m) {
            // queue the rest (this batch from msgs[sent], then frames i..n-1)
            for (int k = sent; k < m; k++) {
              size_t l = 0;
              for (size_t v = 0; v < msgs[k].msg_hdr.msg_iovlen; v++) l += msgs[k].msg_hdr.msg_iov[v].iov_len;
              enqueue(ep, msgs[k].msg_hdr.msg_iov, int(msgs[k].msg_hdr.msg_iovlen), l, port);
            }
            (void)base;
            break;
          }
        }
      } else {
        for (; i < n; i++) {
          struct iovec iov[4];
          uint32_t l, limit, extra;
          int c = tapFrameOf(i, iov, &l, &limit, &extra);
          if (l > limit) { q.c.drops[DROP_OVERSIZE]++; continue; }
          if (ep->io) {
            int r = ep->io->send(iov, c, l);
            if (r == 0) break;
            if (r < 0) {
              if (!ep->failed) failEndpoint(ep, -r, "send error");
              q.c.drops[DROP_TX_ERROR]++;
            }
            continue;
          }
          ssize_t r = writev(ep->txFd, iov, c);
          if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) break;
          if (r < 0) {
            if (!ep->failed) failEndpoint(ep, errno, "write error");
            q.c.drops[DROP_TX_ERROR]++;
          }
        }
      }
    }
    // whatever is left waits in the queue
    for (; i < n; i++) {
      struct iovec iov[4];
      uint32_t l, limit, extra;
      int c = tapFrameOf(i, iov, &l, &limit, &extra);
      if (l > limit && ep->kind != EpKind::Stream2 && ep->kind != EpKind::Stream4) { q.c.drops[DROP_OVERSIZE]++; continue; }
      enqueue(ep, iov, c, l + extra, port);
    }
    if (!ep->txq.empty() && !ep->wantOut) updateEpollOut(ep, true);
    return;
  }
  // streams: one writev of header+frame pairs, partial writes queue the remainder
  const size_t hdr = ep->kind == EpKind::Stream2 ? 2 : 4;
  static constexpr int MAX_IOV = 1024;
  struct iovec iov[MAX_IOV];
  uint8_t hdrs[RX_BATCH_FRAMES * 2][4];
  int i = 0;
  while (i < n) {
    int c = 0, h = 0;
    size_t total = 0;
    int first = i;
    for (; i < n && c + 4 <= MAX_IOV && h < RX_BATCH_FRAMES * 2; i++) {
      uint32_t l;
      struct iovec fi[3];
      int fc = frameOf(i, fi, &l);
      if (l > ep->maxFrame) { q.c.drops[DROP_OVERSIZE]++; continue; }
      uint8_t *hb = hdrs[h++];
      if (hdr == 2) { hb[0] = uint8_t(l >> 8); hb[1] = uint8_t(l); }
      else { hb[0] = uint8_t(l >> 24); hb[1] = uint8_t(l >> 16); hb[2] = uint8_t(l >> 8); hb[3] = uint8_t(l); }
      iov[c++] = {hb, hdr};
      for (int k = 0; k < fc; k++) iov[c++] = fi[k];
      total += hdr + l;
    }
    (void)first;
    size_t done = 0;
    if (ep->txq.empty()) {
      ssize_t r = writev(ep->txFd, iov, c);
      if (r < 0 && errno != EAGAIN && errno != EINTR) {
        closeEndpointLocked(ep, "write error", errno);
        return;
      }
      if (r > 0) done = size_t(r);
    }
    if (done < total) {
      // queue the unwritten tail byte-exactly (a partial frame must be completed first)
      std::vector<uint8_t> rest;
      rest.reserve(total - done);
      size_t skip = done;
      for (int k = 0; k < c; k++) {
        const uint8_t *b = static_cast<const uint8_t *>(iov[k].iov_base);
        size_t l = iov[k].iov_len;
        if (skip >= l) { skip -= l; continue; }
        rest.insert(rest.end(), b + skip, b + l);
        skip = 0;
      }
      if (ep->txqBytes + rest.size() > TXQ_MAX_BYTES && done == 0) {
        q.c.drops[DROP_QUEUE_FULL] += uint64_t(h);
      } else {
        ep->txqBytes += rest.size();
        ep->txq.push_back(TxItem{std::move(rest)});
      }
    }
  }
  if (!ep->txq.empty() && !ep->wantOut) updateEpollOut(ep, true);
}

// Software fallback for a destination without offloads: frames with a partial checksum get it
// filled in, GSO frames are cut into MSS-sized TCP segments; every resulting frame goes out on
// its own (sent, or queued on EAGAIN). Only batches that hold such frames come here.
void Engine::sendSoftware(Endpoint *ep, int port, const int *slots, const uint8_t *forms, int n) {
  Port &q = ports_[port];
  if (swBuf_.empty()) swBuf_.resize(OFFLOAD_SCRATCH_BYTES);
  for (int i = 0; i < n; i++) {
    int s = slots[i];
    uint8_t *f = slab_.data() + size_t(s) * SLOT_BYTES;
    struct iovec iov[3];
    uint32_t l;
    if (!needSw_[s]) {
      int c = frameIov(f, lens_[s], forms[i], tagBytes_[s], iov, &l);
      if (l > ep->maxFrame) { q.c.drops[DROP_OVERSIZE]++; continue; }
      if (!emitOne(ep, port, iov, c, l)) return;
      continue;
    }
    int k = vnetResolve(vnet_[s], f, lens_[s], swBuf_.data(), swLens_);
    if (k < 0) { q.c.drops[DROP_BAD_VNET]++; continue; }
    uint8_t *o = swBuf_.data();
    for (int j = 0; j < k; j++) {
      int c = frameIov(o, swLens_[j], forms[i], tagBytes_[s], iov, &l);
      o += swLens_[j];
      if (l > ep->maxFrame) { q.c.drops[DROP_OVERSIZE]++; continue; }
      if (!emitOne(ep, port, iov, c, l)) return;
    }
  }
  if (!ep->txq.empty() && !ep->wantOut) updateEpollOut(ep, true);
}

// Sends one frame on any endpoint kind, or queues it (behind a non-empty queue, or on EAGAIN);
// returns false when the endpoint was closed (a stream write error).
bool Engine::emitOne(Endpoint *ep, int port, struct iovec *iov, int iovcnt, uint32_t len) {
  Port &q = ports_[port];
  if (ep->kind == EpKind::Stream2 || ep->kind == EpKind::Stream4) {
    const size_t hdr = ep->kind == EpKind::Stream2 ? 2 : 4;
    uint8_t hb[4];
    if (hdr == 2) { hb[0] = uint8_t(len >> 8); hb[1] = uint8_t(len); }
    else { hb[0] = uint8_t(len >> 24); hb[1] = uint8_t(len >> 16); hb[2] = uint8_t(len >> 8); hb[3] = uint8_t(len); }
    struct iovec v[4];
    v[0] = {hb, hdr};
    for (int k = 0; k < iovcnt && k < 3; k++) v[k + 1] = iov[k];
    int c = 1 + std::min(iovcnt, 3);
    size_t total = hdr + len, done = 0;
    if (ep->txq.empty()) {
      ssize_t r = writev(ep->txFd, v, c);
      if (r < 0 && errno != EAGAIN && errno != EINTR) {
        closeEndpointLocked(ep, "write error", errno);
        return false;
      }
      if (r > 0) done = size_t(r);
    }
    if (done < total) {
      if (done == 0 && (ep->txq.size() >= TXQ_MAX_FRAMES || ep->txqBytes + total > TXQ_MAX_BYTES)) {
        q.c.drops[DROP_QUEUE_FULL]++;
        return true;
      }
      std::vector<uint8_t> rest;
      rest.reserve(total - done);
      size_t skip = done;
      for (int k = 0; k < c; k++) {
        const uint8_t *b = static_cast<const uint8_t *>(v[k].iov_base);
        size_t l = v[k].iov_len;
        if (skip >= l) { skip -= l; continue; }
        rest.insert(rest.end(), b + skip, b + l);
        skip = 0;
      }
      ep->txqBytes += rest.size();
      ep->txq.push_back(TxItem{std::move(rest)});
    }
    return true;
  }
  if (ep->txq.empty()) {
    if (ep->io) {
      int r = ep->io->send(iov, iovcnt, len);
      if (r == 1) return true;
      if (r < 0) {
        if (!ep->failed) failEndpoint(ep, -r, "send error");
        q.c.drops[DROP_TX_ERROR]++;
        return true;
      }
    } else {
      ssize_t r;
      if (ep->kind == EpKind::Tap) {
        r = writev(ep->txFd, iov, iovcnt);
      } else {
        struct msghdr m = {};
        m.msg_iov = iov;
        m.msg_iovlen = size_t(iovcnt);
        r = sendmsg(ep->txFd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      if (r >= 0) return true;
      if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
        if (!ep->failed) failEndpoint(ep, errno, ep->kind == EpKind::Tap ? "write error" : "send error");
        q.c.drops[DROP_TX_ERROR]++;
        return true;
      }
    }
  }
  enqueue(ep, iov, iovcnt, len, port);
  return true;
}

void Engine::enqueue(Endpoint *ep, const struct iovec *iov, int iovcnt, size_t len, int port) {
  if (ep->txq.size() >= TXQ_MAX_FRAMES || ep->txqBytes + len > TXQ_MAX_BYTES) {
    ports_[port].c.drops[DROP_QUEUE_FULL]++;
    return;
  }
  TxItem t;
  t.bytes.reserve(len);
  for (int k = 0; k < iovcnt; k++) {
    const uint8_t *b = static_cast<const uint8_t *>(iov[k].iov_base);
    t.bytes.insert(t.bytes.end(), b, b + iov[k].iov_len);
  }
  ep->txqBytes += len;
  ep->txq.push_back(std::move(t));
}

void Engine::updateEpollOut(Endpoint *ep, bool want) {
  if (ep->txFd != ep->fd) {
    struct epoll_event ev = {};
    ev.events = EPOLLOUT;
    ev.data.u64 = ep->id | TX_TAG;
    epoll_ctl(epfd_, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, ep->txFd, &ev);
    ep->wantOut = want;
    return;
  }
  struct epoll_event ev = {};
  ev.events = (ep->paused ? 0u : uint32_t(EPOLLIN)) | (want ? uint32_t(EPOLLOUT) : 0u);
  ev.data.u64 = ep->id;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, ep->fd, &ev);
  ep->wantOut = want;
}

// Writes queued frames; returns false if the endpoint was closed.
bool Engine::flushTx(Endpoint *ep) {
  Port &q = ports_[ep->port];
  // datagram sockets: drain the queue with sendmmsg, up to a batch per call
  while (ep->kind == EpKind::Dgram && !ep->io && !ep->txq.empty()) {
    struct mmsghdr msgs[RX_BATCH_FRAMES];
    struct iovec iovs[RX_BATCH_FRAMES];
    int m = 0;
    for (auto it = ep->txq.begin(); it != ep->txq.end() && m < RX_BATCH_FRAMES; ++it, ++m) {
      iovs[m] = {it->bytes.data(), it->bytes.size()};
      memset(&msgs[m].msg_hdr, 0, sizeof msgs[m].msg_hdr);
      msgs[m].msg_hdr.msg_iov = &iovs[m];
      msgs[m].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(ep->txFd, msgs, unsigned(m), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) break;
      if (!ep->failed) failEndpoint(ep, errno, "send error");
      q.c.drops[DROP_TX_ERROR]++;
      r = 1;  // drop the frame that failed and go on
    }
    for (int k = 0; k < r; k++) {
      ep->txqBytes -= ep->txq.front().bytes.size();
      ep->txq.pop_front();
    }
    if (r < m) break;  // the socket is full again
  }
  while (!ep->txq.empty() && !(ep->kind == EpKind::Dgram && !ep->io)) {
    TxItem &t = ep->txq.front();
    if (ep->kind == EpKind::Stream2 || ep->kind == EpKind::Stream4) {
      ssize_t r = write(ep->txFd, t.bytes.data() + ep->txHeadOffset, t.bytes.size() - ep->txHeadOffset);
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        closeEndpointLocked(ep, "write error", errno);
        return false;
      }
      ep->txHeadOffset += size_t(r);
      if (ep->txHeadOffset < t.bytes.size()) break;
    } else {
      ssize_t r;
      if (ep->io) {
        struct iovec one = {t.bytes.data(), t.bytes.size()};
        int k = ep->io->send(&one, 1, t.bytes.size());
        if (k == 0) break;
        r = k < 0 ? (errno = -k, -1) : ssize_t(t.bytes.size());
      } else {
        r = ep->kind == EpKind::Tap ? write(ep->txFd, t.bytes.data(), t.bytes.size())
                                    : send(ep->txFd, t.bytes.data(), t.bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      if (r < 0) {
        if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) break;
        if (!ep->failed) failEndpoint(ep, errno, "send error");
        q.c.drops[DROP_TX_ERROR]++;
      }
    }
    ep->txqBytes -= t.bytes.size();
    ep->txHeadOffset = 0;
    ep->txq.pop_front();
  }
  if (ep->txq.empty()) {
    if (ep->wantOut) updateEpollOut(ep, false);
    if (pausedCount_) resumePaused();
  }
  return true;
}

}  // namespace vde
