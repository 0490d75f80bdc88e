/*
 * test-limits.c - a transfer's deadline, idle timeout and rate limit, against
 * a real daemon and real TCP receivers, on the loop (a non-blocking
 * destination) and on a worker (a blocking one).
 *
 * What a user checks: the status and which limit ended it, the bytes sent
 * (and that the receiver, once it drains, got exactly those bytes), the
 * file position, and the descriptors (the fixtures compare the test's own
 * set and the daemon's count before and after every test). Time is asserted
 * only as a lower bound (a rate-limited transfer cannot finish early); how
 * precise the limits are is measured in bench/ratelimit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* A transfer and its receiver. */
struct xcase {
	int src, dst, idx;
};

static void
xcase_open(struct xcase *x, const char *path, bool nonblock, struct sink *s,
           const struct sink_opts *o)
{
	int srv;

	x->src = tfile_open(path, O_RDONLY);
	tcp_pair(nonblock, &x->dst, &srv);
	x->idx = sink_add(s, srv, o);
	assert_int_equal(fd_flags(x->dst) & O_NONBLOCK, nonblock ? O_NONBLOCK : 0);
}

/* The reply of a transfer a limit ended, and what the receiver got. */
static void
assert_timed_out(const struct sfd_result *r, unsigned flag, struct xcase *x, struct sink *s,
                 uint64_t off, uint64_t size)
{
	if (r->status != SFD_STATUS_TIMED_OUT)
		fail_msg("status %s (%s), %llu bytes sent; want timed out",
		         sfd_status_str(r->status), r->message, (unsigned long long)r->bytes_sent);
	assert_int_equal(r->error, ETIMEDOUT);
	assert_int_equal(r->flags & (SFD_RESULT_DEADLINE | SFD_RESULT_IDLE), flag);
	assert_true(r->bytes_sent < size - off);
	assert_int_equal(r->final_offset, off + r->bytes_sent);
	if (r->bytes_sent > 0)
		assert_int_equal(fd_pos(x->src), off + r->bytes_sent);
	/* The receiver, drained, has exactly the bytes the reply counts. */
	sink_resume(s, x->idx);
	close(x->dst);
	assert_received(s, x->idx, x->src, off, r->bytes_sent);
	close(x->src);
}

/*
 * A receiver that stops reading: the idle timeout ends the transfer, with
 * the bytes that left before, and frees its descriptors and its thread.
 */
static void
idle_one(bool nonblock)
{
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 64 * MiB, off = 4096;
	const struct sfd_options opts = {.idle_timeout_ms = 300};
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result r;
	char path[PATH_MAX];
	struct xcase x;

	tfile_create(path, size, 41);
	xcase_open(&x, path, nonblock, s, &paused);
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, off, 0, 0, &opts, -1, &r), 0);
	assert_true(r.bytes_sent > 0);
	assert_int_equal(r.method, SFD_METHOD_SENDFILE);
	assert_timed_out(&r, SFD_RESULT_IDLE, &x, s, off, size);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_idle_nonblocking(void **state)
{
	(void)state;
	idle_one(true);
}

static void
test_idle_blocking(void **state)
{
	(void)state;
	idle_one(false);
}

/*
 * A slow receiver that keeps reading: the idle timeout never fires, the
 * deadline does.
 */
static void
deadline_slow(bool nonblock)
{
	const struct sink_opts slow = {.delay_ms = 20};
	const uint64_t size = 32 * MiB;
	const struct sfd_options opts = {.deadline_ms = 700, .idle_timeout_ms = 5000};
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result r;
	char path[PATH_MAX];
	struct xcase x;

	tfile_create(path, size, 42);
	xcase_open(&x, path, nonblock, s, &slow);
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &opts, -1, &r), 0);
	assert_true(r.bytes_sent > 0);
	assert_timed_out(&r, SFD_RESULT_DEADLINE, &x, s, 0, size);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_deadline_slow_nonblocking(void **state)
{
	(void)state;
	deadline_slow(true);
}

