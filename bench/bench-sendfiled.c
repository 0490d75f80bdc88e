/*
 * bench-sendfiled - throughput and request rate of the daemon against an
 * in-process baseline measured in the same run.
 *
 *   bench-sendfiled [--socket PATH] [--size MIB] [--rounds N] [--seconds S]
 *                   [--blocking-dst] [--only large|small]
 *
 * 1. Large file: a page-cached file of --size MiB sent over TCP loopback,
 *    in-process sendfile(2) vs. offloaded to the daemon in pairs of rounds,
 *    which of the two goes first alternating; median of each, their ratio,
 *    and the median of the paired ratios.
 * 2. Small requests: 4 KiB transfers, 64 in flight on one connection,
 *    requests/s; baseline: a raw exchange of records carrying two
 *    descriptors, read in batches by a peer that closes them and answers
 *    each batch at once (what any descriptor-passing daemon pays); and a
 *    floor server (floor.h) doing only the syscalls each request needs,
 *    alternated with the daemon, to TCP loopback and to an AF_UNIX socket.
 *    These go to the daemon (SFD_NO_INLINE): they measure its own path.
 * 3. The application's view (--only app, or with the others): one thread
 *    sends files of --app-sizes KiB, one request after the other, to a
 *    non-blocking TCP socket, three ways alternated round by round (the
 *    order rotating): sendfile(2) in process (what the application would do
 *    itself), libsendfiled with the in-caller path, and libsendfiled with
 *    SFD_NO_INLINE (the daemon). The statistic, named before any run: the
 *    median over rounds of the per-round ratio to in-process requests/s.
 *    The caller's CPU time per request (CLOCK_THREAD_CPUTIME_ID) tells where
 *    sending in the caller stops paying: where it costs the caller more than
 *    asking the daemon. The sending thread runs on CPU 0, the receiver on
 *    CPU 1, and the daemon ($BENCH_DAEMON_PID, set by run.sh) on CPU 1.
 *
 * The large-file pairs: with --rounds >= 20 a bootstrap 95% interval of the
 * median of paired ratios is printed too (2000 resamples).
 *
 * Loopback TCP uses cubic (set per socket): the default here may be bbr,
 * whose pacing makes loopback numbers noisy.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fdmsg.h"
#include "floor.h"
#include "sendfiled.h"

#define DIE(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "bench-sendfiled: " __VA_ARGS__);                                  \
		fputc('\n', stderr);                                                               \
		exit(1);                                                                           \
	} while (0)

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

/* A TCP connection over loopback: [0] sending end, [1] receiving end. */
static void
tcp_pair(int fds[2])
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0)
		DIE("listen: %s", strerror(errno));
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cubic(fds[0]);
	if (connect(fds[0], (struct sockaddr *)&sa, sizeof(sa)) < 0)
		DIE("connect: %s", strerror(errno));
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fds[1] < 0)
		DIE("accept: %s", strerror(errno));
	cubic(fds[1]);
	close(l);
}

struct drain {
	int fd;
	uint64_t want;
	uint64_t got;
	pthread_t th;
};

/* Read until @want bytes (or EOF when 0) and throw them away. */
static void *
drain_main(void *arg)
{
	struct drain *d = arg;
	static __thread char buf[1 << 20];

	while (d->want == 0 || d->got < d->want) {
		ssize_t n = recv(d->fd, buf, sizeof(buf), 0);

		if (n <= 0)
			break;
		d->got += n;
	}
	return NULL;
}

static int
make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char *buf = malloc(1 << 20);

	if (fd < 0 || !buf)
		DIE("create %s: %s", path, strerror(errno));
	for (size_t i = 0; i < (1 << 20); i++)
		buf[i] = (char)(i * 2654435761u >> 13);
	for (uint64_t off = 0; off < size; off += 1 << 20)
		if (write(fd, buf, (size_t)(size - off < (1 << 20) ? size - off : (1 << 20))) < 0)
			DIE("write: %s", strerror(errno));
	free(buf);
	/* Warm the page cache: read it all once. */
	return fd;
}

/* An unlinked file of @size bytes in /tmp. */
static int
make_temp_file(uint64_t size)
{
	char path[] = "/tmp/bench-sendfiled-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0)
		DIE("mkstemp: %s", strerror(errno));
	close(fd);
	fd = make_file(path, size);
	unlink(path);
	return fd;
}

