// The crypt:// cable protocol ("vde-ts crypt v1"): authenticated encryption of Ethernet frames
// between two endpoints that share a key, over datagrams or a byte stream. This file is the
// protocol without I/O: record layouts, the handshake and session state, the replay window and
// the calls into OpenSSL's libcrypto (ChaCha20-Poly1305 or AES-256-GCM, HKDF-SHA256,
// HMAC-SHA256, RAND_bytes; nothing cryptographic is written here). kinds/crypt.cc moves the
// records; native/fuzz/crypt_records.cc fuzzes what a peer (or an attacker) can send.
//
// Keys. Each endpoint holds keys K[id] of 32 bytes (id 0..255: the key id carried in every
// record, so keys rotate without dropping the cable: receivers accept every key they hold,
// senders use one). helloKey = HKDF(K, info "vde-ts crypt v1 hello").
//
// Records (big-endian):
//   HELLO  C7 11 KID SUITE | nonce[16] | echo[16] | mac[16]           (52 bytes)
//          mac = HMAC-SHA256(helloKey[KID], the first 36 bytes), first 16 bytes
//   DATA   C7 12 KID SUITE | sid[4] | counter[8] | ciphertext | tag[16] (frame + 32 bytes)
//          AEAD(key of session sid, nonce = 0000 || counter, aad = the first 16 bytes)
//   SEG    C7 13 ...  as DATA, but the plaintext is a 10-byte virtio-net header and then the
//          frame: a 64 KiB TCP segment (GSO) or a frame with a partial checksum, which the
//          receiver checks (offload.h) and passes on as it is or segments for ports without
//          offloads. Every receiver takes SEG records; a sender writes them where the transport
//          carries large records (streams; UDP paths whose MTU takes one whole), so a TCP flow
//          through the cable costs one AEAD call per 64 KiB instead of one per 1448 bytes.
// On a byte stream every record is preceded by its length (4 bytes, big-endian).
//
// Sessions. Every endpoint draws a random 16-byte nonce at start and a new one every
// REKEY_SECONDS (or after REKEY_AFTER_RECORDS records, AES_GCM_REKEY_AFTER_RECORDS with
// AES-256-GCM), and announces it in HELLOs together with
// the last nonce it heard from the peer ("echo"). The key for frames from S to R is
// HKDF(K[kid], salt = nonce_S || nonce_R, info "vde-ts crypt v1 data" + SUITE): 32 key bytes and
// the 4-byte session id. A receiver accepts only sessions that involve one of its own two
// newest nonces, so records recorded before it started (or before its last rekey but one) are
// never accepted again, even after a restart; a sender uses a nonce pair only once the peer
// has echoed its current nonce (the peer provably holds it), and never takes a pair up again
// after leaving it, so a (key, nonce) pair is never used twice. Counters start at 0 per
// session; each receiving session keeps a window of the last REPLAY_WINDOW_RECORDS counters.
//
// Everything runs on one thread (the engine's); the state is fixed-size and allocates only when
// a session is created (HELLOs, never per frame).
#pragma once

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace vde {

constexpr uint8_t CR_MAGIC = 0xc7;
constexpr uint8_t CR_HELLO = 0x11;
constexpr uint8_t CR_DATA = 0x12;
constexpr uint8_t CR_DATA_SEG = 0x13;
constexpr uint8_t CR_SUITE_CHACHA20_POLY1305 = 1;
constexpr uint8_t CR_SUITE_AES_256_GCM = 2;
constexpr size_t CR_KEY_BYTES = 32;
constexpr size_t CR_NONCE_BYTES = 16;
constexpr size_t CR_TAG_BYTES = 16;
constexpr size_t CR_DATA_HEADER_BYTES = 16;
constexpr size_t CR_HELLO_MAC_OFFSET = 4 + 2 * CR_NONCE_BYTES;
constexpr size_t CR_HELLO_BYTES = CR_HELLO_MAC_OFFSET + 16;
/** Bytes a data record adds to its frame. */
constexpr size_t CR_OVERHEAD_BYTES = CR_DATA_HEADER_BYTES + CR_TAG_BYTES;
/** The virtio-net header at the start of a SEG record's plaintext (offload.h's VNET_HDR_BYTES). */
constexpr size_t CR_SEG_VNET_BYTES = 10;
/** The length prefix of a record on a byte stream. */
constexpr size_t CR_STREAM_PREFIX_BYTES = 4;
/** Counters a receiving session remembers behind the highest one (WireGuard keeps 8128). */
constexpr uint64_t REPLAY_WINDOW_RECORDS = 2048;
/** A new nonce (and so new session keys) at least this often (the default; crypt:// rekey=). */
constexpr uint64_t REKEY_SECONDS = 120;
/** ...and after this many records with one key, long before a 64-bit counter could wrap. */
constexpr uint64_t REKEY_AFTER_RECORDS = uint64_t(1) << 48;
/** A session is never used for more records than this. */
constexpr uint64_t REJECT_AFTER_RECORDS = uint64_t(1) << 60;
/** AES-256-GCM keys wear out sooner (RFC 8446 5.5: at most 2^24.5 full-size records per key):
 *  new keys after this many records, and never more than the second limit with one key. */
constexpr uint64_t AES_GCM_REKEY_AFTER_RECORDS = uint64_t(1) << 24;
constexpr uint64_t AES_GCM_REJECT_AFTER_RECORDS = uint64_t(1) << 30;
/** HELLOs are repeated this often while the peer has not confirmed our nonce. */
constexpr uint64_t HELLO_RETRY_NS = 1'000'000'000;
/** ...and never sent more often than this. */
constexpr uint64_t HELLO_MIN_INTERVAL_NS = 50'000'000;
/** Our nonce is never changed more often than this because of what peers send. */
constexpr uint64_t ROTATE_MIN_INTERVAL_NS = 1'000'000'000;
/** Peer nonces (sessions) one of our nonces keeps. */
constexpr int CR_PEERS_PER_NONCE = 8;
/** Key ids an endpoint holds at most. */
constexpr size_t CR_MAX_KEYS = 16;
constexpr uint64_t CR_NS_PER_SECOND = 1'000'000'000;

/** One key and the hello key derived from it. */
struct CryptKey {
  uint8_t id = 0;
  uint8_t key[CR_KEY_BYTES] = {};
  uint8_t helloKey[CR_KEY_BYTES] = {};
};

/** What happened to a received record. */
enum class CrResult : uint8_t { Ok, Hello, Malformed, UnknownKey, BadAuth, NoSession, Replayed };

/** Counters of one endpoint (written by its thread). */
struct CryptCounters {
  uint64_t malformed = 0, unknownKey = 0, badAuth = 0, noSession = 0, replayed = 0;
  uint64_t helloReceived = 0, helloSent = 0, handshakes = 0, rotations = 0;
};

/** The last REPLAY_WINDOW_RECORDS counters of a receiving session. */
class ReplayWindow {
 public:
  /** True when counter c may be accepted (newer than the window, or in it and not seen). */
  bool fresh(uint64_t c) const {
    if (!any_ || c > top_) return true;
    if (top_ - c >= REPLAY_WINDOW_RECORDS) return false;
    return !(bits_[word(c)] & bit(c));
  }
  /** Marks counter c as seen (call only after fresh(c) and authentication). */
  void accept(uint64_t c) {
    if (!any_) {
      any_ = true;
      top_ = c;
      memset(bits_, 0, sizeof bits_);
    } else if (c > top_) {
      uint64_t d = c - top_;
      if (d >= REPLAY_WINDOW_RECORDS) {
        memset(bits_, 0, sizeof bits_);
      } else {
        for (uint64_t k = top_ + 1; k <= c; k++) bits_[word(k)] &= ~bit(k);
      }
      top_ = c;
    }
    bits_[word(c)] |= bit(c);
  }

 private:
  static size_t word(uint64_t c) { return size_t((c % REPLAY_WINDOW_RECORDS) / 64); }
  static uint64_t bit(uint64_t c) { return uint64_t(1) << (c % 64); }
  uint64_t bits_[REPLAY_WINDOW_RECORDS / 64] = {};
  uint64_t top_ = 0;
  bool any_ = false;
};

namespace crypt_detail {

inline const EVP_CIPHER *cipherOf(uint8_t suite) {
  return suite == CR_SUITE_AES_256_GCM ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
}

inline bool knownSuite(uint8_t s) { return s == CR_SUITE_CHACHA20_POLY1305 || s == CR_SUITE_AES_256_GCM; }

/** HKDF-SHA256(ikm, salt, info) into out (n bytes); false on a libcrypto failure. */
inline bool hkdf(const uint8_t *ikm, size_t ikmLen, const uint8_t *salt, size_t saltLen, const uint8_t *info, size_t infoLen, uint8_t *out, size_t n) {
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
  if (!c) return false;
  size_t len = n;
  bool ok = EVP_PKEY_derive_init(c) > 0 && EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()) > 0 &&
            (saltLen == 0 || EVP_PKEY_CTX_set1_hkdf_salt(c, salt, int(saltLen)) > 0) && EVP_PKEY_CTX_set1_hkdf_key(c, ikm, int(ikmLen)) > 0 &&
            EVP_PKEY_CTX_add1_hkdf_info(c, info, int(infoLen)) > 0 && EVP_PKEY_derive(c, out, &len) > 0 && len == n;
  EVP_PKEY_CTX_free(c);
  return ok;
}

inline void putBe32(uint8_t *p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
inline void putBe64(uint8_t *p, uint64_t v) {
  putBe32(p, uint32_t(v >> 32));
  putBe32(p + 4, uint32_t(v));
}
inline uint32_t getBe32(const uint8_t *p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
inline uint64_t getBe64(const uint8_t *p) { return uint64_t(getBe32(p)) << 32 | getBe32(p + 4); }

/** One direction's AEAD session: a cipher context keyed once, and its id. */
class AeadSession {
 public:
  AeadSession() = default;
  AeadSession(const AeadSession &) = delete;
  AeadSession &operator=(const AeadSession &) = delete;
  AeadSession(AeadSession &&o) noexcept { *this = std::move(o); }
  /** Takes o's context (o is left without one); frees ours. */
  AeadSession &operator=(AeadSession &&o) noexcept {
    if (this != &o) {
      reset();
      ctx_ = o.ctx_;
      sid_ = o.sid_;
      kid_ = o.kid_;
      suite_ = o.suite_;
      o.ctx_ = nullptr;
    }
    return *this;
  }
  ~AeadSession() { reset(); }
  /** Keys the session (derives key and sid from K, the two nonces and the suite); false on failure. */
  bool init(const CryptKey &k, uint8_t suite, const uint8_t *senderNonce, const uint8_t *receiverNonce, bool encrypt) {
    reset();
    uint8_t salt[2 * CR_NONCE_BYTES];
    memcpy(salt, senderNonce, CR_NONCE_BYTES);
    memcpy(salt + CR_NONCE_BYTES, receiverNonce, CR_NONCE_BYTES);
    static const char INFO[] = "vde-ts crypt v1 data";
    uint8_t info[sizeof INFO];
    memcpy(info, INFO, sizeof INFO - 1);
    info[sizeof INFO - 1] = suite;
    uint8_t okm[CR_KEY_BYTES + 4];
    if (!hkdf(k.key, CR_KEY_BYTES, salt, sizeof salt, info, sizeof info, okm, sizeof okm)) return false;
    ctx_ = EVP_CIPHER_CTX_new();
    bool ok = ctx_ && (encrypt ? EVP_EncryptInit_ex(ctx_, cipherOf(suite), nullptr, okm, nullptr) : EVP_DecryptInit_ex(ctx_, cipherOf(suite), nullptr, okm, nullptr)) > 0;
    OPENSSL_cleanse(okm, CR_KEY_BYTES);
    if (!ok) {
      reset();
      return false;
    }
    sid_ = getBe32(okm + CR_KEY_BYTES);
    kid_ = k.id;
    suite_ = suite;
    return true;
  }
  void reset() {
    if (ctx_) EVP_CIPHER_CTX_free(ctx_);
    ctx_ = nullptr;
  }
  bool ready() const { return ctx_ != nullptr; }
  uint32_t sid() const { return sid_; }
  uint8_t kid() const { return kid_; }
  uint8_t suite() const { return suite_; }

  /** Encrypts the iov parts (len bytes) after the 16-byte header at out; writes the tag after them. */
  bool seal(const uint8_t *hdr, const struct iovec *iov, int n, uint8_t *out) {
    uint8_t nonce[12] = {};
    memcpy(nonce + 4, hdr + 8, 8);
    int l = 0;
    if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) <= 0 || EVP_EncryptUpdate(ctx_, nullptr, &l, hdr, int(CR_DATA_HEADER_BYTES)) <= 0) return false;
    uint8_t *o = out;
    for (int k = 0; k < n; k++) {
      if (!iov[k].iov_len) continue;
      if (EVP_EncryptUpdate(ctx_, o, &l, static_cast<const uint8_t *>(iov[k].iov_base), int(iov[k].iov_len)) <= 0) return false;
      o += l;
    }
    if (EVP_EncryptFinal_ex(ctx_, o, &l) <= 0) return false;
    o += l;
    return EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, int(CR_TAG_BYTES), o) > 0;
  }
  /** Decrypts and authenticates body (ciphertext + tag, n bytes) into out (may be body); false when it does not authenticate. */
  bool open(const uint8_t *hdr, const uint8_t *body, size_t n, uint8_t *out) {
    if (n < CR_TAG_BYTES) return false;
    size_t ct = n - CR_TAG_BYTES;
    uint8_t nonce[12] = {};
    memcpy(nonce + 4, hdr + 8, 8);
    uint8_t tag[CR_TAG_BYTES];
    memcpy(tag, body + ct, CR_TAG_BYTES);
    int l = 0;
    if (EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) <= 0 || EVP_DecryptUpdate(ctx_, nullptr, &l, hdr, int(CR_DATA_HEADER_BYTES)) <= 0) return false;
    if (ct && EVP_DecryptUpdate(ctx_, out, &l, body, int(ct)) <= 0) return false;
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, int(CR_TAG_BYTES), tag) <= 0) return false;
    return EVP_DecryptFinal_ex(ctx_, out + (ct ? size_t(l) : 0), &l) > 0;
  }

 private:
  EVP_CIPHER_CTX *ctx_ = nullptr;
  uint32_t sid_ = 0;
  uint8_t kid_ = 0, suite_ = 0;
};

}  // namespace crypt_detail

