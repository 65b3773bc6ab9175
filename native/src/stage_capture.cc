// The capture stage: live pcapng of a port, written by the engine thread straight into a capture
// client's socket (vde_capture, Wireshark's extcap, tshark reading a pipe).
//
// A capture *session* is one client socket. JavaScript hands the socket's fd to the engine in the
// configuration of the session's first stage (`capture:ID` with fd=N, snaplen=, filter=; the
// engine owns the fd from then on) and installs further stages of the same session on other
// ports and directions by its id alone. The session (CaptureSink) is shared by its stages:
//   - it writes a Section Header Block at once, an Interface Description Block for a port just
//     before that port's first frame (so ports that appear later get theirs when they first carry
//     traffic), an Enhanced Packet Block per captured frame (nanosecond CLOCK_REALTIME
//     timestamps, so captures of several switches and cables merge with mergecap into one
//     timeline; the inbound/outbound flag; at most snaplen bytes), and Interface Statistics
//     Blocks (frames seen, accepted by the filter, captured, and dropped by the capture itself)
//     when the session ends;
//   - blocks go into a ring buffer of its own (CAPTURE_BUFFER_BYTES, allocated when the session
//     starts) and leave with one non-blocking write per engine wakeup (StageEnv::deferFlush);
//     a block that does not fit whole is dropped and counted, so a client that stops reading
//     costs the switch nothing but its own drops, and never a partial block;
//   - the engine watches the socket: EPOLLOUT resumes writing, end of input from the client
//     (it half-closed: a graceful stop) adds the statistics blocks, writes what is left and
//     closes; a hang-up or write error closes at once. Either way JavaScript gets a "stage"
//     event naming the session so it removes the session's stages. When its last stage goes,
//     the session ends the same graceful way.
// On ingress the stage runs first (it sees what arrives), on egress last (what leaves, 802.1Q
// edit included). It never drops or changes a frame, and never calls into JavaScript.
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "capture_filter.h"
#include "stage.h"

namespace vde {
namespace {

/** Bytes of pcapng a session buffers for a slow client before it drops frames. */
constexpr size_t CAPTURE_BUFFER_BYTES = 1 << 20;
constexpr size_t MIN_CAPTURE_BUFFER_BYTES = 64 << 10;
constexpr size_t MAX_CAPTURE_BUFFER_BYTES = 64 << 20;
/** Default and largest snapshot length, bytes. */
constexpr uint32_t DEFAULT_SNAPLEN_BYTES = 262144;
constexpr uint32_t MIN_SNAPLEN_BYTES = 14;
/** Capture sessions open at once in a process (each holds its buffer). */
constexpr size_t MAX_CAPTURE_SESSIONS = 64;
/** Longest interface name, description or application text in a block. */
constexpr size_t MAX_TEXT_OPTION_BYTES = 256;
/** Header bytes of a frame the filter sees when the frame leaves with a tag edit (copied to linearise). */
constexpr uint32_t FILTER_HEADER_BYTES = 128;
/** Bytes read (and dropped) per input event from a client that writes to us. */
constexpr size_t DISCARD_BYTES = 512;
constexpr int DISCARD_READS = 8;

// pcapng (draft-ietf-opsawg-pcapng): block types, option codes
constexpr uint32_t BT_SHB = 0x0A0D0D0A, BT_IDB = 1, BT_ISB = 5, BT_EPB = 6;
constexpr uint32_t BYTE_ORDER_MAGIC = 0x1A2B3C4D;
constexpr uint16_t OPT_END = 0, SHB_USERAPPL = 4, IF_NAME = 2, IF_DESCRIPTION = 3, IF_TSRESOL = 9, EPB_FLAGS = 2;
constexpr uint16_t ISB_STARTTIME = 2, ISB_ENDTIME = 3, ISB_IFRECV = 4, ISB_IFDROP = 5, ISB_FILTERACCEPT = 6, ISB_USRDELIV = 8;
constexpr uint16_t LINKTYPE_ETHERNET = 1;
constexpr uint8_t TSRESOL_NANOSECONDS = 9;
constexpr uint32_t EPB_INBOUND = 1, EPB_OUTBOUND = 2;
constexpr uint32_t EPB_FIXED_BYTES = 28 + 12 + 4;  // header, epb_flags + end of options, trailer
constexpr size_t SMALL_BLOCK_BYTES = 2048;          // SHB, IDB and ISB fit (text options are bounded)

uint32_t pad4(uint32_t n) { return (n + 3) & ~3u; }

/** Builds a small block (SHB, IDB, ISB) in a fixed buffer. */
class BlockBuilder {
 public:
  explicit BlockBuilder(uint32_t type) { u32(type), u32(0); }
  void u16(uint16_t v) { put(&v, 2); }
  void u32(uint32_t v) { put(&v, 4); }
  void u64(uint64_t v) { put(&v, 8); }
  void put(const void *p, size_t n) {
    if (len_ + n > SMALL_BLOCK_BYTES - 8) return;
    memcpy(buf_ + len_, p, n);
    len_ += n;
  }
  void option(uint16_t code, const void *p, size_t n) {
    u16(code);
    u16(uint16_t(n));
    put(p, n);
    static const uint8_t zero[4] = {0, 0, 0, 0};
    put(zero, pad4(uint32_t(n)) - n);
  }
  void text(uint16_t code, const std::string &s) {
    if (!s.empty()) option(code, s.data(), std::min(s.size(), MAX_TEXT_OPTION_BYTES));
  }
  void time(uint16_t code, uint64_t ns) {
    uint32_t hl[2] = {uint32_t(ns >> 32), uint32_t(ns)};
    option(code, hl, 8);
  }
  void count(uint16_t code, uint64_t v) { option(code, &v, 8); }
  void endOptions() { u32(0); }
  /** Writes the lengths; returns the block. */
  const uint8_t *finish(uint32_t *len) {
    uint32_t total = uint32_t(len_) + 4;
    memcpy(buf_ + 4, &total, 4);
    memcpy(buf_ + len_, &total, 4);
    *len = total;
    return buf_;
  }

