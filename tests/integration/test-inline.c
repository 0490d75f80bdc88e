/*
 * test-inline.c - the in-caller path of libsendfiled: a small range to a
 * non-blocking socket is sent by the caller itself, and the daemon's
 * statistics show it never saw it; what the socket could not take is
 * finished by the daemon, with one combined result; SFD_NO_INLINE, a
 * threshold of 0 and a blocking destination go to the daemon; a closed peer
 * gives the daemon's own outcome and raises no SIGPIPE; a submit never
 * overtakes a transfer to the same destination in flight at the daemon, and
 * a completion made in the caller is delivered by dispatch.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* What the daemon says it did, from `sendfilectl stats --json`. */
struct dstats {
	unsigned long long requests;
	unsigned long long bytes_sent;
};

static unsigned long long
json_number(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	assert_non_null(p);
	return strtoull(p + strlen(pat), NULL, 10);
}

static struct dstats
daemon_stats(void)
{
	const char *ctl = getenv("SENDFILECTL_BIN");
	char cmd[PATH_MAX * 2], out[8192];
	struct dstats st;
	size_t n;
	FILE *f;

	assert_non_null(ctl);
	snprintf(cmd, sizeof(cmd), "%s --socket %s stats --json", ctl, daemon_socket());
	f = popen(cmd, "re");
	assert_non_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	assert_int_equal(pclose(f), 0);
	st.requests = json_number(out, "requests");
	st.bytes_sent = json_number(out, "bytes_sent");
	return st;
}

/* A loopback TCP pair with small buffers, so that a range of a few tens of
 * KiB does not fit while nobody reads: [0] the non-blocking destination. */
static void
small_pair(int *ret_client, int *ret_server)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int small = 4096;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int srv;

	assert_true(l >= 0 && cl >= 0);
	assert_int_equal(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(cl, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(connect(cl, (struct sockaddr *)&sa, sizeof(sa)), 0);
	srv = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(srv >= 0);
	close(l);
	assert_int_equal(fcntl(cl, F_SETFL, fcntl(cl, F_GETFL) | O_NONBLOCK), 0);
	*ret_client = cl;
	*ret_server = srv;
}

/* A whole small file, and a range of it, leave from the caller: the daemon
 * counts no request, the peer gets the bytes, the position follows. */
static void
test_small_file_sent_in_caller(void **state)
{
	char path[PATH_MAX];
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result res;
	struct dstats before, after;
	int src, dst, srv, idx;

	(void)state;
	tfile_create(path, 4 * KiB, 11);
	src = tfile_open(path, O_RDONLY);
	before = daemon_stats();

	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 4 * KiB, 4 * KiB, SFD_METHOD_SENDFILE);
	assert_true(res.flags & SFD_RESULT_INLINE);
	assert_false(res.flags & SFD_RESULT_SHORT_SOURCE);
	assert_int_equal(res.error, 0);
	assert_string_equal(res.message, "");
	assert_int_equal(fd_pos(src), 4 * KiB);
	assert_true(fd_flags(dst) & O_NONBLOCK);
	close(dst);
	assert_true(sink_wait(s, idx, 10000));
	assert_received(s, idx, src, 0, 4 * KiB);

	/* A range inside it, and a count past its end (a short source). */
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 100, 1000, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 1000, 1100, SFD_METHOD_SENDFILE);
	assert_true(res.flags & SFD_RESULT_INLINE);
	assert_int_equal(fd_pos(src), 1100);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 4000, 500, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 96, 4096, SFD_METHOD_SENDFILE);
	assert_true(res.flags & SFD_RESULT_INLINE);
	assert_true(res.flags & SFD_RESULT_SHORT_SOURCE);
	assert_int_equal(fd_pos(src), 4096);
	close(dst);
	assert_true(sink_wait(s, idx, 10000));
	assert_int_equal(sink_bytes(s, idx), 1096);

	after = daemon_stats();
	assert_int_equal(after.requests, before.requests);
	assert_int_equal(after.bytes_sent, before.bytes_sent);
	sink_free(s);
	close(src);
	sfd_client_free(c);
}