/** Derives a key's hello key; false on a libcrypto failure. */
inline bool cryptPrepareKey(CryptKey &k) {
  static const uint8_t INFO[] = "vde-ts crypt v1 hello";
  return crypt_detail::hkdf(k.key, CR_KEY_BYTES, nullptr, 0, INFO, sizeof INFO - 1, k.helloKey, CR_KEY_BYTES);
}

/**
 * The state of one endpoint: keys, its own nonces, the sessions with the peer and the counters.
 * Driven by the endpoint: open() for every received record, seal() for every frame to send,
 * tick() from a timer, and takeHello() whenever a HELLO may be due.
 */
class CryptState {
 public:
  /** An endpoint sending with suite (CR_SUITE_*) that draws a new nonce every rekeyNs (at most). */
  explicit CryptState(uint8_t suite, uint64_t rekeyNs = REKEY_SECONDS * CR_NS_PER_SECOND)
      : suite_(suite),
        rekeyNs_(rekeyNs),
        rekeyAfterRecords_(suite == CR_SUITE_AES_256_GCM ? AES_GCM_REKEY_AFTER_RECORDS : REKEY_AFTER_RECORDS),
        rejectAfterRecords_(suite == CR_SUITE_AES_256_GCM ? AES_GCM_REJECT_AFTER_RECORDS : REJECT_AFTER_RECORDS) {}

