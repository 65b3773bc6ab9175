// The datagram kind: one frame per datagram. VDE clients' data sockets, slirp's socketpair,
// udp:// and ptp:// plugs and QEMU's -netdev dgram use it. Input is read with recvmmsg straight
// into the slab; output goes out with one sendmmsg per batch, and queued frames drain the same
// way. A socket without a fixed peer (adoptPeer) connects to its first sender, and a zero-length
// datagram (VDE's hang-up) dissolves that association so the next sender can take over.
//
// A VDE data socket whose two vde-ts ends agreed on it at the handshake (vnet) carries a 10-byte
// virtio-net header before every frame, and GSO frames of up to 64 KiB: they arrive as they are,
// validated once, and leave as they are (takesVnet); unix datagram sockets carry them whole.
//
// A connected UDP socket (udp://) with offloads negotiates in-band instead (cable.h, datagram
// cables): HELLO at open, HELLO_ACK to a HELLO, then segment datagrams to a peer that said either,
// as long as the path's MTU lets a large segment through whole (IP_MTU); frames above that limit
// are segmented in software by the engine (maxSegment). Every datagram is received behind an
// 18-byte scratch prefix, so a segment datagram's frame lands in its slot without a copy.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../cable.h"
#include "kind.h"

namespace vde {
namespace {

/** The smallest segment limit for which a UDP cable offers segments (a path with a jumbo MTU at least). */
constexpr uint32_t UDP_MIN_SEGMENT_BYTES = 16 * 1024;
constexpr uint32_t IPV4_UDP_HEADERS_BYTES = 20 + 8;
constexpr uint32_t IPV6_UDP_HEADERS_BYTES = 40 + 8;

// The largest frame a segment datagram on connected UDP socket fd may carry whole (path MTU), or 0.
uint32_t udpSegmentLimit(int fd) {
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  if (getsockname(fd, reinterpret_cast<struct sockaddr *>(&ss), &l) < 0) return 0;
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_DGRAM) return 0;
  int mtu = 0;
  socklen_t ml = sizeof mtu;
  uint32_t hdrs;
  if (ss.ss_family == AF_INET) {
    if (getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &ml) < 0) return 0;
    hdrs = IPV4_UDP_HEADERS_BYTES;
  } else if (ss.ss_family == AF_INET6) {
    if (getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &ml) < 0) return 0;
    hdrs = IPV6_UDP_HEADERS_BYTES;
  } else {
    return 0;
  }
  // one datagram: 65535 bytes of IP at most, and no more than the path takes unfragmented
  uint32_t ip = uint32_t(mtu) < 65535u ? uint32_t(mtu) : 65535u;
  if (ip <= hdrs + CABLE_DGRAM_PREFIX_BYTES) return 0;
  uint32_t seg = ip - hdrs - uint32_t(CABLE_DGRAM_PREFIX_BYTES);
  return seg < SLOT_BYTES - 1 ? seg : SLOT_BYTES - 1;
}

class DgramEndpoint : public Endpoint {
 public:
  DgramEndpoint(int fd, int txFd, bool adoptPeer, bool offload) : fd_(fd), txFd_(txFd < 0 ? fd : txFd) {
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    bool isUnix = getsockname(fd_, reinterpret_cast<struct sockaddr *>(&ss), &l) == 0 && ss.ss_family == AF_UNIX;
    vnet_ = offload && isUnix;
    if (offload && !isUnix && !adoptPeer) {
      maxSeg_ = udpSegmentLimit(fd_);
      neg_ = maxSeg_ >= UDP_MIN_SEGMENT_BYTES;
    }
    adopt_ = adoptPeer && !vnet_ && !neg_;
    peerConnected_ = !adopt_;
    if (neg_) sendMsg(CABLE_HELLO);
  }
  ~DgramEndpoint() override {
    if (!closeFds) return;
    close(fd_);
    if (txFd_ != fd_) close(txFd_);
  }
  const char *kindName() const override { return "dgram"; }
  int rxFd() const override { return fd_; }
  int txFd() const override { return txFd_; }
  // A pending socket error without a hang-up is reported, not fatal (the peer may come back).
  HupAction onHangup(bool hup) const override { return hup ? HupAction::Close : HupAction::Report; }
  bool takesVnet() const override { return vnet_ || peerSegs_; }
  // A UDP cable end says HELLO when it opens, often before its peer is up: the ICMP error that
  // comes back is a lost datagram, as for any UDP tunnel, not news to report.
  bool ignoresError(int err) const override { return neg_ && err == ECONNREFUSED; }
  uint32_t maxSegment() const override { return vnet_ ? SLOT_BYTES : maxSeg_; }

