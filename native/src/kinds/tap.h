// Linux tap devices: opening (and creating) a tap, its offload settings, and the tap endpoint
// kind. Every TUN/TAP ioctl of the project lives in tap.cc.
#pragma once

#include <memory>
#include <string>

#include "kind.h"

namespace vde {

/** Opens or creates tap `name` (IFF_TAP | IFF_NO_PI, plus IFF_VNET_HDR when vnetHdr); returns the fd or -errno, and the kernel's name in *actual. */
int openTap(const std::string &name, bool vnetHdr, std::string *actual, const char **failedStep);
/** TUNSETOFFLOAD on a tap opened with a virtio-net header; 0 or -errno. */
int setTapOffload(int fd, unsigned flags);

}  // namespace vde
