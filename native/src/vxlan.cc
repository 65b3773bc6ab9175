// VXLAN and VXVDE endpoints (see vxlan.h): socket set-up, the learned MAC → peer table, the
// batched receive path (header checks in vxlan_wire.h), the send path, and the N-API factories.
//
// A vxlan endpoint either joins a multicast group (vdeplug4's vxlan://) or has a static list of
// unicast peers (head-end replication, as a Linux VXLAN device with `bridge fdb append
// 00:00:00:00:00:00 dst PEER` entries): broadcast, multicast and unknown unicast frames go to
// every peer, a known unicast frame to the peer its MAC was learned from. Only peers are heard:
// a datagram from any other address is dropped and counted as "filter". The peer list lives in
// a VxPeerControl shared with JavaScript, which replaces it at run time (vxlanSetPeers); the
// engine thread picks the new list up at its next receive or send (a version counter, one
// atomic load per call) and forgets what it learned behind peers that are gone.
//
// Wire format (PROTOCOL.md §2.5): 8-byte header {0x08, 0, 0, 0, VNI[3] big-endian, 0} then the
// raw Ethernet frame. Input is never trusted: truncated, short, header-only (except vxvde's
// "leave" message), wrongly flagged and foreign-VNI datagrams are dropped (and counted in the
// port's drop counters when they are malformed) without disturbing the endpoint. Frames are
// received straight into the engine's slab (the header goes to a side buffer through a second
// iovec), so the data path neither copies nor allocates.
#include "vxlan.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <mutex>
#include <vector>

#include "customio.h"
#include "vxlan_wire.h"

namespace vde {
namespace {

constexpr size_t ETH_HEADER_BYTES = 14;
constexpr size_t ETH_ADDR_BYTES = 6;
constexpr uint32_t MAX_VNI_VALUE = 0xffffff;
constexpr int MAX_TTL_HOPS = 255;
constexpr uint32_t MAX_HASH_SIZE_ENTRIES = 1u << 20;
constexpr int64_t MAX_EXPIRE_SECONDS = INT_MAX;
constexpr int DEFAULT_SOCKET_BUFFER_BYTES = 1 << 20;
constexpr int VX_RX_BATCH_FRAMES = RX_BATCH_FRAMES;
constexpr int MAX_TX_IOV_PARTS = 8;  // our header + the engine's (at most 3) frame parts, with room
constexpr size_t PKTINFO_CONTROL_BYTES = CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo));
constexpr size_t MAX_ADDR_TEXT_BYTES = 64;
constexpr uint64_t HASH_MULTIPLIER = 0x9E3779B97F4A7C15ull;  // Fibonacci hashing
constexpr size_t MAX_VX_PEERS = 1024;  // head-end replication copies a frame once per peer

union SockAddr46 {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
};

// Length of the sockaddr for the address's family.
socklen_t addrLen(const SockAddr46 &a) { return a.sa.sa_family == AF_INET6 ? sizeof a.v6 : sizeof a.v4; }

// True when both addresses carry the same IP (ports ignored).
bool sameHost(const SockAddr46 &a, const SockAddr46 &b) {
  if (a.sa.sa_family != b.sa.sa_family) return false;
  if (a.sa.sa_family == AF_INET) return a.v4.sin_addr.s_addr == b.v4.sin_addr.s_addr;
  if (a.sa.sa_family == AF_INET6) return memcmp(&a.v6.sin6_addr, &b.v6.sin6_addr, sizeof a.v6.sin6_addr) == 0;
  return false;
}

// Port of an address, network byte order.
uint16_t portOf(const SockAddr46 &a) { return a.sa.sa_family == AF_INET6 ? a.v6.sin6_port : a.v4.sin_port; }

// True when both addresses carry the same IP and port.
bool sameAddr(const SockAddr46 &a, const SockAddr46 &b) { return sameHost(a, b) && portOf(a) == portOf(b); }

// Sets the port (network byte order).
void setPort(SockAddr46 &a, uint16_t portN) {
  if (a.sa.sa_family == AF_INET6) a.v6.sin6_port = portN;
  else a.v4.sin_port = portN;
}

// True when the address is the wildcard address of its family.
bool isWildcard(const SockAddr46 &a) {
  if (a.sa.sa_family == AF_INET) return a.v4.sin_addr.s_addr == htonl(INADDR_ANY);
  return IN6_IS_ADDR_UNSPECIFIED(&a.v6.sin6_addr);
}

// Packs a 6-byte MAC into an integer.
uint64_t mac48(const uint8_t *m) {
  uint64_t k = 0;
  for (size_t i = 0; i < ETH_ADDR_BYTES; i++) k = (k << 8) | m[i];
  return k;
}

// Monotonic clock in whole seconds (coarse: a vDSO read, no syscall).
uint32_t monoSeconds() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint32_t(ts.tv_sec);
}

// True when an address belongs to one of this network namespace's interfaces.
bool isLocalAddress(const SockAddr46 &a) {
  struct ifaddrs *list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (struct ifaddrs *i = list; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != a.sa.sa_family) continue;
    SockAddr46 x;
    memset(&x, 0, sizeof x);
    memcpy(&x, i->ifa_addr, a.sa.sa_family == AF_INET6 ? sizeof x.v6 : sizeof x.v4);
    found = sameHost(a, x);
  }
  freeifaddrs(list);
  return found;
}

// Copies the first n bytes of an iovec chain; false when the chain is shorter.
bool gather(const struct iovec *iov, int iovcnt, uint8_t *out, size_t n) {
  size_t got = 0;
  for (int i = 0; i < iovcnt && got < n; i++) {
    size_t take = std::min(n - got, iov[i].iov_len);
    memcpy(out + got, iov[i].iov_base, take);
    got += take;
  }
  return got == n;
}

