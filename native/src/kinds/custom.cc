// CustomEndpoint: the kind interface over an EndpointIo (see custom.h). Frames are received into
// the batch's free slots; lengths outside the endpoint's bounds are never trusted.
#include "custom.h"

#include <string.h>

namespace vde {
namespace {

class CustomEndpoint : public Endpoint {
 public:
  explicit CustomEndpoint(std::unique_ptr<EndpointIo> io) : io_(std::move(io)), extra_(io_->extraFds()) {}
  const char *kindName() const override { return "custom"; }
  int rxFd() const override { return io_->fd(); }
  int extraFdCount() const override { return int(extra_.size()); }
  int extraFd(int i) const override { return i >= 0 && i < int(extra_.size()) ? extra_[size_t(i)] : -1; }

  RxResult receive(int fd, Batch &b, DropCounts &d, EpStatus &) override {
    int room = RX_BATCH_FRAMES - b.count;
    if (room <= 0) return RxResult::More;
    uint32_t lens[RX_BATCH_FRAMES];
    int n = io_->receive(fd, b.next(), SLOT_BYTES, maxFrame, lens, room, d);
    if (n > room) n = room;
    int base = b.count;
    for (int i = 0; i < n; i++) {
      uint32_t len = lens[i];
      if (len < MIN_FRAME_BYTES || len > maxFrame) {  // never trust a plug-in with the bounds
        d.drops[DROP_RUNT]++;
        continue;
      }
      if (b.count != base + i) memmove(b.next(), b.frame(base + i), len);
      b.commit(len);
    }
    return RxResult::Ok;
  }

  int writeWire(const struct iovec *iov, int iovcnt, size_t len) override { return io_->send(iov, iovcnt, len); }

 private:
  std::unique_ptr<EndpointIo> io_;
  std::vector<int> extra_;
};

}  // namespace

std::unique_ptr<Endpoint> makeCustomEndpoint(std::unique_ptr<EndpointIo> io) { return std::make_unique<CustomEndpoint>(std::move(io)); }

}  // namespace vde
