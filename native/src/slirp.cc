// libslirp instance on its own thread, bridged to the engine through a SOCK_SEQPACKET socketpair.
//
// The slirp thread owns the Slirp state. Each loop iteration it builds a pollfd set (its wake-up
// eventfd, its end of the socketpair, then whatever slirp_pollfds_fill asks for), sleeps in
// poll() for at most the nearest timer deadline, lets slirp_pollfds_poll handle the sockets,
// feeds queued frames from the socketpair to slirp_input and fires expired timers. libslirp is
// not thread-safe, so everything that touches the Slirp state runs under one mutex, which the
// thread releases only while it sleeps in poll(); JavaScript calls (forwards, stats) take the
// mutex and kick the eventfd so new listening sockets join the next poll set.
#include "slirp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vde {
namespace {

constexpr int ETH_HEADER_BYTES = 14;
constexpr size_t RX_BUFFER_BYTES = 65536 + 64;  // larger than any frame libslirp accepts (MRU ≤ 65521)
constexpr int RX_FRAMES_PER_WAKEUP = 256;        // frames fed to slirp_input before polling again
constexpr uint32_t POLL_MAX_WAIT_MS = 1000;      // upper bound on one poll() sleep
constexpr size_t DHCP_OPTIONS_OFFSET = 240;     // BOOTP fixed part (236) + magic cookie (4)
constexpr size_t DHCP_MIN_FRAME_BYTES = 14 + 20 + 8 + 240;
constexpr size_t RA_MIN_FRAME_BYTES = 14 + 40 + 16;        // Ethernet, IPv6, RA header
constexpr size_t RA_MTU_OPTION_BYTES = 8;
constexpr int SOCKETPAIR_BUFFER_BYTES = 4 << 20; // send buffer of each socketpair end
// default MRU: the largest libslirp takes, so 64 KiB segments from a tap with offloads arrive whole
// (the engine hands this endpoint GSO frames as one frame); the MTU stays what the user sets
constexpr int DEFAULT_MRU_BYTES = 65520;

int64_t nowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

Napi::Error errnoError(Napi::Env env, int err, const std::string &what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

struct Timer {
  SlirpTimerCb cb;
  void *opaque;
  int64_t expireMs = -1;  // CLOCK_MONOTONIC milliseconds; -1 = not armed
};

struct Stats {
  std::atomic<uint64_t> framesIn{0}, bytesIn{0}, framesOut{0}, bytesOut{0};
  std::atomic<uint64_t> dropRunt{0}, dropOversize{0}, dropQueueFull{0}, dropSendError{0}, guestErrors{0};
};

class SlirpInstance {
 public:
  SlirpInstance() = default;
  ~SlirpInstance() { close(); }

  /** Creates the socketpair, the slirp state and starts the thread; returns the engine's fd or -errno. */
  int start(const SlirpConfig &cfg, bool verbose, std::string &err) {
    verbose_ = verbose;
    mru_ = cfg.if_mru ? int(cfg.if_mru) : DEFAULT_MRU_BYTES;
    mtu_ = int(cfg.if_mtu);
    tx_.resize(RX_BUFFER_BYTES);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
      err = "socketpair";
      return -errno;
    }
    for (int s : sv) {
      int b = SOCKETPAIR_BUFFER_BYTES;
      if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &b, sizeof b) < 0) setsockopt(s, SOL_SOCKET, SO_SNDBUF, &b, sizeof b);
    }
    fd_ = sv[1];
    wakeFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakeFd_ < 0) {
      int e = errno;
      ::close(sv[0]);
      err = "eventfd";
      return -e;
    }
    static const SlirpCb cbs = {
        /* send_packet */ &SlirpInstance::sendPacket,
        /* guest_error */ &SlirpInstance::guestError,
        /* clock_get_ns */ [](void *) -> int64_t { return nowNs(); },
        /* timer_new */ &SlirpInstance::timerNew,
        /* timer_free */ &SlirpInstance::timerFree,
        /* timer_mod */ &SlirpInstance::timerMod,
        /* register_poll_fd */ [](int, void *) {},
        /* unregister_poll_fd */ [](int, void *) {},
        /* notify */ &SlirpInstance::notifyCb,
        /* init_completed */ nullptr,
        /* timer_new_opaque */ nullptr,
    };
    slirp_ = slirp_new(&cfg, &cbs, this);
    if (!slirp_) {
      ::close(sv[0]);
      err = "slirp_new failed (invalid configuration)";
      return -EINVAL;
    }
    thread_ = std::thread([this] { loop(); });
    return sv[0];
  }

  /** Stops the thread and frees everything (idempotent). */
  void close() {
    if (closed_.exchange(true)) return;
    stop_ = true;
    wake();
    if (thread_.joinable()) thread_.join();
    if (slirp_) slirp_cleanup(slirp_);
    slirp_ = nullptr;
    for (Timer *t : timers_) delete t;
    timers_.clear();
    if (fd_ >= 0) ::close(fd_);
    if (wakeFd_ >= 0) ::close(wakeFd_);
    fd_ = wakeFd_ = -1;
  }

  bool closed() const { return closed_; }

  /** Runs fn on the Slirp state under the mutex, then wakes the thread so the poll set is rebuilt. */
  template <typename F>
  auto locked(F fn) {
    std::lock_guard<std::mutex> lk(mu_);
    auto r = fn(slirp_);
    wake();
    return r;
  }

  Stats stats;

 private:
  void wake() {
    if (wakeFd_ < 0) return;
    uint64_t one = 1;
    ssize_t r = write(wakeFd_, &one, sizeof one);
    (void)r;
  }

  static ssize_t sendPacket(const void *buf, size_t len, void *opaque) {
    auto *self = static_cast<SlirpInstance *>(opaque);
    if (self->mtu_ && len >= DHCP_MIN_FRAME_BYTES && len <= self->tx_.size() && isDhcpReply(static_cast<const uint8_t *>(buf), len)) {
      // libslirp's DHCP has no interface-MTU option: announce the configured MTU (option 26)
      memcpy(self->tx_.data(), buf, len);
      addDhcpMtu(self->tx_.data(), len, uint16_t(self->mtu_));
      buf = self->tx_.data();
    }
    if (self->mtu_ && len >= RA_MIN_FRAME_BYTES && len + RA_MTU_OPTION_BYTES <= self->tx_.size() && isRouterAdvert(static_cast<const uint8_t *>(buf), len)) {
      // nor do its router advertisements: append the MTU option (type 5)
      memcpy(self->tx_.data(), buf, len);
      len = addRaMtu(self->tx_.data(), len, uint32_t(self->mtu_));
      buf = self->tx_.data();
    }
    ssize_t r = send(self->fd_, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) self->stats.dropQueueFull++;
      else self->stats.dropSendError++;
      return ssize_t(len);  // dropped: TCP retransmits, everything else is best effort anyway
    }
    self->stats.framesOut++;
    self->stats.bytesOut += len;
    return r;
  }

  /** An IPv4 UDP frame from port 67 to 68 carrying a BOOTP reply with the DHCP magic cookie (no 802.1Q tag: slirp never tags). */
  static bool isDhcpReply(const uint8_t *f, size_t len) {
    if (f[12] != 0x08 || f[13] != 0x00 || (f[14] >> 4) != 4 || f[23] != 17) return false;
    size_t ihl = size_t(f[14] & 0x0f) * 4;
    size_t udp = ETH_HEADER_BYTES + ihl;
    if (ihl < 20 || udp + 8 + DHCP_OPTIONS_OFFSET > len) return false;
    const uint8_t *u = f + udp;
    if (u[0] != 0 || u[1] != 67 || u[2] != 0 || u[3] != 68 || u[8] != 2) return false;
    const uint8_t *cookie = u + 8 + DHCP_OPTIONS_OFFSET - 4;
    return cookie[0] == 99 && cookie[1] == 130 && cookie[2] == 83 && cookie[3] == 99;
  }

  /**
   * Writes option 26 (interface MTU) where the options end, when the reply has no such option
   * and the end option is followed by at least 4 pad bytes (libslirp pads the options area to
   * 312 bytes), then recomputes the UDP checksum. Lengths never change; a reply without room is
   * left as it is.
   */
  static void addDhcpMtu(uint8_t *f, size_t len, uint16_t mtu) {
    size_t ihl = size_t(f[14] & 0x0f) * 4;
    size_t udp = ETH_HEADER_BYTES + ihl;
    size_t udpLen = size_t(f[udp + 4]) << 8 | f[udp + 5];
    if (udpLen < 8 + DHCP_OPTIONS_OFFSET || udp + udpLen > len) return;
    size_t end = udp + udpLen;
    size_t o = udp + 8 + DHCP_OPTIONS_OFFSET;
    while (o < end && f[o] != 255) {
      if (f[o] == 0) { o++; continue; }
      if (f[o] == 26 || o + 1 >= end) return;  // already announced, or malformed
      o += 2 + size_t(f[o + 1]);
    }
    if (o + 5 > end) return;
    for (size_t k = o + 1; k < o + 5; k++)
      if (f[k] != 0) return;
    f[o] = 26;
    f[o + 1] = 2;
    f[o + 2] = uint8_t(mtu >> 8);
    f[o + 3] = uint8_t(mtu);
    f[o + 4] = 255;
    // UDP checksum over the pseudo-header (addresses, protocol, length) and the datagram
    f[udp + 6] = f[udp + 7] = 0;
    uint32_t sum = 17 + uint32_t(udpLen);
    for (size_t k = 26; k < 34; k += 2) sum += uint32_t(f[k]) << 8 | f[k + 1];
    for (size_t k = 0; k < udpLen; k += 2) sum += uint32_t(f[udp + k]) << 8 | (k + 1 < udpLen ? f[udp + k + 1] : 0);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t c = uint16_t(~sum);
    if (c == 0) c = 0xffff;
    f[udp + 6] = uint8_t(c >> 8);
    f[udp + 7] = uint8_t(c);
  }

  /** An IPv6 frame whose next header is ICMPv6 (no extension headers) carrying a router advertisement. */
  static bool isRouterAdvert(const uint8_t *f, size_t len) {
    if (f[12] != 0x86 || f[13] != 0xdd || (f[14] >> 4) != 6 || f[20] != 58) return false;
    size_t pl = size_t(f[18]) << 8 | f[19];
    return ETH_HEADER_BYTES + 40 + pl == len && f[54] == 134;
  }

  /** Appends an MTU option to a router advertisement with none; fixes the payload length and the ICMPv6 checksum; returns the new length. */
  static size_t addRaMtu(uint8_t *f, size_t len, uint32_t mtu) {
    const size_t icmp = ETH_HEADER_BYTES + 40;
    for (size_t o = icmp + 16; o + 2 <= len;) {
      if (f[o + 1] == 0) return len;  // malformed option: leave it to the guest
      if (f[o] == 5) return len;      // already announced
      o += size_t(f[o + 1]) * 8;
    }
    uint8_t *opt = f + len;
    opt[0] = 5;
    opt[1] = 1;
    opt[2] = opt[3] = 0;
    opt[4] = uint8_t(mtu >> 24);
    opt[5] = uint8_t(mtu >> 16);
    opt[6] = uint8_t(mtu >> 8);
    opt[7] = uint8_t(mtu);
    len += RA_MTU_OPTION_BYTES;
    size_t pl = len - icmp;
    f[18] = uint8_t(pl >> 8);
    f[19] = uint8_t(pl);
    f[icmp + 2] = f[icmp + 3] = 0;
    uint32_t sum = uint32_t(pl) + 58;
    for (size_t k = 22; k < 54; k += 2) sum += uint32_t(f[k]) << 8 | f[k + 1];
    for (size_t k = 0; k < pl; k += 2) sum += uint32_t(f[icmp + k]) << 8 | (k + 1 < pl ? f[icmp + k + 1] : 0);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t c = uint16_t(~sum);
    f[icmp + 2] = uint8_t(c >> 8);
    f[icmp + 3] = uint8_t(c);
    return len;
  }

  static void guestError(const char *msg, void *opaque) {
    auto *self = static_cast<SlirpInstance *>(opaque);
    self->stats.guestErrors++;
    if (self->verbose_) fprintf(stderr, "slirp: guest error: %s\n", msg);
  }

  static void *timerNew(SlirpTimerCb cb, void *cbOpaque, void *opaque) {
    auto *self = static_cast<SlirpInstance *>(opaque);
    auto *t = new Timer{cb, cbOpaque, -1};
    self->timers_.push_back(t);
    return t;
  }

  static void timerFree(void *timer, void *opaque) {
    auto *self = static_cast<SlirpInstance *>(opaque);
    auto it = std::find(self->timers_.begin(), self->timers_.end(), static_cast<Timer *>(timer));
    if (it != self->timers_.end()) self->timers_.erase(it);
    delete static_cast<Timer *>(timer);
  }

  static void timerMod(void *timer, int64_t expireMs, void *) { static_cast<Timer *>(timer)->expireMs = expireMs; }

  static void notifyCb(void *) {}

  static int addPoll(int fd, int events, void *opaque) {
    auto *self = static_cast<SlirpInstance *>(opaque);
    short ev = 0;
    if (events & SLIRP_POLL_IN) ev |= POLLIN;
    if (events & SLIRP_POLL_OUT) ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI) ev |= POLLPRI;
    self->pfds_.push_back({fd, ev, 0});
    return int(self->pfds_.size()) - 1;
  }

  static int getRevents(int idx, void *opaque) {
    auto *self = static_cast<SlirpInstance *>(opaque);
    if (idx < 0 || size_t(idx) >= self->pfds_.size()) return 0;
    short r = self->pfds_[idx].revents;
    int out = 0;
    if (r & POLLIN) out |= SLIRP_POLL_IN;
    if (r & POLLOUT) out |= SLIRP_POLL_OUT;
    if (r & POLLPRI) out |= SLIRP_POLL_PRI;
    if (r & POLLERR) out |= SLIRP_POLL_ERR;
    if (r & POLLHUP) out |= SLIRP_POLL_HUP;
    return out;
  }

  void runTimers() {
    for (;;) {
      int64_t nowMs = nowNs() / 1000000;
      Timer *due = nullptr;
      for (Timer *t : timers_)
        if (t->expireMs >= 0 && t->expireMs <= nowMs) { due = t; break; }
      if (!due) return;
      due->expireMs = -1;
      due->cb(due->opaque);
    }
  }

  void readFrames(short revents) {
    for (int i = 0; i < RX_FRAMES_PER_WAKEUP; i++) {
      ssize_t r = recv(fd_, rx_.data(), rx_.size(), MSG_DONTWAIT | MSG_TRUNC);
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) peerGone_ = true;
        return;
      }
      if (r == 0) {
        if (revents & POLLHUP) peerGone_ = true;  // the engine closed its end
        return;
      }
      if (size_t(r) > rx_.size() || r > mru_ + ETH_HEADER_BYTES + 4) { stats.dropOversize++; continue; }
      if (r < ETH_HEADER_BYTES) { stats.dropRunt++; continue; }
      stats.framesIn++;
      stats.bytesIn += uint64_t(r);
      slirp_input(slirp_, rx_.data(), int(r));
    }
  }

  void loop() {
    rx_.resize(RX_BUFFER_BYTES);
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      pfds_.clear();
      pfds_.push_back({wakeFd_, POLLIN, 0});
      pfds_.push_back({fd_, short(peerGone_ ? 0 : POLLIN), 0});
      uint32_t timeout = POLL_MAX_WAIT_MS;
      int64_t nowMs = nowNs() / 1000000;
      for (Timer *t : timers_)
        if (t->expireMs >= 0) timeout = std::min<uint32_t>(timeout, uint32_t(std::max<int64_t>(0, t->expireMs - nowMs)));
      slirp_pollfds_fill(slirp_, &timeout, &SlirpInstance::addPoll, this);
      lk.unlock();
      int n = poll(pfds_.data(), pfds_.size(), int(std::min<uint32_t>(timeout, POLL_MAX_WAIT_MS)));
      int pollErr = n < 0 ? errno : 0;
      lk.lock();
      if (stop_) break;
      if (pollErr == EINTR) {
        n = 0;
        for (auto &p : pfds_) p.revents = 0;
      }
      slirp_pollfds_poll(slirp_, n < 0 ? 1 : 0, &SlirpInstance::getRevents, this);
      if (pfds_[0].revents & POLLIN) {
        uint64_t v;
        ssize_t r = read(wakeFd_, &v, sizeof v);
        (void)r;
      }
      if (!peerGone_ && (pfds_[1].revents & (POLLIN | POLLHUP | POLLERR))) readFrames(pfds_[1].revents);
      runTimers();
    }
  }

  Slirp *slirp_ = nullptr;
  int fd_ = -1, wakeFd_ = -1;
  int mru_ = DEFAULT_MRU_BYTES;
  int mtu_ = 0;  // announced in DHCP replies when set (0: libslirp's default, not announced)
  std::vector<uint8_t> tx_;  // a DHCP reply being given its MTU option (slirp thread only)
  bool verbose_ = false;
  bool peerGone_ = false;
  std::atomic<bool> stop_{false}, closed_{false};
  std::mutex mu_;
  std::thread thread_;
  std::vector<Timer *> timers_;
  std::vector<struct pollfd> pfds_;
  std::vector<uint8_t> rx_;
};