  /** Replaces the keys (at most CR_MAX_KEYS, ids unique); sendKid sends. A new send key means a new nonce. */
  bool setKeys(const std::vector<CryptKey> &keys, uint8_t sendKid, uint64_t now) {
    if (keys.empty() || keys.size() > CR_MAX_KEYS) return false;
    bool found = false;
    for (const CryptKey &k : keys) found = found || k.id == sendKid;
    if (!found) return false;
    keys_ = keys;
    bool changed = !started_ || sendKid != sendKid_;
    sendKid_ = sendKid;
    // sessions under keys that are gone are dropped
    for (Mine *m : {&cur_, &prev_})
      for (Rx &r : m->rx)
        if (r.s.ready() && !key(r.s.kid())) r.s.reset();
    if (tx_.ready() && !key(tx_.kid())) tx_.reset();
    if (changed) rotate(now, true);
    started_ = true;
    return true;
  }

  /** Handles a received record (at least 16 bytes: hdr, then bodyLen bytes at body); a frame goes to out, *outLen bytes. */
  CrResult open(const uint8_t *hdr, const uint8_t *body, size_t bodyLen, uint8_t *out, uint32_t *outLen, uint64_t now) {
    // hdr holds the record's first 16 bytes, body the rest (out may be body: decryption in place)
    if (hdr[0] != CR_MAGIC || !crypt_detail::knownSuite(hdr[3])) return count(CrResult::Malformed);
    if (hdr[1] == CR_HELLO) {
      if (bodyLen + CR_DATA_HEADER_BYTES != CR_HELLO_BYTES) return count(CrResult::Malformed);
      uint8_t h[CR_HELLO_BYTES];
      memcpy(h, hdr, CR_DATA_HEADER_BYTES);
      memcpy(h + CR_DATA_HEADER_BYTES, body, bodyLen);
      return hello(h, now);
    }
    if ((hdr[1] != CR_DATA && hdr[1] != CR_DATA_SEG) || bodyLen < CR_TAG_BYTES + (hdr[1] == CR_DATA_SEG ? CR_SEG_VNET_BYTES : 0)) return count(CrResult::Malformed);
    if (!key(hdr[2])) return count(CrResult::UnknownKey);
    uint32_t sid = crypt_detail::getBe32(hdr + 4);
    uint64_t ctr = crypt_detail::getBe64(hdr + 8);
    Rx *r = findRx(sid, hdr[2], hdr[3]);
    if (!r) {
      wantHello_ = true;  // the peer uses a session we do not have (we restarted, or it missed our hello)
      return count(CrResult::NoSession);
    }
    if (!r->win.fresh(ctr)) return count(CrResult::Replayed);
    if (!r->s.open(hdr, body, bodyLen, out)) return count(CrResult::BadAuth);
    r->win.accept(ctr);
    *outLen = uint32_t(bodyLen - CR_TAG_BYTES);
    return CrResult::Ok;
  }

