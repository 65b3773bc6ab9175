// The stages the switch has today: port mirroring and broadcast/multicast storm control.
//
// MirrorStage copies every frame passing its port (ingress: as it arrived, before any decision;
// egress: as it leaves, with its 802.1Q edit) to a monitor port. StormStage lets at most N
// group-addressed frames per second enter its port and drops the rest (counted as "storm").
// Both are small value objects: configuring them means replacing the stage.
#pragma once

#include <cstdint>

#include "stage.h"

namespace vde {

/** Copies frames to a monitor port. */
class MirrorStage : public Stage {
 public:
  static constexpr const char *NAME = "mirror";
  /** Mirrors to port target. */
  explicit MirrorStage(int target) : target_(target) {}
  const char *name() const override { return NAME; }
  int rank() const override { return RANK_MIRROR; }
  int targetPort() const override { return target_; }
  void describe(StageValues &out) const override { out.emplace_back("target", target_); }
  /** Emits a copy (unless the frame is itself a mirror copy) and passes the frame. */
  Verdict process(StageEnv &env, const StageFrame &f, DropReason *) override {
    if (!(f.flags & SF_MIRROR)) env.emit(target_, f);
    return Verdict::Pass;
  }

 private:
  int target_;
};

/** Limits group-addressed frames per second. */
class StormStage : public Stage {
 public:
  static constexpr const char *NAME = "storm";
  /** Allows pps broadcast/multicast frames per second. */
  explicit StormStage(uint32_t pps) : pps_(pps), tokens_(pps) {}
  const char *name() const override { return NAME; }
  int rank() const override { return RANK_STORM; }
  void describe(StageValues &out) const override { out.emplace_back("pps", pps_); }
  /** Passes unicast; counts group frames against this second's allowance. */
  Verdict process(StageEnv &env, const StageFrame &f, DropReason *why) override {
    if (!f.packet().groupDst()) return Verdict::Pass;
    uint64_t sec = env.nowNs() / 1000000000ull;
    if (sec != second_) {
      second_ = sec;
      tokens_ = pps_;
    }
    if (tokens_ == 0) {
      *why = DROP_STORM;
      return Verdict::Drop;
    }
    tokens_--;
    return Verdict::Pass;
  }

 private:
  uint32_t pps_;
  uint32_t tokens_;
  uint64_t second_ = ~uint64_t(0);
};

}  // namespace vde
