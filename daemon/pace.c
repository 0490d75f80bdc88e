/*
 * pace.c - deadlines, idle timeouts and the token bucket, as arithmetic.
 */
#include <errno.h>

#include "macro.h"
#include "pace.h"

#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)
/* A wait for the rate limiter lasts until a fiftieth of a second's worth may
 * go (so a slow transfer wakes up at most 50 times a second), at least one
 * byte and at most 256 KiB (so a fast one is not sent in big lumps). */
#define QUANTUM_DIV 50
#define QUANTUM_MAX (256 * 1024)
/* Tokens pile up for at most a twentieth of a second while the destination
 * is full or the loop is busy: enough to make up for a late timer (a
 * millisecond is a megabyte at 1 GB/s), too little for a visible burst. */
#define DEPTH_DIV 20

void
pace_conf_defaults(struct pace_conf *conf)
{
	*conf = (struct pace_conf){
	        .max_deadline_ms = PACE_MAX_MS_DEFAULT,
	        .max_idle_timeout_ms = PACE_MAX_MS_DEFAULT,
	};
}

int
pace_limits_resolve(const struct pace_conf *conf, const struct wire_request *req,
                    struct pace_limits *ret, const char **ret_msg)
{
	struct pace_limits l = {
	        .deadline_ms = req->deadline_ms ? req->deadline_ms : conf->deadline_ms,
	        .idle_timeout_ms =
	                req->idle_timeout_ms ? req->idle_timeout_ms : conf->idle_timeout_ms,
	        .rate_bps = req->rate_limit_bps,
	        .rate_after = req->rate_limit_after,
	};

	if (conf->max_deadline_ms && req->deadline_ms > conf->max_deadline_ms) {
		*ret_msg = "deadline_ms is beyond the daemon's maximum (max_deadline_ms)";
		return -EINVAL;
	}
	if (conf->max_idle_timeout_ms && req->idle_timeout_ms > conf->max_idle_timeout_ms) {
		*ret_msg = "idle_timeout_ms is beyond the daemon's maximum (max_idle_timeout_ms)";
		return -EINVAL;
	}
	if (req->rate_limit_bps > PACE_RATE_MAX) {
		*ret_msg = "rate_limit_bps must be at most 2^40 bytes per second";
		return -EINVAL;
	}
	if (req->rate_limit_after && !req->rate_limit_bps) {
		*ret_msg = "rate_limit_after needs rate_limit_bps";
		return -EINVAL;
	}
	*ret = l;
	return 0;
}

void
pace_init(struct pace *p, const struct pace_limits *l, uint64_t now)
{
	*p = (struct pace){
	        .l = *l,
	        .deadline_at = l->deadline_ms ? now + l->deadline_ms * NS_PER_MS : 0,
	        .idle_ns = l->idle_timeout_ms * NS_PER_MS,
	        .idle_from = now,
	        .burst_left = l->rate_after,
	        .tokens_at = now,
	};
	if (l->rate_bps) {
		p->quantum =
		        MIN(MAX(l->rate_bps / QUANTUM_DIV, (uint64_t)1), (uint64_t)QUANTUM_MAX);
		p->depth = MAX(l->rate_bps / DEPTH_DIV, 2 * p->quantum);
	}
}

void
pace_start(struct pace *p, uint64_t now)
{
	__atomic_store_n(&p->idle_from, now, __ATOMIC_RELAXED);
	p->idle_counting = true;
	/* The bucket starts empty when the transfer does: no tokens for the
	 * time spent waiting in a line. */
	p->tokens_at = now;
}

static void
refill(struct pace *p, uint64_t now)
{
	unsigned __int128 acc;
	uint64_t add;

	if (now <= p->tokens_at)
		return;
	acc = (unsigned __int128)p->l.rate_bps * (now - p->tokens_at) + p->frac;
	p->tokens_at = now;
	if (acc / NS_PER_S >= p->depth) {
		p->tokens = p->depth;
		p->frac = 0;
		return;
	}
	add = (uint64_t)(acc / NS_PER_S);
	p->frac = (uint64_t)(acc % NS_PER_S);
	p->tokens = MIN(p->tokens + add, p->depth);
	if (p->tokens == p->depth)
		p->frac = 0;
}

size_t
pace_allow(struct pace *p, uint64_t now, size_t want)
{
	if (!p->l.rate_bps || want == 0)
		return want;
	if (p->burst_left)
		return (size_t)MIN((uint64_t)want, p->burst_left);
	refill(p, now);
	/* Wait for a quantum rather than send a few bytes at a time; the last
	 * bytes of a range do not wait for more than they need. */
	if (p->tokens < MIN(p->quantum, (uint64_t)want)) {
		p->want = want;
		return 0;
	}
	return (size_t)MIN((uint64_t)want, p->tokens);
}

void
pace_moved(struct pace *p, uint64_t n, uint64_t now)
{
	__atomic_store_n(&p->idle_from, now, __ATOMIC_RELAXED);
	if (!p->l.rate_bps)
		return;
	if (p->burst_left) {
		p->burst_left -= MIN(n, p->burst_left);
		/* The rate applies from the end of the burst, with an empty
		 * bucket. */
		if (!p->burst_left) {
			p->tokens = 0;
			p->frac = 0;
			p->tokens_at = now;
		}
		return;
	}
	p->tokens -= MIN(n, p->tokens);
}

uint64_t
pace_refill_at(const struct pace *p)
{
	uint64_t need = MIN(p->quantum, MAX(p->want, (uint64_t)1));
	unsigned __int128 ns;

	if (p->tokens >= need)
		return p->tokens_at;
	/* The time at which rate * t + frac reaches (need - tokens) bytes,
	 * rounded up. */
	ns = (unsigned __int128)(need - p->tokens) * NS_PER_S - p->frac;
	ns = (ns + p->l.rate_bps - 1) / p->l.rate_bps;
	return p->tokens_at + (uint64_t)ns;
}

void
pace_rate_wait(struct pace *p, bool waiting, uint64_t now)
{
	p->idle_counting = !waiting;
	if (!waiting)
		__atomic_store_n(&p->idle_from, now, __ATOMIC_RELAXED);
}

enum pace_expiry
pace_expired(const struct pace *p, uint64_t now)
{
	if (p->deadline_at && now >= p->deadline_at)
		return PACE_DEADLINE;
	if (p->idle_ns && p->idle_counting &&
	    now >= __atomic_load_n(&p->idle_from, __ATOMIC_RELAXED) + p->idle_ns)
		return PACE_IDLE;
	return PACE_LIVE;
}

uint64_t
pace_next(const struct pace *p, uint64_t now, bool waiting)
{
	uint64_t next = p->deadline_at;

	(void)now;
	if (p->idle_ns && p->idle_counting) {
		uint64_t t = __atomic_load_n(&p->idle_from, __ATOMIC_RELAXED) + p->idle_ns;

		next = next ? MIN(next, t) : t;
	}
	if (waiting) {
		uint64_t t = pace_refill_at(p);

		next = next ? MIN(next, t) : t;
	}
	return next;
}
