// Virtio-net header validation, TCP segmentation and checksum completion (see offload.h).
#include "offload.h"

#include <string.h>

namespace vde {

static inline uint16_t be16(const uint8_t *p) { return uint16_t(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
static inline void put16(uint8_t *p, uint16_t v) { p[0] = uint8_t(v >> 8); p[1] = uint8_t(v); }
static inline void put32(uint8_t *p, uint32_t v) { p[0] = uint8_t(v >> 24); p[1] = uint8_t(v >> 16); p[2] = uint8_t(v >> 8); p[3] = uint8_t(v); }
static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline void wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

void vnetDecode(const uint8_t *b, VnetHdr &h) {
  h.flags = b[0];
  h.gsoType = b[1];
  h.hdrLen = rd16(b + 2);
  h.gsoSize = rd16(b + 4);
  h.csumStart = rd16(b + 6);
  h.csumOffset = rd16(b + 8);
}

void vnetEncode(const VnetHdr &h, int delta, uint8_t *b) {
  b[0] = h.flags;
  b[1] = h.gsoType;
  int hl = h.hdrLen ? int(h.hdrLen) + delta : 0;
  wr16(b + 2, uint16_t(hl > 0 ? hl : 0));
  wr16(b + 4, h.gsoSize);
  wr16(b + 6, (h.flags & VNET_F_NEEDS_CSUM) ? uint16_t(int(h.csumStart) + delta) : h.csumStart);
  wr16(b + 8, h.csumOffset);
}

// --- checksums: native-order accumulation with end-around carry (RFC 1071 byte-order independence)

static inline uint64_t addc(uint64_t acc, uint64_t v) {
  acc += v;
  return acc + (acc < v);
}

static uint64_t csumAdd(uint64_t acc, const uint8_t *p, size_t n) {
  while (n >= 32) {
    uint64_t a, b, c, d;
    memcpy(&a, p, 8); memcpy(&b, p + 8, 8); memcpy(&c, p + 16, 8); memcpy(&d, p + 24, 8);
    acc = addc(addc(addc(addc(acc, a), b), c), d);
    p += 32;
    n -= 32;
  }
  while (n >= 8) { uint64_t v; memcpy(&v, p, 8); acc = addc(acc, v); p += 8; n -= 8; }
  if (n >= 4) { uint32_t v; memcpy(&v, p, 4); acc = addc(acc, v); p += 4; n -= 4; }
  if (n >= 2) { uint16_t v; memcpy(&v, p, 2); acc = addc(acc, v); p += 2; n -= 2; }
  if (n) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    acc = addc(acc, uint64_t(p[0]) << 8);
#else
    acc = addc(acc, p[0]);
#endif
  }
  return acc;
}

static inline uint16_t csumFold(uint64_t acc) {
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  return uint16_t(acc);
}

uint16_t inetChecksum(const uint8_t *p, size_t n) { return uint16_t(~csumFold(csumAdd(0, p, n))); }

// --- parsing

struct TcpFrame {
  uint32_t l3 = 0, l4 = 0, hdrs = 0, end = 0;  // offsets; end = end of the IP packet
  bool v6 = false;
};

static bool parseTcp(const uint8_t *f, uint32_t len, TcpFrame &t) {
  if (len < 14) return false;
  uint32_t l3 = 14;
  uint16_t et = be16(f + 12);
  if (et == 0x8100) {
    if (len < 18) return false;
    l3 = 18;
    et = be16(f + 16);
  }
  uint32_t l4, end;
  if (et == 0x0800) {
    if (len < l3 + 20 || (f[l3] >> 4) != 4) return false;
    uint32_t ihl = uint32_t(f[l3] & 0x0f) * 4;
    if (ihl < 20 || len < l3 + ihl || f[l3 + 9] != 6) return false;
    if (be16(f + l3 + 6) & 0x3fff) return false;  // a fragment cannot be segmented
    uint32_t tot = be16(f + l3 + 2);
    if (tot < ihl || l3 + tot > len) return false;
    l4 = l3 + ihl;
    end = l3 + tot;
    t.v6 = false;
  } else if (et == 0x86dd) {
    if (len < l3 + 40 || (f[l3] >> 4) != 6 || f[l3 + 6] != 6) return false;  // no extension headers
    uint32_t pl = be16(f + l3 + 4);
    if (pl == 0 || l3 + 40 + pl > len) return false;
    l4 = l3 + 40;
    end = l3 + 40 + pl;
    t.v6 = true;
  } else {
    return false;
  }
  if (end < l4 + 20) return false;
  uint32_t doff = uint32_t(f[l4 + 12] >> 4) * 4;
  if (doff < 20 || l4 + doff > end) return false;
  t.l3 = l3;
  t.l4 = l4;
  t.hdrs = l4 + doff;
  t.end = end;
  return true;
}

VnetVerdict vnetCheck(const VnetHdr &h, const uint8_t *f, uint32_t len) {
  if (h.flags & ~(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) return VnetVerdict::Bad;
  if (h.hdrLen > len) return VnetVerdict::Bad;
  uint8_t gt = h.gsoType & uint8_t(~VNET_GSO_ECN);
  bool csum = h.flags & VNET_F_NEEDS_CSUM;
  if (csum && (uint32_t(h.csumStart) + h.csumOffset + 2 > len || h.csumStart < 14)) return VnetVerdict::Bad;
  if (gt == VNET_GSO_NONE) {
    if (h.gsoType & VNET_GSO_ECN) return VnetVerdict::Bad;
    return csum ? VnetVerdict::NeedsWork : VnetVerdict::Plain;
  }
  if (gt != VNET_GSO_TCPV4 && gt != VNET_GSO_TCPV6) return VnetVerdict::Bad;
  if (!csum || h.gsoSize == 0) return VnetVerdict::Bad;
  TcpFrame t;
  if (!parseTcp(f, len, t)) return VnetVerdict::Bad;
  if (t.v6 != (gt == VNET_GSO_TCPV6)) return VnetVerdict::Bad;
  if (h.csumStart != t.l4 || h.csumOffset != 16) return VnetVerdict::Bad;
  uint32_t payload = t.end - t.hdrs;
  if ((payload + h.gsoSize - 1) / h.gsoSize > MAX_GSO_SEGS) return VnetVerdict::Bad;
  if (uint64_t(t.hdrs) + h.gsoSize > 65535 + 18) return VnetVerdict::Bad;
  return VnetVerdict::NeedsWork;
}

int vnetResolve(const VnetHdr &h, const uint8_t *f, uint32_t len, uint8_t *out, uint32_t *lens) {
  uint8_t gt = h.gsoType & uint8_t(~VNET_GSO_ECN);
  if (gt == VNET_GSO_NONE) {
    if (!(h.flags & VNET_F_NEEDS_CSUM) || uint32_t(h.csumStart) + h.csumOffset + 2 > len) return -1;
    memcpy(out, f, len);
    uint16_t c = uint16_t(~csumFold(csumAdd(0, out + h.csumStart, len - h.csumStart)));
    wr16(out + h.csumStart + h.csumOffset, c ? c : 0xffff);
    lens[0] = len;
    return 1;
  }
  TcpFrame t;
  if (!h.gsoSize || !parseTcp(f, len, t)) return -1;
  const uint32_t hdrs = t.hdrs, l3 = t.l3, l4 = t.l4;
  const uint32_t payload = t.end - hdrs;
  const uint32_t tcpHl = hdrs - l4;
  const uint32_t seq0 = be32(f + l4 + 4);
  const uint16_t id0 = t.v6 ? 0 : be16(f + l3 + 4);
  const uint8_t flags0 = f[l4 + 13];
  // pseudo-header sum of the addresses and protocol (the length is added per segment)
  uint64_t pseudo;
  if (t.v6) {
    pseudo = csumAdd(0, f + l3 + 8, 32);
  } else {
    pseudo = csumAdd(0, f + l3 + 12, 8);
  }
  {
    uint8_t proto[2] = {0, 6};
    pseudo = csumAdd(pseudo, proto, 2);
  }
  uint32_t nseg = payload ? (payload + h.gsoSize - 1) / h.gsoSize : 1;
  if (nseg > MAX_GSO_SEGS) return -1;
  uint8_t *o = out;
  uint32_t off = 0;
  for (uint32_t i = 0; i < nseg; i++) {
    uint32_t pl = payload - off < h.gsoSize ? payload - off : h.gsoSize;
    bool last = i + 1 == nseg;
    memcpy(o, f, hdrs);
    memcpy(o + hdrs, f + hdrs + off, pl);
    uint32_t segLen = hdrs + pl;
    if (t.v6) {
      put16(o + l3 + 4, uint16_t(segLen - l3 - 40));
    } else {
      put16(o + l3 + 2, uint16_t(segLen - l3));
      put16(o + l3 + 4, uint16_t(id0 + i));
      wr16(o + l3 + 10, 0);
      wr16(o + l3 + 10, inetChecksum(o + l3, l4 - l3));
    }
    uint8_t *tcp = o + l4;
    put32(tcp + 4, seq0 + off);
    uint8_t fl = flags0;
    if (!last) fl &= uint8_t(~0x09);  // FIN, PSH only on the last segment
    if (i) fl &= uint8_t(~0x80);      // CWR only on the first
    tcp[13] = fl;
    wr16(tcp + 16, 0);
    uint8_t lenBytes[2];
    put16(lenBytes, uint16_t(tcpHl + pl));
    uint64_t acc = csumAdd(pseudo, lenBytes, 2);
    acc = csumAdd(acc, tcp, tcpHl + pl);
    wr16(tcp + 16, uint16_t(~csumFold(acc)));
    lens[i] = segLen;
    o += segLen;
    off += pl;
  }
  return int(nseg);
}

}  // namespace vde
