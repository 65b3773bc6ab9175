// Fuzz target: the link-emulation stage "impair" (native/src/stage_impair.cc): its settings
// parser, which sees whatever a console command, an rc file or a plug option asked for, and the
// stage it builds, driven with frames and a moving clock through a stand-in for the engine's
// StageEnv (store/release as the engine does them, in pool blocks).
//
// Input: settings A (text, "key=value" per line), a 0 byte, settings B, a 0 byte, then operations,
// one byte each plus arguments:
//   0: a frame: 2 bytes of length (14..65536), sent through process()
//   1: the same with an 802.1Q tag inserted on the way (FORM_TAG_INSERT)
//   2: the clock moves by 4 bytes of µs, then timer() runs if the deadline has come
//   3: settings B replace the stage (a new stage adopt()s the old one)
// "seed=1" comes first so that runs repeat (a later seed= overrides it).
//
// Invariants: the factory returns a stage or an error that starts with "impair: ", never both;
// a verdict of Hold means the stage stored something; describe()'s counters agree with what the
// stand-in saw (frames processed, frames released, frames held = stored - released); every
// released item has the length it was stored with; a deadline that has come is acted on
// (progress: the held count falls or the deadline moves on); after a final drain with a clock
// moved far enough, a stage without slots holds nothing; adopt() keeps every held frame; after
// clear() the pool is empty again.
// fuzz-sources: ../src/stage_impair.cc ../src/stages.cc ../src/offload.cc
// fuzz-args: -max_len=4096
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../src/stage.h"
#include "fuzz_check.h"

using namespace vde;

namespace {

constexpr uint64_t START_NS = 1000ull * 1000000000ull;
constexpr size_t POOL_BYTES = size_t(32) << 20;
constexpr int MAX_OPS = 400;
constexpr int MAX_DRAIN_STEPS = 100000;

/** The engine's part of the stage interface, minus the pipeline: it counts what comes back. */
class FakeEnv : public StageEnv {
 public:
  FakeEnv() : pool_(POOL_BYTES) {}
  uint64_t nowNs() const override { return now; }
  BlockPool &pool() override { return pool_; }
  bool store(PktQueue &q, const StageFrame &f, uint64_t timeNs, uint16_t aux) override {
    struct iovec iov[MAX_WIRE_IOV];
    int k = f.out.parts(iov);
    ItemMeta meta;
    meta.frameLen = f.out.wireLen();
    meta.timeNs = timeNs;
    meta.aux = aux;
    if (!q.push(pool_, iov, k, meta.frameLen, meta)) return false;
    stored++;
    return true;
  }
  void release(PktQueue &q, int, bool, int) override {
    FUZZ_CHECK(!q.empty(), "release of an empty queue");
    const ItemMeta &m = q.frontMeta(pool_);
    FUZZ_CHECK(q.frontLen(pool_) == m.frameLen, "released %u bytes, stored %u", q.frontLen(pool_), m.frameLen);
    FUZZ_CHECK(m.timeNs <= now, "released at %llu before its time %llu", (unsigned long long)now, (unsigned long long)m.timeNs);
    q.pop(pool_);
    released++;
  }
  void emit(int, const StageFrame &) override {}
  // the observation seams (fd watches, flushes, notifications): the impair stage uses none of them
  uint64_t wallNs() const override { return now; }
  bool watch(const std::shared_ptr<FdWatcher> &, uint32_t) override { return false; }
  void rewatch(FdWatcher &, uint32_t) override {}
  void unwatch(FdWatcher &) override {}
  void deferFlush(const std::shared_ptr<FdWatcher> &) override {}
  void notify(const std::string &, const std::string &) override {}

  uint64_t now = START_NS;
  uint64_t stored = 0, released = 0;