/**
 * Learned MAC → peer address table as vdeplug4 keeps it: direct-mapped (one entry per bucket,
 * a colliding MAC overwrites), size rounded up to a power of two, an entry valid while it was
 * refreshed within the expire time. Fixed size: nothing is allocated after construction.
 */
class PeerTable {
 public:
  // Allocates the buckets (at least sizeEntries, a power of two).
  explicit PeerTable(uint32_t sizeEntries) {
    size_t n = 1;
    unsigned bits = 0;
    while (n < sizeEntries) { n <<= 1; bits++; }
    slots_.assign(n, Entry{});
    shift_ = 64 - bits;
  }

  // Records that mac was last seen behind addr at second now.
  void learn(const uint8_t *mac, const SockAddr46 &addr, uint32_t now) {
    uint64_t k = mac48(mac);
    Entry &e = slots_[slotOf(k)];
    if (!(e.used && e.mac == k && sameAddr(e.addr, addr))) {
      e.mac = k;
      e.addr = addr;
      e.used = true;
    }
    e.seen = now;
  }

  // The address mac was learned behind, if refreshed within expireSeconds; else null.
  const SockAddr46 *find(const uint8_t *mac, uint32_t now, uint32_t expireSeconds) const {
    uint64_t k = mac48(mac);
    const Entry &e = slots_[slotOf(k)];
    if (!e.used || e.mac != k || now - e.seen >= expireSeconds) return nullptr;
    return &e.addr;
  }

  // Invalidates every entry pointing at addr (IP and port).
  void forget(const SockAddr46 &addr) {
    for (Entry &e : slots_)
      if (e.used && sameAddr(e.addr, addr)) e.used = false;
  }

 private:
  struct Entry {
    uint64_t mac = 0;
    uint32_t seen = 0;
    bool used = false;
    SockAddr46 addr{};
  };
  // Bucket index of a packed MAC.
  size_t slotOf(uint64_t k) const { return shift_ >= 64 ? 0 : size_t((k * HASH_MULTIPLIER) >> shift_); }

  std::vector<Entry> slots_;
  unsigned shift_ = 64;
};

}  // namespace

/** The peer list of a unicast vxlan endpoint, shared by JavaScript and the engine thread. */
struct VxPeerControl {
  int family = AF_INET;
  std::mutex mu;
  std::vector<SockAddr46> pending;  // under mu: the list the engine thread takes up next
  std::atomic<uint64_t> version{0};
  // statistics: written by the engine thread, read by anyone
  std::atomic<uint64_t> floodFrames{0};   // frames sent to every peer
  std::atomic<uint64_t> floodCopies{0};   // datagrams those took
  std::atomic<uint64_t> floodLost{0};     // copies the socket had no room for
  std::atomic<uint64_t> unicastFrames{0}; // frames sent to the one peer their MAC was learned from
  std::atomic<uint64_t> notPeer{0};       // datagrams from addresses that are not peers (dropped)

