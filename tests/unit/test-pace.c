/*
 * test-pace.c - the arithmetic of a transfer's limits, on a clock the test
 * drives: the bucket's long-run rate (exact to a quantum), the burst, the
 * bucket's depth after a stall, the deadline and the idle timeout (which
 * waiting for the rate limiter does not count towards), when to look next,
 * and which requests' limits are refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "helpers.h"
#include "pace.h"

#define MS UINT64_C(1000000)
#define SEC (1000 * MS)
#define T0 (1000 * SEC) /* the clock does not start at 0 */

/* Send as a transfer would: ask for @chunk, send what is allowed, and when
 * refused wait until pace_refill_at(). Return: the clock when @total left. */
static uint64_t
drive(struct pace *p, uint64_t now, uint64_t total, size_t chunk)
{
	uint64_t sent = 0;

	while (sent < total) {
		size_t want = (size_t)(total - sent < chunk ? total - sent : chunk);
		size_t n = pace_allow(p, now, want);

		if (n == 0) {
			uint64_t at = pace_refill_at(p);

			assert_true(at > now);
			now = at;
			continue;
		}
		assert_true(n <= want);
		pace_moved(p, n, now);
		sent += n;
	}
	return now;
}

static void
test_rate(void **state)
{
	static const uint64_t rates[] = {1000, 1000 * 1000, 10 * 1000 * 1000, 1000 * 1000 * 1000};
	struct pace p;

	(void)state;
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		struct pace_limits l = {.rate_bps = rates[i]};
		uint64_t end;
		double secs;

		pace_init(&p, &l, T0);
		pace_start(&p, T0);
		/* Ten seconds' worth, from an empty bucket. */
		end = drive(&p, T0, rates[i] * 10, 2 * 1024 * 1024);
		secs = (double)(end - T0) / SEC;
		/* Within a quantum (1/50 s) of 10 s, never faster. */
		assert_true(secs >= 10.0 - 1e-9);
		assert_true(secs <= 10.0 + 1.0 / 50 + 1e-6);
	}
}

static void
test_burst(void **state)
{
	struct pace_limits l = {.rate_bps = 1000 * 1000, .rate_after = 5 * 1000 * 1000};
	struct pace p;
	uint64_t end;

	(void)state;
	pace_init(&p, &l, T0);
	pace_start(&p, T0);
	/* The burst goes at once, however long the sender asks for it. */
	end = drive(&p, T0, 5 * 1000 * 1000, 256 * 1024);
	assert_int_equal(end, T0);
	/* Then the rate, from an empty bucket: 2 MB take 2 s. */
	end = drive(&p, T0, 2 * 1000 * 1000, 256 * 1024);
	assert_true(end >= T0 + 2 * SEC);
	assert_true(end <= T0 + 2 * SEC + SEC / 50);
}

static void
test_depth(void **state)
{
	struct pace_limits l = {.rate_bps = 1000 * 1000};
	struct pace p;

	(void)state;
	pace_init(&p, &l, T0);
	pace_start(&p, T0);
	/* A minute without sending piles up a twentieth of a second, no
	 * more. */
	assert_int_equal(pace_allow(&p, T0 + 60 * SEC, SIZE_MAX), 1000 * 1000 / 20);
	pace_moved(&p, 1000 * 1000 / 20, T0 + 60 * SEC);
	assert_int_equal(pace_allow(&p, T0 + 60 * SEC, SIZE_MAX), 0);
	/* Refused: the next quantum (20 ms at 1 MB/s) comes 20 ms later. */
	assert_int_equal(pace_refill_at(&p), T0 + 60 * SEC + 20 * MS);
	/* The last bytes of a range wait only for themselves. */
	assert_int_equal(pace_allow(&p, T0 + 60 * SEC + 1 * MS, 1000), 1000);
}

static void
test_no_rate(void **state)
{
	struct pace_limits l = {.deadline_ms = 100};
	struct pace p;

	(void)state;
	pace_init(&p, &l, T0);
	assert_int_equal(pace_allow(&p, T0, 12345), 12345);
	assert_int_equal(pace_allow(&p, T0, SIZE_MAX), SIZE_MAX);
}

static void
test_deadline(void **state)
{
	struct pace_limits l = {.deadline_ms = 500};
	struct pace p;

	(void)state;
	pace_init(&p, &l, T0);
	/* It counts from the request, before the transfer's turn too. */
	assert_int_equal(pace_next(&p, T0, false), T0 + 500 * MS);
	assert_int_equal(pace_expired(&p, T0 + 499 * MS), PACE_LIVE);
	pace_start(&p, T0 + 300 * MS);
	pace_moved(&p, 1, T0 + 499 * MS);
	assert_int_equal(pace_expired(&p, T0 + 500 * MS), PACE_DEADLINE);
}

