// Registration of the socket, tap and offload helpers (napi/sockets.cc).
#pragma once

#include <napi.h>

namespace vde {

/** Adds the helpers to the addon's exports. */
void RegisterSockets(Napi::Env env, Napi::Object exports);

}  // namespace vde
