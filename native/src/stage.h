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
// commands the engine applies between batches.
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
  /** A port this stage sends to (mirrors), or -1. */
  virtual int targetPort() const { return -1; }
  /** Its configuration and state for queries (engine thread). */
  virtual void describe(StageValues &out) const { (void)out; }
};

/** Stage ranks (lower first). */
constexpr int RANK_MIRROR = 10;
constexpr int RANK_FILTER = 20;  // filters decide before anything counts a frame against a budget
constexpr int RANK_POLICE = 30;  // a denied frame costs no tokens
constexpr int RANK_STORM = 40;

}  // namespace vde
