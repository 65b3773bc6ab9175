// The byte-stream kind: frames behind a 2-byte (VDE: vde_plug stdio, dpipe cables) or 4-byte
// (QEMU -netdev stream/socket) big-endian length. Input is reassembled by the cable decoder
// (cable.h over stream_decoder.h); output is one writev of header+frame pairs, and a partly
// written frame's remainder is queued byte-exactly before anything else, so the stream never
// desynchronises. This is the only place stream framing is written.
//
// A 2-byte stream opened with negotiation (a cable between two vde_plugs) offers the peer the
// segment format of cable.h at once (HELLO). When the peer's HELLO arrives, the next write
// sends GO and switches this direction to 64 KiB segments behind a virtio-net header; from then
// on the endpoint takes GSO frames as they are (takesVnet). Control bytes (HELLO, or a GO written
// while nothing was queued) wait in a small buffer that always leaves before the queue; a GO
// decided while frames are queued goes to the queue's tail, after them.
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../cable.h"
#include "kind.h"

namespace vde {
namespace {

constexpr int MAX_STREAM_IOV = 1024;

class StreamEndpoint : public Endpoint {
 public:
  StreamEndpoint(int fd, int txFd, uint8_t hdrBytes, uint32_t maxFrameBytes, bool negotiate)
      : fd_(fd), txFd_(txFd < 0 ? fd : txFd), hdr_(hdrBytes == 2 ? 2 : 4), negotiate_(negotiate && hdr_ == 2), dec_(hdr_, maxFrameBytes, negotiate_) {
    if (negotiate_) {
      ctlLen_ = cableEncodeMsg(CABLE_HELLO, ctl_);
      EpStatus ignored;
      flushCtl(ignored);  // best effort now; whatever is left goes before the first frame
    }
  }
  ~StreamEndpoint() override {
    if (!closeFds) return;
    close(fd_);
    if (txFd_ != fd_) close(txFd_);
  }
  const char *kindName() const override { return hdr_ == 2 ? "stream2" : "stream4"; }
  int rxFd() const override { return fd_; }
  int txFd() const override { return txFd_; }
  bool takesVnet() const override { return seg_; }
  // A hang-up: read what is left, then the end of stream (or a cut frame) closes the endpoint.
  HupAction onHangup(bool) const override { return HupAction::Drain; }

  RxResult receive(int fd, Batch &b, DropCounts &d, EpStatus &st) override {
    (void)fd;
    if (!takeFrames(b, d, st)) return RxResult::Closed;
    if (b.full()) return RxResult::More;
    size_t room;
    uint8_t *at = dec_.space(&room);
    ssize_t r = read(fd_, at, room);
    if (r == 0) {
      if (dec_.pending()) d.drops[DROP_FRAMING]++;
      st.closeWith(0, dec_.pending() ? "end of stream inside a frame" : "end of stream");
      return RxResult::Closed;
    }
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return RxResult::Ok;
      st.closeWith(errno, "read error");
      return RxResult::Closed;
    }
    dec_.commit(size_t(r));
    if (!takeFrames(b, d, st)) return RxResult::Closed;
    return b.full() ? RxResult::More : RxResult::Ok;
  }

  int wire(const OutFrame &f, uint8_t *pre, struct iovec *iov, uint32_t *wireBytes) const override {
    uint32_t l = f.wireLen();
    size_t p;
    if (seg_) {
      p = cableEncodeSegPrefix(f.vnet, f.delta(), l, pre);
    } else {
      putLen(pre, l);
      p = hdr_;
    }
    iov[0] = {pre, p};
    int c = 1 + f.parts(iov + 1);
    *wireBytes = uint32_t(p) + l;
    return c;
  }

