/*
 * restart-client.c - a client for test_restart.py, which restarts the daemon
 * under it.
 *
 *   restart-client sync SOCKET FILE N PACE_US
 *      N blocking sfd_client_sendfile() calls on one client, each a different
 *      range of FILE into a fresh socket pair, its bytes read back and
 *      compared with the file, its result and the file position checked.
 *      The reader waits PACE_US before reading, so that transfers larger
 *      than a socket buffer are still in flight when the daemon is told to
 *      stop. Prints "ok I" after each; exits 0 when all N succeeded, else
 *      prints what went wrong and exits 1.
 *
 *   restart-client async SOCKET FILE
 *      The documented way for event loops: submits a transfer that cannot
 *      finish until the peer reads, says "started", and waits for a line on
 *      stdin (the daemon has been told to stop). Then submits another on the
 *      same client, expects SFD_STATUS_SHUTTING_DOWN for it with nothing sent,
 *      resubmits it on a new client, and expects both to complete.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "sendfiled.h"

static unsigned char *file_data;
static size_t file_size;
static unsigned pace_us;

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stdout, "FAIL: " __VA_ARGS__);                                             \
		fputc('\n', stdout);                                                               \
		exit(1);                                                                           \
	} while (0)

struct reader {
	pthread_t thread;
	int fd;
	size_t want;
	unsigned char *buf;
	size_t got;
	int err;
};

/* Read until @want bytes or end of stream (the daemon and we closed the
 * other end). */
static void *
read_all(void *arg)
{
	struct reader *r = arg;

	if (pace_us)
		usleep(pace_us);
	while (r->got < r->want) {
		ssize_t n = read(r->fd, r->buf + r->got, r->want - r->got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->err = n < 0 ? errno : 0;
			break;
		}
		r->got += (size_t)n;
	}
	return NULL;
}

static void
start_reader(struct reader *r, int fd, size_t want)
{
	struct timeval tv = {.tv_sec = 30};

	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->want = want;
	r->buf = malloc(want ? want : 1);
	if (!r->buf)
		FAIL("out of memory");
	/* A lost transfer must fail the test, not hang it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (pthread_create(&r->thread, NULL, read_all, r) != 0)
		FAIL("pthread_create");
}

static void
check_bytes(struct reader *r, uint64_t offset, const char *what)
{
	pthread_join(r->thread, NULL);
	if (r->got != r->want)
		FAIL("%s: the peer received %zu bytes of %zu (%s)", what, r->got, r->want,
		     strerror(r->err));
	if (memcmp(r->buf, file_data + offset, r->want) != 0)
		FAIL("%s: the peer received other bytes than the file's", what);
	free(r->buf);
	close(r->fd);
}

static int
open_file(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		FAIL("cannot open %s: %s", path, strerror(errno));
	file_size = (size_t)st.st_size;
	file_data = malloc(file_size);
	if (!file_data || pread(fd, file_data, file_size, 0) != (ssize_t)file_size)
		FAIL("cannot read %s", path);
	return fd;
}

static int
run_sync(const char *sock, const char *path, unsigned n)
{
	struct sfd_client *c;
	int file = open_file(path);
	int r;

	r = sfd_client_open(sock, &c);
	if (r < 0)
		FAIL("sfd_client_open: %s", strerror(-r));
	for (unsigned i = 0; i < n; i++) {
		/* Ranges of every size up to 1 MiB, anywhere in the file. */
		uint64_t offset = ((uint64_t)i * 7919u * 4099u) % (file_size / 2);
		uint64_t count = 1 + ((uint64_t)i * 104729u) % (1u << 20);
		struct sfd_result res;
		struct reader rd;
		char what[64];
		int sp[2];

		if (offset + count > file_size)
			count = file_size - offset;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
			FAIL("socketpair: %s", strerror(errno));
		/* Both kinds of destination: a non-blocking one is served on
		 * the daemon's loop, a blocking one on a worker thread. */
		if (i % 2)
			fcntl(sp[0], F_SETFL, O_NONBLOCK);
		start_reader(&rd, sp[1], (size_t)count);
		snprintf(what, sizeof(what), "request %u", i);
		r = sfd_client_sendfile(c, sp[0], file, offset, count, 0, 30000, &res);
		close(sp[0]);
		if (r < 0)
			FAIL("%s: sfd_client_sendfile: %s", what, strerror(-r));
		if (res.status != SFD_STATUS_OK)
			FAIL("%s: status %s (%s): %s", what, sfd_status_str(res.status),
			     strerror(res.error), res.message);
		if (res.bytes_sent != count || res.final_offset != offset + count)
			FAIL("%s: %llu bytes sent, final offset %llu; wanted %llu and %llu", what,
			     (unsigned long long)res.bytes_sent,
			     (unsigned long long)res.final_offset, (unsigned long long)count,
			     (unsigned long long)(offset + count));
		if (lseek(file, 0, SEEK_CUR) != (off_t)(offset + count))
			FAIL("%s: file position %lld, wanted %llu", what,
			     (long long)lseek(file, 0, SEEK_CUR),
			     (unsigned long long)(offset + count));
		check_bytes(&rd, offset, what);
		printf("ok %u\n", i);
		fflush(stdout);
	}
	sfd_client_free(c);
	close(file);
	printf("done %u\n", n);
	return 0;
}

