// The filter stage: per-port ingress or egress rules (filter_rules.h) that allow or deny frames.
//
// Rules are tried in order and the first that matches decides; a frame no rule matches gets the
// default action (allow unless `default=deny`). Each rule counts its hits, and so does the
// default, so `describe()` reports which rule did what. A denied frame is dropped and counted on
// the port as "filter". Configuration (`rules=TEXT`, `default=allow|deny`) replaces the stage as a
// whole: the engine swaps it between batches, and the hit counters start again from zero.
// Registered as "filter"; JavaScript installs it with engine.setStage(port, dir, 'filter', ...).
#include <cstring>

#include "filter_rules.h"
#include "stage.h"

namespace vde {
namespace {

class FilterStage : public Stage {
 public:
  static constexpr const char *NAME = "filter";
  FilterStage(std::vector<FilterRule> rules, bool defaultAllow)
      : rules_(std::move(rules)), hits_(rules_.size(), 0), defaultAllow_(defaultAllow) {
    for (const FilterRule &r : rules_)
      if (r.terms & FT_L3) needL3_ = true;
  }
  const char *name() const override { return NAME; }
  int rank() const override { return RANK_FILTER; }

  /** First matching rule decides; else the default. */
  Verdict process(StageEnv &, const StageFrame &f, DropReason *why) override {
    int i = rules_.empty() ? -1 : filterFirstMatch(rules_, frameFields(f.out.data, f.out.len, f.out.form, f.out.tag, needL3_));
    bool allow;
    if (i < 0) {
      defaultHits_++;
      allow = defaultAllow_;
    } else {
      hits_[size_t(i)]++;
      allow = rules_[size_t(i)].allow;
    }
    if (allow) {
      passed_++;
      return Verdict::Pass;
    }
    denied_++;
    *why = DROP_FILTER;
    return Verdict::Drop;
  }

  /** rules, default (1 allow, 0 deny), passed, denied, hits.default and hits.N per rule (1-based). */
  void describe(StageValues &out) const override {
    out.emplace_back("rules", double(rules_.size()));
    out.emplace_back("default", defaultAllow_ ? 1 : 0);
    out.emplace_back("passed", double(passed_));
    out.emplace_back("denied", double(denied_));
    out.emplace_back("hits.default", double(defaultHits_));
    for (size_t k = 0; k < hits_.size(); k++) out.emplace_back("hits." + std::to_string(k + 1), double(hits_[k]));
  }

 private:
  std::vector<FilterRule> rules_;
  std::vector<uint64_t> hits_;
  bool defaultAllow_;
  bool needL3_ = false;
  uint64_t defaultHits_ = 0, passed_ = 0, denied_ = 0;
};

std::unique_ptr<Stage> makeFilter(const StageConfig &cfg, bool, std::string *err) {
  std::vector<FilterRule> rules;
  bool defaultAllow = true;
  for (const auto &[k, v] : cfg) {
    if (k == "rules") {
      std::string why;
      if (!parseFilterRules(v, &rules, &why)) {
        *err = "filter: " + why;
        return nullptr;
      }
    } else if (k == "default") {
      if (v != "allow" && v != "deny") {
        *err = "filter: default: \"" + v.substr(0, 40) + "\" is not allow or deny";
        return nullptr;
      }
      defaultAllow = v == "allow";
    } else {
      *err = "filter: unknown setting \"" + k.substr(0, 40) + "\" (known: rules, default)";
      return nullptr;
    }
  }
  return std::make_unique<FilterStage>(std::move(rules), defaultAllow);
}

const bool registered = registerStageKind(FilterStage::NAME, &makeFilter);

}  // namespace
}  // namespace vde
