// The engine loop (see engine.h): commands, typed event dispatch, the ingress -> policy -> egress
// pipeline, egress queues, stage timers, endpoint life cycle and events.
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "stages.h"

namespace vde {

const char *const DROP_NAMES[DROP_COUNT] = {"runt",      "oversize", "vlan",    "stp",      "storm",  "queueFull",
                                            "txError",   "framing",  "badVnetHdr", "loss", "capacity", "mtu",
                                            "filter",    "police",   "auth",     "linkDown"};

namespace {

// epoll tags: the type in the top byte, the endpoint id in the low 32 bits, an extra fd's index in bits 32..39
constexpr uint64_t TAG_WAKE = 1, TAG_TIMER = 2, TAG_RX = 3, TAG_TX = 4, TAG_EXTRA = 5, TAG_WATCH = 6;
constexpr int TAG_SHIFT = 56;
constexpr int EXTRA_SHIFT = 32;
constexpr int EPOLL_WAIT_MS = 200;
constexpr int MAX_EPOLL_EVENTS = 256;
constexpr int EP_ID_BITS = 20;
constexpr uint32_t EP_ID_MASK = (1u << EP_ID_BITS) - 1;
constexpr uint32_t EP_GEN_MASK = 0xfff;
constexpr uint64_t NS_PER_SECOND = 1000000000ull;
constexpr uint64_t FAKE_CLOCK_START_NS = 1000 * NS_PER_SECOND;
/** The wall clock of a fake-clock engine: this instant (2023-11-14T22:13:20Z) plus the fake clock. */
constexpr uint64_t FAKE_WALL_EPOCH_NS = 1700000000ull * NS_PER_SECOND;
/** Rounds of end-of-wakeup work (work that asks for more work runs again, at most this often). */
constexpr int MAX_DEFERRED_ROUNDS = 4;
constexpr uint32_t PEND_MIN_ENTRIES = 4096;
constexpr uint32_t PEND_ENTRIES_PER_PORT = 16;
constexpr uint32_t PEND_MAX_ENTRIES = 1 << 16;
constexpr uint32_t NIL = ~0u;
// stage timers: the timerfd is armed early by an average of recent wake-up lateness (samples
// capped), and the last stretch before a deadline is spun, at most this much per wake-up and per
// second, so a held frame leaves within a few µs of its time on an otherwise idle machine
constexpr uint64_t TIMER_INITIAL_EARLY_NS = 30000;
constexpr uint64_t TIMER_LATE_SAMPLE_MAX_NS = 150000;
constexpr uint64_t TIMER_EWMA_WEIGHT = 16;
constexpr uint64_t TIMER_SPIN_MAX_NS = 200000;
constexpr uint64_t TIMER_SPIN_BUDGET_NS_PER_S = 20000000;

uint64_t tag(uint64_t type, uint64_t low) { return (type << TAG_SHIFT) | low; }

uint64_t monoNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * NS_PER_SECOND + uint64_t(ts.tv_nsec);
}

}  // namespace

Engine::Engine(int numPorts, EventSink sink, bool manual) : manual_(manual), sink_(std::move(sink)), pool_(POOL_DEFAULT_BUDGET_BYTES) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  timerfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0 || timerfd_ < 0) {
    int err = errno;
    const char *what = epfd_ < 0 ? "epoll_create1" : wakefd_ < 0 ? "eventfd" : "timerfd_create";
    for (int fd : {epfd_, wakefd_, timerfd_})
      if (fd >= 0) close(fd);
    throw std::runtime_error(std::string("engine: ") + what + ": " + strerror(err));
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = tag(TAG_WAKE, 0);
  int r1 = epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  ev.data.u64 = tag(TAG_TIMER, 0);
  int r2 = epoll_ctl(epfd_, EPOLL_CTL_ADD, timerfd_, &ev);
  if (r1 < 0 || r2 < 0) {
    int err = errno;
    close(epfd_);
    close(wakefd_);
    close(timerfd_);
    throw std::runtime_error(std::string("engine: epoll_ctl: ") + strerror(err));
  }
  fakeClock_ = manual;
  nowNs_ = manual ? FAKE_CLOCK_START_NS : monoNs();
  timerEarlyNs_ = TIMER_INITIAL_EARLY_NS;
  learning_ = makeLearningPolicy(MacTable::DEFAULT_MAX_ENTRIES, std::max(numPorts, 1));
  wire_ = makeWirePolicy();
  policy_ = learning_.get();
  idGen_.push_back(0);  // index 0 is never used: id 0 means "none"
  epSlots_.push_back(nullptr);
  resizePorts(std::max(numPorts, 1));
  nextTickSec_ = nowSeconds() + 1;
  if (!manual_) thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  stop();
  applyCommands();
  for (Endpoint *ep : epSlots_)
    if (ep) closeEndpoint(ep, nullptr, 0);
  reapDead();
  for (Port &p : ports_) {
    detachAll(p.ingress);
    detachAll(p.egress);
  }
  runDeferred();  // stages' watchers finish what they were writing
  for (auto &kv : watchers_) epoll_ctl(epfd_, EPOLL_CTL_DEL, kv.second->watchedFd(), nullptr);
  watchers_.clear();
  events_.clear();
  close(epfd_);
  close(wakefd_);
  close(timerfd_);
}

void Engine::stop() {
  if (!running_.exchange(false)) return;
  uint64_t one = 1;
  ssize_t r = write(wakefd_, &one, sizeof one);
  (void)r;
  if (thread_.joinable()) thread_.join();
}

// ---------------------------------------------------------------------------------------------
// commands

void Engine::post(std::function<void()> fn) {
  if (manual_) {
    fn();
    runDeferred();
    reapDead();
    publishEvents();
    return;
  }
  {
    std::lock_guard<std::mutex> g(cmdMu_);
    if (holdDepth_ > 0) {
      held_.push_back(std::move(fn));
      return;
    }
    cmds_.push_back(std::move(fn));
    cmdPending_.store(true, std::memory_order_release);
  }
  uint64_t one = 1;
  ssize_t r = write(wakefd_, &one, sizeof one);
  (void)r;
}

void Engine::holdCommands() {
  std::lock_guard<std::mutex> g(cmdMu_);
  holdDepth_++;
}

