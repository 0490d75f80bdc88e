/*
 * test-concurrency.c - many transfers at once, on one connection and on many;
 * a blocking destination that must not hold the others up; cancelling
 * transfers on the loop and on worker threads; a client that goes away with
 * transfers in flight; transfers to one destination, one after the other.
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

/* One transfer of a range of a file to its own TCP receiver. */
struct xfer_case {
	int src, dst, idx;
	uint64_t off, count; /* count 0: to end of file */
	uint64_t want;       /* bytes it must send */
	bool short_source;
	uint64_t id;
	struct done_slot slot;
};

static void
case_setup(struct xfer_case *x, const char *path, uint64_t size, uint64_t off, uint64_t count,
           bool nonblock, struct sink *s, const struct sink_opts *o)
{
	int srv;
	uint64_t avail = off < size ? size - off : 0;

	memset(x, 0, sizeof(*x));
	x->src = tfile_open(path, O_RDONLY);
	tcp_pair(nonblock, &x->dst, &srv);
	x->idx = sink_add(s, srv, o);
	x->off = off;
	x->count = count;
	x->want = count && count < avail ? count : avail;
	x->short_source = count > avail;
}

/* The reply, the position, and (after closing our end) the bytes received. */
static void
case_check(struct xfer_case *x, struct sink *s)
{
	const struct sfd_result *r = &x->slot.res;

	assert_true(x->slot.done);
	assert_int_equal(x->slot.times, 1);
	assert_int_equal(r->id, x->id);
	assert_result(r, SFD_STATUS_OK, x->want, x->off + x->want,
	              x->want ? SFD_METHOD_SENDFILE : SFD_METHOD_NONE);
	assert_int_equal(!!(r->flags & SFD_RESULT_SHORT_SOURCE), x->short_source);
	if (x->want)
		assert_int_equal(fd_pos(x->src), x->off + x->want);
	else
		assert_int_equal(fd_pos(x->src), 0);
	close(x->dst);
	x->dst = -1;
	assert_received(s, x->idx, x->src, x->off, x->want);
	close(x->src);
	x->src = -1;
}

/* Ranges of every shape: small and large, to end of file, past it, empty. */
static void
pick_range(uint64_t *rng, uint64_t size, unsigned i, uint64_t *ret_off, uint64_t *ret_count)
{
	uint64_t r[2];

	fill_random(r, sizeof(r), rng);
	switch (i % 10) {
	case 0: /* to end of file from near its end */
		*ret_off = size - r[0] % (64 * KiB);
		*ret_count = 0;
		break;
	case 1: /* past end of file */
		*ret_off = size - r[0] % (32 * KiB);
		*ret_count = 64 * KiB;
		break;
	case 2: /* beyond it */
		*ret_off = size + r[0] % 100;
		*ret_count = i % 20 == 2 ? 0 : 10;
		break;
	default:
		*ret_off = r[0] % (size - 256 * KiB);
		*ret_count = 1 + r[1] % (256 * KiB);
		break;
	}
}

#define MANY 200
#define CONNS 20

/*
 * 200 transfers in flight on one connection; every tenth destination is
 * blocking (a worker thread), the rest are served on the loop.
 */
static void
test_many_on_one_connection(void **state)
{
	const uint64_t size = 4 * MiB;
	struct xfer_case *x = calloc(MANY, sizeof(*x));
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	char path[PATH_MAX];
	uint64_t rng = 42;
	unsigned done = 0;

	(void)state;
	assert_non_null(x);
	tfile_create(path, size, 10);
	for (unsigned i = 0; i < MANY; i++) {
		uint64_t off, count;

		pick_range(&rng, size, i, &off, &count);
		case_setup(&x[i], path, size, off, count, i % 10 != 5, s, NULL);
		x[i].slot.counter = &done;
	}
	for (unsigned i = 0; i < MANY; i++)
		assert_int_equal(sfd_client_submit(c, x[i].dst, x[i].src, x[i].off, x[i].count, 0,
		                                   &x[i].slot, &x[i].id),
		                 0);
	if (!pump(c, &done, MANY, 30000))
		fail_msg("%u of %d transfers completed", done, MANY);
	assert_int_equal(sfd_client_in_flight(c), 0);
	assert_int_equal(sfd_client_pending(c), 0);
	for (unsigned i = 0; i < MANY; i++)
		case_check(&x[i], s);
	sink_free(s);
	sfd_client_free(c);
	free(x);
}

#define BURST 64

static struct {
	unsigned replies;
	int worst; /* most descriptors held beyond the requests still unanswered */
} burst;

static void
on_burst_done(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	int extra;

	harness_on_done(c, id, res, userdata);
	burst.replies++;
	/* Beyond its baseline, the daemon holds our connection and the two
	 * descriptors of each request not answered yet. */
	extra = daemon_fd_count() - daemon_baseline() - 1 - 2 * (int)(BURST - burst.replies);
	if (extra > burst.worst)
		burst.worst = extra;
}

/*
 * A burst of small transfers on one connection, which the daemon serves in
 * batches: when a reply arrives, the daemon no longer holds that request's
 * descriptors (a client that closes its socket then ends the stream at
 * once), whichever batch it came in.
 */
