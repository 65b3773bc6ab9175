// The engine loop (see engine.h): commands, typed event dispatch, the ingress -> policy -> egress
// pipeline, egress queues, stage timers, endpoint life cycle and events.
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
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
                                            "filter",    "police",   "auth"};

namespace {

// epoll tags: the type in the top byte, the endpoint id in the low 32 bits, an extra fd's index in bits 32..39
constexpr uint64_t TAG_WAKE = 1, TAG_TIMER = 2, TAG_RX = 3, TAG_TX = 4, TAG_EXTRA = 5;
constexpr int TAG_SHIFT = 56;
constexpr int EXTRA_SHIFT = 32;
constexpr int EPOLL_WAIT_MS = 200;
constexpr int MAX_EPOLL_EVENTS = 256;
constexpr int EP_ID_BITS = 20;
constexpr uint32_t EP_ID_MASK = (1u << EP_ID_BITS) - 1;
constexpr uint32_t EP_GEN_MASK = 0xfff;
constexpr uint64_t NS_PER_SECOND = 1000000000ull;
constexpr uint64_t FAKE_CLOCK_START_NS = 1000 * NS_PER_SECOND;
constexpr uint32_t PEND_MIN_ENTRIES = 4096;
constexpr uint32_t PEND_ENTRIES_PER_PORT = 16;
constexpr uint32_t PEND_MAX_ENTRIES = 1 << 16;
constexpr uint32_t NIL = ~0u;

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
    for (auto &s : p.ingress) s->clear(pool_);
    for (auto &s : p.egress) s->clear(pool_);
  }
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
    reapDead();
    publishEvents();
    return;
  }
  {
    std::lock_guard<std::mutex> g(cmdMu_);
    cmds_.push_back(std::move(fn));
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
          StageReport r{p, in, s->name(), {}};
          s->describe(r.values);
          e.stages.push_back(std::move(r));
        }
    }
    pushEvent(std::move(e));
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
  reapDead();
  publishEvents();
}

// ---------------------------------------------------------------------------------------------
// the loop

void Engine::refreshClock() {
  if (!fakeClock_) nowNs_ = monoNs();
}

void Engine::run() {
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
    armedNs_ = NO_DEADLINE_NS;
    runTimers();
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
  if (ep->takesVnet()) {
    sendRun(ep, port, f, n);
    return;
  }
  // frames with a GSO / partial-checksum header go out as complete frames, segmented in software
  int start = 0;
  for (int i = 0; i < n; i++) {
    if (!f[i].vnet) continue;
    if (i > start) sendRun(ep, port, f + start, i - start);
    start = i + 1;
    if (ep->dead) return;
    if (!swBuf_) swBuf_.reset(new uint8_t[OFFLOAD_SCRATCH_BYTES]);
    int k = vnetResolve(*f[i].vnet, f[i].data, f[i].len, swBuf_.get(), swLens_);
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
}

void Engine::enqueue(Endpoint *ep, int port, const OutFrame &f) {
  uint8_t pre[16];
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
    for (auto &s : ports_[p].ingress) s->clear(pool_);
    for (auto &s : ports_[p].egress) s->clear(pool_);
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
  list.insert(at, std::move(s));
  rebuildTimed();
}

void Engine::removeStages(int port, bool ingress, const char *name) {
  auto &list = ingress ? ports_[port].ingress : ports_[port].egress;
  for (size_t k = list.size(); k-- > 0;)
    if (strcmp(list[k]->name(), name) == 0) {
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
  if (next != NO_DEADLINE_NS) {
    if (next <= nowNs_) next = nowNs_ + 1;
    its.it_value.tv_sec = time_t(next / NS_PER_SECOND);
    its.it_value.tv_nsec = long(next % NS_PER_SECOND);
  }
  if (timerfd_settime(timerfd_, TFD_TIMER_ABSTIME, &its, nullptr) < 0) {
    fail("timerfd_settime", errno);
    return;
  }
  armedNs_ = next;
}

void Engine::tick() {
  uint32_t now = nowSeconds();
  if (now < nextTickSec_) return;
  nextTickSec_ = now + 1;
  policy_->tick(*this, now);
  if (policy_ != learning_.get()) learning_->tick(*this, now);
}

bool Engine::store(PktQueue &q, const StageFrame &f, uint64_t timeNs, uint16_t aux) {
  struct iovec iov[MAX_WIRE_IOV];
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
  if (events_.empty()) return;
  if (!sink_) {
    for (const EngineEvent &e : events_)
      if (e.type == EngineEvent::Bpdu) bpduInflight_->fetch_sub(1, std::memory_order_relaxed);
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
