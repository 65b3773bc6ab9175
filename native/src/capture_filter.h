// The capture stage's frame filter: a small tcpdump-like expression over the Ethernet, 802.1Q,
// IPv4 and IPv6 headers of a frame, parsed once (control path, fuzzed: native/fuzz/capture_filter.cc)
// and matched per frame without allocating.
//
// Grammar (words are case-insensitive; `and`/`&&`, `or`/`||`, `not`/`!`, parentheses):
//   expr      := term { or term }
//   term      := factor { and factor }
//   factor    := not factor | ( expr ) | primitive
//   primitive := vlan [VID]                    a frame with an 802.1Q/802.1ad tag (of VID, outer or inner)
//              | ether proto ETHERTYPE          the outer ethertype or the one after the tags
//              | ether host|src|dst MAC | mac MAC
//              | ether broadcast | ether multicast | broadcast | multicast
//              | ip | ip6 | arp | rarp | lldp | mpls   (ethertypes, tagged or not)
//              | [ip | ip6] proto IPPROTO       IPv4 protocol / IPv6 next header (after extension headers)
//              | tcp | udp | icmp | icmp6 | igmp | gre | esp | sctp
// Numbers are decimal or 0x hex; MACs are six hex pairs separated by ':' or '-'. An empty
// filter matches every frame. Every header field is read through Packet (bounds-checked): a
// frame too short for a field simply does not match a primitive that needs it.
#pragma once

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "batch.h"

namespace vde {

/** Longest filter text, in bytes. */
constexpr size_t MAX_FILTER_TEXT_BYTES = 1024;
/** Most nodes (primitives and operators) of a parsed filter. */
constexpr size_t MAX_FILTER_NODES = 128;
/** Deepest nesting of parentheses and `not`. */
constexpr int MAX_FILTER_DEPTH = 32;
/** VLAN tags looked through (802.1ad outer + 802.1Q inner). */
constexpr int MAX_FILTER_TAGS = 2;
/** IPv6 extension headers skipped to find the upper-layer protocol. */
constexpr int MAX_IPV6_EXT_HEADERS = 4;

/** The header fields a filter reads, taken once per frame. */
struct FrameFields {
  uint64_t dst = 0, src = 0;   // MACs as 48-bit numbers
  uint16_t outerType = 0;      // ethertype at offset 12
  uint16_t type = 0;           // ethertype after the tags
  int tags = 0;
  uint16_t vids[MAX_FILTER_TAGS] = {0, 0};
  int ipFamily = 0;            // 4, 6, or 0 when not IP (or too short)
  int ipProto = -1;            // upper-layer protocol, -1 unknown
};

/** Reads the fields of a frame (never beyond its length). */
inline FrameFields frameFields(const Packet &p) {
  FrameFields f;
  auto mac48 = [&](uint32_t off) {
    uint64_t v = 0;
    for (uint32_t i = 0; i < ETH_ADDR_BYTES; i++) v = v << 8 | p.u8(off + i);
    return v;
  };
  if (!p.has(0, ETH_HEADER_BYTES)) return f;
  f.dst = mac48(0);
  f.src = mac48(ETH_ADDR_BYTES);
  uint32_t off = 2 * ETH_ADDR_BYTES;
  f.outerType = f.type = p.be16(off);
  while (f.tags < MAX_FILTER_TAGS && (f.type == 0x8100 || f.type == 0x88a8 || f.type == 0x9100) && p.has(off + 2, 4)) {
    f.vids[f.tags++] = p.be16(off + 2) & 0x0fff;
    off += VLAN_TAG_BYTES;
    f.type = p.be16(off);
  }
  uint32_t l3 = off + 2;
  if (f.type == 0x0800 && p.has(l3, 20) && (p.u8(l3) >> 4) == 4) {
    f.ipFamily = 4;
    f.ipProto = p.u8(l3 + 9);
  } else if (f.type == 0x86dd && p.has(l3, 40) && (p.u8(l3) >> 4) == 6) {
    f.ipFamily = 6;
    int nh = p.u8(l3 + 6);
    uint32_t h = l3 + 40;
    for (int k = 0; k < MAX_IPV6_EXT_HEADERS; k++) {
      if (nh == 0 || nh == 43 || nh == 60) {  // hop-by-hop, routing, destination options
        if (!p.has(h, 2)) {
          nh = -1;
          break;
        }
        uint32_t len = (uint32_t(p.u8(h + 1)) + 1) * 8;
        nh = p.u8(h);
        h += len;
      } else if (nh == 44) {  // fragment
        if (!p.has(h, 8)) {
          nh = -1;
          break;
        }
        nh = p.u8(h);
        h += 8;
      } else {
        break;
      }
    }
    f.ipProto = nh;
  }
  return f;
}

/** A parsed filter (see the file comment). */
class CaptureFilter {
 public:
  /** Parses text; false with *err saying what is wrong and where. An empty text matches everything. */
  bool parse(const std::string &text, std::string *err) {
    nodes_.clear();
    root_ = -1;
    if (text.size() > MAX_FILTER_TEXT_BYTES) return fail(err, "longer than " + std::to_string(MAX_FILTER_TEXT_BYTES) + " bytes");
    toks_.clear();
    if (!tokenize(text, err)) return false;
    pos_ = 0;
    if (toks_.empty()) return true;
    int r = expr(0, err);
    if (r < 0) {
      nodes_.clear();
      return false;
    }
    if (pos_ < toks_.size()) {
      nodes_.clear();
      return fail(err, "unexpected \"" + toks_[pos_] + "\"");
    }
    root_ = r;
    toks_.clear();
    return true;
  }

