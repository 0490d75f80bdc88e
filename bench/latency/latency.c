/*
 * bench-latency - the time of one request, one at a time, through the
 * daemon against a raw round trip of two descriptors to a trivial peer.
 *
 *   bench-latency --socket PATH --client-cpu C --server-cpu S [--rounds R]
 *                 [--per-round K] [--cold-file PATH --cold-rounds N]
 *
 * Three kinds of request alternate in blocks of K, their order rotating from
 * one round to the next:
 *   raw   a record carrying two descriptors (the destination and the source)
 *         to a peer process that receives it, answers with one record and
 *         closes both: what any descriptor-passing daemon pays at least;
 *   tcp   sfd_client_sendfile() of a 4 KiB page-cached file to a TCP
 *         loopback connection (cubic);
 *   unix  the same to an AF_UNIX stream socket;
 *   floor the tcp request served by the floor server (../floor.h): the
 *         syscalls each request needs and nothing else, no event loop;
 *   inproc sendfile(2) of the same 4 KiB to the TCP connection in this
 *         process: what the transfer itself costs.
 * Printed: p50 and p99 of each (microseconds) and p50 / p50 of raw.
 *
 * With --cold-file: a file of at least 1 GiB is evicted from the page cache
 * (posix_fadvise(DONTNEED), checked with mincore) and sent whole by the
 * daemon to a TCP connection drained by a thread of ours, while 4 KiB
 * requests to TCP are timed; before each such round, a round of 4 KiB
 * requests alone. Printed: p99 alone, p99 during the cold transfer, ratio.
 *
 * The process pins itself to --client-cpu (the draining thread too); the
 * peer it forks is pinned to --server-cpu, where the daemon must be pinned
 * by whoever starts it (latency.sh does).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor.h"
#include "sendfiled.h"

#define DIE(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "bench-latency: " __VA_ARGS__);                                    \
		fputc('\n', stderr);                                                               \
		exit(1);                                                                           \
	} while (0)

#define SMALL 4096

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void
pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		DIE("sched_setaffinity(%d): %s", cpu, strerror(errno));
}

static void
cubic(int fd)
{
	(void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5);
}

/* A connected TCP loopback pair: [0] ours to send on, [1] the receiver's. */
static void
tcp_pair(int fds[2])
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		DIE("listen: %s", strerror(errno));
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cubic(fds[0]);
	if (connect(fds[0], (struct sockaddr *)&a, sizeof(a)) < 0)
		DIE("connect: %s", strerror(errno));
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fds[1] < 0)
		DIE("accept: %s", strerror(errno));
	cubic(fds[1]);
	close(l);
	(void)fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

static void
read_exact(int fd, size_t n)
{
	char buf[SMALL];

	while (n > 0) {
		ssize_t r = read(fd, buf, n < sizeof(buf) ? n : sizeof(buf));

		if (r <= 0)
			DIE("receiver read: %s", r < 0 ? strerror(errno) : "EOF");
		n -= (size_t)r;
	}
}

/* ---- the raw peer ------------------------------------------------------- */

static void
peer_main(int fd)
{
	for (;;) {
		char buf[256], cbuf[CMSG_SPACE(2 * sizeof(int))];
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr m = {.msg_iov = &iov,
		                   .msg_iovlen = 1,
		                   .msg_control = cbuf,
		                   .msg_controllen = sizeof(cbuf)};
		ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
		struct cmsghdr *cm;

		if (n <= 0)
			_exit(0);
		for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
			int fds[2];

			if (cm->cmsg_type != SCM_RIGHTS)
				continue;
			memcpy(fds, CMSG_DATA(cm), sizeof(fds));
			/* Answer, then close: the order the daemon follows is the
			 * reverse, but the cost is the same. */
			if (send(fd, buf, 24, 0) < 0)
				_exit(1);
			close(fds[0]);
			close(fds[1]);
		}
	}
}