  /** Adds n to a statistic. */
  static void bump(std::atomic<uint64_t> &c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

namespace {

/**
 * What both encapsulations share: the expected header, the group address, the peer table,
 * the pre-built recvmmsg batch (header side buffers, sender addresses, control buffers) and the
 * send path (header + frame in one sendmsg, to the learned peer or to the group).
 */
class VxIoBase : public EndpointIo {
 public:
  // Builds the header for vni and sizes the peer table.
  VxIoBase(const VxOptions &o, const SockAddr46 &group)
      : table_(o.hashSizeEntries), expireSeconds_(o.expireSeconds), vni_(o.vni), group_(group) {
    vxEncodeHeader(o.vni, header_);
    memset(msgs_, 0, sizeof msgs_);
  }

 protected:
  // Receives up to max datagrams from fd: headers into rxHdr_, frames into the slab slots.
  int recvBatch(int fd, uint8_t *slab, size_t slotBytes, uint32_t maxFrame, int max, bool withControl) {
    int n = std::min(max, VX_RX_BATCH_FRAMES);
    if (n <= 0 || !slab) return 0;
    size_t room = std::min(size_t(maxFrame), slotBytes);
    for (int i = 0; i < n; i++) {
      iovs_[i][0] = {rxHdr_[i], VX_HEADER_BYTES};
      iovs_[i][1] = {slab + size_t(i) * slotBytes, room};
      struct msghdr &h = msgs_[i].msg_hdr;
      h.msg_name = &names_[i];
      h.msg_namelen = sizeof names_[i];
      h.msg_iov = iovs_[i];
      h.msg_iovlen = 2;
      h.msg_control = withControl ? ctrl_[i] : nullptr;
      h.msg_controllen = withControl ? sizeof ctrl_[i] : 0;
      h.msg_flags = 0;
      msgs_[i].msg_len = 0;
    }
    int r;
    do r = recvmmsg(fd, msgs_, unsigned(n), MSG_DONTWAIT, nullptr);
    while (r < 0 && errno == EINTR);
    return r < 0 ? 0 : r;
  }

  // Common checks of datagram i; returns its frame length, or 0 when it was dropped (counted).
  uint32_t checkCommon(int i, DropCounts &c) {
    const struct msghdr &h = msgs_[i].msg_hdr;
    uint32_t total = msgs_[i].msg_len;
    if (h.msg_flags & MSG_TRUNC) { c.drops[DROP_OVERSIZE]++; return 0; }
    if (total < VX_HEADER_BYTES) { c.drops[DROP_RUNT]++; return 0; }
    if (h.msg_namelen < sizeof(struct sockaddr_in) || names_[i].sa.sa_family != group_.sa.sa_family) {
      c.drops[DROP_FRAMING]++;
      return 0;
    }
    return total;
  }

  // Moves a kept frame from slot `from` down to slot `to` and records its length.
  static void keep(uint8_t *slab, size_t slotBytes, int from, int to, uint32_t len, uint32_t *lens) {
    if (from != to) memmove(slab + size_t(to) * slotBytes, slab + size_t(from) * slotBytes, len);
    lens[to] = len;
  }

  // Sends one frame from fd: to the learned peer of its unicast destination, else to the group.
  int sendFrame(int fd, const struct iovec *iov, int iovcnt, size_t len) {
    uint8_t dst[ETH_ADDR_BYTES];
    if (len < ETH_HEADER_BYTES || iovcnt < 1 || !gather(iov, iovcnt, dst, sizeof dst)) return 1;  // discarded, as vdeplug4
    if (iovcnt + 1 > MAX_TX_IOV_PARTS) return -EINVAL;
    const SockAddr46 *to = &group_;
    if (!(dst[0] & 1)) {
      const SockAddr46 *peer = table_.find(dst, monoSeconds(), expireSeconds_);
      if (peer) to = peer;
    }
    struct iovec v[MAX_TX_IOV_PARTS];
    return sendTo(fd, *to, withHeader(iov, iovcnt, v), iovcnt + 1);
  }

  // Puts our header in front of the frame parts, into v (MAX_TX_IOV_PARTS); returns v.
  struct iovec *withHeader(const struct iovec *iov, int iovcnt, struct iovec *v) {
    v[0] = {header_, VX_HEADER_BYTES};
    for (int i = 0; i < iovcnt; i++) v[i + 1] = iov[i];
    return v;
  }

  // Sends one datagram of v to `to`: 1 sent, 0 would block, -errno failed.
  static int sendTo(int fd, const SockAddr46 &to, struct iovec *v, int n) {
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_name = const_cast<SockAddr46 *>(&to);
    m.msg_namelen = addrLen(to);
    m.msg_iov = v;
    m.msg_iovlen = size_t(n);
    for (;;) {
      if (sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return 1;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
      return -errno;
    }
  }

  PeerTable table_;
  uint32_t expireSeconds_;
  uint32_t vni_;
  SockAddr46 group_;
  uint8_t header_[VX_HEADER_BYTES];

  struct mmsghdr msgs_[VX_RX_BATCH_FRAMES];
  struct iovec iovs_[VX_RX_BATCH_FRAMES][2];
  uint8_t rxHdr_[VX_RX_BATCH_FRAMES][VX_HEADER_BYTES];
  SockAddr46 names_[VX_RX_BATCH_FRAMES];
  alignas(struct cmsghdr) uint8_t ctrl_[VX_RX_BATCH_FRAMES][PKTINFO_CONTROL_BYTES];
};

/**
 * vxlan://: one socket on the VXLAN port. Multicast: bound to wildcard:port and member of the
 * group; peers are learned with the VXLAN port. Unicast (peers_ set): bound to local:port, frames
 * go to the peers (see the file comment).
 */
class VxlanIo : public VxIoBase {
 public:
  // Takes the options; the factory opens the socket. peers: the control of a unicast endpoint (else null).
  VxlanIo(const VxOptions &o, const SockAddr46 &group, std::shared_ptr<VxPeerControl> peers)
      : VxIoBase(o, group), portN_(htons(o.port)), peers_(std::move(peers)) {}
  // Closes the socket.
  ~VxlanIo() override {
    if (fd_ >= 0) close(fd_);
  }
  // The socket.
  int fd() const override { return fd_; }
  // The peer control of a unicast endpoint, else null.
  std::shared_ptr<VxPeerControl> peerControl() const { return peers_; }

  // Receives a batch: flags exactly 0x08, our VNI, frame > 14 bytes; learns source MAC → sender (or its peer entry).
  int receive(int readyFd, uint8_t *slab, size_t slotBytes, uint32_t maxFrame, uint32_t *lens, int max,
              DropCounts &c) override {
    if (readyFd != fd_) return 0;
    if (peers_) syncPeers();
    int n = recvBatch(fd_, slab, slotBytes, maxFrame, max, false);
    uint32_t now = monoSeconds();
    int kept = 0;
    for (int i = 0; i < n; i++) {
      uint32_t total = checkCommon(i, c);
      if (!total) continue;
      const SockAddr46 *from = nullptr;
      if (peers_ && !(from = peerOf(names_[i]))) {  // only peers are heard
        c.drops[DROP_FILTER]++;
        VxPeerControl::bump(peers_->notPeer);
        continue;
      }
      VxDecap d = vxlanDecap(rxHdr_[i], total, vni_);
      if (d.verdict == VxVerdict::Runt) { c.drops[DROP_RUNT]++; continue; }
      if (d.verdict == VxVerdict::Framing) { c.drops[DROP_FRAMING]++; continue; }
      if (d.verdict != VxVerdict::Frame) continue;  // another VNI on the same group: not ours
      uint32_t len = d.frameLen;
      const uint8_t *f = slab + size_t(i) * slotBytes;
      if (!(f[ETH_ADDR_BYTES] & 1)) {  // never learn a multicast source
        if (from) {
          table_.learn(f + ETH_ADDR_BYTES, *from, now);
        } else {
          SockAddr46 peer = names_[i];
          setPort(peer, portN_);  // VXLAN peers listen on the VXLAN port, whatever port they sent from
          table_.learn(f + ETH_ADDR_BYTES, peer, now);
        }
      }
      keep(slab, slotBytes, i, kept, len, lens);
      kept++;
    }
    return kept;
  }

  // Sends one frame: multicast as VxIoBase::sendFrame; unicast to the learned peer or to every peer.
  int send(const struct iovec *iov, int iovcnt, size_t len) override {
    if (!peers_) return sendFrame(fd_, iov, iovcnt, len);
    syncPeers();
    uint8_t dst[ETH_ADDR_BYTES];
    if (len < ETH_HEADER_BYTES || iovcnt < 1 || !gather(iov, iovcnt, dst, sizeof dst)) return 1;  // discarded, as vdeplug4
    if (iovcnt + 1 > MAX_TX_IOV_PARTS) return -EINVAL;
    struct iovec v[MAX_TX_IOV_PARTS];
    withHeader(iov, iovcnt, v);
    if (!(dst[0] & 1)) {
      if (const SockAddr46 *peer = table_.find(dst, monoSeconds(), expireSeconds_)) {
        int r = sendTo(fd_, *peer, v, iovcnt + 1);
        if (r == 1) VxPeerControl::bump(peers_->unicastFrames);
        return r;
      }
    }
    size_t n = peerList_.size();
    if (n == 0) return 1;  // nobody to send to (an empty peer list): as a cable with its far end unplugged
    for (size_t k = 0; k < n; k++) {
      struct msghdr &m = floodMsgs_[k].msg_hdr;
      m.msg_iov = v;
      m.msg_iovlen = size_t(iovcnt) + 1;
    }
    size_t done = 0, lost = 0;  // copies handled (sent or lost), and of those lost
    while (done < n) {
      int r = sendmmsg(fd_, floodMsgs_.data() + done, unsigned(n - done), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r > 0) {
        done += size_t(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
        if (done == 0) return 0;  // nothing went out: the engine queues the frame and retries
        lost += n - done;         // some copies went: the rest are lost, as UDP may lose them
        break;
      }
      if (n == 1) return -errno;  // the one peer cannot be reached (no route): a send error
      done++;                     // this peer cannot be reached: skip it, go on with the others
      lost++;
    }
    VxPeerControl::bump(peers_->floodFrames);
    VxPeerControl::bump(peers_->floodCopies, n - lost);
    if (lost) VxPeerControl::bump(peers_->floodLost, lost);
    return 1;
  }

  int fd_ = -1;

 private:
  // Takes up a new peer list if JavaScript replaced it; forgets MACs learned behind peers that are gone.
  void syncPeers() {
    uint64_t ver = peers_->version.load(std::memory_order_acquire);
    if (ver == seenVersion_) return;
    std::vector<SockAddr46> next;
    {
      std::lock_guard<std::mutex> g(peers_->mu);
      next = peers_->pending;
      seenVersion_ = peers_->version.load(std::memory_order_relaxed);
    }
    for (const SockAddr46 &old : peerList_) {
      bool kept = false;
      for (const SockAddr46 &x : next) kept = kept || sameAddr(old, x);
      if (!kept) table_.forget(old);
    }
    peerList_.swap(next);
    floodMsgs_.assign(peerList_.size(), mmsghdr{});
    for (size_t k = 0; k < peerList_.size(); k++) {
      floodMsgs_[k].msg_hdr.msg_name = &peerList_[k];
      floodMsgs_[k].msg_hdr.msg_namelen = addrLen(peerList_[k]);
    }
  }

  // The peer entry a datagram came from: the same address and port, else the same address; null if none.
  const SockAddr46 *peerOf(const SockAddr46 &from) const {
    const SockAddr46 *host = nullptr;
    for (const SockAddr46 &p : peerList_) {
      if (!sameHost(p, from)) continue;
      if (portOf(p) == portOf(from)) return &p;
      if (!host) host = &p;
    }
    return host;
  }

  uint16_t portN_;
  std::shared_ptr<VxPeerControl> peers_;
  uint64_t seenVersion_ = ~uint64_t(0);
  std::vector<SockAddr46> peerList_;
  std::vector<struct mmsghdr> floodMsgs_;
};

/**
 * vxvde://: a multicast socket bound to group:port (shared with other processes) and a unicast
 * socket on an ephemeral port from which everything is sent; own multicast echoes are dropped,
 * header-only datagrams are "leave" messages, and a leave is sent to the group on close.
 */
class VxvdeIo : public VxIoBase {
 public:
  // Takes the options; the factory opens the sockets.
  VxvdeIo(const VxOptions &o, const SockAddr46 &group) : VxIoBase(o, group) {
    memset(&bound_, 0, sizeof bound_);
    memset(&localCache_, 0, sizeof localCache_);
  }
  // Tells the group we leave (so peers forget us at once), then closes both sockets.
  ~VxvdeIo() override {
    if (open_ && ufd_ >= 0)
      sendto(ufd_, header_, VX_HEADER_BYTES, MSG_DONTWAIT | MSG_NOSIGNAL, &group_.sa, addrLen(group_));
    if (ufd_ >= 0) close(ufd_);
    if (mfd_ >= 0) close(mfd_);
  }
  // The unicast socket (all sending happens here).
  int fd() const override { return ufd_; }
  // The multicast socket.
  std::vector<int> extraFds() const override { return {mfd_}; }

  // Receives a batch from either socket: exact header, frame > 14 bytes, no own echo; leave messages forget a peer.
  int receive(int readyFd, uint8_t *slab, size_t slotBytes, uint32_t maxFrame, uint32_t *lens, int max,
              DropCounts &c) override {
    if (readyFd != ufd_ && readyFd != mfd_) return 0;
    bool multicast = readyFd == mfd_;
    int n = recvBatch(readyFd, slab, slotBytes, maxFrame, max, multicast);
    uint32_t now = monoSeconds();
    int kept = 0;
    for (int i = 0; i < n; i++) {
      uint32_t total = checkCommon(i, c);
      if (!total) continue;
      VxDecap d = vxvdeDecap(rxHdr_[i], total, vni_);
      if (d.verdict == VxVerdict::Framing) { c.drops[DROP_FRAMING]++; continue; }
      if (d.verdict == VxVerdict::Foreign) continue;  // another VNI on the same group, not ours
      if (d.verdict == VxVerdict::Leave) {  // the sender is gone
        table_.forget(names_[i]);
        continue;
      }
      if (d.verdict == VxVerdict::Runt) { c.drops[DROP_RUNT]++; continue; }
      if (multicast && ownEcho(i)) continue;
      uint32_t len = d.frameLen;
      const uint8_t *f = slab + size_t(i) * slotBytes;
      if (!(f[ETH_ADDR_BYTES] & 1)) table_.learn(f + ETH_ADDR_BYTES, names_[i], now);
      keep(slab, slotBytes, i, kept, len, lens);
      kept++;
    }
    return kept;
  }

  // Sends one frame from the unicast socket (see VxIoBase::sendFrame).
  int send(const struct iovec *iov, int iovcnt, size_t len) override { return sendFrame(ufd_, iov, iovcnt, len); }

  int mfd_ = -1;
  int ufd_ = -1;
  uint16_t uniPortN_ = 0;  // our unicast port, network order
  SockAddr46 bound_;       // local address of the unicast socket (may be the wildcard)
  bool open_ = false;      // fully set up: a leave is due on close

 private:
  // True when multicast datagram i is our own (looped back): our port and one of our addresses.
  bool ownEcho(int i) {
    const SockAddr46 &s = names_[i];
    if (portOf(s) != uniPortN_) return false;
    if (s.sa.sa_family == AF_INET) {
      struct msghdr &h = msgs_[i].msg_hdr;
      for (struct cmsghdr *cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm)) {
        if (cm->cmsg_level != IPPROTO_IP || cm->cmsg_type != IP_PKTINFO || cm->cmsg_len < CMSG_LEN(sizeof(struct in_pktinfo))) continue;
        struct in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(cm), sizeof pi);
        if (pi.ipi_spec_dst.s_addr == s.v4.sin_addr.s_addr) return true;
      }
    }
    if (!isWildcard(bound_) && sameHost(s, bound_)) return true;
    if (localCache_.sa.sa_family == s.sa.sa_family && sameHost(s, localCache_)) return true;
    if (isLocalAddress(s)) {  // rare: only a datagram from our own port number gets here
      localCache_ = s;
      return true;
    }
    return false;
  }

  SockAddr46 localCache_;  // a local address our echoes were last seen from
};

// Opens a non-blocking UDP socket of the family (IPv6 sockets are v6-only).
int udpSocket(int family) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) throw VxError{errno, "socket"};
  if (family == AF_INET6) {
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  return fd;
}

// setsockopt with an int value; throws VxError naming the option.
void setIntOpt(int fd, int level, int name, int value, const char *what) {
  if (setsockopt(fd, level, name, &value, sizeof value) < 0) throw VxError{errno, std::string("setsockopt ") + what};
}

// Receive/send buffers: rcvbuf= when given (must succeed), otherwise our defaults (best effort).
void setBuffers(int fd, int rcvbufBytes) {
  int dflt = DEFAULT_SOCKET_BUFFER_BYTES;
  if (rcvbufBytes > 0) setIntOpt(fd, SOL_SOCKET, SO_RCVBUF, rcvbufBytes, "SO_RCVBUF (rcvbuf=)");
  else setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &dflt, sizeof dflt);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &dflt, sizeof dflt);
}