  /**
   * Encrypts a frame (iov parts, len bytes) into out: header, ciphertext, tag (len +
   * CR_OVERHEAD_BYTES); false without a session. seg: a SEG record (the first CR_SEG_VNET_BYTES
   * of the parts are the virtio-net header).
   */
  bool seal(const struct iovec *iov, int n, size_t len, uint8_t *out, uint64_t now, bool seg = false) {
    (void)len;
    if (!tx_.ready() || txCounter_ >= rejectAfterRecords_) return false;
    if (txCounter_ >= rekeyAfterRecords_ && now - lastRotateNs_ >= ROTATE_MIN_INTERVAL_NS) rotate(now, false);
    out[0] = CR_MAGIC;
    out[1] = seg ? CR_DATA_SEG : CR_DATA;
    out[2] = tx_.kid();
    out[3] = tx_.suite();
    crypt_detail::putBe32(out + 4, tx_.sid());
    crypt_detail::putBe64(out + 8, txCounter_);
    if (!tx_.seal(out, iov, n, out + CR_DATA_HEADER_BYTES)) return false;
    txCounter_++;
    return true;
  }

  /** Periodic work: HELLO retries while our nonce is not confirmed, and the time-based rekey. */
  void tick(uint64_t now) {
    if (!started_) return;
    if (!cur_.valid) rotate(now, true);  // the last nonce could not be drawn
    if (confirmed() && now - cur_.bornNs >= rekeyNs_) rotate(now, false);
    if (!confirmed() && now - lastHelloNs_ >= HELLO_RETRY_NS) wantHello_ = true;
  }