/* More than the socket takes while the peer is slow: the caller sends
 * what fits, the daemon the rest; one result counts both. */
static void
test_rest_finished_by_daemon(void **state)
{
	const uint64_t size = 60 * KiB, off = 1000, count = size - 2000;
	struct sink_opts slow = {.delay_ms = 20};
	char path[PATH_MAX];
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result res;
	struct dstats before, after;
	int src, dst, srv, idx;

	(void)state;
	tfile_create(path, size, 12);
	src = tfile_open(path, O_RDONLY);
	before = daemon_stats();
	small_pair(&dst, &srv);
	idx = sink_add(s, srv, &slow);
	assert_int_equal(sfd_client_sendfile(c, dst, src, off, count, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, count, off + count, SFD_METHOD_SENDFILE);
	assert_false(res.flags & SFD_RESULT_INLINE);
	assert_int_equal(fd_pos(src), off + count);
	close(dst);
	assert_true(sink_wait(s, idx, 20000));
	assert_received(s, idx, src, off, count);
	after = daemon_stats();
	/* One request, and the caller's share left before it. */
	assert_int_equal(after.requests, before.requests + 1);
	assert_true(after.bytes_sent - before.bytes_sent > 0);
	assert_true(after.bytes_sent - before.bytes_sent < count);

	/* The same through submit, to the end of the file, the receiver's
	 * buffer full first: the combined completion comes by dispatch. */
	{
		struct done_slot slot = {0};
		unsigned done = 0;
		uint64_t id;

		slot.counter = &done;
		before = daemon_stats();
		small_pair(&dst, &srv);
		idx = sink_add(s, srv, &(struct sink_opts){.paused = true});
		assert_int_equal(sfd_client_submit(c, dst, src, off, 0, 0, &slot, &id), 0);
		assert_int_equal(sfd_client_in_flight(c), 1);
		assert_int_equal(sfd_client_pending(c), 0);
		sink_resume(s, idx);
		assert_true(pump(c, &done, 1, 20000));
		assert_int_equal(slot.times, 1);
		assert_int_equal(slot.res.id, id);
		assert_result(&slot.res, SFD_STATUS_OK, size - off, size, SFD_METHOD_SENDFILE);
		assert_false(slot.res.flags & (SFD_RESULT_INLINE | SFD_RESULT_SHORT_SOURCE));
		assert_int_equal(fd_pos(src), size);
		close(dst);
		assert_true(sink_wait(s, idx, 20000));
		assert_received(s, idx, src, off, size - off);
		after = daemon_stats();
		assert_int_equal(after.requests, before.requests + 1);
		assert_true(after.bytes_sent - before.bytes_sent > 0);
		assert_true(after.bytes_sent - before.bytes_sent < size - off);
	}
	sink_free(s);
	close(src);
	sfd_client_free(c);
}

/* Every way of declining the path: the daemon does the whole transfer. */
static void
test_daemon_when_declined(void **state)
{
	char path[PATH_MAX];
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result res;
	struct dstats before, after;
	int src, dst, srv, idx;

	(void)state;
	tfile_create(path, 4 * KiB, 13);
	src = tfile_open(path, O_RDONLY);
	for (int way = 0; way < 4; way++) {
		unsigned flags = way == 0 ? SFD_NO_INLINE : 0;

		before = daemon_stats();
		/* 1: threshold 0; 2: a blocking destination; 3: a range one
		 * byte over the threshold. */
		assert_int_equal(sfd_client_set_inline_max(c, way == 1 ? 0 : 4 * KiB - 1), 0);
		tcp_pair(way != 2, &dst, &srv);
		idx = sink_add(s, srv, NULL);
		assert_int_equal(sfd_client_sendfile(c, dst, src, 0, way == 3 ? 4 * KiB : 0, flags,
		                                     -1, &res),
		                 0);
		assert_result(&res, SFD_STATUS_OK, 4 * KiB, 4 * KiB, SFD_METHOD_SENDFILE);
		assert_false(res.flags & SFD_RESULT_INLINE);
		assert_int_equal(fd_pos(src), 4 * KiB);
		close(dst);
		assert_true(sink_wait(s, idx, 10000));
		assert_received(s, idx, src, 0, 4 * KiB);
		after = daemon_stats();
		assert_int_equal(after.requests, before.requests + 1);
		assert_int_equal(after.bytes_sent, before.bytes_sent + 4 * KiB);
		lseek(src, 0, SEEK_SET);
	}
	/* An unknown flag is still refused, before anything is sent. */
	tcp_pair(true, &dst, &srv);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, 1u << 30, -1, &res), -EINVAL);
	assert_int_equal(fd_pos(src), 0);
	close(dst);
	close(srv);
	sink_free(s);
	close(src);
	sfd_client_free(c);
}