 private:
  uint8_t buf_[SMALL_BLOCK_BYTES];
  size_t len_ = 0;
};

/** A byte ring of whole blocks. */
class ByteRing {
 public:
  explicit ByteRing(size_t cap) : buf_(new uint8_t[cap]), cap_(cap) {}
  size_t used() const { return len_; }
  size_t room() const { return cap_ - len_; }
  /** Appends iov parts of total bytes, all or nothing. */
  bool put(const struct iovec *iov, int n, size_t total) {
    if (total > room()) return false;
    for (int i = 0; i < n; i++) append(static_cast<const uint8_t *>(iov[i].iov_base), iov[i].iov_len);
    return true;
  }
  /** The buffered bytes as one or two iovecs. */
  int pending(struct iovec *iov) const {
    if (!len_) return 0;
    size_t first = std::min(len_, cap_ - head_);
    iov[0] = {buf_.get() + head_, first};
    if (first == len_) return 1;
    iov[1] = {buf_.get(), len_ - first};
    return 2;
  }
  void consume(size_t n) {
    n = std::min(n, len_);
    head_ = (head_ + n) % cap_;
    len_ -= n;
    if (!len_) head_ = 0;
  }
  void clear() { head_ = len_ = 0; }

 private:
  void append(const uint8_t *p, size_t n) {
    size_t tail = (head_ + len_) % cap_;
    size_t first = std::min(n, cap_ - tail);
    memcpy(buf_.get() + tail, p, first);
    if (n > first) memcpy(buf_.get(), p + first, n - first);
    len_ += n;
  }
  std::unique_ptr<uint8_t[]> buf_;
  size_t cap_, head_ = 0, len_ = 0;
};

class CaptureSink;

/** The sessions of this process by id; weak, so a session lives exactly as long as its stages and the engine's watch. */
struct Registry {
  std::mutex mu;
  std::map<std::string, std::weak_ptr<CaptureSink>> sessions;
};
Registry &registry() {
  static Registry r;
  return r;
}

/** One capture session (see the file comment). */
class CaptureSink : public FdWatcher, public std::enable_shared_from_this<CaptureSink> {
 public:
  /** One port of the session: its interface id once its IDB is out, and counters per direction (0 in, 1 out). */
  struct Iface {
    int port;
    int32_t id = -1;
    std::string name, descr;
    uint64_t seen[2] = {0, 0}, matched[2] = {0, 0}, captured[2] = {0, 0}, dropped[2] = {0, 0};
  };

