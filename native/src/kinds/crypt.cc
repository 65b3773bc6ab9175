// The crypt:// endpoint (see crypt.h): the protocol state of crypt_proto.h on a datagram socket
// or a byte stream, with a timerfd (an extra fd) for HELLO retries and rekeying.
//
// Receiving: datagrams are read with recvmmsg, the 16-byte record header into a side buffer and
// the rest straight into the batch slot, where the frame is decrypted in place; stream records
// are reassembled by StreamDecoder and decrypted into the slot. Records that fail (malformed,
// unknown key, no session, replayed, failed authentication) are dropped and counted as "auth"
// on the port and one by one in the control's counters; nothing unauthenticated is delivered.
//
// Sending: frames are sealed into a scratch area (allocated once, at the first send) and written
// with sendmmsg or one writev. Frames the kernel does not take go to the engine's queue in their
// final wire form: wire() seals them when they are queued, so the queue only ever holds records
// and drain() only writes bytes; a stream record cut by a short write is queued byte-exactly, as
// the stream kind does. Counters are taken in sending order, so they only grow. HELLOs go out
// between records (never inside one on a stream); one waits in a small buffer of its own when the
// socket is full. Frames that arrive before the peer has answered our HELLO cannot be sealed:
// they are dropped and counted as "txError".
//
// Large segments: on a stream, and on a UDP socket whose path MTU takes a 16 KiB record whole,
// the endpoint takes GSO and partial-checksum frames as they are (takesVnet) and seals each as
// one SEG record (its virtio-net header inside the ciphertext), so TCP through the cable costs
// one record per 64 KiB segment, as the plain cables between vde-ts ends do. SEG records are
// always accepted; what they carry is checked like any virtio-net frame (commitVnetFrame).
#include "crypt.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "../stream_decoder.h"

namespace vde {
namespace {

constexpr uint64_t TIMER_TICK_NS = 250'000'000;  // HELLO retries and rekeying are checked this often
/** Largest frame a SEG record carries: its plaintext and tag fill at most a batch slot. */
constexpr uint32_t SEG_MAX_FRAME_BYTES = SLOT_BYTES - uint32_t(CR_SEG_VNET_BYTES + CR_TAG_BYTES);
/** A UDP path that takes less than this in one datagram gets no SEG records (frames are segmented in software). */
constexpr uint32_t SEG_MIN_UDP_FRAME_BYTES = 16 * 1024;
constexpr uint32_t IPV4_UDP_HEADER_BYTES = 20 + 8;
constexpr uint32_t IPV6_UDP_HEADER_BYTES = 40 + 8;
/** Longest record on a stream: a whole slot of plaintext and the overhead. */
constexpr uint32_t STREAM_MAX_RECORD_BYTES = SLOT_BYTES + uint32_t(CR_OVERHEAD_BYTES);

// Largest frame the transport carries in one SEG record: a stream any, a connected UDP socket
// what its path MTU takes whole, anything else none (0).
uint32_t segmentLimit(const CryptTransport &t) {
  if (!t.offload) return 0;
  if (t.stream) return SEG_MAX_FRAME_BYTES;
  if (t.adoptPeer) return 0;
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  if (getsockname(t.fd, reinterpret_cast<struct sockaddr *>(&ss), &l) < 0) return 0;
  int mtu = 0;
  socklen_t ml = sizeof mtu;
  uint32_t hdrs;
  if (ss.ss_family == AF_INET) {
    if (getsockopt(t.fd, IPPROTO_IP, IP_MTU, &mtu, &ml) < 0) return 0;
    hdrs = IPV4_UDP_HEADER_BYTES;
  } else if (ss.ss_family == AF_INET6) {
    if (getsockopt(t.fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &ml) < 0) return 0;
    hdrs = IPV6_UDP_HEADER_BYTES;
  } else {
    return 0;
  }
  uint32_t ip = uint32_t(mtu) < 65535u ? uint32_t(mtu) : 65535u;
  uint32_t room = hdrs + uint32_t(CR_OVERHEAD_BYTES + CR_SEG_VNET_BYTES);
  if (ip <= room + SEG_MIN_UDP_FRAME_BYTES) return 0;
  uint32_t seg = ip - room;
  return seg < SEG_MAX_FRAME_BYTES ? seg : SEG_MAX_FRAME_BYTES;
}

uint64_t monoNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

union PeerAddr {
  struct sockaddr sa;
  struct sockaddr_storage ss;
};

class CryptEndpoint : public Endpoint {
 public:
  CryptEndpoint(const CryptTransport &t, uint8_t suite, std::shared_ptr<CryptControl> ctl)
      : t_(t), txFd_(t.txFd < 0 ? t.fd : t.txFd), state_(suite, t.rekeyNs), ctl_(std::move(ctl)), segLimit_(segmentLimit(t)) {
    timerFd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timerFd_ >= 0) {
      struct itimerspec its = {};
      its.it_value.tv_nsec = 1;  // at once: the first HELLO
      its.it_interval.tv_nsec = long(TIMER_TICK_NS);
      timerfd_settime(timerFd_, 0, &its, nullptr);
    }
    closeFds = t.closeFds;
    memset(&peer_, 0, sizeof peer_);
    memset(msgs_, 0, sizeof msgs_);
  }
  ~CryptEndpoint() override {
    if (timerFd_ >= 0) close(timerFd_);
    if (!closeFds) return;
    close(t_.fd);
    if (txFd_ != t_.fd) close(txFd_);
  }
  /** True when the timer could be created (the factory checks it). */
  bool ok() const { return timerFd_ >= 0; }

