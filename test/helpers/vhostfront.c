/*
 * vhostfront: a scripted vhost-user front-end for the tests of the switch's --vhost-user ports.
 * It plays QEMU's part with no VM: guest memory is a memfd it maps itself, the two virtqueues of
 * a virtio-net device live in it, and it speaks the vhost-user protocol on the socket exactly in
 * the order QEMU 7.2 does (features, protocol features, queue number, owner, call/err fds,
 * features, memory table, per ring num/base/addr/kick/call, enable). Then, by scenario:
 *
 *   traffic    send --tx-count frames (from --src to --dst, --tx-bytes each, a virtio-net header
 *              with --gso for a TSO frame) on the transmit queue, post --rx-buffers receive buffers
 *              of --rx-buf-bytes (after --rx-late-ms, kicking the receive queue then), collect
 *              frames for --wait-ms (or until --rx-expect arrived); prints them
 *   proto KIND a broken control message (version, reply-flag, too-long, short-payload,
 *              bad-features, too-many-fds, mem-too-big, mem-not-file, bad-index, unknown-request,
 *              truncated); prints whether the switch closed the connection and its reply
 *   ring KIND  a malicious transmit ring after a normal start (loop, head-range, addr-outside,
 *              nested-indirect, avail-jump, writable-tx, huge-len, oversize); prints whether the
 *              switch signalled the ring's error eventfd, then resets both rings as QEMU does
 *              (GET_VRING_BASE, a fresh start) and checks that a frame passes again
 *
 * Output: one JSON object on stdout. Exit status 0, or 1 with {"ok":false,"error":...}. Every
 * wait is bounded; the process gives up after --deadline-ms (default 20000) with an alarm.
 * Build: cc -O2 -Wall -o vhostfront vhostfront.c (test/helpers/vhostfront.ts does it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MEM_BYTES (16u << 20)
#define QSIZE 256u
#define RXQ 0
#define TXQ 1
/* ring layout in guest memory (guest-physical address = offset in the memfd) */
#define RX_DESC 0x0000u
#define RX_AVAIL 0x1000u
#define RX_USED 0x2000u
#define TX_DESC 0x4000u
#define TX_AVAIL 0x5000u
#define TX_USED 0x6000u
#define BUF_BASE 0x10000u
#define TX_SLOT_BYTES 0x11000u /* room for a 64 KiB frame + header */
#define RX_AREA (BUF_BASE + 16u * TX_SLOT_BYTES)
#define HDR 12u
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

static uint8_t *mem;
static int sock = -1, memfd = -1;
static int kick[2], call[2], err[2];
static uint16_t txAvail, rxAvail, rxUsedSeen;
static char mac_dst[6], mac_src[6];