void Engine::releaseCommands() {
  {
    std::lock_guard<std::mutex> g(cmdMu_);
    if (holdDepth_ == 0 || --holdDepth_ > 0 || held_.empty()) return;
    for (auto &fn : held_) cmds_.push_back(std::move(fn));
    held_.clear();
    cmdPending_.store(true, std::memory_order_release);
  }
  uint64_t one = 1;
  ssize_t r = write(wakefd_, &one, sizeof one);
  (void)r;
}

void Engine::applyCommands() {
  if (!cmdPending_.load(std::memory_order_acquire)) return;
  std::vector<std::function<void()>> run;
  {
    std::lock_guard<std::mutex> g(cmdMu_);
    run.swap(cmds_);
    cmdPending_.store(false, std::memory_order_relaxed);
  }
  for (auto &fn : run) fn();
}

uint32_t Engine::addEndpoint(int port, std::unique_ptr<Endpoint> ep, uint32_t maxFrame) {
  if (!ep) return 0;
  if (port < 0 || port >= numPorts()) {
    ep->closeFds = false;
    return 0;
  }
  uint32_t idx, gen;
  {
    std::lock_guard<std::mutex> g(idMu_);
    if (!idFree_.empty()) {
      idx = idFree_.back();
      idFree_.pop_back();
    } else {
      if (idGen_.size() > EP_ID_MASK) {
        ep->closeFds = false;
        return 0;
      }
      idx = uint32_t(idGen_.size());
      idGen_.push_back(0);
    }
    static uint32_t nextGen = 0;
    gen = (nextGen++ % EP_GEN_MASK) + 1;
    idGen_[idx] = gen;
  }
  uint32_t id = idx | (gen << EP_ID_BITS);
  ep->id = id;
  ep->port = port;
  ep->maxFrame = std::min<uint32_t>(std::max<uint32_t>(maxFrame, MIN_FRAME_BYTES), MAX_STREAM_FRAME_BYTES);
  // register with epoll here, so that a refusal (a regular file, a closed fd) is reported at once
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = tag(TAG_RX, id);
  bool ok = epoll_ctl(epfd_, EPOLL_CTL_ADD, ep->rxFd(), &ev) == 0;
  int added = 0;
  for (int k = 0; ok && k < ep->extraFdCount(); k++, added++) {
    ev.data.u64 = tag(TAG_EXTRA, id) | (uint64_t(k) << EXTRA_SHIFT);
    ok = epoll_ctl(epfd_, EPOLL_CTL_ADD, ep->extraFd(k), &ev) == 0;
  }
  if (!ok) {
    int err = errno;
    ep->closeFds = false;  // the caller still owns the fds it passed
    epoll_ctl(epfd_, EPOLL_CTL_DEL, ep->rxFd(), nullptr);
    for (int k = 0; k < added; k++) epoll_ctl(epfd_, EPOLL_CTL_DEL, ep->extraFd(k), nullptr);
    std::lock_guard<std::mutex> g(idMu_);
    idGen_[idx] = 0;
    idFree_.push_back(idx);
    errno = err;
    return 0;
  }
  Endpoint *raw = ep.release();
  post([this, raw, idx] {
    if (epSlots_.size() <= idx) epSlots_.resize(idx + 1, nullptr);
    epSlots_[idx] = raw;
    if (raw->port >= int(ports_.size())) {  // the port went away in between
      closeEndpoint(raw, "the port no longer exists", ENXIO);
      return;
    }
    ports_[raw->port].eps.push_back(raw);
    if (backpressure_ && othersQueued(raw->port)) setPaused(raw, true);
    portsChanged();
  });
  return id;
}

bool Engine::removeEndpoint(uint32_t id) {
  uint32_t idx = id & EP_ID_MASK;
  {
    std::lock_guard<std::mutex> g(idMu_);
    if (idx == 0 || idx >= idGen_.size() || idGen_[idx] != (id >> EP_ID_BITS)) return false;
  }
  post([this, id] {
    Endpoint *ep = lookup(id);
    if (ep) closeEndpoint(ep, nullptr, 0);
  });
  return true;
}

void Engine::setNumPorts(int n) {
  n = std::max(1, std::min(n, CounterTable::MAX_PORTS - 1));
  post([this, n] { resizePorts(n); });
}

void Engine::setHub(bool on) {
  post([this, on] {
    learning_->forgetPort(-1, -1);
    for (Port &q : ports_) q.lastSrcKey = ~uint64_t(0);
    policy_ = on ? wire_.get() : learning_.get();
    portsChanged();
  });
}

void Engine::setBackpressure(bool on) {
  post([this, on] {
    backpressure_ = on;
    if (!on) resumePaused();
  });
}

void Engine::setUntagged(int port, uint16_t vlan) {
  post([this, port, vlan] {
    if (port < 0 || port >= int(ports_.size())) return;
    ports_[port].untagged = vlan & 0xfff;
    portForget(port, -1);
    portsChanged();
  });
}

void Engine::setTagged(int port, uint16_t vlan, bool on) {
  post([this, port, vlan, on] {
    if (port < 0 || port >= int(ports_.size())) return;
    Port &p = ports_[port];
    if (!p.tagged) {
      if (!on) return;
      p.tagged = std::make_unique<std::bitset<VLAN_COUNT>>();
    }
    p.tagged->set(vlan & 0xfff, on);
    if (!on) portForget(port, vlan & 0xfff);
    if (p.tagged->none()) p.tagged.reset();
    portsChanged();
  });
}

void Engine::setForeignTags(ForeignTags mode) {
  post([this, mode] { learn_.foreign = mode; });
}

void Engine::setStpCapture(bool on) {
  post([this, on] { learn_.stpCapture = on; });
}

void Engine::setStpState(int port, StpState s) {
  post([this, port, s] {
    if (port < 0 || port >= int(ports_.size())) return;
    ports_[port].stp = s;
    if (s == StpState::Discarding) portForget(port, -1);
    portsChanged();
  });
}

void Engine::setProtected(int port, bool on) {
  post([this, port, on] {
    if (port < 0 || port >= int(ports_.size())) return;
    ports_[port].isolated = on;
    portsChanged();
  });
}

void Engine::setAging(uint32_t expireSeconds, uint32_t minPersistSeconds, uint32_t gcIntervalSeconds) {
  post([this, expireSeconds, minPersistSeconds, gcIntervalSeconds] {
    learn_.expireSeconds = expireSeconds;
    learn_.minPersistSeconds = minPersistSeconds;
    learn_.gcIntervalSeconds = std::max<uint32_t>(gcIntervalSeconds, 1);
  });
}