  const char *kindName() const override { return "crypt"; }
  int rxFd() const override { return t_.fd; }
  int txFd() const override { return txFd_; }
  int extraFdCount() const override { return 1; }
  bool takesVnet() const override { return segLimit_ > 0; }
  uint32_t maxSegment() const override { return segLimit_; }
  int extraFd(int i) const override { return i == 0 ? timerFd_ : -1; }
  HupAction onHangup(bool hup) const override {
    if (t_.stream) return HupAction::Drain;
    return hup ? HupAction::Close : HupAction::Report;
  }
  // The first HELLO often leaves before the peer is up: the ICMP error that comes back is a lost
  // datagram (the HELLO is repeated), as for udp:// cables, not news to report.
  bool ignoresError(int err) const override { return !t_.stream && err == ECONNREFUSED; }

  RxResult receive(int readyFd, Batch &b, DropCounts &d, EpStatus &st) override {
    uint64_t now = monoNs();
    syncKeys(now);
    if (readyFd == timerFd_) {
      uint64_t expirations;
      while (read(timerFd_, &expirations, sizeof expirations) > 0) {
      }
      state_.tick(now);
      if (t_.stream && helloLen_ && txq.empty()) {  // a HELLO cut short while nothing else waits: go on with it
        ssize_t r = write(txFd_, helloBuf_ + helloOff_, helloLen_ - helloOff_);
        if (r > 0) helloOff_ += size_t(r);
        if (helloOff_ == helloLen_) helloLen_ = helloOff_ = 0;
      }
      sendHello(now);
      publish();
      return RxResult::Ok;
    }
    RxResult r = t_.stream ? receiveStream(b, d, st, now) : receiveDgram(b, d, st, now);
    sendHello(now);
    publish();
    return r;
  }

  int wire(const OutFrame &f, uint8_t *pre, struct iovec *iov, uint32_t *wireBytes) const override {
    (void)pre;
    // sealed when queued (see the file comment); a frame that cannot be sealed queues as nothing
    auto *self = const_cast<CryptEndpoint *>(this);
    if (!self->wireBuf_) self->wireBuf_.reset(new uint8_t[recordRoom()]);
    uint32_t n = self->sealOne(f, self->wireBuf_.get());
    iov[0] = {self->wireBuf_.get(), n};
    *wireBytes = n;
    return 1;
  }

