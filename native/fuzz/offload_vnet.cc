// Fuzz target: the virtio-net header of tap frames (native/src/offload.{h,cc}): vnetDecode,
// vnetEncode, vnetCheck and vnetResolve, the code every frame read from an offload tap meets.
//
// Input: 10 bytes of virtio_net_hdr (as the tap hands them over), then the frame. The target
// does what the engine does (decode, check, and for NeedsWork resolve into a buffer of exactly
// OFFLOAD_SCRATCH_BYTES) and checks, against its own reference arithmetic:
//   - decode/encode round-trip; encode's ±4 shift for an 802.1Q tag;
//   - a frame that is not Bad has sane flags; a partial checksum lies inside the frame; a GSO
//     frame is TCP over the IP version of its GSO type, its checksum fields on the TCP checksum;
//   - resolve never fails on a NeedsWork frame, yields at most MAX_GSO_SEGS frames, and writes
//     no more than OFFLOAD_SCRATCH_BYTES (ASan guards the buffer's end);
//   - checksum only: one frame, equal to the input but for the checksum field, which holds the
//     RFC 1071 checksum from csum_start to the end;
//   - GSO: every segment is at most headers + gso_size, the payloads put together are the
//     original payload, the header bytes are the original ones except IP length/ID/checksum and
//     TCP sequence/flags/checksum, which are right (IPv4 header checksum, TCP checksum with the
//     pseudo-header, consecutive sequence numbers, FIN/PSH only on the last, CWR only on the
//     first segment).
// fuzz-sources: ../src/offload.cc
// fuzz-args: -max_len=65610
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "../src/offload.h"
#include "fuzz_check.h"

using namespace vde;
using fuzz::foldBe;
using fuzz::rdBe16;
using fuzz::rdBe32;
using fuzz::sumBe;

