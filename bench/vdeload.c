/*
 * vdeload - load generator for the vde-ts switch benchmark (bench/switch.mjs).
 *
 * It is a plain libvdeplug (vdeplug4 API) client, so every switch under test is
 * driven through the real client library: vde_open / vde_send / vde_recv /
 * vde_datafd / vde_close. One process may hold many connections. Data sockets
 * are switched to O_NONBLOCK; a sender that gets EAGAIN/ENOBUFS waits for
 * POLLOUT and retries (counted, bounded by time). Every loop is bounded both by
 * a frame count and by a deadline, and alarm() kills the process if a bug ever
 * makes it overrun. Results are printed as one JSON line on stdout.
 *
 * Build: cc -O2 -Wall -o vdeload vdeload.c -lvdeplug -lpthread
 * Usage: see usage() below or `vdeload --help`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libvdeplug.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define ETHERTYPE_BENCH 0x88b5       /* IEEE "local experimental" ethertype */
#define MIN_FRAME_BYTES 32           /* header 14 + magic 2 + seq 8 + stamp 8 */
#define MAX_FRAME_BYTES 1518         /* vde_switch 2.3.2 truncates above this */
#define RX_BUF_BYTES 9234            /* VDE_ETHBUFSIZE */
#define MAX_CONNS 8192
#define POLL_SLICE_MS 20             /* granularity of every blocking wait */
#define DRAIN_IDLE_MS 100            /* receivers stop after this much silence at the end */
#define LEARN_SETTLE_MS 100          /* pause after the MAC learning frames */
#define PING_TIMEOUT_MS 200          /* one ping-pong round gives up after this */
#define PING_WARMUP_ROUNDS 200
#define PACE_SLEEP_NS 50000          /* sleep between paced bursts */
#define SAFETY_EXTRA_S 20            /* alarm() margin above the requested duration */
#define IDLE_OPEN_RETRIES 3

static const uint8_t BCAST_MAC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint16_t PAYLOAD_MAGIC = 0xbe4c;

/* ------------------------------------------------------------------------ */
/* options */

struct opts {
	const char *mode;
	const char *sock;
	const char *sock2; /* receivers (thru/bcast) and the echo side (pingpong); NULL = sock */
	int pairs;
	int receivers;
	int clients;
	int frame_bytes;
	long duration_ms;
	long max_frames;
	long rate_fps;     /* total offered load over all senders; 0 = as fast as possible */
	long macs;         /* distinct source MACs per sender (1 = the sender's own MAC) */
	long rounds;
	long hold_ms;
	int threads;       /* 1 = one thread per sender/receiver, 0 = one event loop */
	int spin;          /* event loop: 1 = busy-poll instead of sleeping in ppoll */
	long mac_id;       /* second byte of every MAC this process uses, so runs side by side never collide */
};

static void usage(FILE *f)
{
	fprintf(f,
	"usage: vdeload MODE --sock DIR [options]\n"
	"modes:\n"
	"  thru      unicast throughput: --pairs N senders each to its own receiver\n"
	"  bcast     broadcast: 1 sender, --receivers N receivers, counted per receiver\n"
	"  pingpong  round-trip latency between two clients, --rounds N\n"
	"  idle      open --clients N connections, print 'READY n', hold until stdin EOF,\n"
	"            SIGTERM or --hold-ms\n"
	"options:\n"
	"  --sock DIR          switch directory or any vdeplug4 VNL (required)\n"
	"  --sock2 DIR         thru/bcast: connect the receivers here, pingpong: the echoing\n"
	"                      client (default: --sock); measures a path between two switches\n"
	"  --pairs N           thru: sender/receiver pairs (default 1)\n"
	"  --receivers N       bcast: receivers (default 3)\n"
	"  --clients N         idle: connections to hold (default 1000)\n"
	"  --bytes B           frame length in bytes without FCS, %d..%d (default 64)\n"
	"  --duration-ms MS    sending window (default 2000)\n"
	"  --max-frames N      per-sender frame cap (default 50000000)\n"
	"  --rate FPS          thru: total paced offered load, 0 = unpaced (default 0)\n"
	"  --macs N            thru: rotate the source MAC over N values (default 1)\n"
	"  --mac-id N          0..255: the third byte of every MAC this run uses (default 0);\n"
	"                      give concurrent runs on one switch different ids\n"
	"  --rounds N          pingpong: measured rounds (default 20000)\n"
	"  --hold-ms MS        idle: maximum hold time (default 600000)\n"
	"  --threads 0|1       thru/bcast: 0 = one event loop for all connections (default),\n"
	"                      1 = one thread per sender and per receiver\n"
	"  --wait poll|spin    event loop / pingpong: sleep in ppoll when idle (default) or\n"
	"                      busy-poll (use only when vdeload has a CPU of its own)\n"
	"output: one JSON object on stdout; exit 0 on success, 1 on failure\n",
	MIN_FRAME_BYTES, MAX_FRAME_BYTES);
}