static void
test_burst_replies_after_release(void **state)
{
	struct xfer_case *x = calloc(BURST, sizeof(*x));
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	char path[PATH_MAX];
	unsigned done = 0;
	int64_t deadline = now_ms() + 30000;

	(void)state;
	assert_non_null(x);
	tfile_create(path, 256 * KiB, 11);
	for (unsigned i = 0; i < BURST; i++) {
		case_setup(&x[i], path, 256 * KiB, (i % 8) * 4 * KiB, 4 * KiB, true, s, NULL);
		x[i].slot.counter = &done;
	}
	memset(&burst, 0, sizeof(burst));
	for (unsigned i = 0; i < BURST; i++)
		assert_int_equal(sfd_client_submit(c, x[i].dst, x[i].src, x[i].off, x[i].count, 0,
		                                   &x[i].slot, &x[i].id),
		                 0);
	while (done < BURST) {
		struct pollfd p = {.fd = sfd_client_get_fd(c), .events = POLLIN};

		assert_true(now_ms() < deadline);
		(void)poll(&p, 1, 100);
		assert_true(sfd_client_dispatch(c, on_burst_done) >= 0);
	}
	assert_int_equal(burst.replies, BURST);
	assert_int_equal(burst.worst, 0);
	for (unsigned i = 0; i < BURST; i++)
		case_check(&x[i], s);
	sink_free(s);
	sfd_client_free(c);
	free(x);
}

struct conn_thread {
	pthread_t thread;
	struct xfer_case *x;
	unsigned n;
	int err; /* what went wrong, as a negative errno */
	const char *what;
};

/* No cmocka assertions off the main thread: record, and let it check. */
static void *
conn_run(void *arg)
{
	struct conn_thread *t = arg;
	struct sfd_client *c = NULL;
	unsigned done = 0;
	int64_t deadline = now_ms() + 30000;
	int r;

	r = sfd_client_open(daemon_socket(), &c);
	if (r < 0) {
		t->err = r;
		t->what = "open";
		return NULL;
	}
	for (unsigned i = 0; i < t->n; i++) {
		t->x[i].slot.counter = &done;
		r = sfd_client_submit(c, t->x[i].dst, t->x[i].src, t->x[i].off, t->x[i].count, 0,
		                      &t->x[i].slot, &t->x[i].id);
		if (r < 0) {
			t->err = r;
			t->what = "submit";
			goto out;
		}
	}
	while (done < t->n) {
		struct pollfd p = {.fd = sfd_client_get_fd(c), .events = POLLIN};

		r = sfd_client_dispatch(c, harness_on_done);
		if (r < 0) {
			t->err = r;
			t->what = "dispatch";
			goto out;
		}
		if (done == t->n)
			break;
		if (now_ms() > deadline) {
			t->err = -ETIMEDOUT;
			t->what = "completions";
			goto out;
		}
		(void)poll(&p, 1, 100);
	}
out:
	sfd_client_free(c);
	return NULL;
}

/* 200 transfers over 20 connections, one client per thread. */
static void
test_many_over_many_connections(void **state)
{
	const uint64_t size = 4 * MiB;
	struct xfer_case *x = calloc(MANY, sizeof(*x));
	struct conn_thread t[CONNS];
	struct sink *s = sink_new();
	char path[PATH_MAX];
	uint64_t rng = 4242;

	(void)state;
	assert_non_null(x);
	tfile_create(path, size, 11);
	for (unsigned i = 0; i < MANY; i++) {
		uint64_t off, count;

		pick_range(&rng, size, i, &off, &count);
		case_setup(&x[i], path, size, off, count, i % 10 != 7, s, NULL);
	}
	for (unsigned k = 0; k < CONNS; k++) {
		t[k] = (struct conn_thread){.x = x + k * (MANY / CONNS), .n = MANY / CONNS};
		assert_int_equal(pthread_create(&t[k].thread, NULL, conn_run, &t[k]), 0);
	}
	for (unsigned k = 0; k < CONNS; k++) {
		assert_int_equal(pthread_join(t[k].thread, NULL), 0);
		if (t[k].err)
			fail_msg("connection %u: %s: %s", k, t[k].what, strerror(-t[k].err));
	}
	for (unsigned i = 0; i < MANY; i++)
		case_check(&x[i], s);
	sink_free(s);
	free(x);
}

/*
 * A blocking destination whose receiver reads slowly occupies a worker
 * thread, not the loop: transfers of other clients, on the loop and on other
 * workers, complete meanwhile.
 */