void Engine::setStorm(int port, uint32_t pps) {
  post([this, port, pps] {
    if (port < 0 || port >= int(ports_.size())) return;
    removeStages(port, true, StormStage::NAME);
    if (pps) addStage(port, true, std::make_unique<StormStage>(pps));
  });
}

void Engine::setMirror(int port, int inTarget, int outTarget) {
  post([this, port, inTarget, outTarget] {
    int n = int(ports_.size());
    if (port < 0 || port >= n) return;
    removeStages(port, true, MirrorStage::NAME);
    removeStages(port, false, MirrorStage::NAME);
    if (inTarget >= 0 && inTarget < n && inTarget != port) addStage(port, true, std::make_unique<MirrorStage>(inTarget));
    if (outTarget >= 0 && outTarget < n && outTarget != port) addStage(port, false, std::make_unique<MirrorStage>(outTarget));
  });
}

void Engine::setStage(int port, bool ingress, const std::string &name, std::unique_ptr<Stage> s) {
  auto holder = std::make_shared<std::unique_ptr<Stage>>(std::move(s));
  post([this, port, ingress, name, holder] {
    if (port < 0 || port >= int(ports_.size())) return;
    if (*holder && name != (*holder)->name()) (*holder)->instance = name;
    if (*holder)  // the new stage takes over what the one it replaces holds
      for (auto &old : ingress ? ports_[port].ingress : ports_[port].egress)
        if (name == old->label()) {
          (*holder)->adopt(*old, pool_);
          break;
        }
    removeStages(port, ingress, name.c_str());
    if (*holder) {
      int t = (*holder)->targetPort();
      if (t >= int(ports_.size()) || t == port) return;  // a mirror into a port that is not there, or into itself
      addStage(port, ingress, std::move(*holder));
    }
  });
}

void Engine::queryStages(uint32_t queryId, int port) {
  post([this, queryId, port] {
    EngineEvent e;
    e.type = EngineEvent::Reply;
    e.queryId = queryId;
    for (int p = 0; p < int(ports_.size()); p++) {
      if (port >= 0 && p != port) continue;
      for (bool in : {true, false})
        for (const auto &s : in ? ports_[p].ingress : ports_[p].egress) {
          StageReport r{p, in, s->label(), {}};
          s->describe(r.values);
          e.stages.push_back(std::move(r));
        }
    }
    pushEvent(std::move(e));
  });
}

void Engine::setMacEvents(bool on) {
  post([this, on] {
    macEvents_ = on;
    if (on) macPending_.reserve(MAX_PENDING_MAC_CHANGES);  // the frame path then never allocates for them
    if (MacTable *t = learning_->macTable()) t->observer = on ? static_cast<MacObserver *>(this) : nullptr;
  });
}

void Engine::setMacTableMax(uint32_t entries) {
  post([this, entries] {
    if (MacTable *t = learning_->macTable()) t->resize(entries);
    for (Port &q : ports_) q.lastSrcKey = ~uint64_t(0);
  });
}

void Engine::setQueueBudget(size_t bytes) {
  post([this, bytes] { pool_.setBudget(bytes); });
}

void Engine::flushMacs(int port, int vlan) {
  post([this, port, vlan] { portForget(port, vlan); });
}

void Engine::resetCounters(int port) {
  post([this, port] {
    for (int p = 0; p < int(ports_.size()); p++)
      if (port < 0 || p == port) counters_.at(p).reset();
  });
}

bool Engine::injectFrame(int port, const uint8_t *data, size_t len) {
  if (port < 0 || port >= numPorts() || len < MIN_FRAME_BYTES || len > MAX_STREAM_FRAME_BYTES) return false;
  auto bytes = std::make_shared<std::vector<uint8_t>>(data, data + len);
  post([this, port, bytes] {
    if (port >= int(ports_.size())) return;
    batch_.clear();
    memcpy(batch_.next(), bytes->data(), bytes->size());
    batch_.commit(uint32_t(bytes->size()));
    emitEntry(port, 0, FORM_ASIS, 0, 0);
    flushOut();
    batch_.clear();
  });
  return true;
}

void Engine::queryMacs(uint32_t queryId, bool all, uint64_t key) {
  post([this, queryId, all, key] {
    EngineEvent e;
    e.type = EngineEvent::Reply;
    e.queryId = queryId;
    uint32_t now = nowSeconds();
    auto age = [now](MacTable::Info i) {
      i.lastSeen = now >= i.lastSeen ? now - i.lastSeen : 0;
      return i;
    };
    if (MacTable *t = learning_->macTable()) {
      if (all) {
        e.macs.reserve(t->size());
        t->forEach([&](const MacTable::Info &i) { e.macs.push_back(age(i)); });
      } else {
        MacTable::Info i;
        if (t->find(key, i)) e.macs.push_back(age(i));
      }
    }
    pushEvent(std::move(e));
  });
}

// ---------------------------------------------------------------------------------------------
// reads

CounterSnapshot Engine::counters(int port) const { return counters_.read(port); }

