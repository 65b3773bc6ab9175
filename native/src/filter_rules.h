// Frame filter rules: the text syntax, its parser, the header fields a rule looks at and the
// matcher. Pure functions on bytes and text, no engine state: the filter stage
// (stage_filter.cc) uses them per frame, and native/fuzz/filter_rules.cc fuzzes both the parser
// (rule text from consoles and rc files) and the field extraction (frames from clients).
//
// A rule list is rules separated by ';' or newlines; a rule is an action and match terms, all of
// which must hold ("allow proto tcp dport 22"):
//
//   allow | deny
//   smac MAC[/MASK]     dmac MAC[/MASK]      source / destination MAC (MASK in MAC form)
//   type ETHERTYPE      0xHHHH or ipv4, ipv6, arp, rarp, lldp, pppoe, ... (inside VLAN tags)
//   vlan VID|none       the frame's 802.1Q VID as it crosses the port; none = untagged
//   src PREFIX          dst PREFIX           IPv4 (a.b.c.d[/len]) or IPv6 (x::y[/len]) addresses
//   proto P             tcp, udp, icmp, icmp6, sctp, gre, esp, ah, udplite or 0..255
//   sport P[-Q]         dport P[-Q]          L4 port or range (TCP, UDP, SCTP, UDP-Lite)
//
// An IP term matches only IP frames of its family; proto, sport and dport match only IPv4/IPv6
// frames (sport/dport only the first fragment of a protocol with ports). The frame is read
// through Packet (bounds-checked): a header cut short simply does not match what it lacks, and
// a frame whose 802.1Q tag is cut short matches no rule at all (the default action decides).
#pragma once

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "batch.h"

