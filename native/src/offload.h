// Tap offloads: the virtio-net header (struct virtio_net_hdr, 10 bytes) that a tap opened with
// IFF_VNET_HDR puts in front of every frame, its validation, and the software fallback for a
// destination that cannot take a GSO (TSO) or partial-checksum frame: TCP segmentation over IPv4
// and IPv6 (with or without one 802.1Q tag) and checksum completion.
//
// Pure functions on byte buffers; no allocation, no system calls. Used by the engine only for
// frames that carry a non-trivial header, so the ordinary frame path pays nothing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vde {

constexpr size_t VNET_HDR_BYTES = 10;  // TUNSETVNETHDRSZ value used for every tap we open

constexpr uint8_t VNET_F_NEEDS_CSUM = 1;
constexpr uint8_t VNET_F_DATA_VALID = 2;
constexpr uint8_t VNET_GSO_NONE = 0;
constexpr uint8_t VNET_GSO_TCPV4 = 1;
constexpr uint8_t VNET_GSO_TCPV6 = 4;
constexpr uint8_t VNET_GSO_ECN = 0x80;

// TUNSETOFFLOAD flags we ask for (linux/if_tun.h TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
constexpr unsigned TAP_OFFLOADS = 0x01 | 0x02 | 0x04;

/** Most segments one GSO frame may turn into (MSS ≥ 32 for a 64 KiB frame). */
constexpr uint32_t MAX_GSO_SEGS = 2048;
/** gso_size that makes vnetResolve produce a GSO frame as one segment (no frame holds more payload). */
constexpr uint16_t WHOLE_SEGMENT_BYTES = 0xffff;
/** Scratch bytes the software fallback needs for the worst case. */
constexpr size_t OFFLOAD_SCRATCH_BYTES = 65536 + 128 + size_t(MAX_GSO_SEGS) * (18 + 60 + 60);

/** The header in host order (virtio-net legacy headers are native-endian; x86/arm are little). */
struct VnetHdr {
  uint8_t flags = 0;
  uint8_t gsoType = 0;
  uint16_t hdrLen = 0;
  uint16_t gsoSize = 0;
  uint16_t csumStart = 0;
  uint16_t csumOffset = 0;
};

void vnetDecode(const uint8_t *b, VnetHdr &h);
/** Encodes h; delta (+4 / -4 / 0) shifts csumStart and hdrLen for an inserted or removed 802.1Q tag. */
void vnetEncode(const VnetHdr &h, int delta, uint8_t *b);

/** Result of vnetCheck. */
enum class VnetVerdict : uint8_t { Plain, NeedsWork, Bad };

/**
 * Checks a received header against its frame. Plain: nothing to do for any destination (no
 * partial checksum, no GSO; DATA_VALID is only a hint). NeedsWork: partial checksum and/or GSO,
 * structurally sound (every offset inside the frame; for GSO: TCP over IPv4/IPv6 matching the
 * type, one optional 802.1Q tag, gso_size > 0, at most MAX_GSO_SEGS segments, the checksum
 * fields pointing at the TCP checksum). Bad: anything else, including unknown flags or types.
 */
VnetVerdict vnetCheck(const VnetHdr &h, const uint8_t *f, uint32_t len);

/**
 * Turns a NeedsWork frame into complete frames for a destination without offloads: the
 * checksum filled in, or the TCP segments (IP length/ID/checksum, sequence numbers, FIN/PSH on
 * the last segment only, CWR on the first only, TCP checksum with the pseudo-header). The frames
 * are written back to back into out (OFFLOAD_SCRATCH_BYTES); lens gets each length (MAX_GSO_SEGS
 * entries). Returns the frame count, or -1 when the frame does not parse (callers check first).
 */
int vnetResolve(const VnetHdr &h, const uint8_t *f, uint32_t len, uint8_t *out, uint32_t *lens);

/** Ones' complement sum helpers (exposed for tests). */
uint16_t inetChecksum(const uint8_t *p, size_t n);

}  // namespace vde