  int send(SendCtx &c, const OutFrame *f, int n) override {
    // (the engine calls send only while nothing is queued: control bytes go first)
    if (!ctlReady(c)) return c.st.close ? n : 0;
    struct iovec iov[MAX_STREAM_IOV];
    uint8_t pres[RX_BATCH_FRAMES][16];
    uint32_t wires[RX_BATCH_FRAMES];
    int i = 0;
    while (i < n) {
      int k = 0, first = i;
      size_t total = 0;
      for (; i < n && i - first < RX_BATCH_FRAMES && k + MAX_WIRE_IOV <= MAX_STREAM_IOV; i++) {
        k += wire(f[i], pres[i - first], iov + k, &wires[i - first]);
        total += wires[i - first];
      }
      ssize_t r = writev(txFd_, iov, k);
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) return first;
        c.st.closeWith(errno, "write error");
        return n;
      }
      // count what went whole; queue the rest of a frame cut in the middle
      size_t done = size_t(r);
      for (int j = first; j < i; j++) {
        size_t w = wires[j - first];
        if (done >= w) {
          done -= w;
          c.pc.out(f[j].wireLen());
          continue;
        }
        if (done == 0) return j;
        uint8_t pre[16];
        struct iovec one[MAX_WIRE_IOV];
        uint32_t wb;
        int m = wire(f[j], pre, one, &wb);
        ItemMeta meta;
        meta.frameLen = f[j].wireLen();
        meta.flags = ITEM_COUNT_OUT;
        if (!txq.push(c.pool, one, m, wb, meta)) {
          // no room for the tail: the stream would lose sync; it cannot go on
          c.st.closeWith(ENOBUFS, "write error (no room to queue a partial frame)");
          return n;
        }
        txq.advanceHead(done);
        return j + 1;
      }
      if (size_t(r) < total) return i;  // (not reached: a short write stops inside the loop)
    }
    return n;
  }

  bool drain(SendCtx &c) override {
    if (!ctlReady(c)) return !c.st.close;
    while (!txq.empty()) {
      struct iovec iov[PktQueue::MAX_ITEM_IOV];
      int k = txq.frontIov(c.pool, iov);
      size_t want = 0;
      for (int j = 0; j < k; j++) want += iov[j].iov_len;
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
      const ItemMeta &m = txq.frontMeta(c.pool);
      if (m.flags & ITEM_COUNT_OUT) c.pc.out(m.frameLen);
      txq.pop(c.pool);
    }
    return true;
  }

 private:
  // Writes the control bytes and, once the peer said HELLO, switches to segments (GO): right
  // away when nothing is queued, else behind the queued frames. False while control bytes are
  // still waiting for room (or the stream failed: c.st says so).
  bool ctlReady(SendCtx &c) {
    if (ctlLen_ && !flushCtl(c.st)) return false;
    if (!peerHello_ || seg_) return true;
    if (txq.empty()) {
      ctlLen_ = cableEncodeMsg(CABLE_GO, ctl_);
      seg_ = true;
      return flushCtl(c.st);
    }
    uint8_t go[CABLE_MSG_WIRE_BYTES];
    struct iovec v = {go, cableEncodeMsg(CABLE_GO, go)};
    if (txq.push(c.pool, &v, 1, v.iov_len, ItemMeta())) seg_ = true;  // else: at a later call
    return true;
  }
  // Writes pending control bytes; true when none are left.
  bool flushCtl(EpStatus &st) {
    while (ctlOff_ < ctlLen_) {
      ssize_t r = write(txFd_, ctl_ + ctlOff_, ctlLen_ - ctlOff_);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) st.closeWith(errno, "write error");
        return false;
      }
      ctlOff_ += size_t(r);
    }
    ctlOff_ = ctlLen_ = 0;
    return true;
  }
  // Moves complete frames from the decoder into the batch; false when the stream is broken.
  bool takeFrames(Batch &b, DropCounts &d, EpStatus &st) {
    while (!b.full()) {
      const uint8_t *f = nullptr, *vh = nullptr;
      uint32_t len = 0;
      switch (dec_.next(&f, &len, &vh)) {
        case CableDecoder::Item::NeedMore:
          return true;
        case CableDecoder::Item::Runt:
          d.drops[DROP_RUNT]++;
          break;
        case CableDecoder::Item::Hello:
          peerHello_ = true;
          break;
        case CableDecoder::Item::Go:
          break;
        case CableDecoder::Item::TooLong:
          d.drops[DROP_FRAMING]++;
          st.closeWith(EMSGSIZE, "frame length above the limit");
          return false;
        case CableDecoder::Item::Frame:
          memcpy(b.next(), f, len);
          b.commit(len);
          break;
        case CableDecoder::Item::SegFrame:
          if (len > SLOT_BYTES) {
            d.drops[DROP_OVERSIZE]++;
            break;
          }
          memcpy(b.next(), f, len);
          commitVnetFrame(b, d, vh, len, maxFrame);
          break;
      }
    }
    return true;
  }
  void putLen(uint8_t *p, uint32_t l) const {
    if (hdr_ == 2) {
      p[0] = uint8_t(l >> 8);
      p[1] = uint8_t(l);
    } else {
      p[0] = uint8_t(l >> 24);
      p[1] = uint8_t(l >> 16);
      p[2] = uint8_t(l >> 8);
      p[3] = uint8_t(l);
    }
  }

  int fd_, txFd_;
  uint8_t hdr_;
  bool negotiate_;
  CableDecoder dec_;
  bool peerHello_ = false;  // the peer decodes segments: switch at the next write
  bool seg_ = false;        // this direction writes segments (GO sent or queued)
  uint8_t ctl_[CABLE_MSG_WIRE_BYTES];
  size_t ctlLen_ = 0, ctlOff_ = 0;
};

}  // namespace

std::unique_ptr<Endpoint> makeStreamEndpoint(int fd, int txFd, uint8_t hdrBytes, uint32_t maxFrame, bool negotiate) {
  return std::make_unique<StreamEndpoint>(fd, txFd, hdrBytes, maxFrame, negotiate);
}

}  // namespace vde