static void
warm(int fd)
{
	char tmp[1 << 16];
	off_t o = 0;
	ssize_t n;

	while ((n = pread(fd, tmp, sizeof(tmp), o)) > 0)
		o += n;
}

/* One large transfer, in process: what an application does by itself. */
static double
large_inprocess(int file, uint64_t size)
{
	struct drain d = {.want = size};
	int tcp[2];
	double t0, t;
	off_t off = 0;

	tcp_pair(tcp);
	d.fd = tcp[1];
	pthread_create(&d.th, NULL, drain_main, &d);
	t0 = now();
	while ((uint64_t)off < size) {
		ssize_t n = sendfile(tcp[0], file, &off, size - off);

		if (n <= 0)
			DIE("sendfile: %s", n < 0 ? strerror(errno) : "EOF");
	}
	pthread_join(d.th, NULL);
	t = now() - t0;
	close(tcp[0]);
	close(tcp[1]);
	return size / t / 1e9;
}

/* The same transfer offloaded to the daemon (destination non-blocking, so
 * the daemon drives it from its loop). */
static bool blocking_dst;

static double
large_offloaded(struct sfd_client *c, int file, uint64_t size)
{
	struct drain d = {.want = size};
	struct sfd_result res;
	int tcp[2], r;
	double t0, t;

	tcp_pair(tcp);
	/* Non-blocking: the daemon drives it from its loop. Blocking: one of
	 * its worker threads does, with blocking sendfile() calls. */
	if (!blocking_dst)
		fcntl(tcp[0], F_SETFL, O_NONBLOCK);
	d.fd = tcp[1];
	pthread_create(&d.th, NULL, drain_main, &d);
	t0 = now();
	r = sfd_client_sendfile(c, tcp[0], file, 0, size, 0, -1, &res);
	if (r < 0 || res.status != SFD_STATUS_OK || res.bytes_sent != size)
		DIE("offloaded transfer failed: %s / %s", strerror(-r), sfd_status_str(res.status));
	pthread_join(d.th, NULL);
	t = now() - t0;
	close(tcp[0]);
	close(tcp[1]);
	return size / t / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct small_state {
	struct sfd_client *c;
	int dst, src;
	uint64_t done, failed;
};

static void
on_small_done(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	struct small_state *s = userdata;

	(void)c;
	(void)id;
	if (res->status != SFD_STATUS_OK || res->bytes_sent != 4096)
		s->failed++;
	s->done++;
}

/* 4 KiB requests, @depth in flight on one connection, for @secs seconds,
 * to a TCP loopback connection or (@unix_dst) an AF_UNIX stream socket. */
static double
small_offloaded(const char *path, int src, int depth, double secs, bool unix_dst, unsigned flags,
                uint64_t *ret_failed)
{
	struct small_state s = {.src = src};
	struct drain d = {0};
	uint64_t submitted = 0, id;
	int tcp[2], r;
	double t0, t;

	if (sfd_client_open(path, &s.c) < 0)
		DIE("cannot reach the daemon at %s", path);
	if (unix_dst) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tcp) < 0)
			DIE("socketpair: %s", strerror(errno));
	} else {
		tcp_pair(tcp);
	}
	fcntl(tcp[0], F_SETFL, O_NONBLOCK);
	/* The receiving end stands for a remote peer, which costs this host
	 * nothing: let it wake up per 64 KiB rather than per 4 KiB segment,
	 * so that the two cores go to the client and the daemon. */
	(void)setsockopt(tcp[1], SOL_SOCKET, SO_RCVLOWAT, &(int){64 << 10}, sizeof(int));
	s.dst = tcp[0];
	d.fd = tcp[1];
	pthread_create(&d.th, NULL, drain_main, &d);

	t0 = now();
	for (;;) {
		bool stop = now() - t0 >= secs;

		while (!stop && submitted - s.done < (uint64_t)depth) {
			r = sfd_client_submit(s.c, s.dst, s.src, 0, 4096, flags, &s, &id);
			if (r < 0)
				DIE("submit: %s", strerror(-r));
			submitted++;
		}
		if (stop && s.done == submitted)
			break;
		if (sfd_client_pending(s.c) == 0) {
			struct pollfd pfd = {.fd = sfd_client_get_fd(s.c), .events = POLLIN};

			poll(&pfd, 1, 1000);
		}
		r = sfd_client_dispatch(s.c, on_small_done);
		if (r < 0)
			DIE("dispatch: %s", strerror(-r));
	}
	t = now() - t0;
	shutdown(tcp[0], SHUT_WR);
	pthread_join(d.th, NULL);
	close(tcp[0]);
	close(tcp[1]);
	sfd_client_free(s.c);
	*ret_failed = s.failed;
	return s.done / t;
}