EngineStats Engine::stats() const {
  EngineStats s{};
  s.bpduDrops = bpduDrops_.load(std::memory_order_relaxed);
  s.macEventDrops = macEventDrops_.load(std::memory_order_relaxed);
  s.queueBudgetBytes = pool_.budgetBytes();
  s.queueUsedBytes = pool_.usedBytes();
  MacTable *t = learning_->macTable();
  if (t) {
    s.macEntries = t->size();
    s.macMaxEntries = t->maxEntries();
    s.macEvictions = t->evictions();
    s.macSlots = t->slots();
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// manual mode

int Engine::pollOnce() {
  struct epoll_event evs[MAX_EPOLL_EVENTS];
  int n = epoll_wait(epfd_, evs, MAX_EPOLL_EVENTS, 0);
  if (n < 0) n = 0;
  for (int i = 0; i < n; i++) dispatch(evs[i].data.u64, evs[i].events);
  std::vector<uint32_t> again;
  again.swap(pendingRx_);
  for (uint32_t id : again)
    if (Endpoint *ep = lookup(id)) handleInput(ep, ep->rxFd());
  runTimers();
  runDeferred();
  reapDead();
  publishEvents();
  return n;
}

bool Engine::ingress(int port, const uint8_t *data, size_t len) {
  if (port < 0 || port >= int(ports_.size()) || len < MIN_FRAME_BYTES || len > MAX_STREAM_FRAME_BYTES) return false;
  batch_.clear();
  memcpy(batch_.next(), data, len);
  batch_.commit(uint32_t(len));
  processBatch(port, 0);
  batch_.clear();
  runDeferred();
  reapDead();
  publishEvents();
  return true;
}

void Engine::setTimeNs(uint64_t ns) {
  fakeClock_ = true;
  nowNs_ = ns;
}

void Engine::advanceNs(uint64_t ns) {
  fakeClock_ = true;
  nowNs_ += ns;
  tick();
  runTimers();
  runDeferred();
  reapDead();
  publishEvents();
}

// ---------------------------------------------------------------------------------------------
// the loop

void Engine::refreshClock() {
  if (!fakeClock_) nowNs_ = monoNs();
}

void Engine::run() {
  // stage deadlines are µs-precise (link emulation): no 50 µs timer slack on this thread's waits
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  while (running_.load(std::memory_order_relaxed)) loopOnce(pendingRx_.empty() ? EPOLL_WAIT_MS : 0);
  publishEvents();
}

void Engine::loopOnce(int timeoutMs) {
  struct epoll_event evs[MAX_EPOLL_EVENTS];
  int n = epoll_wait(epfd_, evs, MAX_EPOLL_EVENTS, timeoutMs);
  if (n < 0) {
    if (errno != EINTR) {
      fail("epoll_wait", errno);
      return;
    }
    n = 0;
  }
  refreshClock();
  applyCommands();
  for (int i = 0; i < n; i++) {
    dispatch(evs[i].data.u64, evs[i].events);
    applyCommands();  // commands wait at most one endpoint's batch
  }
  if (!pendingRx_.empty()) {
    std::vector<uint32_t> again;
    again.swap(pendingRx_);
    for (uint32_t id : again)
      if (Endpoint *ep = lookup(id)) handleInput(ep, ep->rxFd());
  }
  tick();
  runTimers();
  runDeferred();
  armTimer();
  reapDead();
  publishEvents();
}

void Engine::dispatch(uint64_t t, uint32_t events) {
  uint64_t type = t >> TAG_SHIFT;
  if (type == TAG_WAKE) {
    uint64_t v;
    ssize_t r = read(wakefd_, &v, sizeof v);
    (void)r;
    return;
  }
  if (type == TAG_TIMER) {
    uint64_t v;
    ssize_t r = read(timerfd_, &v, sizeof v);
    (void)r;
    timerWoke();
    armedNs_ = NO_DEADLINE_NS;
    runTimers();
    return;
  }
  if (type == TAG_WATCH) {
    auto it = watchers_.find(uint32_t(t));
    if (it == watchers_.end()) return;
    std::shared_ptr<FdWatcher> w = it->second;  // alive through the call, even if it unwatches itself
    w->onFdEvents(*this, events);
    return;
  }
  Endpoint *ep = lookup(uint32_t(t));
  if (!ep || ep->dead) return;
  if (type == TAG_TX) {
    if (events & (EPOLLOUT | EPOLLIN | EPOLLERR | EPOLLHUP)) drainEndpoint(ep);
    return;
  }
  if (type == TAG_EXTRA) {
    int k = int((t >> EXTRA_SHIFT) & 0xff);
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) handleInput(ep, ep->extraFd(k));
    return;
  }
  // TAG_RX
  if (events & EPOLLOUT) {
    drainEndpoint(ep);
    if (ep->dead) return;
  }
  if (events & EPOLLIN) {
    handleInput(ep, ep->rxFd());
    return;
  }
  if (events & (EPOLLHUP | EPOLLERR)) handleHangup(ep, events);
}

void Engine::handleInput(Endpoint *ep, int fd) {
  if (ep->dead) return;
  if (ep->paused) return;
  if (backpressure_ && othersQueued(ep->port)) {
    setPaused(ep, true);  // read again once the other side has drained its queue
    return;
  }
  batch_.clear();
  DropCounts d;
  EpStatus st;
  RxResult r = ep->receive(fd, batch_, d, st);
  int port = ep->port;
  counters_.at(port).add(d);
  if (batch_.count) processBatch(port, 0);
  batch_.clear();
  if (st.what) act(ep, st);
  if (ep->dead) return;
  if (r == RxResult::More) pendingRx_.push_back(ep->id);
}

void Engine::handleHangup(Endpoint *ep, uint32_t events) {
  int err = 0;
  socklen_t l = sizeof err;
  getsockopt(ep->rxFd(), SOL_SOCKET, SO_ERROR, &err, &l);  // also clears a pending error
  bool hup = events & EPOLLHUP;
  if (!hup && ep->ignoresError(err)) return;
  switch (ep->onHangup(hup)) {
    case HupAction::Drain:
      handleInput(ep, ep->rxFd());
      if (!ep->dead && hup) closeEndpoint(ep, "hang-up", err);
      break;
    case HupAction::Report:
      if (!ep->failed) {
        EpStatus st;
        st.fail(err, "socket error");
        act(ep, st);
      }
      break;
    case HupAction::Close:
      closeEndpoint(ep, hup ? "hang-up" : "socket error", err);
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// the pipeline

// Runs port inPort's ingress stages from `first` on batch frame i, then the policy.
static inline void runIngress(Engine &e, Port &p, PortCounters &c, StageEnv &env, Policy *policy, int inPort, int i, int first) {
  Batch &b = e.batch();
  FrameMeta &m = b.meta[i];
  if (!p.ingress.empty()) {
    StageFrame sf{OutFrame{b.frame(i), m.len, FORM_ASIS, nullptr, (m.flags & FM_VNET) ? &m.vnet : nullptr}, &m, inPort, true, 0};
    for (size_t k = size_t(first); k < p.ingress.size(); k++) {
      DropReason why = DROP_COUNT;
      Verdict v = p.ingress[k]->process(env, sf, &why);
      if (v == Verdict::Pass) continue;
      if (v == Verdict::Drop && why < DROP_COUNT) c.drop(why);
      return;
    }
  }
  policy->route(e, inPort, i);
}

void Engine::processBatch(int inPort, int firstStage) {
  Port &p = ports_[inPort];
  PortCounters &c = counters_.at(inPort);
  for (int i = 0; i < batch_.count; i++) {
    if (firstStage == 0) c.in(batch_.meta[i].len);
    runIngress(*this, p, c, *this, policy_, inPort, i, firstStage);
  }
  flushOut();
}

void Engine::processReleased() {
  for (int i = 0; i < batch_.count; i++) {
    const Resume &r = resume_[i];
    if (r.port >= int(ports_.size())) continue;
    if (r.ingress) runIngress(*this, ports_[r.port], counters_.at(r.port), *this, policy_, r.port, i, r.stage);
    else emitEntry(r.port, i, FORM_ASIS, 0, uint8_t(r.stage));
  }
  flushOut();
  batch_.clear();
}

void Engine::emitEntry(int port, int slot, uint8_t form, uint8_t flags, uint8_t startStage) {
  if (port < 0 || port >= int(ports_.size())) return;
  if (pendCount_ == pend_.size()) {
    if (!touched_.empty() && flushing_) {  // a mirror copy while the lists are being sent: no room
      counters_.at(port).drop(DROP_QUEUE_FULL);
      return;
    }
    flushOut();
  }
  uint32_t e = pendCount_++;
  pend_[e] = Pending{uint16_t(slot), form, flags, startStage, NIL};
  if (pendHead_[port] == NIL) {
    pendHead_[port] = e;
    touched_.push_back(port);
  } else {
    pend_[pendTail_[port]].next = e;
  }
  pendTail_[port] = e;
}

void Engine::flushOut() {
  if (touched_.empty()) return;
  flushing_ = true;
  OutFrame run[RX_BATCH_FRAMES];
  for (size_t k = 0; k < touched_.size(); k++) {
    int port = touched_[k];
    uint32_t e = pendHead_[port];
    pendHead_[port] = pendTail_[port] = NIL;
    Port &q = ports_[port];
    PortCounters &c = counters_.at(port);
    int n = 0;
    for (; e != NIL; e = pend_[e].next) {
      const Pending &pe = pend_[e];
      FrameMeta &m = batch_.meta[pe.slot];
      OutFrame of{batch_.frame(pe.slot), m.len, pe.form, m.tag, (m.flags & FM_VNET) ? &m.vnet : nullptr};
      bool pass = true;
      if (!q.egress.empty()) {
        StageFrame sf{of, &m, port, false, pe.flags};
        for (size_t s = pe.startStage; s < q.egress.size(); s++) {
          DropReason why = DROP_COUNT;
          Verdict v = q.egress[s]->process(*this, sf, &why);
          if (v == Verdict::Pass) continue;
          if (v == Verdict::Drop && why < DROP_COUNT) c.drop(why);
          pass = false;
          break;
        }
      }
      if (!pass) continue;
      run[n++] = of;
      if (n == RX_BATCH_FRAMES) {
        sendToPort(port, run, n);
        n = 0;
      }
    }
    if (n) sendToPort(port, run, n);
  }
  touched_.clear();
  pendCount_ = 0;
  flushing_ = false;
}

void Engine::sendToPort(int port, const OutFrame *f, int n) {
  std::vector<Endpoint *> &eps = ports_[port].eps;
  // backwards: a close removes the endpoint from the list while we iterate
  for (size_t j = eps.size(); j-- > 0;) {
    if (j >= eps.size()) continue;
    sendToEndpoint(eps[j], port, f, n);
  }
}

void Engine::sendToEndpoint(Endpoint *ep, int port, const OutFrame *f, int n) {
  if (ep->dead) return;
  const bool raw = ep->takesVnet();
  const uint32_t segMax = raw ? ep->maxSegment() : 0;
  if (raw && segMax >= SLOT_BYTES) {
    sendRun(ep, port, f, n);
    return;
  }
  // frames with a GSO / partial-checksum header the endpoint cannot take (no offloads, or a GSO
  // frame above its segment limit) go out as complete frames, segmented in software
  int start = 0;
  for (int i = 0; i < n; i++) {
    if (!f[i].vnet || (raw && f[i].wireLen() <= segMax)) continue;
    if (i > start) sendRun(ep, port, f + start, i - start);
    start = i + 1;
    if (ep->dead) return;
    if (!swBuf_) swBuf_.reset(new uint8_t[OFFLOAD_SCRATCH_BYTES]);
    VnetHdr h = *f[i].vnet;
    // an endpoint that takes large frames gets the GSO frame as one segment (checksums completed)
    if (ep->wholeSegments && h.gsoType != VNET_GSO_NONE && f[i].wireLen() <= ep->maxFrame) h.gsoSize = WHOLE_SEGMENT_BYTES;
    int k = vnetResolve(h, f[i].data, f[i].len, swBuf_.get(), swLens_);
    if (k < 0) {
      counters_.at(port).drop(DROP_BAD_VNET);
      continue;
    }
    OutFrame segs[RX_BATCH_FRAMES];
    uint8_t *o = swBuf_.get();
    int m = 0;
    for (int j = 0; j < k; j++) {
      segs[m++] = OutFrame{o, swLens_[j], f[i].form, f[i].tag, nullptr};
      o += swLens_[j];
      if (m == RX_BATCH_FRAMES || j == k - 1) {
        sendRun(ep, port, segs, m);
        m = 0;
        if (ep->dead) return;
      }
    }
  }
  if (start < n) sendRun(ep, port, f + start, n - start);
}

void Engine::sendRun(Endpoint *ep, int port, const OutFrame *f, int n) {
  PortCounters &c = counters_.at(port);
  OutFrame ok[RX_BATCH_FRAMES];
  int m = 0;
  for (int i = 0; i < n; i++) {
    uint32_t limit = (f[i].vnet && f[i].vnet->gsoType != VNET_GSO_NONE) ? SLOT_BYTES : ep->maxFrame;
    if (f[i].wireLen() > limit) {
      c.drop(DROP_OVERSIZE);
      continue;
    }
    ok[m++] = f[i];
  }
  int i = 0;
  if (ep->txq.empty() && m) {
    EpStatus st;
    SendCtx ctx{pool_, c, st};
    i = ep->send(ctx, ok, m);
    if (st.what) act(ep, st);
    if (ep->dead) return;
  }
  for (; i < m; i++) enqueue(ep, port, ok[i]);
  if (!ep->txq.empty() && !ep->wantOut) updateEpollOut(ep, true);
  noteQueue(ep);
}

void Engine::noteQueue(Endpoint *ep) {
  uint64_t f = ep->txq.count(), b = ep->txq.bytes();
  if (f == ep->pubFrames && b == ep->pubBytes) return;
  if (ep->port >= 0 && ep->port < int(ports_.size())) {
    PortCounters &c = counters_.at(ep->port);
    c.queued(c.queuedFrames.load(std::memory_order_relaxed) + f - ep->pubFrames, c.queuedBytes.load(std::memory_order_relaxed) + b - ep->pubBytes);
  }
  ep->pubFrames = f;
  ep->pubBytes = b;
}

void Engine::enqueue(Endpoint *ep, int port, const OutFrame &f) {
  uint8_t pre[MAX_WIRE_PRE_BYTES];
  struct iovec iov[MAX_WIRE_IOV];
  uint32_t bytes;
  int k = ep->wire(f, pre, iov, &bytes);
  size_t blocks = (bytes + POOL_BLOCK_BYTES) / POOL_BLOCK_BYTES + 1;
  // bounded per endpoint, and no endpoint may take more than half of what is left switch-wide
  if (ep->txq.count() >= TXQ_MAX_FRAMES || ep->txq.bytes() + bytes > TXQ_MAX_BYTES || blocks > pool_.freeBlocks() / 2) {
    counters_.at(port).drop(DROP_QUEUE_FULL);
    return;
  }
  ItemMeta meta;
  meta.frameLen = f.wireLen();
  meta.flags = ITEM_COUNT_OUT;
  if (!ep->txq.push(pool_, iov, k, bytes, meta)) counters_.at(port).drop(DROP_QUEUE_FULL);
}

void Engine::drainEndpoint(Endpoint *ep) {
  EpStatus st;
  SendCtx ctx{pool_, counters_.at(ep->port), st};
  ep->drain(ctx);
  noteQueue(ep);
  if (st.what) act(ep, st);
  if (ep->dead) return;
  if (ep->txq.empty()) {
    if (ep->wantOut) updateEpollOut(ep, false);
    if (pausedCount_) resumePaused();
  }
}

void Engine::updateEpollOut(Endpoint *ep, bool want) {
  struct epoll_event ev = {};
  if (ep->txFd() != ep->rxFd()) {
    ev.events = ep->txWaitReadable() ? EPOLLIN : EPOLLOUT;
    ev.data.u64 = tag(TAG_TX, ep->id);
    epoll_ctl(epfd_, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, ep->txFd(), &ev);
  } else {
    ev.events = (ep->paused ? 0u : uint32_t(EPOLLIN)) | (want ? uint32_t(EPOLLOUT) : 0u);
    ev.data.u64 = tag(TAG_RX, ep->id);
    epoll_ctl(epfd_, EPOLL_CTL_MOD, ep->rxFd(), &ev);
  }
  ep->wantOut = want;
}

bool Engine::othersQueued(int port) const {
  for (size_t p = 0; p < ports_.size(); p++) {
    if (int(p) == port) continue;
    for (const Endpoint *o : ports_[p].eps)
      if (!o->txq.empty()) return true;
  }
  return false;
}

void Engine::setPaused(Endpoint *ep, bool paused) {
  if (ep->paused == paused) return;
  ep->paused = paused;
  pausedCount_ += paused ? 1 : -1;
  if (!paused) pendingRx_.push_back(ep->id);  // a kind may hold input it read before the pause
  struct epoll_event ev = {};
  ev.events = (paused ? 0u : uint32_t(EPOLLIN)) | (ep->wantOut && ep->txFd() == ep->rxFd() ? uint32_t(EPOLLOUT) : 0u);
  ev.data.u64 = tag(TAG_RX, ep->id);
  epoll_ctl(epfd_, EPOLL_CTL_MOD, ep->rxFd(), &ev);
}

void Engine::resumePaused() {
  if (!pausedCount_) return;
  for (Port &p : ports_)
    for (Endpoint *ep : p.eps)
      if (ep->paused && (!backpressure_ || !othersQueued(ep->port))) setPaused(ep, false);
}

// ---------------------------------------------------------------------------------------------
// endpoints and ports

Endpoint *Engine::lookup(uint32_t id) const {
  size_t idx = id & EP_ID_MASK;
  if (idx == 0 || idx >= epSlots_.size()) return nullptr;
  Endpoint *ep = epSlots_[idx];
  return ep && ep->id == id && !ep->dead ? ep : nullptr;
}

void Engine::act(Endpoint *ep, EpStatus &st) {
  if (ep->dead) return;
  if (st.close) {
    closeEndpoint(ep, st.what ? st.what : "closed", st.err);
    return;
  }
  if (st.what && !ep->failed) {
    ep->failed = true;
    EngineEvent e;
    e.type = EngineEvent::EpError;
    e.port = ep->port;
    e.ep = ep->id;
    e.err = st.err;
    e.detail = st.what;
    pushEvent(std::move(e));
  }
}

void Engine::closeEndpoint(Endpoint *ep, const char *why, int err) {
  if (ep->dead) return;
  ep->dead = true;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, ep->rxFd(), nullptr);
  for (int k = 0; k < ep->extraFdCount(); k++) epoll_ctl(epfd_, EPOLL_CTL_DEL, ep->extraFd(k), nullptr);
  if (ep->txFd() != ep->rxFd() && ep->wantOut) epoll_ctl(epfd_, EPOLL_CTL_DEL, ep->txFd(), nullptr);
  ep->txq.clear(pool_);
  noteQueue(ep);
  if (ep->paused) pausedCount_--;
  int port = ep->port;
  if (port >= 0 && port < int(ports_.size())) {
    auto &eps = ports_[port].eps;
    eps.erase(std::remove(eps.begin(), eps.end(), ep), eps.end());
    if (eps.empty()) portForget(port, -1);
    portsChanged();
  }
  uint32_t idx = ep->id & EP_ID_MASK;
  if (idx < epSlots_.size() && epSlots_[idx] == ep) epSlots_[idx] = nullptr;
  {
    std::lock_guard<std::mutex> g(idMu_);
    if (idx < idGen_.size() && idGen_[idx] == (ep->id >> EP_ID_BITS)) {
      idGen_[idx] = 0;
      idFree_.push_back(idx);
    }
  }
  if (why) {
    EngineEvent e;
    e.type = EngineEvent::EpClosed;
    e.port = port;
    e.ep = ep->id;
    e.err = err;
    e.detail = why;
    pushEvent(std::move(e));
  }
  dead_.push_back(ep);
}

void Engine::reapDead() {
  for (Endpoint *ep : dead_) delete ep;
  dead_.clear();
}

void Engine::portsChanged() { policy_->portsChanged(*this); }

void Engine::portForget(int port, int vlan) {
  learning_->forgetPort(port, vlan);
  for (Port &q : ports_) q.lastSrcKey = ~uint64_t(0);
}

void Engine::resizePorts(int n) {
  for (size_t p = size_t(n); p < ports_.size(); p++) {
    for (size_t j = ports_[p].eps.size(); j-- > 0;)
      if (j < ports_[p].eps.size()) closeEndpoint(ports_[p].eps[j], nullptr, 0);
    detachAll(ports_[p].ingress);
    detachAll(ports_[p].egress);
  }
  counters_.ensure(n);
  ports_.resize(size_t(n));
  learning_->portsResized(n);
  pendHead_.assign(size_t(n), NIL);
  pendTail_.assign(size_t(n), NIL);
  touched_.reserve(size_t(n) * 2);
  uint32_t entries = std::min(PEND_MAX_ENTRIES, std::max(PEND_MIN_ENTRIES, uint32_t(n) * PEND_ENTRIES_PER_PORT));
  pend_.resize(entries);
  // mirrors into ports that are gone
  for (int p = 0; p < n; p++)
    for (bool in : {true, false}) {
      auto &list = in ? ports_[p].ingress : ports_[p].egress;
      for (size_t k = list.size(); k-- > 0;)
        if (list[k]->targetPort() >= n) {
          list[k]->detached(*this);
          list[k]->clear(pool_);
          list.erase(list.begin() + long(k));
        }
    }
  rebuildTimed();
  numPortsPub_.store(n, std::memory_order_relaxed);
  portsChanged();
}

// ---------------------------------------------------------------------------------------------
// stages and timers

void Engine::addStage(int port, bool ingress, std::unique_ptr<Stage> s) {
  auto &list = ingress ? ports_[port].ingress : ports_[port].egress;
  auto at = std::upper_bound(list.begin(), list.end(), s->rank(), [](int r, const std::unique_ptr<Stage> &x) { return r < x->rank(); });
  Stage *added = s.get();
  list.insert(at, std::move(s));
  rebuildTimed();
  added->attached(*this, port, ingress);
}

void Engine::detachAll(std::vector<std::unique_ptr<Stage>> &list) {
  for (auto &s : list) {
    s->detached(*this);
    s->clear(pool_);
  }
  list.clear();
}

void Engine::removeStages(int port, bool ingress, const char *name) {
  auto &list = ingress ? ports_[port].ingress : ports_[port].egress;
  for (size_t k = list.size(); k-- > 0;)
    if (list[k]->label() == name) {
      list[k]->detached(*this);
      list[k]->clear(pool_);
      list.erase(list.begin() + long(k));
    }
  rebuildTimed();
}

void Engine::rebuildTimed() {
  timed_.clear();
  for (int p = 0; p < int(ports_.size()); p++) {
    for (auto &s : ports_[p].ingress)
      if (s->usesTimer()) timed_.push_back(TimedStage{p, true, s.get()});
    for (auto &s : ports_[p].egress)
      if (s->usesTimer()) timed_.push_back(TimedStage{p, false, s.get()});
  }
}

void Engine::runTimers() {
  if (timed_.empty()) return;
  batch_.clear();
  for (const TimedStage &t : timed_) {
    if (t.stage->deadlineNs() > nowNs_) continue;
    auto &list = t.ingress ? ports_[t.port].ingress : ports_[t.port].egress;
    int index = 0;
    while (index < int(list.size()) && list[index].get() != t.stage) index++;
    t.stage->timer(*this, t.port, t.ingress, index);
  }
  if (batch_.count) processReleased();
}

void Engine::armTimer() {
  if (fakeClock_) return;
  uint64_t next = NO_DEADLINE_NS;
  for (const TimedStage &t : timed_) next = std::min(next, t.stage->deadlineNs());
  if (next == armedNs_) return;
  struct itimerspec its = {};
  uint64_t wake = next;
  if (next != NO_DEADLINE_NS) {
    // wake up early by the usual lateness of a wake-up; timerWoke() waits out the rest
    wake = next > timerEarlyNs_ ? next - timerEarlyNs_ : next;
    // already inside the early window (a wake-up that could not spin): wake at the deadline itself
    if (wake <= nowNs_) wake = next > nowNs_ ? next : nowNs_ + 1;
    its.it_value.tv_sec = time_t(wake / NS_PER_SECOND);
    its.it_value.tv_nsec = long(wake % NS_PER_SECOND);
  }
  if (timerfd_settime(timerfd_, TFD_TIMER_ABSTIME, &its, nullptr) < 0) {
    fail("timerfd_settime", errno);
    return;
  }
  armedNs_ = next;
  armedWakeNs_ = wake;
}

void Engine::timerWoke() {
  if (armedNs_ == NO_DEADLINE_NS) return;
  // learn how late wake-ups come (samples capped, so that one stall of the machine does not count)
  uint64_t late = nowNs_ > armedWakeNs_ ? nowNs_ - armedWakeNs_ : 0;
  late = std::min(late, TIMER_LATE_SAMPLE_MAX_NS);
  timerEarlyNs_ = (timerEarlyNs_ * (TIMER_EWMA_WEIGHT - 1) + late) / TIMER_EWMA_WEIGHT;
  // a deadline just ahead: spin until it comes, within a CPU budget per second
  if (armedNs_ <= nowNs_ || armedNs_ - nowNs_ > TIMER_SPIN_MAX_NS) return;
  if (nowNs_ - spinWindowStartNs_ > NS_PER_SECOND) {
    spinWindowStartNs_ = nowNs_;
    spinNsInWindow_ = 0;
  }
  if (spinNsInWindow_ + (armedNs_ - nowNs_) > TIMER_SPIN_BUDGET_NS_PER_S) return;
  uint64_t start = nowNs_;
  while ((nowNs_ = monoNs()) < armedNs_) {
  }
  spinNsInWindow_ += nowNs_ - start;
}

void Engine::tick() {
  uint32_t now = nowSeconds();
  if (now < nextTickSec_) return;
  nextTickSec_ = now + 1;
  policy_->tick(*this, now);
  if (policy_ != learning_.get()) learning_->tick(*this, now);
}

bool Engine::store(PktQueue &q, const StageFrame &f, uint64_t timeNs, uint16_t aux) {
  struct iovec iov[PREFIX_WIRE_IOV];
  int k = f.out.parts(iov);
  ItemMeta meta;
  meta.frameLen = f.out.wireLen();
  meta.timeNs = timeNs;
  meta.aux = aux;
  if (f.out.vnet) {
    meta.flags |= ITEM_VNET;
    meta.vnet = *f.out.vnet;
    int d = f.out.delta();
    if (meta.vnet.hdrLen) meta.vnet.hdrLen = uint16_t(int(meta.vnet.hdrLen) + d);
    if (meta.vnet.flags & VNET_F_NEEDS_CSUM) meta.vnet.csumStart = uint16_t(int(meta.vnet.csumStart) + d);
  }
  return q.push(pool_, iov, k, meta.frameLen, meta);
}

void Engine::release(PktQueue &q, int port, bool ingress, int stageIndex) {
  if (q.empty()) return;
  if (batch_.full()) processReleased();
  int slot = batch_.count;
  const ItemMeta &im = q.frontMeta(pool_);
  uint32_t len = q.copyFront(pool_, batch_.next());
  batch_.commit(len);
  FrameMeta &m = batch_.meta[slot];
  if (im.flags & ITEM_VNET) {
    m.flags |= FM_VNET;
    m.vnet = im.vnet;
  }
  resume_[slot] = Resume{port, ingress, stageIndex + 1};
  q.pop(pool_);
}

void Engine::emit(int port, const StageFrame &f) {
  // the copy refers to the same slot of the current batch, unchanged (form of the original)
  const uint8_t *base = batch_.frame(0);
  ptrdiff_t off = f.out.data - base;
  if (off < 0 || off >= ptrdiff_t(size_t(RX_BATCH_FRAMES) * SLOT_BYTES)) return;  // not a batch frame
  emitEntry(port, int(off / ptrdiff_t(SLOT_BYTES)), f.ingress ? uint8_t(FORM_ASIS) : f.out.form, SF_MIRROR, 0);
}

uint64_t Engine::wallNs() const {
  if (fakeClock_) return FAKE_WALL_EPOCH_NS + nowNs_;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * NS_PER_SECOND + uint64_t(ts.tv_nsec);
}

bool Engine::watch(const std::shared_ptr<FdWatcher> &w, uint32_t events) {
  if (!w || w->watchId) return w != nullptr;
  uint32_t id = nextWatchId_++;
  if (nextWatchId_ == 0) nextWatchId_ = 1;
  struct epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = tag(TAG_WATCH, id);
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, w->watchedFd(), &ev) < 0) return false;
  w->watchId = id;
  watchers_[id] = w;
  return true;
}

