// The crypt:// endpoint kind: frames sealed with the "vde-ts crypt v1" protocol (crypt_proto.h)
// over a datagram socket (UDP, unix datagrams: one record per datagram) or a byte stream (TCP,
// ssh through stdio or a child's pipes: records behind a 4-byte length). JavaScript opens the
// transport (any datagram or stream locator), then hands its fds and the keys to createCrypt;
// the engine drives the endpoint on its thread. A CryptControl shared with JavaScript carries
// new keys in (a key file that changed) and the counters out.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "../crypt_proto.h"
#include "kind.h"

namespace vde {

/** Keys in, counters out: shared by JavaScript and the engine thread. */
struct CryptControl {
  std::mutex mu;
  std::vector<CryptKey> keys;  // under mu: the next keys
  uint8_t sendKid = 0;         // under mu
  std::atomic<uint64_t> version{0};
  // published by the engine thread after every batch and timer tick
  std::atomic<uint64_t> rxFrames{0}, txFrames{0}, malformed{0}, unknownKey{0}, badAuth{0}, noSession{0}, replayed{0};
  std::atomic<uint64_t> helloReceived{0}, helloSent{0}, handshakes{0}, rotations{0}, txNoSession{0};
  std::atomic<bool> established{false};
};

/** How the records travel. */
struct CryptTransport {
  int fd = -1;
  int txFd = -1;        // the write side of a stream made of two fds (stdin/stdout, a child's pipes); -1 = fd
  bool stream = false;  // byte stream (4-byte length before each record), else one record per datagram
  bool adoptPeer = false;  // an unconnected datagram socket: send to where authenticated records come from
  bool closeFds = true;    // the endpoint closes its fds when it goes
  bool offload = true;     // send GSO frames as SEG records where the transport carries them (crypt_proto.h)
  uint64_t rekeyNs = REKEY_SECONDS * CR_NS_PER_SECOND;  // a new nonce at least this often
};

/** Creates a crypt endpoint sending with suite (CR_SUITE_*); the keys come through ctl (version > 0). Null (errno set) when its timer cannot be made. */
std::unique_ptr<Endpoint> makeCryptEndpoint(const CryptTransport &t, uint8_t suite, std::shared_ptr<CryptControl> ctl);

}  // namespace vde

namespace Napi {
class Env;
class Object;
}  // namespace Napi

namespace vde {

/** Adds createCrypt, cryptSetKeys and cryptStats to the addon's exports (crypt_napi.cc). */
void RegisterCrypt(Napi::Env env, Napi::Object exports);

}  // namespace vde