  int send(SendCtx &c, const OutFrame *f, int n) override {
    uint64_t now = monoNs();
    if (t_.stream && !flushHelloStream(c)) return 0;  // a HELLO is half written: everything queues behind it
    if (!state_.established() || (!t_.stream && t_.adoptPeer && !havePeer_)) {
      c.pc.drop(DROP_TX_ERROR, uint64_t(n));
      txNoSession_ += uint64_t(n);
      return n;
    }
    if (!scratch_) scratch_.reset(new uint8_t[size_t(RX_BATCH_FRAMES) * recordRoom()]);
    int m = std::min(n, RX_BATCH_FRAMES);
    uint32_t lens[RX_BATCH_FRAMES];
    for (int i = 0; i < m; i++) lens[i] = sealOne(f[i], scratch_.get() + size_t(i) * recordRoom());
    (void)now;
    return t_.stream ? sendStream(c, f, m, lens) : sendDgram(c, f, m, lens);
  }

  bool drain(SendCtx &c) override {
    if (t_.stream) {
      while (!txq.empty()) {
        if (txq.headOffset() == 0 && !flushHelloStream(c)) return true;
        if (c.st.close) return false;
        struct iovec iov[PktQueue::MAX_ITEM_IOV];
        int k = txq.frontIov(c.pool, iov);
        size_t want = 0;
        for (int j = 0; j < k; j++) want += iov[j].iov_len;
        const ItemMeta &meta = txq.frontMeta(c.pool);
        if (want == 0) {  // a frame that could not be sealed
          if (meta.flags & ITEM_COUNT_OUT) c.pc.drop(DROP_TX_ERROR);
          txq.pop(c.pool);
          continue;
        }
        ssize_t r = writev(txFd_, iov, k);
        if (r < 0) {
          if (errno == EAGAIN || errno == EINTR) break;
          c.st.closeWith(errno, "write error");
          return false;
        }
        if (size_t(r) < want) {
          txq.advanceHead(size_t(r));
          break;
        }
        if (meta.flags & ITEM_COUNT_OUT) countOut(c, meta.frameLen);
        txq.pop(c.pool);
      }
      flushHelloStream(c);
      return true;
    }
    while (!txq.empty()) {
      // a frame that could not be sealed was queued as nothing: dropped, never sent as an empty datagram
      if (txq.frontLen(c.pool) == 0) {
        c.pc.drop(DROP_TX_ERROR);
        txq.pop(c.pool);
        continue;
      }
      struct mmsghdr msgs[RX_BATCH_FRAMES];
      struct iovec iovs[RX_BATCH_FRAMES][PktQueue::MAX_ITEM_IOV];
      uint32_t lens[RX_BATCH_FRAMES];
      int m = 0;
      bool stop = false;
      txq.peek(c.pool, RX_BATCH_FRAMES, [&](uint32_t item, uint32_t len, const ItemMeta &meta) {
        if (stop || len == 0) {  // sealed records only, up to the next unsealed one
          stop = true;
          return;
        }
        memset(&msgs[m].msg_hdr, 0, sizeof msgs[m].msg_hdr);
        msgs[m].msg_hdr.msg_iov = iovs[m];
        msgs[m].msg_hdr.msg_iovlen = size_t(PktQueue::itemIov(c.pool, item, 0, iovs[m]));
        if (t_.adoptPeer) {
          msgs[m].msg_hdr.msg_name = &peer_;
          msgs[m].msg_hdr.msg_namelen = peerLen_;
        }
        lens[m] = meta.frameLen;
        m++;
      });
      int r = sendmmsg(txFd_, msgs, unsigned(m), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r < 0) {
        if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) break;
        c.st.fail(errno, "send error");
        c.pc.drop(DROP_TX_ERROR);
        txq.pop(c.pool);
        continue;
      }
      for (int k = 0; k < r; k++) {
        countOut(c, lens[k]);
        txq.pop(c.pool);
      }
      if (r < m) break;
    }
    return true;
  }

 private:
  // Room for one record of the largest frame (or segment), with the stream's length prefix. With
  // segments any frame may carry a virtio-net header (a partial checksum on a frame of maxFrame).
  size_t recordRoom() const {
    size_t frame = segLimit_ ? std::max<size_t>(maxFrame, segLimit_) + CR_SEG_VNET_BYTES : maxFrame;
    return frame + CR_OVERHEAD_BYTES + CR_STREAM_PREFIX_BYTES;
  }