  CaptureSink(std::string id, int fd, uint32_t snaplen, size_t bufferBytes, CaptureFilter filter, const std::string &appl, uint64_t startNs)
      : id_(std::move(id)), fd_(fd), snaplen_(snaplen), ring_(bufferBytes), filter_(std::move(filter)), startNs_(startNs) {
    int type = 0;
    socklen_t l = sizeof type;
    isSocket_ = getsockopt(fd_, SOL_SOCKET, SO_TYPE, &type, &l) == 0;
    BlockBuilder b(BT_SHB);
    b.u32(BYTE_ORDER_MAGIC);
    b.u16(1);  // version 1.0
    b.u16(0);
    b.u64(~uint64_t(0));  // section length unknown
    b.text(SHB_USERAPPL, appl);
    b.endOptions();
    put(b);
  }

  ~CaptureSink() override {
    if (fd_ >= 0) {
      if (!closing_) appendStats(lastNs_);
      struct iovec iov[2];
      for (int k = ring_.pending(iov); k > 0; k = ring_.pending(iov)) {
        ssize_t n = writeIov(iov, k);
        if (n <= 0) break;
        ring_.consume(size_t(n));
      }
      close(fd_);
    }
    std::lock_guard<std::mutex> g(registry().mu);
    auto it = registry().sessions.find(id_);
    if (it != registry().sessions.end() && it->second.expired()) registry().sessions.erase(it);
  }

  const std::string &id() const { return id_; }
  int watchedFd() const override { return fd_; }
  uint32_t snaplen() const { return snaplen_; }
  size_t buffered() const { return ring_.used(); }
  bool live() const { return fd_ >= 0 && !closing_; }

  /** The interface of port (created on first use, control path); a later stage may update its texts until its IDB is out. */
  Iface *iface(int port, const std::string &name, const std::string &descr) {
    for (auto &i : ifaces_)
      if (i->port == port) {
        if (i->id < 0) {
          if (!name.empty()) i->name = name;
          if (!descr.empty()) i->descr = descr;
        }
        return i.get();
      }
    ifaces_.push_back(std::make_unique<Iface>());
    Iface *i = ifaces_.back().get();
    i->port = port;
    i->name = name.empty() ? "port " + std::to_string(port) : name;
    i->descr = descr;
    return i;
  }

  /** A stage of the session was installed: the first one puts the socket in the engine's epoll set. */
  void stageAttached(StageEnv &env) {
    stages_++;
    if (!env_) {
      env_ = &env;
      if (fd_ >= 0 && !env.watch(shared_from_this(), EPOLLIN | EPOLLRDHUP)) {
        end(env, std::string("epoll: ") + strerror(errno));
        return;
      }
      env.deferFlush(shared_from_this());  // the section header goes out at once
    }
  }

  /** A stage went: with the last one the session ends (checked at the end of the wakeup, so a replaced stage does not end it). */
  void stageDetached(StageEnv &env) {
    if (stages_ > 0) stages_--;
    if (stages_ == 0 && env_ == &env) env.deferFlush(shared_from_this());
  }