static volatile sig_atomic_t sigpipes;

static void
on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

/*
 * A destination whose write side is shut down (EPIPE, which raises SIGPIPE)
 * and one whose peer reset it: the outcome through the caller equals the
 * daemon's, and no SIGPIPE reaches the process, whether it has a handler or
 * has the signal blocked.
 */
static void
test_closed_peer_same_outcome_no_sigpipe(void **state)
{
	struct sigaction sa = {.sa_handler = on_sigpipe}, old;
	char path[PATH_MAX];
	struct sfd_client *c = client_open();
	struct sfd_result res[2];
	sigset_t pipe_set, mask;
	int src;

	(void)state;
	tfile_create(path, 4 * KiB, 14);
	src = tfile_open(path, O_RDONLY);
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
	sigpipes = 0;
	for (int blocked = 0; blocked < 2; blocked++) {
		if (blocked)
			pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
		for (int reset = 0; reset < 2; reset++) {
			for (int path_no = 0; path_no < 2; path_no++) {
				struct linger lg = {.l_onoff = 1, .l_linger = 0};
				int dst, srv;

				tcp_pair(true, &dst, &srv);
				if (reset) {
					/* An abortive close: the next send meets
					 * ECONNRESET, the ones after it EPIPE. */
					setsockopt(srv, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
					close(srv);
					srv = -1;
					sleep_ms(20);
				} else {
					shutdown(dst, SHUT_WR);
				}
				assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0,
				                                     path_no ? SFD_NO_INLINE : 0,
				                                     -1, &res[path_no]),
				                 0);
				close(dst);
				if (srv >= 0)
					close(srv);
			}
			assert_int_equal(res[0].status, SFD_STATUS_PEER_CLOSED);
			assert_int_equal(res[0].status, res[1].status);
			assert_int_equal(res[0].error, res[1].error);
			assert_string_equal(res[0].message, res[1].message);
			assert_int_equal(res[0].bytes_sent, 0);
			assert_int_equal(res[0].final_offset, 0);
			assert_int_equal(res[0].method, res[1].method);
			assert_int_equal(fd_pos(src), 0);
		}
		if (blocked) {
			sigset_t pending;

			/* Nothing left pending for the caller to receive. */
			assert_int_equal(sigpending(&pending), 0);
			assert_false(sigismember(&pending, SIGPIPE));
			pthread_sigmask(SIG_UNBLOCK, &pipe_set, NULL);
		}
		/* The mask is the caller's again. */
		pthread_sigmask(SIG_BLOCK, NULL, &mask);
		assert_false(sigismember(&mask, SIGPIPE));
	}
	assert_int_equal(sigpipes, 0);
	assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
	close(src);
	sfd_client_free(c);
}

/*
 * Sources the caller's sendfile() cannot use, or ranges it answers without
 * sending: the outcome, field by field, is the daemon's own (SFD_NO_INLINE).
 */
