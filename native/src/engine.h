// The frame engine: one event loop that owns every data fd, N ports, one forwarding policy and
// per-port stages.
//
// Shape (see ARCHITECTURE.md):
//   endpoint kinds (kinds/*)  ->  ingress stages  ->  policy (learning | wire)  ->  egress stages
//   ->  endpoint kinds (send, or the endpoint's bounded queue in the switch-wide block pool)
//
// The loop dispatches epoll events on a typed tag (wake-up, timer, an endpoint's input, output or
// extra input) and never tests an endpoint's kind. Frames are read in batches into one reusable
// slab; every frame's destinations are decided first, then each destination endpoint gets its
// frames in one call (sendmmsg / writev). Nothing on this path allocates.
//
// JavaScript never takes a lock the frame path holds. Configuration arrives as commands in a
// queue with an eventfd and is applied between batches; queries that need engine-thread state
// (the MAC table) are answered asynchronously as reply events; counters and table statistics are
// atomics any thread reads. Events (BPDUs, endpoint errors and closes, replies, an engine
// failure) cross to JavaScript by value through a sink. A failing epoll/eventfd/timerfd call is
// reported as an "engineFailed" event and stops the loop; nothing keeps serving with a dead data
// plane.
//
// For tests the engine also runs without a thread ("manual" mode): commands apply at once,
// pollOnce() runs one loop iteration without blocking, ingress() injects a frame at a port's
// ingress, and the clock is a fake that advanceNs() moves (firing due timers).
#pragma once

#include <atomic>
#include <bitset>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "batch.h"
#include "classify.h"
#include "counters.h"
#include "kinds/kind.h"
#include "mactable.h"
#include "policy.h"
#include "pool.h"
#include "stage.h"

namespace vde {

constexpr size_t TXQ_MAX_FRAMES = 1024;
constexpr size_t TXQ_MAX_BYTES = 4 << 20;
/** Spanning-tree frames waiting for JavaScript before new ones are dropped (and counted). */
constexpr size_t MAX_PENDING_BPDUS = 256;
/** MAC-table changes waiting for JavaScript (with MAC events on) before new ones are dropped (and counted). */
constexpr size_t MAX_PENDING_MAC_CHANGES = 4096;

enum class StpState : uint8_t { Forwarding = 0, Learning = 1, Discarding = 2 };

/** One stage as a query reports it. */
struct StageReport {
  int port;
  bool ingress;
  std::string name;
  StageValues values;
};

/** One change of the MAC table as the event stream reports it. */
struct MacChangeRec {
  uint64_t key;
  int32_t port, oldPort;
  MacChange what;
};

/** One event for JavaScript, by value. */
struct EngineEvent {
  enum Type : uint8_t { Bpdu, EpError, EpClosed, EngineFailed, Reply, StageNote, Macs };
  Type type = Bpdu;
  int port = -1;
  uint32_t ep = 0;
  int err = 0;
  std::string detail;
  std::string name;                 // StageNote: the stage's full name
  std::vector<MacChangeRec> macChanges;  // Macs
  std::vector<uint8_t> frame;       // Bpdu
  uint32_t queryId = 0;             // Reply
  std::vector<MacTable::Info> macs; // Reply to a MAC query (lastSeen holds the age in seconds)
  std::vector<StageReport> stages;  // Reply to a stage query
};

/** Settings of the learning policy that the console changes. */
struct LearnSettings {
  ForeignTags foreign = ForeignTags::Pass;
  bool stpCapture = false;
  uint32_t expireSeconds = 100, minPersistSeconds = 3, gcIntervalSeconds = 2;
};

/** One port. */
struct Port {
  std::vector<Endpoint *> eps;
  uint16_t untagged = 0;
  std::unique_ptr<std::bitset<VLAN_COUNT>> tagged;  // null: no tagged VLANs
  StpState stp = StpState::Forwarding;
  bool isolated = false;  // protected: frames from it go only to ports that are not protected
  std::vector<std::unique_ptr<Stage>> ingress, egress;  // sorted by rank
  uint64_t lastSrcKey = ~uint64_t(0);                   // learning cache: last source seen
  uint32_t lastSrcSeen = 0;