namespace vde {

/** Most rules one filter holds. */
constexpr size_t MAX_FILTER_RULES = 256;
/** Longest rule-list text accepted, in bytes. */
constexpr size_t MAX_FILTER_TEXT_BYTES = 65536;
/** IPv6 extension headers skipped while looking for the upper-layer protocol. */
constexpr int MAX_IPV6_EXT_HEADERS = 8;

constexpr uint16_t ETHERTYPE_IPV4 = 0x0800;
constexpr uint16_t ETHERTYPE_IPV6 = 0x86dd;
constexpr uint16_t ETHERTYPE_8021Q = 0x8100;
constexpr uint16_t ETHERTYPE_8021AD = 0x88a8;

/** Match-term bits of FilterRule::terms. */
enum : uint16_t {
  FT_SMAC = 1 << 0, FT_DMAC = 1 << 1, FT_TYPE = 1 << 2, FT_VLAN = 1 << 3, FT_SRC = 1 << 4,
  FT_DST = 1 << 5, FT_PROTO = 1 << 6, FT_SPORT = 1 << 7, FT_DPORT = 1 << 8,
};
/** Terms that need the IP header. */
constexpr uint16_t FT_L3 = FT_SRC | FT_DST | FT_PROTO | FT_SPORT | FT_DPORT;

/** An address prefix of one family. */
struct IpPrefix {
  uint8_t family = 0;  // 4 or 6
  uint8_t len = 0;     // prefix length in bits
  uint8_t addr[16] = {};
};

/** One parsed rule. */
struct FilterRule {
  bool allow = true;
  uint16_t terms = 0;  // FT_* bits present
  uint8_t smac[6] = {}, smacMask[6] = {}, dmac[6] = {}, dmacMask[6] = {};
  uint16_t ethertype = 0;
  int32_t vlan = 0;  // -1 = untagged
  IpPrefix src, dst;
  uint8_t proto = 0;
  uint16_t sportLo = 0, sportHi = 0, dportLo = 0, dportHi = 0;
};

/** The fields of one frame that rules look at (as it crosses the port). */
struct FrameFields {
  const uint8_t *dmac = nullptr, *smac = nullptr;
  bool tagged = false;   // an 802.1Q/802.1ad tag on the wire at this port
  uint16_t vid = 0;      // its VID
  uint16_t ethertype = 0;  // after the tags
  uint8_t ipFamily = 0;  // 4, 6 or 0 (not IP / header cut short)
  const uint8_t *srcIp = nullptr, *dstIp = nullptr;
  bool hasProto = false;
  uint8_t proto = 0;
  bool hasPorts = false;
  uint16_t sport = 0, dport = 0;
};

namespace filter_detail {

inline bool isPortProto(uint8_t p) { return p == 6 || p == 17 || p == 132 || p == 136; }

inline int hexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses a whole number in [lo, hi] (decimal, or hex with 0x when hexOk).
inline bool number(const std::string &s, uint32_t lo, uint32_t hi, bool hexOk, uint32_t *out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  size_t i = 0;
  int base = 10;
  if (hexOk && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    i = 2;
  }
  for (; i < s.size(); i++) {
    int d = base == 16 ? hexVal(s[i]) : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
    if (d < 0) return false;
    v = v * uint64_t(base) + uint64_t(d);
  }
  if (v < lo || v > hi) return false;
  *out = uint32_t(v);
  return true;
}

// Parses aa:bb:cc:dd:ee:ff (also with '-' separators), 1 or 2 hex digits per byte.
inline bool mac(const std::string &s, uint8_t *out) {
  size_t i = 0;
  for (int b = 0; b < 6; b++) {
    int v = 0, digits = 0;
    while (i < s.size() && hexVal(s[i]) >= 0 && digits < 2) {
      v = v * 16 + hexVal(s[i++]);
      digits++;
    }
    if (!digits) return false;
    out[b] = uint8_t(v);
    if (b < 5) {
      if (i >= s.size() || (s[i] != ':' && s[i] != '-')) return false;
      i++;
    }
  }
  return i == s.size();
}

// Parses a dotted IPv4 address (four decimal parts of 1-3 digits, each 0..255).
inline bool ipv4(const std::string &s, uint8_t *out) {
  size_t i = 0;
  for (int b = 0; b < 4; b++) {
    uint32_t v = 0;
    int digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && digits < 3) {
      v = v * 10 + uint32_t(s[i++] - '0');
      digits++;
    }
    if (!digits || v > 255) return false;
    out[b] = uint8_t(v);
    if (b < 3) {
      if (i >= s.size() || s[i] != '.') return false;
      i++;
    }
  }
  return i == s.size();
}

// Parses an IPv6 address (RFC 4291 text forms, with one "::" and an optional dotted IPv4 tail).
inline bool ipv6(const std::string &s, uint8_t *out) {
  uint16_t head[8], tail[8];
  int nh = 0, nt = 0;
  bool gap = false;
  size_t i = 0;
  if (s.size() < 2) return false;
  if (s[0] == ':') {
    if (s[1] != ':') return false;
    gap = true;
    i = 2;
  }
  while (i < s.size()) {
    // a dotted IPv4 tail takes the last 32 bits
    size_t end = s.find(':', i);
    std::string part = s.substr(i, end == std::string::npos ? std::string::npos : end - i);
    if (end == std::string::npos && part.find('.') != std::string::npos) {
      uint8_t v4[4];
      if (!ipv4(part, v4)) return false;
      uint16_t *arr = gap ? tail : head;
      int &n = gap ? nt : nh;
      if (n > 6) return false;
      arr[n++] = uint16_t(v4[0] << 8 | v4[1]);
      arr[n++] = uint16_t(v4[2] << 8 | v4[3]);
      i = s.size();
      break;
    }
    if (part.empty() || part.size() > 4) return false;
    uint32_t v = 0;
    for (char c : part) {
      int d = hexVal(c);
      if (d < 0) return false;
      v = v * 16 + uint32_t(d);
    }
    uint16_t *arr = gap ? tail : head;
    int &n = gap ? nt : nh;
    if (n >= 8) return false;
    arr[n++] = uint16_t(v);
    if (end == std::string::npos) {
      i = s.size();
      break;
    }
    i = end + 1;
    if (i < s.size() && s[i] == ':') {
      if (gap) return false;
      gap = true;
      i++;
    } else if (i == s.size()) {
      return false;  // a trailing single ':'
    }
  }
  if (gap ? nh + nt > 7 : nh != 8) return false;
  uint16_t w[8] = {};
  for (int k = 0; k < nh; k++) w[k] = head[k];
  for (int k = 0; k < nt; k++) w[8 - nt + k] = tail[k];
  for (int k = 0; k < 8; k++) {
    out[2 * k] = uint8_t(w[k] >> 8);
    out[2 * k + 1] = uint8_t(w[k]);
  }
  return true;
}

// Parses ADDR[/LEN] of either family.
inline bool prefix(const std::string &s, IpPrefix *p) {
  size_t slash = s.find('/');
  std::string a = s.substr(0, slash);
  *p = IpPrefix{};
  if (a.find(':') != std::string::npos) {
    if (!ipv6(a, p->addr)) return false;
    p->family = 6;
    p->len = 128;
  } else {
    if (!ipv4(a, p->addr)) return false;
    p->family = 4;
    p->len = 32;
  }
  if (slash != std::string::npos) {
    uint32_t len;
    if (!number(s.substr(slash + 1), 0, p->family == 4 ? 32 : 128, false, &len)) return false;
    p->len = uint8_t(len);
  }
  // host bits beyond the prefix are ignored (cleared), as `ip route` does with a warning
  for (int bit = p->len; bit < (p->family == 4 ? 32 : 128); bit++) p->addr[bit / 8] &= uint8_t(~(0x80 >> (bit % 8)));
  return true;
}

struct Named {
  const char *name;
  uint32_t value;
};

constexpr Named ETHERTYPES[] = {{"ipv4", 0x0800}, {"ip", 0x0800}, {"arp", 0x0806}, {"rarp", 0x8035}, {"ipv6", 0x86dd},
                                {"lldp", 0x88cc}, {"pppoe", 0x8864}, {"pppoe-disc", 0x8863}, {"mpls", 0x8847},
                                {"eapol", 0x888e}, {"ptp", 0x88f7}};
constexpr Named PROTOS[] = {{"icmp", 1}, {"igmp", 2}, {"tcp", 6}, {"udp", 17}, {"gre", 47}, {"esp", 50}, {"ah", 51},
                            {"icmp6", 58}, {"icmpv6", 58}, {"ipv6-icmp", 58}, {"ospf", 89}, {"sctp", 132}, {"udplite", 136}};

inline bool named(const std::string &s, const Named *table, size_t n, uint32_t *out) {
  for (size_t i = 0; i < n; i++)
    if (s == table[i].name) {
      *out = table[i].value;
      return true;
    }
  return false;
}

// Parses P or P-Q (0..65535, P <= Q).
inline bool portRange(const std::string &s, uint16_t *lo, uint16_t *hi) {
  size_t dash = s.find('-');
  uint32_t a, b;
  if (dash == std::string::npos) {
    if (!number(s, 0, 65535, false, &a)) return false;
    *lo = *hi = uint16_t(a);
    return true;
  }
  if (!number(s.substr(0, dash), 0, 65535, false, &a) || !number(s.substr(dash + 1), 0, 65535, false, &b) || a > b) return false;
  *lo = uint16_t(a);
  *hi = uint16_t(b);
  return true;
}

// Splits text into rules (';' or newline) and words (spaces, tabs).
inline std::vector<std::vector<std::string>> split(const std::string &text) {
  std::vector<std::vector<std::string>> rules;
  std::vector<std::string> cur;
  std::string word;
  auto endWord = [&] {
    if (!word.empty()) cur.push_back(word);
    word.clear();
  };
  auto endRule = [&] {
    endWord();
    if (!cur.empty()) rules.push_back(cur);
    cur.clear();
  };
  for (char c : text) {
    if (c == ';' || c == '\n' || c == '\r') endRule();
    else if (c == ' ' || c == '\t') endWord();
    else word += c;
  }
  endRule();
  return rules;
}

// Printable form of a user's word for messages (control bytes as \xHH, cut at 40 bytes).
inline std::string shown(const std::string &s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 40; i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  if (s.size() > 40) out += "...";
  return out + "\"";
}

}  // namespace filter_detail

