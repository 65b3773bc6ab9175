// Hand-over of custom endpoint I/O objects (EndpointIo, see kinds/custom.h) from the factories
// that create them (e.g. VXLAN sockets), or of whole endpoints of kinds made outside the engine
// (crypt://, vhost-user), to JavaScript and on to the engine's addCustomEndpoint: the object
// travels as a Napi::External that owns it until the engine takes it.
#pragma once

#include <napi.h>

#include <memory>

#include "kinds/custom.h"

namespace vde {

struct IoHolder {
  std::unique_ptr<EndpointIo> io;
  std::unique_ptr<Endpoint> ep;  // or a whole endpoint kind made outside the engine (crypt://, vhost-user)
};

/** Wraps an endpoint (a kind of its own, e.g. crypt://) for JavaScript, like WrapIo. */
inline Napi::Value WrapEndpoint(Napi::Env env, std::unique_ptr<Endpoint> ep) {
  auto *h = new IoHolder{nullptr, std::move(ep)};
  return Napi::External<IoHolder>::New(env, h, [](Napi::Env, IoHolder *p) { delete p; });
}

/** Wraps an EndpointIo for JavaScript; deleted with the wrapper unless an engine took it. */
inline Napi::Value WrapIo(Napi::Env env, std::unique_ptr<EndpointIo> io) {
  auto *h = new IoHolder{std::move(io), nullptr};
  return Napi::External<IoHolder>::New(env, h, [](Napi::Env, IoHolder *p) { delete p; });
}

}  // namespace vde