  /** True when the port has endpoints. */
  bool active() const { return !eps.empty(); }
  /** The port's VLAN settings for classify(). */
  PortVlans vlans() const { return PortVlans{untagged, tagged.get()}; }
  /** True when the port is a tagged member of vlan. */
  bool taggedIn(uint16_t vlan) const { return tagged && tagged->test(vlan); }
};

/** Engine statistics any thread may read. */
struct EngineStats {
  uint64_t bpduDrops, queueBudgetBytes, queueUsedBytes, macEntries, macMaxEntries, macEvictions, macSlots, macEventDrops;
};

class Engine : private StageEnv, private MacObserver {
 public:
  using EventSink = std::function<void(std::vector<EngineEvent> &&)>;

  /** Starts the engine thread (or none with manual = true); throws std::runtime_error when epoll/eventfd/timerfd fail. */
  Engine(int numPorts, EventSink sink, bool manual = false);
  ~Engine() override;
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  /** Stops and joins the thread; no event is emitted after it returns. */
  void stop();

  // --- control (any thread; applied by the engine thread between batches) ---
  /** Adds an endpoint to a port and returns its id (0 when the port is out of range); the engine owns ep from here. */
  uint32_t addEndpoint(int port, std::unique_ptr<Endpoint> ep, uint32_t maxFrame);
  /** Closes an endpoint; false when the id is unknown (already gone). */
  bool removeEndpoint(uint32_t id);
  void setNumPorts(int n);
  void setHub(bool on);
  /** Plugs: stop reading an endpoint while another port has frames queued (no drops inside a cable). */
  void setBackpressure(bool on);
  void setUntagged(int port, uint16_t vlan);
  void setTagged(int port, uint16_t vlan, bool on);
  void setForeignTags(ForeignTags mode);
  void setStpCapture(bool on);
  void setStpState(int port, StpState s);
  /** Marks a port protected (isolated): protected ports exchange no frames with each other. */
  void setProtected(int port, bool on);
  /**
   * Holds the commands posted from now on until releaseCommands(), which hands them to the engine
   * thread at once: it applies them together, with no frame processed between them (a tool joins
   * both ends of a cable before either end's input is read). Nests; JavaScript thread only.
   */
  void holdCommands();
  void releaseCommands();
  void setAging(uint32_t expireSeconds, uint32_t minPersistSeconds, uint32_t gcIntervalSeconds);
  void setStorm(int port, uint32_t pps);
  void setMirror(int port, int inTarget, int outTarget);
  /** Installs stage s on a port direction, replacing the stage of the same name; null s removes it. */
  void setStage(int port, bool ingress, const std::string &name, std::unique_ptr<Stage> s);
  /** Asks for the stages of a port (-1: all ports) with their values; the answer is a Reply event with queryId. */
  void queryStages(uint32_t queryId, int port);
  /** Reports learned, moved, aged and evicted MAC entries as "macs" events (bounded; drops counted in stats). */
  void setMacEvents(bool on);
  void setMacTableMax(uint32_t entries);
  void setQueueBudget(size_t bytes);
  void flushMacs(int port, int vlan);
  void resetCounters(int port);
  /** Sends a frame out of a port (through its egress stages); false when the arguments are bad. */
  bool injectFrame(int port, const uint8_t *data, size_t len);
  /** Asks for the MAC table (key 0 with all = true) or one entry; the answer is a Reply event with queryId. */
  void queryMacs(uint32_t queryId, bool all, uint64_t key);

  // --- lock-free reads (any thread) ---
  CounterSnapshot counters(int port) const;
  int numPorts() const { return numPortsPub_.load(std::memory_order_relaxed); }
  EngineStats stats() const;