  // Seals frame f into out (with the length prefix on a stream); returns the wire length, 0 when it cannot be sealed.
  // A frame with a virtio-net header (only handed over when takesVnet) becomes a SEG record.
  uint32_t sealOne(const OutFrame &f, uint8_t *out) {
    struct iovec parts[4];
    uint8_t vh[CR_SEG_VNET_BYTES];
    const bool seg = f.vnet != nullptr;
    int k;
    size_t len = f.wireLen();
    if (seg) {
      vnetEncode(*f.vnet, f.delta(), vh);
      parts[0] = {vh, CR_SEG_VNET_BYTES};
      k = 1 + f.parts(parts + 1);
      len += CR_SEG_VNET_BYTES;
    } else {
      k = f.parts(parts);
    }
    size_t pre = t_.stream ? CR_STREAM_PREFIX_BYTES : 0;
    if (!state_.seal(parts, k, len, out + pre, monoNs(), seg)) {
      txNoSession_++;
      return 0;
    }
    uint32_t rec = uint32_t(len + CR_OVERHEAD_BYTES);
    if (pre) crypt_detail::putBe32(out, rec);
    return uint32_t(pre) + rec;
  }

  void countOut(SendCtx &c, uint32_t frameLen) {
    c.pc.out(frameLen);
    txFrames_++;
  }

  int sendDgram(SendCtx &c, const OutFrame *f, int m, const uint32_t *lens) {
    struct mmsghdr msgs[RX_BATCH_FRAMES];
    struct iovec iovs[RX_BATCH_FRAMES];
    for (int i = 0; i < m; i++) {
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      iovs[i] = {scratch_.get() + size_t(i) * recordRoom(), lens[i]};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      if (t_.adoptPeer) {
        msgs[i].msg_hdr.msg_name = &peer_;
        msgs[i].msg_hdr.msg_namelen = peerLen_;
      }
    }
    int sent = 0;
    while (sent < m) {
      if (lens[sent] == 0) {  // could not be sealed
        c.pc.drop(DROP_TX_ERROR);
        sent++;
        continue;
      }
      int r = sendmmsg(txFd_, msgs + sent, unsigned(m - sent), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r > 0) {
        for (int k = sent; k < sent + r; k++) {
          if (lens[k]) countOut(c, f[k].wireLen());
          else c.pc.drop(DROP_TX_ERROR);
        }
        sent += r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) return sent;  // the rest is sealed again when queued
      c.st.fail(errno, "send error");
      c.pc.drop(DROP_TX_ERROR);
      sent++;
    }
    return m;
  }

  int sendStream(SendCtx &c, const OutFrame *f, int m, const uint32_t *lens) {
    struct iovec iov[RX_BATCH_FRAMES];
    int k = 0;
    for (int i = 0; i < m; i++) {
      if (!lens[i]) continue;
      iov[k++] = {scratch_.get() + size_t(i) * recordRoom(), lens[i]};
    }
    if (k == 0) {
      for (int i = 0; i < m; i++) c.pc.drop(DROP_TX_ERROR);
      return m;
    }
    ssize_t r = writev(txFd_, iov, k);
    if (r < 0) {
      if (errno != EAGAIN && errno != EINTR) {
        c.st.closeWith(errno, "write error");
        return m;
      }
      r = 0;
    }
    size_t done = size_t(r);
    for (int i = 0; i < m; i++) {
      if (!lens[i]) {
        c.pc.drop(DROP_TX_ERROR);
        continue;
      }
      if (done >= lens[i]) {
        done -= lens[i];
        countOut(c, f[i].wireLen());
        continue;
      }
      // The socket is full: the records not written go to the queue as they were sealed (a
      // record cut in the middle byte-exactly, its rest first), so nothing is sealed twice; 64
      // KiB segments fill a socket buffer in a few records.
      ItemMeta meta;
      meta.frameLen = f[i].wireLen();
      meta.flags = ITEM_COUNT_OUT;
      struct iovec one = {scratch_.get() + size_t(i) * recordRoom(), lens[i]};
      if (!txq.push(c.pool, &one, 1, lens[i], meta)) {
        if (done == 0) return i;  // no room: the engine queues or drops it (sealed anew, with a later counter)
        c.st.closeWith(ENOBUFS, "write error (no room to queue a partial record)");
        return m;
      }
      txq.advanceHead(done);  // only the first one can be cut, and it is the head: send() runs with an empty queue
      done = 0;
    }
    return m;
  }

