/*
 * fairness.c - how long a 64 KiB transfer to a blocking destination waits
 * for a worker while another client's stalled transfers wait for theirs.
 *
 * The stalled side: --stalled transfers of a large sparse file to blocking
 * stream sockets whose peers never read, submitted over --conns connections
 * (a connection holds at most --max-in-flight of the daemon's). The probe:
 * after --settle-ms, --rounds transfers of 64 KiB, one at a time, each to a
 * blocking socket drained by a thread, from a process of its own, which
 * takes uid --probe-uid first when given (the daemon then sees another
 * user). Prints each probe's time from submit to completion, then the
 * median and maximum in milliseconds. Everything is cancelled at the end.
 *
 * Run by bench/fairness/run.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sendfiled.h"

#define DIE(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "fairness: " __VA_ARGS__);                                         \
		fputc('\n', stderr);                                                               \
		exit(1);                                                                           \
	} while (0)

#define PROBE_SIZE (64 * 1024)
#define ROUNDS_MAX 1000

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void *
drain(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

static int
temp_file(off_t size)
{
	char path[] = "/tmp/sfd-fairness-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);

	if (fd < 0)
		DIE("mkostemp: %s", strerror(errno));
	unlink(path);
	if (size == PROBE_SIZE) {
		static char buf[PROBE_SIZE];

		memset(buf, 'p', sizeof(buf));
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			DIE("write: %s", strerror(errno));
	} else if (ftruncate(fd, size) < 0) {
		DIE("ftruncate: %s", strerror(errno));
	}
	return fd;
}

/* The probe process: @rounds transfers, one at a time; writes each time in
 * ms to @out. */
static void
probe(const char *path, int file, unsigned rounds, int uid, int out)
{
	struct sfd_client *c;

	if (uid >= 0 && (setgid((gid_t)uid) < 0 || setuid((uid_t)uid) < 0))
		DIE("setuid(%d): %s", uid, strerror(errno));
	if (sfd_client_open(path, &c) < 0)
		DIE("probe: cannot connect to %s", path);
	for (unsigned i = 0; i < rounds; i++) {
		struct sfd_result res;
		pthread_t t;
		int sv[2], r;
		double t0, ms;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			DIE("socketpair: %s", strerror(errno));
		pthread_create(&t, NULL, drain, (void *)(intptr_t)sv[1]);
		t0 = now_ms();
		r = sfd_client_sendfile(c, sv[0], file, 0, PROBE_SIZE, 0, 120000, &res);
		ms = now_ms() - t0;
		if (r < 0 || res.status != SFD_STATUS_OK || res.bytes_sent != PROBE_SIZE)
			DIE("probe transfer failed: %d / %s", r, res.message);
		close(sv[0]);
		pthread_join(t, NULL);
		close(sv[1]);
		if (write(out, &ms, sizeof(ms)) != sizeof(ms))
			DIE("write: %s", strerror(errno));
		usleep(20 * 1000);
	}
	sfd_client_free(c);
	exit(0);
}

static void
on_done(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	unsigned *done = userdata;

	(void)c;
	(void)id;
	(void)res;
	(*done)++;
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	unsigned stalled = 1000, conns = 2, rounds = 20, settle_ms = 2000, done = 0;
	int probe_uid = -1, big, small, pfd[2], status;
	static const struct option opts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"stalled", required_argument, NULL, 'n'},
	        {"conns", required_argument, NULL, 'c'},
	        {"rounds", required_argument, NULL, 'r'},
	        {"settle-ms", required_argument, NULL, 'w'},
	        {"probe-uid", required_argument, NULL, 'u'},
	        {0},
	};
	struct sfd_client **cl;
	uint64_t *ids;
	int *peers;
	double ms[ROUNDS_MAX];
	unsigned n = 0;
	struct rlimit rl;
	pid_t pid;

	for (int o; (o = getopt_long(argc, argv, "s:", opts, NULL)) != -1;) {
		switch (o) {
		case 's':
			path = optarg;
			break;
		case 'n':
			stalled = (unsigned)atoi(optarg);
			break;
		case 'c':
			conns = (unsigned)atoi(optarg);
			break;
		case 'r':
			rounds = (unsigned)atoi(optarg);
			break;
		case 'w':
			settle_ms = (unsigned)atoi(optarg);
			break;
		case 'u':
			probe_uid = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (!path || conns == 0 || rounds == 0 || rounds > ROUNDS_MAX)
		DIE("usage: fairness --socket PATH [--stalled N] [--conns K] [--rounds R] "
		    "[--settle-ms MS] [--probe-uid UID]");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	big = temp_file((off_t)1 << 30);
	small = temp_file(PROBE_SIZE);
	cl = calloc(conns, sizeof(*cl));
	ids = calloc(stalled, sizeof(*ids));
	peers = calloc(stalled, sizeof(*peers));
	if (!cl || !ids || !peers)
		DIE("out of memory");
	for (unsigned i = 0; i < conns; i++) {
		if (sfd_client_open(path, &cl[i]) < 0)
			DIE("cannot connect to %s", path);
		sfd_client_set_reconnect(cl[i], 0);
	}
	for (unsigned i = 0; i < stalled; i++) {
		int sv[2], r;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			DIE("socketpair: %s", strerror(errno));
		r = sfd_client_submit(cl[i % conns], sv[0], big, 0, 0, 0, &done, &ids[i]);
		if (r < 0)
			DIE("submit %u: %s", i, strerror(-r));
		close(sv[0]);
		peers[i] = sv[1]; /* never read */
		(void)sfd_client_dispatch(cl[i % conns], on_done);
	}
	usleep(settle_ms * 1000);
	if (done > 0)
		DIE("%u stalled transfers ended early", done);

	if (pipe2(pfd, O_CLOEXEC) < 0)
		DIE("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		DIE("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		probe(path, small, rounds, probe_uid, pfd[1]);
	}
	close(pfd[1]);
	while (n < rounds && read(pfd[0], &ms[n], sizeof(ms[n])) == sizeof(ms[n])) {
		printf("probe %u: %.1f ms\n", n, ms[n]);
		fflush(stdout);
		n++;
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    n != rounds)
		DIE("the probe failed");
	if (done > 0)
		DIE("%u stalled transfers ended while probing", done);

	/* Cancel the stalled ones and wait for their completions. */
	for (unsigned i = 0; i < stalled; i++)
		(void)sfd_client_cancel(cl[i % conns], ids[i]);
	while (done < stalled) {
		struct pollfd p[64];

		for (unsigned i = 0; i < conns && i < 64; i++)
			p[i] = (struct pollfd){.fd = sfd_client_get_fd(cl[i]), .events = POLLIN};
		if (poll(p, conns < 64 ? conns : 64, 10000) <= 0)
			DIE("stalled transfers not cancelled: %u of %u done", done, stalled);
		for (unsigned i = 0; i < conns; i++)
			if (sfd_client_dispatch(cl[i], on_done) < 0)
				DIE("dispatch failed");
	}
	for (unsigned i = 0; i < stalled; i++)
		close(peers[i]);
	for (unsigned i = 0; i < conns; i++)
		sfd_client_free(cl[i]);

	qsort(ms, n, sizeof(ms[0]), cmp_double);
	printf("stalled %u conns %u rounds %u: median %.1f ms, max %.1f ms\n", stalled, conns,
	       rounds, ms[n / 2], ms[n - 1]);
	free(cl);
	free(ids);
	free(peers);
	return 0;
}
