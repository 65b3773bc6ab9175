// The wire policy: every frame goes to every other active port. With two ports it is a cable
// (vde_plug, wirefilter); with N ports it is vde2's hub mode. Port 0 (the switch's management
// port) never receives hub traffic, as in vde2. Protected ports do not hear each other here
// either.
#include <vector>

#include "engine.h"

namespace vde {
namespace {

class WirePolicy : public Policy {
 public:
  void route(Engine &e, int inPort, int slot) override {
    if (e.ports()[inPort].isolated) {
      for (int q : flood_)
        if (q != inPort && !e.ports()[q].isolated) e.emit(q, slot, FORM_ASIS);
      return;
    }
    for (int q : flood_)
      if (q != inPort) e.emit(q, slot, FORM_ASIS);
  }
  void portsChanged(Engine &e) override {
    flood_.clear();
    const auto &ports = e.ports();
    for (size_t p = 1; p < ports.size(); p++)
      if (ports[p].active()) flood_.push_back(int(p));
  }

 private:
  std::vector<int> flood_;  // active ports except 0
};

}  // namespace

std::unique_ptr<Policy> makeWirePolicy() { return std::make_unique<WirePolicy>(); }

}  // namespace vde
