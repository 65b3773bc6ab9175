// Registration of the Engine class (napi/engine_wrap.cc).
#pragma once

#include <napi.h>

namespace vde {

/** Adds the Engine class to the addon's exports. */
void RegisterEngine(Napi::Env env, Napi::Object exports);

}  // namespace vde
