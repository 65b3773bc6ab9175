// The endpoint-kind interface: how one kind of file descriptor carries frames.
//
// An Endpoint is one attachment of a port: a VDE client's datagram socket, a byte stream with
// 2- or 4-byte length framing, a tap, a VXLAN socket, a slirp socketpair. Each kind implements
// receive-batch (fill the engine's slab), send-batch (hand frames to the kernel until it would
// block), drain (write what waits in the endpoint's queue) and owns its fds. The engine loop
// never asks which kind an endpoint is: it calls these methods and acts on their status. Frames
// that cannot be sent at once are queued by the engine in the endpoint's PktQueue (pool blocks,
// bounded per endpoint and switch-wide) in the kind's wire form, so drain() only writes bytes.
//
// Runs on the engine thread only, except construction (on the thread that creates the endpoint,
// before the engine sees it) and the destructor (engine thread, or whoever owns it if it never
// reached the engine).
#pragma once

#include <sys/uio.h>

#include <cerrno>
#include <cstdint>
#include <memory>

#include "../batch.h"
#include "../counters.h"
#include "../pool.h"

namespace vde {

/** Kinds the JavaScript side names (values match src/native EpKind). */
enum class EpKind : uint8_t { Dgram = 0, Stream2 = 1, Stream4 = 2, Tap = 3, Custom = 4 };

/** What went wrong on an endpoint during a call; the engine reports it and closes if told. */
struct EpStatus {
  int err = 0;
  const char *what = nullptr;  // non-null: something to report
  bool close = false;          // the endpoint cannot go on
  /** Records a failure that the engine reports once ("epError") while the endpoint stays. */
  void fail(int e, const char *w) {
    if (!what) {
      err = e;
      what = w;
    }
  }
  /** Records that the endpoint must be closed ("epClosed") for reason w. */
  void closeWith(int e, const char *w) {
    err = e;
    what = w;
    close = true;
  }
};

/** Outcome of a receive call. */
enum class RxResult : uint8_t { Ok, More, Closed };

/** What to do when epoll reports a hang-up or error without input. */
enum class HupAction : uint8_t { Close, Report, Drain };

/** What send/drain calls get from the engine. */
struct SendCtx {
  BlockPool &pool;
  PortCounters &pc;
  EpStatus &st;
};

/** The kind interface (see the file comment). */
class Endpoint {
 public:
  virtual ~Endpoint() = default;

  // --- identity and state, owned by the engine ---
  uint32_t id = 0;
  int port = -1;
  uint32_t maxFrame = MAX_VDE_FRAME_BYTES;
  bool failed = false;   // an error was reported already (report once)
  bool paused = false;   // input not read while another port drains (backpressure)
  bool wantOut = false;  // EPOLLOUT armed
  bool dead = false;     // closed; deleted at the end of the wakeup
  bool closeFds = true;  // the destructor closes the fds (false: the caller keeps them)
  // a plain endpoint that takes a GSO frame whole (up to maxFrame) as one large frame with its
  // checksums completed, instead of its segments: a NAT (slirp, passt) that reads large segments
  bool wholeSegments = false;
  PktQueue txq;
  uint64_t pubFrames = 0, pubBytes = 0;  // txq's size as last added to the port's queue gauges

  /** Short kind name for messages. */
  virtual const char *kindName() const = 0;
  /** The fd polled for input. */
  virtual int rxFd() const = 0;
  /** The fd written to (differs for stdin/stdout pairs). */
  virtual int txFd() const { return rxFd(); }
  /** Further input fds (e.g. a multicast socket beside a unicast one). */
  virtual int extraFdCount() const { return 0; }
  /** Extra input fd i. */
  virtual int extraFd(int) const { return -1; }
  /** True when GSO / partial-checksum frames may be sent as they are (a tap with a virtio-net header). */
  virtual bool takesVnet() const { return false; }
  /** With takesVnet: the largest GSO frame sent as it is; a larger one is segmented in software (a UDP path's datagram limit). */
  virtual uint32_t maxSegment() const { return SLOT_BYTES; }
  /**
   * True when txFd() tells that frames can be sent again by becoming readable (an eventfd the peer
   * signals, as a vhost-user guest's receive-queue kick) rather than writable; only for a txFd()
   * that differs from rxFd().
   */
  virtual bool txWaitReadable() const { return false; }

  /**
   * Reads frames from readyFd into b (from b.count on, at most until b is full). Malformed input
   * is dropped and counted in d. More: frames are buffered inside the kind (call again after the
   * batch was processed). Closed: st says why.
   */
  virtual RxResult receive(int readyFd, Batch &b, DropCounts &d, EpStatus &st) = 0;

  /** Builds the wire form of f (prefix bytes in pre, at most MAX_WIRE_PRE_BYTES, and at most MAX_WIRE_IOV iovecs); returns the iovec count. */
  virtual int wire(const OutFrame &f, uint8_t *pre, struct iovec *iov, uint32_t *wireBytes) const {
    (void)pre;
    int c = f.parts(iov);
    *wireBytes = f.wireLen();
    return c;
  }

