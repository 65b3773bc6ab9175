// VXLAN (RFC 7348, vdeplug4's `vxlan://`) and VXVDE (vdeplug4's `vxvde://`) endpoints.
//
// Both carry Ethernet frames in UDP datagrams behind the 8-byte VXLAN header (flags 0x08, a
// 24-bit big-endian VNI) and deliver them by IP multicast to a group, learning which unicast
// address stands behind each source MAC so later frames for that MAC go straight to it.
// `vxlan` is one socket on the VXLAN port shared by sending and receiving (interoperates with
// Linux kernel VXLAN devices); `vxvde` is vdeplug4's daemon-less distributed switch: a shared
// multicast socket on group:port plus a private unicast socket on an ephemeral port, from which
// every datagram leaves. A vxlan endpoint may instead have a static list of unicast peers
// (head-end replication), which JavaScript can replace while it runs. The classes are
// EndpointIo objects the engine drives on its own thread
// (batched recvmmsg, no per-frame allocation); JavaScript creates them through the
// `createVxlan(opts)` / `createVxvde(opts)` exports, which re-check every option.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kinds/custom.h"

namespace vde {

/** Options of both encapsulations (already range-checked by the factory). */
struct VxOptions {
  std::string group;              // numeric IPv4/IPv6 multicast address
  uint16_t port = 0;              // UDP port of the group (VXLAN port / VXVDE port)
  uint32_t vni = 1;               // 24-bit network identifier
  int ttlHops = 1;                // multicast TTL / hop limit
  std::string ifname;             // interface for membership and sending ("" = kernel's choice)
  int rcvbufBytes = 0;            // SO_RCVBUF (0 = our default)
  uint32_t hashSizeEntries = 1024;  // MAC table size (rounded up to a power of two)
  uint32_t expireSeconds = 128;   // lifetime of a learned address
  std::string bindAddr;           // vxvde: local address of the unicast socket; vxlan: local= ("" = wildcard)
  bool unicast = false;           // vxlan: a static peer list instead of a multicast group
  int family = 4;                 // vxlan unicast: the underlay's address family (4 or 6)
  std::vector<std::pair<std::string, uint16_t>> peers;  // vxlan unicast: numeric address, UDP port
  int64_t groupGid = -1;          // vxvde grp=: gid written over the last 3 bytes of the group (-1 = none)
};

/** Failure while opening an endpoint: errno plus the step that failed. */
struct VxError {
  int err;
  std::string what;
};

/** Opens a vxlan endpoint; throws VxError. */
std::unique_ptr<EndpointIo> makeVxlanIo(const VxOptions &o);

/** Opens a vxvde endpoint; throws VxError. */
std::unique_ptr<EndpointIo> makeVxvdeIo(const VxOptions &o);

/**
 * Adds createVxlan(opts) and createVxvde(opts) to the addon's exports, and for unicast vxlan
 * endpoints createVxlanPeers(opts) ({handle, control}), vxlanSetPeers(control, [{addr, port}])
 * and vxlanStats(control).
 */
void RegisterVxlan(Napi::Env env, Napi::Object exports);

}  // namespace vde
