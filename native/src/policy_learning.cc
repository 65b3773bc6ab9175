// The learning policy: vde2's switch. A frame is classified into a VLAN (classify.h), spanning-tree
// frames go to the control plane, the port's spanning-tree state gates learning and forwarding,
// the source (MAC, VLAN) is learned (a per-port last-source cache skips the table when the same
// source repeats within a second), and the frame goes to the port its destination was learned
// on, or is flooded to the VLAN's forwarding members. Tags are inserted or stripped per
// destination as an 802.1Q form, never by copying. A protected port's frames go only to ports
// that are not protected (the Linux bridge's "isolated", OVS's protected ports); a unicast frame
// from one protected port to another is dropped and counted as "filter".
#include <cstring>
#include <vector>

#include "engine.h"

namespace vde {
namespace {

const uint8_t BPDU_DST[ETH_ADDR_BYTES] = {0x01, 0x80, 0xc2, 0x00, 0x00, 0x00};

class LearningPolicy : public Policy {
 public:
  LearningPolicy(uint32_t maxEntries, int numPorts) : macs_(maxEntries, numPorts), flood_(VLAN_COUNT) {}

  void route(Engine &e, int inPort, int slot) override {
    Batch &b = e.batch();
    FrameMeta &m = b.meta[slot];
    const uint8_t *f = b.frame(slot);
    Packet pk(f, m.len);
    std::vector<Port> &ports = e.ports();
    Port &p = ports[inPort];
    PortCounters &c = e.pc(inPort);
    const LearnSettings &ls = e.learn();
    if (ls.stpCapture && memcmp(f, BPDU_DST, ETH_ADDR_BYTES) == 0) {
      e.pushBpdu(inPort, f, m.len);
      return;
    }
    Classified cl = classify(pk, p.vlans(), ls.foreign);
    if (!cl.ok) {
      c.drop(DROP_VLAN);
      return;
    }
    if (p.stp == StpState::Discarding) {
      c.drop(DROP_STP);
      return;
    }
    uint16_t vlan = cl.vlan;
    if (!(f[ETH_ADDR_BYTES] & 1)) {
      uint64_t key = macKey(f + ETH_ADDR_BYTES, vlan);
      uint32_t now = e.nowSeconds();
      if (key != p.lastSrcKey || p.lastSrcSeen != now) {
        macs_.learn(key, inPort, now, ls.minPersistSeconds);
        p.lastSrcKey = key;
        p.lastSrcSeen = now;
      }
    }
    if (p.stp != StpState::Forwarding) {
      c.drop(DROP_STP);
      return;
    }
    m.vlan = vlan;
    if (cl.taggedIn) {
      m.flags |= FM_TAGGED_IN;
    } else {
      m.tag[0] = 0x81;
      m.tag[1] = 0x00;
      m.tag[2] = uint8_t(vlan >> 8);
      m.tag[3] = uint8_t(vlan);
    }
    if (!(f[0] & 1)) {
      int out = macs_.lookup(macKey(f, vlan));
      if (out >= 0) {
        if (out == inPort || out >= int(ports.size()) || !forwards(ports[out])) return;
        if (p.isolated && ports[out].isolated) {
          c.drop(DROP_FILTER);  // protected to protected
          return;
        }
        e.emit(out, slot, egressForm(cl.taggedIn, vlan, ports[out].untagged));
        return;
      }
    }
    if (p.isolated) {
      for (int q : flood_[vlan])
        if (q != inPort && !ports[q].isolated) e.emit(q, slot, egressForm(cl.taggedIn, vlan, ports[q].untagged));
      return;
    }
    for (int q : flood_[vlan])
      if (q != inPort) e.emit(q, slot, egressForm(cl.taggedIn, vlan, ports[q].untagged));
  }

  void portsChanged(Engine &e) override {
    for (auto &v : flood_) v.clear();
    const auto &ports = e.ports();
    for (size_t p = 0; p < ports.size(); p++) {
      const Port &q = ports[p];
      if (!forwards(q)) continue;
      if (q.untagged != VLAN_NONE) flood_[q.untagged].push_back(int(p));
      if (q.tagged)
        for (int v = 0; v < VLAN_COUNT; v++)
          if (q.tagged->test(size_t(v)) && v != q.untagged) flood_[size_t(v)].push_back(int(p));
    }
  }

  void forgetPort(int port, int vlan) override { macs_.flush(port, vlan); }

  void portsResized(int n) override { macs_.setPorts(n); }

  void tick(Engine &e, uint32_t now) override {
    if (now < nextGc_) return;
    const LearnSettings &ls = e.learn();
    nextGc_ = now + ls.gcIntervalSeconds;
    if (macs_.age(now, ls.expireSeconds))
      for (Port &q : e.ports()) q.lastSrcKey = ~uint64_t(0);
  }

  MacTable *macTable() override { return &macs_; }

 private:
  static bool forwards(const Port &q) { return q.active() && q.stp == StpState::Forwarding; }

  MacTable macs_;
  std::vector<std::vector<int>> flood_;  // per VLAN: forwarding member ports
  uint32_t nextGc_ = 0;
};

}  // namespace

std::unique_ptr<Policy> makeLearningPolicy(uint32_t maxEntries, int numPorts) { return std::make_unique<LearningPolicy>(maxEntries, numPorts); }

}  // namespace vde