static void
test_blocking_dst_does_not_block_others(void **state)
{
	const struct sink_opts slow = {.delay_ms = 20};
	struct sfd_client *a = client_open(), *b = client_open();
	struct sink *s = sink_new();
	char big[PATH_MAX], small[PATH_MAX];
	struct xfer_case xa, xb, xc;
	unsigned done_a = 0, done_b = 0;
	int fl;

	(void)state;
	tfile_create(big, 16 * MiB, 12);
	tfile_create(small, 4 * MiB, 13);
	case_setup(&xa, big, 16 * MiB, 0, 0, false, s, &slow);
	case_setup(&xb, small, 4 * MiB, 0, 0, true, s, NULL);
	case_setup(&xc, small, 4 * MiB, 1, 3 * MiB, false, s, NULL);
	xa.slot.counter = &done_a;
	xb.slot.counter = &done_b;
	xc.slot.counter = &done_b;
	fl = fd_flags(xa.dst);
	assert_false(fl & O_NONBLOCK);

	assert_int_equal(sfd_client_submit(a, xa.dst, xa.src, 0, 0, 0, &xa.slot, &xa.id), 0);
	/* The slow transfer has started: its receiver has bytes to read. */
	assert_true(sink_wait_queued(s, xa.idx, 1, 5000) || sink_bytes(s, xa.idx) > 0);

	assert_int_equal(sfd_client_submit(b, xb.dst, xb.src, 0, 0, 0, &xb.slot, &xb.id), 0);
	assert_int_equal(sfd_client_submit(b, xc.dst, xc.src, 1, 3 * MiB, 0, &xc.slot, &xc.id), 0);
	if (!pump(b, &done_b, 2, 10000)) {
		sink_resume(s, xa.idx);
		fail_msg("a slow blocking destination held up other transfers");
	}
	/* ... while the slow one is still going. */
	assert_int_equal(sfd_client_dispatch(a, harness_on_done), 0);
	assert_int_equal(sfd_client_in_flight(a), 1);
	assert_false(xa.slot.done);
	assert_true(sink_bytes(s, xa.idx) < 16 * MiB);
	case_check(&xb, s);
	case_check(&xc, s);

	sink_resume(s, xa.idx);
	assert_true(pump(a, &done_a, 1, 20000));
	/* Still blocking: the daemon left O_NONBLOCK alone. */
	assert_int_equal(fd_flags(xa.dst), fl);
	case_check(&xa, s);
	sink_free(s);
	sfd_client_free(a);
	sfd_client_free(b);
}

/*
 * Cancel a transfer whose receiver does not read: it completes CANCELLED with
 * the bytes sent so far, the position there, and the receiver eventually
 * reads exactly those bytes.
 */
static void
cancel_one(bool nonblock)
{
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 64 * MiB, off = 4096;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	char path[PATH_MAX];
	struct xfer_case x;
	unsigned done = 0;
	const struct sfd_result *r = &x.slot.res;

	tfile_create(path, size, 14);
	case_setup(&x, path, size, off, 0, nonblock, s, &paused);
	x.slot.counter = &done;
	assert_int_equal(sfd_client_submit(c, x.dst, x.src, off, 0, 0, &x.slot, &x.id), 0);
	assert_true(sink_wait_queued(s, x.idx, 1, 5000));
	/* Let the kernel buffers fill: the transfer is then stuck, mid-file. */
	sleep_ms(50);
	assert_int_equal(sfd_client_dispatch(c, harness_on_done), 0);

	assert_int_equal(sfd_client_cancel(c, x.id), 0);
	/* A worker blocked in sendfile(2) is interrupted, not waited for:
	 * the receiver is paused, so the transfer ends only if it is. */
	if (!pump(c, &done, 1, 20000))
		fail_msg("the cancelled transfer did not complete");
	if (r->status != SFD_STATUS_CANCELLED)
		fail_msg("status %s (%s)", sfd_status_str(r->status), r->message);
	assert_int_equal(r->error, ECANCELED);
	assert_true(r->bytes_sent > 0);
	assert_true(r->bytes_sent < size - off);
	assert_int_equal(r->final_offset, off + r->bytes_sent);
	assert_int_equal(r->method, SFD_METHOD_SENDFILE);
	assert_int_equal(fd_pos(x.src), r->final_offset);
	/* No longer in flight. */
	assert_int_equal(sfd_client_cancel(c, x.id), -ENOENT);

	sink_resume(s, x.idx);
	close(x.dst);
	assert_received(s, x.idx, x.src, off, r->bytes_sent);
	close(x.src);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_cancel_nonblocking_dst(void **state)
{
	(void)state;
	cancel_one(true);
}

static void
test_cancel_blocking_dst(void **state)
{
	(void)state;
	cancel_one(false);
}

/*
 * A cold file to a receiver that does not read: the transfer waits on a
 * worker thread. The others go on meanwhile; a cancel stops it; the position
 * and the bytes received agree.
 */
static void
test_cancel_cold_file(void **state)
{
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 64 * MiB;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	const struct sfd_result *r;
	char path[PATH_MAX];
	struct xfer_case x;
	unsigned done = 0;

	(void)state;
	tfile_create(path, size, 18);
	if (!tfile_make_cold(path)) {
		sink_free(s);
		sfd_client_free(c);
		skip();
	}
	case_setup(&x, path, size, 0, 0, true, s, &paused);
	x.slot.counter = &done;
	r = &x.slot.res;
	assert_int_equal(sfd_client_submit(c, x.dst, x.src, 0, 0, 0, &x.slot, &x.id), 0);
	assert_true(sink_wait_queued(s, x.idx, 1, 10000));
	sleep_ms(50);
	assert_daemon_serves();
	assert_int_equal(sfd_client_dispatch(c, harness_on_done), 0);

	assert_int_equal(sfd_client_cancel(c, x.id), 0);
	/* The receiver is paused: only the cancel can end it. */
	if (!pump(c, &done, 1, 20000))
		fail_msg("the cancelled transfer did not complete");
	assert_int_equal(r->status, SFD_STATUS_CANCELLED);
	assert_true(r->bytes_sent > 0 && r->bytes_sent < size);
	assert_int_equal(r->final_offset, r->bytes_sent);
	assert_int_equal(fd_pos(x.src), r->final_offset);
	sink_resume(s, x.idx);
	close(x.dst);
	assert_received(s, x.idx, x.src, 0, r->bytes_sent);
	close(x.src);
	sink_free(s);
	sfd_client_free(c);
}

/* Cancelling what is not in flight. */
static void
test_cancel_not_in_flight(void **state)
{
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	char path[PATH_MAX];
	struct xfer_case x;
	unsigned done = 0;

	(void)state;
	assert_int_equal(sfd_client_cancel(c, 12345), -ENOENT);
	tfile_create(path, 1000, 15);
	case_setup(&x, path, 1000, 0, 0, true, s, NULL);
	x.slot.counter = &done;
	assert_int_equal(sfd_client_submit(c, x.dst, x.src, 0, 0, 0, &x.slot, &x.id), 0);
	assert_true(pump(c, &done, 1, 5000));
	assert_int_equal(sfd_client_cancel(c, x.id), -ENOENT);
	case_check(&x, s);
	sink_free(s);
	sfd_client_free(c);
}

/*
 * Cancel @n stuck transfers of @c; each must complete once, CANCELLED, with
 * its position and the bytes its receiver gets agreeing. Transfer i started
 * at offset i when @offset_by_index, else at 0. Closes their descriptors.
 */
static void
cancel_and_check(struct sfd_client *c, struct xfer_case *x, unsigned n, unsigned *done,
                 struct sink *s, bool offset_by_index)
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(sfd_client_cancel(c, x[i].id), 0);
	if (!pump(c, done, n, 5000))
		fail_msg("%u of %u cancelled transfers completed", *done, n);
	for (unsigned i = 0; i < n; i++) {
		const struct sfd_result *r = &x[i].slot.res;
		uint64_t off = offset_by_index ? i : 0;

		assert_int_equal(x[i].slot.times, 1);
		if (r->status != SFD_STATUS_CANCELLED)
			fail_msg("transfer %u: %s (%s)", i, sfd_status_str(r->status), r->message);
		assert_int_equal(r->final_offset, off + r->bytes_sent);
		assert_int_equal(fd_pos(x[i].src), r->bytes_sent ? r->final_offset : 0);
		sink_resume(s, x[i].idx);
		close(x[i].dst);
		assert_received(s, x[i].idx, x[i].src, off, r->bytes_sent);
		close(x[i].src);
	}
}

