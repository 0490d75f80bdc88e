/*
 * handoff-bench - what a hand-off buys a blocking server: the time its
 * thread spends per download, and the downloads per second and bytes per
 * second delivered, for three ways of sending the same files over TCP
 * loopback, alternated round by round in one run:
 *
 *   handoff  sfd_client_handoff(SFD_SHUT_WR), then close: the daemon finishes
 *   submit   sfd_client_submit() of the round's transfers, then wait for
 *            every completion (the client is free only once they are done)
 *   inproc   blocking sendfile(2) in the client, then shutdown and close:
 *            what a sync worker does by itself
 *
 * A round sends --per-round transfers of one page-cached file of --size
 * bytes, each to its own TCP connection, accepted and read to end of file
 * by a receiver thread. Per round: the client's time per transfer (median
 * over the round: the call's duration for handoff and inproc, submit to
 * completion for submit), and the round's time until the receiver has
 * every stream's end, giving transfers per second and bytes per second.
 *
 * The statistic, named before the run: the median over rounds of the
 * per-round ratios handoff/submit and handoff/inproc (rounds come in
 * triples whose order rotates), with a 95% bootstrap interval (2000
 * resamples of the triples).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sendfiled.h"

enum mode { M_HANDOFF, M_SUBMIT, M_INPROC, M_N };
static const char *const mode_name[M_N] = {"handoff", "submit", "inproc"};

static int listen_fd;
static atomic_uint ends;          /* streams read to end of file */
static atomic_ullong bytes_recvd; /* over all streams */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what, int err)
{
	fprintf(stderr, "handoff-bench: %s: %s\n", what, strerror(err));
	exit(1);
}

static void
cubic(int fd)
{
	(void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5);
}

/* The receiver: accepts every connection and reads each to end of file. */
static void *
receiver(void *arg)
{
	static char buf[1 << 20];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd};

	(void)arg;
	epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == listen_fd) {
				int c = accept4(listen_fd, NULL, NULL,
				                SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (c < 0)
					continue;
				cubic(c);
				ev = (struct epoll_event){.events = EPOLLIN, .data.fd = c};
				epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				continue;
			}
			for (;;) {
				ssize_t r = read(fd, buf, sizeof(buf));

				if (r > 0) {
					atomic_fetch_add(&bytes_recvd, (unsigned long long)r);
					continue;
				}
				if (r < 0 && errno == EAGAIN)
					break;
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
				atomic_fetch_add(&ends, 1);
				break;
			}
		}
	}
	return NULL;
}

static int
dial(uint16_t port, bool nonblock)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket", errno);
	cubic(fd);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect", errno);
	if (nonblock)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct done {
	double submitted, completed;
	bool ok;
};

static void
on_done(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	struct done *d = userdata;

	(void)c;
	(void)id;
	d->completed = now_s();
	d->ok = res->status == SFD_STATUS_OK;
}

/* One round of @n transfers of @path in @mode. Return: the round's seconds;
 * *ret_call is the median client time per transfer. */