  /** True when the filter matches every frame. */
  bool empty() const { return root_ < 0; }

  /** Whether a frame passes. */
  bool match(const Packet &p) const { return root_ < 0 || eval(root_, frameFields(p)); }

  /** Whether a frame with these fields passes. */
  bool matchFields(const FrameFields &f) const { return root_ < 0 || eval(root_, f); }

  /**
   * A canonical text of the filter that parses to the same filter: parentheses only where
   * precedence or grouping needs them, so it never nests deeper than the text it came from.
   */
  std::string canonical() const { return root_ < 0 ? std::string() : print(root_, 0, false); }

  /** Number of nodes (tests). */
  size_t size() const { return nodes_.size(); }

 private:
  enum Op : uint8_t { And, Or, Not, Tagged, Vid, EtherType, Host, Src, Dst, Broadcast, Multicast, Proto };
  struct Node {
    Op op;
    int a, b;     // children (And, Or: both; Not: a)
    uint64_t v;   // value: VID, ethertype, MAC, protocol | family << 8
  };

  std::vector<Node> nodes_;
  int root_ = -1;
  std::vector<std::string> toks_;
  size_t pos_ = 0;

  static bool fail(std::string *err, const std::string &m) {
    if (err) *err = "filter: " + m;
    return false;
  }

  bool tokenize(const std::string &t, std::string *err) {
    size_t i = 0;
    while (i < t.size()) {
      unsigned char c = static_cast<unsigned char>(t[i]);
      if (isspace(c)) {
        i++;
      } else if (c == '(' || c == ')' || c == '!') {
        toks_.emplace_back(1, char(c));
        i++;
      } else if ((c == '&' || c == '|') && i + 1 < t.size() && t[i + 1] == t[i]) {
        toks_.push_back(c == '&' ? "and" : "or");
        i += 2;
      } else if (isalnum(c) || c == ':' || c == '-' || c == '.' || c == '_') {
        size_t j = i;
        std::string w;
        while (j < t.size()) {
          unsigned char d = static_cast<unsigned char>(t[j]);
          if (!(isalnum(d) || d == ':' || d == '-' || d == '.' || d == '_')) break;
          w.push_back(char(tolower(d)));
          j++;
        }
        toks_.push_back(w);
        i = j;
      } else {
        return fail(err, std::string("unexpected character '") + (isprint(c) ? std::string(1, char(c)) : "\\x" + hex2(c)) + "'");
      }
      if (toks_.size() > MAX_FILTER_NODES * 3) return fail(err, "too many words");
    }
    return true;
  }

  static std::string hex2(unsigned c) {
    const char *d = "0123456789abcdef";
    return std::string{d[(c >> 4) & 15], d[c & 15]};
  }

  bool at(const char *w) const { return pos_ < toks_.size() && toks_[pos_] == w; }
  std::string cur() const { return pos_ < toks_.size() ? "\"" + toks_[pos_] + "\"" : "the end"; }

  int add(Op op, int a, int b, uint64_t v, std::string *err) {
    if (nodes_.size() >= MAX_FILTER_NODES) {
      fail(err, "too complex (more than " + std::to_string(MAX_FILTER_NODES) + " terms)");
      return -1;
    }
    nodes_.push_back(Node{op, a, b, v});
    return int(nodes_.size() - 1);
  }

  int expr(int depth, std::string *err) {
    int l = term(depth, err);
    while (l >= 0 && at("or")) {
      pos_++;
      int r = term(depth, err);
      if (r < 0) return -1;
      l = add(Or, l, r, 0, err);
    }
    return l;
  }

  int term(int depth, std::string *err) {
    int l = factor(depth, err);
    while (l >= 0 && at("and")) {
      pos_++;
      int r = factor(depth, err);
      if (r < 0) return -1;
      l = add(And, l, r, 0, err);
    }
    return l;
  }

