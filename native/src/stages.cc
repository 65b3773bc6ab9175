// The stage-kind registry (stage.h) and the switch's own stages, mirror and storm, registered
// under their names so that the generic setStage() call configures them like any other stage.
#include <cstdlib>
#include <map>

#include "stages.h"

namespace vde {
namespace {

std::map<std::string, StageFactory> &registry() {
  static std::map<std::string, StageFactory> r;
  return r;
}

std::unique_ptr<Stage> makeMirror(const StageConfig &cfg, bool, std::string *err) {
  long long target = -1;
  for (const auto &[k, v] : cfg) {
    if (k == "target") {
      if (!configNumber(k, v, 0, 65535, &target, err)) return nullptr;
    } else {
      *err = "mirror: unknown setting \"" + k + "\" (known: target)";
      return nullptr;
    }
  }
  if (target < 0) {
    *err = "mirror: target=PORT is required";
    return nullptr;
  }
  return std::make_unique<MirrorStage>(int(target));
}

std::unique_ptr<Stage> makeStorm(const StageConfig &cfg, bool ingress, std::string *err) {
  long long pps = -1;
  for (const auto &[k, v] : cfg) {
    if (k == "pps") {
      if (!configNumber(k, v, 1, 0xffffffffLL, &pps, err)) return nullptr;
    } else {
      *err = "storm: unknown setting \"" + k + "\" (known: pps)";
      return nullptr;
    }
  }
  if (pps < 0 || !ingress) {
    *err = pps < 0 ? "storm: pps=N is required" : "storm: an ingress stage only";
    return nullptr;
  }
  return std::make_unique<StormStage>(uint32_t(pps));
}

const bool registered = registerStageKind(MirrorStage::NAME, &makeMirror) && registerStageKind(StormStage::NAME, &makeStorm);

}  // namespace

bool configNumber(const std::string &key, const std::string &v, long long lo, long long hi, long long *out, std::string *err) {
  char *end = nullptr;
  long long x = v.empty() ? 0 : std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || x < lo || x > hi) {
    *err = key + ": \"" + v + "\" is not a whole number in " + std::to_string(lo) + ".." + std::to_string(hi);
    return false;
  }
  *out = x;
  return true;
}

bool registerStageKind(const char *name, StageFactory make) { return registry().emplace(name, make).second; }

StageFactory findStageKind(const std::string &name) {
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : it->second;
}

std::vector<std::string> stageKinds() {
  (void)registered;
  std::vector<std::string> out;
  for (const auto &kv : registry()) out.push_back(kv.first);
  return out;
}

}  // namespace vde