static double
round_once(enum mode mode, struct sfd_client *c, const char *path, uint64_t size, unsigned n,
           uint16_t port, double *ret_call)
{
	int *sock = calloc(n, sizeof(int)), *src = calloc(n, sizeof(int));
	double *call = calloc(n, sizeof(double));
	struct done *done = calloc(n, sizeof(*done));
	unsigned base = atomic_load(&ends);
	double t0, t1;

	for (unsigned i = 0; i < n; i++) {
		sock[i] = dial(port, mode != M_INPROC);
		src[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (src[i] < 0)
			die("open", errno);
	}
	t0 = now_s();
	if (mode == M_HANDOFF) {
		for (unsigned i = 0; i < n; i++) {
			uint64_t id;
			double a = now_s();
			int r = sfd_client_handoff(c, sock[i], src[i], 0, 0, SFD_SHUT_WR, NULL, -1,
			                           &id);

			if (r < 0)
				die("sfd_client_handoff", -r);
			close(sock[i]);
			close(src[i]);
			call[i] = now_s() - a;
		}
	} else if (mode == M_SUBMIT) {
		unsigned got = 0;

		for (unsigned i = 0; i < n; i++) {
			uint64_t id;
			int r;

			done[i].submitted = now_s();
			r = sfd_client_submit(c, sock[i], src[i], 0, 0, 0, &done[i], &id);
			if (r < 0)
				die("sfd_client_submit", -r);
		}
		while (got < n) {
			int r = sfd_client_dispatch(c, on_done);

			if (r < 0)
				die("sfd_client_dispatch", -r);
			got += (unsigned)r;
			if (got < n) {
				/* Wait for the next reply on the client's socket. */
				struct pollfd p = {.fd = sfd_client_get_fd(c), .events = POLLIN};

				(void)poll(&p, 1, -1);
			}
		}
		for (unsigned i = 0; i < n; i++) {
			if (!done[i].ok)
				die("a transfer failed", EIO);
			call[i] = done[i].completed - done[i].submitted;
			close(sock[i]);
			close(src[i]);
		}
	} else {
		for (unsigned i = 0; i < n; i++) {
			double a = now_s();
			off_t off = 0;

			while ((uint64_t)off < size) {
				ssize_t r = sendfile(sock[i], src[i], &off, size - (uint64_t)off);

				if (r <= 0)
					die("sendfile", r < 0 ? errno : EIO);
			}
			shutdown(sock[i], SHUT_WR);
			close(sock[i]);
			close(src[i]);
			call[i] = now_s() - a;
		}
	}
	/* The receiver's ends, looked at every 50 us: a sleep rather than a
	 * spin, so that the client's CPU is not taken from anyone. */
	while (atomic_load(&ends) - base < n) {
		struct timespec ts = {0, 50 * 1000};

		nanosleep(&ts, NULL);
	}
	t1 = now_s();
	*ret_call = median(call, n);
	free(sock);
	free(src);
	free(call);
	free(done);
	return t1 - t0;
}

/* Read the file once, then check that every page is resident. */
static void
warm(const char *path, uint64_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long page = sysconf(_SC_PAGESIZE);
	size_t pages = (size + (uint64_t)page - 1) / (uint64_t)page, in = 0;
	unsigned char *vec = malloc(pages);
	void *m;

	if (fd < 0)
		die("open", errno);
	m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		die("mmap", errno);
	for (size_t i = 0; i < pages; i++)
		(void)*(volatile char *)((char *)m + i * (size_t)page);
	if (mincore(m, size, vec) < 0)
		die("mincore", errno);
	for (size_t i = 0; i < pages; i++)
		in += vec[i] & 1;
	printf("file %s: %zu of %zu pages in the page cache (mincore)\n", path, in, pages);
	munmap(m, size);
	free(vec);
	close(fd);
}

/* Median of @v[0..n) resampled with replacement: the bootstrap's 2.5% and
 * 97.5% points of the median. */
static void
bootstrap(const double *v, size_t n, double *lo, double *hi)
{
	enum { B = 2000 };
	double *meds = malloc(B * sizeof(double)), *s = malloc(n * sizeof(double));
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (int b = 0; b < B; b++) {
		for (size_t i = 0; i < n; i++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			s[i] = v[(x * 0x2545f4914f6cdd1dull >> 11) % n];
		}
		meds[b] = median(s, n);
	}
	qsort(meds, B, sizeof(double), cmp_double);
	*lo = meds[B * 25 / 1000];
	*hi = meds[B * 975 / 1000];
	free(meds);
	free(s);
}

static void
report_ratio(const char *what, double *v, size_t n)
{
	double lo, hi, m;

	bootstrap(v, n, &lo, &hi);
	m = median(v, n);
	printf("  %-44s median %.3f  95%% CI [%.3f, %.3f]\n", what, m, lo, hi);
}

static void
pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity", errno);
}