// Multicast TTL / hop limit of outgoing datagrams.
void setMulticastTtl(int fd, int family, int ttl) {
  if (family == AF_INET) setIntOpt(fd, IPPROTO_IP, IP_MULTICAST_TTL, ttl, "IP_MULTICAST_TTL (ttl=)");
  else setIntOpt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl, "IPV6_MULTICAST_HOPS (ttl=)");
}

// Whether our own multicast datagrams loop back to local sockets.
void setMulticastLoop(int fd, int family, bool on) {
  if (family == AF_INET) setIntOpt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, on ? 1 : 0, "IP_MULTICAST_LOOP");
  else setIntOpt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on ? 1 : 0, "IPV6_MULTICAST_LOOP");
}

// Interface that outgoing multicast leaves from.
void setMulticastIf(int fd, int family, unsigned ifindex) {
  if (family == AF_INET) {
    struct ip_mreqn r;
    memset(&r, 0, sizeof r);
    r.imr_ifindex = int(ifindex);
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &r, sizeof r) < 0) throw VxError{errno, "setsockopt IP_MULTICAST_IF (if=)"};
  } else {
    int idx = int(ifindex);
    setIntOpt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, idx, "IPV6_MULTICAST_IF (if=)");
  }
}

// Joins the group on the interface (0 = the kernel's choice).
void joinGroup(int fd, const SockAddr46 &g, unsigned ifindex) {
  if (g.sa.sa_family == AF_INET) {
    struct ip_mreqn r;
    memset(&r, 0, sizeof r);
    r.imr_multiaddr = g.v4.sin_addr;
    r.imr_address.s_addr = htonl(INADDR_ANY);
    r.imr_ifindex = int(ifindex);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &r, sizeof r) < 0) throw VxError{errno, "join multicast group (IP_ADD_MEMBERSHIP)"};
  } else {
    struct ipv6_mreq r;
    memset(&r, 0, sizeof r);
    r.ipv6mr_multiaddr = g.v6.sin6_addr;
    r.ipv6mr_interface = ifindex;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &r, sizeof r) < 0) throw VxError{errno, "join multicast group (IPV6_ADD_MEMBERSHIP)"};
  }
}

