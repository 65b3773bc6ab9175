// The N-API side of crypt:// (kinds/crypt.h): createCrypt(opts) makes the endpoint over fds that
// JavaScript opened (a datagram socket or a stream) and returns {handle, control}: the handle for
// engine.addCustomEndpoint, the control for cryptSetKeys (keys that changed while it runs) and
// cryptStats (its counters). Every option is checked again here; keys are copied out of the
// JavaScript buffers and wiped from our copies when they are replaced.
#include <errno.h>
#include <fcntl.h>
#include <napi.h>
#include <openssl/crypto.h>

#include <cmath>
#include <memory>
#include <string>

#include "customio.h"
#include "kinds/crypt.h"

namespace vde {
namespace {

using ControlHandle = std::shared_ptr<CryptControl>;

// Reads [{id: 0..255, key: Buffer(32)}, ...] (1..CR_MAX_KEYS entries, ids unique) with the hello keys derived.
std::vector<CryptKey> readKeys(const Napi::Value &v) {
  Napi::Env env = v.Env();
  if (!v.IsArray()) throw Napi::TypeError::New(env, "crypt keys: an array of {id, key} is required");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() == 0 || a.Length() > CR_MAX_KEYS) throw Napi::RangeError::New(env, "crypt keys: 1.." + std::to_string(CR_MAX_KEYS) + " keys");
  std::vector<CryptKey> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    if (!a.Get(i).IsObject()) throw Napi::TypeError::New(env, "crypt keys: an array of {id, key} is required");
    Napi::Object o = a.Get(i).As<Napi::Object>();
    Napi::Value id = o.Get("id"), key = o.Get("key");
    if (!id.IsNumber() || !key.IsBuffer()) throw Napi::TypeError::New(env, "crypt keys: id must be a number and key a Buffer");
    double d = id.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > 255) throw Napi::RangeError::New(env, "crypt keys: id must be 0..255");
    Napi::Buffer<uint8_t> b = key.As<Napi::Buffer<uint8_t>>();
    if (b.Length() != CR_KEY_BYTES) throw Napi::RangeError::New(env, "crypt keys: a key is 32 bytes");
    CryptKey k;
    k.id = uint8_t(d);
    memcpy(k.key, b.Data(), CR_KEY_BYTES);
    for (const CryptKey &x : out)
      if (x.id == k.id) throw Napi::RangeError::New(env, "crypt keys: key id " + std::to_string(k.id) + " is given twice");
    if (!cryptPrepareKey(k)) throw Napi::Error::New(env, "crypt keys: HKDF failed");
    out.push_back(k);
  }
  return out;
}

// Reads the send key id and checks that it is one of keys.
uint8_t readSendKid(const Napi::Value &v, const std::vector<CryptKey> &keys) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "crypt: sendKey must be a key id");
  double d = v.As<Napi::Number>().DoubleValue();
  for (const CryptKey &k : keys)
    if (double(k.id) == d) return k.id;
  throw Napi::RangeError::New(v.Env(), "crypt: sendKey is not one of the keys");
}

// Installs keys in a control (the engine thread takes them up at its next wakeup).
void putKeys(CryptControl &c, std::vector<CryptKey> &&keys, uint8_t sendKid) {
  std::lock_guard<std::mutex> g(c.mu);
  for (CryptKey &k : c.keys) OPENSSL_cleanse(&k, sizeof k);
  c.keys = std::move(keys);
  c.sendKid = sendKid;
  c.version.fetch_add(1, std::memory_order_release);
}

int fdOpt(const Napi::Object &o, const char *key, bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && !required) return -1;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("crypt: ") + key + " must be a file descriptor");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > 0x7fffffff) throw Napi::RangeError::New(o.Env(), std::string("crypt: ") + key + " must be a file descriptor");
  int fd = int(d);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    Napi::Error e = Napi::Error::New(o.Env(), std::string("crypt: ") + key + ": " + strerror(errno));
    e.Set("errno", Napi::Number::New(o.Env(), errno));
    throw e;
  }
  return fd;
}