static long parse_long(const char *name, const char *v)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || *end || x < 0) {
		fprintf(stderr, "vdeload: bad value for %s: %s\n", name, v);
		exit(2);
	}
	return x;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->pairs = 1;
	o->receivers = 3;
	o->clients = 1000;
	o->frame_bytes = 64;
	o->duration_ms = 2000;
	o->max_frames = 50000000;
	o->rate_fps = 0;
	o->macs = 1;
	o->rounds = 20000;
	o->hold_ms = 600000;
	if (argc < 2) { usage(stderr); exit(2); }
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(stdout); exit(0); }
	o->mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = NULL;
		char name[64];
		const char *eq = strchr(a, '=');
		if (eq) {
			size_t n = (size_t)(eq - a);
			if (n >= sizeof(name)) n = sizeof(name) - 1;
			memcpy(name, a, n);
			name[n] = 0;
			v = eq + 1;
		} else {
			snprintf(name, sizeof(name), "%s", a);
			if (i + 1 < argc) v = argv[++i];
		}
		if (!v) { fprintf(stderr, "vdeload: missing value for %s\n", name); exit(2); }
		if (!strcmp(name, "--sock")) o->sock = v;
		else if (!strcmp(name, "--sock2")) o->sock2 = v;
		else if (!strcmp(name, "--pairs")) o->pairs = (int)parse_long(name, v);
		else if (!strcmp(name, "--receivers")) o->receivers = (int)parse_long(name, v);
		else if (!strcmp(name, "--clients")) o->clients = (int)parse_long(name, v);
		else if (!strcmp(name, "--bytes")) o->frame_bytes = (int)parse_long(name, v);
		else if (!strcmp(name, "--duration-ms")) o->duration_ms = parse_long(name, v);
		else if (!strcmp(name, "--max-frames")) o->max_frames = parse_long(name, v);
		else if (!strcmp(name, "--rate")) o->rate_fps = parse_long(name, v);
		else if (!strcmp(name, "--macs")) o->macs = parse_long(name, v);
		else if (!strcmp(name, "--mac-id")) o->mac_id = parse_long(name, v);
		else if (!strcmp(name, "--rounds")) o->rounds = parse_long(name, v);
		else if (!strcmp(name, "--hold-ms")) o->hold_ms = parse_long(name, v);
		else if (!strcmp(name, "--threads")) o->threads = (int)parse_long(name, v);
		else if (!strcmp(name, "--wait")) {
			if (!strcmp(v, "spin")) o->spin = 1;
			else if (!strcmp(v, "poll")) o->spin = 0;
			else { fprintf(stderr, "vdeload: --wait must be poll or spin\n"); exit(2); }
		}
		else { fprintf(stderr, "vdeload: unknown option %s\n", name); usage(stderr); exit(2); }
	}
	if (!o->sock) { fprintf(stderr, "vdeload: --sock is required\n"); exit(2); }
	if (!o->sock2) o->sock2 = o->sock;
	if (o->frame_bytes < MIN_FRAME_BYTES || o->frame_bytes > MAX_FRAME_BYTES) {
		fprintf(stderr, "vdeload: --bytes must be %d..%d\n", MIN_FRAME_BYTES, MAX_FRAME_BYTES);
		exit(2);
	}
	if (o->pairs < 1 || o->pairs > 64 || o->receivers < 1 || o->receivers > 64 ||
	    o->clients > MAX_CONNS || o->macs < 1 || o->macs > 16000000 || o->mac_id > 255 || o->duration_ms < 1) {
		fprintf(stderr, "vdeload: option out of range\n");
		exit(2);
	}
}

/* ------------------------------------------------------------------------ */
/* helpers */

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
	nanosleep(&ts, NULL);
}