static void
test_deadline_slow_blocking(void **state)
{
	(void)state;
	deadline_slow(false);
}

/*
 * A transfer waiting behind another to the same destination: its deadline
 * counts there too. It ends with nothing sent and its source's position
 * untouched; the one ahead goes on and is cancelled.
 */
static void
deadline_in_line(bool nonblock)
{
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 64 * MiB;
	const struct sfd_options opts = {.deadline_ms = 200};
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct done_slot a = {0}, b = {0};
	unsigned done = 0;
	char path[PATH_MAX], other[PATH_MAX];
	uint64_t ida, idb;
	struct xcase x;
	int src2;

	a.counter = b.counter = &done;
	tfile_create(path, size, 43);
	tfile_create(other, 1 * MiB, 44);
	xcase_open(&x, path, nonblock, s, &paused);
	src2 = tfile_open(other, O_RDONLY);
	assert_int_equal(lseek(src2, 777, SEEK_SET), 777);

	assert_int_equal(sfd_client_submit(c, x.dst, x.src, 0, 0, 0, &a, &ida), 0);
	assert_true(sink_wait_queued(s, x.idx, 1, 5000));
	assert_int_equal(sfd_client_submit_opts(c, x.dst, src2, 4096, 0, 0, &opts, &b, &idb), 0);
	if (!pump(c, &done, 1, 10000))
		fail_msg("the waiting transfer's deadline did not end it");
	assert_true(b.done);
	assert_false(a.done);
	assert_int_equal(b.res.status, SFD_STATUS_TIMED_OUT);
	assert_int_equal(b.res.error, ETIMEDOUT);
	assert_int_equal(b.res.flags & SFD_RESULT_DEADLINE, SFD_RESULT_DEADLINE);
	assert_int_equal(b.res.bytes_sent, 0);
	assert_int_equal(b.res.final_offset, 4096);
	assert_int_equal(fd_pos(src2), 777);
	close(src2);

	assert_int_equal(sfd_client_cancel(c, ida), 0);
	assert_true(pump(c, &done, 2, 10000));
	assert_int_equal(a.res.status, SFD_STATUS_CANCELLED);
	assert_int_equal(fd_pos(x.src), a.res.bytes_sent);
	sink_resume(s, x.idx);
	close(x.dst);
	/* Only the first transfer's bytes reached the receiver. */
	assert_received(s, x.idx, x.src, 0, a.res.bytes_sent);
	close(x.src);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_deadline_in_line_nonblocking(void **state)
{
	(void)state;
	deadline_in_line(true);
}

static void
test_deadline_in_line_blocking(void **state)
{
	(void)state;
	deadline_in_line(false);
}

/*
 * 3 MiB at 1 MiB/s cannot take less than 2 s (the bucket starts empty):
 * assert 1.5 s. The bytes are right; the rate-limit wait is not idleness
 * (an idle timeout shorter than a wait would otherwise fire).
 */
static void
rate_one(bool nonblock)
{
	const uint64_t size = 3 * MiB;
	const struct sfd_options opts = {.rate_limit_bps = 1 * MiB, .idle_timeout_ms = 1000};
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result r;
	char path[PATH_MAX];
	struct xcase x;
	int64_t t0;

	tfile_create(path, size, 45);
	xcase_open(&x, path, nonblock, s, NULL);
	t0 = now_ms();
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &opts, -1, &r), 0);
	assert_true(now_ms() - t0 >= 1500);
	assert_result(&r, SFD_STATUS_OK, size, size, SFD_METHOD_SENDFILE);
	assert_int_equal(fd_pos(x.src), size);
	close(x.dst);
	assert_received(s, x.idx, x.src, 0, size);
	close(x.src);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_rate_nonblocking(void **state)
{
	(void)state;
	rate_one(true);
}

static void
test_rate_blocking(void **state)
{
	(void)state;
	rate_one(false);
}