  int factor(int depth, std::string *err) {
    if (depth >= MAX_FILTER_DEPTH) {
      fail(err, "nested more than " + std::to_string(MAX_FILTER_DEPTH) + " deep");
      return -1;
    }
    if (at("not") || at("!")) {
      pos_++;
      int a = factor(depth + 1, err);
      return a < 0 ? -1 : add(Not, a, -1, 0, err);
    }
    if (at("(")) {
      pos_++;
      int e = expr(depth + 1, err);
      if (e < 0) return -1;
      if (!at(")")) {
        fail(err, "expected \")\" instead of " + cur());
        return -1;
      }
      pos_++;
      return e;
    }
    return primitive(err);
  }

  // Reads a number in [0, max]: decimal or 0x hex.
  bool number(const std::string &w, uint64_t max, uint64_t *out) const {
    if (w.empty() || w.size() > 12) return false;
    const char *s = w.c_str();
    int base = 10;
    if (w.size() > 2 && s[0] == '0' && s[1] == 'x') {
      s += 2;
      base = 16;
    }
    if (!*s) return false;
    for (const char *q = s; *q; q++)
      if (!(base == 16 ? isxdigit(static_cast<unsigned char>(*q)) : isdigit(static_cast<unsigned char>(*q)))) return false;
    uint64_t v = std::strtoull(s, nullptr, base);
    if (v > max) return false;
    *out = v;
    return true;
  }

  static bool mac(const std::string &w, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    for (int k = 0; k < 6; k++) {
      if (k > 0) {
        if (i >= w.size() || (w[i] != ':' && w[i] != '-')) return false;
        i++;
      }
      int digits = 0, x = 0;
      while (i < w.size() && digits < 2 && isxdigit(static_cast<unsigned char>(w[i]))) {
        char c = w[i];
        x = x * 16 + (isdigit(static_cast<unsigned char>(c)) ? c - '0' : c - 'a' + 10);
        digits++;
        i++;
      }
      if (!digits) return false;
      v = v << 8 | uint64_t(x);
    }
    if (i != w.size()) return false;
    *out = v;
    return true;
  }

  // Names of ethertypes and IP protocols, and the number forms.
  static int etherName(const std::string &w) {
    if (w == "ip") return 0x0800;
    if (w == "ip6") return 0x86dd;
    if (w == "arp") return 0x0806;
    if (w == "rarp") return 0x8035;
    if (w == "lldp") return 0x88cc;
    if (w == "mpls") return 0x8847;
    return -1;
  }
  static int protoName(const std::string &w, int *family) {
    *family = 0;
    if (w == "tcp") return 6;
    if (w == "udp") return 17;
    if (w == "icmp") {
      *family = 4;
      return 1;
    }
    if (w == "icmp6") {
      *family = 6;
      return 58;
    }
    if (w == "igmp") {
      *family = 4;
      return 2;
    }
    if (w == "gre") return 47;
    if (w == "esp") return 50;
    if (w == "sctp") return 132;
    return -1;
  }

  std::string next() { return pos_ < toks_.size() ? toks_[pos_++] : std::string(); }

  int protoValue(int family, std::string *err) {
    std::string w = next();
    uint64_t n;
    int fam = 0;
    int named = protoName(w, &fam);
    if (named >= 0) {
      if (family == 0) family = fam;
      return add(Proto, -1, -1, uint64_t(named) | uint64_t(family) << 8, err);
    }
    if (!number(w, 255, &n)) {
      fail(err, "expected an IP protocol (0..255 or tcp, udp, icmp, ...) instead of " + (w.empty() ? std::string("the end") : "\"" + w + "\""));
      return -1;
    }
    return add(Proto, -1, -1, n | uint64_t(family) << 8, err);
  }

  int macArg(Op op, const char *what, std::string *err) {
    std::string w = next();
    uint64_t m;
    if (!mac(w, &m)) {
      fail(err, std::string("expected a MAC address (xx:xx:xx:xx:xx:xx) after \"") + what + "\" instead of " + (w.empty() ? std::string("the end") : "\"" + w + "\""));
      return -1;
    }
    return add(op, -1, -1, m, err);
  }