  // --- manual mode (tests) ---
  /** Runs one loop iteration without blocking; returns the number of epoll events handled. */
  int pollOnce();
  /** Processes a frame as if it had been received on port; false when the arguments are bad. */
  bool ingress(int port, const uint8_t *data, size_t len);
  /** Sets the fake clock. */
  void setTimeNs(uint64_t ns);
  /** Moves the fake clock and fires due timers and aging. */
  void advanceNs(uint64_t ns);
  /** The engine clock. */
  uint64_t nowNs() const override { return nowNs_; }

  // --- for policies (engine thread) ---
  /** Queues slot of the current batch for port with an 802.1Q form. */
  void emit(int port, int slot, uint8_t form) { emitEntry(port, slot, form, 0, 0); }
  /** The current batch. */
  Batch &batch() { return batch_; }
  /** The ports. */
  std::vector<Port> &ports() { return ports_; }
  /** Counters of port p. */
  PortCounters &pc(int p) { return counters_.at(p); }
  /** The engine clock in whole seconds. */
  uint32_t nowSeconds() const { return uint32_t(nowNs_ / 1000000000ull); }
  /** Settings of the learning policy. */
  const LearnSettings &learn() const { return learn_; }
  /** Hands a spanning-tree frame to JavaScript (bounded; counted when dropped). */
  void pushBpdu(int port, const uint8_t *f, uint32_t len);
  /** Spanning-tree frames handed over and not yet consumed; the consumer subtracts what it took. */
  std::shared_ptr<std::atomic<int64_t>> bpduInflight() const { return bpduInflight_; }
  /** MAC changes handed over and not yet consumed; the consumer subtracts what it took. */
  std::shared_ptr<std::atomic<int64_t>> macInflight() const { return macInflight_; }

 private:
  struct Pending {
    uint16_t slot;
    uint8_t form;
    uint8_t flags;       // SF_*
    uint8_t startStage;  // egress stages before this index already ran (released frames)
    uint32_t next;
  };
  struct TimedStage {
    int port;
    bool ingress;
    Stage *stage;
  };
  /** How a frame of the release batch continues. */
  struct Resume {
    int port;
    bool ingress;
    int stage;  // the next stage to run
  };

  void post(std::function<void()> fn);
  void applyCommands();
  void run();
  void loopOnce(int timeoutMs);
  void dispatch(uint64_t tag, uint32_t events);
  void handleInput(Endpoint *ep, int fd);
  void handleHangup(Endpoint *ep, uint32_t events);
  void processBatch(int inPort, int firstStage);
  void processReleased();
  void emitEntry(int port, int slot, uint8_t form, uint8_t flags, uint8_t startStage);
  void flushOut();
  void sendToPort(int port, const OutFrame *f, int n);
  void sendToEndpoint(Endpoint *ep, int port, const OutFrame *f, int n);
  void sendRun(Endpoint *ep, int port, const OutFrame *f, int n);
  void enqueue(Endpoint *ep, int port, const OutFrame &f);
  void drainEndpoint(Endpoint *ep);
  void updateEpollOut(Endpoint *ep, bool want);
  void setPaused(Endpoint *ep, bool paused);
  void resumePaused();
  bool othersQueued(int port) const;
  void act(Endpoint *ep, EpStatus &st);
  void closeEndpoint(Endpoint *ep, const char *why, int err);
  void reapDead();
  Endpoint *lookup(uint32_t id) const;
  void portsChanged();
  void portForget(int port, int vlan);
  void resizePorts(int n);
  void addStage(int port, bool ingress, std::unique_ptr<Stage> s);
  void removeStages(int port, bool ingress, const char *name);
  void rebuildTimed();
  void runTimers();
  void armTimer();
  void timerWoke();
  void tick();
  void fail(const char *what, int err);
  void pushEvent(EngineEvent &&e);
  void publishEvents();
  void refreshClock();
  void runDeferred();
  void noteQueue(Endpoint *ep);
  void detachAll(std::vector<std::unique_ptr<Stage>> &list);