// Binds; throws VxError naming the address.
void bindTo(int fd, const SockAddr46 &a, const std::string &what) {
  if (bind(fd, &a.sa, addrLen(a)) < 0) throw VxError{errno, "bind " + what};
}

// Parses the group (numeric, multicast), applies grp='s gid, sets the port; also the interface index.
SockAddr46 groupAddress(const VxOptions &o, unsigned &ifindex) {
  SockAddr46 g;
  memset(&g, 0, sizeof g);
  uint8_t *last = nullptr;
  size_t addrBytes = 0;
  if (inet_pton(AF_INET, o.group.c_str(), &g.v4.sin_addr) == 1) {
    g.v4.sin_family = AF_INET;
    g.v4.sin_port = htons(o.port);
    last = reinterpret_cast<uint8_t *>(&g.v4.sin_addr);
    addrBytes = sizeof g.v4.sin_addr;
  } else if (inet_pton(AF_INET6, o.group.c_str(), &g.v6.sin6_addr) == 1) {
    g.v6.sin6_family = AF_INET6;
    g.v6.sin6_port = htons(o.port);
    last = reinterpret_cast<uint8_t *>(&g.v6.sin6_addr);
    addrBytes = sizeof g.v6.sin6_addr;
  } else {
    throw VxError{EINVAL, "group " + o.group + " is not a numeric IPv4/IPv6 address"};
  }
  if (o.groupGid >= 0) {  // vdeplug4 grp=: the gid replaces the last three bytes (big-endian)
    last[addrBytes - 1] = uint8_t(o.groupGid);
    last[addrBytes - 2] = uint8_t(o.groupGid >> 8);
    last[addrBytes - 3] = uint8_t(o.groupGid >> 16);
  }
  bool mc = g.sa.sa_family == AF_INET ? IN_MULTICAST(ntohl(g.v4.sin_addr.s_addr)) : IN6_IS_ADDR_MULTICAST(&g.v6.sin6_addr);
  if (!mc) throw VxError{EINVAL, "group " + o.group + " is not a multicast address"};
  ifindex = 0;
  if (!o.ifname.empty()) {
    ifindex = if_nametoindex(o.ifname.c_str());
    if (ifindex == 0) throw VxError{errno ? errno : ENODEV, "if=" + o.ifname};
    if (g.sa.sa_family == AF_INET6 && (IN6_IS_ADDR_MC_LINKLOCAL(&g.v6.sin6_addr) || IN6_IS_ADDR_MC_NODELOCAL(&g.v6.sin6_addr)))
      g.v6.sin6_scope_id = ifindex;
  }
  return g;
}

