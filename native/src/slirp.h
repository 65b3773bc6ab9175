// User-mode NAT (libslirp) as a frame source/sink for the engine.
//
// createSlirp(opts) starts one libslirp instance on its own native thread with its own poll
// loop and returns { fd, handle }: fd is one end of a SOCK_SEQPACKET socketpair that the caller
// hands to the engine as an ordinary datagram endpoint (no JavaScript per frame); the slirp
// thread reads frames from the other end into slirp_input and writes slirp's frames back to it
// (dropping and counting when the socket is full, never blocking). The handle offers close(),
// addForward/removeForward (host port forwards, applied under the instance mutex) and stats().
#pragma once

#include <napi.h>

namespace vde {

/** Adds createSlirp and slirpVersion to the addon's exports. */
void RegisterSlirp(Napi::Env env, Napi::Object exports);

}  // namespace vde