/*
 * More blocking transfers than worker threads, all stuck: the ones still
 * queued are cancelled before they start (nothing sent, position untouched),
 * the running ones are interrupted.
 */
static void
test_cancel_more_than_workers(void **state)
{
	enum { N = 12 };
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 32 * MiB;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct xfer_case x[N];
	char path[PATH_MAX];
	unsigned done = 0, started = 0;

	(void)state;
	tfile_create(path, size, 16);
	for (unsigned i = 0; i < N; i++) {
		case_setup(&x[i], path, size, i, 0, false, s, &paused);
		x[i].slot.counter = &done;
		assert_int_equal(
		        sfd_client_submit(c, x[i].dst, x[i].src, i, 0, 0, &x[i].slot, &x[i].id), 0);
	}
	/* The daemon runs 8 workers by default: at least those start. */
	for (unsigned i = 0; i < N; i++)
		started += sink_wait_queued(s, x[i].idx, 1, started >= 8 ? 100 : 3000);
	assert_true(started >= 8);
	cancel_and_check(c, x, N, &done, s, true);
	sink_free(s);
	sfd_client_free(c);
}

/*
 * More stuck blocking destinations than worker threads: each worker job gets
 * a time slice, so a transfer of another client to a blocking destination
 * whose receiver reads still completes.
 */
static void
test_stuck_blocking_dsts_do_not_starve_others(void **state)
{
	enum { N = 12 };
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 32 * MiB;
	struct sfd_client *a = client_open(), *b = client_open();
	struct sink *s = sink_new();
	struct xfer_case x[N], y;
	char path[PATH_MAX], small[PATH_MAX];
	unsigned done = 0, done_b = 0, started = 0;

	(void)state;
	tfile_create(path, size, 17);
	tfile_create(small, 4 * MiB, 18);
	for (unsigned i = 0; i < N; i++) {
		case_setup(&x[i], path, size, 0, 0, false, s, &paused);
		x[i].slot.counter = &done;
		assert_int_equal(
		        sfd_client_submit(a, x[i].dst, x[i].src, 0, 0, 0, &x[i].slot, &x[i].id), 0);
	}
	/* Every worker (8 by default) is now blocked in a full socket. */
	for (unsigned i = 0; i < N; i++)
		started += sink_wait_queued(s, x[i].idx, 1, started >= 8 ? 100 : 3000);
	assert_true(started >= 8);

	case_setup(&y, small, 4 * MiB, 0, 0, false, s, NULL);
	y.slot.counter = &done_b;
	assert_int_equal(sfd_client_submit(b, y.dst, y.src, 0, 0, 0, &y.slot, &y.id), 0);
	if (!pump(b, &done_b, 1, 15000))
		fail_msg("stuck destinations held every worker thread");
	case_check(&y, s);
	assert_int_equal(sfd_client_dispatch(a, harness_on_done), 0);
	assert_int_equal(done, 0);

	cancel_and_check(a, x, N, &done, s, false);
	sink_free(s);
	sfd_client_free(a);
	sfd_client_free(b);
}

