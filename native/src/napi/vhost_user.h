// Registration of the vhost-user endpoint factory (napi/vhost_user.cc).
#pragma once

#include <napi.h>

namespace vde {

/** Adds createVhostUser(fd) to the addon's exports. */
void RegisterVhostUser(Napi::Env env, Napi::Object exports);

}  // namespace vde
