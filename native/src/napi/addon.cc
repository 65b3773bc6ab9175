// Node-API module initialisation: the Engine class, the socket/tap/offload helpers, libslirp and
// the VXLAN/VXVDE, crypt:// (authenticated encrypted cables) and vhost-user endpoint factories.
// Frames never cross into JavaScript except rare control frames (spanning-tree BPDUs) delivered
// as events.
#include <napi.h>

#include "../slirp.h"
#include "../kinds/crypt.h"
#include "../vxlan.h"
#include "engine_wrap.h"
#include "sockets.h"
#include "vhost_user.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vde::RegisterEngine(env, exports);
  vde::RegisterSockets(env, exports);
  vde::RegisterSlirp(env, exports);
  vde::RegisterVxlan(env, exports);
  vde::RegisterCrypt(env, exports);
  vde::RegisterVhostUser(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(vde_native, Init)