std::string str(const Napi::Object &o, const char *key, const std::string &def = "") {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : def;
}

bool flag(const Napi::Object &o, const char *key) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

uint32_t num(const Napi::Object &o, const char *key, uint32_t def = 0) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : def;
}

void parse4(Napi::Env env, const std::string &s, const char *what, struct in_addr &out) {
  if (inet_pton(AF_INET, s.c_str(), &out) != 1) throw Napi::Error::New(env, std::string(what) + ": not an IPv4 address: " + s);
}

void parse6(Napi::Env env, const std::string &s, const char *what, struct in6_addr &out) {
  if (inet_pton(AF_INET6, s.c_str(), &out) != 1) throw Napi::Error::New(env, std::string(what) + ": not an IPv6 address: " + s);
}

/** Strings handed to slirp_new must outlive the call; libslirp copies what it keeps. */
struct ConfigStrings {
  std::string hostname, tftpServerName, tftpPath, bootfile, domain;
  std::vector<std::string> search;
  std::vector<const char *> searchPtrs;
};

struct SockAddr {
  struct sockaddr_storage ss;
  socklen_t len = 0;
};

bool sockAddr(const std::string &addr, int port, SockAddr &out) {
  memset(&out.ss, 0, sizeof out.ss);
  auto *a4 = reinterpret_cast<struct sockaddr_in *>(&out.ss);
  auto *a6 = reinterpret_cast<struct sockaddr_in6 *>(&out.ss);
  if (inet_pton(AF_INET, addr.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(uint16_t(port));
    out.len = sizeof *a4;
    return true;
  }
  if (inet_pton(AF_INET6, addr.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(uint16_t(port));
    out.len = sizeof *a6;
    return true;
  }
  return false;
}

std::string fwdName(bool udp, const std::string &ha, int hp, const std::string &ga, int gp) {
  auto fmt = [](const std::string &a) { return a.find(':') != std::string::npos ? "[" + a + "]" : a; };
  return std::string(udp ? "udp" : "tcp") + " forward " + fmt(ha) + ":" + std::to_string(hp) + " -> " + fmt(ga) + ":" +
         std::to_string(gp);
}

std::string lowerFirst(std::string s) {
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = char(s[0] - 'A' + 'a');
  return s;
}

Napi::Value ForwardOp(const Napi::CallbackInfo &info, const std::shared_ptr<SlirpInstance> &inst, bool add) {
  Napi::Env env = info.Env();
  if (inst->closed()) throw Napi::Error::New(env, "slirp: the instance is closed");
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "forward: expected an object");
  Napi::Object o = info[0].As<Napi::Object>();
  bool udp = flag(o, "udp");
  bool ipv6 = flag(o, "ipv6");
  std::string ha = str(o, "hostAddr", ipv6 ? "::" : "0.0.0.0");
  std::string ga = str(o, "guestAddr", "0.0.0.0");
  int hp = int(num(o, "hostPort"));
  int gp = int(num(o, "guestPort"));
  std::string name = fwdName(udp, ha, hp, ga, gp);
  if (hp < 1 || hp > 65535 || (add && (gp < 1 || gp > 65535))) throw Napi::Error::New(env, name + ": port out of range 1..65535");
  SockAddr h, g;
  if (!sockAddr(ha, hp, h)) throw Napi::Error::New(env, name + ": bad host address");
  if (add && !sockAddr(ga, gp, g)) throw Napi::Error::New(env, name + ": bad guest address");
  int flags = udp ? SLIRP_HOSTFWD_UDP : 0;
  if (h.ss.ss_family == AF_INET6) flags |= SLIRP_HOSTFWD_V6ONLY;
  int err = 0;
  int r = inst->locked([&](Slirp *s) {
    errno = 0;
    int rr = add ? slirp_add_hostxfwd(s, reinterpret_cast<struct sockaddr *>(&h.ss), h.len,
                                      reinterpret_cast<struct sockaddr *>(&g.ss), g.len, flags)
                 : slirp_remove_hostxfwd(s, reinterpret_cast<struct sockaddr *>(&h.ss), h.len, flags);
    err = errno;
    return rr;
  });
  if (r < 0) {
    if (!add) throw Napi::Error::New(env, name + ": no such forward");
    Napi::Error e = Napi::Error::New(env, name + ": " + (err ? lowerFirst(strerror(err)) : std::string("cannot listen")));
    if (err) e.Set("errno", Napi::Number::New(env, err));
    throw e;
  }
  return env.Undefined();
}

Napi::Value CreateSlirp(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "createSlirp: expected an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  SlirpConfig cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.version = 4;
  cfg.restricted = flag(o, "restricted") ? 1 : 0;
  cfg.in_enabled = flag(o, "v4");
  cfg.in6_enabled = flag(o, "v6");
  parse4(env, str(o, "network", "10.0.2.0"), "network", cfg.vnetwork);
  parse4(env, str(o, "netmask", "255.255.255.0"), "netmask", cfg.vnetmask);
  parse4(env, str(o, "host", "10.0.2.2"), "host", cfg.vhost);
  parse4(env, str(o, "dhcpStart", "10.0.2.15"), "dhcp", cfg.vdhcp_start);
  parse4(env, str(o, "nameserver", "10.0.2.3"), "vnameserver", cfg.vnameserver);
  parse6(env, str(o, "prefix6", "fd00::"), "prefix6", cfg.vprefix_addr6);
  cfg.vprefix_len = uint8_t(num(o, "prefixLen6", 64));
  parse6(env, str(o, "host6", "fd00::2"), "host6", cfg.vhost6);
  parse6(env, str(o, "nameserver6", "fd00::3"), "vnameserver6", cfg.vnameserver6);
  ConfigStrings cs;
  cs.hostname = str(o, "hostname");
  cs.tftpServerName = str(o, "tftpServerName");
  cs.tftpPath = str(o, "tftpPath");
  cs.bootfile = str(o, "bootfile");
  cs.domain = str(o, "domainName");
  cfg.vhostname = cs.hostname.empty() ? nullptr : cs.hostname.c_str();
  cfg.tftp_server_name = cs.tftpServerName.empty() ? nullptr : cs.tftpServerName.c_str();
  cfg.tftp_path = cs.tftpPath.empty() ? nullptr : cs.tftpPath.c_str();
  cfg.bootfile = cs.bootfile.empty() ? nullptr : cs.bootfile.c_str();
  cfg.vdomainname = cs.domain.empty() ? nullptr : cs.domain.c_str();
  Napi::Value sv = o.Get("dnsSearch");
  if (sv.IsArray()) {
    Napi::Array arr = sv.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value e = arr.Get(i);
      if (e.IsString()) cs.search.push_back(e.As<Napi::String>().Utf8Value());
    }
  }
  for (auto &s : cs.search) cs.searchPtrs.push_back(s.c_str());
  cs.searchPtrs.push_back(nullptr);
  cfg.vdnssearch = cs.search.empty() ? nullptr : cs.searchPtrs.data();
  cfg.if_mtu = num(o, "mtu");
  cfg.if_mru = num(o, "mru") ? num(o, "mru") : DEFAULT_MRU_BYTES;
  cfg.disable_host_loopback = flag(o, "disableHostLoopback");
  cfg.disable_dhcp = flag(o, "disableDhcp");
  cfg.disable_dns = flag(o, "disableDns");
  if (!cfg.in_enabled && !cfg.in6_enabled) throw Napi::Error::New(env, "createSlirp: neither IPv4 nor IPv6 is enabled");

  auto inst = std::make_shared<SlirpInstance>();
  std::string what;
  int fd = inst->start(cfg, flag(o, "verbose"), what);
  if (fd < 0) throw errnoError(env, -fd, what);

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("close", Napi::Function::New(env, [inst](const Napi::CallbackInfo &i) -> Napi::Value {
               inst->close();
               return i.Env().Undefined();
             }, "close"));
  handle.Set("addForward", Napi::Function::New(env, [inst](const Napi::CallbackInfo &i) { return ForwardOp(i, inst, true); }, "addForward"));
  handle.Set("removeForward", Napi::Function::New(env, [inst](const Napi::CallbackInfo &i) { return ForwardOp(i, inst, false); }, "removeForward"));
  handle.Set("stats", Napi::Function::New(env, [inst](const Napi::CallbackInfo &i) -> Napi::Value {
               Napi::Env e = i.Env();
               Napi::Object s = Napi::Object::New(e);
               Stats &st = inst->stats;
               s.Set("framesIn", double(st.framesIn));
               s.Set("bytesIn", double(st.bytesIn));
               s.Set("framesOut", double(st.framesOut));
               s.Set("bytesOut", double(st.bytesOut));
               s.Set("dropRunt", double(st.dropRunt));
               s.Set("dropOversize", double(st.dropOversize));
               s.Set("dropQueueFull", double(st.dropQueueFull));
               s.Set("dropSendError", double(st.dropSendError));
               s.Set("guestErrors", double(st.guestErrors));
               return s;
             }, "stats"));
  handle.Set("connectionInfo", Napi::Function::New(env, [inst](const Napi::CallbackInfo &i) -> Napi::Value {
               if (inst->closed()) return Napi::String::New(i.Env(), "");
               std::string text = inst->locked([](Slirp *s) {
                 char *p = slirp_connection_info(s);
                 std::string t = p ? p : "";
                 free(p);  // g_malloc'd; GLib ≥ 2.46 allocates with the system malloc
                 return t;
               });
               return Napi::String::New(i.Env(), text);
             }, "connectionInfo"));
  // Last reference from JavaScript gone without close(): the instance stops in its destructor.
  auto *keep = new std::shared_ptr<SlirpInstance>(inst);
  handle.Set("_instance", Napi::External<std::shared_ptr<SlirpInstance>>::New(env, keep, [](Napi::Env, std::shared_ptr<SlirpInstance> *p) { delete p; }));
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, fd));
  result.Set("handle", handle);
  return result;
}

}  // namespace

void RegisterSlirp(Napi::Env env, Napi::Object exports) {
  exports.Set("createSlirp", Napi::Function::New(env, CreateSlirp, "createSlirp"));
  exports.Set("slirpVersion", Napi::Function::New(env, [](const Napi::CallbackInfo &i) -> Napi::Value {
                return Napi::String::New(i.Env(), slirp_version_string());
              }, "slirpVersion"));
}

}  // namespace vde