/* CPU seconds (user+system) this process has used so far. */
static double self_cpu_s(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void fail_json(const char *mode, const char *what, int err)
{
	printf("{\"mode\":\"%s\",\"ok\":false,\"error\":\"%s: %s\"}\n", mode, what, strerror(err));
	fflush(stdout);
	exit(1);
}

static VDECONN *open_conn(const char *sock, const char *descr)
{
	struct vde_open_args args = {.port = 0, .group = NULL, .mode = 0700};
	VDECONN *c = NULL;
	for (int attempt = 0; attempt < IDLE_OPEN_RETRIES && !c; attempt++) {
		c = vde_open((char *)sock, (char *)descr, &args);
		if (!c) sleep_ns(20000000ull);
	}
	if (!c) return NULL;
	int fd = vde_datafd(c);
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	return c;
}

static uint8_t g_mac_id; /* --mac-id */

static void mac_set(uint8_t *m, uint8_t a, uint8_t b, uint32_t idx)
{
	m[0] = 0x02; /* locally administered unicast */
	m[1] = a;
	m[2] = b;
	m[3] = (uint8_t)(idx >> 16);
	m[4] = (uint8_t)(idx >> 8);
	m[5] = (uint8_t)idx;
}

static void frame_build(uint8_t *f, int len, const uint8_t *dst, const uint8_t *src)
{
	memset(f, 0, (size_t)len);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = ETHERTYPE_BENCH >> 8;
	f[13] = ETHERTYPE_BENCH & 0xff;
	memcpy(f + 14, &PAYLOAD_MAGIC, 2);
}

static inline int frame_is_ours(const uint8_t *f, ssize_t n)
{
	return n >= MIN_FRAME_BYTES && f[12] == (ETHERTYPE_BENCH >> 8) &&
	       f[13] == (ETHERTYPE_BENCH & 0xff) && !memcmp(f + 14, &PAYLOAD_MAGIC, 2);
}

/* Send one frame, waiting for POLLOUT while the switch's socket is full.
 * Returns 1 sent, 0 gave up at the deadline, -1 hard error. */
static int send_paced(VDECONN *c, const uint8_t *f, int len, uint64_t deadline,
                      uint64_t *eagain)
{
	for (;;) {
		ssize_t r = vde_send(c, f, (size_t)len, 0);
		if (r >= 0) return 1;
		if (errno == EINTR) continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) return -1;
		(*eagain)++;
		uint64_t t = now_ns();
		if (t >= deadline) return 0;
		struct pollfd p = {.fd = vde_datafd(c), .events = POLLOUT};
		uint64_t left_ms = (deadline - t) / 1000000ull + 1;
		int wait_ms = left_ms < POLL_SLICE_MS ? (int)left_ms : POLL_SLICE_MS;
		if (poll(&p, 1, wait_ms) < 0 && errno != EINTR) return -1;
	}
}

/* Receive and discard everything queued on c right now. Returns frames drained. */
static long drain(VDECONN *c)
{
	static __thread uint8_t buf[RX_BUF_BYTES];
	long n = 0;
	for (long i = 0; i < 100000; i++) {
		ssize_t r = vde_recv(c, buf, sizeof(buf), 0);
		if (r < 0) break;
		n++;
	}
	return n;
}

/* Each learner announces its MAC with one broadcast so the switch learns it. */
static int announce(VDECONN *c, const uint8_t *mac)
{
	uint8_t f[64];
	uint64_t eagain = 0;
	frame_build(f, sizeof(f), BCAST_MAC, mac);
	return send_paced(c, f, sizeof(f), now_ns() + 1000000000ull, &eagain) == 1 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* sender / receiver threads shared by thru and bcast */

struct sender {
	pthread_t th;
	VDECONN *c;
	int index;
	uint8_t dst[6];
	uint8_t src[6];
	long macs;
	int frame_bytes;
	long max_frames;
	double rate_fps;       /* this sender's share; 0 = unpaced */
	uint64_t t0, deadline;
	uint64_t sent, eagain, t_end;
	int err;
};

struct receiver {
	pthread_t th;
	VDECONN *c;
	uint8_t mac[6];
	int want_bcast;
	uint64_t received, foreign, bytes, t_last;
	uint64_t max_gap_ns;   /* longest silence between two of our frames while senders ran */
	int err;
};

/* Records one of our frames arriving at time t (for the longest-gap statistic). */
static void rx_note(struct receiver *r, uint64_t t, int senders_running)
{
	if (r->received && senders_running && r->t_last && t - r->t_last > r->max_gap_ns) r->max_gap_ns = t - r->t_last;
	r->received++;
	r->t_last = t;
}

static uint64_t g_waits, g_wait_timeouts, g_wait_ns; /* event-loop sleep statistics */
static atomic_int g_senders_running;
static atomic_int g_go;
static uint64_t g_t0;

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	uint8_t f[MAX_FRAME_BYTES];
	frame_build(f, s->frame_bytes, s->dst, s->src);
	while (!atomic_load(&g_go)) sched_yield();
	uint64_t t0 = g_t0;
	uint64_t t = t0;
	uint32_t macidx = 0;
	for (uint64_t i = 0; i < (uint64_t)s->max_frames; i++) {
		if ((i & 31) == 0 || s->rate_fps > 0) {
			t = now_ns();
			if (t >= s->deadline) break;
			if (s->rate_fps > 0) {
				/* frames we are allowed to have sent by now */
				double allowed = (double)(t - t0) * s->rate_fps / 1e9;
				while ((double)i >= allowed) {
					sleep_ns(PACE_SLEEP_NS);
					t = now_ns();
					if (t >= s->deadline) goto done;
					allowed = (double)(t - t0) * s->rate_fps / 1e9;
				}
			}
		}
		if (s->macs > 1) {
			mac_set(f + 6, (uint8_t)(0x40 + s->index), g_mac_id, macidx);
			if (++macidx >= (uint32_t)s->macs) macidx = 0;
		}
		memcpy(f + 16, &i, 8);
		int r = send_paced(s->c, f, s->frame_bytes, s->deadline, &s->eagain);
		if (r < 0) { s->err = errno; break; }
		if (r == 0) break;
		s->sent++;
	}
done:
	s->t_end = now_ns();
	atomic_fetch_sub(&g_senders_running, 1);
	return NULL;
}

