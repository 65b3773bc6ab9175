// The frame engine: one native thread, one epoll loop, every data fd.
//
// An Engine owns N ports. A port has zero or more endpoints (file descriptors that carry
// frames: a VDE client's datagram socket, a byte stream with 2- or 4-byte length framing, a
// tap device) and its forwarding settings (untagged VLAN, tagged VLAN set, spanning-tree state,
// storm limit, mirror targets) plus counters. The policy is either a learning switch (MAC table
// keyed by MAC+VLAN, 802.1Q tagging) or a hub. Frames are read in batches (recvmmsg / read until
// EAGAIN with a per-wakeup budget), each frame's destinations are decided first, then every
// destination endpoint gets its frames in one sendmmsg/writev. When a destination would block
// the frames wait in a bounded per-endpoint queue until EPOLLOUT; only a full queue drops, and
// the drop is counted. JavaScript configures the engine through methods that take the engine
// mutex (held by the engine thread while it processes one wakeup) and receives rare events
// (BPDUs, endpoint failures) through a callback; nothing calls into JavaScript per data frame.
#pragma once

#include <atomic>
#include <bitset>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <sys/socket.h>
#include <sys/uio.h>
#include <string>
#include <thread>
#include <vector>

#include "mactable.h"
#include "offload.h"

namespace vde {

constexpr uint32_t MIN_FRAME_BYTES = 14;
constexpr uint32_t MAX_VDE_FRAME_BYTES = 9234;      // 9216 MTU + 14 header + 4 tag
constexpr uint32_t MAX_STREAM_FRAME_BYTES = 65536;  // QEMU stream / tap limit we accept
constexpr uint32_t SLOT_BYTES = MAX_STREAM_FRAME_BYTES + 64;
constexpr int RX_BATCH_FRAMES = 64;
constexpr size_t TXQ_MAX_FRAMES = 1024;
constexpr size_t TXQ_MAX_BYTES = 4 << 20;
constexpr uint16_t VLAN_NONE = 4095;
constexpr int VLAN_COUNT = 4096;

enum class EpKind : uint8_t { Dgram = 0, Stream2 = 1, Stream4 = 2, Tap = 3, Custom = 4 };
enum class StpState : uint8_t { Forwarding = 0, Learning = 1, Discarding = 2 };
enum class ForeignTags : uint8_t { Pass = 0, Drop = 1 };

enum DropReason {
  DROP_RUNT, DROP_OVERSIZE, DROP_VLAN, DROP_STP, DROP_STORM, DROP_QUEUE_FULL, DROP_TX_ERROR,
  DROP_FRAMING, DROP_BAD_VNET, DROP_COUNT
};
extern const char *const DROP_NAMES[DROP_COUNT];

struct PortCounters {
  uint64_t inFrames = 0, inBytes = 0, outFrames = 0, outBytes = 0;
  uint64_t drops[DROP_COUNT] = {};
};

struct PortCounters;

/**
 * I/O of a custom endpoint kind (encapsulations such as VXLAN) that the engine drives like its
 * own: it polls fd() and extraFds() for input and calls receive() with the ready fd; it calls
 * send() per outgoing frame and queues the frame itself when send() reports EAGAIN. Runs on the
 * engine thread only. The object owns its fds and closes them in its destructor.
 */
class EndpointIo {
 public:
  virtual ~EndpointIo() = default;
  /** The main fd to poll for input. */
  virtual int fd() const = 0;
  /** Further fds to poll for input (e.g. a multicast socket beside a unicast one). */
  virtual std::vector<int> extraFds() const { return {}; }
  /** Reads up to max frames from readyFd into slab slots i*slotBytes (at most maxFrame bytes each), sets
   * lens[i]; returns how many; counts malformed input in c.drops[...]. */
  virtual int receive(int readyFd, uint8_t *slab, size_t slotBytes, uint32_t maxFrame, uint32_t *lens, int max,
                      PortCounters &c) = 0;
  /** Sends one frame; returns 1 when sent, 0 when it would block (the engine queues it), -errno on failure. */
  virtual int send(const struct iovec *iov, int iovcnt, size_t len) = 0;
};

struct TxItem {
  std::vector<uint8_t> bytes;  // for streams: header included
};

struct Endpoint {
  uint32_t id = 0;
  int fd = -1;    // read side (and write side unless txFd differs)
  int txFd = -1;  // write side: differs for stdin/stdout pairs
  int port = -1;
  bool adoptPeer = false;      // datagram socket without a fixed peer: connect to the first sender
  bool peerConnected = true;
  EpKind kind = EpKind::Dgram;
  uint32_t maxFrame = MAX_VDE_FRAME_BYTES;
  bool closeFd = true;
  bool failed = false;  // error already reported
  bool wantOut = false;
  bool paused = false;  // input not read while the other side's queue drains (backpressure)
  std::deque<TxItem> txq;
  size_t txqBytes = 0;
  size_t txHeadOffset = 0;  // bytes of txq.front() already written (streams)
  std::unique_ptr<EndpointIo> io;  // EpKind::Custom only
  // EpKind::Tap opened with IFF_VNET_HDR: every frame read or written starts with a 10-byte
  // virtio_net_hdr, and the endpoint takes GSO and partial-checksum frames as they are.
  bool vnetHdr = false;
  // stream receive state
  std::vector<uint8_t> rx;
  size_t rxLen = 0;
};

struct Port {
  std::vector<Endpoint *> eps;
  uint16_t untagged = 0;
  std::bitset<VLAN_COUNT> tagged;
  StpState stp = StpState::Forwarding;
  uint32_t stormLimitPps = 0;  // 0 = off
  uint32_t stormTokens = 0;
  uint32_t stormSecond = 0;
  int mirrorIn = -1, mirrorOut = -1;  // monitor port for frames entering / leaving
  PortCounters c;
  uint64_t lastSrcKey = MacTable::EMPTY_KEY;
  uint32_t lastSrcSeen = 0;
};

struct EngineEvent {
  std::string type;  // "bpdu", "epError", "epClosed"
  int port = -1;
  uint32_t ep = 0;
  int err = 0;
  std::string detail;
  std::vector<uint8_t> frame;
};

struct MacInfo {
  uint64_t key;
  int port;
  uint32_t ageSeconds;
  size_t slot;
};

class Engine {
 public:
  using EventSink = std::function<void()>;  // called (from the engine thread) when events wait

