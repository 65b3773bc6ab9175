// The vhost-user-net back-end kind: one QEMU (-netdev vhost-user) per endpoint, its frames moving
// through the guest's own virtqueues in shared memory. See vhost_user.cc.
#pragma once

#include <memory>

#include "kind.h"

namespace vde {

/**
 * Creates a vhost-user endpoint on a connected vhost-user control socket (the endpoint owns fd
 * from here, also on failure). Returns null with errno set when its eventfds or epoll sets cannot
 * be made.
 */
std::unique_ptr<Endpoint> makeVhostUserEndpoint(int fd);

}  // namespace vde