int
main(int argc, char **argv)
{
	const char *sock_path = NULL, *path = NULL;
	unsigned per_round = 64, triples = 100;
	int client_cpu = -1;
	uint64_t size = 0;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	struct sfd_client *c;
	pthread_t th;
	struct stat st;
	double *secs[M_N], *call[M_N], *r_tput_s, *r_tput_p, *r_call_s, *r_call_p;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--socket"))
			sock_path = argv[i + 1];
		else if (!strcmp(argv[i], "--file"))
			path = argv[i + 1];
		else if (!strcmp(argv[i], "--per-round"))
			per_round = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--triples"))
			triples = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--client-cpu"))
			client_cpu = atoi(argv[i + 1]);
	}
	if (!sock_path || !path || stat(path, &st) < 0) {
		fprintf(stderr, "usage: handoff-bench --socket PATH --file FILE [--per-round N] "
		                "[--triples N] [--client-cpu CPU]\n");
		return 2;
	}
	size = (uint64_t)st.st_size;
	if (client_cpu >= 0)
		pin(client_cpu);
	warm(path, size);
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(listen_fd, 4096) < 0 || getsockname(listen_fd, (struct sockaddr *)&sa, &len) < 0)
		die("listen", errno);
	/* The receiver floats over the CPUs (it stands for remote peers). */
	if (pthread_create(&th, NULL, receiver, NULL) != 0)
		die("pthread_create", EAGAIN);
	{
		cpu_set_t all;

		CPU_ZERO(&all);
		for (int i = 0; i < CPU_SETSIZE && i < (int)sysconf(_SC_NPROCESSORS_ONLN); i++)
			CPU_SET(i, &all);
		pthread_setaffinity_np(th, sizeof(all), &all);
	}
	if (sfd_client_open(sock_path, &c) < 0)
		die("sfd_client_open", ECONNREFUSED);
	for (int m = 0; m < M_N; m++) {
		secs[m] = calloc(triples, sizeof(double));
		call[m] = calloc(triples, sizeof(double));
	}
	r_tput_s = calloc(triples, sizeof(double));
	r_tput_p = calloc(triples, sizeof(double));
	r_call_s = calloc(triples, sizeof(double));
	r_call_p = calloc(triples, sizeof(double));
	printf("size %llu bytes, %u transfers per round, %u triples; client on CPU %d, "
	       "receiver thread unpinned\n",
	       (unsigned long long)size, per_round, triples, client_cpu);
	/* A round of each first, not counted: connections, the daemon's
	 * first transfers. */
	for (int m = 0; m < M_N; m++) {
		double cl;

		(void)round_once((enum mode)m, c, path, size, per_round, ntohs(sa.sin_port), &cl);
	}
	for (unsigned t = 0; t < triples; t++) {
		for (int k = 0; k < M_N; k++) {
			/* Rotate the order: each mode goes first, second and third
			 * equally often. */
			int m = (int)((t + (unsigned)k) % M_N);

			secs[m][t] = round_once((enum mode)m, c, path, size, per_round,
			                        ntohs(sa.sin_port), &call[m][t]);
		}
		r_tput_s[t] = secs[M_SUBMIT][t] / secs[M_HANDOFF][t];
		r_tput_p[t] = secs[M_INPROC][t] / secs[M_HANDOFF][t];
		r_call_s[t] = call[M_HANDOFF][t] / call[M_SUBMIT][t];
		r_call_p[t] = call[M_HANDOFF][t] / call[M_INPROC][t];
	}
	printf("medians over %u rounds each:\n", triples);
	for (int m = 0; m < M_N; m++) {
		double s = median(secs[m], triples), cl = median(call[m], triples);

		printf("  %-8s client time per transfer %9.1f us   round %8.2f ms   %8.0f "
		       "transfers/s   %7.2f GB/s delivered\n",
		       mode_name[m], cl * 1e6, s * 1e3, per_round / s,
		       (double)per_round * (double)size / s / 1e9);
	}
	printf("per-round ratios (median, 95%% bootstrap interval):\n");
	report_ratio("transfers/s, handoff / submit", r_tput_s, triples);
	report_ratio("transfers/s, handoff / inproc", r_tput_p, triples);
	report_ratio("client time per transfer, handoff / submit", r_call_s, triples);
	report_ratio("client time per transfer, handoff / inproc", r_call_p, triples);
	sfd_client_free(c);
	return 0;
}