/**
 * Parses a rule list (see the file comment) into rules; on failure returns false with *err
 * naming the rule (1-based), the term and the bad value.
 */
inline bool parseFilterRules(const std::string &text, std::vector<FilterRule> *out, std::string *err) {
  using namespace filter_detail;
  out->clear();
  if (text.size() > MAX_FILTER_TEXT_BYTES) {
    *err = "the rules are " + std::to_string(text.size()) + " bytes long (max " + std::to_string(MAX_FILTER_TEXT_BYTES) + ")";
    return false;
  }
  std::vector<std::vector<std::string>> rules = split(text);
  if (rules.size() > MAX_FILTER_RULES) {
    *err = std::to_string(rules.size()) + " rules (max " + std::to_string(MAX_FILTER_RULES) + ")";
    return false;
  }
  for (size_t r = 0; r < rules.size(); r++) {
    const std::vector<std::string> &w = rules[r];
    std::string where = "rule " + std::to_string(r + 1) + ": ";
    FilterRule rule;
    if (w[0] == "allow" || w[0] == "accept" || w[0] == "pass") rule.allow = true;
    else if (w[0] == "deny" || w[0] == "drop") rule.allow = false;
    else {
      *err = where + "starts with " + shown(w[0]) + ", not allow or deny";
      return false;
    }
    for (size_t i = 1; i < w.size(); i += 2) {
      const std::string &key = w[i];
      if (i + 1 >= w.size()) {
        *err = where + shown(key) + " needs a value";
        return false;
      }
      const std::string &v = w[i + 1];
      uint16_t bit = 0;
      bool ok = true;
      const char *form = "";
      uint32_t n = 0;
      if (key == "smac" || key == "dmac") {
        bit = key == "smac" ? FT_SMAC : FT_DMAC;
        uint8_t *m = bit == FT_SMAC ? rule.smac : rule.dmac;
        uint8_t *mask = bit == FT_SMAC ? rule.smacMask : rule.dmacMask;
        size_t slash = v.find('/');
        memset(mask, 0xff, 6);
        ok = mac(v.substr(0, slash), m) && (slash == std::string::npos || mac(v.substr(slash + 1), mask));
        for (int k = 0; k < 6; k++) m[k] &= mask[k];
        form = "a MAC address (aa:bb:cc:dd:ee:ff) with an optional /MASK in the same form";
      } else if (key == "type") {
        bit = FT_TYPE;
        ok = named(v, ETHERTYPES, sizeof ETHERTYPES / sizeof ETHERTYPES[0], &n) || number(v, 0x600, 0xffff, true, &n);
        rule.ethertype = uint16_t(n);
        form = "an ethertype (0x0600..0xffff, or ipv4, ipv6, arp, rarp, lldp, pppoe, pppoe-disc, mpls, eapol, ptp)";
      } else if (key == "vlan") {
        bit = FT_VLAN;
        if (v == "none" || v == "untagged") rule.vlan = -1;
        else if ((ok = number(v, 0, 4095, false, &n))) rule.vlan = int32_t(n);
        form = "a VLAN id 0..4095 or none";
      } else if (key == "src" || key == "dst") {
        bit = key == "src" ? FT_SRC : FT_DST;
        ok = prefix(v, bit == FT_SRC ? &rule.src : &rule.dst);
        form = "an IPv4 or IPv6 address with an optional /prefix length";
      } else if (key == "proto") {
        bit = FT_PROTO;
        ok = named(v, PROTOS, sizeof PROTOS / sizeof PROTOS[0], &n) || number(v, 0, 255, false, &n);
        rule.proto = uint8_t(n);
        form = "an IP protocol (tcp, udp, icmp, icmp6, sctp, gre, esp, ah, udplite, igmp, ospf or 0..255)";
      } else if (key == "sport" || key == "dport") {
        bit = key == "sport" ? FT_SPORT : FT_DPORT;
        ok = bit == FT_SPORT ? portRange(v, &rule.sportLo, &rule.sportHi) : portRange(v, &rule.dportLo, &rule.dportHi);
        form = "a port 0..65535 or a range P-Q";
      } else {
        *err = where + "unknown term " + shown(key) + " (known: smac, dmac, type, vlan, src, dst, proto, sport, dport)";
        return false;
      }
      if (rule.terms & bit) {
        *err = where + key + " is given twice";
        return false;
      }
      if (!ok) {
        *err = where + key + ": " + shown(v) + " is not " + form;
        return false;
      }
      rule.terms |= bit;
    }
    if ((rule.terms & FT_SRC) && (rule.terms & FT_DST) && rule.src.family != rule.dst.family) {
      *err = where + "src and dst are of different address families";
      return false;
    }
    uint8_t fam = (rule.terms & FT_SRC) ? rule.src.family : (rule.terms & FT_DST) ? rule.dst.family : 0;
    if ((rule.terms & FT_TYPE) && fam && rule.ethertype != (fam == 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6)) {
      *err = where + "type does not match the family of the addresses";
      return false;
    }
    if ((rule.terms & (FT_SPORT | FT_DPORT)) && (rule.terms & FT_PROTO) && !isPortProto(rule.proto)) {
      *err = where + "sport/dport need a protocol with ports (tcp, udp, sctp, udplite)";
      return false;
    }
    out->push_back(rule);
  }
  return true;
}