/* --- output */
static void fail(const char *fmt, ...) {
  char b[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  printf("{\"ok\":false,\"error\":\"%s\"}\n", b);
  exit(1);
}
static void on_alarm(int s) {
  (void)s;
  printf("{\"ok\":false,\"error\":\"deadline\"}\n");
  fflush(stdout);
  _exit(1);
}
static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* --- protocol */
static int send_msg(uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds, int nfds) {
  uint8_t buf[12 + 512];
  memcpy(buf, &req, 4);
  memcpy(buf + 4, &flags, 4);
  memcpy(buf + 8, &size, 4);
  if (size) memcpy(buf + 12, payload, size);
  struct iovec iov = {buf, 12 + size};
  struct msghdr mh = {0};
  char cbuf[CMSG_SPACE(sizeof(int) * 16)];
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds) {
    mh.msg_control = cbuf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)(12 + size) ? 0 : -1;
}
/* Reads a reply (payload up to max bytes) within ms; returns its size, -1 on EOF/error, -2 on timeout. */
static int read_reply(uint32_t *req, void *payload, uint32_t max, int ms) {
  uint8_t buf[12 + 64];
  size_t have = 0;
  long long end = now_ms() + ms;
  while (have < 12) {
    struct pollfd p = {sock, POLLIN, 0};
    int left = (int)(end - now_ms());
    if (left <= 0 || poll(&p, 1, left) <= 0) return -2;
    ssize_t r = read(sock, buf + have, 12 - have);
    if (r <= 0) return -1;
    have += (size_t)r;
  }
  uint32_t size;
  memcpy(req, buf, 4);
  memcpy(&size, buf + 8, 4);
  if (size > 64) return -1;
  while (have < 12 + size) {
    ssize_t r = read(sock, buf + have, 12 + size - have);
    if (r <= 0) return -1;
    have += (size_t)r;
  }
  if (payload) memcpy(payload, buf + 12, size < max ? size : max);
  return (int)size;
}
static uint64_t get_u64(uint32_t req) {
  uint64_t v = 0;
  uint32_t r;
  if (send_msg(req, 1, NULL, 0, NULL, 0) < 0 || read_reply(&r, &v, 8, 3000) != 8 || r != req) fail("no reply to request %u", req);
  return v;
}
static void set_u64(uint32_t req, uint64_t v, int fd) {
  if (send_msg(req, 1, &v, 8, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0) < 0) fail("send %u", req);
}
static void set_state(uint32_t req, uint32_t index, uint32_t num) {
  uint32_t s[2] = {index, num};
  if (send_msg(req, 1, s, 8, NULL, 0) < 0) fail("send %u", req);
}
/* True when the switch closed the socket within ms (any bytes it sent are read and ignored). */
static int closed_within(int ms) {
  long long end = now_ms() + ms;
  for (;;) {
    struct pollfd p = {sock, POLLIN, 0};
    int left = (int)(end - now_ms());
    if (left <= 0 || poll(&p, 1, left) <= 0) return 0;
    char b[256];
    ssize_t r = read(sock, b, sizeof b);
    if (r <= 0) return 1;
  }
}

/* --- rings */
static void wr16(uint32_t off, uint16_t v) { memcpy(mem + off, &v, 2); }
static uint16_t rd16(uint32_t off) {
  uint16_t v;
  memcpy(&v, mem + off, 2);
  return v;
}
static uint32_t rd32(uint32_t off) {
  uint32_t v;
  memcpy(&v, mem + off, 4);
  return v;
}
static void desc(uint32_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
  uint8_t *d = mem + table + 16 * i;
  memcpy(d, &addr, 8);
  memcpy(d + 8, &len, 4);
  memcpy(d + 12, &flags, 2);
  memcpy(d + 14, &next, 2);
}
static void publish_avail(uint32_t avail, uint16_t head, uint16_t *idx) {
  wr16(avail + 4 + 2 * (*idx % QSIZE), head);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  (*idx)++;
  __atomic_store_n((uint16_t *)(mem + avail + 2), *idx, __ATOMIC_RELEASE);
}
static void kick_q(int q) {
  uint64_t one = 1;
  if (write(kick[q], &one, 8) != 8) fail("kick");
}
static int fd_readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) > 0;
}