  /** When a HELLO is due (and allowed by the rate limit), writes it to out (CR_HELLO_BYTES) and returns true. */
  bool takeHello(uint8_t *out, uint64_t now) {
    if (!started_ || !wantHello_ || (helloSentOnce_ && now - lastHelloNs_ < HELLO_MIN_INTERVAL_NS)) return false;
    const CryptKey *k = key(cur_.kid);
    if (!k) return false;
    out[0] = CR_MAGIC;
    out[1] = CR_HELLO;
    out[2] = cur_.kid;
    out[3] = suite_;
    memcpy(out + 4, cur_.nonce, CR_NONCE_BYTES);
    memcpy(out + 4 + CR_NONCE_BYTES, lastPeerNonce_, CR_NONCE_BYTES);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int macLen = 0;
    if (!HMAC(EVP_sha256(), k->helloKey, int(CR_KEY_BYTES), out, CR_HELLO_MAC_OFFSET, mac, &macLen)) return false;
    memcpy(out + CR_HELLO_MAC_OFFSET, mac, CR_HELLO_BYTES - CR_HELLO_MAC_OFFSET);
    wantHello_ = false;
    helloSentOnce_ = true;
    lastHelloNs_ = now;
    counters.helloSent++;
    return true;
  }

  /** True once frames can be sent (a session with the peer exists). */
  bool established() const { return tx_.ready(); }
  /** True when the peer has confirmed our current nonce. */
  bool confirmed() const { return tx_.ready() && memcmp(txMine_, cur_.nonce, CR_NONCE_BYTES) == 0; }
  /** Records sent with the current session. */
  uint64_t txCounter() const { return txCounter_; }