// createCrypt({fd, txFd?, stream, adoptPeer, closeFds, offload?, suite, keys, sendKey, rekeySeconds?}) → {handle, control}.
Napi::Value CreateCrypt(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "crypt: an options object is required");
  Napi::Object o = info[0].As<Napi::Object>();
  CryptTransport t;
  t.fd = fdOpt(o, "fd", true);
  t.txFd = fdOpt(o, "txFd", false);
  t.stream = o.Get("stream").ToBoolean().Value();
  t.adoptPeer = o.Get("adoptPeer").ToBoolean().Value();
  t.closeFds = o.Get("closeFds").ToBoolean().Value();
  t.offload = o.Get("offload").IsUndefined() || o.Get("offload").ToBoolean().Value();
  if (!o.Get("rekeySeconds").IsUndefined()) {
    Napi::Value r = o.Get("rekeySeconds");
    double d = r.IsNumber() ? r.As<Napi::Number>().DoubleValue() : -1;
    if (!std::isfinite(d) || d != std::floor(d) || d < 1 || d > 86400) throw Napi::RangeError::New(env, "crypt: rekeySeconds must be 1..86400");
    t.rekeyNs = uint64_t(d) * CR_NS_PER_SECOND;
  }
  std::string suite = o.Get("suite").IsString() ? o.Get("suite").As<Napi::String>().Utf8Value() : "chacha20-poly1305";
  uint8_t s;
  if (suite == "chacha20-poly1305") s = CR_SUITE_CHACHA20_POLY1305;
  else if (suite == "aes-256-gcm") s = CR_SUITE_AES_256_GCM;
  else throw Napi::RangeError::New(env, "crypt: suite must be chacha20-poly1305 or aes-256-gcm");
  std::vector<CryptKey> keys = readKeys(o.Get("keys"));
  uint8_t send = readSendKid(o.Get("sendKey"), keys);
  auto ctl = std::make_shared<CryptControl>();
  putKeys(*ctl, std::move(keys), send);
  std::unique_ptr<Endpoint> ep = makeCryptEndpoint(t, s, ctl);
  if (!ep) {
    Napi::Error e = Napi::Error::New(env, std::string("crypt: timerfd_create: ") + strerror(errno));
    e.Set("errno", Napi::Number::New(env, errno));
    throw e;
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("control", Napi::External<ControlHandle>::New(env, new ControlHandle(ctl), [](Napi::Env, ControlHandle *p) { delete p; }));
  r.Set("handle", WrapEndpoint(env, std::move(ep)));
  return r;
}

CryptControl &control(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "not a crypt control");
  return **info[0].As<Napi::External<ControlHandle>>().Data();
}

// cryptSetKeys(control, keys, sendKey): replaces the keys of a running endpoint.
Napi::Value CryptSetKeys(const Napi::CallbackInfo &info) {
  CryptControl &c = control(info);
  std::vector<CryptKey> keys = readKeys(info[1]);
  uint8_t send = readSendKid(info[2], keys);
  putKeys(c, std::move(keys), send);
  return info.Env().Undefined();
}

// cryptStats(control): the endpoint's counters.
Napi::Value CryptStats(const Napi::CallbackInfo &info) {
  CryptControl &c = control(info);
  Napi::Object o = Napi::Object::New(info.Env());
  auto put = [&](const char *k, const std::atomic<uint64_t> &v) { o.Set(k, double(v.load(std::memory_order_relaxed))); };
  put("rxFrames", c.rxFrames);
  put("txFrames", c.txFrames);
  put("malformed", c.malformed);
  put("unknownKey", c.unknownKey);
  put("badAuth", c.badAuth);
  put("noSession", c.noSession);
  put("replayed", c.replayed);
  put("helloReceived", c.helloReceived);
  put("helloSent", c.helloSent);
  put("handshakes", c.handshakes);
  put("rotations", c.rotations);
  put("txNoSession", c.txNoSession);
  o.Set("established", c.established.load(std::memory_order_relaxed));
  return o;
}

}  // namespace

/** Adds createCrypt, cryptSetKeys and cryptStats to the addon's exports. */
void RegisterCrypt(Napi::Env env, Napi::Object exports) {
  exports.Set("createCrypt", Napi::Function::New(env, CreateCrypt));
  exports.Set("cryptSetKeys", Napi::Function::New(env, CryptSetKeys));
  exports.Set("cryptStats", Napi::Function::New(env, CryptStats));
}

}  // namespace vde