void Engine::rewatch(FdWatcher &w, uint32_t events) {
  if (!w.watchId) return;
  struct epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = tag(TAG_WATCH, w.watchId);
  epoll_ctl(epfd_, EPOLL_CTL_MOD, w.watchedFd(), &ev);
}

void Engine::unwatch(FdWatcher &w) {
  if (!w.watchId) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, w.watchedFd(), nullptr);
  uint32_t id = w.watchId;
  w.watchId = 0;
  watchers_.erase(id);  // may destroy w: callers hold a reference while they use it
}

void Engine::deferFlush(const std::shared_ptr<FdWatcher> &w) {
  if (!w || w->flushQueued) return;
  w->flushQueued = true;
  deferred_.push_back(w);
}

void Engine::runDeferred() {
  // two vectors that trade buffers: after the first wakeup neither allocates again
  for (int round = 0; round < MAX_DEFERRED_ROUNDS && !deferred_.empty(); round++) {
    deferredRun_.swap(deferred_);
    for (auto &w : deferredRun_) {
      w->flushQueued = false;
      w->flush(*this);
    }
    deferredRun_.clear();
  }
}

void Engine::notify(const std::string &name, const std::string &detail) {
  EngineEvent e;
  e.type = EngineEvent::StageNote;
  e.name = name;
  e.detail = detail;
  pushEvent(std::move(e));
}

