// The per-port stage interface: behaviours that look at frames on their way into or out of a port.
//
// Each port has an ordered list of ingress stages (run before the forwarding policy) and one of
// egress stages (run before the frame is handed to the port's endpoints). A stage passes a frame,
// drops it (counted by reason on the port), or holds it: it copies the frame into a PktQueue of
// its own (pool blocks) and releases it later from its timer, when the engine continues the
// pipeline after that stage. Mirroring and storm control are stages; impairment, capture,
// filtering and policing are meant to be added the same way, without touching the loop.
//
// Stages run on the engine thread. Their configuration is replaced, never edited in place, by
// commands the engine applies between batches. Several stages of one kind may sit on a port
// direction under instance names ("capture:7"): setStage replaces the stage of the same full name.
//
// A stage that keeps a socket of its own (a capture client) hands it to the engine as an
// FdWatcher: the engine puts the fd in its epoll set, calls the watcher on its events, and calls
// its flush() once at the end of a wakeup when the stage asked for it (so a stage that collects
// output per frame writes it with one system call per wakeup). Stages learn the port they sit on
// when they are installed (attached) and when they go (detached).
//
// A replacing stage may adopt() what the one it replaces holds (the impairment stage keeps its
// queued frames and counters that way).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "batch.h"
#include "counters.h"
#include "pool.h"

namespace vde {

/** No timer wanted. */
constexpr uint64_t NO_DEADLINE_NS = ~uint64_t(0);

class Stage;

/** A stage's configuration as name=value text pairs, in the order given; its factory validates them. */
using StageConfig = std::vector<std::pair<std::string, std::string>>;
/** Creates a stage for a port direction from its configuration, or returns null with *err saying why. */
using StageFactory = std::unique_ptr<Stage> (*)(const StageConfig &cfg, bool ingress, std::string *err);
/** Registers a stage kind by name (call from a static initialiser in the stage's own file); false if taken. */
bool registerStageKind(const char *name, StageFactory make);
/** The factory of a stage kind, or null. */
StageFactory findStageKind(const std::string &name);
/** Names of the registered stage kinds. */
std::vector<std::string> stageKinds();
/** Reads a whole number in [lo, hi] from a configuration value; false with *err naming key and range otherwise. */
bool configNumber(const std::string &key, const std::string &v, long long lo, long long hi, long long *out, std::string *err);

/** What a stage reports about itself (queries): named numbers, e.g. held frames or drops by cause. */
using StageValues = std::vector<std::pair<std::string, double>>;

/** What a stage decides for a frame. */
enum class Verdict : uint8_t { Pass, Drop, Hold };

/** Frame flags a stage sees. */
constexpr uint8_t SF_MIRROR = 1;  // a mirrored copy (mirror stages leave it alone)

/** A frame as a stage sees it. */
struct StageFrame {
  OutFrame out;            // the bytes, and for egress the 802.1Q edit it will get
  const FrameMeta *meta;   // classification and offload metadata
  int port;                // the port the stage sits on
  bool ingress;            // direction
  uint8_t flags;           // SF_*

  /** A checked view of the frame as received (before any tag edit). */
  Packet packet() const { return Packet(out.data, out.len); }
};

class StageEnv;

/** An fd a stage keeps open on the engine's epoll set (see the file comment). */
class FdWatcher {
 public:
  virtual ~FdWatcher() = default;
  /** The fd the engine watches. */
  virtual int watchedFd() const = 0;
  /** Handles the fd's epoll events (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR). */
  virtual void onFdEvents(StageEnv &env, uint32_t events) = 0;
  /** Work asked for with StageEnv::deferFlush, run once at the end of the wakeup. */
  virtual void flush(StageEnv &env) { (void)env; }