  /** Captures a frame that passes the stage of iface/direction (frame path: no allocation). */
  void capture(StageEnv &env, Iface &ifc, bool ingress, const OutFrame &f) {
    int d = ingress ? 0 : 1;
    ifc.seen[d]++;
    if (!filter_.empty()) {
      bool ok;
      if (f.form == FORM_ASIS) {
        ok = filter_.match(Packet(f.data, f.len));
      } else {
        uint8_t hdr[FILTER_HEADER_BYTES];
        struct iovec parts[3];
        int k = f.parts(parts);
        uint32_t n = 0;
        for (int i = 0; i < k && n < FILTER_HEADER_BYTES; i++) {
          uint32_t c = std::min<uint32_t>(uint32_t(parts[i].iov_len), FILTER_HEADER_BYTES - n);
          memcpy(hdr + n, parts[i].iov_base, c);
          n += c;
        }
        ok = filter_.match(Packet(hdr, n));
      }
      if (!ok) return;
    }
    ifc.matched[d]++;
    uint64_t now = env.wallNs();
    lastNs_ = now;
    if (ifc.id < 0 && !writeIdb(ifc)) {
      ifc.dropped[d]++;
      return;
    }
    uint32_t orig = f.wireLen();
    uint32_t cap = std::min(orig, snaplen_);
    uint32_t total = EPB_FIXED_BYTES + pad4(cap);
    uint8_t head[28];
    uint32_t h[7] = {BT_EPB, total, uint32_t(ifc.id), uint32_t(now >> 32), uint32_t(now), cap, orig};
    memcpy(head, h, sizeof h);
    uint8_t tail[16];
    uint16_t optHead[2] = {EPB_FLAGS, 4};
    uint32_t t[3] = {ingress ? EPB_INBOUND : EPB_OUTBOUND, 0, total};  // flags, end of options, trailer
    memcpy(tail, optHead, 4);
    memcpy(tail + 4, t, 12);
    struct iovec iov[8];
    int n = 0;
    iov[n++] = {head, sizeof head};
    struct iovec parts[3];
    int k = f.parts(parts);
    uint32_t left = cap;
    for (int i = 0; i < k && left; i++) {
      size_t c = std::min<size_t>(parts[i].iov_len, left);
      iov[n++] = {parts[i].iov_base, c};
      left -= uint32_t(c);
    }
    static const uint8_t zero[4] = {0, 0, 0, 0};
    if (pad4(cap) != cap) iov[n++] = {const_cast<uint8_t *>(zero), pad4(cap) - cap};
    iov[n++] = {tail, 16};
    if (!ring_.put(iov, n, total)) {
      ifc.dropped[d]++;
      return;
    }
    ifc.captured[d]++;
    if (!flushQueued && !wantOut_) env.deferFlush(shared_from_this());
  }

  void onFdEvents(StageEnv &env, uint32_t ev) override {
    if (fd_ < 0) return;
    if (ev & (EPOLLERR | EPOLLHUP)) {
      end(env, (ev & EPOLLERR) ? "the client's socket failed" : "the client hung up");
      return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP)) {
      uint8_t junk[DISCARD_BYTES];
      for (int i = 0; i < DISCARD_READS; i++) {
        ssize_t r = isSocket_ ? recv(fd_, junk, sizeof junk, MSG_DONTWAIT) : read(fd_, junk, sizeof junk);
        if (r > 0) continue;
        if (r == 0) {
          stopByClient(env);
          return;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          end(env, std::string("the client's socket failed: ") + strerror(errno));
          return;
        }
        break;
      }
    }
    if (ev & EPOLLOUT) writeOut(env);
  }

  void flush(StageEnv &env) override {
    if (fd_ < 0) return;
    if (stages_ == 0 && !closing_) {  // the last stage went: end gracefully
      closing_ = true;
      appendStats(env.wallNs());
    }
    if (!wantOut_) writeOut(env);
  }

  void values(const Iface *ifc, bool ingress, StageValues &out) const {
    int d = ingress ? 0 : 1;
    out.emplace_back("seen", double(ifc ? ifc->seen[d] : 0));
    out.emplace_back("matched", double(ifc ? ifc->matched[d] : 0));
    out.emplace_back("captured", double(ifc ? ifc->captured[d] : 0));
    out.emplace_back("dropped", double(ifc ? ifc->dropped[d] : 0));
    out.emplace_back("snaplen", snaplen_);
    out.emplace_back("bufferedBytes", double(ring_.used()));
    out.emplace_back("open", live() ? 1 : 0);
  }

 private:
  void put(BlockBuilder &b) {
    uint32_t len;
    const uint8_t *p = b.finish(&len);
    struct iovec iov = {const_cast<uint8_t *>(p), len};
    ring_.put(&iov, 1, len);
  }

  bool writeIdb(Iface &ifc) {
    BlockBuilder b(BT_IDB);
    b.u16(LINKTYPE_ETHERNET);
    b.u16(0);
    b.u32(snaplen_);
    b.text(IF_NAME, ifc.name);
    b.text(IF_DESCRIPTION, ifc.descr);
    uint8_t res = TSRESOL_NANOSECONDS;
    b.option(IF_TSRESOL, &res, 1);
    b.endOptions();
    uint32_t len;
    const uint8_t *p = b.finish(&len);
    struct iovec iov = {const_cast<uint8_t *>(p), len};
    if (!ring_.put(&iov, 1, len)) return false;
    ifc.id = nextIfId_++;
    return true;
  }

