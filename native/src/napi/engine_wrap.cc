// The Engine as a JavaScript class. Configuration calls post commands (they return at once);
// counters and statistics are read without a lock; MAC-table queries come back as "reply"
// events. Events cross to JavaScript by value: the engine thread hands a vector of events to a
// typed thread-safe function, and the JavaScript callback converts and frees it. Nothing here
// captures a pointer to the Engine or the wrapper, so closing is safe while events are in flight;
// events that arrive after close() are dropped by the callback with their memory.
//
// Constructed with {manual: true} the engine has no thread (test harness): events then wait in
// the wrapper until takeEvents() collects them.
#include <errno.h>
#include <ctype.h>
#include <fcntl.h>

#include <napi.h>

#include <memory>
#include <vector>

#include "../capture_filter.h"
#include "../customio.h"
#include "../engine.h"
#include "engine_wrap.h"
#include "errors.h"

namespace vde {
namespace {

/** Longest instance part of a stage name ("capture:INSTANCE"). */
constexpr size_t MAX_STAGE_INSTANCE_BYTES = 32;

std::string macString(uint64_t key) {
  char buf[18];
  snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", unsigned(key >> 40 & 0xff), unsigned(key >> 32 & 0xff),
           unsigned(key >> 24 & 0xff), unsigned(key >> 16 & 0xff), unsigned(key >> 8 & 0xff), unsigned(key & 0xff));
  return buf;
}

const char *typeName(EngineEvent::Type t) {
  switch (t) {
    case EngineEvent::Bpdu: return "bpdu";
    case EngineEvent::EpError: return "epError";
    case EngineEvent::EpClosed: return "epClosed";
    case EngineEvent::EngineFailed: return "engineFailed";
    case EngineEvent::Reply: return "reply";
    case EngineEvent::StageNote: return "stage";
    case EngineEvent::Macs: return "macs";
  }
  return "unknown";
}

const char *macChangeName(MacChange c) {
  switch (c) {
    case MacChange::Learned: return "learned";
    case MacChange::Moved: return "moved";
    case MacChange::Aged: return "aged";
    case MacChange::Evicted: return "evicted";
  }
  return "unknown";
}

/** Events on their way to JavaScript, with the counters of spanning-tree frames and MAC changes in flight. */
struct Payload {
  std::vector<EngineEvent> events;
  std::shared_ptr<std::atomic<int64_t>> bpduInflight;
  std::shared_ptr<std::atomic<int64_t>> macInflight;
};

/** Subtracts what a batch of events carried from the engine's in-flight counters. */
void consumed(const std::vector<EngineEvent> &evs, std::atomic<int64_t> *bpdus, std::atomic<int64_t> *macs) {
  int64_t b = 0, m = 0;
  for (const EngineEvent &e : evs) {
    if (e.type == EngineEvent::Bpdu) b++;
    if (e.type == EngineEvent::Macs) m += int64_t(e.macChanges.size());
  }
  if (b && bpdus) bpdus->fetch_sub(b, std::memory_order_relaxed);
  if (m && macs) macs->fetch_sub(m, std::memory_order_relaxed);
}

Napi::Array toJs(Napi::Env env, const std::vector<EngineEvent> &evs) {
  Napi::Array arr = Napi::Array::New(env, evs.size());
  for (size_t i = 0; i < evs.size(); i++) {
    const EngineEvent &e = evs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("type", typeName(e.type));
    o.Set("port", e.port);
    o.Set("ep", double(e.ep));
    o.Set("errno", e.err);
    o.Set("detail", e.detail);
    if (!e.frame.empty()) o.Set("frame", Napi::Buffer<uint8_t>::Copy(env, e.frame.data(), e.frame.size()));
    if (e.type == EngineEvent::StageNote) o.Set("name", e.name);
    if (e.type == EngineEvent::Macs) {
      Napi::Array ch = Napi::Array::New(env, e.macChanges.size());
      for (size_t k = 0; k < e.macChanges.size(); k++) {
        const MacChangeRec &c = e.macChanges[k];
        Napi::Object x = Napi::Object::New(env);
        x.Set("what", macChangeName(c.what));
        x.Set("mac", macString(c.key));
        x.Set("vlan", double(keyVlan(c.key)));
        x.Set("port", c.port);
        if (c.oldPort >= 0) x.Set("oldPort", c.oldPort);
        ch.Set(uint32_t(k), x);
      }
      o.Set("macs", ch);
    }
    if (e.type == EngineEvent::Reply) {
      o.Set("queryId", double(e.queryId));
      Napi::Array macs = Napi::Array::New(env, e.macs.size());
      for (size_t k = 0; k < e.macs.size(); k++) {
        const MacTable::Info &m = e.macs[k];
        Napi::Object x = Napi::Object::New(env);
        x.Set("mac", macString(m.key));
        x.Set("vlan", double(keyVlan(m.key)));
        x.Set("port", m.port);
        x.Set("ageSeconds", double(m.lastSeen));  // replies carry the age here (see EngineEvent)
        x.Set("bucket", double(m.bucket));
        macs.Set(uint32_t(k), x);
      }
      o.Set("macs", macs);
      Napi::Array stages = Napi::Array::New(env, e.stages.size());
      for (size_t k = 0; k < e.stages.size(); k++) {
        const StageReport &r = e.stages[k];
        Napi::Object x = Napi::Object::New(env);
        x.Set("port", r.port);
        x.Set("dir", r.ingress ? "in" : "out");
        x.Set("name", r.name);
        Napi::Object vals = Napi::Object::New(env);
        for (const auto &[key, v] : r.values) vals.Set(key, v);
        x.Set("values", vals);
        stages.Set(uint32_t(k), x);
      }
      o.Set("stages", stages);
    }
    arr.Set(uint32_t(i), o);
  }
  return arr;
}

void deliver(Napi::Env env, Napi::Function cb, void *, Payload *p) {
  std::unique_ptr<Payload> own(p);
  if (!p) return;
  consumed(p->events, p->bpduInflight.get(), p->macInflight.get());
  if (env == nullptr || cb.IsEmpty()) return;
  cb.Call({toJs(env, p->events)});
}

using Tsfn = Napi::TypedThreadSafeFunction<void, Payload, deliver>;

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {
                           InstanceMethod("addEndpoint", &EngineWrap::AddEndpoint),
                           InstanceMethod("removeEndpoint", &EngineWrap::RemoveEndpoint),
                           InstanceMethod("addCustomEndpoint", &EngineWrap::AddCustomEndpoint),
                           InstanceMethod("setNumPorts", &EngineWrap::SetNumPorts),
                           InstanceMethod("setHub", &EngineWrap::SetHub),
                           InstanceMethod("setBackpressure", &EngineWrap::SetBackpressure),
                           InstanceMethod("setUntagged", &EngineWrap::SetUntagged),
                           InstanceMethod("setTagged", &EngineWrap::SetTagged),
                           InstanceMethod("setForeignTags", &EngineWrap::SetForeignTags),
                           InstanceMethod("setStpCapture", &EngineWrap::SetStpCapture),
                           InstanceMethod("setStpState", &EngineWrap::SetStpState),
                           InstanceMethod("setProtected", &EngineWrap::SetProtected),
                           InstanceMethod("holdCommands", &EngineWrap::HoldCommands),
                           InstanceMethod("releaseCommands", &EngineWrap::ReleaseCommands),
                           InstanceMethod("setAging", &EngineWrap::SetAging),
                           InstanceMethod("setStorm", &EngineWrap::SetStorm),
                           InstanceMethod("setMirror", &EngineWrap::SetMirror),
                           InstanceMethod("setStage", &EngineWrap::SetStage),
                           InstanceMethod("queryStages", &EngineWrap::QueryStages),
                           InstanceMethod("setMacTableMax", &EngineWrap::SetMacTableMax),
                           InstanceMethod("setMacEvents", &EngineWrap::SetMacEvents),
                           InstanceMethod("countersTable", &EngineWrap::CountersTable),
                           InstanceMethod("setQueueBudget", &EngineWrap::SetQueueBudget),
                           InstanceMethod("flushMacs", &EngineWrap::FlushMacs),
                           InstanceMethod("resetCounters", &EngineWrap::ResetCounters),
                           InstanceMethod("injectFrame", &EngineWrap::InjectFrame),
                           InstanceMethod("queryMacs", &EngineWrap::QueryMacs),
                           InstanceMethod("counters", &EngineWrap::Counters),
                           InstanceMethod("countersAll", &EngineWrap::CountersAll),
                           InstanceMethod("stats", &EngineWrap::Stats),
                           InstanceMethod("nowSeconds", &EngineWrap::NowSeconds),
                           InstanceMethod("close", &EngineWrap::Close),
                           // manual mode (tests)
                           InstanceMethod("pollOnce", &EngineWrap::PollOnce),
                           InstanceMethod("ingress", &EngineWrap::Ingress),
                           InstanceMethod("setTimeNs", &EngineWrap::SetTimeNs),
                           InstanceMethod("advanceNs", &EngineWrap::AdvanceNs),
                           InstanceMethod("takeEvents", &EngineWrap::TakeEvents),
                       });
  }

  EngineWrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    int numPorts = info[0].As<Napi::Number>().Int32Value();
    manual_ = info.Length() > 2 && info[2].IsObject() && info[2].As<Napi::Object>().Get("manual").ToBoolean().Value();
    Engine::EventSink sink;
    if (manual_) {
      auto store = pending_;
      sink = [store](std::vector<EngineEvent> &&evs) {
        for (auto &e : evs) store->push_back(std::move(e));
      };
    } else if (info.Length() > 1 && info[1].IsFunction()) {
      tsfn_ = Tsfn::New(env, info[1].As<Napi::Function>(), "vde-engine-events", 0, 1);
      tsfn_.Unref(env);
      hasTsfn_ = true;
      Tsfn t = tsfn_;
      auto inflight = std::make_shared<std::shared_ptr<std::atomic<int64_t>>>();
      auto macInflight = std::make_shared<std::shared_ptr<std::atomic<int64_t>>>();
      inflight_ = inflight;
      macInflight_ = macInflight;
      sink = [t, inflight, macInflight](std::vector<EngineEvent> &&evs) mutable {
        auto *p = new Payload{std::move(evs), *inflight, *macInflight};
        if (t.NonBlockingCall(p) != napi_ok) {
          consumed(p->events, p->bpduInflight.get(), p->macInflight.get());
          delete p;
        }
      };
    }
    try {
      engine_ = std::make_unique<Engine>(numPorts, std::move(sink), manual_);
    } catch (const std::exception &e) {
      if (hasTsfn_) {
        tsfn_.Release();
        hasTsfn_ = false;
      }
      throw Napi::Error::New(env, e.what());
    }
    if (inflight_) *inflight_ = engine_->bpduInflight();
    if (macInflight_) *macInflight_ = engine_->macInflight();
  }

  ~EngineWrap() override { shutdown(); }

 private:
  void shutdown() {
    if (engine_) {
      engine_->stop();
      engine_.reset();
    }
    if (hasTsfn_) {
      tsfn_.Release();
      hasTsfn_ = false;
    }
  }
  Engine &eng(const Napi::CallbackInfo &info) {
    if (!engine_) throw Napi::Error::New(info.Env(), "engine is closed");
    return *engine_;
  }
  static int I(const Napi::CallbackInfo &info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
  static uint32_t U(const Napi::CallbackInfo &info, size_t i) { return info[i].As<Napi::Number>().Uint32Value(); }
  Napi::Value Undef(const Napi::CallbackInfo &info) { return info.Env().Undefined(); }

  // addEndpoint(port, fd, kind, maxFrame, closeFd, txFd?, adoptPeer?, offload?, recordWrites?, wholeSegments?):
  // id, or 0 when refused. offload: a datagram socket carries a virtio-net header before every
  // frame (agreed at the VDE handshake); a 2-byte stream negotiates 64 KiB segments in-band
  // (cable.h). recordWrites: a stream writes one record per write, a pipe in packet mode.
  // wholeSegments: GSO frames up to maxFrame go out whole, checksums completed (a NAT back-end).
  Napi::Value AddEndpoint(const Napi::CallbackInfo &info) {
    Engine &e = eng(info);
    int port = I(info, 0), fd = I(info, 1);
    EpKind kind = EpKind(I(info, 2));
    uint32_t maxFrame = U(info, 3);
    bool closeFd = info[4].ToBoolean().Value();
    int txFd = info.Length() > 5 && info[5].IsNumber() ? I(info, 5) : -1;
    bool adopt = info.Length() > 6 && info[6].ToBoolean().Value();
    bool offload = info.Length() > 7 && info[7].ToBoolean().Value();
    bool recordWrites = info.Length() > 8 && info[8].ToBoolean().Value();
    bool wholeSegments = info.Length() > 9 && info[9].ToBoolean().Value();
    for (int f : {fd, txFd}) {
      if (f < 0) continue;
      int fl = fcntl(f, F_GETFL);
      if (fl < 0 || fcntl(f, F_SETFL, fl | O_NONBLOCK) < 0) return Napi::Number::New(info.Env(), 0);
    }
    std::unique_ptr<Endpoint> ep;
    switch (kind) {
      case EpKind::Dgram: ep = makeDgramEndpoint(fd, txFd, adopt, offload); break;
      case EpKind::Stream2: ep = makeStreamEndpoint(fd, txFd, 2, std::max<uint32_t>(maxFrame, MIN_FRAME_BYTES), offload, recordWrites); break;
      case EpKind::Stream4: ep = makeStreamEndpoint(fd, txFd, 4, std::max<uint32_t>(maxFrame, MIN_FRAME_BYTES), false, recordWrites); break;
      case EpKind::Tap: ep = makeTapEndpoint(fd); break;
      default: throw Napi::TypeError::New(info.Env(), "addEndpoint: unknown endpoint kind");
    }
    if (!ep) return Napi::Number::New(info.Env(), 0);
    ep->closeFds = closeFd;
    ep->wholeSegments = wholeSegments && !ep->takesVnet();
    return Napi::Number::New(info.Env(), e.addEndpoint(port, std::move(ep), maxFrame));
  }
  // addCustomEndpoint(port, handle, maxFrame): the engine takes the handle's I/O object (also on failure).
  Napi::Value AddCustomEndpoint(const Napi::CallbackInfo &info) {
    Engine &e = eng(info);
    if (!info[1].IsExternal()) throw Napi::TypeError::New(info.Env(), "addCustomEndpoint: not an endpoint handle");
    IoHolder *h = info[1].As<Napi::External<IoHolder>>().Data();
    if (!h->io && !h->ep) throw Napi::Error::New(info.Env(), "addCustomEndpoint: this endpoint handle was used already");
    std::unique_ptr<Endpoint> ep = h->ep ? std::move(h->ep) : makeCustomEndpoint(std::move(h->io));
    return Napi::Number::New(info.Env(), e.addEndpoint(I(info, 0), std::move(ep), U(info, 2)));
  }
  Napi::Value RemoveEndpoint(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), eng(info).removeEndpoint(uint32_t(info[0].As<Napi::Number>().Int64Value())));
  }
  Napi::Value SetNumPorts(const Napi::CallbackInfo &info) { eng(info).setNumPorts(I(info, 0)); return Undef(info); }
  Napi::Value SetHub(const Napi::CallbackInfo &info) { eng(info).setHub(info[0].ToBoolean()); return Undef(info); }
  Napi::Value SetBackpressure(const Napi::CallbackInfo &info) { eng(info).setBackpressure(info[0].ToBoolean()); return Undef(info); }
  Napi::Value SetUntagged(const Napi::CallbackInfo &info) { eng(info).setUntagged(I(info, 0), uint16_t(I(info, 1))); return Undef(info); }
  Napi::Value SetTagged(const Napi::CallbackInfo &info) { eng(info).setTagged(I(info, 0), uint16_t(I(info, 1)), info[2].ToBoolean()); return Undef(info); }
  Napi::Value SetForeignTags(const Napi::CallbackInfo &info) { eng(info).setForeignTags(I(info, 0) ? ForeignTags::Drop : ForeignTags::Pass); return Undef(info); }
  Napi::Value SetStpCapture(const Napi::CallbackInfo &info) { eng(info).setStpCapture(info[0].ToBoolean()); return Undef(info); }
  Napi::Value SetStpState(const Napi::CallbackInfo &info) {
    int s = I(info, 1);
    eng(info).setStpState(I(info, 0), s == 2 ? StpState::Discarding : s == 1 ? StpState::Learning : StpState::Forwarding);
    return Undef(info);
  }
  Napi::Value HoldCommands(const Napi::CallbackInfo &info) { eng(info).holdCommands(); return Undef(info); }
  Napi::Value ReleaseCommands(const Napi::CallbackInfo &info) { eng(info).releaseCommands(); return Undef(info); }
  Napi::Value SetProtected(const Napi::CallbackInfo &info) { eng(info).setProtected(I(info, 0), info[1].ToBoolean()); return Undef(info); }
  Napi::Value SetAging(const Napi::CallbackInfo &info) { eng(info).setAging(U(info, 0), U(info, 1), U(info, 2)); return Undef(info); }
  Napi::Value SetStorm(const Napi::CallbackInfo &info) { eng(info).setStorm(I(info, 0), U(info, 1)); return Undef(info); }
  Napi::Value SetMirror(const Napi::CallbackInfo &info) { eng(info).setMirror(I(info, 0), I(info, 1), I(info, 2)); return Undef(info); }
  // setStage(port, 'in'|'out', name, {key: value, ...} | null): builds the stage here (a bad
  // setting throws with the stage's own message), then installs it; null removes the stage.
  Napi::Value SetStage(const Napi::CallbackInfo &info) {
    Engine &e = eng(info);
    int port = I(info, 0);
    std::string dir = info[1].As<Napi::String>().Utf8Value();
    if (dir != "in" && dir != "out") throw Napi::TypeError::New(info.Env(), "setStage: direction must be \"in\" or \"out\"");
    // "kind" or "kind:instance": several stages of one kind on a port direction under instance names
    std::string name = info[2].As<Napi::String>().Utf8Value();
    size_t colon = name.find(':');
    std::string kind = name.substr(0, colon);
    if (colon != std::string::npos) {
      std::string inst = name.substr(colon + 1);
      bool ok = !inst.empty() && inst.size() <= MAX_STAGE_INSTANCE_BYTES;
      for (char ch : inst) ok = ok && (isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.');
      if (!ok) throw Napi::TypeError::New(info.Env(), "setStage: bad instance name in \"" + name + "\" (1-32 of A-Z a-z 0-9 _ - .)");
    }
    StageFactory make = findStageKind(kind);
    if (!make) {
      std::string known;
      for (const auto &k : stageKinds()) known += (known.empty() ? "" : ", ") + k;
      throw Napi::Error::New(info.Env(), "unknown stage \"" + kind + "\" (known: " + known + ")");
    }
    std::unique_ptr<Stage> s;
    if (info.Length() > 3 && info[3].IsObject()) {
      Napi::Object o = info[3].As<Napi::Object>();
      StageConfig cfg;
      Napi::Array keys = o.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        std::string k = keys.Get(i).ToString().Utf8Value();
        cfg.emplace_back(k, o.Get(k).ToString().Utf8Value());
      }
      std::string err;
      s = make(cfg, dir == "in", &err);
      if (!s) throw Napi::Error::New(info.Env(), err);
    }
    e.setStage(port, dir == "in", name, std::move(s));
    return Undef(info);
  }
  Napi::Value QueryStages(const Napi::CallbackInfo &info) {
    eng(info).queryStages(U(info, 0), I(info, 1));
    return Undef(info);
  }
  Napi::Value SetMacTableMax(const Napi::CallbackInfo &info) { eng(info).setMacTableMax(U(info, 0)); return Undef(info); }
  Napi::Value SetMacEvents(const Napi::CallbackInfo &info) { eng(info).setMacEvents(info[0].ToBoolean()); return Undef(info); }
  Napi::Value SetQueueBudget(const Napi::CallbackInfo &info) { eng(info).setQueueBudget(size_t(info[0].As<Napi::Number>().Int64Value())); return Undef(info); }
  Napi::Value FlushMacs(const Napi::CallbackInfo &info) { eng(info).flushMacs(I(info, 0), I(info, 1)); return Undef(info); }
  Napi::Value ResetCounters(const Napi::CallbackInfo &info) { eng(info).resetCounters(I(info, 0)); return Undef(info); }
  Napi::Value InjectFrame(const Napi::CallbackInfo &info) {
    Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
    return Napi::Boolean::New(info.Env(), eng(info).injectFrame(I(info, 0), b.Data(), b.Length()));
  }
  // queryMacs(queryId, mac|null, vlan): the answer is a "reply" event with queryId.
  Napi::Value QueryMacs(const Napi::CallbackInfo &info) {
    uint32_t id = U(info, 0);
    if (info[1].IsNull() || info[1].IsUndefined()) {
      eng(info).queryMacs(id, true, 0);
    } else {
      Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
      if (b.Length() != 6) throw Napi::TypeError::New(info.Env(), "MAC must be 6 bytes");
      eng(info).queryMacs(id, false, macKey(b.Data(), uint16_t(I(info, 2))));
    }
    return Undef(info);
  }
  static Napi::Object countersJs(Napi::Env env, const CounterSnapshot &c) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("inFrames", double(c.inFrames));
    o.Set("inBytes", double(c.inBytes));
    o.Set("outFrames", double(c.outFrames));
    o.Set("outBytes", double(c.outBytes));
    Napi::Object d = Napi::Object::New(env);
    for (int i = 0; i < DROP_COUNT; i++) d.Set(DROP_NAMES[i], double(c.drops[i]));
    o.Set("drops", d);
    o.Set("queuedFrames", double(c.queuedFrames));
    o.Set("queuedBytes", double(c.queuedBytes));
    return o;
  }
  // countersTable(): every port's counters in one Float64Array, COUNTER_COLUMNS per port:
  // inFrames, inBytes, outFrames, outBytes, queuedFrames, queuedBytes, then one column per drop
  // reason in dropNames() order. No object per port: what a metrics scrape of 1000 ports reads.
  Napi::Value CountersTable(const Napi::CallbackInfo &info) {
    Engine &e = eng(info);
    int n = e.numPorts();
    constexpr size_t COLS = 6 + DROP_COUNT;
    Napi::Float64Array a = Napi::Float64Array::New(info.Env(), size_t(n) * COLS);
    double *d = a.Data();
    for (int p = 0; p < n; p++) {
      CounterSnapshot c = e.counters(p);
      double *r = d + size_t(p) * COLS;
      r[0] = double(c.inFrames);
      r[1] = double(c.inBytes);
      r[2] = double(c.outFrames);
      r[3] = double(c.outBytes);
      r[4] = double(c.queuedFrames);
      r[5] = double(c.queuedBytes);
      for (int i = 0; i < DROP_COUNT; i++) r[6 + i] = double(c.drops[i]);
    }
    return a;
  }
  Napi::Value Counters(const Napi::CallbackInfo &info) { return countersJs(info.Env(), eng(info).counters(I(info, 0))); }
  // countersAll(): every port's counters in one call, index = port.
  Napi::Value CountersAll(const Napi::CallbackInfo &info) {
    Engine &e = eng(info);
    int n = e.numPorts();
    Napi::Array a = Napi::Array::New(info.Env(), size_t(n));
    for (int p = 0; p < n; p++) a.Set(uint32_t(p), countersJs(info.Env(), e.counters(p)));
    return a;
  }
  Napi::Value Stats(const Napi::CallbackInfo &info) {
    EngineStats s = eng(info).stats();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("bpduDrops", double(s.bpduDrops));
    o.Set("queueBudgetBytes", double(s.queueBudgetBytes));
    o.Set("queueUsedBytes", double(s.queueUsedBytes));
    o.Set("macEntries", double(s.macEntries));
    o.Set("macMaxEntries", double(s.macMaxEntries));
    o.Set("macEvictions", double(s.macEvictions));
    o.Set("macSlots", double(s.macSlots));
    o.Set("macEventDrops", double(s.macEventDrops));
    return o;
  }
  Napi::Value NowSeconds(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), double(eng(info).nowSeconds())); }
  Napi::Value Close(const Napi::CallbackInfo &info) {
    shutdown();
    return Undef(info);
  }
  void needManual(const Napi::CallbackInfo &info) {
    if (!manual_) throw Napi::Error::New(info.Env(), "only an engine created with {manual: true} can be driven by hand");
  }
  Napi::Value PollOnce(const Napi::CallbackInfo &info) {
    needManual(info);
    return Napi::Number::New(info.Env(), eng(info).pollOnce());
  }
  Napi::Value Ingress(const Napi::CallbackInfo &info) {
    needManual(info);
    Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
    return Napi::Boolean::New(info.Env(), eng(info).ingress(I(info, 0), b.Data(), b.Length()));
  }
  Napi::Value SetTimeNs(const Napi::CallbackInfo &info) {
    needManual(info);
    eng(info).setTimeNs(uint64_t(info[0].As<Napi::Number>().Int64Value()));
    return Undef(info);
  }
  Napi::Value AdvanceNs(const Napi::CallbackInfo &info) {
    needManual(info);
    eng(info).advanceNs(uint64_t(info[0].As<Napi::Number>().Int64Value()));
    return Undef(info);
  }
  Napi::Value TakeEvents(const Napi::CallbackInfo &info) {
    needManual(info);
    std::vector<EngineEvent> evs;
    evs.swap(*pending_);
    if (engine_) consumed(evs, engine_->bpduInflight().get(), engine_->macInflight().get());
    return toJs(info.Env(), evs);
  }

  std::unique_ptr<Engine> engine_;
  Tsfn tsfn_;
  bool hasTsfn_ = false;
  bool manual_ = false;
  std::shared_ptr<std::vector<EngineEvent>> pending_ = std::make_shared<std::vector<EngineEvent>>();
  std::shared_ptr<std::shared_ptr<std::atomic<int64_t>>> inflight_, macInflight_;
};

}  // namespace

void RegisterEngine(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineWrap::Init(env));
  // checkCaptureFilter(text): null when the capture filter parses, else the message saying why
  exports.Set("checkCaptureFilter", Napi::Function::New(env, [](const Napi::CallbackInfo &info) -> Napi::Value {
    CaptureFilter f;
    std::string err;
    if (f.parse(info[0].ToString().Utf8Value(), &err)) return info.Env().Null();
    return Napi::String::New(info.Env(), err);
  }));
  exports.Set("stageKinds", Napi::Function::New(env, [](const Napi::CallbackInfo &info) {
    std::vector<std::string> k = stageKinds();
    Napi::Array a = Napi::Array::New(info.Env(), k.size());
    for (size_t i = 0; i < k.size(); i++) a.Set(uint32_t(i), k[i]);
    return a;
  }));
}

}  // namespace vde