  // the engine's bookkeeping (engine thread)
  uint32_t watchId = 0;      // 0: not watched
  bool flushQueued = false;  // in the engine's end-of-wakeup list
};

/** What the engine offers a stage. */
class StageEnv {
 public:
  virtual ~StageEnv() = default;
  /** The engine's clock, nanoseconds (monotonic, or the harness's fake clock). */
  virtual uint64_t nowNs() const = 0;
  /** The switch-wide pool for held frames. */
  virtual BlockPool &pool() = 0;
  /** Copies f (in its outgoing form) into q with a time and a user value; false when the pool is full. */
  virtual bool store(PktQueue &q, const StageFrame &f, uint64_t timeNs, uint16_t aux) = 0;
  /** Continues the pipeline of q's head item after the stage (it was stored from port/direction), then pops it. */
  virtual void release(PktQueue &q, int port, bool ingress, int stageIndex) = 0;
  /** Sends a copy of f out of another port (mirroring): through that port's egress stages, marked SF_MIRROR. */
  virtual void emit(int port, const StageFrame &f) = 0;
  /** Wall-clock time, nanoseconds since the epoch (CLOCK_REALTIME; with the fake clock a fixed epoch plus nowNs()). */
  virtual uint64_t wallNs() const = 0;
  /** Puts w's fd in the epoll set for `events`; the engine keeps w alive until unwatch(). False (errno set) when epoll refuses. */
  virtual bool watch(const std::shared_ptr<FdWatcher> &w, uint32_t events) = 0;
  /** Changes the events a watched fd is watched for. */
  virtual void rewatch(FdWatcher &w, uint32_t events) = 0;
  /** Takes w's fd out of the epoll set and drops the engine's reference (w lives on while others hold it). */
  virtual void unwatch(FdWatcher &w) = 0;
  /** Calls w->flush(env) once at the end of the current wakeup (repeated calls in one wakeup are one). */
  virtual void deferFlush(const std::shared_ptr<FdWatcher> &w) = 0;
  /** Tells JavaScript something about a stage: a "stage" event with the stage's full name and a text. */
  virtual void notify(const std::string &name, const std::string &detail) = 0;
};

/** One stage (see the file comment). */
class Stage {
 public:
  virtual ~Stage() = default;
  /** Short name (console, JSON). */
  virtual const char *name() const = 0;
  /** Position in a port's list: lower runs first. */
  virtual int rank() const = 0;
  /** Decides for one frame; on Drop sets *reason; on Hold the stage has stored the frame. */
  virtual Verdict process(StageEnv &env, const StageFrame &f, DropReason *reason) = 0;
  /** True when the stage holds frames or needs timer() (the engine watches its deadline). */
  virtual bool usesTimer() const { return false; }
  /** The earliest time the stage wants timer() called (NO_DEADLINE_NS for none). */
  virtual uint64_t deadlineNs() const { return NO_DEADLINE_NS; }
  /** Releases due frames (env.release) and does periodic work; `index` is the stage's position. */
  virtual void timer(StageEnv &env, int port, bool ingress, int index) {
    (void)env;
    (void)port;
    (void)ingress;
    (void)index;
  }
  /** Returns held frames to the pool (the stage is going away or the port closes). */
  virtual void clear(BlockPool &pool) { (void)pool; }
  /**
   * Takes over what `previous`, the stage of the same name this one replaces, holds (frames,
   * counters, random state), so that reconfiguring a stage loses nothing; `previous` is left
   * empty and then cleared. Runs on the engine thread, between batches. Default: nothing is
   * taken and the previous stage's held frames are dropped with it.
   */
  virtual void adopt(Stage &previous, BlockPool &pool) {
    (void)previous;
    (void)pool;
  }
  /** A port this stage sends to (mirrors), or -1. */
  virtual int targetPort() const { return -1; }
  /** Its configuration and state for queries (engine thread). */
  virtual void describe(StageValues &out) const { (void)out; }
  /** The stage was installed on port/direction (engine thread, between batches). */
  virtual void attached(StageEnv &env, int port, bool ingress) {
    (void)env;
    (void)port;
    (void)ingress;
  }
  /** The stage is being removed (or its port or the engine goes away); clear() follows. */
  virtual void detached(StageEnv &env) { (void)env; }

  /** The full name setStage gave it ("capture:7"), or empty for the kind's own name. */
  std::string instance;
  /** The name queries report and setStage replaces by: the instance name, else the kind's name. */
  std::string label() const { return instance.empty() ? std::string(name()) : instance; }
};

/** Stage ranks (lower first). */
constexpr int RANK_IMPAIR_IN = 0;         // link emulation: the cable comes before everything on the way in
constexpr int RANK_CAPTURE_IN = 1;        // capture on ingress: sees what arrives at the switch
constexpr int RANK_MIRROR = 10;
constexpr int RANK_FILTER = 20;  // filters decide before anything counts a frame against a budget
constexpr int RANK_POLICE = 30;  // a denied frame costs no tokens
constexpr int RANK_STORM = 40;
constexpr int RANK_IMPAIR_OUT = 99;       // and after everything on the way out
constexpr int RANK_CAPTURE_OUT = 1000;    // capture on egress: last, sees what leaves

}  // namespace vde
