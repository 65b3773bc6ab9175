// Node-API surface of the native addon.
//
// Exposes the frame Engine as a JS class (configuration and queries only; frames never cross
// into JS except rare control frames such as BPDUs, delivered in batches through one
// ThreadSafeFunction) and a handful of socket helpers that Node's own modules lack: unix
// datagram sockets bound and connected by path, and raw fd closing. Errors are thrown as JS
// errors carrying the numeric errno in `errno`; the TypeScript wrapper turns them into
// Node-style codes and messages.
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <napi.h>

#include "customio.h"
#include "engine.h"
#include "vxlan.h"
#include "slirp.h"

using namespace vde;

namespace {

Napi::Error errnoError(Napi::Env env, int err, const std::string &what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

bool fillSockaddr(const std::string &path, struct sockaddr_un &sa, socklen_t &len) {
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return false;
  memcpy(sa.sun_path, path.data(), path.size());
  len = socklen_t(offsetof(struct sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

Napi::Value UnixDgramSocket(const Napi::CallbackInfo &info) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw errnoError(info.Env(), errno, "socket");
  if (info.Length() > 0 && info[0].IsNumber()) {
    int buf = info[0].As<Napi::Number>().Int32Value();
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value UnixBindOrConnect(const Napi::CallbackInfo &info, bool bindIt) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string path = info[1].As<Napi::String>().Utf8Value();
  struct sockaddr_un sa;
  socklen_t len;
  if (!fillSockaddr(path, sa, len)) throw errnoError(info.Env(), ENAMETOOLONG, bindIt ? "bind" : "connect");
  int r = bindIt ? bind(fd, reinterpret_cast<struct sockaddr *>(&sa), len)
                 : connect(fd, reinterpret_cast<struct sockaddr *>(&sa), len);
  if (r < 0) throw errnoError(info.Env(), errno, bindIt ? "bind" : "connect");
  return info.Env().Undefined();
}

Napi::Value UnixBind(const Napi::CallbackInfo &info) { return UnixBindOrConnect(info, true); }
Napi::Value UnixConnect(const Napi::CallbackInfo &info) { return UnixBindOrConnect(info, false); }

Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

// Sends one datagram on a connected socket without blocking; returns bytes sent or -errno.
Napi::Value SendFd(const Napi::CallbackInfo &info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
  ssize_t r = send(fd, b.Data(), b.Length(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : double(r));
}

// Receives one datagram without blocking; returns a Buffer, null when nothing waits, or throws.
Napi::Value RecvFd(const Napi::CallbackInfo &info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  size_t max = size_t(info[1].As<Napi::Number>().Int64Value());
  std::vector<uint8_t> buf(max);
  ssize_t r = recv(fd, buf.data(), max, MSG_DONTWAIT);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return info.Env().Null();
    throw errnoError(info.Env(), errno, "recv");
  }
  return Napi::Buffer<uint8_t>::Copy(info.Env(), buf.data(), size_t(r));
}

// Creates a pipe; returns [readFd, writeFd] (close-on-exec, blocking; spawn dup2s them).
Napi::Value Pipe(const Napi::CallbackInfo &info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw errnoError(info.Env(), errno, "pipe");
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(uint32_t(0), fds[0]);
  a.Set(uint32_t(1), fds[1]);
  return a;
}

// Creates a connected pair of unix sockets of the given type (1 stream, 2 dgram, 5 seqpacket).
Napi::Value SocketPair(const Napi::CallbackInfo &info) {
  int type = info[0].As<Napi::Number>().Int32Value();
  int fds[2];
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) < 0) throw errnoError(info.Env(), errno, "socketpair");
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(uint32_t(0), fds[0]);
  a.Set(uint32_t(1), fds[1]);
  return a;
}

// Opens (or creates) a Linux tap interface; returns {fd, name}. vnetHdr asks for IFF_VNET_HDR.
Napi::Value OpenTap(const Napi::CallbackInfo &info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  bool vnetHdr = info.Length() > 1 && info[1].ToBoolean().Value();
  if (name.size() >= IFNAMSIZ) throw errnoError(info.Env(), ENAMETOOLONG, "tap name");
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw errnoError(info.Env(), errno, "open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    throw errnoError(info.Env(), e, "TUNSETIFF " + name);
  }
  if (vnetHdr) {
    int sz = int(VNET_HDR_BYTES);  // struct virtio_net_hdr, the size the engine reads and writes
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
      int e = errno;
      close(fd);
      throw errnoError(info.Env(), e, "TUNSETVNETHDRSZ " + name);
    }
  }
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("fd", fd);
  o.Set("name", std::string(ifr.ifr_name));
  return o;
}

// Enables tap offloads on a tap opened with vnetHdr: setTapOffload(fd, flags) with TUNSETOFFLOAD
// flags (TUN_F_CSUM 1, TUN_F_TSO4 2, TUN_F_TSO6 4, ...); flags omitted = csum + TSO4 + TSO6.
Napi::Value SetTapOffload(const Napi::CallbackInfo &info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned flags = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : TAP_OFFLOADS;
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) throw errnoError(info.Env(), errno, "TUNSETOFFLOAD");
  return info.Env().Undefined();
}

// Sets or clears O_NONBLOCK on an fd.
Napi::Value SetNonBlocking(const Napi::CallbackInfo &info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool on = info[1].ToBoolean().Value();
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)) < 0) throw errnoError(info.Env(), errno, "fcntl");
  return info.Env().Undefined();
}