 private:
  BlockPool pool_;
};

FakeEnv &env() {
  static FakeEnv e;
  return e;
}

StageConfig parse(const std::string &text) {
  StageConfig cfg{{"seed", "1"}};
  size_t at = 0;
  while (at <= text.size()) {
    size_t nl = text.find('\n', at);
    std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    size_t eq = line.find('=');
    if (!line.empty()) cfg.emplace_back(line.substr(0, eq), eq == std::string::npos ? "" : line.substr(eq + 1));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  return cfg;
}

std::unique_ptr<Stage> make(const std::string &text) {
  StageFactory f = findStageKind("impair");
  FUZZ_CHECK(f != nullptr, "the impair stage is not registered");
  std::string err;
  std::unique_ptr<Stage> s = f(parse(text), false, &err);
  FUZZ_CHECK((s == nullptr) == !err.empty(), "stage %p with error \"%s\"", (void *)s.get(), err.c_str());
  if (!s) FUZZ_CHECK(err.rfind("impair: ", 0) == 0, "error without the stage's name: \"%s\"", err.c_str());
  return s;
}

std::map<std::string, double> values(const Stage &s) {
  StageValues v;
  s.describe(v);
  std::map<std::string, double> m;
  for (auto &[k, x] : v) m[k] = x;
  return m;
}

void checkCounts(const Stage &s, uint64_t processed) {
  auto v = values(s);
  FakeEnv &e = env();
  FUZZ_CHECK(v["frames"] == double(processed), "frames %g, processed %llu", v["frames"], (unsigned long long)processed);
  FUZZ_CHECK(v["released"] == double(e.released), "released %g, seen %llu", v["released"], (unsigned long long)e.released);
  FUZZ_CHECK(v["held"] == double(e.stored - e.released), "held %g, stored %llu - released %llu", v["held"], (unsigned long long)e.stored,
             (unsigned long long)e.released);
}

/** Runs timer() whenever its deadline has come; true when it made progress or had nothing to do. */
bool tick(Stage &s) {
  FakeEnv &e = env();
  uint64_t d = s.deadlineNs();
  if (d > e.now) return true;
  uint64_t heldBefore = e.stored - e.released;
  s.timer(e, 1, false, 0);
  uint64_t after = s.deadlineNs();
  return e.stored - e.released < heldBefore || after > e.now;
}

}  // namespace

/** libFuzzer entry point: settings A, settings B, operations. */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *end = data + size;
  const uint8_t *z1 = static_cast<const uint8_t *>(memchr(data, 0, size));
  if (!z1) {
    make(std::string(reinterpret_cast<const char *>(data), size));
    return 0;
  }
  const uint8_t *z2 = static_cast<const uint8_t *>(memchr(z1 + 1, 0, size_t(end - z1 - 1)));
  std::string a(reinterpret_cast<const char *>(data), size_t(z1 - data));
  std::string b = z2 ? std::string(reinterpret_cast<const char *>(z1 + 1), size_t(z2 - z1 - 1)) : std::string();
  std::unique_ptr<Stage> s = make(a);
  if (!s) return 0;
  FakeEnv &e = env();
  e.now = START_NS;
  e.stored = e.released = 0;
  bool slots = a.find("slot") != std::string::npos || b.find("slot") != std::string::npos;
  static uint8_t frame[65536];
  static const uint8_t tag[4] = {0x81, 0x00, 0x00, 0x05};
  fuzz::Cursor c(z2 ? z2 + 1 : end, z2 ? size_t(end - z2 - 1) : 0);
  uint64_t processed = 0;
  for (int op = 0; op < MAX_OPS && c.left(); op++) {
    uint8_t kind = c.u8() % 4;
    if (kind <= 1) {
      uint32_t len = 14 + c.u16() % (65536 - 14 + 1);
      for (uint32_t i = 0; i < len; i += 64) frame[i] = uint8_t(processed + i);
      FrameMeta meta;
      meta.len = len;
      OutFrame of{frame, len, kind == 1 ? FORM_TAG_INSERT : FORM_ASIS, tag, nullptr};
      if (kind == 1 && of.wireLen() > 65536) of.form = FORM_ASIS;
      StageFrame sf{of, &meta, 1, false, 0};
      uint64_t storedBefore = e.stored;
      DropReason why = DROP_COUNT;
      Verdict v = s->process(e, sf, &why);
      processed++;
      if (v == Verdict::Hold) FUZZ_CHECK(e.stored > storedBefore, "Hold without storing");
      if (v == Verdict::Drop) FUZZ_CHECK(why < DROP_COUNT, "Drop without a reason");
    } else if (kind == 2) {
      e.now += uint64_t(c.u32()) * 1000;
      FUZZ_CHECK(tick(*s), "the deadline came and nothing moved");
    } else if (!b.empty()) {
      std::unique_ptr<Stage> next = make(b);
      if (next) {
        uint64_t heldBefore = e.stored - e.released;
        size_t poolBefore = e.pool().usedBytes();
        next->adopt(*s, e.pool());
        s->clear(e.pool());
        FUZZ_CHECK(e.pool().usedBytes() == poolBefore, "adopt lost pool blocks: %zu -> %zu", poolBefore, e.pool().usedBytes());
        FUZZ_CHECK(values(*next)["held"] == double(heldBefore), "adopt kept %g of %llu held frames", values(*next)["held"],
                   (unsigned long long)heldBefore);
        s = std::move(next);
      }
    }
    checkCounts(*s, processed);
  }
  // drain: move the clock to each deadline in turn
  for (int i = 0; i < MAX_DRAIN_STEPS && s->deadlineNs() != NO_DEADLINE_NS; i++) {
    uint64_t d = s->deadlineNs();
    if (d > e.now) e.now = d;
    FUZZ_CHECK(tick(*s), "the deadline came and nothing moved (drain)");
  }
  if (!slots) FUZZ_CHECK(s->deadlineNs() == NO_DEADLINE_NS, "frames still held after the drain");
  checkCounts(*s, processed);
  s->clear(e.pool());
  FUZZ_CHECK(e.pool().usedBytes() == 0, "%zu pool bytes in use after clear", e.pool().usedBytes());
  return 0;
}