/*
 * Many stalled transfers on one connection do not delay another
 * connection's: the worker threads are taken in turn, connection by
 * connection, and a transfer whose destination is full waits on the loop
 * rather than in a thread. Checked by the order of events, not by time:
 * first come, first served, the other connection's transfer would have
 * waited until every stalled one had had its turn (bytes in its socket);
 * here it completes while some have not started. Both connections are of
 * one user: the turns between users are the same round robin one level up
 * (test-fairq.c).
 */
static void
test_stalled_connection_does_not_delay_another(void **state)
{
	enum { SINKS = 3, PER_SINK = 60, N = SINKS * PER_SINK };
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 32 * MiB;
	struct sfd_client *a = client_open(), *b = client_open();
	struct sink *s[SINKS], *sb = sink_new();
	static struct xfer_case x[N];
	struct xfer_case y;
	char path[PATH_MAX], small[PATH_MAX];
	unsigned done = 0, done_b = 0, waiting = 0;

	(void)state;
	tfile_create(path, size, 21);
	tfile_create(small, 64 * 1024, 22);
	for (unsigned k = 0; k < SINKS; k++)
		s[k] = sink_new();
	for (unsigned i = 0; i < N; i++) {
		case_setup(&x[i], path, size, 0, 0, false, s[i / PER_SINK], &paused);
		x[i].slot.counter = &done;
		assert_int_equal(
		        sfd_client_submit(a, x[i].dst, x[i].src, 0, 0, 0, &x[i].slot, &x[i].id), 0);
	}
	/* The first ones hold the threads now. */
	assert_true(sink_wait_queued(s[0], x[0].idx, 1, 5000));

	case_setup(&y, small, 64 * 1024, 0, 0, false, sb, NULL);
	y.slot.counter = &done_b;
	assert_int_equal(sfd_client_submit(b, y.dst, y.src, 0, 0, 0, &y.slot, &y.id), 0);
	if (!pump(b, &done_b, 1, 60000))
		fail_msg("the other connection's transfer did not complete");
	for (unsigned i = 0; i < N; i++)
		waiting += sink_queued(s[i / PER_SINK], x[i].idx) == 0;
	if (waiting == 0)
		fail_msg("every stalled transfer had its turn before the other connection's");
	case_check(&y, sb);
	assert_int_equal(sfd_client_dispatch(a, harness_on_done), 0);
	assert_int_equal(done, 0);

	/* Queued, parked and running ones alike are cancelled. */
	for (unsigned k = 0; k < SINKS; k++) {
		done = 0;
		cancel_and_check(a, x + k * PER_SINK, PER_SINK, &done, s[k], false);
		sink_free(s[k]);
	}
	sink_free(sb);
	sfd_client_free(a);
	sfd_client_free(b);
}

/*
 * A client that goes away with transfers in flight: the daemon cancels them
 * (on the loop and on a worker), settles their file positions, and closes
 * every descriptor they held.
 */
static void
test_disconnect_with_transfers_in_flight(void **state)
{
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 64 * MiB;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	char path[PATH_MAX];
	struct xfer_case xl, xw;
	int p[2], pdst, psrv, pidx;
	uint64_t pipe_id, pos_l, pos_w;
	struct done_slot pslot = {0};

	(void)state;
	tfile_create(path, size, 17);
	case_setup(&xl, path, size, 100, 0, true, s, &paused);
	case_setup(&xw, path, size, 0, 0, false, s, &paused);
	/* And a pipe that never ends: a transfer waiting for its source. */
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	tcp_pair(true, &pdst, &psrv);
	pidx = sink_add(s, psrv, NULL);
	assert_int_equal(write(p[1], "0123456789", 10), 10);

	assert_int_equal(sfd_client_submit(c, xl.dst, xl.src, 100, 0, 0, &xl.slot, &xl.id), 0);
	assert_int_equal(sfd_client_submit(c, xw.dst, xw.src, 0, 0, 0, &xw.slot, &xw.id), 0);
	assert_int_equal(sfd_client_submit(c, pdst, p[0], 0, 0, 0, &pslot, &pipe_id), 0);
	assert_true(sink_wait_queued(s, xl.idx, 1, 5000));
	assert_true(sink_wait_queued(s, xw.idx, 1, 5000));
	for (int64_t end = now_ms() + 5000; sink_bytes(s, pidx) < 10 && now_ms() < end;)
		sleep_ms(2);
	assert_int_equal(sink_bytes(s, pidx), 10);
	sleep_ms(50);

	sfd_client_free(c);
	if (!daemon_wait_fds(daemon_baseline(), 5000))
		fail_msg("the daemon holds %d descriptors, %d when idle", daemon_fd_count(),
		         daemon_baseline());
	assert_false(xl.slot.done || xw.slot.done || pslot.done);

	pos_l = (uint64_t)fd_pos(xl.src);
	pos_w = (uint64_t)fd_pos(xw.src);
	assert_true(pos_l > 100 && pos_l < size);
	assert_true(pos_w > 0 && pos_w < size);
	sink_resume(s, xl.idx);
	sink_resume(s, xw.idx);
	close(xl.dst);
	close(xw.dst);
	close(pdst);
	assert_received(s, xl.idx, xl.src, 100, pos_l - 100);
	assert_received(s, xw.idx, xw.src, 0, pos_w);
	assert_true(sink_wait(s, pidx, 5000));
	assert_int_equal(sink_bytes(s, pidx), 10);
	close(xl.src);
	close(xw.src);
	close(p[0]);
	close(p[1]);
	sink_free(s);
}