  /** Writes one wire frame: 1 sent, 0 would block, -errno failed. Kinds that use the default send/drain implement it. */
  virtual int writeWire(const struct iovec *iov, int iovcnt, size_t len) {
    (void)iov;
    (void)iovcnt;
    (void)len;
    return -EINVAL;
  }

  /**
   * Sends frames in order until one would block; returns how many were consumed (sent, or failed
   * and counted). Sent frames are counted in c.pc. A kind that writes a frame partly (byte
   * streams) queues the rest itself and counts it as consumed.
   */
  virtual int send(SendCtx &c, const OutFrame *f, int n) {
    for (int i = 0; i < n; i++) {
      uint8_t pre[MAX_WIRE_PRE_BYTES];
      struct iovec iov[MAX_WIRE_IOV];
      uint32_t len;
      int k = wire(f[i], pre, iov, &len);
      int r = writeWire(iov, k, len);
      if (r == 0) return i;
      if (r < 0) {
        c.pc.drop(DROP_TX_ERROR);
        c.st.fail(-r, "send error");
        continue;
      }
      c.pc.out(f[i].wireLen());
    }
    return n;
  }

  /** Writes queued items until the kernel would block; false when the endpoint must close (c.st says why). */
  virtual bool drain(SendCtx &c) {
    while (!txq.empty()) {
      struct iovec iov[PktQueue::MAX_ITEM_IOV];
      int k = txq.frontIov(c.pool, iov);
      int r = writeWire(iov, k, txq.frontLen(c.pool));
      if (r == 0) break;
      const ItemMeta &m = txq.frontMeta(c.pool);
      if (r < 0) {
        c.pc.drop(DROP_TX_ERROR);
        c.st.fail(-r, "send error");
      } else if (m.flags & ITEM_COUNT_OUT) {
        c.pc.out(m.frameLen);
      }
      txq.pop(c.pool);
    }
    return true;
  }

  /** What a hang-up or error without input means for this kind. */
  virtual HupAction onHangup(bool hup) const { return hup ? HupAction::Close : HupAction::Close; }
  /** True when a pending socket error err (SO_ERROR) is no news for this kind and is dropped silently. */
  virtual bool ignoresError(int err) const {
    (void)err;
    return false;
  }
};

/**
 * Keeps the frame of len bytes that a kind wrote into b.next() and that arrived behind the
 * virtio-net header hdr (VNET_HDR_BYTES): the header is checked against the frame once here
 * (offload.h), so every destination can trust it. A GSO frame may fill a batch slot; any other
 * frame is held to maxFrame. Returns false when the frame was dropped (counted in d).
 */
inline bool commitVnetFrame(Batch &b, DropCounts &d, const uint8_t *hdr, uint32_t len, uint32_t maxFrame) {
  if (len < MIN_FRAME_BYTES) {
    d.drops[DROP_RUNT]++;
    return false;
  }
  if (len >= SLOT_BYTES) {
    d.drops[DROP_OVERSIZE]++;
    return false;
  }
  VnetHdr h;
  vnetDecode(hdr, h);
  VnetVerdict v = (h.flags | h.gsoType) ? vnetCheck(h, b.next(), len) : VnetVerdict::Plain;
  if (v == VnetVerdict::Bad) {
    d.drops[DROP_BAD_VNET]++;
    return false;
  }
  if (h.gsoType == VNET_GSO_NONE && len > maxFrame) {
    d.drops[DROP_OVERSIZE]++;
    return false;
  }
  FrameMeta &m = b.meta[b.count];
  b.commit(len);
  if (v == VnetVerdict::NeedsWork) {
    m.flags |= FM_VNET;
    m.vnet = h;
  }
  return true;
}

/**
 * Creates a datagram endpoint (VDE data socket, slirp socketpair, UDP, ptp, QEMU dgram). With
 * offload a unix socket carries a virtio-net header before every frame and GSO frames up to a
 * batch slot (a VDE data socket whose two vde-ts ends agreed on it at the handshake), and a
 * connected UDP socket negotiates segment datagrams in-band with its peer (cable.h).
 */
std::unique_ptr<Endpoint> makeDgramEndpoint(int fd, int txFd, bool adoptPeer, bool offload = false);
/**
 * Creates a byte-stream endpoint with 2- or 4-byte framing. With negotiate (2-byte framing
 * only) the endpoint offers the peer the segment format of cable.h and switches to it when the
 * peer is a vde-ts end too. With recordWrites every record is one write, and a pipe is put in
 * packet mode (O_DIRECT), so that a reader whose reads must end on record boundaries (Debian's
 * wirefilter loses its place when a read ends inside a length field) gets exactly one record
 * per read.
 */
std::unique_ptr<Endpoint> makeStreamEndpoint(int fd, int txFd, uint8_t hdrBytes, uint32_t maxFrame, bool negotiate = false, bool recordWrites = false);
/** Creates a tap endpoint (non-blocking); asks the tap whether it carries a virtio-net header. Returns null (errno set) on failure. */
std::unique_ptr<Endpoint> makeTapEndpoint(int fd);

}  // namespace vde
