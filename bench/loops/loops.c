/*
 * bench-loops - what the daemon's event loops buy: aggregate throughput from
 * several client connections, and many slow receivers served evenly.
 *
 *   bench-loops --socket PATH --mode small|large|slow [--conns 8]
 *               [--seconds S] [--depth D] [--size MIB] [--transfers N]
 *
 * small: --conns threads, each with its own connection and --depth TCP
 *        loopback receivers, one 4 KiB transfer in flight per receiver
 *        (each completion sends the next): requests/s, all connections.
 * large: the same with one receiver per connection and a --size MiB file:
 *        bytes/s, all connections.
 * slow:  --transfers transfers of --size MiB at once over --conns
 *        connections, each to its own pipe (16 KiB buffer) that one reader
 *        thread drains 16 KiB per pipe per 200 ms round. At the midpoint
 *        (--seconds / 2): the slowest and the fastest receiver's bytes, their
 *        ratio, and the daemon's RSS (--pid); then everything is cancelled.
 *
 * --in-process (small, large): the baseline, no daemon: each thread sends to
 * its receivers in turn with sendfile(2) itself.
 *
 * Prints one line of key=value pairs. Loopback TCP uses cubic (per socket).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sendfiled.h"

#define DIE(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "bench-loops: " __VA_ARGS__);                                      \
		fputc('\n', stderr);                                                               \
		exit(1);                                                                           \
	} while (0)

static const char *sock_path;
static unsigned n_conns = 8, depth = 8, seconds = 4, n_transfers = 9950;
static uint64_t size_mib = 64;
static int daemon_pid;  /* --pid: its RSS at the midpoint (slow) */
static bool in_process; /* --in-process: the baseline, no daemon */
static int src_fd = -1;
static atomic_bool stop;         /* no more submissions */
static atomic_bool stop_readers; /* the receivers may go */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
cubic(int fd)
{
	(void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5);
}

static void
tcp_pair(int fds[2])
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0)
		DIE("listen: %s", strerror(errno));
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	cubic(fds[0]);
	if (connect(fds[0], (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		DIE("connect: %s", strerror(errno));
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fds[1] < 0)
		DIE("accept: %s", strerror(errno));
	cubic(fds[1]);
	close(l);
}

static int
make_file(uint64_t size)
{
	char path[] = "/tmp/bench-loops-XXXXXX";
	int fd = mkstemp(path);
	static char buf[1 << 20];

	if (fd < 0)
		DIE("mkstemp: %s", strerror(errno));
	unlink(path);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 2654435761u >> 13);
	for (uint64_t off = 0; off < size; off += sizeof(buf))
		if (write(fd, buf, size - off < sizeof(buf) ? size - off : sizeof(buf)) < 0)
			DIE("write: %s", strerror(errno));
	/* Warm: read it all once (it was just written: cached already). */
	for (uint64_t off = 0; off < size; off += sizeof(buf))
		if (pread(fd, buf, sizeof(buf), (off_t)off) < 0)
			DIE("read: %s", strerror(errno));
	return fd;
}

/* ---- receivers: one thread reads a set of descriptors ------------------- */

struct reader {
	int ep;
	int *fds;
	uint64_t *got; /* per descriptor */
	unsigned n;
	size_t per_round; /* 0: as fast as it can */
	unsigned round_ms;
	pthread_t th;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	static __thread char buf[1 << 16];