namespace {

constexpr uint32_t ETH_BYTES = 14;
constexpr uint32_t VLAN_TAG_BYTES = 4;
constexpr uint32_t IPV6_HEADER_BYTES = 40;
constexpr uint8_t TCP_FIN_PSH = 0x09;
constexpr uint8_t TCP_CWR = 0x80;
constexpr uint8_t IPPROTO_TCP_NUMBER = 6;

/** Where the parts of a GSO frame lie (derived here from the frame, not from offload.cc). */
struct Layout {
  uint32_t l3, l4, hdrs, end;
  bool v6;
};

/** The layout of a frame vnetCheck accepted for GSO; every offset is checked against len. */
Layout layoutOf(const VnetHdr &h, const uint8_t *f, uint32_t len) {
  Layout t{};
  FUZZ_CHECK(len >= ETH_BYTES, "GSO frame of %u bytes accepted", len);
  t.l3 = rdBe16(f + 12) == 0x8100 ? ETH_BYTES + VLAN_TAG_BYTES : ETH_BYTES;
  t.l4 = h.csumStart;
  t.v6 = (h.gsoType & ~VNET_GSO_ECN) == VNET_GSO_TCPV6;
  FUZZ_CHECK(t.l4 + 20 <= len && t.l4 > t.l3, "csum_start %u outside the frame (%u bytes, l3 %u)", t.l4, len, t.l3);
  FUZZ_CHECK(h.csumOffset == 16, "GSO with csum_offset %u (the TCP checksum is at 16)", h.csumOffset);
  FUZZ_CHECK(rdBe16(f + t.l3 - 2) == (t.v6 ? 0x86dd : 0x0800) && (f[t.l3] >> 4) == (t.v6 ? 6 : 4), "GSO type %02x on ethertype %04x / IP version %u", h.gsoType, rdBe16(f + t.l3 - 2), f[t.l3] >> 4);
  FUZZ_CHECK(f[t.v6 ? t.l3 + 6 : t.l3 + 9] == IPPROTO_TCP_NUMBER, "GSO on a protocol other than TCP");
  t.hdrs = t.l4 + uint32_t(f[t.l4 + 12] >> 4) * 4;
  t.end = t.v6 ? t.l3 + IPV6_HEADER_BYTES + rdBe16(f + t.l3 + 4) : t.l3 + rdBe16(f + t.l3 + 2);
  FUZZ_CHECK(t.hdrs >= t.l4 + 20 && t.hdrs <= t.end && t.end <= len, "headers %u / end %u / len %u", t.hdrs, t.end, len);
  FUZZ_CHECK(t.v6 ? t.l4 == t.l3 + IPV6_HEADER_BYTES : t.l4 == t.l3 + uint32_t(f[t.l3] & 0x0f) * 4, "l4 %u does not follow the IP header at %u", t.l4, t.l3);
  return t;
}

/** True when the bytes [a, b) of x and y are equal. */
bool sameBytes(const uint8_t *x, const uint8_t *y, uint32_t a, uint32_t b) { return a >= b || memcmp(x + a, y + a, b - a) == 0; }

/** Checks one GSO segment against the original frame. */
void checkSegment(const VnetHdr &h, const Layout &t, const uint8_t *f, const uint8_t *s, uint32_t segLen, uint32_t i,
                  uint32_t nseg, uint32_t off) {
  const uint32_t pl = segLen - t.hdrs;
  const uint32_t l3 = t.l3, l4 = t.l4;
  FUZZ_CHECK(segLen >= t.hdrs && pl <= h.gsoSize, "segment %u: %u bytes, headers %u, MSS %u", i, segLen, t.hdrs, h.gsoSize);
  FUZZ_CHECK(pl > 0 || nseg == 1, "segment %u of %u carries no payload", i, nseg);
  FUZZ_CHECK(memcmp(s + t.hdrs, f + t.hdrs + off, pl) == 0, "segment %u: payload differs from the original at offset %u", i, off);
  // unchanged header bytes
  FUZZ_CHECK(sameBytes(s, f, 0, l3), "segment %u: Ethernet header changed", i);
  if (t.v6) {
    FUZZ_CHECK(sameBytes(s, f, l3, l3 + 4) && sameBytes(s, f, l3 + 6, l4), "segment %u: IPv6 header changed", i);
    FUZZ_CHECK(rdBe16(s + l3 + 4) == segLen - l3 - IPV6_HEADER_BYTES, "segment %u: IPv6 payload length %u", i, rdBe16(s + l3 + 4));
  } else {
    FUZZ_CHECK(sameBytes(s, f, l3, l3 + 2) && sameBytes(s, f, l3 + 6, l3 + 10) && sameBytes(s, f, l3 + 12, l4), "segment %u: IPv4 header changed", i);
    FUZZ_CHECK(rdBe16(s + l3 + 2) == segLen - l3, "segment %u: IPv4 total length %u, segment %u bytes", i, rdBe16(s + l3 + 2), segLen);
    FUZZ_CHECK(rdBe16(s + l3 + 4) == uint16_t(rdBe16(f + l3 + 4) + i), "segment %u: IPv4 ID %u", i, rdBe16(s + l3 + 4));
    FUZZ_CHECK(foldBe(sumBe(0, s + l3, l4 - l3)) == 0xffff, "segment %u: bad IPv4 header checksum", i);
  }
  FUZZ_CHECK(sameBytes(s, f, l4, l4 + 4) && sameBytes(s, f, l4 + 8, l4 + 13) && sameBytes(s, f, l4 + 14, l4 + 16) &&
                 sameBytes(s, f, l4 + 18, t.hdrs),
             "segment %u: TCP header changed", i);
  FUZZ_CHECK(rdBe32(s + l4 + 4) == uint32_t(rdBe32(f + l4 + 4) + off), "segment %u: sequence number", i);
  uint8_t fl = f[l4 + 13];
  if (i + 1 < nseg) fl &= uint8_t(~TCP_FIN_PSH);
  if (i > 0) fl &= uint8_t(~TCP_CWR);
  FUZZ_CHECK(s[l4 + 13] == fl, "segment %u: TCP flags %02x, expected %02x", i, s[l4 + 13], fl);
  // TCP checksum with the pseudo-header
  const uint32_t tcpLen = segLen - l4;
  uint64_t acc = t.v6 ? sumBe(0, s + l3 + 8, 32) : sumBe(0, s + l3 + 12, 8);
  acc += IPPROTO_TCP_NUMBER + (tcpLen >> 16) + (tcpLen & 0xffff);
  acc = sumBe(acc, s + l4, tcpLen);
  FUZZ_CHECK(foldBe(acc) == 0xffff, "segment %u: bad TCP checksum", i);
}

/** Checks resolve's output for a GSO frame. */
void checkGso(const VnetHdr &h, const uint8_t *f, uint32_t len, const uint8_t *out, const uint32_t *lens, int n) {
  Layout t = layoutOf(h, f, len);
  const uint32_t payload = t.end - t.hdrs;
  uint32_t off = 0;
  const uint8_t *s = out;
  for (int i = 0; i < n; i++) {
    checkSegment(h, t, f, s, lens[i], uint32_t(i), uint32_t(n), off);
    off += lens[i] - t.hdrs;
    s += lens[i];
  }
  FUZZ_CHECK(off == payload, "segments carry %u payload bytes of %u", off, payload);
  FUZZ_CHECK(uint32_t(n) == (payload ? (payload + h.gsoSize - 1) / h.gsoSize : 1), "%d segments for %u bytes at MSS %u", n, payload, h.gsoSize);
}

/** Checks resolve's output for a frame that only needs its checksum completed. */
void checkCsumOnly(const VnetHdr &h, const uint8_t *f, uint32_t len, const uint8_t *out, const uint32_t *lens, int n) {
  FUZZ_CHECK(n == 1 && lens[0] == len, "%d frames (first %u bytes) for a %u-byte checksum-only frame", n, lens[0], len);
  const uint32_t at = uint32_t(h.csumStart) + h.csumOffset;
  FUZZ_CHECK(sameBytes(out, f, 0, at) && sameBytes(out, f, at + 2, len), "bytes other than the checksum field changed");
  uint16_t c = uint16_t(~foldBe(sumBe(0, f + h.csumStart, len - h.csumStart)));
  if (c == 0) c = 0xffff;
  FUZZ_CHECK(rdBe16(out + at) == c, "checksum %04x, expected %04x", rdBe16(out + at), c);
}

/** Checks encode(decode(b)) == b, and the tag shift of encode. */
void checkCodec(const uint8_t *b, const VnetHdr &h) {
  uint8_t again[VNET_HDR_BYTES];
  vnetEncode(h, 0, again);
  FUZZ_CHECK(memcmp(again, b, VNET_HDR_BYTES) == 0, "decode/encode does not round-trip");
  for (int delta : {4, -4}) {
    VnetHdr s;
    vnetEncode(h, delta, again);
    vnetDecode(again, s);
    int hl = h.hdrLen ? int(h.hdrLen) + delta : 0;
    FUZZ_CHECK(s.hdrLen == uint16_t(hl > 0 ? hl : 0), "hdr_len %u shifted by %d gives %u", h.hdrLen, delta, s.hdrLen);
    uint16_t cs = (h.flags & VNET_F_NEEDS_CSUM) ? uint16_t(int(h.csumStart) + delta) : h.csumStart;
    FUZZ_CHECK(s.csumStart == cs, "csum_start %u shifted by %d gives %u", h.csumStart, delta, s.csumStart);
    FUZZ_CHECK(s.flags == h.flags && s.gsoType == h.gsoType && s.gsoSize == h.gsoSize && s.csumOffset == h.csumOffset, "other fields changed by the shift");
  }
}

uint8_t *scratch;  // exactly OFFLOAD_SCRATCH_BYTES on the heap, so ASan sees a write past its end
uint32_t *lens;    // exactly MAX_GSO_SEGS entries

}  // namespace

