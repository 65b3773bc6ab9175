// Reassembly of frames from a byte stream with a 2-byte (VDE) or 4-byte (QEMU) big-endian length
// before each frame. Bytes are read straight into the decoder's buffer; next() hands out complete
// frames in place. A length of 0 is a no-op (as in VDE); a length below an Ethernet header is a
// runt (skipped, counted by the caller; its bytes are handed out too, because a vde-ts cable
// carries its offload negotiation in runts, see cable.h); a length above the limit means the
// stream cannot be trusted any more (the caller closes it with a reason instead of
// "resynchronising" on garbage). A caller may also parse the pending bytes itself (data(),
// consume()): cable.h gathers a frame from several records that way.
// Pure: no system calls, one buffer allocated at construction. The fuzz targets drive it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

namespace vde {

class StreamDecoder {
 public:
  /** Outcome of next(). */
  enum class Next : uint8_t { Frame, Runt, NeedMore, TooLong };

  /**
   * hdrBytes is 2 or 4; maxFrame is the largest frame accepted. The buffer holds two of the
   * larger of maxFrame and capFrame (a caller that gathers several records into one frame).
   */
  StreamDecoder(uint8_t hdrBytes, uint32_t maxFrame, uint32_t capFrame = 0)
      : hdr_(hdrBytes == 2 ? 2 : 4),
        maxFrame_(maxFrame),
        capFrame_(capFrame > maxFrame ? capFrame : maxFrame),
        cap_(2 * (size_t(capFrame_) + 4)),
        buf_(new uint8_t[cap_]) {}

  /** Zero-length records that came right before the record next() returned last. */
  uint32_t zerosBefore() const { return zerosBefore_; }

  /** Where the next read may write, and how many bytes (*room, never 0 while no frame is above the limit). */
  uint8_t *space(size_t *room) {
    compact();
    *room = cap_ - end_;
    return buf_.get() + end_;
  }
  /** Records that n bytes were written at space(). */
  void commit(size_t n) { end_ += n; }
  /** Bytes received but not yet handed out (a partial header or frame). */
  size_t pending() const { return end_ - off_; }
  /** The first byte not handed out yet (pending() bytes follow; valid until the next space() call). */
  const uint8_t *data() const { return buf_.get() + off_; }
  /** Hands out n pending bytes without parsing them (a caller that parses records itself). */
  void consume(size_t n) { off_ += n < end_ - off_ ? n : end_ - off_; }
  /** Bytes the buffer holds. */
  size_t capacity() const { return cap_; }
  /** Largest record the current framing accepts. */
  uint32_t maxFrame() const { return maxFrame_; }

  /**
   * Takes the next complete frame: Frame sets the frame pointer and length (valid until the next space() call); Runt
   * skipped a frame shorter than minFrame (its bytes are set the same way); NeedMore: no complete
   * frame yet; TooLong: the stream announced a frame above the limit (the decoder stays in that state).
   */
  Next next(const uint8_t **f, uint32_t *len, uint32_t minFrame) {
    for (;;) {
      if (bad_) return Next::TooLong;
      if (end_ - off_ < hdr_) return Next::NeedMore;
      const uint8_t *h = buf_.get() + off_;
      uint32_t l = hdr_ == 2 ? (uint32_t(h[0]) << 8 | h[1]) : (uint32_t(h[0]) << 24 | uint32_t(h[1]) << 16 | uint32_t(h[2]) << 8 | h[3]);
      if (l == 0) {
        off_ += hdr_;
        if (zeros_ < ZERO_RUN_CAP) zeros_++;
        continue;
      }
      if (l > maxFrame_) {
        bad_ = true;
        return Next::TooLong;
      }
      if (end_ - off_ - hdr_ < l) return Next::NeedMore;
      off_ += hdr_ + l;
      zerosBefore_ = zeros_;
      zeros_ = 0;
      *f = h + hdr_;
      *len = l;
      return l < minFrame ? Next::Runt : Next::Frame;
    }
  }

 private:
  void compact() {
    if (off_ == 0) return;
    if (off_ < end_) memmove(buf_.get(), buf_.get() + off_, end_ - off_);
    end_ -= off_;
    off_ = 0;
  }

  static constexpr uint32_t ZERO_RUN_CAP = 1u << 30;

  uint8_t hdr_;
  uint32_t maxFrame_;
  uint32_t capFrame_;
  size_t cap_;
  std::unique_ptr<uint8_t[]> buf_;
  size_t off_ = 0, end_ = 0;
  uint32_t zeros_ = 0, zerosBefore_ = 0;
  bool bad_ = false;
};

}  // namespace vde
