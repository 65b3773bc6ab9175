// createVhostUser(fd): turns a connected vhost-user control socket (accepted by the switch's
// --vhost-user listener) into a native endpoint handle for engine.addCustomEndpoint. The
// endpoint owns the fd from here on, also when this call fails.
#include "vhost_user.h"

#include <errno.h>
#include <unistd.h>

#include "../customio.h"
#include "../kinds/vhost_user.h"
#include "errors.h"

namespace vde {
namespace {

Napi::Value CreateVhostUser(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "createVhostUser: a file descriptor is required");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::RangeError::New(info.Env(), "createVhostUser: a file descriptor is required");
  std::unique_ptr<Endpoint> ep = makeVhostUserEndpoint(fd);
  if (!ep) throw errnoError(info.Env(), errno, "vhost-user endpoint");
  return WrapEndpoint(info.Env(), std::move(ep));
}

}  // namespace

void RegisterVhostUser(Napi::Env env, Napi::Object exports) { exports.Set("createVhostUser", Napi::Function::New(env, CreateVhostUser)); }

}  // namespace vde