static void *receiver_main(void *arg)
{
	struct receiver *r = arg;
	static __thread uint8_t buf[RX_BUF_BYTES];
	struct pollfd p = {.fd = vde_datafd(r->c), .events = POLLIN};
	uint64_t quiet_since = 0;
	uint64_t hard_stop = 0;
	for (;;) {
		int pr = poll(&p, 1, POLL_SLICE_MS);
		if (pr < 0 && errno != EINTR) { r->err = errno; break; }
		int got = 0;
		uint64_t t = now_ns();
		for (int k = 0; k < 4096; k++) {
			ssize_t n = vde_recv(r->c, buf, sizeof(buf), 0);
			if (n < 0) break;
			got = 1;
			int ok = frame_is_ours(buf, n) &&
			         (r->want_bcast ? !memcmp(buf, BCAST_MAC, 6) : !memcmp(buf, r->mac, 6));
			if (ok) { rx_note(r, t, atomic_load(&g_senders_running) > 0); r->bytes += (uint64_t)n; }
			else r->foreign++;
		}
		if (got) quiet_since = 0;
		if (atomic_load(&g_senders_running) == 0) {
			if (!hard_stop) hard_stop = t + 1000000000ull;
			if (!got && !quiet_since) quiet_since = t;
			if (quiet_since && t - quiet_since >= DRAIN_IDLE_MS * 1000000ull) break;
			if (t >= hard_stop) break;
		}
	}
	return NULL;
}

static void print_result(const char *mode, const struct opts *o, struct sender *snd, int ns,
                         struct receiver *rcv, int nr)
{
	uint64_t sent = 0, eagain = 0, recv_total = 0, foreign = 0, t_end = g_t0, rmin = UINT64_MAX, max_gap = 0;
	for (int i = 0; i < ns; i++) {
		sent += snd[i].sent;
		eagain += snd[i].eagain;
		if (snd[i].t_end > t_end) t_end = snd[i].t_end;
	}
	for (int i = 0; i < nr; i++) {
		recv_total += rcv[i].received;
		foreign += rcv[i].foreign;
		if (rcv[i].received < rmin) rmin = rcv[i].received;
		if (rcv[i].t_last > t_end) t_end = rcv[i].t_last;
		if (rcv[i].max_gap_ns > max_gap) max_gap = rcv[i].max_gap_ns;
	}
	double elapsed_s = (double)(t_end - g_t0) / 1e9;
	if (elapsed_s <= 0) elapsed_s = 1e-9;
	printf("{\"mode\":\"%s\",\"ok\":true,\"bytes\":%d,\"senders\":%d,\"receivers\":%d,"
	       "\"rate_offered\":%ld,\"macs\":%ld,\"elapsed_s\":%.6f,\"sent\":%" PRIu64
	       ",\"eagain\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"delivered_min\":%" PRIu64
	       ",\"foreign\":%" PRIu64 ",\"fps\":%.1f,\"fps_per_receiver\":%.1f,\"sent_fps\":%.1f,"
	       "\"waits\":%" PRIu64 ",\"wait_timeouts\":%" PRIu64 ",\"wait_ms\":%.1f,\"self_cpu_s\":%.3f,"
	       "\"max_gap_us\":%.1f,\"per_receiver\":[",
	       mode, o->frame_bytes, ns, nr, o->rate_fps, o->macs, elapsed_s, sent, eagain, recv_total,
	       rmin, foreign, recv_total / elapsed_s, recv_total / elapsed_s / nr, sent / elapsed_s,
	       g_waits, g_wait_timeouts, (double)g_wait_ns / 1e6, self_cpu_s(), (double)max_gap / 1e3);
	for (int i = 0; i < nr; i++) printf("%s%" PRIu64, i ? "," : "", rcv[i].received);
	printf("]}\n");
	fflush(stdout);
}