  CryptCounters counters;

 private:
  struct Rx {
    crypt_detail::AeadSession s;
    ReplayWindow win;
    uint8_t peer[CR_NONCE_BYTES] = {};
  };
  struct Mine {
    uint8_t nonce[CR_NONCE_BYTES] = {};
    uint8_t kid = 0;
    uint64_t bornNs = 0;
    bool valid = false;
    Rx rx[CR_PEERS_PER_NONCE];
    uint8_t usedTx[CR_PEERS_PER_NONCE][CR_NONCE_BYTES] = {};
    int usedTxCount = 0;
  };

  CrResult count(CrResult r) {
    switch (r) {
      case CrResult::Malformed: counters.malformed++; break;
      case CrResult::UnknownKey: counters.unknownKey++; break;
      case CrResult::BadAuth: counters.badAuth++; break;
      case CrResult::NoSession: counters.noSession++; break;
      case CrResult::Replayed: counters.replayed++; break;
      default: break;
    }
    return r;
  }

  const CryptKey *key(uint8_t id) const {
    for (const CryptKey &k : keys_)
      if (k.id == id) return &k;
    return nullptr;
  }

  Rx *findRx(uint32_t sid, uint8_t kid, uint8_t suite) {
    for (Mine *m : {&cur_, &prev_}) {
      if (!m->valid) continue;
      for (Rx &r : m->rx)
        if (r.s.ready() && r.s.sid() == sid && r.s.kid() == kid && r.s.suite() == suite) return &r;
    }
    return nullptr;
  }

  // A new nonce of ours (the old one stays accepted as the previous one); sends a HELLO.
  void rotate(uint64_t now, bool force) {
    if (!force && started_ && now - lastRotateNs_ < ROTATE_MIN_INTERVAL_NS) return;
    prev_ = std::move(cur_);
    if (RAND_bytes(cur_.nonce, int(CR_NONCE_BYTES)) != 1) {
      // no randomness: no new nonce (and no sessions with it); tick() tries again
      cur_.valid = false;
      return;
    }
    cur_.kid = sendKid_;
    cur_.bornNs = now;
    cur_.valid = true;
    cur_.usedTxCount = 0;
    for (Rx &r : cur_.rx) r.s.reset();
    // the peers we know may switch to the new nonce as soon as they hear it: be ready for them
    int k = 0;
    for (const Rx &r : prev_.rx) {
      const CryptKey *pk = r.s.ready() ? key(r.s.kid()) : nullptr;
      if (!pk || !prev_.valid) continue;
      if (cur_.rx[k].s.init(*pk, r.s.suite(), r.peer, cur_.nonce, false)) {
        cur_.rx[k].win = ReplayWindow();
        memcpy(cur_.rx[k].peer, r.peer, CR_NONCE_BYTES);
        k++;
      }
    }
    lastRotateNs_ = now;
    wantHello_ = true;
    if (started_) counters.rotations++;
  }