/* ---- transfers to one destination ----------------------------------------- */

/* Completions in the order they came. */
#define ORDER_MAX 256
static uint64_t order_ids[ORDER_MAX];
static unsigned order_n;

/* With @total set: at each reply, the most descriptors the daemon held
 * beyond its baseline, our connection and the requests not answered yet. */
static struct {
	unsigned total;
	int worst;
} order_fds;

static void
on_done_ordered(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	if (order_n < ORDER_MAX)
		order_ids[order_n++] = id;
	harness_on_done(c, id, res, userdata);
	if (order_fds.total) {
		int extra = daemon_fd_count() - daemon_baseline() - 1 -
		            2 * (int)(order_fds.total - order_n);

		if (extra > order_fds.worst)
			order_fds.worst = extra;
	}
}

static bool
pump_ordered(struct sfd_client *c, const unsigned *counter, unsigned target, int ms)
{
	for (int64_t end = now_ms() + ms; *counter < target && now_ms() < end;) {
		struct pollfd pfd = {.fd = sfd_client_get_fd(c), .events = POLLIN};

		(void)poll(&pfd, 1, 50);
		assert_true(sfd_client_dispatch(c, on_done_ordered) >= 0);
	}
	return *counter >= target;
}

/* SHA-256 of whole files one after the other. */
static void
files_sha256(const int *fds, const uint64_t *sizes, int n, uint8_t out[32])
{
	static char buf[1 << 16];
	struct sha256 h;

	sha256_init(&h);
	for (int i = 0; i < n; i++) {
		for (uint64_t off = 0; off < sizes[i];) {
			ssize_t r = pread(fds[i], buf, sizeof(buf), (off_t)off);

			assert_true(r > 0);
			sha256_update(&h, buf, (size_t)r);
			off += (uint64_t)r;
		}
	}
	sha256_final(&h, out);
}

/*
 * Three transfers to one socket, the second through another descriptor of
 * it (dup): they run one after the other, in the order sent, while the
 * first waits for a receiver that does not read; a transfer to another
 * socket is not held up meanwhile. The receiver gets the three files
 * back to back, whole.
 */