/**
 * Reads the fields rules look at from a frame of len bytes at data (as received), given how it
 * crosses the port: form/tag as in OutFrame (FORM_TAG_INSERT puts tag on the wire, FORM_TAG_STRIP
 * removes the frame's own). needL3: also read the IP and L4 headers.
 */
inline FrameFields frameFields(const uint8_t *data, uint32_t len, uint8_t form, const uint8_t *tag, bool needL3) {
  FrameFields ff;
  Packet pk(data, len);
  if (!pk.has(0, ETH_HEADER_BYTES)) return ff;
  ff.dmac = pk.dst();
  ff.smac = pk.src();
  uint32_t off = 2 * ETH_ADDR_BYTES;
  uint16_t type = pk.be16(off);
  bool rawTagged = type == ETHERTYPE_8021Q || type == ETHERTYPE_8021AD;
  uint16_t rawVid = rawTagged ? uint16_t(pk.be16(off + 2) & 0xfff) : 0;
  // skip the outer tag and one more (802.1ad + 802.1Q): the ethertype is the payload's
  for (int k = 0; k < 2 && (type == ETHERTYPE_8021Q || type == ETHERTYPE_8021AD); k++) {
    off += VLAN_TAG_BYTES;
    type = pk.be16(off, 0);
  }
  off += 2;
  if (!pk.has(0, off)) return FrameFields{};  // a tag cut short: no rule matches, the default decides
  ff.ethertype = type;
  if (form == FORM_TAG_INSERT && tag) {
    ff.tagged = true;
    ff.vid = uint16_t((tag[2] << 8 | tag[3]) & 0xfff);
  } else if (form == FORM_TAG_STRIP) {
    ff.tagged = false;
  } else {
    ff.tagged = rawTagged;
    ff.vid = rawVid;
  }
  if (!needL3) return ff;
  uint32_t l4 = 0;
  if (type == ETHERTYPE_IPV4) {
    uint8_t vihl = pk.u8(off);
    uint32_t ihl = uint32_t(vihl & 0xf) * 4;
    if ((vihl >> 4) != 4 || ihl < 20 || !pk.has(off, ihl)) return ff;
    ff.ipFamily = 4;
    ff.srcIp = pk.ptr(off + 12, 4);
    ff.dstIp = pk.ptr(off + 16, 4);
    ff.hasProto = true;
    ff.proto = pk.u8(off + 9);
    if (pk.be16(off + 6) & 0x1fff) return ff;  // a later fragment: no L4 header
    l4 = off + ihl;
  } else if (type == ETHERTYPE_IPV6) {
    if ((pk.u8(off) >> 4) != 6 || !pk.has(off, 40)) return ff;
    ff.ipFamily = 6;
    ff.srcIp = pk.ptr(off + 8, 16);
    ff.dstIp = pk.ptr(off + 24, 16);
    uint8_t next = pk.u8(off + 6);
    uint32_t at = off + 40;
    for (int k = 0; k < MAX_IPV6_EXT_HEADERS; k++) {
      if (next == 0 || next == 43 || next == 60) {  // hop-by-hop, routing, destination options
        if (!pk.has(at, 8)) return ff;
        next = pk.u8(at);
        at += (uint32_t(pk.u8(at + 1)) + 1) * 8;
      } else if (next == 44) {  // fragment
        if (!pk.has(at, 8)) return ff;
        uint16_t fo = pk.be16(at + 2);
        next = pk.u8(at);
        at += 8;
        if (fo & 0xfff8) {  // a later fragment: the protocol is known, the ports are not
          ff.hasProto = true;
          ff.proto = next;
          return ff;
        }
      } else if (next == 51) {  // authentication header (length in 4-byte units, minus 2)
        if (!pk.has(at, 8)) return ff;
        next = pk.u8(at);
        at += (uint32_t(pk.u8(at + 1)) + 2) * 4;
      } else {
        break;
      }
    }
    if (next == 0 || next == 43 || next == 60 || next == 44 || next == 51) return ff;  // too many extension headers
    ff.hasProto = true;
    ff.proto = next;
    l4 = at;
  } else {
    return ff;
  }
  if (filter_detail::isPortProto(ff.proto) && pk.has(l4, 4)) {
    ff.hasPorts = true;
    ff.sport = pk.be16(l4);
    ff.dport = pk.be16(l4 + 2);
  }
  return ff;
}

