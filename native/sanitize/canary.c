/*
 * Canary of the sanitizer run (scripts/test-sanitized.mjs): a tiny N-API module with one memory
 * error and one undefined behaviour, built with the sanitizer build's flags and loaded through
 * VDE_NATIVE_ADDON in the ASan node before the tests start. Each must leave a report in the log
 * directory, which proves that reports from a process the tests start really reach the check.
 * Not part of the addon (native/src holds the addon's sources).
 */
#include <node_api.h>
#include <stdlib.h>

/** Writes into freed memory (an ASan heap-use-after-free report). */
static napi_value UseAfterFree(napi_env env, napi_callback_info info) {
  volatile char *p = malloc(8);
  free((void *)p);
  p[1] = 2;
  return NULL;
}

/** Overflows a signed int (an UBSan check; it traps, and ASan reports the trap as ILL). */
static napi_value SignedOverflow(napi_env env, napi_callback_info info) {
  volatile int x = 0x7fffffff, one = 1;
  x += one;
  return NULL;
}

/** Exports useAfterFree() and signedOverflow(). */
NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "useAfterFree", NAPI_AUTO_LENGTH, UseAfterFree, NULL, &fn);
  napi_set_named_property(env, exports, "useAfterFree", fn);
  napi_create_function(env, "signedOverflow", NAPI_AUTO_LENGTH, SignedOverflow, NULL, &fn);
  napi_set_named_property(env, exports, "signedOverflow", fn);
  return exports;
}
