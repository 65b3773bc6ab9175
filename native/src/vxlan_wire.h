// VXLAN / VXVDE wire format (PROTOCOL.md §2.5): the 8-byte header {0x08, 0, 0, 0, VNI[3]
// big-endian, 0} in front of a raw Ethernet frame, and the receive-side verdict on a datagram.
//
// Pure inline functions on bytes, no sockets: vxlan.cc calls them on every received datagram,
// and native/fuzz/vxlan_decap.cc fuzzes them. What the socket layer decides on its own (a
// truncated datagram, a sender of the wrong address family, our own multicast echo) stays in
// vxlan.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vde {

constexpr size_t VX_HEADER_BYTES = 8;
constexpr uint8_t VX_FLAG_I = 0x08;          // "VNI present": the only flag VXLAN defines
constexpr uint32_t VX_ETH_HEADER_BYTES = 14;  // a frame must be longer than this to be carried

/** What a receiver does with a datagram. */
enum class VxVerdict : uint8_t {
  Frame,    // ours: the frame is at frameOffset, frameLen bytes
  Foreign,  // well formed but another VNI on the same group: ignored, not counted
  Leave,    // vxvde only: a header alone with our VNI, the sender is gone (forget its peers)
  Runt,     // too short for a header and a frame: dropped, counted as a runt
  Framing,  // a header that is not VXLAN's: dropped, counted as a framing error
};

/** A verdict with the frame's place in the datagram (frameOffset/frameLen are 0 unless Frame). */
struct VxDecap {
  VxVerdict verdict;
  uint32_t frameOffset;
  uint32_t frameLen;
};

/** Writes the 8-byte header for vni (the low 24 bits) into out. */
inline void vxEncodeHeader(uint32_t vni, uint8_t *out) {
  out[0] = VX_FLAG_I;
  out[1] = out[2] = out[3] = 0;
  out[4] = uint8_t(vni >> 16);
  out[5] = uint8_t(vni >> 8);
  out[6] = uint8_t(vni);
  out[7] = 0;
}

/** True when the header's VNI bytes (4..6) carry vni. */
inline bool vxHasVni(const uint8_t *hdr, uint32_t vni) {
  return hdr[4] == uint8_t(vni >> 16) && hdr[5] == uint8_t(vni >> 8) && hdr[6] == uint8_t(vni);
}

/** Returns a Frame verdict for a datagram of totalBytes (the frame follows the header). */
inline VxDecap vxFrame(uint32_t totalBytes) {
  return {VxVerdict::Frame, uint32_t(VX_HEADER_BYTES), totalBytes - uint32_t(VX_HEADER_BYTES)};
}

/**
 * vxlan:// (RFC 7348, Linux VXLAN devices): a datagram of totalBytes whose first
 * min(totalBytes, 8) bytes are at hdr. Ours when it is longer than header + Ethernet header,
 * byte 0 is exactly 0x08 and the VNI is vni; the reserved bytes are ignored, as RFC 7348 says.
 */
inline VxDecap vxlanDecap(const uint8_t *hdr, uint32_t totalBytes, uint32_t vni) {
  if (totalBytes <= VX_HEADER_BYTES + VX_ETH_HEADER_BYTES) return {VxVerdict::Runt, 0, 0};
  if (hdr[0] != VX_FLAG_I) return {VxVerdict::Framing, 0, 0};
  if (!vxHasVni(hdr, vni)) return {VxVerdict::Foreign, 0, 0};
  return vxFrame(totalBytes);
}

/**
 * vxvde:// (vdeplug4's distributed switch): all 8 header bytes must be exactly ours; a header
 * alone is a leave message; a frame must be longer than an Ethernet header. A header with the
 * right flags and zero reserved bytes but another VNI is Foreign; any other header is Framing.
 */
inline VxDecap vxvdeDecap(const uint8_t *hdr, uint32_t totalBytes, uint32_t vni) {
  if (totalBytes < VX_HEADER_BYTES) return {VxVerdict::Runt, 0, 0};
  if (hdr[0] != VX_FLAG_I || hdr[1] || hdr[2] || hdr[3] || hdr[7]) return {VxVerdict::Framing, 0, 0};
  if (!vxHasVni(hdr, vni)) return {VxVerdict::Foreign, 0, 0};
  if (totalBytes == VX_HEADER_BYTES) return {VxVerdict::Leave, 0, 0};
  if (totalBytes <= VX_HEADER_BYTES + VX_ETH_HEADER_BYTES) return {VxVerdict::Runt, 0, 0};
  return vxFrame(totalBytes);
}

}  // namespace vde