/* Single-threaded engine: all senders and receivers are served by one loop
 * that alternates short send bursts with draining the receivers, and sleeps in
 * ppoll only when nothing can progress (senders blocked by EAGAIN or waiting
 * for their pacing slot, receivers empty). No thread wake-ups, so one core of
 * load generator goes further than with the threaded engine. */
#define LOOP_SEND_BURST_FRAMES 8            /* frames per sender per turn (unix dgram qlen is small) */
#define LOOP_RECV_BURST_FRAMES 64           /* frames per receiver per turn */

static void flow_loop(struct sender *snd, int ns, struct receiver *rcv, int nr, uint64_t deadline,
                      int spin)
{
	static uint8_t buf[RX_BUF_BYTES];
	static uint8_t frames[64][MAX_FRAME_BYTES];
	uint32_t macidx[64] = {0};
	int blocked[64] = {0};
	struct pollfd pfd[128];
	for (int i = 0; i < ns; i++) frame_build(frames[i], snd[i].frame_bytes, snd[i].dst, snd[i].src);
	uint64_t t0 = g_t0;
	int senders_live = ns;
	uint64_t quiet_since = 0, hard_stop = 0;
	for (;;) {
		uint64_t t = now_ns();
		int progress = 0;
		uint64_t next_slot = UINT64_MAX; /* earliest pacing slot among idle senders */
		if (senders_live) {
			for (int i = 0; i < ns; i++) {
				struct sender *s = &snd[i];
				if (s->t_end) continue;
				if (t >= s->deadline || s->sent >= (uint64_t)s->max_frames) {
					s->t_end = t;
					senders_live--;
					continue;
				}
				if (blocked[i]) continue;
				for (int k = 0; k < LOOP_SEND_BURST_FRAMES && s->sent < (uint64_t)s->max_frames; k++) {
					if (s->rate_fps > 0) {
						double allowed = (double)(t - t0) * s->rate_fps / 1e9;
						if ((double)s->sent >= allowed) {
							uint64_t slot = t0 + (uint64_t)(((double)s->sent + 1) * 1e9 / s->rate_fps);
							if (slot < next_slot) next_slot = slot;
							break;
						}
					}
					uint8_t *f = frames[i];
					if (s->macs > 1) {
						mac_set(f + 6, (uint8_t)(0x40 + s->index), g_mac_id, macidx[i]);
						if (++macidx[i] >= (uint32_t)s->macs) macidx[i] = 0;
					}
					memcpy(f + 16, &s->sent, 8);
					ssize_t r = vde_send(s->c, f, (size_t)s->frame_bytes, 0);
					if (r < 0) {
						if (errno == EINTR) continue;
						if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
							s->eagain++;
							blocked[i] = 1;
							/* undo the MAC advance: this frame was not sent */
							if (s->macs > 1) macidx[i] = macidx[i] ? macidx[i] - 1 : (uint32_t)s->macs - 1;
							break;
						}
						s->err = errno;
						s->t_end = t;
						senders_live--;
						break;
					}
					s->sent++;
					progress++;
				}
			}
		}
		int got = 0;
		for (int j = 0; j < nr; j++) {
			struct receiver *r = &rcv[j];
			for (int k = 0; k < LOOP_RECV_BURST_FRAMES; k++) {
				ssize_t n = vde_recv(r->c, buf, sizeof(buf), 0);
				if (n < 0) break;
				got++;
				int ok = frame_is_ours(buf, n) &&
				         (r->want_bcast ? !memcmp(buf, BCAST_MAC, 6) : !memcmp(buf, r->mac, 6));
				if (ok) { rx_note(r, t, senders_live > 0); r->bytes += (uint64_t)n; }
				else r->foreign++;
			}
		}
		progress += got;
		if (!senders_live) {
			if (!hard_stop) hard_stop = t + 1000000000ull;
			if (got) quiet_since = 0;
			else if (!quiet_since) quiet_since = t;
			if (quiet_since && t - quiet_since >= DRAIN_IDLE_MS * 1000000ull) break;
			if (t >= hard_stop) break;
		}
		if (t >= deadline + 2000000000ull) break; /* absolute bound */
		if (progress) continue;
		if (spin) {
			/* busy-poll: retry at once; every loop above is bounded by the deadlines */
			g_waits++;
			for (int i = 0; i < ns; i++) blocked[i] = 0;
			continue;
		}
		/* nothing moved: sleep until a receiver has data, a blocked sender can
		 * write, the next pacing slot, or a short slice passes */
		int np = 0;
		for (int j = 0; j < nr; j++) pfd[np++] = (struct pollfd){.fd = vde_datafd(rcv[j].c), .events = POLLIN};
		int first_tx = np;
		for (int i = 0; i < ns; i++)
			pfd[np++] = (struct pollfd){.fd = vde_datafd(snd[i].c),
			                            .events = (short)(blocked[i] && !snd[i].t_end ? POLLOUT : 0)};
		uint64_t wait_ns = POLL_SLICE_MS * 1000000ull;
		if (senders_live && next_slot != UINT64_MAX)
			wait_ns = next_slot > t ? next_slot - t : 0;
		if (senders_live && next_slot == UINT64_MAX) {
			int any_blocked = 0;
			for (int i = 0; i < ns; i++) any_blocked |= blocked[i] && !snd[i].t_end;
			if (!any_blocked) wait_ns = 0;
		}
		if (wait_ns > POLL_SLICE_MS * 1000000ull) wait_ns = POLL_SLICE_MS * 1000000ull;
		struct timespec ts = {(time_t)(wait_ns / 1000000000ull), (long)(wait_ns % 1000000000ull)};
		uint64_t tw = now_ns();
		int pr = ppoll(pfd, (nfds_t)np, &ts, NULL);
		g_wait_ns += now_ns() - tw;
		g_waits++;
		if (pr == 0) g_wait_timeouts++;
		if (pr > 0)
			for (int i = 0; i < ns; i++)
				if (pfd[first_tx + i].revents & (POLLOUT | POLLERR)) blocked[i] = 0;
		if (pr == 0)
			for (int i = 0; i < ns; i++) blocked[i] = 0; /* retry after a quiet slice */
	}
	uint64_t t = now_ns();
	for (int i = 0; i < ns; i++) if (!snd[i].t_end) snd[i].t_end = t;
}

