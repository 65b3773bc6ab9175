// JavaScript errors for failed system calls: an Error whose message names the step and the
// reason, with the numeric errno in `errno` and the step in `syscall`; src/native turns them into
// Node-style errors with a `code` such as 'EPERM'.
#pragma once

#include <napi.h>
#include <string.h>

#include <string>

namespace vde {

/** An Error for a failed step with errno err. */
inline Napi::Error errnoError(Napi::Env env, int err, const std::string &what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

}  // namespace vde