struct done {
	bool seen;
	struct sfd_result res;
};

static void
on_done(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	struct done *d = userdata;

	(void)c;
	(void)id;
	d->seen = true;
	d->res = *res;
}

/* Dispatch until @d has its completion. */
static void
wait_done(struct sfd_client *c, struct done *d, const char *what)
{
	while (!d->seen) {
		struct pollfd p = {.fd = sfd_client_get_fd(c), .events = POLLIN};
		int r;

		if (poll(&p, 1, 30000) <= 0)
			FAIL("%s: no completion within 30 s", what);
		r = sfd_client_dispatch(c, on_done);
		if (r < 0 && !d->seen)
			FAIL("%s: sfd_client_dispatch: %s", what, strerror(-r));
	}
}

static int
run_async(const char *sock, const char *path)
{
	struct done first = {0}, second = {0}, again = {0};
	struct sfd_client *c, *c2;
	struct reader r1, r2;
	int file = open_file(path);
	int sp1[2], sp2[2], r;
	uint64_t id;
	char line[16];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp1) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp2) < 0)
		FAIL("socketpair: %s", strerror(errno));
	r = sfd_client_open(sock, &c);
	if (r < 0)
		FAIL("sfd_client_open: %s", strerror(-r));
	/* Far more than a socket buffer holds, and nobody reads yet: in
	 * flight until we start the reader. */
	fcntl(sp1[0], F_SETFL, O_NONBLOCK);
	r = sfd_client_submit(c, sp1[0], file, 0, file_size, 0, &first, &id);
	if (r < 0)
		FAIL("submit: %s", strerror(-r));
	/* "Started" once the daemon is sending: a request still queued on the
	 * connection when the stop comes would be refused, not drained. */
	{
		struct pollfd p = {.fd = sp1[1], .events = POLLIN};

		if (poll(&p, 1, 30000) <= 0)
			FAIL("the first transfer did not start within 30 s");
	}
	printf("started\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		FAIL("no go-ahead on stdin");

	/* The daemon is draining: this request is refused, nothing sent. */
	r = sfd_client_submit(c, sp2[0], file, 0, 4096, 0, &second, &id);
	if (r < 0)
		FAIL("second submit: %s", strerror(-r));
	wait_done(c, &second, "second request");
	if (second.res.status != SFD_STATUS_SHUTTING_DOWN || second.res.bytes_sent != 0)
		FAIL("second request: status %s, %llu bytes sent; wanted shutting down, 0",
		     sfd_status_str(second.res.status), (unsigned long long)second.res.bytes_sent);
	printf("shutting down\n");
	fflush(stdout);

	/* Resubmit on a new client: the next daemon serves it. */
	r = sfd_client_open(sock, &c2);
	if (r < 0)
		FAIL("sfd_client_open again: %s", strerror(-r));
	start_reader(&r2, sp2[1], 4096);
	r = sfd_client_submit(c2, sp2[0], file, 0, 4096, 0, &again, &id);
	if (r < 0)
		FAIL("resubmit: %s", strerror(-r));
	close(sp2[0]);

	/* Let the first transfer finish on the old daemon, which drains it. */
	start_reader(&r1, sp1[1], file_size);
	wait_done(c, &first, "first request");
	close(sp1[0]);
	if (first.res.status != SFD_STATUS_OK || first.res.bytes_sent != file_size)
		FAIL("first request: status %s, %llu bytes sent", sfd_status_str(first.res.status),
		     (unsigned long long)first.res.bytes_sent);
	check_bytes(&r1, 0, "first request");

	wait_done(c2, &again, "resubmitted request");
	if (again.res.status != SFD_STATUS_OK || again.res.bytes_sent != 4096)
		FAIL("resubmitted request: status %s, %llu bytes sent",
		     sfd_status_str(again.res.status), (unsigned long long)again.res.bytes_sent);
	check_bytes(&r2, 0, "resubmitted request");

	sfd_client_free(c);
	sfd_client_free(c2);
	close(file);
	printf("done\n");
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "sync") == 0) {
		pace_us = (unsigned)strtoul(argv[5], NULL, 10);
		return run_sync(argv[2], argv[3], (unsigned)strtoul(argv[4], NULL, 10));
	}
	if (argc == 4 && strcmp(argv[1], "async") == 0)
		return run_async(argv[2], argv[3]);
	fprintf(stderr, "usage: restart-client sync SOCKET FILE N PACE_US | async SOCKET FILE\n");
	return 2;
}