  // Writes a waiting HELLO on a stream when no record is half written; false while one of its own is unfinished.
  bool flushHelloStream(SendCtx &c) {
    if (!helloLen_) return true;
    if (!txq.empty() && txq.headOffset() != 0) return true;  // inside a record: later
    ssize_t r = write(txFd_, helloBuf_ + helloOff_, helloLen_ - helloOff_);
    if (r < 0) {
      if (errno != EAGAIN && errno != EINTR) c.st.closeWith(errno, "write error");
      return helloOff_ == 0;
    }
    helloOff_ += size_t(r);
    if (helloOff_ < helloLen_) return false;
    helloLen_ = helloOff_ = 0;
    return true;
  }

  // Sends a HELLO when the protocol wants one: datagrams at once (lost if the socket is full:
  // retried); on a stream only at a record boundary, else it waits in helloBuf_.
  void sendHello(uint64_t now) {
    if (helloLen_) return;  // the previous one is still on its way
    uint8_t h[CR_STREAM_PREFIX_BYTES + CR_HELLO_BYTES];
    size_t pre = t_.stream ? CR_STREAM_PREFIX_BYTES : 0;
    if (!t_.stream && t_.adoptPeer && !havePeer_) return;  // nowhere to send yet: the peer speaks first
    if (!state_.takeHello(h + pre, now)) return;
    if (!t_.stream) {
      ssize_t r;
      if (t_.adoptPeer) r = ::sendto(txFd_, h, CR_HELLO_BYTES, MSG_DONTWAIT | MSG_NOSIGNAL, &peer_.sa, peerLen_);
      else r = ::send(txFd_, h, CR_HELLO_BYTES, MSG_DONTWAIT | MSG_NOSIGNAL);
      (void)r;  // a lost HELLO is repeated
      return;
    }
    crypt_detail::putBe32(h, uint32_t(CR_HELLO_BYTES));
    memcpy(helloBuf_, h, sizeof h);
    helloLen_ = sizeof h;
    helloOff_ = 0;
    if (txq.empty()) {  // nothing half written: try now
      ssize_t r = write(txFd_, helloBuf_, helloLen_);
      if (r > 0) helloOff_ = size_t(r);
      if (helloOff_ == helloLen_) helloLen_ = helloOff_ = 0;
    }
  }