// Wildcard address of the family with the given port.
SockAddr46 wildcard(int family, uint16_t port) {
  SockAddr46 a;
  memset(&a, 0, sizeof a);
  a.sa.sa_family = sa_family_t(family);
  if (family == AF_INET) a.v4.sin_addr.s_addr = htonl(INADDR_ANY);
  else a.v6.sin6_addr = in6addr_any;
  setPort(a, htons(port));
  return a;
}

// Text of an address (for messages).
std::string addrText(const SockAddr46 &a) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (a.sa.sa_family == AF_INET) inet_ntop(AF_INET, &a.v4.sin_addr, buf, sizeof buf);
  else inet_ntop(AF_INET6, &a.v6.sin6_addr, buf, sizeof buf);
  return a.sa.sa_family == AF_INET6 ? "[" + std::string(buf) + "]:" + std::to_string(ntohs(portOf(a)))
                                    : std::string(buf) + ":" + std::to_string(ntohs(portOf(a)));
}

}  // namespace

namespace {

// A numeric unicast peer address of the family with its port; throws VxError otherwise.
SockAddr46 peerAddress(int family, const std::string &addr, uint16_t port) {
  SockAddr46 a = wildcard(family, port);
  void *dst = family == AF_INET ? static_cast<void *>(&a.v4.sin_addr) : static_cast<void *>(&a.v6.sin6_addr);
  if (inet_pton(family, addr.c_str(), dst) != 1)
    throw VxError{EINVAL, "peer " + addr + " is not a numeric IPv" + std::to_string(family == AF_INET ? 4 : 6) + " address"};
  bool bad = family == AF_INET ? (IN_MULTICAST(ntohl(a.v4.sin_addr.s_addr)) || a.v4.sin_addr.s_addr == htonl(INADDR_ANY))
                               : (IN6_IS_ADDR_MULTICAST(&a.v6.sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&a.v6.sin6_addr));
  if (bad) throw VxError{EINVAL, "peer " + addr + " is not a unicast address"};
  return a;
}

// The peer list of the options as addresses (at most MAX_VX_PEERS); throws VxError.
std::vector<SockAddr46> peerList(int family, const std::vector<std::pair<std::string, uint16_t>> &peers) {
  if (peers.size() > MAX_VX_PEERS) throw VxError{E2BIG, std::to_string(peers.size()) + " peers (at most " + std::to_string(MAX_VX_PEERS) + ")"};
  std::vector<SockAddr46> out;
  for (const auto &[addr, port] : peers) {
    SockAddr46 a = peerAddress(family, addr, port);
    bool dup = false;
    for (const SockAddr46 &x : out) dup = dup || sameAddr(x, a);
    if (!dup) out.push_back(a);
  }
  return out;
}

// Opens a unicast vxlan socket on local:port with its peer list.
std::unique_ptr<VxlanIo> makeUnicastVxlanIo(const VxOptions &o) {
  int family = o.family == 6 ? AF_INET6 : AF_INET;
  auto ctl = std::make_shared<VxPeerControl>();
  ctl->family = family;
  ctl->pending = peerList(family, o.peers);
  ctl->version.store(1);
  SockAddr46 local = wildcard(family, o.port);
  if (!o.bindAddr.empty()) local = [&] {
    try {
      return peerAddress(family, o.bindAddr, o.port);
    } catch (VxError &e) {
      throw VxError{EINVAL, "local=" + o.bindAddr + " is not a unicast address of the peers' family"};
    }
  }();
  auto io = std::make_unique<VxlanIo>(o, wildcard(family, o.port), ctl);  // owns the fd from here on
  io->fd_ = udpSocket(family);
  setBuffers(io->fd_, o.rcvbufBytes);
  try {
    bindTo(io->fd_, local, addrText(local));
  } catch (VxError &e) {
    if (e.err == EADDRINUSE) e.what += " (another vxlan endpoint or a kernel VXLAN device already uses this port)";
    throw;
  }
  return io;
}

}  // namespace