/* The floor under any descriptor-passing daemon: records of two
 * descriptors, received in batches (recvmmsg) by a peer that closes them
 * and answers each batch with one sendmmsg, as the daemon does. */
static void *
echo_main(void *arg)
{
	int sock = *(int *)arg;
	static unsigned char bufs[16][256];

	for (;;) {
		struct fdmsg_record recs[16];
		struct iovec iov[16];
		struct pollfd pfd = {.fd = sock, .events = POLLIN};
		int n;

		for (int i = 0; i < 16; i++)
			recs[i] = (struct fdmsg_record){.buf = bufs[i], .cap = sizeof(bufs[i])};
		n = fdmsg_recv_records(sock, recs, 16, MSG_DONTWAIT);
		if (n == -EAGAIN) {
			poll(&pfd, 1, -1);
			continue;
		}
		if (n <= 0 || recs[0].len == 0)
			break;
		for (int i = 0; i < n; i++) {
			fdmsg_close_all(recs[i].fds, recs[i].nfds);
			iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = 16};
		}
		if (fdmsg_send_batch(sock, iov, (size_t)n, 0) < 0)
			break;
	}
	return NULL;
}

static double
raw_exchange(int src, int depth, double secs)
{
	int sv[2], fds[2] = {src, src};
	char buf[256] = {0};
	uint64_t sent = 0, got = 0;
	pthread_t th;
	double t0, t;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		DIE("socketpair: %s", strerror(errno));
	pthread_create(&th, NULL, echo_main, &sv[1]);
	t0 = now();
	for (;;) {
		bool stop = now() - t0 >= secs;

		while (!stop && sent - got < (uint64_t)depth) {
			if (fdmsg_send(sv[0], buf, 24, fds, 2, 0) < 0)
				DIE("send: %s", strerror(errno));
			sent++;
		}
		if (stop && got == sent)
			break;
		if (recv(sv[0], buf, sizeof(buf), 0) <= 0)
			DIE("recv: %s", strerror(errno));
		got++;
	}
	t = now() - t0;
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
	return got / t;
}

/* The daemon against the floor server (floor.h), to @unix_dst or TCP, in
 * two pairs whose order alternates (floor, daemon, daemon, floor): the
 * machine's swings within a run are as large as the difference. */
static void
small_pairs(const char *path, const char *floor_path, int src, double secs, bool unix_dst,
            double raw, uint64_t *failed)
{
	const char *to = unix_dst ? "an AF_UNIX socket" : "TCP loopback";
	double d = 0, f = 0;
	uint64_t bad;

	for (int i = 0; i < 4; i++) {
		bool daemon = i == 1 || i == 2;
		/* Both servers do every request: the daemon's own cost. */
		double rps = small_offloaded(daemon ? path : floor_path, src, 64, secs, unix_dst,
		                             SFD_NO_INLINE, &bad);

		*failed += bad;
		*(daemon ? &d : &f) += rps / 2;
	}
	printf("  to %s: floor server %.0f requests/s (%.3f of raw); daemon %.0f requests/s "
	       "(%.3f of raw, %.3f of the floor)%s\n",
	       to, f, f / raw, d, d / raw, d / f, *failed ? ", SOME FAILED" : "");
}

/* ---- the application's view ------------------------------------------- */

static void
pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

/* Every thread of process @pid onto @cpu. Return: how many were moved. */
static int
pin_process(pid_t pid, int cpu)
{
	char dir[64];
	struct dirent *e;
	cpu_set_t set;
	DIR *d;
	int n = 0;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' &&
		    sched_setaffinity((pid_t)atoi(e->d_name), sizeof(set), &set) == 0)
			n++;
	closedir(d);
	return n;
}

