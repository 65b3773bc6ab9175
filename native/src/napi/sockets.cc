// Socket, pipe, tap and offload helpers that Node's own modules lack, as plain functions on fds:
// unix datagram sockets bound and connected by path, socket pairs, pipes, taps (through
// kinds/tap.cc, where every TUN ioctl lives), UDP sockets, O_NONBLOCK, dup, and the offload
// checks for tests. Failures throw errors carrying errno (napi/errors.h).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <napi.h>

#include <vector>

#include "../counters.h"
#include "../kinds/tap.h"
#include "../offload.h"
#include "errors.h"
#include "sockets.h"

namespace vde {
namespace {

bool fillSockaddr(const std::string &path, struct sockaddr_un &sa, socklen_t &len) {
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return false;
  memcpy(sa.sun_path, path.data(), path.size());
  len = socklen_t(offsetof(struct sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

int I(const Napi::CallbackInfo &info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }

// unixDgramSocket([bufferBytes]): a non-blocking unix datagram socket.
Napi::Value UnixDgramSocket(const Napi::CallbackInfo &info) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw errnoError(info.Env(), errno, "socket");
  if (info.Length() > 0 && info[0].IsNumber()) {
    int buf = I(info, 0);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value UnixBindOrConnect(const Napi::CallbackInfo &info, bool bindIt) {
  int fd = I(info, 0);
  std::string path = info[1].As<Napi::String>().Utf8Value();
  struct sockaddr_un sa;
  socklen_t len;
  if (!fillSockaddr(path, sa, len)) throw errnoError(info.Env(), ENAMETOOLONG, bindIt ? "bind" : "connect");
  int r = bindIt ? bind(fd, reinterpret_cast<struct sockaddr *>(&sa), len) : connect(fd, reinterpret_cast<struct sockaddr *>(&sa), len);
  if (r < 0) throw errnoError(info.Env(), errno, bindIt ? "bind" : "connect");
  return info.Env().Undefined();
}
Napi::Value UnixBind(const Napi::CallbackInfo &info) { return UnixBindOrConnect(info, true); }
Napi::Value UnixConnect(const Napi::CallbackInfo &info) { return UnixBindOrConnect(info, false); }

Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  int fd = I(info, 0);
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

// sendFd(fd, buf): one datagram without blocking; bytes sent or -errno.
Napi::Value SendFd(const Napi::CallbackInfo &info) {
  int fd = I(info, 0);
  Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
  ssize_t r = send(fd, b.Data(), b.Length(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : double(r));
}

// recvFd(fd, max): one datagram without blocking; a Buffer, null when nothing waits, or throws.
Napi::Value RecvFd(const Napi::CallbackInfo &info) {
  int fd = I(info, 0);
  size_t max = size_t(info[1].As<Napi::Number>().Int64Value());
  std::vector<uint8_t> buf(max);
  ssize_t r = recv(fd, buf.data(), max, MSG_DONTWAIT);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return info.Env().Null();
    throw errnoError(info.Env(), errno, "recv");
  }
  return Napi::Buffer<uint8_t>::Copy(info.Env(), buf.data(), size_t(r));
}

// pipe(): [readFd, writeFd], close-on-exec, blocking.
Napi::Value Pipe(const Napi::CallbackInfo &info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw errnoError(info.Env(), errno, "pipe");
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(uint32_t(0), fds[0]);
  a.Set(uint32_t(1), fds[1]);
  return a;
}

// socketPair(type): a connected pair of unix sockets (1 stream, 2 dgram, 5 seqpacket).
Napi::Value SocketPair(const Napi::CallbackInfo &info) {
  int fds[2];
  if (socketpair(AF_UNIX, I(info, 0) | SOCK_CLOEXEC, 0, fds) < 0) throw errnoError(info.Env(), errno, "socketpair");
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(uint32_t(0), fds[0]);
  a.Set(uint32_t(1), fds[1]);
  return a;
}

// openTap(name, vnetHdr): {fd, name}.
Napi::Value OpenTap(const Napi::CallbackInfo &info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  bool vnetHdr = info.Length() > 1 && info[1].ToBoolean().Value();
  std::string actual;
  const char *step = "";
  int fd = openTap(name, vnetHdr, &actual, &step);
  if (fd < 0) {
    std::string what = step;
    if (what == "TUNSETIFF" || what == "TUNSETVNETHDRSZ") what += " " + name;
    throw errnoError(info.Env(), -fd, what);
  }
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("fd", fd);
  o.Set("name", actual);
  return o;
}

// setTapOffload(fd[, flags]): TUNSETOFFLOAD (default csum + TSO4 + TSO6).
Napi::Value SetTapOffload(const Napi::CallbackInfo &info) {
  unsigned flags = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : TAP_OFFLOADS;
  int r = setTapOffload(I(info, 0), flags);
  if (r < 0) throw errnoError(info.Env(), -r, "TUNSETOFFLOAD");
  return info.Env().Undefined();
}

// setNonBlocking(fd, on).
Napi::Value SetNonBlocking(const Napi::CallbackInfo &info) {
  int fd = I(info, 0);
  bool on = info[1].ToBoolean().Value();
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)) < 0) throw errnoError(info.Env(), errno, "fcntl");
  return info.Env().Undefined();
}

// dup(fd): a close-on-exec copy (to take over sockets that Node accepted or connected).
Napi::Value Dup(const Napi::CallbackInfo &info) {
  int fd = fcntl(I(info, 0), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) throw errnoError(info.Env(), errno, "dup");
  return Napi::Number::New(info.Env(), fd);
}

bool fillInet(const std::string &addr, int port, struct sockaddr_storage &ss, socklen_t &len) {
  memset(&ss, 0, sizeof ss);
  auto *v4 = reinterpret_cast<struct sockaddr_in *>(&ss);
  auto *v6 = reinterpret_cast<struct sockaddr_in6 *>(&ss);
  if (inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(uint16_t(port));
    len = sizeof *v4;
    return true;
  }
  if (inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(uint16_t(port));
    len = sizeof *v6;
    return true;
  }
  return false;
}

// udpSocket(family[, reuseAddr]): a non-blocking UDP socket with 1 MiB buffers.
Napi::Value UdpSocket(const Napi::CallbackInfo &info) {
  int family = I(info, 0) == 6 ? AF_INET6 : AF_INET;
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw errnoError(info.Env(), errno, "socket");
  if (info.Length() > 1 && info[1].ToBoolean().Value()) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  int buf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value IpBindOrConnect(const Napi::CallbackInfo &info, bool bindIt) {
  int fd = I(info, 0);
  std::string addr = info[1].As<Napi::String>().Utf8Value();
  int port = I(info, 2);
  struct sockaddr_storage ss;
  socklen_t len;
  if (!fillInet(addr, port, ss, len)) throw errnoError(info.Env(), EINVAL, std::string(bindIt ? "bind" : "connect") + " " + addr);
  int r = bindIt ? bind(fd, reinterpret_cast<struct sockaddr *>(&ss), len) : connect(fd, reinterpret_cast<struct sockaddr *>(&ss), len);
  if (r < 0) throw errnoError(info.Env(), errno, std::string(bindIt ? "bind " : "connect ") + addr + ":" + std::to_string(port));
  return info.Env().Undefined();
}
Napi::Value IpBind(const Napi::CallbackInfo &info) { return IpBindOrConnect(info, true); }
Napi::Value IpConnect(const Napi::CallbackInfo &info) { return IpBindOrConnect(info, false); }

// openFile(path, flags): open(2) (null:// uses /dev/null).
Napi::Value OpenFile(const Napi::CallbackInfo &info) {
  std::string p = info[0].As<Napi::String>().Utf8Value();
  int fd = open(p.c_str(), I(info, 1) | O_CLOEXEC);
  if (fd < 0) throw errnoError(info.Env(), errno, "open " + p);
  return Napi::Number::New(info.Env(), fd);
}

// vnetCheck(hdr10, frame): "plain" | "needsWork" | "bad", as the tap kind decides.
Napi::Value VnetCheckJs(const Napi::CallbackInfo &info) {
  auto h = info[0].As<Napi::Buffer<uint8_t>>();
  auto f = info[1].As<Napi::Buffer<uint8_t>>();
  if (h.Length() < VNET_HDR_BYTES) throw Napi::RangeError::New(info.Env(), "vnetCheck: header shorter than 10 bytes");
  VnetHdr vh;
  vnetDecode(h.Data(), vh);
  VnetVerdict v = vnetCheck(vh, f.Data(), uint32_t(f.Length()));
  return Napi::String::New(info.Env(), v == VnetVerdict::Plain ? "plain" : v == VnetVerdict::NeedsWork ? "needsWork" : "bad");
}

// vnetResolve(hdr10, frame): the frames a destination without offloads gets (null: dropped).
Napi::Value VnetResolveJs(const Napi::CallbackInfo &info) {
  auto h = info[0].As<Napi::Buffer<uint8_t>>();
  auto f = info[1].As<Napi::Buffer<uint8_t>>();
  if (h.Length() < VNET_HDR_BYTES) throw Napi::RangeError::New(info.Env(), "vnetResolve: header shorter than 10 bytes");
  VnetHdr vh;
  vnetDecode(h.Data(), vh);
  if (vnetCheck(vh, f.Data(), uint32_t(f.Length())) != VnetVerdict::NeedsWork) return info.Env().Null();
  std::vector<uint8_t> out(OFFLOAD_SCRATCH_BYTES);
  std::vector<uint32_t> lens(MAX_GSO_SEGS);
  int n = vnetResolve(vh, f.Data(), uint32_t(f.Length()), out.data(), lens.data());
  if (n < 0) return info.Env().Null();
  Napi::Array a = Napi::Array::New(info.Env(), size_t(n));
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    a.Set(uint32_t(i), Napi::Buffer<uint8_t>::Copy(info.Env(), out.data() + off, lens[i]));
    off += lens[i];
  }
  return a;
}

// dropNames(): the drop reasons in counter order.
Napi::Value DropNames(const Napi::CallbackInfo &info) {
  Napi::Array a = Napi::Array::New(info.Env(), DROP_COUNT);
  for (uint32_t i = 0; i < DROP_COUNT; i++) a.Set(i, Napi::String::New(info.Env(), DROP_NAMES[i]));
  return a;
}

}  // namespace

void RegisterSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("unixDgramSocket", Napi::Function::New(env, UnixDgramSocket));
  exports.Set("unixBind", Napi::Function::New(env, UnixBind));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("sendFd", Napi::Function::New(env, SendFd));
  exports.Set("recvFd", Napi::Function::New(env, RecvFd));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("openTap", Napi::Function::New(env, OpenTap));
  exports.Set("setTapOffload", Napi::Function::New(env, SetTapOffload));
  exports.Set("vnetCheck", Napi::Function::New(env, VnetCheckJs));
  exports.Set("vnetResolve", Napi::Function::New(env, VnetResolveJs));
  exports.Set("setNonBlocking", Napi::Function::New(env, SetNonBlocking));
  exports.Set("dup", Napi::Function::New(env, Dup));
  exports.Set("udpSocket", Napi::Function::New(env, UdpSocket));
  exports.Set("ipBind", Napi::Function::New(env, IpBind));
  exports.Set("ipConnect", Napi::Function::New(env, IpConnect));
  exports.Set("openFile", Napi::Function::New(env, OpenFile));
  exports.Set("dropNames", Napi::Function::New(env, DropNames));
}

}  // namespace vde