static void
test_idle(void **state)
{
	struct pace_limits l = {.idle_timeout_ms = 100, .rate_bps = 1000};
	struct pace p;

	(void)state;
	pace_init(&p, &l, T0);
	/* Waiting for its turn is not idleness. */
	assert_int_equal(pace_next(&p, T0, false), 0);
	assert_int_equal(pace_expired(&p, T0 + 10 * SEC), PACE_LIVE);
	pace_start(&p, T0 + 10 * SEC);
	assert_int_equal(pace_next(&p, T0 + 10 * SEC, false), T0 + 10 * SEC + 100 * MS);
	/* A byte moving pushes it back. */
	pace_moved(&p, 1, T0 + 10 * SEC + 90 * MS);
	assert_int_equal(pace_expired(&p, T0 + 10 * SEC + 150 * MS), PACE_LIVE);
	assert_int_equal(pace_expired(&p, T0 + 10 * SEC + 190 * MS), PACE_IDLE);
	/* Waiting for the rate limiter is not idleness either; the idle time
	 * counts again from its end. */
	pace_rate_wait(&p, true, T0 + 10 * SEC + 100 * MS);
	assert_int_equal(pace_expired(&p, T0 + 20 * SEC), PACE_LIVE);
	assert_int_equal(pace_next(&p, T0 + 20 * SEC, true), pace_refill_at(&p));
	pace_rate_wait(&p, false, T0 + 20 * SEC);
	assert_int_equal(pace_expired(&p, T0 + 20 * SEC + 99 * MS), PACE_LIVE);
	assert_int_equal(pace_expired(&p, T0 + 20 * SEC + 100 * MS), PACE_IDLE);
}

static void
test_resolve(void **state)
{
	struct pace_conf conf;
	struct pace_limits l;
	struct wire_request req = {.op = WIRE_OP_SENDFILE};
	const char *msg = NULL;

	(void)state;
	pace_conf_defaults(&conf);
	assert_int_equal(pace_limits_resolve(&conf, &req, &l, &msg), 0);
	assert_false(pace_limits_any(&l));

	/* The operator's defaults fill what the request leaves out. */
	conf.deadline_ms = 7000;
	conf.idle_timeout_ms = 3000;
	req.idle_timeout_ms = 50;
	assert_int_equal(pace_limits_resolve(&conf, &req, &l, &msg), 0);
	assert_int_equal(l.deadline_ms, 7000);
	assert_int_equal(l.idle_timeout_ms, 50);

	/* Beyond the maxima: refused, not clamped. */
	req.deadline_ms = PACE_MAX_MS_DEFAULT + 1;
	assert_int_equal(pace_limits_resolve(&conf, &req, &l, &msg), -EINVAL);
	assert_non_null(strstr(msg, "deadline"));
	req.deadline_ms = PACE_MAX_MS_DEFAULT;
	assert_int_equal(pace_limits_resolve(&conf, &req, &l, &msg), 0);
	conf.max_idle_timeout_ms = 10;
	assert_int_equal(pace_limits_resolve(&conf, &req, &l, &msg), -EINVAL);
	assert_non_null(strstr(msg, "idle"));
	/* 0: no maximum. */
	conf.max_idle_timeout_ms = 0;
	conf.max_deadline_ms = 0;
	req.deadline_ms = UINT32_MAX;
	assert_int_equal(pace_limits_resolve(&conf, &req, &l, &msg), 0);

	req.rate_limit_after = 1;
	assert_int_equal(pace_limits_resolve(&conf, &req, &l, &msg), -EINVAL);
	assert_non_null(strstr(msg, "rate_limit_after"));
	req.rate_limit_bps = PACE_RATE_MAX + 1;
	assert_int_equal(pace_limits_resolve(&conf, &req, &l, &msg), -EINVAL);
	req.rate_limit_bps = PACE_RATE_MAX;
	assert_int_equal(pace_limits_resolve(&conf, &req, &l, &msg), 0);
	assert_true(pace_limits_any(&l));
}

/* The highest rate over a long stall: no overflow, the bucket's depth. */
static void
test_extremes(void **state)
{
	struct pace_limits l = {.rate_bps = PACE_RATE_MAX};
	struct pace p;

	(void)state;
	pace_init(&p, &l, T0);
	pace_start(&p, T0);
	assert_int_equal(pace_allow(&p, T0 + 3600 * 24 * SEC, SIZE_MAX), PACE_RATE_MAX / 20);
	l.rate_bps = 1;
	pace_init(&p, &l, T0);
	pace_start(&p, T0);
	assert_int_equal(pace_allow(&p, T0, 10), 0);
	assert_int_equal(pace_refill_at(&p), T0 + SEC);
	assert_int_equal(pace_allow(&p, T0 + SEC, 10), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_rate),    fd_test(test_burst),    fd_test(test_depth),
	        fd_test(test_no_rate), fd_test(test_deadline), fd_test(test_idle),
	        fd_test(test_resolve), fd_test(test_extremes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
