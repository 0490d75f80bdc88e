/*
 * xfer-pace.c - a transfer's deadline, idle timeout and rate limit: the one
 * libuv timer per limited transfer that enforces them (pace.h does the
 * arithmetic). Transfers without a limit have no timer running and pay one
 * branch per step.
 *
 * A limit that runs out ends the transfer the way cancellation does
 * (xfer_cancel()): at once on the loop, in a destination's line, parked or
 * queued for a worker; by the kick signal for a worker blocked in a
 * syscall. Its reply then says TIMED_OUT instead of CANCELLED
 * (xfer_finish_error()).
 *
 * The rate limiter never blocks a thread: a transfer whose bucket is empty
 * stops (a loop transfer stops watching its destination, a worker job gives
 * its thread back) and this timer starts it again when enough tokens have
 * come in. That wait is not idleness.
 */
#include <time.h>

#include "xfer-internal.h"

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
xfer_rate_limit(const struct xfer *x)
{
	return x->p.limits.rate_bps;
}

void
xfer_pace_init(struct xfer *x)
{
	if (!pace_limits_any(&x->p.limits))
		return;
	x->pace.on = true;
	/* The request came in this loop turn: its deadline counts from now. */
	pace_init(&x->pace.p, &x->p.limits, now_ns());
}

static void
resume(struct xfer *x)
{
	if (x->on_worker)
		xfer_queue_job(x);
	else
		xfer_run_loop(x, x->p.chunk);
}

static void
on_pace_timer(uv_timer_t *t)
{
	struct xfer *x = t->data;
	uint64_t now = now_ns();
	enum pace_expiry e = pace_expired(&x->pace.p, now);

	if (e != PACE_LIVE) {
		x->pace.expired = e;
		/* Finishes it now, or once its worker has stopped. */
		xfer_cancel(x);
		return;
	}
	/* The loop's clock may lag the real one: a timer can fire a little
	 * early, and is then only started again. */
	if (x->pace.waiting && pace_refill_at(&x->pace.p) <= now) {
		x->pace.waiting = false;
		pace_rate_wait(&x->pace.p, false, now);
		resume(x);
	}
	xfer_pace_arm(x);
}

void
xfer_pace_arm(struct xfer *x)
{
	uint64_t now, next;

	if (!x->pace.on || x->finished)
		return;
	if (!x->pace.timer_init) {
		if (uv_timer_init(x->loop, &x->pace.timer) < 0)
			return;
		x->pace.timer.data = x;
		x->pace.timer_init = true;
	}
	now = now_ns();
	next = pace_next(&x->pace.p, now, x->pace.waiting);
	if (!next) {
		uv_timer_stop(&x->pace.timer);
		return;
	}
	/* Whole milliseconds, rounded up: libuv's timers have no finer grain. */
	(void)uv_timer_start(&x->pace.timer, on_pace_timer,
	                     next > now ? (next - now + 999999) / 1000000 : 0, 0);
}

void
xfer_pace_start(struct xfer *x)
{
	if (!x->pace.on)
		return;
	pace_start(&x->pace.p, now_ns());
	xfer_pace_arm(x);
}

size_t
xfer_pace_allow(struct xfer *x, size_t want)
{
	if (!x->pace.on || !x->p.limits.rate_bps)
		return want;
	return pace_allow(&x->pace.p, now_ns(), want);
}

void
xfer_pace_moved(struct xfer *x, size_t n)
{
	if (x->pace.on && n > 0)
		pace_moved(&x->pace.p, n, now_ns());
}

void
xfer_pace_wait(struct xfer *x)
{
	/* Later transfers to the destination wait for this one, as they
	 * would for one waiting to write. */
	xfer_own_line(x);
	if (x->watching)
		engine_unpark(x->engine, x->watching);
	x->watching = NULL;
	x->pace.waiting = true;
	pace_rate_wait(&x->pace.p, true, now_ns());
	xfer_pace_arm(x);
}

int
xfer_pace_timeout(const struct xfer *x)
{
	switch (x->pace.expired) {
	case PACE_DEADLINE:
		return WIRE_TIMEOUT_DEADLINE;
	case PACE_IDLE:
		return WIRE_TIMEOUT_IDLE;
	}
	return WIRE_TIMEOUT_NONE;
}