static void
raw_request(int peer, int dst, int src)
{
	char buf[64] = {0}, cbuf[CMSG_SPACE(2 * sizeof(int))] = {0};
	struct iovec iov = {buf, 24}; /* about a Sendfile request's size */
	struct msghdr m = {.msg_iov = &iov,
	                   .msg_iovlen = 1,
	                   .msg_control = cbuf,
	                   .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	int fds[2] = {dst, src};

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	if (sendmsg(peer, &m, 0) < 0 || recv(peer, buf, sizeof(buf), 0) <= 0)
		DIE("raw round trip: %s", strerror(errno));
}

/* ---- statistics --------------------------------------------------------- */

struct samples {
	double *v;
	size_t n, cap;
};

static void
add(struct samples *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1024;
		s->v = realloc(s->v, s->cap * sizeof(double));
		if (!s->v)
			DIE("out of memory");
	}
	s->v[s->n++] = x;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
pct(struct samples *s, double p)
{
	size_t i;

	if (s->n == 0)
		return 0;
	qsort(s->v, s->n, sizeof(double), cmp_double);
	i = (size_t)(p * (double)(s->n - 1) + 0.5);
	return s->v[i];
}

/* ---- the daemon's requests ---------------------------------------------- */

static void
daemon_request(struct sfd_client *c, int dst, int rcv, int src)
{
	struct sfd_result r;
	int e = sfd_client_sendfile(c, dst, src, 0, SMALL, 0, -1, &r);

	if (e < 0 || r.status != SFD_STATUS_OK || r.bytes_sent != SMALL)
		DIE("request: %d, status %d, %llu bytes: %s", e, r.status,
		    (unsigned long long)r.bytes_sent, r.message);
	(void)rcv;
}

enum kind { K_RAW, K_TCP, K_UNIX, K_FLOOR, K_INPROC, K_N };
static const char *const kind_name[K_N] = {"raw", "tcp", "unix", "floor", "inproc"};

struct env {
	struct sfd_client *c, *floor;
	int peer;
	int src;
	int tcp[2], unx[2];
};

static void
one(struct env *e, enum kind k, struct samples *s)
{
	double t0 = now_us(), t1;

	switch (k) {
	case K_RAW:
		raw_request(e->peer, e->tcp[0], e->src);
		break;
	case K_TCP:
		daemon_request(e->c, e->tcp[0], e->tcp[1], e->src);
		break;
	case K_UNIX:
		daemon_request(e->c, e->unx[0], e->unx[1], e->src);
		break;
	case K_FLOOR:
		daemon_request(e->floor, e->tcp[0], e->tcp[1], e->src);
		break;
	default: {
		off_t off = 0;

		if (sendfile(e->tcp[0], e->src, &off, SMALL) != SMALL)
			DIE("in-process sendfile: %s", strerror(errno));
		break;
	}
	}
	t1 = now_us();
	if (s)
		add(s, t1 - t0);
	/* The receiver drains outside the timed part. */
	if (k == K_TCP || k == K_FLOOR || k == K_INPROC)
		read_exact(e->tcp[1], SMALL);
	else if (k == K_UNIX)
		read_exact(e->unx[1], SMALL);
}

/* ---- the cold transfer -------------------------------------------------- */

struct drain {
	int fd;
	int cpu;
	uint64_t got;
};

static void *
drain_main(void *arg)
{
	struct drain *d = arg;
	static char buf[1 << 20];

	pin(d->cpu);
	for (;;) {
		ssize_t n = read(d->fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		d->got += (uint64_t)n;
	}
	return NULL;
}

static int cold_status = -1;

static void
on_cold_done(struct sfd_client *c, uint64_t id, const struct sfd_result *r, void *userdata)
{
	(void)c;
	(void)id;
	(void)userdata;
	cold_status = r->status;
}

static double
resident(int fd, off_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t pages = ((size_t)size + (size_t)page - 1) / (size_t)page, in = 0;
	unsigned char *vec = malloc(pages);
	void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);

	if (!vec || p == MAP_FAILED || mincore(p, (size_t)size, vec) < 0)
		DIE("mincore: %s", strerror(errno));
	for (size_t i = 0; i < pages; i++)
		in += vec[i] & 1;
	munmap(p, (size_t)size);
	free(vec);
	return (double)in / (double)pages;
}

static void
cold_round(struct env *e, const char *path, int client_cpu, int per_round, struct samples *alone,
           struct samples *loaded, double *ret_seconds)
{
	int big = open(path, O_RDONLY | O_CLOEXEC), conn[2];
	struct stat st;
	struct drain d;
	pthread_t th;
	struct sfd_client *c2;
	uint64_t id;
	bool done = false;
	double t0;
	int n = 0;

	if (big < 0 || fstat(big, &st) < 0)
		DIE("%s: %s", path, strerror(errno));
	for (int i = 0; i < per_round; i++)
		one(e, K_TCP, alone);
	(void)fdatasync(big);
	(void)posix_fadvise(big, 0, 0, POSIX_FADV_DONTNEED);
	printf("  cold file: %.1f%% resident after eviction\n", 100 * resident(big, st.st_size));
	tcp_pair(conn);
	d = (struct drain){.fd = conn[1], .cpu = client_cpu};
	if (pthread_create(&th, NULL, drain_main, &d) != 0)
		DIE("pthread_create");
	if (sfd_client_open(getenv("BENCH_SOCKET"), &c2) < 0)
		DIE("second connection");
	t0 = now_us();
	if (sfd_client_submit(c2, conn[0], big, 0, 0, 0, NULL, &id) < 0)
		DIE("submit the cold transfer");
	while (!done) {
		struct pollfd p = {.fd = sfd_client_get_fd(c2), .events = POLLIN};

		one(e, K_TCP, loaded);
		n++;
		if (poll(&p, 1, 0) > 0) {
			if (sfd_client_dispatch(c2, on_cold_done) < 0)
				DIE("dispatch");
			done = sfd_client_in_flight(c2) == 0;
		}
	}
	*ret_seconds = (now_us() - t0) / 1e6;
	close(conn[0]);
	pthread_join(th, NULL);
	close(conn[1]);
	sfd_client_free(c2);
	close(big);
	if (cold_status != SFD_STATUS_OK || d.got != (uint64_t)st.st_size)
		DIE("cold transfer: %llu of %llu bytes", (unsigned long long)d.got,
		    (unsigned long long)st.st_size);
	printf("  cold transfer: %.2f s, %d requests timed meanwhile\n", *ret_seconds, n);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"client-cpu", required_argument, NULL, 'c'},
	        {"server-cpu", required_argument, NULL, 'S'},
	        {"rounds", required_argument, NULL, 'r'},
	        {"per-round", required_argument, NULL, 'k'},
	        {"file", required_argument, NULL, 'f'},
	        {"cold-file", required_argument, NULL, 'C'},
	        {"cold-rounds", required_argument, NULL, 'R'},
	        {0},
	};
	const char *sock = NULL, *file = NULL, *cold = NULL;
	int ccpu = 0, scpu = 0, rounds = 20, per = 500, cold_rounds = 3, o;
	struct samples s[K_N] = {0};
	int sp[2];
	pid_t peer, floor_pid;
	struct env e;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			ccpu = atoi(optarg);
			break;
		case 'S':
			scpu = atoi(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'k':
			per = atoi(optarg);
			break;
		case 'f':
			file = optarg;
			break;
		case 'C':
			cold = optarg;
			break;
		case 'R':
			cold_rounds = atoi(optarg);
			break;
		default:
			DIE("bad option");
		}
	}
	if (!sock || !file)
		DIE("--socket and --file are needed");
	setenv("BENCH_SOCKET", sock, 1);
	signal(SIGPIPE, SIG_IGN);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		DIE("socketpair: %s", strerror(errno));
	peer = fork();
	if (peer == 0) {
		close(sp[0]);
		pin(scpu);
		peer_main(sp[1]);
	}
	close(sp[1]);
	pin(ccpu);

	e.peer = sp[0];
	e.src = open(file, O_RDONLY | O_CLOEXEC);
	if (e.src < 0)
		DIE("%s: %s", file, strerror(errno));
	tcp_pair(e.tcp);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e.unx) < 0)
		DIE("socketpair: %s", strerror(errno));
	(void)fcntl(e.unx[0], F_SETFL, O_NONBLOCK);
	if (sfd_client_open(sock, &e.c) < 0)
		DIE("cannot connect to %s", sock);
	{
		char fpath[PATH_MAX];
		cpu_set_t set;

		snprintf(fpath, sizeof(fpath), "%s.floor", sock);
		floor_pid = floor_start(fpath);
		if (floor_pid < 0)
			DIE("floor server: %s", strerror((int)-floor_pid));
		CPU_ZERO(&set);
		CPU_SET(scpu, &set);
		(void)sched_setaffinity(floor_pid, sizeof(set), &set);
		if (sfd_client_open(fpath, &e.floor) < 0)
			DIE("cannot connect to the floor server");
	}

	printf("placement: client on CPU %d, daemon and peer on CPU %d (%s)\n", ccpu, scpu,
	       ccpu == scpu ? "same CPU" : "cross-CPU");
	/* Warm: the file in the page cache, connections and caches going. */
	for (int i = 0; i < 200; i++)
		for (int k = 0; k < K_N; k++)
			one(&e, (enum kind)k, NULL);
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < K_N; k++) {
			enum kind kk = (enum kind)((k + r) % K_N);

			for (int i = 0; i < per; i++)
				one(&e, kk, &s[kk]);
		}
	{
		double raw50 = pct(&s[K_RAW], 0.5);

		printf("one request at a time, %d rounds of %d each, kinds alternated:\n", rounds,
		       per);
		for (int k = 0; k < K_N; k++) {
			double p50 = pct(&s[k], 0.5), p99 = pct(&s[k], 0.99);

			printf("  %-4s p50 %7.2f us  p99 %7.2f us  p50/raw %.2f\n", kind_name[k],
			       p50, p99, p50 / raw50);
		}
	}
	if (cold) {
		struct samples alone = {0}, loaded = {0};
		double secs;

		for (int r = 0; r < cold_rounds; r++)
			cold_round(&e, cold, ccpu, per, &alone, &loaded, &secs);
		printf("4 KiB to TCP, p99: alone %.2f us (%zu), during a cold transfer %.2f us "
		       "(%zu), ratio %.2f; p50 %.2f / %.2f us\n",
		       pct(&alone, 0.99), alone.n, pct(&loaded, 0.99), loaded.n,
		       pct(&loaded, 0.99) / pct(&alone, 0.99), pct(&alone, 0.5), pct(&loaded, 0.5));
	}
	sfd_client_free(e.c);
	sfd_client_free(e.floor);
	floor_stop(floor_pid);
	close(sp[0]);
	waitpid(peer, NULL, 0);
	return 0;
}