static void *
drain_pinned(void *arg)
{
	pin_self(1);
	return drain_main(arg);
}

static double
thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

enum app_way { APP_INPROCESS, APP_INLINE, APP_DAEMON, APP_WAYS };
static const char *const app_way_name[APP_WAYS] = {"in-process", "libsendfiled", "daemon only"};

/* One request of @size bytes of @src, the application's own way. */
static void
inprocess_one(int dst, int src, uint64_t size)
{
	off_t off = 0;

	while ((uint64_t)off < size) {
		ssize_t n = sendfile(dst, src, &off, size - off);

		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = dst, .events = POLLOUT};

			poll(&p, 1, -1);
			continue;
		}
		if (n <= 0)
			DIE("sendfile: %s", n < 0 ? strerror(errno) : "EOF");
	}
}

/* Requests one after the other for @secs. Return: requests/s; *@cpu_us: the
 * sending thread's CPU time per request, in microseconds; *@inl: how many
 * were sent wholly in the caller. */
static double
app_round(struct sfd_client *c, enum app_way way, const int *files, int nfiles, uint64_t size,
          double secs, double *cpu_us, uint64_t *inl, uint64_t *total)
{
	struct drain d = {0};
	uint64_t n = 0;
	int tcp[2];
	double t0, c0, t;

	tcp_pair(tcp);
	fcntl(tcp[0], F_SETFL, O_NONBLOCK);
	/* The receiver stands for a remote peer, as in small_offloaded(). */
	(void)setsockopt(tcp[1], SOL_SOCKET, SO_RCVLOWAT, &(int){64 << 10}, sizeof(int));
	d.fd = tcp[1];
	pthread_create(&d.th, NULL, drain_pinned, &d);
	*inl = 0;
	t0 = now();
	c0 = thread_cpu();
	do {
		for (int k = 0; k < 64; k++, n++) {
			int src = files[n % (uint64_t)nfiles];
			struct sfd_result res;
			int r;

			if (way == APP_INPROCESS) {
				inprocess_one(tcp[0], src, size);
				continue;
			}
			r = sfd_client_sendfile(c, tcp[0], src, 0, size,
			                        way == APP_DAEMON ? SFD_NO_INLINE : 0, -1, &res);
			if (r < 0 || res.status != SFD_STATUS_OK || res.bytes_sent != size)
				DIE("request failed: %s / %s %s", strerror(-r),
				    sfd_status_str(res.status), res.message);
			if (res.flags & SFD_RESULT_INLINE)
				(*inl)++;
		}
	} while ((t = now() - t0) < secs);
	*cpu_us = (thread_cpu() - c0) / n * 1e6;
	*total = n;
	shutdown(tcp[0], SHUT_WR);
	pthread_join(d.th, NULL);
	close(tcp[0]);
	close(tcp[1]);
	return n / t;
}

/*
 * For each size: @rounds rounds, each running the three ways for @secs
 * apiece, in an order that rotates from round to round.
 */
