// The byte-stream kind: frames behind a 2-byte (VDE: vde_plug stdio, dpipe cables) or 4-byte
// (QEMU -netdev stream/socket) big-endian length. Input is reassembled by StreamDecoder; output
// is one writev of header+frame pairs, and a partly written frame's remainder is queued
// byte-exactly before anything else, so the stream never desynchronises. This is the only
// place stream framing is written.
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../stream_decoder.h"
#include "kind.h"

namespace vde {
namespace {

constexpr int MAX_STREAM_IOV = 1024;

class StreamEndpoint : public Endpoint {
 public:
  StreamEndpoint(int fd, int txFd, uint8_t hdrBytes, uint32_t maxFrameBytes)
      : fd_(fd), txFd_(txFd < 0 ? fd : txFd), hdr_(hdrBytes == 2 ? 2 : 4), dec_(hdr_, maxFrameBytes) {}
  ~StreamEndpoint() override {
    if (!closeFds) return;
    close(fd_);
    if (txFd_ != fd_) close(txFd_);
  }
  const char *kindName() const override { return hdr_ == 2 ? "stream2" : "stream4"; }
  int rxFd() const override { return fd_; }
  int txFd() const override { return txFd_; }
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
    putLen(pre, l);
    iov[0] = {pre, hdr_};
    int c = 1 + f.parts(iov + 1);
    *wireBytes = hdr_ + l;
    return c;
  }

  int send(SendCtx &c, const OutFrame *f, int n) override {
    struct iovec iov[MAX_STREAM_IOV];
    uint8_t hdrs[RX_BATCH_FRAMES][4];
    int i = 0;
    while (i < n) {
      int k = 0, first = i;
      size_t total = 0;
      for (; i < n && i - first < RX_BATCH_FRAMES && k + MAX_WIRE_IOV <= MAX_STREAM_IOV; i++) {
        uint32_t w;
        k += wire(f[i], hdrs[i - first], iov + k, &w);
        total += w;
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
        size_t w = hdr_ + f[j].wireLen();
        if (done >= w) {
          done -= w;
          c.pc.out(f[j].wireLen());
          continue;
        }
        if (done == 0) return j;
        uint8_t pre[4];
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
  // Moves complete frames from the decoder into the batch; false when the stream is broken.
  bool takeFrames(Batch &b, DropCounts &d, EpStatus &st) {
    while (!b.full()) {
      const uint8_t *f;
      uint32_t len;
      StreamDecoder::Next r = dec_.next(&f, &len, MIN_FRAME_BYTES);
      if (r == StreamDecoder::Next::NeedMore) return true;
      if (r == StreamDecoder::Next::Runt) {
        d.drops[DROP_RUNT]++;
        continue;
      }
      if (r == StreamDecoder::Next::TooLong) {
        d.drops[DROP_FRAMING]++;
        st.closeWith(EMSGSIZE, "frame length above the limit");
        return false;
      }
      memcpy(b.next(), f, len);
      b.commit(len);
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
  StreamDecoder dec_;
};

}  // namespace

std::unique_ptr<Endpoint> makeStreamEndpoint(int fd, int txFd, uint8_t hdrBytes, uint32_t maxFrame) {
  return std::make_unique<StreamEndpoint>(fd, txFd, hdrBytes, maxFrame);
}

}  // namespace vde