  // StageEnv
  BlockPool &pool() override { return pool_; }
  bool store(PktQueue &q, const StageFrame &f, uint64_t timeNs, uint16_t aux) override;
  void release(PktQueue &q, int port, bool ingress, int stageIndex) override;
  void emit(int port, const StageFrame &f) override;
  uint64_t wallNs() const override;
  bool watch(const std::shared_ptr<FdWatcher> &w, uint32_t events) override;
  void rewatch(FdWatcher &w, uint32_t events) override;
  void unwatch(FdWatcher &w) override;
  void deferFlush(const std::shared_ptr<FdWatcher> &w) override;
  void notify(const std::string &name, const std::string &detail) override;
  // MacObserver
  void macChanged(MacChange what, uint64_t key, int port, int oldPort) override;

  const bool manual_;
  EventSink sink_;
  int epfd_ = -1, wakefd_ = -1, timerfd_ = -1;
  std::atomic<bool> running_{true};
  std::atomic<bool> failed_{false};
  std::thread thread_;

  // commands
  std::mutex cmdMu_;
  std::vector<std::function<void()>> cmds_;
  std::vector<std::function<void()>> held_;  // posted while holdDepth_ > 0 (under cmdMu_)
  int holdDepth_ = 0;
  std::atomic<bool> cmdPending_{false};

  // endpoint ids: allocated by any thread (under idMu_), slots owned by the engine thread
  std::mutex idMu_;
  std::vector<uint32_t> idGen_;       // current generation per index (0 = free)
  std::vector<uint32_t> idFree_;
  std::vector<Endpoint *> epSlots_;  // engine thread: index -> endpoint
  std::vector<Endpoint *> dead_;     // closed this wakeup, deleted at its end

  // engine-thread state
  uint64_t nowNs_ = 0;
  bool fakeClock_ = false;
  std::vector<Port> ports_;
  std::atomic<int> numPortsPub_{0};
  CounterTable counters_;
  BlockPool pool_;
  LearnSettings learn_;
  std::unique_ptr<Policy> learning_, wire_;
  Policy *policy_ = nullptr;
  bool backpressure_ = false;
  int pausedCount_ = 0;
  uint32_t nextTickSec_ = 0;
  std::vector<TimedStage> timed_;
  uint64_t armedNs_ = NO_DEADLINE_NS;  // the deadline the timerfd is armed for
  uint64_t armedWakeNs_ = 0;          // when it was asked to wake up (earlier, see timerWoke)
  uint64_t timerEarlyNs_;             // how much earlier than a deadline to wake up
  uint64_t spinWindowStartNs_ = 0, spinNsInWindow_ = 0;
  std::vector<uint32_t> pendingRx_;  // endpoints with buffered input (More)

  // batch and egress lists
  Batch batch_;
  Resume resume_[RX_BATCH_FRAMES];
  std::vector<Pending> pend_;
  uint32_t pendCount_ = 0;
  bool flushing_ = false;
  std::vector<uint32_t> pendHead_, pendTail_;
  std::vector<int> touched_;
  std::unique_ptr<uint8_t[]> swBuf_;  // software segmentation scratch (OFFLOAD_SCRATCH_BYTES)
  uint32_t swLens_[MAX_GSO_SEGS];

  // fds stages keep open (capture clients), and their end-of-wakeup work
  std::map<uint32_t, std::shared_ptr<FdWatcher>> watchers_;
  uint32_t nextWatchId_ = 1;
  std::vector<std::shared_ptr<FdWatcher>> deferred_, deferredRun_;

  // events
  std::vector<EngineEvent> events_;
  bool macEvents_ = false;
  std::vector<MacChangeRec> macPending_;
  std::shared_ptr<std::atomic<int64_t>> macInflight_ = std::make_shared<std::atomic<int64_t>>(0);
  std::atomic<uint64_t> macEventDrops_{0};
  std::shared_ptr<std::atomic<int64_t>> bpduInflight_ = std::make_shared<std::atomic<int64_t>>(0);
  std::atomic<uint64_t> bpduDrops_{0};
};

}  // namespace vde