  // One Interface Statistics Block per interface that has one (best effort: skipped when the ring is full).
  void appendStats(uint64_t now) {
    if (!now) return;
    for (auto &i : ifaces_) {
      if (i->id < 0) continue;
      BlockBuilder b(BT_ISB);
      b.u32(uint32_t(i->id));
      b.u32(uint32_t(now >> 32));
      b.u32(uint32_t(now));
      b.time(ISB_STARTTIME, startNs_);
      b.time(ISB_ENDTIME, now);
      b.count(ISB_IFRECV, i->seen[0] + i->seen[1]);
      b.count(ISB_IFDROP, i->dropped[0] + i->dropped[1]);
      b.count(ISB_FILTERACCEPT, i->matched[0] + i->matched[1]);
      b.count(ISB_USRDELIV, i->captured[0] + i->captured[1]);
      b.endOptions();
      put(b);
    }
  }

  ssize_t writeIov(const struct iovec *iov, int k) {
    if (isSocket_) {
      struct msghdr m = {};
      m.msg_iov = const_cast<struct iovec *>(iov);
      m.msg_iovlen = size_t(k);
      return sendmsg(fd_, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    return writev(fd_, iov, k);
  }

  void writeOut(StageEnv &env) {
    if (fd_ < 0) return;
    struct iovec iov[2];
    for (int k = ring_.pending(iov); k > 0; k = ring_.pending(iov)) {
      ssize_t n = writeIov(iov, k);
      if (n > 0) {
        ring_.consume(size_t(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wantOut_) {
          wantOut_ = true;
          env.rewatch(*this, events());
        }
        return;
      }
      end(env, n < 0 ? std::string("writing to the client failed: ") + strerror(errno) : "writing to the client failed");
      return;
    }
    if (wantOut_) {
      wantOut_ = false;
      env.rewatch(*this, events());
    }
    if (closing_) end(env, "capture finished");
  }

  uint32_t events() const { return (inputDone_ ? 0u : uint32_t(EPOLLIN | EPOLLRDHUP)) | (wantOut_ ? uint32_t(EPOLLOUT) : 0u); }

  // The client half-closed its socket: the capture stops gracefully (statistics, the rest, close).
  void stopByClient(StageEnv &env) {
    inputDone_ = true;
    if (!closing_) {
      closing_ = true;
      appendStats(env.wallNs());
    }
    env.rewatch(*this, events());
    writeOut(env);
  }

  void end(StageEnv &env, const std::string &why) {
    if (fd_ < 0) return;
    std::shared_ptr<CaptureSink> keep = shared_from_this();
    closing_ = true;
    if (why == "capture finished") shutdown(fd_, SHUT_WR);
    env.unwatch(*this);
    close(fd_);
    fd_ = -1;
    ring_.clear();
    env.notify("capture:" + id_, why);
  }

  std::string id_;
  int fd_;
  bool isSocket_ = false;
  uint32_t snaplen_;
  ByteRing ring_;
  CaptureFilter filter_;
  uint64_t startNs_, lastNs_ = 0;
  std::vector<std::unique_ptr<Iface>> ifaces_;
  int32_t nextIfId_ = 0;
  int stages_ = 0;
  StageEnv *env_ = nullptr;
  bool wantOut_ = false, closing_ = false, inputDone_ = false;
};

/** One port direction of a session. */
class CaptureStage : public Stage {
 public:
  static constexpr const char *NAME = "capture";
  CaptureStage(std::shared_ptr<CaptureSink> sink, bool ingress, std::string ifname, std::string ifdescr)
      : sink_(std::move(sink)), ingress_(ingress), ifname_(std::move(ifname)), ifdescr_(std::move(ifdescr)) {}
  const char *name() const override { return NAME; }
  int rank() const override { return ingress_ ? RANK_CAPTURE_IN : RANK_CAPTURE_OUT; }
  Verdict process(StageEnv &env, const StageFrame &f, DropReason *) override {
    if (ifc_ && sink_->live()) sink_->capture(env, *ifc_, ingress_, f.out);
    return Verdict::Pass;
  }
  void attached(StageEnv &env, int port, bool) override {
    if (ifc_) return;
    ifc_ = sink_->iface(port, ifname_, ifdescr_);
    sink_->stageAttached(env);
  }
  void detached(StageEnv &env) override {
    if (!ifc_) return;
    ifc_ = nullptr;
    sink_->stageDetached(env);
  }
  void describe(StageValues &out) const override { sink_->values(ifc_, ingress_, out); }

 private:
  std::shared_ptr<CaptureSink> sink_;
  bool ingress_;
  std::string ifname_, ifdescr_;
  CaptureSink::Iface *ifc_ = nullptr;
};

// configNumber with the stage's name in front of the message.
bool wholeNumber(const std::string &key, const std::string &v, long long lo, long long hi, long long *out, std::string *err) {
  if (configNumber(key, v, lo, hi, out, err)) return true;
  *err = "capture: " + *err;
  return false;
}

bool sessionId(const std::string &v, std::string *err) {
  bool ok = !v.empty() && v.size() <= 32;
  for (char c : v) ok = ok && (isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
  if (!ok) *err = "capture: session: \"" + v + "\" is not a session id (1-32 of A-Z a-z 0-9 _ - .)";
  return ok;
}

// capture: session=ID (required), fd=N (starts the session: the engine owns the fd from here on),
// snaplen=, buffer=, filter=, appl= (session settings, with fd only), ifname=, ifdescr= (this port's IDB).
std::unique_ptr<Stage> makeCapture(const StageConfig &cfg, bool ingress, std::string *err) {
  std::string session, filterText, appl, ifname, ifdescr;
  long long fd = -1, snaplen = DEFAULT_SNAPLEN_BYTES, buffer = CAPTURE_BUFFER_BYTES;
  for (const auto &[k, v] : cfg) {
    if (k == "session") {
      if (!sessionId(v, err)) return nullptr;
      session = v;
    } else if (k == "fd") {
      if (!wholeNumber(k, v, 0, 0x7fffffff, &fd, err)) return nullptr;
    } else if (k == "snaplen") {
      if (!wholeNumber(k, v, MIN_SNAPLEN_BYTES, DEFAULT_SNAPLEN_BYTES, &snaplen, err)) return nullptr;
    } else if (k == "buffer") {
      if (!wholeNumber(k, v, MIN_CAPTURE_BUFFER_BYTES, MAX_CAPTURE_BUFFER_BYTES, &buffer, err)) return nullptr;
    } else if (k == "filter") {
      filterText = v;
    } else if (k == "appl") {
      appl = v;
    } else if (k == "ifname") {
      ifname = v.substr(0, MAX_TEXT_OPTION_BYTES);
    } else if (k == "ifdescr") {
      ifdescr = v.substr(0, MAX_TEXT_OPTION_BYTES);
    } else {
      *err = "capture: unknown setting \"" + k + "\" (known: session, fd, snaplen, buffer, filter, appl, ifname, ifdescr)";
      return nullptr;
    }
  }
  if (session.empty()) {
    *err = "capture: session=ID is required";
    return nullptr;
  }
  CaptureFilter filter;
  if (!filter.parse(filterText, err)) return nullptr;
  Registry &r = registry();
  std::shared_ptr<CaptureSink> sink;  // declared before the lock: if it ends up the last reference, it goes after the unlock
  std::lock_guard<std::mutex> g(r.mu);
  auto it = r.sessions.find(session);
  if (it != r.sessions.end()) sink = it->second.lock();
  if (fd >= 0) {
    if (sink || it != r.sessions.end()) {
      *err = "capture: session " + session + " exists already (give fd only to start a session)";
      return nullptr;
    }
    size_t live = 0;
    for (auto &kv : r.sessions) live += kv.second.expired() ? 0 : 1;
    if (live >= MAX_CAPTURE_SESSIONS) {
      *err = "capture: too many capture sessions (at most " + std::to_string(MAX_CAPTURE_SESSIONS) + ")";
      return nullptr;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t start = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
    sink = std::make_shared<CaptureSink>(session, int(fd), uint32_t(snaplen), size_t(buffer), std::move(filter), appl.substr(0, MAX_TEXT_OPTION_BYTES), start);
    r.sessions[session] = sink;
  } else if (!sink) {
    *err = "capture: session " + session + " is not running (start it with fd=N)";
    return nullptr;
  }
  return std::make_unique<CaptureStage>(std::move(sink), ingress, ifname, ifdescr);
}

[[maybe_unused]] const bool registered = registerStageKind(CaptureStage::NAME, &makeCapture);

}  // namespace
}  // namespace vde
