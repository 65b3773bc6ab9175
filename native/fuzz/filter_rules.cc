// Fuzz target: the filter stage's rule parser and frame-field extraction (native/src/filter_rules.h).
// Rule text comes from consoles and rc files; frames come from any client.
//
// Input: byte 0 chooses the part. Even: the rest is rule text for parseFilterRules. Odd: byte 1
// is an 802.1Q form (mod 3), bytes 2..5 the tag to insert, the rest a frame (in a buffer of
// exactly its size, so ASan catches any read past it) for frameFields and filterMatch.
// Invariants:
//   parser: no crash; at most MAX_FILTER_RULES rules; only known term bits; prefix lengths within
//     the family; host bits beyond a prefix clear; MAC values inside their masks; port ranges
//     ordered; a parse of the same text gives the same result; a failure leaves an error text
//     that starts with "rule N: " or names the limit.
//   fields: every pointer lies inside the frame; the ethertype, the VID and, for IPv4, the
//     protocol and ports agree with a reference reading written here from the header layouts;
//     a rule built from the frame's own fields matches it, and the same rule with one term
//     changed (another source port, another protocol, another prefix) does not.
#include <cstring>
#include <string>
#include <vector>

#include "../src/filter_rules.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

bool samePrefix(const IpPrefix &a, const IpPrefix &b) { return a.family == b.family && a.len == b.len && memcmp(a.addr, b.addr, sizeof a.addr) == 0; }

/** Field by field (the structs' padding is not compared). */
bool sameRule(const FilterRule &a, const FilterRule &b) {
  return a.allow == b.allow && a.terms == b.terms && memcmp(a.smac, b.smac, 6) == 0 && memcmp(a.smacMask, b.smacMask, 6) == 0 &&
         memcmp(a.dmac, b.dmac, 6) == 0 && memcmp(a.dmacMask, b.dmacMask, 6) == 0 && a.ethertype == b.ethertype && a.vlan == b.vlan &&
         samePrefix(a.src, b.src) && samePrefix(a.dst, b.dst) && a.proto == b.proto && a.sportLo == b.sportLo && a.sportHi == b.sportHi &&
         a.dportLo == b.dportLo && a.dportHi == b.dportHi;
}

void fuzzParser(const uint8_t *d, size_t n) {
  std::string text(reinterpret_cast<const char *>(d), n);
  std::vector<FilterRule> rules;
  std::string err;
  bool ok = parseFilterRules(text, &rules, &err);
  if (!ok) {
    FUZZ_CHECK(!err.empty() && rules.size() <= MAX_FILTER_RULES, "failure without a message");
    FUZZ_CHECK(err.rfind("rule ", 0) == 0 || err.find("max") != std::string::npos, "error text: %s", err.c_str());
    return;
  }
  FUZZ_CHECK(rules.size() <= MAX_FILTER_RULES, "%zu rules", rules.size());
  for (const FilterRule &r : rules) {
    FUZZ_CHECK((r.terms & ~uint16_t(0x1ff)) == 0, "unknown term bits %x", r.terms);
    for (const IpPrefix *p : {&r.src, &r.dst}) {
      if (p->family == 0) continue;
      int bits = p->family == 4 ? 32 : 128;
      FUZZ_CHECK(p->family == 4 || p->family == 6, "family %d", p->family);
      FUZZ_CHECK(p->len <= bits, "prefix length %d", p->len);
      for (int b = p->len; b < bits; b++) FUZZ_CHECK(!(p->addr[b / 8] & (0x80 >> (b % 8))), "host bit %d set", b);
    }
    for (int k = 0; k < 6; k++) {
      FUZZ_CHECK((r.smac[k] & ~r.smacMask[k]) == 0 && (r.dmac[k] & ~r.dmacMask[k]) == 0, "MAC outside its mask");
    }
    FUZZ_CHECK(r.sportLo <= r.sportHi && r.dportLo <= r.dportHi, "port range out of order");
    if (r.terms & FT_VLAN) FUZZ_CHECK(r.vlan >= -1 && r.vlan <= 4095, "vlan %d", r.vlan);
  }
  std::vector<FilterRule> again;
  std::string err2;
  FUZZ_CHECK(parseFilterRules(text, &again, &err2) && again.size() == rules.size(), "a second parse differs");
  for (size_t i = 0; i < rules.size(); i++) FUZZ_CHECK(sameRule(again[i], rules[i]), "rule %zu differs on a second parse", i);
}

bool inside(const uint8_t *p, size_t len, const uint8_t *f, size_t n) { return p >= f && p + len <= f + n; }