// Duplicates an fd (close-on-exec); used to take over sockets accepted or connected by Node.
Napi::Value Dup(const Napi::CallbackInfo &info) {
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) throw errnoError(info.Env(), errno, "dup");
  return Napi::Number::New(info.Env(), fd);
}

static bool fillInet(const std::string &addr, int port, struct sockaddr_storage &ss, socklen_t &len) {
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

// Creates a UDP socket of family 4 or 6, optionally with SO_REUSEADDR; returns the fd.
Napi::Value UdpSocket(const Napi::CallbackInfo &info) {
  int family = info[0].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
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

// Binds or connects an IP socket to a numeric address and port.
Napi::Value IpBindOrConnect(const Napi::CallbackInfo &info, bool bindIt) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string addr = info[1].As<Napi::String>().Utf8Value();
  int port = info[2].As<Napi::Number>().Int32Value();
  struct sockaddr_storage ss;
  socklen_t len;
  if (!fillInet(addr, port, ss, len)) throw errnoError(info.Env(), EINVAL, std::string(bindIt ? "bind" : "connect") + " " + addr);
  int r = bindIt ? bind(fd, reinterpret_cast<struct sockaddr *>(&ss), len) : connect(fd, reinterpret_cast<struct sockaddr *>(&ss), len);
  if (r < 0) throw errnoError(info.Env(), errno, std::string(bindIt ? "bind " : "connect ") + addr + ":" + std::to_string(port));
  return info.Env().Undefined();
}
Napi::Value IpBind(const Napi::CallbackInfo &info) { return IpBindOrConnect(info, true); }
Napi::Value IpConnect(const Napi::CallbackInfo &info) { return IpBindOrConnect(info, false); }

// Opens a file (for null://: /dev/null) and returns the fd.
Napi::Value OpenFile(const Napi::CallbackInfo &info) {
  std::string p = info[0].As<Napi::String>().Utf8Value();
  int flags = info[1].As<Napi::Number>().Int32Value();
  int fd = open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw errnoError(info.Env(), errno, "open " + p);
  return Napi::Number::New(info.Env(), fd);
}

// Offload checks without a tap (tests, tools): vnetCheck(hdr10, frame) -> "plain" | "needsWork" |
// "bad"; vnetResolve(hdr10, frame) -> the frames a destination without offloads gets (null: bad).
Napi::Value VnetCheckJs(const Napi::CallbackInfo &info) {
  auto h = info[0].As<Napi::Buffer<uint8_t>>();
  auto f = info[1].As<Napi::Buffer<uint8_t>>();
  if (h.Length() < VNET_HDR_BYTES) throw Napi::RangeError::New(info.Env(), "vnetCheck: header shorter than 10 bytes");
  VnetHdr vh;
  vnetDecode(h.Data(), vh);
  VnetVerdict v = vnetCheck(vh, f.Data(), uint32_t(f.Length()));
  return Napi::String::New(info.Env(), v == VnetVerdict::Plain ? "plain" : v == VnetVerdict::NeedsWork ? "needsWork" : "bad");
}

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

Napi::Value DropNames(const Napi::CallbackInfo &info) {
  Napi::Array a = Napi::Array::New(info.Env(), DROP_COUNT);
  for (uint32_t i = 0; i < DROP_COUNT; i++) a.Set(i, Napi::String::New(info.Env(), DROP_NAMES[i]));
  return a;
}

std::string macString(uint64_t key) {
  char buf[18];
  snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", unsigned(key >> 40 & 0xff), unsigned(key >> 32 & 0xff),
           unsigned(key >> 24 & 0xff), unsigned(key >> 16 & 0xff), unsigned(key >> 8 & 0xff), unsigned(key & 0xff));
  return buf;
}

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {
                           InstanceMethod("addEndpoint", &EngineWrap::AddEndpoint),
                           InstanceMethod("removeEndpoint", &EngineWrap::RemoveEndpoint),
                           InstanceMethod("addCustomEndpoint", &EngineWrap::AddCustomEndpoint),
                           InstanceMethod("setNumPorts", &EngineWrap::SetNumPorts),
                           InstanceMethod("setHub", &EngineWrap::SetHub),
                           InstanceMethod("setBackpressure", &EngineWrap::SetBackpressure),
                           InstanceMethod("setUntagged", &EngineWrap::SetUntagged),
                           InstanceMethod("setTagged", &EngineWrap::SetTagged),
                           InstanceMethod("setForeignTags", &EngineWrap::SetForeignTags),
                           InstanceMethod("setStpCapture", &EngineWrap::SetStpCapture),
                           InstanceMethod("setStpState", &EngineWrap::SetStpState),
                           InstanceMethod("setAging", &EngineWrap::SetAging),
                           InstanceMethod("setStorm", &EngineWrap::SetStorm),
                           InstanceMethod("setMirror", &EngineWrap::SetMirror),
                           InstanceMethod("resizeMacTable", &EngineWrap::ResizeMacTable),
                           InstanceMethod("flushMacs", &EngineWrap::FlushMacs),
                           InstanceMethod("resetCounters", &EngineWrap::ResetCounters),
                           InstanceMethod("injectFrame", &EngineWrap::InjectFrame),
                           InstanceMethod("macTable", &EngineWrap::MacTableJs),
                           InstanceMethod("macFind", &EngineWrap::MacFind),
                           InstanceMethod("counters", &EngineWrap::Counters),
                           InstanceMethod("macCount", &EngineWrap::MacCount),
                           InstanceMethod("macSlots", &EngineWrap::MacSlots),
                           InstanceMethod("close", &EngineWrap::Close),
                       });
  }

  EngineWrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    int numPorts = info[0].As<Napi::Number>().Int32Value();
    if (info.Length() > 1 && info[1].IsFunction()) {
      tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "vde-engine-events", 0, 1);
      tsfn_.Unref(env);
      hasTsfn_ = true;
    }
    engine_ = std::make_unique<Engine>(numPorts, [this] {
      if (!hasTsfn_) return;
      Engine *eng = engine_.get();
      tsfn_.NonBlockingCall([eng](Napi::Env env, Napi::Function cb) {
        std::vector<EngineEvent> evs = eng->takeEvents();
        Napi::Array arr = Napi::Array::New(env, evs.size());
        for (size_t i = 0; i < evs.size(); i++) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("type", evs[i].type);
          o.Set("port", evs[i].port);
          o.Set("ep", double(evs[i].ep));
          o.Set("errno", evs[i].err);
          o.Set("detail", evs[i].detail);
          if (!evs[i].frame.empty())
            o.Set("frame", Napi::Buffer<uint8_t>::Copy(env, evs[i].frame.data(), evs[i].frame.size()));
          arr.Set(uint32_t(i), o);
        }
        cb.Call({arr});
      });
    });
  }

  ~EngineWrap() override { shutdown(); }

 private:
  void shutdown() {
    if (engine_) {
      engine_->stop();
      engine_.reset();
    }
    if (hasTsfn_) {
      tsfn_.Release();
      hasTsfn_ = false;
    }
  }
  Engine &eng(const Napi::CallbackInfo &info) {
    if (!engine_) throw Napi::Error::New(info.Env(), "engine is closed");
    return *engine_;
  }
  static int I(const Napi::CallbackInfo &info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }

  Napi::Value AddEndpoint(const Napi::CallbackInfo &info) {
    int txFd = info.Length() > 5 && info[5].IsNumber() ? I(info, 5) : -1;
    bool adopt = info.Length() > 6 && info[6].ToBoolean().Value();
    bool vnetHdr = info.Length() > 7 && info[7].ToBoolean().Value();
    uint32_t id = eng(info).addEndpoint(I(info, 0), I(info, 1), EpKind(I(info, 2)), uint32_t(I(info, 3)),
                                        info[4].As<Napi::Boolean>().Value(), txFd, adopt, vnetHdr);
    return Napi::Number::New(info.Env(), id);
  }
  Napi::Value AddCustomEndpoint(const Napi::CallbackInfo &info) {
    if (!info[1].IsExternal()) throw Napi::TypeError::New(info.Env(), "addCustomEndpoint: not an endpoint handle");
    IoHolder *h = info[1].As<Napi::External<IoHolder>>().Data();
    if (!h->io) throw Napi::Error::New(info.Env(), "addCustomEndpoint: this endpoint handle was used already");
    uint32_t id = eng(info).addCustomEndpoint(I(info, 0), std::move(h->io), uint32_t(I(info, 2)));
    return Napi::Number::New(info.Env(), id);
  }
  Napi::Value RemoveEndpoint(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), eng(info).removeEndpoint(uint32_t(info[0].As<Napi::Number>().Int64Value())));
  }
  Napi::Value SetNumPorts(const Napi::CallbackInfo &info) { eng(info).setNumPorts(I(info, 0)); return info.Env().Undefined(); }
  Napi::Value SetHub(const Napi::CallbackInfo &info) { eng(info).setHub(info[0].As<Napi::Boolean>()); return info.Env().Undefined(); }
  Napi::Value SetBackpressure(const Napi::CallbackInfo &info) { eng(info).setBackpressure(info[0].As<Napi::Boolean>()); return info.Env().Undefined(); }
  Napi::Value SetUntagged(const Napi::CallbackInfo &info) { eng(info).setUntagged(I(info, 0), uint16_t(I(info, 1))); return info.Env().Undefined(); }
  Napi::Value SetTagged(const Napi::CallbackInfo &info) {
    eng(info).setTagged(I(info, 0), uint16_t(I(info, 1)), info[2].As<Napi::Boolean>());
    return info.Env().Undefined();
  }
  Napi::Value SetForeignTags(const Napi::CallbackInfo &info) { eng(info).setForeignTags(ForeignTags(I(info, 0))); return info.Env().Undefined(); }
  Napi::Value SetStpCapture(const Napi::CallbackInfo &info) { eng(info).setStpCapture(info[0].As<Napi::Boolean>()); return info.Env().Undefined(); }
  Napi::Value SetStpState(const Napi::CallbackInfo &info) { eng(info).setStpState(I(info, 0), StpState(I(info, 1))); return info.Env().Undefined(); }
  Napi::Value SetAging(const Napi::CallbackInfo &info) {
    eng(info).setAging(uint32_t(I(info, 0)), uint32_t(I(info, 1)), uint32_t(I(info, 2)));
    return info.Env().Undefined();
  }
  Napi::Value SetStorm(const Napi::CallbackInfo &info) { eng(info).setStorm(I(info, 0), uint32_t(I(info, 1))); return info.Env().Undefined(); }
  Napi::Value SetMirror(const Napi::CallbackInfo &info) { eng(info).setMirror(I(info, 0), I(info, 1), I(info, 2)); return info.Env().Undefined(); }
  Napi::Value ResizeMacTable(const Napi::CallbackInfo &info) { eng(info).resizeMacTable(size_t(I(info, 0))); return info.Env().Undefined(); }
  Napi::Value FlushMacs(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), double(eng(info).flushMacs(I(info, 0), I(info, 1))));
  }
  Napi::Value ResetCounters(const Napi::CallbackInfo &info) { eng(info).resetCounters(I(info, 0)); return info.Env().Undefined(); }
  Napi::Value InjectFrame(const Napi::CallbackInfo &info) {
    Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
    return Napi::Boolean::New(info.Env(), eng(info).injectFrame(I(info, 0), b.Data(), b.Length()));
  }
  Napi::Value MacTableJs(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::vector<MacInfo> t = eng(info).macTable();
    Napi::Array arr = Napi::Array::New(env, t.size());
    for (size_t i = 0; i < t.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("mac", macString(t[i].key));
      o.Set("vlan", double(t[i].key >> 48));
      o.Set("port", t[i].port);
      o.Set("ageSeconds", double(t[i].ageSeconds));
      o.Set("bucket", double(t[i].slot));
      arr.Set(uint32_t(i), o);
    }
    return arr;
  }
  Napi::Value MacFind(const Napi::CallbackInfo &info) {
    Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
    if (b.Length() != 6) throw Napi::TypeError::New(info.Env(), "MAC must be 6 bytes");
    MacInfo m;
    if (!eng(info).macFind(macKey(b.Data(), uint16_t(I(info, 1))), m)) return info.Env().Null();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("mac", macString(m.key));
    o.Set("vlan", double(m.key >> 48));
    o.Set("port", m.port);
    o.Set("ageSeconds", double(m.ageSeconds));
    return o;
  }
  Napi::Value Counters(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    PortCounters c = eng(info).counters(I(info, 0));
    Napi::Object o = Napi::Object::New(env);
    o.Set("inFrames", double(c.inFrames));
    o.Set("inBytes", double(c.inBytes));
    o.Set("outFrames", double(c.outFrames));
    o.Set("outBytes", double(c.outBytes));
    Napi::Object d = Napi::Object::New(env);
    for (int i = 0; i < DROP_COUNT; i++) d.Set(DROP_NAMES[i], double(c.drops[i]));
    o.Set("drops", d);
    return o;
  }
  Napi::Value MacCount(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), double(eng(info).macCount())); }
  Napi::Value MacSlots(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), double(eng(info).macSlots())); }
  Napi::Value Close(const Napi::CallbackInfo &info) { shutdown(); return info.Env().Undefined(); }

  std::unique_ptr<Engine> engine_;
  Napi::ThreadSafeFunction tsfn_;
  bool hasTsfn_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineWrap::Init(env));
  RegisterSlirp(env, exports);
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
  RegisterVxlan(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(vde_native, Init)
