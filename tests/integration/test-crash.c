/*
 * test-crash.c - the daemon killed (SIGKILL) in the middle of a transfer: the
 * client library reports the outcome as unknown (not as a reset), and the
 * source's file position says exactly how many bytes left, which the
 * receiver, read to its end, confirms. Also one open file sent to many
 * sockets at once, the case that keeps private offsets.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define BIG (64 * MiB)
#define OFFSET 4096

/* Wait for the connection's end and return what dispatch reports then. */
static int
dispatch_until_error(struct sfd_client *c)
{
	int64_t deadline = now_ms() + 10000;

	for (;;) {
		struct pollfd p = {.fd = sfd_client_get_fd(c), .events = POLLIN};
		int r = sfd_client_dispatch(c, harness_on_done);

		if (r < 0)
			return r;
		if (now_ms() > deadline)
			fail_msg("the connection did not end");
		(void)poll(&p, 1, 1000);
	}
}

/* After the crash: read the receiver to its end; the position must be the
 * offset plus exactly the bytes it got, and those bytes the file's. */
static void
check_position_is_truth(struct sink *s, int idx, int dst, int src)
{
	uint64_t got;

	close(dst);
	sink_resume(s, idx);
	assert_true(sink_wait(s, idx, 30000));
	got = sink_bytes(s, idx);
	/* It had started, and was stopped well before the end. */
	assert_true(got > 0);
	assert_true(got < BIG - OFFSET);
	assert_int_equal(fd_pos(src), OFFSET + got);
	assert_received(s, idx, src, OFFSET, got);
}

static void
killed_mid_transfer(bool nonblocking_dst)
{
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sink_opts o = {.paused = true};
	struct done_slot slot = {0};
	char path[PATH_MAX];
	int src, dst, srv, idx;
	uint64_t id;

	tfile_create(path, BIG, 7);
	src = tfile_open(path, O_RDONLY);
	tcp_pair(nonblocking_dst, &dst, &srv);
	idx = sink_add(s, srv, &o);
	assert_int_equal(sfd_client_submit(c, dst, src, OFFSET, 0, 0, &slot, &id), 0);
	/* The receiver reads nothing yet: the transfer stalls part way. */
	assert_true(sink_wait_queued(s, idx, 64 * KiB, 10000));

	daemon_crash_and_restart();

	assert_int_equal(dispatch_until_error(c), -SFD_EOUTCOME_UNKNOWN);
	/* Reported once; the connection stays dead. */
	assert_int_equal(sfd_client_dispatch(c, harness_on_done), -ECONNRESET);
	assert_false(slot.done);
	assert_int_equal(sfd_client_in_flight(c), 0);
	check_position_is_truth(s, idx, dst, src);
	close(src);
	sink_free(s);
	sfd_client_free(c);
	assert_daemon_serves();
}

static void
test_killed_mid_transfer_loop(void **state)
{
	(void)state;
	killed_mid_transfer(true);
}

static void
test_killed_mid_transfer_worker(void **state)
{
	(void)state;
	killed_mid_transfer(false);
}

struct sync_call {
	struct sfd_client *c;
	int dst, src;
	int ret;
	struct sfd_result res;
};

static void *
sync_call_thread(void *arg)
{
	struct sync_call *sc = arg;

	sc->ret = sfd_client_sendfile(sc->c, sc->dst, sc->src, OFFSET, 0, 0, 30000, &sc->res);
	return NULL;
}

/* The blocking call neither sends the request again nor calls it a reset. */
static void
test_killed_during_blocking_call(void **state)
{
	struct sink *s = sink_new();
	struct sink_opts o = {.paused = true};
	struct sync_call sc = {.ret = 1};
	char path[PATH_MAX];
	pthread_t t;
	int srv, idx;

	(void)state;
	sc.c = client_open();
	tfile_create(path, BIG, 8);
	sc.src = tfile_open(path, O_RDONLY);
	tcp_pair(true, &sc.dst, &srv);
	idx = sink_add(s, srv, &o);
	assert_int_equal(pthread_create(&t, NULL, sync_call_thread, &sc), 0);
	assert_true(sink_wait_queued(s, idx, 64 * KiB, 10000));

	daemon_crash_and_restart();

	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(sc.ret, -SFD_EOUTCOME_UNKNOWN);
	check_position_is_truth(s, idx, sc.dst, sc.src);
	close(sc.src);
	sink_free(s);
	sfd_client_free(sc.c);
}

#define FANOUT 24

/*
 * One open file (one descriptor) sent to many sockets at once, as a file
 * cache does: the first transfer stalls on a paused receiver while the
 * others run and finish from private offsets, without moving the position
 * under it. Every receiver gets its own range, right.
 */
static void
one_file_many_sockets(bool nonblocking_first)
{
	const uint64_t size = 8 * MiB;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sink_opts paused = {.paused = true};
	struct done_slot slot[FANOUT] = {{0}};
	uint64_t off[FANOUT], want[FANOUT], id;
	int dst[FANOUT], idx[FANOUT];
	char path[PATH_MAX];
	unsigned done = 0;
	uint64_t rng = 99;
	int src;

	tfile_create(path, size, 11);
	src = tfile_open(path, O_RDONLY);
	for (int i = 0; i < FANOUT; i++) {
		int srv;

		off[i] = i == 0 ? 1000 : 0;
		if (i > 0)
			fill_random(&off[i], sizeof(off[i]), &rng);
		off[i] %= size - 256 * KiB;
		want[i] = i == 0 ? size - off[i] : 1 + off[i] % (256 * KiB);
		tcp_pair(i == 0 ? nonblocking_first : i % 3 != 0, &dst[i], &srv);
		idx[i] = sink_add(s, srv, i == 0 ? &paused : NULL);
		slot[i].counter = &done;
	}
	assert_int_equal(sfd_client_submit(c, dst[0], src, off[0], 0, 0, &slot[0], &id), 0);
	assert_true(sink_wait_queued(s, idx[0], 64 * KiB, 10000));
	for (int i = 1; i < FANOUT; i++)
		assert_int_equal(
		        sfd_client_submit(c, dst[i], src, off[i], want[i], 0, &slot[i], &id), 0);
	if (!pump(c, &done, FANOUT - 1, 30000))
		fail_msg("%u of %d transfers completed", done, FANOUT - 1);
	assert_false(slot[0].done);
	sink_resume(s, idx[0]);
	if (!pump(c, &done, FANOUT, 30000))
		fail_msg("the first transfer did not complete");
	for (int i = 0; i < FANOUT; i++) {
		assert_result(&slot[i].res, SFD_STATUS_OK, want[i], off[i] + want[i],
		              SFD_METHOD_SENDFILE);
		close(dst[i]);
		assert_received(s, idx[i], src, off[i], want[i]);
	}
	/* The last to finish set it. */
	assert_int_equal(fd_pos(src), size);
	close(src);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_one_file_many_sockets_loop(void **state)
{
	(void)state;
	one_file_many_sockets(true);
}

static void
test_one_file_many_sockets_worker(void **state)
{
	(void)state;
	one_file_many_sockets(false);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        HTEST(test_one_file_many_sockets_loop),  HTEST(test_one_file_many_sockets_worker),
	        HTEST(test_killed_mid_transfer_loop),    HTEST(test_killed_mid_transfer_worker),
	        HTEST(test_killed_during_blocking_call),
	};

	harness_init(argc, argv);
	return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