static void
app_view(const char *path, const char *sizes, int rounds, double secs)
{
	char list[256], *save = NULL;
	const char *daemon_pid = getenv("BENCH_DAEMON_PID");
	struct sfd_client *c;
	int moved = 0;

	if (sfd_client_open(path, &c) < 0)
		DIE("cannot reach the daemon at %s", path);
	/* Every size is tried in the caller here: the sweep finds where that
	 * stops paying, whatever the default threshold is. */
	sfd_client_set_inline_max(c, SIZE_MAX);
	if (daemon_pid)
		moved = pin_process((pid_t)atoi(daemon_pid), 1);
	/* As servers do: their own writes to closed sockets must not kill
	 * them. (With a handler instead, the library blocks the signal around
	 * its sendfile: two more syscalls per request.) */
	signal(SIGPIPE, SIG_IGN);
	pin_self(0);
	printf("the application's view: one thread, requests one after the other to a "
	       "non-blocking TCP socket, %d rounds of %.1f s per way, order rotating\n"
	       "  placement: sender CPU 0, receiver CPU 1, daemon %s; in-caller threshold "
	       "raised to any size for the sweep (default %u)\n"
	       "  statistic: median over rounds of the per-round ratio to in-process; SIGPIPE "
	       "ignored, as servers do\n",
	       rounds, secs, moved ? "CPU 1 (all its threads)" : "not pinned",
	       SFD_INLINE_MAX_DEFAULT);
	snprintf(list, sizeof(list), "%s", sizes);
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t size = strtoull(tok, NULL, 0) << 10, inl = 0, total_inl = 0, n = 0,
		         total = 0;
		double rps[APP_WAYS][256], cpu[APP_WAYS][256], ratio[2][256], med[APP_WAYS],
		        medcpu[APP_WAYS];
		int files[16];

		for (int i = 0; i < 16; i++) {
			files[i] = make_temp_file(size);
			warm(files[i]);
		}
		for (int r = 0; r < rounds && r < 256; r++) {
			for (int k = 0; k < APP_WAYS; k++) {
				enum app_way w = (enum app_way)((r + k) % APP_WAYS);

				rps[w][r] = app_round(c, w, files, 16, size, secs, &cpu[w][r], &inl,
				                      &n);
				if (w == APP_INLINE) {
					total_inl += inl;
					total += n;
				}
			}
			ratio[0][r] = rps[APP_INLINE][r] / rps[APP_INPROCESS][r];
			ratio[1][r] = rps[APP_DAEMON][r] / rps[APP_INPROCESS][r];
		}
		for (int w = 0; w < APP_WAYS; w++) {
			med[w] = median(rps[w], rounds);
			medcpu[w] = median(cpu[w], rounds);
		}
		printf("  %llu KiB:", (unsigned long long)(size >> 10));
		for (int w = 0; w < APP_WAYS; w++)
			printf(" %s %.0f/s (caller CPU %.1f us/request);", app_way_name[w], med[w],
			       medcpu[w]);
		printf(" libsendfiled/in-process %.3f, daemon only/in-process %.3f; sent wholly "
		       "in the caller: %.1f%%\n",
		       median(ratio[0], rounds), median(ratio[1], rounds),
		       100.0 * total_inl / total);
		for (int i = 0; i < 16; i++)
			close(files[i]);
	}
	sfd_client_free(c);
}