/* Sets up everything QEMU does before the guest runs; rings start at index base. */
static void handshake(int mergeable, uint16_t base) {
  uint64_t f = get_u64(1);                     /* GET_FEATURES */
  uint64_t pf = get_u64(15);                   /* GET_PROTOCOL_FEATURES */
  set_u64(16, pf & ((1u << 0) | (1u << 3)), -1); /* SET_PROTOCOL_FEATURES: MQ, REPLY_ACK */
  (void)get_u64(17);                           /* GET_QUEUE_NUM */
  if (send_msg(3, 1, NULL, 0, NULL, 0) < 0) fail("owner");
  for (int q = 0; q < 2; q++) {
    set_u64(13, (uint64_t)q, call[q]);
    set_u64(14, (uint64_t)q, err[q]);
  }
  uint64_t want = f & ~(mergeable ? 0 : (1ull << 15));
  set_u64(2, want, -1); /* SET_FEATURES */
  uint8_t mt[8 + 32];
  uint32_t one = 1, pad = 0;
  uint64_t gpa = 0, size = MEM_BYTES, uva = (uint64_t)(uintptr_t)mem, off = 0;
  memcpy(mt, &one, 4);
  memcpy(mt + 4, &pad, 4);
  memcpy(mt + 8, &gpa, 8);
  memcpy(mt + 16, &size, 8);
  memcpy(mt + 24, &uva, 8);
  memcpy(mt + 32, &off, 8);
  if (send_msg(5, 1 | 8, mt, sizeof mt, &memfd, 1) < 0) fail("mem table");
  uint64_t ack;
  uint32_t r;
  if (read_reply(&r, &ack, 8, 3000) != 8 || r != 5 || ack != 0) fail("mem table not acknowledged");
  for (int q = 0; q < 2; q++) {
    uint32_t d = q == RXQ ? RX_DESC : TX_DESC, a = q == RXQ ? RX_AVAIL : TX_AVAIL, u = q == RXQ ? RX_USED : TX_USED;
    memset(mem + d, 0, 16 * QSIZE);
    memset(mem + a, 0, 4 + 2 * QSIZE);
    memset(mem + u, 0, 4 + 8 * QSIZE);
    wr16(a + 2, base);
    wr16(u + 2, base);
    set_state(8, (uint32_t)q, QSIZE);
    set_state(10, (uint32_t)q, base);
    uint8_t ad[40];
    uint32_t idx = (uint32_t)q, fl = 0;
    uint64_t du = (uint64_t)(uintptr_t)(mem + d), uu = (uint64_t)(uintptr_t)(mem + u), au = (uint64_t)(uintptr_t)(mem + a), lg = 0;
    memcpy(ad, &idx, 4);
    memcpy(ad + 4, &fl, 4);
    memcpy(ad + 8, &du, 8);
    memcpy(ad + 16, &uu, 8);
    memcpy(ad + 24, &au, 8);
    memcpy(ad + 32, &lg, 8);
    if (send_msg(9, 1, ad, 40, NULL, 0) < 0) fail("addr");
    set_u64(12, (uint64_t)q, kick[q]);
    set_u64(13, (uint64_t)q, call[q]);
  }
  for (int q = 0; q < 2; q++) set_state(18, (uint32_t)q, 1); /* SET_VRING_ENABLE */
  txAvail = rxAvail = rxUsedSeen = base;
}

/* Stops both rings as QEMU does when the guest resets the device; returns the TX ring's base. */
static uint16_t stop_rings(void) {
  uint16_t txBase = 0;
  for (int q = 0; q < 2; q++) {
    uint32_t s[2] = {(uint32_t)q, 0}, r, out[2];
    if (send_msg(11, 1, s, 8, NULL, 0) < 0 || read_reply(&r, out, 8, 3000) != 8 || r != 11) fail("GET_VRING_BASE");
    if (q == TXQ) txBase = (uint16_t)out[1];
  }
  return txBase;
}