void fuzzFields(const uint8_t *d, size_t n) {
  fuzz::Cursor c(d, n);
  uint8_t form = uint8_t(c.u8() % 3);
  uint8_t tag[4] = {0x81, 0x00, c.u8(), c.u8()};
  c.u8();
  c.u8();
  std::vector<uint8_t> buf(c.rest(), c.rest() + c.left());
  const uint8_t *f = buf.data();
  size_t len = buf.size();
  FrameFields ff = frameFields(f, uint32_t(len), form, tag, true);
  if (len < 14) {
    FUZZ_CHECK(!ff.dmac, "fields of a frame shorter than an Ethernet header");
    return;
  }
  if (!ff.dmac) return;  // a tag cut short
  // reference: ethertype after up to two tags
  size_t off = 12;
  uint16_t type = fuzz::rdBe16(f + off);
  bool tagged = type == 0x8100 || type == 0x88a8;
  uint16_t vid = tagged && len >= 16 ? uint16_t(fuzz::rdBe16(f + 14) & 0xfff) : 0;
  for (int k = 0; k < 2 && (type == 0x8100 || type == 0x88a8); k++) {
    off += 4;
    type = off + 2 <= len ? fuzz::rdBe16(f + off) : 0;
  }
  off += 2;
  FUZZ_CHECK(ff.ethertype == type, "ethertype %04x, reference %04x", ff.ethertype, type);
  if (form == FORM_TAG_INSERT) FUZZ_CHECK(ff.tagged && ff.vid == ((tag[2] << 8 | tag[3]) & 0xfff), "inserted tag not seen");
  else if (form == FORM_TAG_STRIP) FUZZ_CHECK(!ff.tagged, "stripped tag still seen");
  else FUZZ_CHECK(ff.tagged == tagged && (!tagged || ff.vid == vid), "vlan %d/%d, reference %d/%d", ff.tagged, ff.vid, tagged, vid);
  if (ff.srcIp) FUZZ_CHECK(inside(ff.srcIp, ff.ipFamily == 4 ? 4 : 16, f, len), "source address outside the frame");
  if (ff.dstIp) FUZZ_CHECK(inside(ff.dstIp, ff.ipFamily == 4 ? 4 : 16, f, len), "destination address outside the frame");
  if (type == 0x0800 && ff.ipFamily == 4) {
    size_t ihl = size_t(f[off] & 0xf) * 4;
    FUZZ_CHECK(ff.proto == f[off + 9], "IPv4 protocol");
    bool later = (fuzz::rdBe16(f + off + 6) & 0x1fff) != 0;
    bool portProto = f[off + 9] == 6 || f[off + 9] == 17 || f[off + 9] == 132 || f[off + 9] == 136;
    bool want = !later && portProto && off + ihl + 4 <= len;
    FUZZ_CHECK(ff.hasPorts == want, "IPv4 ports present %d, reference %d", ff.hasPorts, want);
    if (want) FUZZ_CHECK(ff.sport == fuzz::rdBe16(f + off + ihl) && ff.dport == fuzz::rdBe16(f + off + ihl + 2), "IPv4 ports");
  }
  // a rule made of the frame's own fields matches; changing one term breaks the match
  FilterRule r;
  r.allow = true;
  r.terms = FT_SMAC | FT_DMAC | FT_TYPE | FT_VLAN;
  memcpy(r.smac, ff.smac, 6);
  memcpy(r.dmac, ff.dmac, 6);
  memset(r.smacMask, 0xff, 6);
  memset(r.dmacMask, 0xff, 6);
  r.ethertype = ff.ethertype;
  r.vlan = ff.tagged ? ff.vid : -1;
  if (ff.ipFamily) {
    r.terms |= FT_SRC | FT_DST;
    r.src.family = r.dst.family = ff.ipFamily;
    r.src.len = r.dst.len = ff.ipFamily == 4 ? 32 : 128;
    memcpy(r.src.addr, ff.srcIp, ff.ipFamily == 4 ? 4 : 16);
    memcpy(r.dst.addr, ff.dstIp, ff.ipFamily == 4 ? 4 : 16);
  }
  if (ff.hasProto) {
    r.terms |= FT_PROTO;
    r.proto = ff.proto;
  }
  if (ff.hasPorts) {
    r.terms |= FT_SPORT | FT_DPORT;
    r.sportLo = r.sportHi = ff.sport;
    r.dportLo = r.dportHi = ff.dport;
  }
  FUZZ_CHECK(filterMatch(r, ff), "a rule of the frame's own fields does not match it");
  FilterRule x = r;
  x.smac[5] ^= 1;
  FUZZ_CHECK(!filterMatch(x, ff), "another source MAC matches");
  if (ff.hasPorts) {
    x = r;
    x.sportLo = x.sportHi = uint16_t(ff.sport + 1);
    FUZZ_CHECK(!filterMatch(x, ff), "another source port matches");
  }
  if (ff.hasProto) {
    x = r;
    x.proto = uint8_t(ff.proto + 1);
    FUZZ_CHECK(!filterMatch(x, ff), "another protocol matches");
  }
  if (ff.ipFamily) {
    x = r;
    x.dst.addr[0] ^= 0x80;
    FUZZ_CHECK(!filterMatch(x, ff), "another destination matches");
    x.dst.len = 0;  // ::/0 or 0.0.0.0/0 matches every address of the family
    memset(x.dst.addr, 0, 16);
    FUZZ_CHECK(filterMatch(x, ff), "a /0 prefix does not match");
  }
}

}  // namespace

/** libFuzzer entry point: see the file comment for the layout. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) fuzzFields(data + 1, size - 1);
  else fuzzParser(data + 1, size - 1);
  return 0;
}