// Opens the vxlan socket: multicast (wildcard:port, group joined, loop off, multicast TTL and
// interface set) or unicast (local:port, the peer list).
std::unique_ptr<EndpointIo> makeVxlanIo(const VxOptions &o) {
  if (o.unicast) return makeUnicastVxlanIo(o);  // (the N-API side uses createVxlanPeers for these)
  unsigned ifindex = 0;
  SockAddr46 g = groupAddress(o, ifindex);
  int family = g.sa.sa_family;
  auto io = std::make_unique<VxlanIo>(o, g, nullptr);  // owns the fd from here on, also when we throw
  io->fd_ = udpSocket(family);
  int fd = io->fd_;
  setBuffers(fd, o.rcvbufBytes);
  setMulticastTtl(fd, family, o.ttlHops);
  setMulticastLoop(fd, family, false);
  SockAddr46 local = wildcard(family, o.port);
  try {
    bindTo(fd, local, addrText(local));
  } catch (VxError &e) {
    if (e.err == EADDRINUSE) e.what += " (another vxlan endpoint or a kernel VXLAN device already uses this port)";
    throw;
  }
  joinGroup(fd, g, ifindex);
  if (ifindex) setMulticastIf(fd, family, ifindex);
  return io;
}

// Opens the vxvde sockets: shared multicast group:port (packet info on) and private unicast ephemeral port.
std::unique_ptr<EndpointIo> makeVxvdeIo(const VxOptions &o) {
  unsigned ifindex = 0;
  SockAddr46 g = groupAddress(o, ifindex);
  int family = g.sa.sa_family;
  SockAddr46 local = wildcard(family, 0);
  if (!o.bindAddr.empty()) {
    void *dst = family == AF_INET ? static_cast<void *>(&local.v4.sin_addr) : static_cast<void *>(&local.v6.sin6_addr);
    if (inet_pton(family, o.bindAddr.c_str(), dst) != 1)
      throw VxError{EINVAL, "bind=" + o.bindAddr + " is not a numeric address of the group's family"};
  }
  auto io = std::make_unique<VxvdeIo>(o, g);  // owns the fds from here on, also when we throw
  // multicast socket: shared group:port, tells us where each datagram arrived
  io->mfd_ = udpSocket(family);
  int m = io->mfd_;
  setIntOpt(m, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (family == AF_INET) setIntOpt(m, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
  else setIntOpt(m, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
  setBuffers(m, o.rcvbufBytes);
  bindTo(m, g, addrText(g));
  joinGroup(m, g, ifindex);
  // unicast socket: ephemeral port, every datagram leaves from here
  io->ufd_ = udpSocket(family);
  int u = io->ufd_;
  setBuffers(u, o.rcvbufBytes);
  if (family == AF_INET) setIntOpt(u, IPPROTO_IP, IP_TTL, o.ttlHops, "IP_TTL (ttl=)");
  setMulticastTtl(u, family, o.ttlHops);
  setMulticastLoop(u, family, true);  // other endpoints on this host must hear us
  bindTo(u, local, addrText(local) + " (bind=)");
  if (ifindex) setMulticastIf(u, family, ifindex);
  socklen_t len = sizeof io->bound_;
  if (getsockname(u, &io->bound_.sa, &len) < 0) throw VxError{errno, "getsockname"};
  io->uniPortN_ = portOf(io->bound_);
  io->open_ = true;
  return io;
}

namespace {

// JS error carrying errno and the failed step (converted to a Node-style error by src/native.ts).
Napi::Error vxError(Napi::Env env, const VxError &e) {
  Napi::Error err = Napi::Error::New(env, e.what + ": " + strerror(e.err));
  err.Set("errno", Napi::Number::New(env, e.err));
  err.Set("syscall", Napi::String::New(env, e.what));
  return err;
}

// Reads an integer option in [lo, hi]; absent → dflt unless required.
int64_t intOpt(const Napi::Object &o, const char *key, int64_t lo, int64_t hi, bool required, int64_t dflt) {
  Napi::Env env = o.Env();
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (required) throw Napi::TypeError::New(env, std::string("vxlan options: ") + key + " is required");
    return dflt;
  }
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("vxlan options: ") + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < double(lo) || d > double(hi))
    throw Napi::RangeError::New(env, std::string("vxlan options: ") + key + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return int64_t(d);
}

// Reads a string option of at most maxBytes bytes without NUL; absent → "" unless required.
std::string strOpt(const Napi::Object &o, const char *key, size_t maxBytes, bool required) {
  Napi::Env env = o.Env();
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (required) throw Napi::TypeError::New(env, std::string("vxlan options: ") + key + " is required");
    return "";
  }
  if (!v.IsString()) throw Napi::TypeError::New(env, std::string("vxlan options: ") + key + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.size() > maxBytes || s.find('\0') != std::string::npos)
    throw Napi::RangeError::New(env, std::string("vxlan options: ") + key + " is too long or contains NUL");
  return s;
}

// Reads a peer list [{addr: string, port: number}, ...] (at most MAX_VX_PEERS).
std::vector<std::pair<std::string, uint16_t>> readPeers(const Napi::Value &v) {
  Napi::Env env = v.Env();
  if (!v.IsArray()) throw Napi::TypeError::New(env, "vxlan peers: an array of {addr, port} is required");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > MAX_VX_PEERS) throw Napi::RangeError::New(env, "vxlan peers: at most " + std::to_string(MAX_VX_PEERS) + " peers");
  std::vector<std::pair<std::string, uint16_t>> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    if (!a.Get(i).IsObject()) throw Napi::TypeError::New(env, "vxlan peers: an array of {addr, port} is required");
    Napi::Object p = a.Get(i).As<Napi::Object>();
    out.emplace_back(strOpt(p, "addr", MAX_ADDR_TEXT_BYTES, true), uint16_t(intOpt(p, "port", 1, 65535, true, 0)));
  }
  return out;
}