static void
test_same_outcome_as_daemon(void **state)
{
	char path[PATH_MAX];
	struct sfd_client *c = client_open();
	struct sfd_result res[2];
	int pipefd[2];

	(void)state;
	tfile_create(path, 4 * KiB, 20);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	assert_int_equal(write(pipefd[1], "0123456789", 10), 10);
	for (int kind = 0; kind < 5; kind++) {
		for (int way = 0; way < 2; way++) {
			uint64_t off = 0, count = 0;
			int src = -1, dst, srv;

			switch (kind) {
			case 0: /* not open for reading */
				src = tfile_open(path, O_WRONLY);
				break;
			case 1: /* a directory */
				src = tfile_open(harness_tmpdir(), O_RDONLY | O_DIRECTORY);
				break;
			case 2: /* past the end, with a count */
				src = tfile_open(path, O_RDONLY);
				off = 5 * KiB;
				count = 100;
				break;
			case 3: /* a count past the end */
				src = tfile_open(path, O_RDONLY);
				off = 4 * KiB - 10;
				count = 100;
				break;
			case 4: /* a pipe, which has no offsets (spliced by the daemon) */
				src = pipefd[0];
				count = 5;
				break;
			}
			tcp_pair(true, &dst, &srv);
			assert_int_equal(sfd_client_sendfile(c, dst, src, off, count,
			                                     way ? SFD_NO_INLINE : 0, -1,
			                                     &res[way]),
			                 0);
			close(dst);
			close(srv);
			if (src != pipefd[0])
				close(src);
		}
		assert_int_equal(res[0].status, res[1].status);
		assert_int_equal(res[0].error, res[1].error);
		assert_string_equal(res[0].message, res[1].message);
		assert_int_equal(res[0].bytes_sent, res[1].bytes_sent);
		assert_int_equal(res[0].final_offset, res[1].final_offset);
		assert_int_equal(res[0].method, res[1].method);
		assert_int_equal(res[0].flags & ~SFD_RESULT_INLINE, res[1].flags);
		/* Only the ranges it could answer itself are the caller's. */
		assert_int_equal(!!(res[0].flags & SFD_RESULT_INLINE), kind == 2 || kind == 3);
	}
	close(pipefd[0]);
	close(pipefd[1]);
	sfd_client_free(c);
}

/*
 * While a submitted transfer to a socket is in flight at the daemon (its
 * source, a pipe, has nothing yet: the socket has room), a small submit to
 * the same socket goes behind it, not through the caller; one to another
 * socket, from another file, is sent in the caller at once and its
 * completion waits for dispatch like any other.
 */