  RxResult receive(int fd, Batch &b, DropCounts &d, EpStatus &st) override {
    if (adopt_) return receiveAdopting(fd, b, d, st);
    if (vnet_) return receiveVnet(fd, b, d, st);
    if (neg_) return receiveNegotiating(fd, b, d, st);
    int room = RX_BATCH_FRAMES - b.count;
    for (int i = b.count; i < RX_BATCH_FRAMES; i++) {
      b.iovs[i].iov_len = maxFrame;
      b.msgs[i].msg_hdr.msg_flags = 0;
    }
    int n;
    do n = recvmmsg(fd, b.msgs + b.count, unsigned(room), MSG_DONTWAIT, nullptr);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN) st.fail(errno, "receive error");
      return RxResult::Ok;
    }
    int base = b.count;
    for (int i = base; i < base + n; i++) {
      uint32_t len = b.msgs[i].msg_len;
      if (len == 0) continue;  // VDE "hang-up" datagram: ignored by switches
      if (b.msgs[i].msg_hdr.msg_flags & MSG_TRUNC) { d.drops[DROP_OVERSIZE]++; continue; }
      if (len < MIN_FRAME_BYTES) { d.drops[DROP_RUNT]++; continue; }
      if (b.count != i) memcpy(b.frame(b.count), b.frame(i), len);
      b.commit(len);
    }
    return RxResult::Ok;
  }

  int wire(const OutFrame &f, uint8_t *pre, struct iovec *iov, uint32_t *wireBytes) const override {
    if (!vnet_ && !peerSegs_) return Endpoint::wire(f, pre, iov, wireBytes);
    size_t p = 0;
    if (peerSegs_ && !vnet_) {
      memcpy(pre, CABLE_DGRAM_MAGIC, sizeof CABLE_DGRAM_MAGIC);
      p = sizeof CABLE_DGRAM_MAGIC;
    }
    if (f.vnet) vnetEncode(*f.vnet, f.delta(), pre + p);
    else memset(pre + p, 0, VNET_HDR_BYTES);
    p += VNET_HDR_BYTES;
    iov[0] = {pre, p};
    *wireBytes = uint32_t(p) + f.wireLen();
    return 1 + f.parts(iov + 1);
  }

  int send(SendCtx &c, const OutFrame *f, int n) override {
    struct mmsghdr msgs[RX_BATCH_FRAMES];
    struct iovec iovs[RX_BATCH_FRAMES][PREFIX_WIRE_IOV];  // this kind's wire(): a prefix and 3 parts at most
    uint8_t pres[RX_BATCH_FRAMES][CABLE_DGRAM_PREFIX_BYTES];
    const bool prefixed = vnet_ || peerSegs_;
    int m = n < RX_BATCH_FRAMES ? n : RX_BATCH_FRAMES;
    for (int i = 0; i < m; i++) {
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = iovs[i];
      if (prefixed) {
        uint32_t wb;
        msgs[i].msg_hdr.msg_iovlen = size_t(wire(f[i], pres[i], iovs[i], &wb));
      } else {
        msgs[i].msg_hdr.msg_iovlen = size_t(f[i].parts(iovs[i]));
      }
    }
    int sent = 0;
    while (sent < m) {
      int r = sendmmsg(txFd_, msgs + sent, unsigned(m - sent), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r > 0) {
        for (int k = sent; k < sent + r; k++) c.pc.out(f[k].wireLen());
        sent += r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) return sent;
      // a hard error: count the frame, report once, go on with the rest; a socket still waiting
      // for the peer it adopts (ptp://'s first end before the second is known) has nowhere to
      // send yet, which is no error to report
      if (!(adopt_ && (errno == ENOTCONN || errno == EDESTADDRREQ))) c.st.fail(errno, "send error");
      c.pc.drop(DROP_TX_ERROR);
      sent++;
    }
    return m;
  }

  bool drain(SendCtx &c) override {
    while (!txq.empty()) {
      struct mmsghdr msgs[RX_BATCH_FRAMES];
      struct iovec iovs[RX_BATCH_FRAMES][PktQueue::MAX_ITEM_IOV];
      uint32_t lens[RX_BATCH_FRAMES];
      int m = 0;
      txq.peek(c.pool, RX_BATCH_FRAMES, [&](uint32_t item, uint32_t, const ItemMeta &meta) {
        memset(&msgs[m].msg_hdr, 0, sizeof msgs[m].msg_hdr);
        msgs[m].msg_hdr.msg_iov = iovs[m];
        msgs[m].msg_hdr.msg_iovlen = size_t(PktQueue::itemIov(c.pool, item, 0, iovs[m]));
        lens[m] = meta.frameLen;
        m++;
      });
      int r = sendmmsg(txFd_, msgs, unsigned(m), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r < 0) {
        if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) break;
        if (!(adopt_ && (errno == ENOTCONN || errno == EDESTADDRREQ))) c.st.fail(errno, "send error");
        c.pc.drop(DROP_TX_ERROR);
        txq.pop(c.pool);  // drop the frame that failed and go on
        continue;
      }
      for (int k = 0; k < r; k++) {
        c.pc.out(lens[k]);
        txq.pop(c.pool);
      }
      if (r < m) break;  // the socket is full again
    }
    return true;
  }

 private:
  // recvmmsg with the header of datagram i in b.vhdr[i] and its frame in slot i.
  RxResult receiveVnet(int fd, Batch &b, DropCounts &d, EpStatus &st) {
    int base = b.count;
    for (int i = base; i < RX_BATCH_FRAMES; i++) {
      b.viovs[i][0].iov_len = VNET_HDR_BYTES;
      b.viovs[i][1].iov_len = SLOT_BYTES;
      b.vmsgs[i].msg_hdr.msg_flags = 0;
    }
    int n;
    do n = recvmmsg(fd, b.vmsgs + base, unsigned(RX_BATCH_FRAMES - base), MSG_DONTWAIT, nullptr);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN) st.fail(errno, "receive error");
      return RxResult::Ok;
    }
    for (int i = base; i < base + n; i++) {
      uint32_t len = b.vmsgs[i].msg_len;
      if (len == 0) continue;  // VDE "hang-up" datagram: ignored by switches
      if (b.vmsgs[i].msg_hdr.msg_flags & MSG_TRUNC) { d.drops[DROP_OVERSIZE]++; continue; }
      if (len < VNET_HDR_BYTES + MIN_FRAME_BYTES) { d.drops[DROP_RUNT]++; continue; }
      uint32_t flen = len - uint32_t(VNET_HDR_BYTES);
      if (b.count != i) memcpy(b.next(), b.frame(i), flen);  // an earlier datagram was dropped
      commitVnetFrame(b, d, b.vhdr[i], flen, maxFrame);
    }
    return RxResult::Ok;
  }

  // Sends a 12-byte cable message datagram (HELLO, HELLO_ACK); errors are ignored (the peer may not be up yet).
  void sendMsg(uint8_t type) {
    uint8_t m[CABLE_MSG_WIRE_BYTES];
    cableEncodeMsg(type, m);
    ssize_t r = ::send(txFd_, m + CABLE_MSG_WIRE_BYTES - CABLE_MSG_BYTES, CABLE_MSG_BYTES, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)r;
  }

  // udp:// negotiating: every datagram behind an 18-byte scratch prefix; segment datagrams keep
  // their frame in the slot, plain frames are put back together, messages are answered.
  RxResult receiveNegotiating(int fd, Batch &b, DropCounts &d, EpStatus &st) {
    const size_t pre = CABLE_DGRAM_PREFIX_BYTES;
    int base = b.count;
    for (int i = base; i < RX_BATCH_FRAMES; i++) {
      b.viovs[i][0].iov_len = pre;
      b.viovs[i][1].iov_len = SLOT_BYTES;
      b.vmsgs[i].msg_hdr.msg_flags = 0;
    }
    int n;
    do n = recvmmsg(fd, b.vmsgs + base, unsigned(RX_BATCH_FRAMES - base), MSG_DONTWAIT, nullptr);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN && errno != ECONNREFUSED) st.fail(errno, "receive error");
      return RxResult::Ok;
    }
    for (int i = base; i < base + n; i++) {
      uint32_t len = b.vmsgs[i].msg_len;
      const uint8_t *p = b.vhdr[i];
      if (len == 0) continue;
      if (b.vmsgs[i].msg_hdr.msg_flags & MSG_TRUNC) { d.drops[DROP_OVERSIZE]++; continue; }
      if (len == CABLE_MSG_BYTES) {
        uint8_t type = CableDecoder::message(p, len, CABLE_ZEROS);
        if (type == CABLE_HELLO || type == CABLE_HELLO_ACK) {
          peerSegs_ = true;
          if (type == CABLE_HELLO) sendMsg(CABLE_HELLO_ACK);
          continue;
        }
      }
      if (len >= pre && memcmp(p, CABLE_DGRAM_MAGIC, sizeof CABLE_DGRAM_MAGIC) == 0) {
        uint32_t flen = len - uint32_t(pre);
        if (b.count != i) memcpy(b.next(), b.frame(i), flen);
        commitVnetFrame(b, d, p + sizeof CABLE_DGRAM_MAGIC, flen, maxFrame);
        continue;
      }
      // a plain frame: its first bytes are in the scratch prefix
      if (len < MIN_FRAME_BYTES) { d.drops[DROP_RUNT]++; continue; }
      if (len > maxFrame) { d.drops[DROP_OVERSIZE]++; continue; }
      uint8_t *s = b.frame(i);
      if (len > pre) memmove(s + pre, s, len - pre);
      memcpy(s, p, len < pre ? len : pre);
      if (b.count != i) memcpy(b.next(), s, len);
      b.commit(len);
    }
    return RxResult::Ok;
  }

  RxResult receiveAdopting(int fd, Batch &b, DropCounts &d, EpStatus &st) {
    while (!b.full()) {
      struct sockaddr_storage from;
      socklen_t fromLen = sizeof from;
      ssize_t r = recvfrom(fd, b.next(), maxFrame + 1, MSG_DONTWAIT, reinterpret_cast<struct sockaddr *>(&from), &fromLen);
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) st.fail(errno, "receive error");
        break;
      }
      if (r == 0) {
        struct sockaddr unspec = {};
        unspec.sa_family = AF_UNSPEC;
        connect(fd, &unspec, sizeof unspec);
        peerConnected_ = false;
        continue;
      }
      if (!peerConnected_ && fromLen > sizeof(sa_family_t)) {
        if (connect(fd, reinterpret_cast<struct sockaddr *>(&from), fromLen) == 0) {
          peerConnected_ = true;
          failed = false;
        }
      }
      if (uint32_t(r) > maxFrame) { d.drops[DROP_OVERSIZE]++; continue; }
      if (r < ssize_t(MIN_FRAME_BYTES)) { d.drops[DROP_RUNT]++; continue; }
      b.commit(uint32_t(r));
    }
    return RxResult::Ok;
  }

  int fd_, txFd_;
  bool adopt_ = false, peerConnected_ = true;
  bool vnet_ = false;       // a VDE data socket with the header agreed at the handshake
  bool neg_ = false;        // a UDP cable end offering segments in-band
  bool peerSegs_ = false;   // the UDP peer decodes segment datagrams
  uint32_t maxSeg_ = 0;     // largest frame a segment datagram carries whole
};

}  // namespace

std::unique_ptr<Endpoint> makeDgramEndpoint(int fd, int txFd, bool adoptPeer, bool offload) {
  return std::make_unique<DgramEndpoint>(fd, txFd, adoptPeer, offload);
}

}  // namespace vde