namespace filter_detail {

inline bool macMatch(const uint8_t *m, const uint8_t *want, const uint8_t *mask) {
  for (int k = 0; k < 6; k++)
    if ((m[k] & mask[k]) != want[k]) return false;
  return true;
}

inline bool prefixMatch(uint8_t family, const uint8_t *addr, const IpPrefix &p) {
  if (family != p.family || !addr) return false;
  int full = p.len / 8, rest = p.len % 8;
  if (memcmp(addr, p.addr, size_t(full)) != 0) return false;
  return rest == 0 || (addr[full] & uint8_t(0xff << (8 - rest))) == p.addr[full];
}

}  // namespace filter_detail

/** True when every term of rule r holds for the frame's fields. */
inline bool filterMatch(const FilterRule &r, const FrameFields &f) {
  using namespace filter_detail;
  if (!f.dmac) return false;
  if ((r.terms & FT_SMAC) && !macMatch(f.smac, r.smac, r.smacMask)) return false;
  if ((r.terms & FT_DMAC) && !macMatch(f.dmac, r.dmac, r.dmacMask)) return false;
  if ((r.terms & FT_TYPE) && f.ethertype != r.ethertype) return false;
  if (r.terms & FT_VLAN) {
    if (r.vlan < 0 ? f.tagged : (!f.tagged || f.vid != uint16_t(r.vlan))) return false;
  }
  if (!(r.terms & FT_L3)) return true;
  if (!f.ipFamily) return false;
  if ((r.terms & FT_SRC) && !prefixMatch(f.ipFamily, f.srcIp, r.src)) return false;
  if ((r.terms & FT_DST) && !prefixMatch(f.ipFamily, f.dstIp, r.dst)) return false;
  if (r.terms & FT_PROTO) {
    if (!f.hasProto || f.proto != r.proto) return false;
  }
  if (r.terms & (FT_SPORT | FT_DPORT)) {
    if (!f.hasPorts) return false;
    if ((r.terms & FT_SPORT) && (f.sport < r.sportLo || f.sport > r.sportHi)) return false;
    if ((r.terms & FT_DPORT) && (f.dport < r.dportLo || f.dport > r.dportHi)) return false;
  }
  return true;
}

/** Index of the first rule that matches, or -1. */
inline int filterFirstMatch(const std::vector<FilterRule> &rules, const FrameFields &f) {
  for (size_t i = 0; i < rules.size(); i++)
    if (filterMatch(rules[i], f)) return int(i);
  return -1;
}

}  // namespace vde