  int primitive(std::string *err) {
    if (pos_ >= toks_.size()) {
      fail(err, "expected a primitive (vlan, ether, ip, tcp, ...) at the end");
      return -1;
    }
    std::string w = next();
    uint64_t n;
    if (w == "vlan") {
      if (pos_ < toks_.size() && number(toks_[pos_], 4095, &n)) {
        pos_++;
        return add(Vid, -1, -1, n, err);
      }
      if (pos_ < toks_.size() && !isKeyword(toks_[pos_])) {
        fail(err, "expected a VLAN id 0..4095 after \"vlan\" instead of " + cur());
        return -1;
      }
      return add(Tagged, -1, -1, 0, err);
    }
    if (w == "ether") {
      std::string k = next();
      if (k == "proto") {
        std::string v = next();
        int named = etherName(v);
        if (named >= 0) return add(EtherType, -1, -1, uint64_t(named), err);
        if (!number(v, 0xffff, &n)) {
          fail(err, "expected an ethertype (0..0xffff or ip, ip6, arp, ...) instead of " + (v.empty() ? std::string("the end") : "\"" + v + "\""));
          return -1;
        }
        return add(EtherType, -1, -1, n, err);
      }
      if (k == "host") return macArg(Host, "ether host", err);
      if (k == "src") return macArg(Src, "ether src", err);
      if (k == "dst") return macArg(Dst, "ether dst", err);
      if (k == "broadcast") return add(Broadcast, -1, -1, 0, err);
      if (k == "multicast") return add(Multicast, -1, -1, 0, err);
      fail(err, "expected proto, host, src, dst, broadcast or multicast after \"ether\" instead of " + (k.empty() ? std::string("the end") : "\"" + k + "\""));
      return -1;
    }
    if (w == "mac") return macArg(Host, "mac", err);
    if (w == "broadcast") return add(Broadcast, -1, -1, 0, err);
    if (w == "multicast") return add(Multicast, -1, -1, 0, err);
    if (w == "proto") return protoValue(0, err);
    if ((w == "ip" || w == "ip6") && at("proto")) {
      pos_++;
      return protoValue(w == "ip" ? 4 : 6, err);
    }
    int et = etherName(w);
    if (et >= 0) return add(EtherType, -1, -1, uint64_t(et), err);
    int fam = 0;
    int pr = protoName(w, &fam);
    if (pr >= 0) return add(Proto, -1, -1, uint64_t(pr) | uint64_t(fam) << 8, err);
    fail(err, "unknown word \"" + w + "\" (known: vlan, ether, mac, broadcast, multicast, ip, ip6, arp, rarp, lldp, mpls, proto, tcp, udp, icmp, icmp6, igmp, gre, esp, sctp, and, or, not)");
    return -1;
  }

  static bool isKeyword(const std::string &w) { return w == "and" || w == "or" || w == ")"; }

  bool eval(int i, const FrameFields &f) const {
    const Node &n = nodes_[size_t(i)];
    switch (n.op) {
      case And: return eval(n.a, f) && eval(n.b, f);
      case Or: return eval(n.a, f) || eval(n.b, f);
      case Not: return !eval(n.a, f);
      case Tagged: return f.tags > 0;
      case Vid:
        for (int k = 0; k < f.tags; k++)
          if (f.vids[k] == n.v) return true;
        return false;
      case EtherType: return f.type == n.v || f.outerType == n.v;
      case Host: return f.dst == n.v || f.src == n.v;
      case Src: return f.src == n.v;
      case Dst: return f.dst == n.v;
      case Broadcast: return f.dst == 0xffffffffffffull;
      case Multicast: return (f.dst >> 40) & 1;
      case Proto: {
        int fam = int(n.v >> 8);
        return f.ipProto == int(n.v & 0xff) && f.ipFamily != 0 && (fam == 0 || fam == f.ipFamily);
      }
    }
    return false;
  }

  static std::string macText(uint64_t v) {
    std::string s;
    for (int k = 5; k >= 0; k--) {
      s += hex2(unsigned(v >> (8 * k)) & 0xff);
      if (k) s += ':';
    }
    return s;
  }

  // Prints node i inside a parent of precedence parentPrec (0 top, 1 or, 2 and, 3 not) as its
  // right operand or not; parenthesised when the parent would otherwise bind it differently.
  std::string print(int i, int parentPrec, bool right) const {
    const Node &n = nodes_[size_t(i)];
    auto group = [&](int prec, const std::string &text) { return parentPrec > prec || (parentPrec == prec && right) ? "(" + text + ")" : text; };
    switch (n.op) {
      case Or: return group(1, print(n.a, 1, false) + " or " + print(n.b, 1, true));
      case And: return group(2, print(n.a, 2, false) + " and " + print(n.b, 2, true));
      case Not: return "not " + print(n.a, 3, false);
      case Tagged: return "vlan";
      case Vid: return "vlan " + std::to_string(n.v);
      case EtherType: return "ether proto " + std::to_string(n.v);
      case Host: return "ether host " + macText(n.v);
      case Src: return "ether src " + macText(n.v);
      case Dst: return "ether dst " + macText(n.v);
      case Broadcast: return "ether broadcast";
      case Multicast: return "ether multicast";
      case Proto: {
        int fam = int(n.v >> 8);
        return std::string(fam == 4 ? "ip proto " : fam == 6 ? "ip6 proto " : "proto ") + std::to_string(n.v & 0xff);
      }
    }
    return "?";
  }
};

}  // namespace vde
