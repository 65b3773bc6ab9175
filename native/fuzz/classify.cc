// Fuzz target: the VLAN classification of a frame entering a switch port and the tag form it
// leaves another port with (native/src/classify.h, what the learning policy runs).
//
// classify.h's interface: classify(Packet, PortVlans, ForeignTags) -> Classified{ok, vlan,
// taggedIn}, and egressForm(taggedIn, vlan, outUntagged) -> FORM_ASIS / FORM_TAG_INSERT /
// FORM_TAG_STRIP; the two small adapters below give them the shape the checks use.
//
// Input: byte 0 bit 0 the foreign-tag mode (0 pass, 1 drop); bytes 1-2 the port's untagged
// VLAN and bytes 3-4 an output port's (big-endian, taken modulo 4096; 4095 = none); byte 5 a
// count k, then k big-endian trunk VLANs (taken into 1..4094, the range the console accepts);
// the rest is the frame (at least 14 bytes, as the engine guarantees). The verdict must equal
// the README's rules ("What is different from vde2", --foreign-tags):
//   - untagged frame (no 0x8100, or shorter than a tag): the port's untagged VLAN, else drop;
//   - tagged with VID v: if the port is a member of v (its untagged VLAN, which 4095 = none is
//     not, or a trunk VLAN), VLAN v as a tagged frame; otherwise, with foreign tags passed and
//     an untagged VLAN, that VLAN, tag kept as data; otherwise drop;
// and a frame leaving a member port keeps its form, gains a tag (untagged in, tagged out) or
// loses it (tagged in, untagged out): never Strip a frame classified untagged.
// fuzz-requires: ../src/classify.h
#include <bitset>
#include <cstdlib>
#include <cstring>

#include "../src/classify.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

/** A classification as the checks read it. */
struct VlanClass {
  bool drop;
  uint16_t vlan;
  bool tagged;
};
enum class TagForm : uint8_t { Keep = FORM_ASIS, Insert = FORM_TAG_INSERT, Strip = FORM_TAG_STRIP };

VlanClass classifyVlan(const uint8_t *f, uint32_t len, uint16_t untagged, const std::bitset<VLAN_COUNT> &tagged, ForeignTags mode) {
  Classified c = classify(Packet(f, len), PortVlans{untagged, &tagged}, mode);
  return VlanClass{!c.ok, c.vlan, c.taggedIn};
}
TagForm egressFormOf(uint16_t vlan, bool taggedIn, uint16_t outUntagged) { return TagForm(egressForm(taggedIn, vlan, outUntagged)); }

constexpr uint32_t ETH_BYTES = 14;
constexpr uint32_t TAGGED_ETH_BYTES = 18;
constexpr uint16_t VID_MASK = 0x0fff;
constexpr uint16_t MAX_CONSOLE_VLAN = 4094;

/** The verdict of the README's rules. */
VlanClass reference(const uint8_t *f, uint32_t len, uint16_t untagged, const std::bitset<VLAN_COUNT> &trunk, bool pass) {
  const bool hasTag = len >= TAGGED_ETH_BYTES && fuzz::rdBe16(f + 12) == 0x8100;
  if (!hasTag) return untagged == VLAN_NONE ? VlanClass{true, 0, false} : VlanClass{false, untagged, false};
  const uint16_t vid = fuzz::rdBe16(f + 14) & VID_MASK;
  const bool member = vid != VLAN_NONE && (vid == untagged || trunk.test(vid));
  if (member) return {false, vid, true};
  if (pass && untagged != VLAN_NONE) return {false, untagged, false};
  return {true, 0, false};
}

}  // namespace

/** libFuzzer entry point: mode, port VLANs, trunk set, frame. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Cursor in(data, size);
  const bool pass = !(in.u8() & 1);
  const uint16_t untagged = in.u16() & VID_MASK;
  const uint16_t outUntagged = in.u16() & VID_MASK;
  std::bitset<VLAN_COUNT> trunk;
  for (unsigned k = in.u8(); k > 0; k--) trunk.set(1 + in.u16() % MAX_CONSOLE_VLAN);
  if (in.left() < ETH_BYTES) return 0;
  const uint32_t len = uint32_t(in.left());
  uint8_t *f = static_cast<uint8_t *>(malloc(len));  // exactly the frame: reads past it are caught
  memcpy(f, in.rest(), len);

  const VlanClass got = classifyVlan(f, len, untagged, trunk, pass ? ForeignTags::Pass : ForeignTags::Drop);
  const VlanClass want = reference(f, len, untagged, trunk, pass);
  FUZZ_CHECK(got.drop == want.drop, "drop %d, rules say %d (untagged %u, %u bytes)", got.drop, want.drop, untagged, len);
  if (!got.drop) {
    FUZZ_CHECK(got.vlan == want.vlan && got.tagged == want.tagged, "VLAN %u tagged %d, rules say VLAN %u tagged %d", got.vlan, got.tagged, want.vlan, want.tagged);
    FUZZ_CHECK(got.vlan != VLAN_NONE, "classified into the reserved VLAN 4095");
    // egress on a member port of got.vlan: its untagged VLAN, or a trunk member (any other value)
    const bool outTagged = outUntagged != got.vlan;
    const TagForm form = egressFormOf(got.vlan, got.tagged, outUntagged);
    const TagForm wantForm = got.tagged == outTagged ? TagForm::Keep : (got.tagged ? TagForm::Strip : TagForm::Insert);
    FUZZ_CHECK(form == wantForm, "form %d, expected %d (VLAN %u, tagged in %d, out untagged %u)", int(form), int(wantForm), got.vlan, got.tagged, outUntagged);
  }
  free(f);
  return 0;
}