static int run_flow(const struct opts *o, int bcast)
{
	const char *mode = bcast ? "bcast" : "thru";
	int ns = bcast ? 1 : o->pairs;
	int nr = bcast ? o->receivers : o->pairs;
	struct sender *snd = calloc((size_t)ns, sizeof(*snd));
	struct receiver *rcv = calloc((size_t)nr, sizeof(*rcv));
	if (!snd || !rcv) fail_json(mode, "calloc", ENOMEM);

	/* open every connection (receivers first), then announce the MACs */
	for (int i = 0; i < nr; i++) {
		rcv[i].c = open_conn(o->sock2, "vdeload-rx");
		if (!rcv[i].c) fail_json(mode, "vde_open receiver", errno);
		mac_set(rcv[i].mac, 0x01, g_mac_id, (uint32_t)i);
		rcv[i].want_bcast = bcast;
	}
	for (int i = 0; i < ns; i++) {
		struct sender *s = &snd[i];
		s->c = open_conn(o->sock, "vdeload-tx");
		if (!s->c) fail_json(mode, "vde_open sender", errno);
		s->index = i;
		mac_set(s->src, 0x02, g_mac_id, (uint32_t)i);
		memcpy(s->dst, bcast ? BCAST_MAC : rcv[i].mac, 6);
		s->macs = o->macs;
		s->frame_bytes = o->frame_bytes;
		s->max_frames = o->max_frames;
		s->rate_fps = o->rate_fps > 0 ? (double)o->rate_fps / ns : 0;
	}
	/* Announce only after every connection is open: vde_switch 2.3.2 flushes its
	 * MAC table (VLAN 0) whenever a new port joins, so earlier learning is lost. */
	for (int i = 0; i < nr; i++)
		if (announce(rcv[i].c, rcv[i].mac) < 0) fail_json(mode, "announce receiver", errno);
	for (int i = 0; i < ns; i++)
		if (announce(snd[i].c, snd[i].src) < 0) fail_json(mode, "announce sender", errno);
	sleep_ns(LEARN_SETTLE_MS * 1000000ull);
	for (int i = 0; i < nr; i++) drain(rcv[i].c);
	for (int i = 0; i < ns; i++) drain(snd[i].c);

	g_t0 = now_ns();
	uint64_t deadline = g_t0 + (uint64_t)o->duration_ms * 1000000ull;
	for (int i = 0; i < ns; i++) snd[i].deadline = deadline;
	if (o->threads) {
		atomic_store(&g_senders_running, ns);
		for (int i = 0; i < nr; i++) pthread_create(&rcv[i].th, NULL, receiver_main, &rcv[i]);
		for (int i = 0; i < ns; i++) pthread_create(&snd[i].th, NULL, sender_main, &snd[i]);
		atomic_store(&g_go, 1);
		for (int i = 0; i < ns; i++) pthread_join(snd[i].th, NULL);
		for (int i = 0; i < nr; i++) pthread_join(rcv[i].th, NULL);
	} else {
		flow_loop(snd, ns, rcv, nr, deadline, o->spin);
	}
	for (int i = 0; i < ns; i++)
		if (snd[i].err) fail_json(mode, "vde_send", snd[i].err);
	for (int i = 0; i < nr; i++)
		if (rcv[i].err) fail_json(mode, "poll", rcv[i].err);
	print_result(mode, o, snd, ns, rcv, nr);
	for (int i = 0; i < ns; i++) vde_close(snd[i].c);
	for (int i = 0; i < nr; i++) vde_close(rcv[i].c);
	free(snd);
	free(rcv);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* pingpong
 * One thread owns both clients: A sends a frame to B's MAC, the loop echoes it
 * from B back to A's MAC as soon as B receives it, A records the round trip.
 * Each round therefore crosses the switch twice. */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Wait until c has a frame (or the deadline); returns frame length or -1. */
static ssize_t recv_wait(VDECONN *c, uint8_t *buf, size_t len, uint64_t deadline, int spin)
{
	struct pollfd p = {.fd = vde_datafd(c), .events = POLLIN};
	for (;;) {
		ssize_t n = vde_recv(c, buf, len, 0);
		if (n >= 0) return n;
		uint64_t t = now_ns();
		if (t >= deadline) return -1;
		if (spin) continue;
		uint64_t wait_ns = deadline - t;
		if (wait_ns > POLL_SLICE_MS * 1000000ull) wait_ns = POLL_SLICE_MS * 1000000ull;
		struct timespec ts = {(time_t)(wait_ns / 1000000000ull), (long)(wait_ns % 1000000000ull)};
		ppoll(&p, 1, &ts, NULL);
	}
}

static int run_pingpong(const struct opts *o)
{
	const char *mode = "pingpong";
	static uint8_t buf[RX_BUF_BYTES];
	VDECONN *a = open_conn(o->sock, "vdeload-ping");
	if (!a) fail_json(mode, "vde_open ping", errno);
	VDECONN *b = open_conn(o->sock2, "vdeload-pong");
	if (!b) fail_json(mode, "vde_open pong", errno);
	uint8_t amac[6], bmac[6];
	mac_set(amac, 0x03, g_mac_id, 1);
	mac_set(bmac, 0x03, g_mac_id, 2);
	if (announce(a, amac) < 0 || announce(b, bmac) < 0) fail_json(mode, "announce", errno);
	sleep_ns(LEARN_SETTLE_MS * 1000000ull);
	drain(a);
	drain(b);

	long total = o->rounds + PING_WARMUP_ROUNDS;
	uint64_t *rtt = calloc((size_t)total, sizeof(uint64_t));
	if (!rtt) fail_json(mode, "calloc", ENOMEM);
	uint8_t f[MAX_FRAME_BYTES];
	frame_build(f, o->frame_bytes, bmac, amac);
	uint64_t t_start = now_ns();
	uint64_t deadline = t_start + (uint64_t)o->duration_ms * 1000000ull;
	long done = 0, lost = 0;
	uint64_t eagain = 0;
	for (uint64_t seq = 0; done < total && now_ns() < deadline; seq++) {
		memcpy(f + 16, &seq, 8);
		uint64_t t1 = now_ns();
		uint64_t give_up = t1 + PING_TIMEOUT_MS * 1000000ull;
		if (give_up > deadline) give_up = deadline;
		if (send_paced(a, f, o->frame_bytes, give_up, &eagain) != 1) break;
		/* B: wait for the frame, echo it */
		int echoed = 0;
		for (;;) {
			ssize_t n = recv_wait(b, buf, sizeof(buf), give_up, o->spin);
			if (n < 0) break;
			uint64_t rseq;
			memcpy(&rseq, buf + 16, 8);
			if (!frame_is_ours(buf, n) || memcmp(buf, bmac, 6) || rseq != seq) continue;
			memcpy(buf, amac, 6);
			memcpy(buf + 6, bmac, 6);
			echoed = send_paced(b, buf, (int)n, give_up, &eagain) == 1;
			break;
		}
		/* A: wait for the echo */
		int answered = 0;
		while (echoed) {
			ssize_t n = recv_wait(a, buf, sizeof(buf), give_up, o->spin);
			if (n < 0) break;
			uint64_t rseq;
			memcpy(&rseq, buf + 16, 8);
			if (frame_is_ours(buf, n) && !memcmp(buf, amac, 6) && rseq == seq) {
				rtt[done++] = now_ns() - t1;
				answered = 1;
				break;
			}
		}
		if (!answered) {
			lost++;
			drain(a);
			drain(b);
		}
	}
	uint64_t t_stop = now_ns();
	long measured = done > PING_WARMUP_ROUNDS ? done - PING_WARMUP_ROUNDS : 0;
	if (measured < 10) {
		printf("{\"mode\":\"%s\",\"ok\":false,\"error\":\"only %ld rounds answered, %ld lost\"}\n",
		       mode, done, lost);
		fflush(stdout);
		return 1;
	}
	uint64_t *m = rtt + PING_WARMUP_ROUNDS;
	double sum = 0;
	for (long i = 0; i < measured; i++) sum += (double)m[i];
	qsort(m, (size_t)measured, sizeof(uint64_t), cmp_u64);
#define PCT(q) ((double)m[(long)((double)(measured - 1) * (q))] / 1000.0)
	printf("{\"mode\":\"%s\",\"ok\":true,\"bytes\":%d,\"rounds\":%ld,\"lost\":%ld,\"eagain\":%" PRIu64
	       ",\"elapsed_s\":%.6f,\"rtt_us_min\":%.2f,\"rtt_us_p50\":%.2f,\"rtt_us_p90\":%.2f,"
	       "\"rtt_us_p99\":%.2f,\"rtt_us_max\":%.2f,\"rtt_us_mean\":%.2f,\"self_cpu_s\":%.3f}\n",
	       mode, o->frame_bytes, measured, lost, eagain, (double)(t_stop - t_start) / 1e9,
	       (double)m[0] / 1000.0, PCT(0.50), PCT(0.90), PCT(0.99),
	       (double)m[measured - 1] / 1000.0, sum / (double)measured / 1000.0, self_cpu_s());
	fflush(stdout);
	vde_close(a);
	vde_close(b);
	free(rtt);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* idle */

static int run_idle(const struct opts *o)
{
	const char *mode = "idle";
	VDECONN **c = calloc((size_t)o->clients + 1, sizeof(VDECONN *));
	if (!c) fail_json(mode, "calloc", ENOMEM);
	int opened = 0, err = 0;
	for (; opened < o->clients; opened++) {
		c[opened] = open_conn(o->sock, "vdeload-idle");
		if (!c[opened]) { err = errno; break; }
	}
	if (opened < o->clients) {
		printf("{\"mode\":\"%s\",\"ok\":false,\"opened\":%d,\"error\":\"vde_open #%d: %s\"}\n",
		       mode, opened, opened + 1, strerror(err));
		fflush(stdout);
		for (int i = 0; i < opened; i++) vde_close(c[i]);
		return 1;
	}
	printf("READY %d\n", opened);
	fflush(stdout);
	uint64_t deadline = now_ns() + (uint64_t)o->hold_ms * 1000000ull;
	struct pollfd p = {.fd = 0, .events = POLLIN};
	char b[256];
	while (now_ns() < deadline) {
		int r = poll(&p, 1, 200);
		if (r > 0) {
			ssize_t n = read(0, b, sizeof(b));
			if (n <= 0) break; /* stdin closed: the bench is done with us */
		} else if (r < 0 && errno != EINTR) {
			break;
		}
	}
	for (int i = 0; i < opened; i++) vde_close(c[i]);
	printf("{\"mode\":\"%s\",\"ok\":true,\"opened\":%d}\n", mode, opened);
	fflush(stdout);
	free(c);
	return 0;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	struct opts o;
	parse_opts(argc, argv, &o);
	g_mac_id = (uint8_t)o.mac_id;
	signal(SIGPIPE, SIG_IGN);

	/* many connections need many fds: two per connection */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	long bound_s = o.duration_ms / 1000 + SAFETY_EXTRA_S;
	if (!strcmp(o.mode, "idle")) bound_s = o.hold_ms / 1000 + SAFETY_EXTRA_S + o.clients / 50;
	alarm((unsigned)bound_s);

	if (!strcmp(o.mode, "thru")) return run_flow(&o, 0);
	if (!strcmp(o.mode, "bcast")) return run_flow(&o, 1);
	if (!strcmp(o.mode, "pingpong")) return run_pingpong(&o);
	if (!strcmp(o.mode, "idle")) return run_idle(&o);
	fprintf(stderr, "vdeload: unknown mode %s\n", o.mode);
	usage(stderr);
	return 2;
}