  Engine(int numPorts, EventSink sink);
  ~Engine();

  void stop();

  // --- configuration (any thread; takes the mutex) ---
  void setNumPorts(int n);
  uint32_t addEndpoint(int port, int fd, EpKind kind, uint32_t maxFrame, bool closeFd, int txFd = -1,
                       bool adoptPeer = false, bool vnetHdr = false);
  bool removeEndpoint(uint32_t id);
  /** Adds a custom endpoint; the engine takes ownership of io (also on failure). Returns 0 on failure. */
  uint32_t addCustomEndpoint(int port, std::unique_ptr<EndpointIo> io, uint32_t maxFrame);
  void setHub(bool on);
  /** Plugs: stop reading an endpoint while another port has frames queued (no drops inside a cable). */
  void setBackpressure(bool on);
  void setUntagged(int port, uint16_t vlan);
  void setTagged(int port, uint16_t vlan, bool on);
  void setForeignTags(ForeignTags mode);
  void setStpCapture(bool on);
  void setStpState(int port, StpState s);
  void setAging(uint32_t expireSeconds, uint32_t minPersistSeconds, uint32_t gcIntervalSeconds);
  void setStorm(int port, uint32_t pps);
  void setMirror(int port, int inTarget, int outTarget);
  void resizeMacTable(size_t slots);
  size_t flushMacs(int port, int vlan);  // -1 = any
  void resetCounters(int port);          // -1 = all
  bool injectFrame(int port, const uint8_t *data, size_t len);