void Engine::macChanged(MacChange what, uint64_t key, int port, int oldPort) {
  if (!macEvents_) return;
  if (macInflight_->load(std::memory_order_relaxed) + int64_t(macPending_.size()) >= int64_t(MAX_PENDING_MAC_CHANGES) ||
      macPending_.size() >= macPending_.capacity()) {
    macEventDrops_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  macPending_.push_back(MacChangeRec{key, port, oldPort, what});
}

// ---------------------------------------------------------------------------------------------
// events

void Engine::pushBpdu(int port, const uint8_t *f, uint32_t len) {
  if (bpduInflight_->load(std::memory_order_relaxed) >= int64_t(MAX_PENDING_BPDUS)) {
    bpduDrops_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  bpduInflight_->fetch_add(1, std::memory_order_relaxed);
  EngineEvent e;
  e.type = EngineEvent::Bpdu;
  e.port = port;
  e.frame.assign(f, f + len);
  pushEvent(std::move(e));
}

void Engine::pushEvent(EngineEvent &&e) { events_.push_back(std::move(e)); }

void Engine::publishEvents() {
  if (!macPending_.empty()) {
    EngineEvent e;
    e.type = EngineEvent::Macs;
    e.macChanges.assign(macPending_.begin(), macPending_.end());
    macInflight_->fetch_add(int64_t(macPending_.size()), std::memory_order_relaxed);
    macPending_.clear();
    pushEvent(std::move(e));
  }
  if (events_.empty()) return;
  if (!sink_) {
    for (const EngineEvent &e : events_) {
      if (e.type == EngineEvent::Bpdu) bpduInflight_->fetch_sub(1, std::memory_order_relaxed);
      if (e.type == EngineEvent::Macs) macInflight_->fetch_sub(int64_t(e.macChanges.size()), std::memory_order_relaxed);
    }
    events_.clear();
    return;
  }
  std::vector<EngineEvent> out;
  out.swap(events_);
  sink_(std::move(out));
}

void Engine::fail(const char *what, int err) {
  failed_.store(true);
  running_.store(false);
  EngineEvent e;
  e.type = EngineEvent::EngineFailed;
  e.err = err;
  e.detail = what;
  pushEvent(std::move(e));
  publishEvents();
}

}  // namespace vde
