/*
 * pace - a transfer's limits in time and in rate, as arithmetic on a clock:
 * the deadline, the idle timeout, and a token bucket for the rate limit.
 *
 * Pure: every function takes the time (CLOCK_MONOTONIC, nanoseconds) from
 * its caller and makes no syscall, so that the unit test can drive it. The
 * transfer (xfer-pace.c) owns one struct pace and the one libuv timer that
 * wakes it (pace_next()); a transfer without limits has neither running.
 *
 * Who touches what: the deadline and idle state are read on the loop; the
 * bucket belongs to whoever runs the transfer at the moment (the loop, or
 * one worker job, never both); idle_from is written by that runner and read
 * by the loop, so it is accessed atomically.
 */
#ifndef SFD_PACE_H
#define SFD_PACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* A request's deadline and idle timeout may not exceed the daemon's maximum,
 * one day unless the operator says otherwise. */
#define PACE_MAX_MS_DEFAULT (24u * 3600u * 1000u)
/* The highest rate a request may ask for (1 TiB/s): above it the arithmetic
 * would need more than 64 bits, and no local socket goes that fast. */
#define PACE_RATE_MAX (UINT64_C(1) << 40)

/* The operator's defaults (applied when a request sets none) and maxima
 * (what a request may ask for), in milliseconds; 0 = none. */
struct pace_conf {
	unsigned deadline_ms;
	unsigned max_deadline_ms;
	unsigned idle_timeout_ms;
	unsigned max_idle_timeout_ms;
};

void pace_conf_defaults(struct pace_conf *conf);

/* One transfer's limits; 0 = none. */
struct pace_limits {
	uint32_t deadline_ms;
	uint32_t idle_timeout_ms;
	uint64_t rate_bps;
	uint64_t rate_after; /* bytes sent at full speed first */
};

static inline bool
pace_limits_any(const struct pace_limits *l)
{
	return l->deadline_ms || l->idle_timeout_ms || l->rate_bps;
}

/*
 * pace_limits_resolve() - a request's limits: its own values, checked
 * against @conf's maxima (beyond them the request is refused, not clamped:
 * a transfer must not end sooner than its client asked without saying so),
 * else @conf's defaults (which are the operator's and not bounded by the
 * maxima).
 * Return: 0 and *ret; -EINVAL with *ret_msg.
 */
int pace_limits_resolve(const struct pace_conf *conf, const struct wire_request *req,
                        struct pace_limits *ret, const char **ret_msg);

/* Which limit a transfer ran into. */
enum pace_expiry {
	PACE_LIVE = 0,
	PACE_DEADLINE,
	PACE_IDLE,
};

struct pace {
	struct pace_limits l;
	uint64_t deadline_at; /* ns; 0: none */
	uint64_t idle_ns;     /* 0: none */
	/* The last time a byte moved, the transfer started, or a wait for the
	 * rate limiter ended (atomic). */
	uint64_t idle_from;
	/* Started, and not waiting for the rate limiter: idleness counts. */
	bool idle_counting;

	/* The bucket. */
	uint64_t burst_left; /* of rate_after, still to send at full speed */
	uint64_t tokens;     /* bytes that may go now */
	uint64_t tokens_at;  /* ns of the last refill */
	uint64_t frac;       /* rate * ns not yet a whole byte (units of 1e-9 byte) */
	uint64_t quantum;    /* a wait lasts until at least this much may go */
	uint64_t depth;      /* the most that can pile up while nothing is sent */
	uint64_t want;       /* what the last refused pace_allow() wanted */
};

/* pace_init() - limits @l, counted from @now (when the request came in). */
void pace_init(struct pace *p, const struct pace_limits *l, uint64_t now);

/* pace_start() - the transfer's turn has come: idleness counts from @now. */
void pace_start(struct pace *p, uint64_t now);

/*
 * pace_allow() - how many of @want bytes may be sent at @now: @want without
 * a rate limit; 0 means wait until pace_refill_at().
 */
size_t pace_allow(struct pace *p, uint64_t now, size_t want);

/* pace_moved() - @n bytes left at @now (n > 0). */
void pace_moved(struct pace *p, uint64_t n, uint64_t now);

/* pace_refill_at() - when a refused pace_allow() would say yes. */
uint64_t pace_refill_at(const struct pace *p);

/* pace_rate_wait() - the transfer stops for the rate limiter (@waiting) or
 * goes on after it (!@waiting) at @now: that time is not idleness. */
void pace_rate_wait(struct pace *p, bool waiting, uint64_t now);

/* pace_expired() - has a limit been reached at @now? */
enum pace_expiry pace_expired(const struct pace *p, uint64_t now);

/* pace_next() - when to look again: the earliest of the deadline, the end of
 * the idle time, and (@waiting for tokens) the refill. 0: never. */
uint64_t pace_next(const struct pace *p, uint64_t now, bool waiting);

#endif
