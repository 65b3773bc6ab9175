// Frame classification: which VLAN a frame entering a port belongs to (802.1Q rules of vde2
// plus the foreign-tag passthrough), as a pure function of the frame bytes and the port's VLAN
// settings. No state, no allocation, independent of the CPU's byte order: the fuzz target and
// the learning policy call the same code.
#pragma once

#include <bitset>
#include <cstdint>

#include "batch.h"

namespace vde {

/** How a port treats 802.1Q frames of a VLAN it is not a member of. */
enum class ForeignTags : uint8_t { Pass = 0, Drop = 1 };

/** The VLAN settings of a port. */
struct PortVlans {
  uint16_t untagged = 0;                        // VLAN_NONE: no untagged VLAN
  const std::bitset<VLAN_COUNT> *tagged = nullptr;  // null: no tagged VLANs
};

/** Result of classify(). */
struct Classified {
  bool ok = false;      // false: drop (counted as "vlan")
  uint16_t vlan = 0;    // the frame's VLAN
  bool taggedIn = false;  // carries an 802.1Q tag of that VLAN (strip it for untagged members)
};

/** True when the frame has an 802.1Q tag (TPID 0x8100) and is long enough to strip it. */
inline bool has8021qTag(Packet p) { return p.u8(12) == 0x81 && p.u8(13) == 0x00 && p.len() >= ETH_HEADER_BYTES + VLAN_TAG_BYTES; }

/** Classifies a frame entering a port. */
inline Classified classify(Packet p, const PortVlans &pv, ForeignTags foreign) {
  Classified c;
  if (has8021qTag(p)) {
    uint16_t vid = uint16_t(p.be16(14) & 0x0fff);
    // a port without an untagged VLAN (VLAN_NONE) is no member of VID 4095: never match it
    if ((pv.untagged != VLAN_NONE && vid == pv.untagged) || (pv.tagged && pv.tagged->test(vid))) {
      c.ok = true;
      c.vlan = vid;
      c.taggedIn = true;
    } else if (foreign == ForeignTags::Pass && pv.untagged != VLAN_NONE) {
      c.ok = true;  // carried through as an opaque untagged frame of the access VLAN
      c.vlan = pv.untagged;
    }
    return c;
  }
  if (pv.untagged == VLAN_NONE) return c;
  c.ok = true;
  c.vlan = pv.untagged;
  return c;
}

/** The 802.1Q edit a frame of VLAN `vlan` (tagged on arrival or not) needs to leave a port whose untagged VLAN is `outUntagged`. */
inline uint8_t egressForm(bool taggedIn, uint16_t vlan, uint16_t outUntagged) {
  bool outTagged = outUntagged != vlan;  // member ports are untagged in vlan or tagged members
  if (taggedIn == outTagged) return FORM_ASIS;
  return taggedIn ? FORM_TAG_STRIP : FORM_TAG_INSERT;
}

}  // namespace vde