static void
same_destination_in_order(bool nonblock)
{
	const struct sink_opts paused = {.paused = true};
	const uint64_t sizes[3] = {16 * MiB, 256 * KiB + 7, 4 * KiB};
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct done_slot slots[3] = {{0}}, other = {0};
	char path[PATH_MAX];
	int src[3], dst, dst2, srv, idx, odst, osrv, oidx, osrc;
	uint64_t ids[3], oid;
	uint8_t want[32], got[32];
	unsigned done = 0, odone = 0;

	order_n = 0;
	for (int i = 0; i < 3; i++) {
		tfile_create(path, sizes[i], 40 + (uint64_t)i);
		src[i] = tfile_open(path, O_RDONLY);
		slots[i].counter = &done;
	}
	tcp_pair(nonblock, &dst, &srv);
	dst2 = fcntl(dst, F_DUPFD_CLOEXEC, 0);
	assert_true(dst2 >= 0);
	idx = sink_add(s, srv, &paused);

	assert_int_equal(sfd_client_submit(c, dst, src[0], 0, 0, 0, &slots[0], &ids[0]), 0);
	assert_true(sink_wait_queued(s, idx, 1, 5000));
	assert_int_equal(sfd_client_submit(c, dst2, src[1], 0, 0, 0, &slots[1], &ids[1]), 0);
	assert_int_equal(sfd_client_submit(c, dst, src[2], 0, 0, 0, &slots[2], &ids[2]), 0);

	/* Another destination meanwhile: served at once. */
	tcp_pair(true, &odst, &osrv);
	oidx = sink_add(s, osrv, NULL);
	osrc = src[2];
	other.counter = &odone;
	assert_int_equal(sfd_client_submit(c, odst, osrc, 0, 0, 0, &other, &oid), 0);
	assert_true(pump(c, &odone, 1, 5000));
	assert_result(&other.res, SFD_STATUS_OK, sizes[2], sizes[2], SFD_METHOD_SENDFILE);
	assert_int_equal(done, 0);
	close(odst);
	assert_true(sink_wait(s, oidx, 5000));
	assert_int_equal(sink_bytes(s, oidx), sizes[2]);
	assert_int_equal(lseek(src[2], 0, SEEK_SET), 0);

	sink_resume(s, idx);
	order_n = 0;
	if (!pump_ordered(c, &done, 3, 20000))
		fail_msg("%u of 3 transfers to one socket completed", done);
	assert_int_equal(order_n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(order_ids[i], ids[i]);
		assert_result(&slots[i].res, SFD_STATUS_OK, sizes[i], sizes[i],
		              SFD_METHOD_SENDFILE);
		assert_int_equal(fd_pos(src[i]), sizes[i]);
	}
	close(dst);
	close(dst2);
	assert_true(sink_wait(s, idx, 5000));
	assert_int_equal(sink_bytes(s, idx), sizes[0] + sizes[1] + sizes[2]);
	files_sha256(src, sizes, 3, want);
	sink_digest(s, idx, got);
	assert_memory_equal(got, want, 32);
	for (int i = 0; i < 3; i++)
		close(src[i]);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_same_destination_in_order_loop(void **state)
{
	(void)state;
	same_destination_in_order(true);
}

static void
test_same_destination_in_order_worker(void **state)
{
	(void)state;
	same_destination_in_order(false);
}

/*
 * Two clients, one socket: the second client's transfer waits for the
 * first client's, as on one connection. (SFD_NO_INLINE: a client does not
 * know of another's transfers, so order across clients is the daemon's.)
 */
static void
test_same_destination_across_connections(void **state)
{
	const struct sink_opts paused = {.paused = true};
	const uint64_t sizes[2] = {16 * MiB, 64 * KiB};
	struct sfd_client *c1 = client_open(), *c2 = client_open();
	struct sink *s = sink_new();
	struct done_slot a = {0}, b = {0};
	char path[PATH_MAX];
	int src[2], dst, dst2, srv, idx;
	uint64_t ida, idb;
	uint8_t want[32], got[32];
	unsigned done_a = 0, done_b = 0;

	(void)state;
	for (int i = 0; i < 2; i++) {
		tfile_create(path, sizes[i], 70 + (uint64_t)i);
		src[i] = tfile_open(path, O_RDONLY);
	}
	a.counter = &done_a;
	b.counter = &done_b;
	tcp_pair(true, &dst, &srv);
	dst2 = fcntl(dst, F_DUPFD_CLOEXEC, 0);
	assert_true(dst2 >= 0);
	idx = sink_add(s, srv, &paused);

	assert_int_equal(sfd_client_submit(c1, dst, src[0], 0, 0, SFD_NO_INLINE, &a, &ida), 0);
	assert_true(sink_wait_queued(s, idx, 1, 5000));
	assert_int_equal(sfd_client_submit(c2, dst2, src[1], 0, 0, SFD_NO_INLINE, &b, &idb), 0);
	sleep_ms(100);
	assert_true(sfd_client_dispatch(c2, harness_on_done) >= 0);
	assert_false(b.done);

	sink_resume(s, idx);
	assert_true(pump(c2, &done_b, 1, 20000));
	/* The first one's reply went out before the second one started. */
	assert_true(pump(c1, &done_a, 1, 20000));
	assert_result(&a.res, SFD_STATUS_OK, sizes[0], sizes[0], SFD_METHOD_SENDFILE);
	assert_result(&b.res, SFD_STATUS_OK, sizes[1], sizes[1], SFD_METHOD_SENDFILE);
	close(dst);
	close(dst2);
	assert_true(sink_wait(s, idx, 5000));
	files_sha256(src, sizes, 2, want);
	sink_digest(s, idx, got);
	assert_memory_equal(got, want, 32);
	for (int i = 0; i < 2; i++)
		close(src[i]);
	sink_free(s);
	sfd_client_free(c1);
	sfd_client_free(c2);
}

/*
 * A long line of small transfers behind a stalled one, on one socket: once
 * the receiver reads, they all run, in order (many more than the daemon
 * starts in one go), each reply comes after the daemon let go of its
 * request's descriptors, and the receiver gets each range where it belongs.
 */
static void
test_same_destination_long_line(void **state)
{
	enum { N = 200 };
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 8 * MiB, piece = 4 * KiB;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	static struct done_slot slots[N + 1];
	uint64_t ids[N + 1];
	char path[PATH_MAX];
	int src, dst, srv, idx;
	unsigned done = 0;
	uint8_t want[32], got[32];
	struct sha256 h;
	static char buf[8 * 1024 * 1024];

	(void)state;
	memset(slots, 0, sizeof(slots));
	tfile_create(path, size, 60);
	src = tfile_open(path, O_RDONLY);
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, &paused);
	for (int i = 0; i <= N; i++)
		slots[i].counter = &done;

	/* The whole file, then pieces of it backwards: [N-1], ..., [0]. */
	assert_int_equal(sfd_client_submit(c, dst, src, 0, 0, 0, &slots[0], &ids[0]), 0);
	assert_true(sink_wait_queued(s, idx, 1, 5000));
	for (int i = 1; i <= N; i++)
		assert_int_equal(sfd_client_submit(c, dst, src, (uint64_t)(N - i) * piece, piece, 0,
		                                   &slots[i], &ids[i]),
		                 0);
	sink_resume(s, idx);
	order_n = 0;
	order_fds.total = N + 1;
	order_fds.worst = 0;
	if (!pump_ordered(c, &done, N + 1, 30000))
		fail_msg("%u of %d transfers to one socket completed", done, N + 1);
	order_fds.total = 0;
	assert_int_equal(order_n, N + 1);
	/* Those started in a line are answered after their descriptors are
	 * closed, like those of a batch of records. */
	assert_int_equal(order_fds.worst, 0);
	for (int i = 0; i <= N; i++) {
		assert_int_equal(order_ids[i], ids[i]);
		assert_int_equal(slots[i].res.status, SFD_STATUS_OK);
	}
	assert_int_equal(fd_pos(src), piece); /* the last one sent [0, piece) */
	close(dst);
	assert_true(sink_wait(s, idx, 5000));
	assert_int_equal(pread(src, buf, size, 0), (ssize_t)size);
	sha256_init(&h);
	sha256_update(&h, buf, size);
	for (int i = 1; i <= N; i++)
		sha256_update(&h, buf + (uint64_t)(N - i) * piece, piece);
	sha256_final(&h, want);
	sink_digest(s, idx, got);
	assert_memory_equal(got, want, 32);
	close(src);
	sink_free(s);
	sfd_client_free(c);
}