static void
test_submit_keeps_order(void **state)
{
	const uint64_t small = 4 * KiB;
	char small_path[PATH_MAX], other_path[PATH_MAX];
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct done_slot slots[3] = {0};
	unsigned done = 0;
	uint64_t ids[3];
	uint8_t want[32], got[32], head[1000];
	int pipefd[2], small_src, other_src, dst, srv, dst2, srv2, idx, idx2;
	uint64_t seed = 19;

	(void)state;
	tfile_create(small_path, small, 16);
	tfile_create(other_path, small, 17);
	small_src = tfile_open(small_path, O_RDONLY);
	other_src = tfile_open(other_path, O_RDONLY);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	fill_random(head, sizeof(head), &seed);
	for (int i = 0; i < 3; i++)
		slots[i].counter = &done;

	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	tcp_pair(true, &dst2, &srv2);
	idx2 = sink_add(s, srv2, NULL);
	/* A pipe with nothing in it: the daemon's, waiting for data. */
	assert_int_equal(sfd_client_submit(c, dst, pipefd[0], 0, 0, 0, &slots[0], &ids[0]), 0);
	assert_int_equal(sfd_client_submit(c, dst, small_src, 0, 0, 0, &slots[1], &ids[1]), 0);
	assert_int_equal(sfd_client_in_flight(c), 2);
	assert_int_equal(sfd_client_pending(c), 0);
	assert_int_equal(fd_pos(small_src), 0);

	assert_int_equal(sfd_client_submit(c, dst2, other_src, 0, 0, 0, &slots[2], &ids[2]), 0);
	assert_int_equal(sfd_client_in_flight(c), 2);
	assert_int_equal(sfd_client_pending(c), 1);
	assert_int_not_equal(ids[2], ids[0]);
	assert_int_not_equal(ids[2], ids[1]);
	assert_false(slots[2].done);
	assert_int_equal(sfd_client_dispatch(c, harness_on_done), 1);
	assert_true(slots[2].done);
	assert_int_equal(slots[2].res.id, ids[2]);
	assert_result(&slots[2].res, SFD_STATUS_OK, small, small, SFD_METHOD_SENDFILE);
	assert_true(slots[2].res.flags & SFD_RESULT_INLINE);
	assert_int_equal(fd_pos(other_src), small);
	close(dst2);
	assert_true(sink_wait(s, idx2, 10000));
	assert_received(s, idx2, other_src, 0, small);

	/* The pipe's data, its end, and then the file after it. */
	assert_int_equal(write(pipefd[1], head, sizeof(head)), (ssize_t)sizeof(head));
	close(pipefd[1]);
	assert_true(pump(c, &done, 3, 30000));
	for (int i = 0; i < 3; i++)
		assert_int_equal(slots[i].times, 1);
	assert_int_equal(slots[0].res.status, SFD_STATUS_OK);
	assert_int_equal(slots[0].res.bytes_sent, sizeof(head));
	assert_result(&slots[1].res, SFD_STATUS_OK, small, small, SFD_METHOD_SENDFILE);
	assert_false(slots[1].res.flags & SFD_RESULT_INLINE);
	assert_int_equal(fd_pos(small_src), small);
	close(dst);
	assert_true(sink_wait(s, idx, 30000));

	{
		uint8_t buf[4 * KiB];
		struct sha256 h;

		assert_int_equal(pread(small_src, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
		sha256_init(&h);
		sha256_update(&h, head, sizeof(head));
		sha256_update(&h, buf, sizeof(buf));
		sha256_final(&h, want);
		assert_int_equal(sink_bytes(s, idx), sizeof(head) + small);
		sink_digest(s, idx, got);
		assert_memory_equal(got, want, 32);
	}
	sink_free(s);
	close(pipefd[0]);
	close(small_src);
	close(other_src);
	sfd_client_free(c);
}

/* In non-blocking mode a submit never sends in the caller (a send begun
 * there could not be taken back if the connection were full). */
static void
test_nonblocking_client_uses_daemon(void **state)
{
	char path[PATH_MAX];
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct done_slot slot = {0};
	unsigned done = 0;
	uint64_t id;
	int src, dst, srv, idx;

	(void)state;
	slot.counter = &done;
	tfile_create(path, 4 * KiB, 18);
	src = tfile_open(path, O_RDONLY);
	sfd_client_set_nonblocking(c, true);
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	assert_int_equal(sfd_client_submit(c, dst, src, 0, 0, 0, &slot, &id), 0);
	assert_int_equal(sfd_client_in_flight(c), 1);
	assert_true(pump(c, &done, 1, 10000));
	assert_result(&slot.res, SFD_STATUS_OK, 4 * KiB, 4 * KiB, SFD_METHOD_SENDFILE);
	assert_false(slot.res.flags & SFD_RESULT_INLINE);
	close(dst);
	assert_true(sink_wait(s, idx, 10000));
	assert_received(s, idx, src, 0, 4 * KiB);
	sink_free(s);
	close(src);
	sfd_client_free(c);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        HTEST(test_small_file_sent_in_caller),
	        HTEST(test_rest_finished_by_daemon),
	        HTEST(test_daemon_when_declined),
	        HTEST(test_closed_peer_same_outcome_no_sigpipe),
	        HTEST(test_same_outcome_as_daemon),
	        HTEST(test_submit_keeps_order),
	        HTEST(test_nonblocking_client_uses_daemon),
	};

	harness_init(argc, argv);
	return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