// Validates the options object passed from JavaScript.
VxOptions readOptions(const Napi::CallbackInfo &info, bool vxvde) {
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "vxlan options: an object is required");
  Napi::Object o = info[0].As<Napi::Object>();
  VxOptions r;
  if (!vxvde && !o.Get("peers").IsUndefined()) {  // unicast vxlan: a peer list instead of a group
    r.unicast = true;
    r.family = int(intOpt(o, "family", 4, 6, true, 4));
    if (r.family != 4 && r.family != 6) throw Napi::RangeError::New(info.Env(), "vxlan options: family must be 4 or 6");
    r.peers = readPeers(o.Get("peers"));
    r.bindAddr = strOpt(o, "local", MAX_ADDR_TEXT_BYTES, false);
  } else {
    r.group = strOpt(o, "group", MAX_ADDR_TEXT_BYTES, true);
  }
  r.port = uint16_t(intOpt(o, "port", 1, 65535, true, 0));
  r.vni = uint32_t(intOpt(o, "vni", 0, MAX_VNI_VALUE, true, 0));
  r.ttlHops = int(intOpt(o, "ttl", 0, MAX_TTL_HOPS, false, 1));
  r.ifname = strOpt(o, "ifname", IFNAMSIZ - 1, false);
  r.rcvbufBytes = int(intOpt(o, "rcvbufBytes", 1, INT_MAX, false, 0));
  r.hashSizeEntries = uint32_t(intOpt(o, "hashSize", 1, MAX_HASH_SIZE_ENTRIES, false, 1024));
  r.expireSeconds = uint32_t(intOpt(o, "expireSeconds", 1, MAX_EXPIRE_SECONDS, false, 128));
  if (vxvde) {
    r.bindAddr = strOpt(o, "bind", MAX_ADDR_TEXT_BYTES, false);
    r.groupGid = intOpt(o, "groupGid", -1, UINT32_MAX, false, -1);
  }
  return r;
}

// createVxlan(opts): opens a multicast vxlan endpoint and returns its handle for engine.addCustomEndpoint.
Napi::Value CreateVxlan(const Napi::CallbackInfo &info) {
  VxOptions o = readOptions(info, false);
  if (o.unicast) throw Napi::TypeError::New(info.Env(), "vxlan options: a peer list needs createVxlanPeers");
  try {
    return WrapIo(info.Env(), makeVxlanIo(o));
  } catch (const VxError &e) {
    throw vxError(info.Env(), e);
  }
}

// createVxvde(opts): opens a vxvde endpoint and returns its handle for engine.addCustomEndpoint.
Napi::Value CreateVxvde(const Napi::CallbackInfo &info) {
  VxOptions o = readOptions(info, true);
  try {
    return WrapIo(info.Env(), makeVxvdeIo(o));
  } catch (const VxError &e) {
    throw vxError(info.Env(), e);
  }
}

using PeerHandle = std::shared_ptr<VxPeerControl>;

// createVxlanPeers(opts): opens a unicast vxlan endpoint (opts.peers, opts.family, opts.local);
// returns {handle, control}: the handle for engine.addCustomEndpoint, the control for
// vxlanSetPeers and vxlanStats (it stays valid after the engine took the handle).
Napi::Value CreateVxlanPeers(const Napi::CallbackInfo &info) {
  VxOptions o = readOptions(info, false);
  if (!o.unicast) throw Napi::TypeError::New(info.Env(), "vxlan options: peers is required");
  std::unique_ptr<VxlanIo> io;
  try {
    io = makeUnicastVxlanIo(o);
  } catch (const VxError &e) {
    throw vxError(info.Env(), e);
  }
  PeerHandle ctl = io->peerControl();
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("control", Napi::External<PeerHandle>::New(info.Env(), new PeerHandle(ctl), [](Napi::Env, PeerHandle *p) { delete p; }));
  r.Set("handle", WrapIo(info.Env(), std::move(io)));
  return r;
}

// The control behind a createVxlanPeers() control value.
VxPeerControl &control(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "not a vxlan peer control");
  return **info[0].As<Napi::External<PeerHandle>>().Data();
}

// vxlanSetPeers(control, [{addr, port}]): replaces the peer list (all or nothing); the engine thread takes it up.
Napi::Value VxlanSetPeers(const Napi::CallbackInfo &info) {
  VxPeerControl &c = control(info);
  std::vector<SockAddr46> list;
  try {
    list = peerList(c.family, readPeers(info[1]));
  } catch (const VxError &e) {
    throw vxError(info.Env(), e);
  }
  std::lock_guard<std::mutex> g(c.mu);
  c.pending.swap(list);
  c.version.fetch_add(1, std::memory_order_release);
  return info.Env().Undefined();
}

// vxlanStats(control): {peers: ["ADDR:PORT", ...], floodFrames, floodCopies, floodLost, unicastFrames, notPeer}.
Napi::Value VxlanStats(const Napi::CallbackInfo &info) {
  VxPeerControl &c = control(info);
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array peers = Napi::Array::New(env);
  {
    std::lock_guard<std::mutex> g(c.mu);
    for (size_t k = 0; k < c.pending.size(); k++) peers.Set(uint32_t(k), addrText(c.pending[k]));
  }
  o.Set("peers", peers);
  o.Set("floodFrames", double(c.floodFrames.load()));
  o.Set("floodCopies", double(c.floodCopies.load()));
  o.Set("floodLost", double(c.floodLost.load()));
  o.Set("unicastFrames", double(c.unicastFrames.load()));
  o.Set("notPeer", double(c.notPeer.load()));
  return o;
}

}  // namespace

// Adds the factories and the peer controls to the addon's exports.
void RegisterVxlan(Napi::Env env, Napi::Object exports) {
  exports.Set("createVxlan", Napi::Function::New(env, CreateVxlan));
  exports.Set("createVxvde", Napi::Function::New(env, CreateVxvde));
  exports.Set("createVxlanPeers", Napi::Function::New(env, CreateVxlanPeers));
  exports.Set("vxlanSetPeers", Napi::Function::New(env, VxlanSetPeers));
  exports.Set("vxlanStats", Napi::Function::New(env, VxlanStats));
}

}  // namespace vde