/*
 * A transfer waiting for its turn is cancelled: CANCELLED with nothing
 * sent and its source's position untouched; the one ahead of it goes on
 * alone, and the socket then serves the next transfer. A client that goes
 * away leaves nothing behind either (fixture: the daemon's descriptors).
 */
static void
test_same_destination_cancel_waiting(void **state)
{
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 16 * MiB;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct done_slot first = {0}, waiting = {0}, left[2] = {{0}};
	char path[PATH_MAX];
	int a, b, dst, srv, idx;
	uint64_t ida, idb, idl;
	unsigned done = 0, wdone = 0;

	(void)state;
	tfile_create(path, size, 50);
	a = tfile_open(path, O_RDONLY);
	b = tfile_open(path, O_RDONLY);
	assert_int_equal(lseek(b, 123, SEEK_SET), 123);
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, &paused);
	first.counter = &done;
	waiting.counter = &wdone;

	assert_int_equal(sfd_client_submit(c, dst, a, 0, 0, 0, &first, &ida), 0);
	assert_true(sink_wait_queued(s, idx, 1, 5000));
	assert_int_equal(sfd_client_submit(c, dst, b, 1000, 0, 0, &waiting, &idb), 0);
	sleep_ms(50);
	assert_int_equal(sfd_client_dispatch(c, harness_on_done), 0);
	assert_false(waiting.done);
	assert_int_equal(sfd_client_cancel(c, idb), 0);
	assert_true(pump(c, &wdone, 1, 5000));
	assert_result(&waiting.res, SFD_STATUS_CANCELLED, 0, 1000, SFD_METHOD_NONE);
	assert_int_equal(fd_pos(b), 123);
	assert_false(first.done);

	sink_resume(s, idx);
	assert_true(pump(c, &done, 1, 20000));
	assert_result(&first.res, SFD_STATUS_OK, size, size, SFD_METHOD_SENDFILE);

	/* Two more wait behind a stalled one; the client leaves. */
	{
		int dst3, srv3;
		struct done_slot stall = {0};

		tcp_pair(true, &dst3, &srv3);
		(void)sink_add(s, srv3, &paused);
		assert_int_equal(lseek(a, 0, SEEK_SET), 0);
		assert_int_equal(sfd_client_submit(c, dst3, a, 0, 0, 0, &stall, &idl), 0);
		assert_int_equal(sfd_client_submit(c, dst3, b, 0, 0, 0, &left[0], &idl), 0);
		assert_int_equal(sfd_client_submit(c, dst3, b, 0, 0, 0, &left[1], &idl), 0);
		sleep_ms(50);
		sfd_client_free(c);
		if (!daemon_wait_fds(daemon_baseline(), 5000))
			fail_msg("the daemon holds %d descriptors, %d when idle", daemon_fd_count(),
			         daemon_baseline());
		assert_false(left[0].done || left[1].done);
		assert_int_equal(fd_pos(b), 123);
		close(dst3);
	}
	close(dst);
	assert_true(sink_wait(s, idx, 5000));
	assert_received(s, idx, a, 0, size);
	close(a);
	close(b);
	sink_free(s);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        HTEST(test_many_on_one_connection),
	        HTEST(test_many_over_many_connections),
	        HTEST(test_burst_replies_after_release),
	        HTEST(test_blocking_dst_does_not_block_others),
	        HTEST(test_cancel_nonblocking_dst),
	        HTEST(test_cancel_blocking_dst),
	        HTEST(test_cancel_cold_file),
	        HTEST(test_cancel_not_in_flight),
	        HTEST(test_cancel_more_than_workers),
	        HTEST(test_stuck_blocking_dsts_do_not_starve_others),
	        HTEST(test_stalled_connection_does_not_delay_another),
	        HTEST(test_disconnect_with_transfers_in_flight),
	        HTEST(test_same_destination_in_order_loop),
	        HTEST(test_same_destination_in_order_worker),
	        HTEST(test_same_destination_across_connections),
	        HTEST(test_same_destination_long_line),
	        HTEST(test_same_destination_cancel_waiting),
	};

	harness_init(argc, argv);
	return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