  // A verified HELLO: learn the peer's nonce (a receiving session with our current nonce), and if
  // it echoes our current nonce, (re)establish the sending session.
  CrResult hello(const uint8_t *h, uint64_t now) {
    const CryptKey *k = key(h[2]);
    if (!k) return count(CrResult::UnknownKey);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int macLen = 0;
    if (!HMAC(EVP_sha256(), k->helloKey, int(CR_KEY_BYTES), h, CR_HELLO_MAC_OFFSET, mac, &macLen) ||
        CRYPTO_memcmp(mac, h + CR_HELLO_MAC_OFFSET, CR_HELLO_BYTES - CR_HELLO_MAC_OFFSET) != 0)
      return count(CrResult::BadAuth);
    counters.helloReceived++;
    const uint8_t suite = h[3];
    const uint8_t *peer = h + 4;
    const uint8_t *echo = h + 4 + CR_NONCE_BYTES;
    bool newPeer = memcmp(peer, lastPeerNonce_, CR_NONCE_BYTES) != 0;
    memcpy(lastPeerNonce_, peer, CR_NONCE_BYTES);
    // receiving session (peer's nonce, our current nonce): created once per pair, never re-created
    if (!hasRx(cur_, peer, h[2], suite)) {
      Rx *slot = nullptr;
      for (Rx &r : cur_.rx)
        if (!r.s.ready()) {
          slot = &r;
          break;
        }
      if (!slot) {  // this nonce heard too many peer nonces (replayed HELLOs?): start afresh
        rotate(now, false);
        for (Rx &r : cur_.rx)
          if (!r.s.ready()) {
            slot = &r;
            break;
          }
      }
      if (slot && slot->s.init(*k, suite, peer, cur_.nonce, false)) {
        slot->win = ReplayWindow();
        memcpy(slot->peer, peer, CR_NONCE_BYTES);
      }
      newPeer = true;
    }
    bool fresh = memcmp(echo, cur_.nonce, CR_NONCE_BYTES) == 0;
    if (fresh && !(tx_.ready() && memcmp(txMine_, cur_.nonce, CR_NONCE_BYTES) == 0 && memcmp(txPeer_, peer, CR_NONCE_BYTES) == 0)) {
      bool used = false;
      for (int i = 0; i < cur_.usedTxCount; i++) used = used || memcmp(cur_.usedTx[i], peer, CR_NONCE_BYTES) == 0;
      if (used || cur_.usedTxCount == CR_PEERS_PER_NONCE) {
        rotate(now, false);  // never take a pair up again: a new nonce of ours instead
      } else if (const CryptKey *mk = key(cur_.kid)) {
        if (tx_.init(*mk, suite_, cur_.nonce, peer, true)) {
          memcpy(cur_.usedTx[cur_.usedTxCount++], peer, CR_NONCE_BYTES);
          memcpy(txMine_, cur_.nonce, CR_NONCE_BYTES);
          memcpy(txPeer_, peer, CR_NONCE_BYTES);
          txCounter_ = 0;
          counters.handshakes++;
        }
      }
    }
    // answer when the peer does not know our current nonce, or sent a nonce we had not heard
    if (!fresh || newPeer) wantHello_ = true;
    return CrResult::Hello;
  }

  static bool hasRx(const Mine &m, const uint8_t *peer, uint8_t kid, uint8_t suite) {
    for (const Rx &r : m.rx)
      if (r.s.ready() && r.s.kid() == kid && r.s.suite() == suite && memcmp(r.peer, peer, CR_NONCE_BYTES) == 0) return true;
    return false;
  }

  uint8_t suite_;
  uint64_t rekeyNs_;
  uint64_t rekeyAfterRecords_, rejectAfterRecords_;
  std::vector<CryptKey> keys_;
  uint8_t sendKid_ = 0;
  bool started_ = false;
  Mine cur_, prev_;
  crypt_detail::AeadSession tx_;
  uint8_t txMine_[CR_NONCE_BYTES] = {}, txPeer_[CR_NONCE_BYTES] = {};
  uint64_t txCounter_ = 0;
  uint8_t lastPeerNonce_[CR_NONCE_BYTES] = {};
  bool wantHello_ = false, helloSentOnce_ = false;
  uint64_t lastHelloNs_ = 0, lastRotateNs_ = 0;
};

}  // namespace vde