  RxResult receiveDgram(Batch &b, DropCounts &d, EpStatus &st, uint64_t now) {
    int room = RX_BATCH_FRAMES - b.count;
    if (room <= 0) return RxResult::More;
    size_t slotRoom = SLOT_BYTES;  // a SEG record fills a slot (the peer's path may take it)
    for (int i = 0; i < room; i++) {
      iovs_[i][0] = {hdrs_[i], CR_DATA_HEADER_BYTES};
      iovs_[i][1] = {b.frame(b.count + i), slotRoom};
      struct msghdr &h = msgs_[i].msg_hdr;
      h.msg_iov = iovs_[i];
      h.msg_iovlen = 2;
      h.msg_name = t_.adoptPeer ? &names_[i] : nullptr;
      h.msg_namelen = t_.adoptPeer ? sizeof names_[i] : 0;
      h.msg_control = nullptr;
      h.msg_controllen = 0;
      h.msg_flags = 0;
    }
    int n;
    do n = recvmmsg(t_.fd, msgs_, unsigned(room), MSG_DONTWAIT, nullptr);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN && errno != ECONNREFUSED) st.fail(errno, "receive error");  // see ignoresError
      return RxResult::Ok;
    }
    int base = b.count;
    for (int i = 0; i < n; i++) {
      uint32_t total = msgs_[i].msg_len;
      uint8_t *slot = b.frame(base + i);
      if (total == 0) continue;  // a VDE hang-up datagram: ignored
      if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) {
        d.drops[DROP_OVERSIZE]++;
        continue;
      }
      if (total < CR_DATA_HEADER_BYTES) {
        d.drops[DROP_AUTH]++;
        state_.counters.malformed++;
        continue;
      }
      uint32_t len = 0;
      CrResult r = state_.open(hdrs_[i], slot, total - CR_DATA_HEADER_BYTES, slot, &len, now);
      if (r == CrResult::Hello || r == CrResult::Ok) adopt(i);
      if (r == CrResult::Hello) continue;
      if (r != CrResult::Ok) {
        d.drops[DROP_AUTH]++;
        continue;
      }
      if (hdrs_[i][1] == CR_DATA_SEG) {
        if (commitSeg(b, d, slot, len)) rxFrames_++;
        continue;
      }
      if (len < MIN_FRAME_BYTES || len > maxFrame) {
        d.drops[len < MIN_FRAME_BYTES ? DROP_RUNT : DROP_OVERSIZE]++;
        continue;
      }
      if (b.count != base + i) memmove(b.next(), slot, len);
      b.commit(len);
      rxFrames_++;
    }
    return RxResult::Ok;
  }

  // Datagram i authenticated: with an unconnected socket its sender is where we send from now on.
  void adopt(int i) {
    if (!t_.adoptPeer) return;
    socklen_t l = msgs_[i].msg_hdr.msg_namelen;
    if (l == 0 || l > sizeof peer_) return;
    memcpy(&peer_, &names_[i], l);
    peerLen_ = l;
    havePeer_ = true;
  }

  // Keeps a SEG record's plaintext (len bytes at plain: virtio-net header, frame) as a frame at
  // b.next() (plain may be b.next() or a later slot); false when it was dropped (counted in d).
  bool commitSeg(Batch &b, DropCounts &d, const uint8_t *plain, uint32_t len) {
    uint8_t vh[CR_SEG_VNET_BYTES];
    memcpy(vh, plain, CR_SEG_VNET_BYTES);  // open() saw at least the header
    uint32_t frame = len - uint32_t(CR_SEG_VNET_BYTES);
    memmove(b.next(), plain + CR_SEG_VNET_BYTES, frame);
    return commitVnetFrame(b, d, vh, frame, maxFrame);
  }

  RxResult receiveStream(Batch &b, DropCounts &d, EpStatus &st, uint64_t now) {
    if (!dec_) dec_.reset(new StreamDecoder(4, STREAM_MAX_RECORD_BYTES));
    if (!takeRecords(b, d, st, now)) return RxResult::Closed;
    if (b.full()) return RxResult::More;
    size_t room;
    uint8_t *at = dec_->space(&room);
    ssize_t r = read(t_.fd, at, room);
    if (r == 0) {
      if (dec_->pending()) d.drops[DROP_FRAMING]++;
      st.closeWith(0, dec_->pending() ? "end of stream inside a record" : "end of stream");
      return RxResult::Closed;
    }
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return RxResult::Ok;
      st.closeWith(errno, "read error");
      return RxResult::Closed;
    }
    dec_->commit(size_t(r));
    if (!takeRecords(b, d, st, now)) return RxResult::Closed;
    return b.full() ? RxResult::More : RxResult::Ok;
  }

  // Opens the complete records the decoder holds into the batch; false when the stream is broken.
  bool takeRecords(Batch &b, DropCounts &d, EpStatus &st, uint64_t now) {
    while (!b.full()) {
      const uint8_t *rec;
      uint32_t len;
      StreamDecoder::Next r = dec_->next(&rec, &len, uint32_t(CR_DATA_HEADER_BYTES));
      if (r == StreamDecoder::Next::NeedMore) return true;
      if (r == StreamDecoder::Next::Runt) {
        d.drops[DROP_AUTH]++;
        state_.counters.malformed++;
        continue;
      }
      if (r == StreamDecoder::Next::TooLong) {
        d.drops[DROP_FRAMING]++;
        st.closeWith(EMSGSIZE, "record length above the limit");
        return false;
      }
      uint32_t out = 0;
      CrResult cr = state_.open(rec, rec + CR_DATA_HEADER_BYTES, len - CR_DATA_HEADER_BYTES, b.next(), &out, now);
      if (cr == CrResult::Hello) continue;
      if (cr != CrResult::Ok) {
        d.drops[DROP_AUTH]++;
        continue;
      }
      if (rec[1] == CR_DATA_SEG) {
        if (commitSeg(b, d, b.next(), out)) rxFrames_++;
        continue;
      }
      if (out < MIN_FRAME_BYTES || out > maxFrame) {
        d.drops[out < MIN_FRAME_BYTES ? DROP_RUNT : DROP_OVERSIZE]++;
        continue;
      }
      b.commit(out);
      rxFrames_++;
    }
    return true;
  }

  // Takes up keys JavaScript replaced.
  void syncKeys(uint64_t now) {
    uint64_t v = ctl_->version.load(std::memory_order_acquire);
    if (v == keysVersion_) return;
    std::vector<CryptKey> keys;
    uint8_t send;
    {
      std::lock_guard<std::mutex> g(ctl_->mu);
      keys = ctl_->keys;
      send = ctl_->sendKid;
      keysVersion_ = ctl_->version.load(std::memory_order_relaxed);
    }
    state_.setKeys(keys, send, now);
  }

  // Copies the counters where JavaScript reads them.
  void publish() {
    const CryptCounters &k = state_.counters;
    auto set = [](std::atomic<uint64_t> &a, uint64_t v) { a.store(v, std::memory_order_relaxed); };
    set(ctl_->rxFrames, rxFrames_);
    set(ctl_->txFrames, txFrames_);
    set(ctl_->malformed, k.malformed);
    set(ctl_->unknownKey, k.unknownKey);
    set(ctl_->badAuth, k.badAuth);
    set(ctl_->noSession, k.noSession);
    set(ctl_->replayed, k.replayed);
    set(ctl_->helloReceived, k.helloReceived);
    set(ctl_->helloSent, k.helloSent);
    set(ctl_->handshakes, k.handshakes);
    set(ctl_->rotations, k.rotations);
    set(ctl_->txNoSession, txNoSession_);
    ctl_->established.store(state_.established(), std::memory_order_relaxed);
  }

  CryptTransport t_;
  int txFd_;
  int timerFd_ = -1;
  CryptState state_;
  std::shared_ptr<CryptControl> ctl_;
  uint64_t keysVersion_ = 0;
  uint64_t rxFrames_ = 0, txFrames_ = 0, txNoSession_ = 0;
  std::unique_ptr<uint8_t[]> scratch_, wireBuf_;
  std::unique_ptr<StreamDecoder> dec_;
  uint8_t helloBuf_[CR_STREAM_PREFIX_BYTES + CR_HELLO_BYTES];
  size_t helloLen_ = 0, helloOff_ = 0;
  PeerAddr peer_;
  socklen_t peerLen_ = 0;
  bool havePeer_ = false;
  // receive batch: the 16-byte headers go to a side buffer, the rest straight into the slots
  struct mmsghdr msgs_[RX_BATCH_FRAMES];
  struct iovec iovs_[RX_BATCH_FRAMES][2];
  uint8_t hdrs_[RX_BATCH_FRAMES][CR_DATA_HEADER_BYTES];
  PeerAddr names_[RX_BATCH_FRAMES];
  uint32_t segLimit_;  // largest frame sent as one SEG record (0: frames only, GSO segmented by the engine)
};

}  // namespace

std::unique_ptr<Endpoint> makeCryptEndpoint(const CryptTransport &t, uint8_t suite, std::shared_ptr<CryptControl> ctl) {
  auto ep = std::make_unique<CryptEndpoint>(t, suite, std::move(ctl));
  if (!ep->ok()) {
    ep->closeFds = false;
    return nullptr;
  }
  return ep;
}

}  // namespace vde
