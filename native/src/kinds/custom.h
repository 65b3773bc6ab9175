// Endpoint kinds implemented outside the engine's own files (encapsulations such as VXLAN and
// VXVDE) plug in through EndpointIo: the engine polls fd() and extraFds(), calls receive() with
// the ready fd and send() per outgoing frame, and queues a frame itself when send() reports that
// it would block. CustomEndpoint adapts an EndpointIo to the kind interface. The object owns
// its fds and closes them in its destructor. Engine thread only.
#pragma once

#include <sys/uio.h>

#include <memory>
#include <vector>

#include "kind.h"

namespace vde {

class EndpointIo {
 public:
  virtual ~EndpointIo() = default;
  /** The main fd to poll for input. */
  virtual int fd() const = 0;
  /** Further fds to poll for input (e.g. a multicast socket beside a unicast one). */
  virtual std::vector<int> extraFds() const { return {}; }
  /** Reads up to max frames from readyFd into slab slots i*slotBytes (at most maxFrame bytes each), sets lens[i]; returns how many; counts malformed input in c. */
  virtual int receive(int readyFd, uint8_t *slab, size_t slotBytes, uint32_t maxFrame, uint32_t *lens, int max, DropCounts &c) = 0;
  /** Sends one frame; returns 1 when sent, 0 when it would block (the engine queues it), -errno on failure. */
  virtual int send(const struct iovec *iov, int iovcnt, size_t len) = 0;
};

/** Wraps an EndpointIo as an engine endpoint. */
std::unique_ptr<Endpoint> makeCustomEndpoint(std::unique_ptr<EndpointIo> io);

}  // namespace vde