  // --- queries ---
  std::vector<MacInfo> macTable();
  bool macFind(uint64_t key, MacInfo &out);
  PortCounters counters(int port);
  size_t macCount();
  size_t macSlots();
  std::vector<EngineEvent> takeEvents();
  int numPorts();

 private:
  void run();
  void handleRx(Endpoint *ep);
  void handleStreamRx(Endpoint *ep);
  void handleAdoptRx(Endpoint *ep);
  void handleCustomRx(Endpoint *ep, int readyFd);
  void processFrames(int inPort, int count);
  void forwardOne(int inPort, int slot);
  void queueOut(int port, int slot, uint8_t form);
  void flushOut();
  void sendToEndpoint(Endpoint *ep, int port, const int *slots, const uint8_t *forms, int n);
  bool flushTx(Endpoint *ep);
  void sendSoftware(Endpoint *ep, int port, const int *slots, const uint8_t *forms, int n);
  bool emitOne(Endpoint *ep, int port, struct iovec *iov, int iovcnt, uint32_t len);
  void enqueue(Endpoint *ep, const struct iovec *iov, int iovcnt, size_t len, int port);
  void updateEpollOut(Endpoint *ep, bool want);
  void failEndpoint(Endpoint *ep, int err, const char *what);
  void closeEndpointLocked(Endpoint *ep, const char *why, int err);
  bool othersQueued(int port) const;
  void setPaused(Endpoint *ep, bool paused);
  void resumePaused();
  Endpoint *lookup(uint32_t id);
  void rebuildFlood();
  void gc();
  void pushEvent(EngineEvent &&e);
  uint32_t nowSeconds();
  bool portForwards(int p) const;

  std::mutex mu_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::atomic<bool> running_{true};
  std::thread thread_;
  EventSink sink_;

  std::vector<Port> ports_;
  std::vector<Endpoint *> epSlots_;  // index = id & 0xfffff
  uint32_t nextGen_ = 1;
  MacTable macs_;
  bool hub_ = false;
  bool backpressure_ = false;
  int pausedCount_ = 0;
  bool stpCapture_ = false;
  ForeignTags foreign_ = ForeignTags::Pass;
  uint32_t expireSeconds_ = 100, minPersistSeconds_ = 3, gcIntervalSeconds_ = 2;
  uint32_t now_ = 0, nextGc_ = 0;
  std::vector<std::vector<int>> flood_;  // per VLAN: active member ports
  std::vector<int> hubFlood_;
  bool floodDirty_ = true;

  // batch state
  std::vector<uint8_t> slab_;  // RX_BATCH_FRAMES * SLOT_BYTES
  struct mmsghdr rxMsgs_[RX_BATCH_FRAMES];
  struct iovec rxIovs_[RX_BATCH_FRAMES];
  uint32_t rxIovLen_ = MAX_VDE_FRAME_BYTES;
  uint32_t lens_[RX_BATCH_FRAMES];
  uint16_t vlanOf_[RX_BATCH_FRAMES];
  bool taggedIn_[RX_BATCH_FRAMES];
  uint8_t tagBytes_[RX_BATCH_FRAMES][4];
  // offloads: set only while a batch read from a vnet-header tap is processed
  bool rxVnet_ = false;
  VnetHdr vnet_[RX_BATCH_FRAMES];
  bool needSw_[RX_BATCH_FRAMES];  // partial checksum or GSO: software work for plain destinations
  std::vector<uint8_t> swBuf_;    // OFFLOAD_SCRATCH_BYTES, allocated on first use
  uint32_t swLens_[MAX_GSO_SEGS];
  struct Pending { std::vector<int> slots; std::vector<uint8_t> forms; };
  std::vector<Pending> pending_;
  std::vector<int> touched_;

  std::vector<EngineEvent> events_;
  bool eventsSignalled_ = false;
};

}  // namespace vde