/** libFuzzer entry point: one header + frame. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < VNET_HDR_BYTES) return 0;
  if (!scratch) {
    scratch = static_cast<uint8_t *>(malloc(OFFLOAD_SCRATCH_BYTES));
    lens = static_cast<uint32_t *>(malloc(MAX_GSO_SEGS * sizeof(uint32_t)));
  }
  VnetHdr h;
  vnetDecode(data, h);
  checkCodec(data, h);
  const uint8_t *f = data + VNET_HDR_BYTES;
  const uint32_t len = uint32_t(size - VNET_HDR_BYTES);
  const VnetVerdict v = vnetCheck(h, f, len);
  const bool csum = h.flags & VNET_F_NEEDS_CSUM;
  const uint8_t gso = h.gsoType & uint8_t(~VNET_GSO_ECN);
  if (v == VnetVerdict::Bad) return 0;
  FUZZ_CHECK(!(h.flags & ~(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)), "unknown flags %02x accepted", h.flags);
  FUZZ_CHECK(h.hdrLen <= len, "hdr_len %u beyond the %u-byte frame accepted", h.hdrLen, len);
  if (v == VnetVerdict::Plain) {
    FUZZ_CHECK(!csum && h.gsoType == VNET_GSO_NONE, "flags %02x / GSO %02x called plain", h.flags, h.gsoType);
    return 0;
  }
  FUZZ_CHECK(csum, "NeedsWork without NEEDS_CSUM");
  FUZZ_CHECK(h.csumStart >= ETH_BYTES && uint32_t(h.csumStart) + h.csumOffset + 2 <= len, "checksum field %u+%u outside the %u-byte frame", h.csumStart, h.csumOffset, len);
  FUZZ_CHECK(gso == VNET_GSO_NONE || ((gso == VNET_GSO_TCPV4 || gso == VNET_GSO_TCPV6) && h.gsoSize > 0), "GSO type %02x / size %u accepted", h.gsoType, h.gsoSize);
  const int n = vnetResolve(h, f, len, scratch, lens);
  FUZZ_CHECK(n >= 1 && uint32_t(n) <= MAX_GSO_SEGS, "resolve returned %d for a NeedsWork frame", n);
  uint64_t written = 0;
  for (int i = 0; i < n; i++) written += lens[i];
  FUZZ_CHECK(written <= OFFLOAD_SCRATCH_BYTES, "resolve wrote %llu bytes", (unsigned long long)written);
  if (gso == VNET_GSO_NONE) checkCsumOnly(h, f, len, scratch, lens, n);
  else checkGso(h, f, len, scratch, lens, n);
  return 0;
}