	while (!atomic_load(&stop_readers)) {
		if (r->per_round) {
			/* Slow receivers: a bounded read from each, in turn. */
			for (unsigned i = 0; i < r->n; i++) {
				ssize_t k = read(r->fds[i], buf, r->per_round);

				if (k > 0)
					r->got[i] += (uint64_t)k;
			}
			usleep(r->round_ms * 1000);
			continue;
		}
		struct epoll_event ev[64];
		int n = epoll_wait(r->ep, ev, 64, 100);

		for (int i = 0; i < n; i++) {
			unsigned k = ev[i].data.u32;
			ssize_t m;

			while ((m = recv(r->fds[k], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
				r->got[k] += (uint64_t)m;
		}
	}
	return NULL;
}

static void
reader_start(struct reader *r)
{
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned i = 0; i < r->n && !r->per_round; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};

		if (epoll_ctl(r->ep, EPOLL_CTL_ADD, r->fds[i], &ev) < 0)
			DIE("epoll_ctl: %s", strerror(errno));
	}
	pthread_create(&r->th, NULL, reader_main, r);
}

/* ---- small and large: connections that keep their receivers busy -------- */

struct conn {
	struct sfd_client *c;
	int *dst;      /* the sending ends */
	uint64_t size; /* per transfer */
	uint64_t done, bytes;
	bool counting;
	struct reader rd;
	pthread_t th;
};

static __thread struct conn *tls_conn; /* the connection this thread dispatches */

static void
on_done_k(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	struct conn *k = tls_conn;
	unsigned i = (unsigned)(uintptr_t)userdata;
	uint64_t nid;

	(void)id;
	if (res->status != SFD_STATUS_OK)
		DIE("transfer: %s (%s)", sfd_status_str(res->status), res->message);
	if (k->counting) {
		k->done++;
		k->bytes += res->bytes_sent;
	}
	if (atomic_load(&stop))
		return;
	if (sfd_client_submit(c, k->dst[i], src_fd, 0, k->size, 0, userdata, &nid) < 0)
		DIE("submit failed");
}

static void *
conn_main(void *arg)
{
	struct conn *k = arg;
	uint64_t id;

	tls_conn = k;
	for (unsigned i = 0; i < k->rd.n; i++)
		if (sfd_client_submit(k->c, k->dst[i], src_fd, 0, k->size, 0, (void *)(uintptr_t)i,
		                      &id) < 0)
			DIE("submit failed");
	while (sfd_client_in_flight(k->c) > 0) {
		struct pollfd p = {.fd = sfd_client_get_fd(k->c), .events = POLLIN};

		(void)poll(&p, 1, 100);
		if (sfd_client_dispatch(k->c, on_done_k) < 0)
			DIE("dispatch failed");
	}
	return NULL;
}

/* One transfer in the calling thread: what an application does alone. */
static void
send_inprocess(int dst, uint64_t size)
{
	off_t off = 0;

	while ((uint64_t)off < size) {
		ssize_t n = sendfile(dst, src_fd, &off, size - (uint64_t)off);

		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = dst, .events = POLLOUT};

			(void)poll(&p, 1, 100);
		} else if (n <= 0) {
			DIE("sendfile: %s", n < 0 ? strerror(errno) : "short file");
		}
	}
}

/* The baseline: each thread sends to its receivers in turn, in process. */
static void *
inprocess_main(void *arg)
{
	struct conn *k = arg;

	while (!atomic_load(&stop)) {
		for (unsigned i = 0; i < k->rd.n; i++) {
			send_inprocess(k->dst[i], k->size);
			if (k->counting) {
				k->done++;
				k->bytes += k->size;
			}
		}
	}
	return NULL;
}

static void
run_busy(bool small)
{
	struct conn *k = calloc(n_conns, sizeof(*k));
	unsigned per = small ? depth : 1;
	uint64_t size = small ? 4096 : size_mib << 20;
	double t0, t1;
	uint64_t done = 0, bytes = 0;

	src_fd = make_file(small ? 4096 : size);
	for (unsigned j = 0; j < n_conns; j++) {
		if (!in_process && sfd_client_open(sock_path, &k[j].c) < 0)
			DIE("cannot connect to %s", sock_path);
		k[j].size = size;
		k[j].dst = calloc(per, sizeof(int));
		k[j].rd.fds = calloc(per, sizeof(int));
		k[j].rd.got = calloc(per, sizeof(uint64_t));
		k[j].rd.n = per;
		for (unsigned i = 0; i < per; i++) {
			int fds[2];

			tcp_pair(fds);
			k[j].dst[i] = fds[0];
			k[j].rd.fds[i] = fds[1];
		}
		reader_start(&k[j].rd);
	}
	for (unsigned j = 0; j < n_conns; j++)
		pthread_create(&k[j].th, NULL, in_process ? inprocess_main : conn_main, &k[j]);
	/* Warm-up second, then count. */
	usleep(500 * 1000);
	for (unsigned j = 0; j < n_conns; j++)
		k[j].counting = true;
	t0 = now();
	usleep(seconds * 1000000u);
	for (unsigned j = 0; j < n_conns; j++)
		k[j].counting = false;
	t1 = now();
	atomic_store(&stop, true);
	for (unsigned j = 0; j < n_conns; j++)
		pthread_join(k[j].th, NULL);
	atomic_store(&stop_readers, true);
	for (unsigned j = 0; j < n_conns; j++) {
		pthread_join(k[j].rd.th, NULL);
		done += k[j].done;
		bytes += k[j].bytes;
		if (k[j].c)
			sfd_client_free(k[j].c);
	}
	if (small)
		printf("mode=small%s conns=%u depth=%u requests_per_s=%.0f\n",
		       in_process ? " in_process" : "", n_conns, depth, done / (t1 - t0));
	else
		printf("mode=large%s conns=%u size_mib=%llu gbit_per_s=%.2f\n",
		       in_process ? " in_process" : "", n_conns, (unsigned long long)size_mib,
		       bytes * 8 / (t1 - t0) / 1e9);
}

