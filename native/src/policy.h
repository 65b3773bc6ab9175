// The forwarding-policy interface: where each frame entering a port goes.
//
// Two implementations: the learning policy (VLAN classification, spanning-tree gating, MAC
// learning and lookup, flooding within the VLAN; policy_learning.cc) and the wire policy (every
// frame to every other active port: two ports make a cable, N ports a hub; policy_wire.cc). The
// engine calls route() once per frame after the port's ingress stages and before egress; the
// policy answers by calling Engine::emit(port, slot, form). Control-path hooks tell the policy
// when ports, VLANs or spanning-tree states changed so it can rebuild what it precomputes.
#pragma once

#include <cstdint>
#include <memory>

namespace vde {

class Engine;
class MacTable;

class Policy {
 public:
  virtual ~Policy() = default;
  /** Decides where frame `slot` of the current batch, received on inPort, goes. */
  virtual void route(Engine &e, int inPort, int slot) = 0;
  /** Ports, endpoints, VLAN membership or spanning-tree states changed (control path). */
  virtual void portsChanged(Engine &e) { (void)e; }
  /** A port lost its last endpoint, changed VLAN or stopped forwarding: forget what was learned there. */
  virtual void forgetPort(int port, int vlan) { (void)port; (void)vlan; }
  /** The number of ports changed (control path). */
  virtual void portsResized(int n) { (void)n; }
  /** Periodic work (aging), at most once per second. */
  virtual void tick(Engine &e, uint32_t nowSeconds) { (void)e; (void)nowSeconds; }
  /** The MAC table, for policies that learn (else null). */
  virtual MacTable *macTable() { return nullptr; }
};

/** Creates the learning policy with a MAC table of maxEntries entries. */
std::unique_ptr<Policy> makeLearningPolicy(uint32_t maxEntries, int numPorts);
/** Creates the wire/hub policy. */
std::unique_ptr<Policy> makeWirePolicy();

}  // namespace vde