/* Puts one frame (header + bytes) on the transmit queue in descriptor slot i. */
static void tx_frame(uint32_t i, const uint8_t *hdr, const uint8_t *f, uint32_t len) {
  uint32_t at = BUF_BASE + (i % 16) * TX_SLOT_BYTES;
  memcpy(mem + at, hdr, HDR);
  memcpy(mem + at + HDR, f, len);
  desc(TX_DESC, i % QSIZE, at, HDR + len, 0, 0);
  publish_avail(TX_AVAIL, (uint16_t)(i % QSIZE), &txAvail);
}
static void make_frame(uint8_t *f, uint32_t len, uint32_t seq) {
  memcpy(f, mac_dst, 6);
  memcpy(f + 6, mac_src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (uint32_t k = 14; k < len; k++) f[k] = (uint8_t)(k * 7 + seq);
  if (len >= 18) memcpy(f + 14, &seq, 4);
}
/* Waits until the transmit queue's used index reaches want (or passes it); returns it. */
static uint16_t wait_tx_used(uint16_t want, int ms) {
  long long end = now_ms() + ms;
  uint16_t u;
  while ((uint16_t)((u = __atomic_load_n((uint16_t *)(mem + TX_USED + 2), __ATOMIC_ACQUIRE)) - want) >= 0x8000 && now_ms() < end) usleep(1000);
  return u;
}
static void post_rx(uint32_t n, uint32_t bytes) {
  for (uint32_t i = 0; i < n; i++) {
    uint32_t slot = (uint32_t)(rxAvail % QSIZE);
    desc(RX_DESC, slot, RX_AREA + slot * bytes, bytes, F_WRITE, 0);
    publish_avail(RX_AVAIL, (uint16_t)slot, &rxAvail);
  }
}
/* Collects received frames: prints them into out as JSON; returns how many. */
static int collect_rx(char *out, size_t outMax, int expect, int ms, uint32_t bufBytes, int mergeable) {
  long long end = now_ms() + ms;
  int got = 0;
  size_t o = 0;
  o += (size_t)snprintf(out + o, outMax - o, "[");
  while (now_ms() < end && (expect <= 0 || got < expect)) {
    uint16_t u = __atomic_load_n((uint16_t *)(mem + RX_USED + 2), __ATOMIC_ACQUIRE);
    if (u == rxUsedSeen) {
      usleep(1000);
      continue;
    }
    /* one frame: the first used element, and with mergeable buffers num_buffers - 1 more */
    uint32_t e = RX_USED + 4 + 8 * (rxUsedSeen % QSIZE);
    uint32_t id = rd32(e), len = rd32(e + 4);
    uint32_t first = RX_AREA + id * bufBytes;
    uint16_t nb = mergeable ? rd16(first + 10) : 1;
    if (nb == 0 || nb > 64) fail("num_buffers %u", nb);
    while ((uint16_t)(u - rxUsedSeen) < nb && now_ms() < end) {
      usleep(1000);
      u = __atomic_load_n((uint16_t *)(mem + RX_USED + 2), __ATOMIC_ACQUIRE);
    }
    if ((uint16_t)(u - rxUsedSeen) < nb) fail("a frame's buffers did not all arrive");
    static uint8_t frame[70000];
    uint32_t flen = 0;
    uint8_t h[HDR];
    for (uint16_t k = 0; k < nb; k++) {
      uint32_t ek = RX_USED + 4 + 8 * ((uint16_t)(rxUsedSeen + k) % QSIZE);
      uint32_t idk = rd32(ek), lk = rd32(ek + 4);
      uint32_t at = RX_AREA + idk * bufBytes;
      if (lk > bufBytes) fail("used length %u beyond the buffer", lk);
      uint32_t skip = 0;
      if (k == 0) {
        memcpy(h, mem + at, HDR);
        skip = HDR;
      }
      if (flen + lk - skip > sizeof frame) fail("frame too long");
      memcpy(frame + flen, mem + at + skip, lk - skip);
      flen += lk - skip;
    }
    (void)len;
    rxUsedSeen = (uint16_t)(rxUsedSeen + nb);
    /* give the buffers back */
    post_rx(nb, bufBytes);
    kick_q(RXQ);
    if (o + 2 * 64 + 200 < outMax) {
      o += (size_t)snprintf(out + o, outMax - o, "%s{\"len\":%u,\"nbuf\":%u,\"flags\":%u,\"gso\":%u,\"head\":\"", got ? "," : "", flen, nb, h[0], h[1]);
      for (uint32_t k = 0; k < flen && k < 64; k++) o += (size_t)snprintf(out + o, outMax - o, "%02x", frame[k]);
      uint32_t sum = 0;
      for (uint32_t k = 0; k < flen; k++) sum = sum * 31 + frame[k];
      o += (size_t)snprintf(out + o, outMax - o, "\",\"sum\":%u}", sum);
    }
    got++;
  }
  snprintf(out + o, outMax - o, "]");
  return got;
}

static void parse_mac(const char *s, char *out) {
  unsigned b[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) fail("bad MAC %s", s);
  for (int i = 0; i < 6; i++) out[i] = (char)b[i];
}

int main(int argc, char **argv) {
  const char *path = NULL, *scenario = NULL, *kind = "";
  int txCount = 0, rxBuffers = 64, rxExpect = 0, waitMs = 2000, lateMs = 0, mergeable = 1, deadlineMs = 20000, gso = 0, closeMs = 500;
  uint32_t txBytes = 60, rxBufBytes = 2048;
  uint16_t base = 0;
  parse_mac("02:00:00:00:00:02", mac_dst);
  parse_mac("02:00:00:00:00:01", mac_src);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
    if (OPT("--sock")) path = v;
    else if (OPT("--tx-count")) txCount = atoi(v);
    else if (OPT("--tx-bytes")) txBytes = (uint32_t)atoi(v);
    else if (OPT("--rx-buffers")) rxBuffers = atoi(v);
    else if (OPT("--rx-buf-bytes")) rxBufBytes = (uint32_t)atoi(v);
    else if (OPT("--rx-expect")) rxExpect = atoi(v);
    else if (OPT("--rx-late-ms")) lateMs = atoi(v);
    else if (OPT("--wait-ms")) waitMs = atoi(v);
    else if (OPT("--base")) base = (uint16_t)atoi(v);
    else if (OPT("--close-ms")) closeMs = atoi(v);
    else if (OPT("--deadline-ms")) deadlineMs = atoi(v);
    else if (OPT("--dst")) parse_mac(v, mac_dst);
    else if (OPT("--src")) parse_mac(v, mac_src);
    else if (strcmp(a, "--gso") == 0) gso = 1;
    else if (strcmp(a, "--no-mergeable") == 0) mergeable = 0;
    else if (!scenario) scenario = a;
    else kind = a;
  }
  if (!path || !scenario) fail("usage: vhostfront --sock PATH traffic|proto KIND|ring KIND [options]");
  if (rxBufBytes < 64 || rxBufBytes > 0x10000 || RX_AREA + QSIZE * rxBufBytes > MEM_BYTES) fail("bad --rx-buf-bytes");
  if (txBytes < 14 || txBytes > 0x10000) fail("bad --tx-bytes");
  signal(SIGALRM, on_alarm);
  signal(SIGPIPE, SIG_IGN); /* a closed connection is a result here, not a reason to die */
  alarm((unsigned)(deadlineMs + 999) / 1000);

  memfd = memfd_create("vhostfront", MFD_CLOEXEC);
  if (memfd < 0 || ftruncate(memfd, MEM_BYTES) < 0) fail("memfd");
  mem = mmap(NULL, MEM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (mem == MAP_FAILED) fail("mmap");
  for (int q = 0; q < 2; q++) {
    kick[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    call[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    err[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {0};
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (connect(sock, (struct sockaddr *)&sa, sizeof sa) < 0) fail("connect %s: %s", path, strerror(errno));

  static char rx[1 << 16];
  if (strcmp(scenario, "traffic") == 0) {
    handshake(mergeable, base);
    if (!lateMs) post_rx((uint32_t)rxBuffers, rxBufBytes);
    if (!lateMs) kick_q(RXQ);
    static uint8_t f[0x10000];
    uint8_t h[HDR] = {0};
    if (gso) {
      /* a TSO frame: Ethernet + IPv4 + TCP headers, payload, partial checksum (as a Linux guest sends it) */
      h[0] = 1;        /* NEEDS_CSUM */
      h[1] = 1;        /* GSO_TCPV4 */
      uint16_t hl = 54, gs = 1448, cs = 34, co = 16;
      memcpy(h + 2, &hl, 2);
      memcpy(h + 4, &gs, 2);
      memcpy(h + 6, &cs, 2);
      memcpy(h + 8, &co, 2);
    }
    for (int i = 0; i < txCount; i++) {
      make_frame(f, txBytes, (uint32_t)i);
      if (gso) {
        f[12] = 0x08;
        f[13] = 0x00;
        uint8_t *ip = f + 14;
        memset(ip, 0, 40);
        ip[0] = 0x45;
        uint16_t tot = (uint16_t)(txBytes - 14);
        ip[2] = (uint8_t)(tot >> 8);
        ip[3] = (uint8_t)tot;
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = 6;
        uint8_t srcip[4] = {192, 0, 2, 10}, dstip[4] = {192, 0, 2, 1};
        memcpy(ip + 12, srcip, 4);
        memcpy(ip + 16, dstip, 4);
        uint8_t *tcp = ip + 20;
        tcp[0] = 0xa5;
        tcp[3] = 80;
        tcp[12] = 0x50;
        tcp[13] = 0x18;
      }
      if (i >= 16) { /* 16 transmit buffers: wait until the switch took the one this frame reuses */
        kick_q(TXQ);
        uint16_t want = (uint16_t)(base + i - 15);
        if ((uint16_t)(wait_tx_used(want, 3000) - want) >= 0x8000) fail("the switch did not take transmit buffer %d", i - 16);
      }
      tx_frame((uint32_t)i, h, f, txBytes);
      if (i % 8 == 7 || i == txCount - 1) kick_q(TXQ);
    }
    uint16_t used = txCount ? wait_tx_used(txAvail, 3000) : txAvail;
    if (lateMs) {
      usleep((useconds_t)lateMs * 1000);
      post_rx((uint32_t)rxBuffers, rxBufBytes);
      kick_q(RXQ);
    }
    int got = collect_rx(rx, sizeof rx, rxExpect, waitMs, rxBufBytes, mergeable);
    int calls = fd_readable(call[TXQ], 0);
    uint16_t txBase = stop_rings();
    printf("{\"ok\":true,\"txUsed\":%u,\"txSent\":%u,\"txCall\":%s,\"txBase\":%u,\"rxCount\":%d,\"rx\":%s}\n", (uint16_t)(used - base), (uint16_t)(txAvail - base),
           calls ? "true" : "false", txBase, got, rx);
    return 0;
  }

  if (strcmp(scenario, "proto") == 0) {
    uint64_t v = 0;
    uint32_t r;
    uint64_t reply = 0;
    int size = -3;
    if (strcmp(kind, "version") == 0) send_msg(1, 2, NULL, 0, NULL, 0);
    else if (strcmp(kind, "reply-flag") == 0) send_msg(1, 1 | 4, NULL, 0, NULL, 0);
    else if (strcmp(kind, "too-long") == 0) {
      uint32_t hdr[3] = {2, 1, 65536};
      if (write(sock, hdr, 12) != 12) fail("write");
    } else if (strcmp(kind, "short-payload") == 0) send_msg(2, 1, &v, 4, NULL, 0);
    else if (strcmp(kind, "bad-features") == 0) set_u64(2, 1ull << 63, -1);
    else if (strcmp(kind, "too-many-fds") == 0) {
      int fds[12];
      for (int i = 0; i < 12; i++) fds[i] = kick[0];
      send_msg(13, 1, &v, 8, fds, 12);
    } else if (strcmp(kind, "mem-too-big") == 0 || strcmp(kind, "mem-not-file") == 0) {
      uint8_t mt[40] = {0};
      uint32_t one = 1;
      uint64_t size64 = strcmp(kind, "mem-too-big") == 0 ? 2ull * MEM_BYTES : MEM_BYTES, uva = (uint64_t)(uintptr_t)mem;
      memcpy(mt, &one, 4);
      memcpy(mt + 16, &size64, 8);
      memcpy(mt + 24, &uva, 8);
      int fd = strcmp(kind, "mem-too-big") == 0 ? memfd : kick[0];
      send_msg(5, 1, mt, sizeof mt, &fd, 1);
    } else if (strcmp(kind, "bad-index") == 0) set_state(8, 5, 256);
    else if (strcmp(kind, "unknown-request") == 0) {
      send_msg(99, 1 | 8, &v, 8, NULL, 0);
      size = read_reply(&r, &reply, 8, 3000);
    } else if (strcmp(kind, "truncated") == 0) {
      uint32_t hdr[3] = {2, 1, 8};
      /* the switch waits for the rest without blocking anything; it must not answer or close
         (a switch with no free port closes at once: then a write may already fail) */
      int c = write(sock, hdr, 12) != 12 || write(sock, &v, 3) != 3 ? 1 : closed_within(closeMs);
      printf("{\"ok\":true,\"closed\":%s}\n", c ? "true" : "false");
      return 0;
    } else fail("unknown proto kind %s", kind);
    int c = closed_within(size == -3 ? (closeMs > 2000 ? closeMs : 2000) : closeMs);
    printf("{\"ok\":true,\"closed\":%s,\"replySize\":%d,\"reply\":%llu}\n", c ? "true" : "false", size, (unsigned long long)reply);
    return 0;
  }

  if (strcmp(scenario, "ring") == 0) {
    handshake(mergeable, base);
    post_rx((uint32_t)rxBuffers, rxBufBytes);
    kick_q(RXQ);
    uint32_t at = BUF_BASE;
    uint8_t h[HDR] = {0};
    memcpy(mem + at, h, HDR);
    uint16_t head = 0;
    if (strcmp(kind, "loop") == 0) {
      desc(TX_DESC, 0, at, 64, F_NEXT, 1);
      desc(TX_DESC, 1, at, 64, F_NEXT, 0);
    } else if (strcmp(kind, "head-range") == 0) {
      head = 300;
    } else if (strcmp(kind, "addr-outside") == 0) {
      desc(TX_DESC, 0, MEM_BYTES - 8, 64, 0, 0);
    } else if (strcmp(kind, "nested-indirect") == 0) {
      desc(TX_DESC, 0, at + 0x100, 16, F_INDIRECT, 0);
      desc(at + 0x100, 0, at + 0x200, 16, F_INDIRECT, 0);
    } else if (strcmp(kind, "avail-jump") == 0) {
      txAvail = (uint16_t)(txAvail + 1000);
      __atomic_store_n((uint16_t *)(mem + TX_AVAIL + 2), txAvail, __ATOMIC_RELEASE);
      kick_q(TXQ);
      goto judge;
    } else if (strcmp(kind, "writable-tx") == 0) {
      desc(TX_DESC, 0, at, 64, F_WRITE, 0);
    } else if (strcmp(kind, "huge-len") == 0) {
      desc(TX_DESC, 0, at, 0xffffffffu, 0, 0);
    } else if (strcmp(kind, "oversize") == 0) {
      /* well formed, but 70 000 frame bytes: dropped and counted, the ring goes on */
      desc(TX_DESC, 0, at, HDR + 70000, 0, 0);
    } else fail("unknown ring kind %s", kind);
    publish_avail(TX_AVAIL, head, &txAvail);
    kick_q(TXQ);
  judge:;
    int errSignalled = fd_readable(err[TXQ], 2000);
    /* the switch must still answer on this connection, then recover after a device reset */
    uint16_t b = stop_rings();
    (void)b;
    uint64_t dummy;
    while (read(err[TXQ], &dummy, 8) == 8) {
    }
    handshake(mergeable, 0);
    post_rx((uint32_t)rxBuffers, rxBufBytes);
    kick_q(RXQ);
    static uint8_t f[128];
    make_frame(f, 60, 7);
    tx_frame(0, h, f, 60);
    kick_q(TXQ);
    uint16_t used = wait_tx_used(txAvail, 3000);
    int got = collect_rx(rx, sizeof rx, rxExpect, waitMs, rxBufBytes, mergeable);
    printf("{\"ok\":true,\"errSignalled\":%s,\"afterResetTxUsed\":%u,\"rxCount\":%d,\"rx\":%s}\n", errSignalled ? "true" : "false", used, got, rx);
    return 0;
  }
  fail("unknown scenario %s", scenario);
  return 1;
}