/* ---- slow: many transfers, receivers that read slowly -------------------- */

/* VmRSS of @pid in KiB, or -1. */
static long
rss_kib(int pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void
run_slow(void)
{
	struct sfd_client **c = calloc(n_conns, sizeof(*c));
	struct reader rd = {.per_round = 16 * 1024, .round_ms = 200};
	uint64_t size = size_mib << 20, min = UINT64_MAX, max = 0;
	unsigned started = 0;

	rd.fds = calloc(n_transfers, sizeof(int));
	rd.got = calloc(n_transfers, sizeof(uint64_t));
	rd.n = n_transfers;
	src_fd = make_file(size);
	for (unsigned j = 0; j < n_conns; j++)
		if (sfd_client_open(sock_path, &c[j]) < 0)
			DIE("cannot connect to %s", sock_path);
	for (unsigned i = 0; i < n_transfers; i++) {
		int p[2];
		uint64_t id;

		if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
			DIE("pipe: %s (raise ulimit -n)", strerror(errno));
		(void)fcntl(p[1], F_SETPIPE_SZ, 16 * 1024);
		rd.fds[i] = p[0];
		if (sfd_client_submit(c[i % n_conns], p[1], src_fd, 0, size, 0, NULL, &id) < 0)
			DIE("submit %u failed", i);
		/* The daemon has its own copy now. */
		close(p[1]);
		started++;
	}
	reader_start(&rd);
	/* Replies only come at the end: nothing to dispatch meanwhile. */
	usleep(seconds * 1000000u / 2);
	for (unsigned i = 0; i < n_transfers; i++) {
		uint64_t g = rd.got[i];

		if (g < min)
			min = g;
		if (g > max)
			max = g;
	}
	printf("mode=slow transfers=%u conns=%u slowest_bytes=%llu fastest_bytes=%llu "
	       "spread=%.3f daemon_rss_kib=%ld\n",
	       started, n_conns, (unsigned long long)min, (unsigned long long)max,
	       max ? (double)min / (double)max : 0.0, rss_kib(daemon_pid));
	fflush(stdout);
	atomic_store(&stop_readers, true);
	pthread_join(rd.th, NULL);
	/* Closing the readers ends the transfers (EPIPE); closing the
	 * connections cancels whatever is left. */
	for (unsigned i = 0; i < n_transfers; i++)
		close(rd.fds[i]);
	for (unsigned j = 0; j < n_conns; j++)
		sfd_client_free(c[j]);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"mode", required_argument, NULL, 'm'},
	        {"conns", required_argument, NULL, 'c'},
	        {"seconds", required_argument, NULL, 't'},
	        {"depth", required_argument, NULL, 'd'},
	        {"size", required_argument, NULL, 'z'},
	        {"transfers", required_argument, NULL, 'n'},
	        {"pid", required_argument, NULL, 'p'},
	        {"in-process", no_argument, NULL, 'i'},
	        {0},
	};
	const char *mode = "small";
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			sock_path = optarg;
			break;
		case 'm':
			mode = optarg;
			break;
		case 'c':
			n_conns = (unsigned)atoi(optarg);
			break;
		case 't':
			seconds = (unsigned)atoi(optarg);
			break;
		case 'd':
			depth = (unsigned)atoi(optarg);
			break;
		case 'z':
			size_mib = strtoull(optarg, NULL, 10);
			break;
		case 'n':
			n_transfers = (unsigned)atoi(optarg);
			break;
		case 'p':
			daemon_pid = atoi(optarg);
			break;
		case 'i':
			in_process = true;
			break;
		default:
			return 2;
		}
	}
	if (!sock_path && !in_process)
		DIE("--socket PATH is required");
	if (strcmp(mode, "small") == 0)
		run_busy(true);
	else if (strcmp(mode, "large") == 0)
		run_busy(false);
	else if (strcmp(mode, "slow") == 0)
		run_slow();
	else
		DIE("unknown mode %s", mode);
	return 0;
}