/*
 * The first rate_limit_after bytes go at full speed, then the rate holds
 * (1 KiB/s: without the burst, 1 MiB would take over 1000 s; without the
 * rate, the rest would follow at once). A cancel then stops the transfer
 * while it waits for the rate limiter, with the bytes the receiver got.
 */
static void
burst_then_cancel(bool nonblock)
{
	const uint64_t size = 8 * MiB, burst = 1 * MiB;
	const struct sfd_options opts = {.rate_limit_bps = 1024, .rate_limit_after = burst};
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct done_slot d = {0};
	unsigned done = 0;
	char path[PATH_MAX];
	struct xcase x;
	uint64_t id;
	int64_t t0;

	d.counter = &done;
	tfile_create(path, size, 46);
	xcase_open(&x, path, nonblock, s, NULL);
	assert_int_equal(sfd_client_submit_opts(c, x.dst, x.src, 0, 0, 0, &opts, &d, &id), 0);
	t0 = now_ms();
	while (sink_bytes(s, x.idx) < burst && now_ms() - t0 < 20000)
		sleep_ms(5);
	assert_true(sink_bytes(s, x.idx) >= burst);
	sleep_ms(300);
	assert_true(sink_bytes(s, x.idx) < burst + 64 * KiB);
	assert_int_equal(sfd_client_dispatch(c, harness_on_done), 0);
	assert_false(d.done);

	assert_int_equal(sfd_client_cancel(c, id), 0);
	assert_true(pump(c, &done, 1, 10000));
	assert_int_equal(d.res.status, SFD_STATUS_CANCELLED);
	assert_true(d.res.bytes_sent >= burst);
	assert_true(d.res.bytes_sent < burst + 64 * KiB);
	assert_int_equal(d.res.final_offset, d.res.bytes_sent);
	assert_int_equal(fd_pos(x.src), d.res.bytes_sent);
	close(x.dst);
	assert_received(s, x.idx, x.src, 0, d.res.bytes_sent);
	close(x.src);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_burst_cancel_nonblocking(void **state)
{
	(void)state;
	burst_then_cancel(true);
}

static void
test_burst_cancel_blocking(void **state)
{
	(void)state;
	burst_then_cancel(false);
}

/* A deadline ends a transfer that waits for the rate limiter. */
static void
test_deadline_while_rate_limited(void **state)
{
	const uint64_t size = 4 * MiB;
	const struct sfd_options opts = {.deadline_ms = 400, .rate_limit_bps = 64 * KiB};
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result r;
	char path[PATH_MAX];
	struct xcase x;

	(void)state;
	tfile_create(path, size, 47);
	xcase_open(&x, path, false, s, NULL);
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &opts, -1, &r), 0);
	assert_true(r.bytes_sent > 0);
	assert_timed_out(&r, SFD_RESULT_DEADLINE, &x, s, 0, size);
	sink_free(s);
	sfd_client_free(c);
}

