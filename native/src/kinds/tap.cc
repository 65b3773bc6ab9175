// The tap kind (see tap.h). A tap opened with IFF_VNET_HDR carries a 10-byte virtio-net header
// before every frame: received headers are validated once (offload.h) so that every destination
// can trust them; GSO and partial-checksum frames go to other such taps as they are and are
// segmented in software by the engine for everything else. Without the header, one read or
// write is one frame.
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

namespace vde {
namespace {

class TapEndpoint : public Endpoint {
 public:
  TapEndpoint(int fd, bool vnet) : fd_(fd), vnet_(vnet) {}
  ~TapEndpoint() override {
    if (closeFds) close(fd_);
  }
  const char *kindName() const override { return "tap"; }
  int rxFd() const override { return fd_; }
  bool takesVnet() const override { return vnet_; }

  RxResult receive(int, Batch &b, DropCounts &d, EpStatus &st) override {
    while (!b.full()) {
      uint8_t vh[VNET_HDR_BYTES];
      uint8_t *f = b.next();
      ssize_t r;
      if (vnet_) {
        struct iovec iov[2] = {{vh, VNET_HDR_BYTES}, {f, SLOT_BYTES}};
        r = readv(fd_, iov, 2);
      } else {
        r = read(fd_, f, SLOT_BYTES);
      }
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          st.closeWith(errno, "read error");
          return RxResult::Closed;
        }
        break;
      }
      if (r == 0) break;
      if (!vnet_) {
        if (uint32_t(r) > maxFrame) { d.drops[DROP_OVERSIZE]++; continue; }
        if (r < ssize_t(MIN_FRAME_BYTES)) { d.drops[DROP_RUNT]++; continue; }
        b.commit(uint32_t(r));
        continue;
      }
      if (size_t(r) < VNET_HDR_BYTES + MIN_FRAME_BYTES) { d.drops[DROP_RUNT]++; continue; }
      commitVnetFrame(b, d, vh, uint32_t(size_t(r) - VNET_HDR_BYTES), maxFrame);
    }
    return RxResult::Ok;
  }

  int wire(const OutFrame &f, uint8_t *pre, struct iovec *iov, uint32_t *wireBytes) const override {
    if (!vnet_) return Endpoint::wire(f, pre, iov, wireBytes);
    if (f.vnet) vnetEncode(*f.vnet, f.delta(), pre);
    else memset(pre, 0, VNET_HDR_BYTES);
    iov[0] = {pre, VNET_HDR_BYTES};
    *wireBytes = uint32_t(VNET_HDR_BYTES) + f.wireLen();
    return 1 + f.parts(iov + 1);
  }

  int writeWire(const struct iovec *iov, int iovcnt, size_t) override {
    ssize_t r = writev(fd_, iov, iovcnt);
    if (r >= 0) return 1;
    if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) return 0;
    return -errno;
  }

 private:
  int fd_;
  bool vnet_;
};

}  // namespace

std::unique_ptr<Endpoint> makeTapEndpoint(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return nullptr;
  // a tap opened with IFF_VNET_HDR says so itself: never mismatch
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  bool vnet = false;
  if (ioctl(fd, TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_VNET_HDR)) {
    int sz = int(VNET_HDR_BYTES);
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) return nullptr;
    vnet = true;
  }
  return std::make_unique<TapEndpoint>(fd, vnet);
}

int openTap(const std::string &name, bool vnetHdr, std::string *actual, const char **failedStep) {
  if (name.size() >= IFNAMSIZ) {
    *failedStep = "tap name";
    return -ENAMETOOLONG;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *failedStep = "open /dev/net/tun";
    return -errno;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    *failedStep = "TUNSETIFF";
    return -e;
  }
  if (vnetHdr) {
    int sz = int(VNET_HDR_BYTES);  // struct virtio_net_hdr, the size the engine reads and writes
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
      int e = errno;
      close(fd);
      *failedStep = "TUNSETVNETHDRSZ";
      return -e;
    }
  }
  *actual = ifr.ifr_name;
  return fd;
}

int setTapOffload(int fd, unsigned flags) { return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0; }

}  // namespace vde
