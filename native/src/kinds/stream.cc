// The byte-stream kind: frames behind a 2-byte (VDE: vde_plug stdio, dpipe cables) or 4-byte
// (QEMU -netdev stream/socket) big-endian length. Input is reassembled by the cable decoder
// (cable.h over stream_decoder.h); output is one writev of header+frame pairs, and a partly
// written frame's remainder is queued byte-exactly before anything else, so the stream never
// desynchronises. This is the only place stream framing is written.
//
// A 2-byte stream opened with negotiation (a cable between two vde_plugs) offers the peer the
// segment format of cable.h at once (HELLO). When the peer's HELLO arrives, the next write
// sends GO and switches this direction to the segment format: 64 KiB frames with their
// virtio-net header, cut into records no relay chokes on; from then on the endpoint takes GSO
// frames as they are (takesVnet). Control bytes (HELLO, or a GO written while nothing was
// queued) wait in a small buffer that always leaves before the queue; a GO decided while frames
// are queued goes to the queue's tail, after them. A pipe is enlarged (F_SETPIPE_SZ, best effort)
// so that a 64 KiB frame fits in it whole.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../cable.h"
#include "kind.h"

namespace vde {
namespace {

constexpr int MAX_STREAM_IOV = 1024;
/** Pipe size asked for (F_SETPIPE_SZ) on a cable's pipes: room for a few 64 KiB frames. */
constexpr int CABLE_PIPE_BYTES = 1 << 20;

static_assert(CABLE_MAX_PRE_BYTES <= MAX_WIRE_PRE_BYTES && CABLE_MAX_IOV <= MAX_WIRE_IOV, "a cable frame's wire form must fit the kind interface's buffers");

// Puts a pipe's write end in packet mode (O_DIRECT): each write is read by one read; errors are ignored.
void packetMode(int fd) {
  struct stat st;
  int fl = fcntl(fd, F_GETFL);
  if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fl >= 0) fcntl(fd, F_SETFL, fl | O_DIRECT);
}

// Enlarges fd's pipe (when it is one) so that whole 64 KiB frames fit; errors are ignored.
void growPipe(int fd) {
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fcntl(fd, F_GETPIPE_SZ) < CABLE_PIPE_BYTES) fcntl(fd, F_SETPIPE_SZ, CABLE_PIPE_BYTES);
}

class StreamEndpoint : public Endpoint {
 public:
  StreamEndpoint(int fd, int txFd, uint8_t hdrBytes, uint32_t maxFrameBytes, bool negotiate, bool recordWrites)
      : fd_(fd),
        txFd_(txFd < 0 ? fd : txFd),
        hdr_(hdrBytes == 2 ? 2 : 4),
        negotiate_(negotiate && hdr_ == 2),
        recordWrites_(recordWrites),
        dec_(hdr_, maxFrameBytes, negotiate_) {
    if (recordWrites_) packetMode(txFd_);
    if (negotiate_) {
      growPipe(fd_);
      if (txFd_ != fd_) growPipe(txFd_);
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
  // GSO frames may come as they are once this direction writes segments, or will before the
  // next byte: the peer said HELLO and nothing is queued (send() then writes GO first).
  bool takesVnet() const override { return seg_ || (peerHello_ && txq.empty()); }
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
    if (seg_) return cableSegWire(f, pre, iov, wireBytes);
    uint32_t l = f.wireLen();
    putLen(pre, l);
    iov[0] = {pre, hdr_};
    int c = 1 + f.parts(iov + 1);
    *wireBytes = hdr_ + l;
    return c;
  }

  int send(SendCtx &c, const OutFrame *f, int n) override {
    // (the engine calls send only while nothing is queued: control bytes go first)
    if (!ctlReady(c)) return c.st.close ? n : 0;
    struct iovec iov[MAX_STREAM_IOV];
    uint8_t pres[RX_BATCH_FRAMES][MAX_WIRE_PRE_BYTES];
    uint32_t wires[RX_BATCH_FRAMES];
    int i = 0;
    while (i < n) {
      int k = 0, first = i;
      size_t total = 0;
      int most = recordWrites_ ? 1 : RX_BATCH_FRAMES;
      for (; i < n && i - first < most && k + MAX_WIRE_IOV <= MAX_STREAM_IOV; i++) {
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
        uint8_t pre[MAX_WIRE_PRE_BYTES];
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
      uint8_t vh[VNET_HDR_BYTES];
      uint32_t len = 0;
      switch (dec_.next(b.next(), SLOT_BYTES, &len, vh)) {
        case CableDecoder::Item::NeedMore:
          return true;
        case CableDecoder::Item::Runt:
          d.drops[DROP_RUNT]++;
          break;
        case CableDecoder::Item::Bad:
          d.drops[DROP_FRAMING]++;
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
          b.commit(len);
          break;
        case CableDecoder::Item::SegFrame:
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
  bool recordWrites_;  // one record per write (packet-mode pipe)
  CableDecoder dec_;
  bool peerHello_ = false;  // the peer decodes segments: switch at the next write
  bool seg_ = false;        // this direction writes segments (GO sent or queued)
  uint8_t ctl_[CABLE_MSG_WIRE_BYTES];
  size_t ctlLen_ = 0, ctlOff_ = 0;
};

}  // namespace

std::unique_ptr<Endpoint> makeStreamEndpoint(int fd, int txFd, uint8_t hdrBytes, uint32_t maxFrame, bool negotiate, bool recordWrites) {
  return std::make_unique<StreamEndpoint>(fd, txFd, hdrBytes, maxFrame, negotiate, recordWrites);
}

}  // namespace vde