/* Bad limits: refused with a clear error, nothing sent, nothing kept. */
static void
test_invalid_limits(void **state)
{
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result r;
	struct sfd_options o;
	char path[PATH_MAX];
	struct xcase x;
	uint64_t id;

	(void)state;
	tfile_create(path, 64 * KiB, 48);
	xcase_open(&x, path, true, s, NULL);
	assert_int_equal(lseek(x.src, 5, SEEK_SET), 5);

	/* Beyond the daemon's maximum (one day by default). */
	o = (struct sfd_options){.deadline_ms = UINT32_MAX};
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &o, -1, &r), 0);
	assert_result(&r, SFD_STATUS_INVALID_ARGUMENT, 0, 0, SFD_METHOD_NONE);
	assert_int_equal(r.error, EINVAL);
	assert_non_null(strstr(r.message, "deadline"));
	o = (struct sfd_options){.idle_timeout_ms = 25u * 3600 * 1000};
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &o, -1, &r), 0);
	assert_result(&r, SFD_STATUS_INVALID_ARGUMENT, 0, 0, SFD_METHOD_NONE);
	assert_non_null(strstr(r.message, "idle"));
	o = (struct sfd_options){.rate_limit_bps = UINT64_MAX};
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &o, -1, &r), 0);
	assert_result(&r, SFD_STATUS_INVALID_ARGUMENT, 0, 0, SFD_METHOD_NONE);
	assert_non_null(strstr(r.message, "rate"));
	/* The library's own checks. */
	o = (struct sfd_options){.rate_limit_after = 10};
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &o, -1, &r), -EINVAL);
	assert_int_equal(sfd_client_submit_opts(c, x.dst, x.src, 0, 0, 0, &o, NULL, &id), -EINVAL);
	o = (struct sfd_options){.reserved[3] = 1};
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &o, -1, &r), -EINVAL);
	assert_int_equal(sfd_client_in_flight(c), 0);
	assert_int_equal(fd_pos(x.src), 5);

	/* NULL options and zero options: a plain transfer. */
	o = (struct sfd_options){0};
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, NULL, -1, &r), 0);
	assert_result(&r, SFD_STATUS_OK, 64 * KiB, 64 * KiB, SFD_METHOD_SENDFILE);
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &o, -1, &r), 0);
	assert_result(&r, SFD_STATUS_OK, 64 * KiB, 64 * KiB, SFD_METHOD_SENDFILE);
	close(x.dst);
	assert_true(sink_wait(s, x.idx, 10000));
	assert_int_equal(sink_bytes(s, x.idx), 128 * KiB);
	close(x.src);
	sink_free(s);
	sfd_client_free(c);
	assert_daemon_serves();
}

/* The operator's default idle timeout applies to a request that sets none;
 * its maximum refuses a longer one. */
static void
test_daemon_default_and_max(void **state)
{
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 64 * MiB;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_options o = {.deadline_ms = 2000};
	struct sfd_result r;
	char path[PATH_MAX];
	struct xcase x;

	(void)state;
	tfile_create(path, size, 49);
	xcase_open(&x, path, false, s, &paused);
	assert_int_equal(sfd_client_sendfile_opts(c, x.dst, x.src, 0, 0, 0, &o, -1, &r), 0);
	assert_result(&r, SFD_STATUS_INVALID_ARGUMENT, 0, 0, SFD_METHOD_NONE);
	assert_non_null(strstr(r.message, "max_deadline_ms"));
	assert_int_equal(sfd_client_sendfile(c, x.dst, x.src, 0, 0, 0, -1, &r), 0);
	assert_true(r.bytes_sent > 0);
	assert_timed_out(&r, SFD_RESULT_IDLE, &x, s, 0, size);
	sink_free(s);
	sfd_client_free(c);
}

int
main(int argc, char **argv)
{
	static const char *const conf_args[] = {"--idle-timeout", "300", "--max-deadline", "1000",
	                                        NULL};
	const struct CMUnitTest tests[] = {
	        HTEST(test_idle_nonblocking),
	        HTEST(test_idle_blocking),
	        HTEST(test_deadline_slow_nonblocking),
	        HTEST(test_deadline_slow_blocking),
	        HTEST(test_deadline_in_line_nonblocking),
	        HTEST(test_deadline_in_line_blocking),
	        HTEST(test_rate_nonblocking),
	        HTEST(test_rate_blocking),
	        HTEST(test_burst_cancel_nonblocking),
	        HTEST(test_burst_cancel_blocking),
	        HTEST(test_deadline_while_rate_limited),
	        HTEST(test_invalid_limits),
	};
	const struct CMUnitTest conf_tests[] = {
	        HTEST(test_daemon_default_and_max),
	};
	int failed;

	harness_init(argc, argv);
	failed = cmocka_run_group_tests_name("limits", tests, harness_group_setup,
	                                     harness_group_teardown);
	harness_daemon_args(conf_args);
	failed += cmocka_run_group_tests_name("configured limits", conf_tests, harness_group_setup,
	                                      harness_group_teardown);
	return failed ? 1 : 0;
}