/* A bootstrap 95% interval of the median of @v (@n values). */
static void
bootstrap_median(const double *v, int n, double *lo, double *hi)
{
	enum { B = 2000 };
	double *meds = malloc(B * sizeof(double)), *tmp = malloc(n * sizeof(double));
	uint64_t x = 88172645463325252ull;

	if (!meds || !tmp)
		DIE("out of memory");
	for (int b = 0; b < B; b++) {
		for (int i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			tmp[i] = v[x % (uint64_t)n];
		}
		meds[b] = median(tmp, n);
	}
	qsort(meds, B, sizeof(double), cmp_double);
	*lo = meds[B * 25 / 1000];
	*hi = meds[B * 975 / 1000];
	free(meds);
	free(tmp);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"size", required_argument, NULL, 'm'},
	        {"rounds", required_argument, NULL, 'r'},
	        {"seconds", required_argument, NULL, 't'},
	        {"blocking-dst", no_argument, NULL, 'b'},
	        {"only", required_argument, NULL, 'o'},
	        {"app-sizes", required_argument, NULL, 'a'},
	        {"app-rounds", required_argument, NULL, 'A'},
	        {"app-seconds", required_argument, NULL, 'T'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	char path[108] = "";
	uint64_t size = 1024ull << 20, failed = 0;
	int rounds = 5, c, app_rounds = 10;
	bool only_large = false, only_small = false, only_app = false;
	const char *app_sizes = "4";
	double secs = 3, app_secs = 0.5, in[1024], off[1024], raw;
	struct sfd_client *cl;
	int big, small;
	char floor_dir[] = "/tmp/bench-floor-XXXXXX", floor_path[128] = "";
	pid_t floor_pid = 0;

	while ((c = getopt_long(argc, argv, "s:m:r:t:bo:a:A:T:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			snprintf(path, sizeof(path), "%s", optarg);
			break;
		case 'm':
			size = strtoull(optarg, NULL, 0) << 20;
			break;
		case 'r':
			rounds = atoi(optarg);
			if (rounds < 1 || rounds > 1024)
				DIE("--rounds must be 1..1024");
			break;
		case 't':
			secs = atof(optarg);
			break;
		case 'b':
			blocking_dst = true;
			break;
		case 'o':
			if (strcmp(optarg, "large") == 0)
				only_large = true;
			else if (strcmp(optarg, "small") == 0)
				only_small = true;
			else if (strcmp(optarg, "app") == 0)
				only_app = true;
			else
				DIE("--only takes large, small or app");
			break;
		case 'a':
			app_sizes = optarg;
			break;
		case 'A':
			app_rounds = atoi(optarg);
			if (app_rounds < 1 || app_rounds > 256)
				DIE("--app-rounds must be 1..256");
			break;
		case 'T':
			app_secs = atof(optarg);
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
			        "usage: bench-sendfiled [--socket PATH] [--size MIB] [--rounds N] "
			        "[--seconds S] [--blocking-dst] [--only large|small|app]\n"
			        "                       [--app-sizes KIB,...] [--app-rounds N] "
			        "[--app-seconds S]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!path[0])
		sfd_default_socket_path(path, sizeof(path));
	if (only_app) {
		app_view(path, app_sizes, app_rounds, app_secs);
		return 0;
	}
	/* Forked before any thread exists. */
	if (!only_large) {
		if (!mkdtemp(floor_dir))
			DIE("mkdtemp: %s", strerror(errno));
		snprintf(floor_path, sizeof(floor_path), "%s/floor.sock", floor_dir);
		floor_pid = floor_start(floor_path);
		if (floor_pid < 0)
			DIE("floor server: %s", strerror((int)-floor_pid));
	}
	if (sfd_client_open(path, &cl) < 0)
		DIE("cannot reach the daemon at %s", path);

	big = make_temp_file(only_small ? 0 : size);
	small = make_temp_file(4096);

	if (!only_small) {
		printf("large file: %llu MiB over TCP loopback (cubic), %d rounds each, "
		       "alternating\n",
		       (unsigned long long)(size >> 20), rounds);
		for (int i = 0; i < rounds; i++) {
			/* Which goes first alternates: the second of a pair
			 * tends to run a little faster here. */
			if (i % 2 == 0) {
				warm(big);
				in[i] = large_inprocess(big, size);
			}
			warm(big);
			off[i] = large_offloaded(cl, big, size);
			if (i % 2 == 1) {
				warm(big);
				in[i] = large_inprocess(big, size);
			}
			printf("  round %d: in-process %.2f GB/s, offloaded %.2f GB/s\n", i + 1,
			       in[i], off[i]);
		}
		{
			double ratios[1024];

			/* Rounds run back to back in pairs: the median of the paired
			 * ratios is less sensitive to a noisy neighbour than the ratio
			 * of the medians. */
			for (int i = 0; i < rounds; i++)
				ratios[i] = off[i] / in[i];
			double mr = median(ratios, rounds);
			double mi = median(in, rounds), mo = median(off, rounds);

			printf("  median: in-process %.2f GB/s, offloaded %.2f GB/s, ratio %.3f "
			       "(median of paired ratios %.3f)\n",
			       mi, mo, mo / mi, mr);
			if (rounds >= 20) {
				double lo, hi;

				for (int i = 0; i < rounds; i++)
					ratios[i] = off[i] / in[i];
				bootstrap_median(ratios, rounds, &lo, &hi);
				printf("  median of paired ratios %.3f, bootstrap 95%% interval "
				       "[%.3f, %.3f] (%d pairs)\n",
				       mr, lo, hi, rounds);
			}
		}
	}
	if (!only_large) {
		printf("small requests: 4 KiB, 64 in flight on one connection, %.0f s each\n",
		       secs);
		raw = raw_exchange(small, 64, secs);
		printf("  raw record+2 fds exchange (baseline): %.0f /s\n", raw);
		small_pairs(path, floor_path, small, secs, false, raw, &failed);
		small_pairs(path, floor_path, small, secs, true, raw, &failed);
	}
	if (!only_large && !only_small)
		app_view(path, app_sizes, app_rounds, app_secs);
	floor_stop(floor_pid);
	rmdir(floor_dir);
	sfd_client_free(cl);
	close(big);
	close(small);
	return failed ? 1 : 0;
}
