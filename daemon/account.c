/*
 * account.c - counters and per-user accounting (see account.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "macro.h"

struct uid_count {
	uid_t uid;
	unsigned in_flight;
};

struct uid_stats {
	uid_t uid;
	uint64_t requests;
	uint64_t bytes_sent;
};

struct account {
	/* Guards everything below but the observer: every loop counts here,
	 * and a reserve must be one step (check and take), or two loops could
	 * take a uid past its limit together. Held for a few additions; the
	 * observer is called outside it. */
	pthread_mutex_t mtx;
	unsigned max_in_flight_per_uid;
	uint64_t connections_accepted;
	uint64_t connections_refused;
	uint64_t requests;
	uint64_t bytes_sent;
	uint64_t by_status[WIRE_STATUS_COUNT];
	uint64_t by_method[WIRE_METHOD_COUNT];
	uint64_t by_timeout[WIRE_TIMEOUT_IDLE + 1];
	unsigned in_flight;
	uint64_t next_transfer;
	uint64_t handoffs_taken, handoffs_completed, handoffs_failed;
	unsigned handoffs_in_flight;

	/* In flight per uid: only the users active now. */
	struct uid_count *uids;
	unsigned n_uids, uids_cap;
	/* Cumulative per uid, bounded (ACCOUNT_MAX_UIDS). */
	struct uid_stats *stats;
	unsigned n_stats;

	account_event_fn on_event;
	void *on_event_data;
};

int
account_new(unsigned max_in_flight_per_uid, struct account **ret)
{
	struct account *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	pthread_mutex_init(&a->mtx, NULL);
	a->max_in_flight_per_uid = max_in_flight_per_uid;
	*ret = a;
	return 0;
}

void
account_free(struct account *a)
{
	if (!a)
		return;
	free(a->uids);
	free(a->stats);
	pthread_mutex_destroy(&a->mtx);
	free(a);
}

void
account_set_observer(struct account *a, account_event_fn fn, void *data)
{
	pthread_mutex_lock(&a->mtx);
	a->on_event = fn;
	a->on_event_data = data;
	pthread_mutex_unlock(&a->mtx);
}

/* The observer, read under the lock: it is set and cleared from the loop
 * that runs the control plane while the others count. */
static account_event_fn
observer_locked(struct account *a, void **ret_data)
{
	*ret_data = a->on_event_data;
	return a->on_event;
}

void
account_connection(struct account *a, bool accepted)
{
	pthread_mutex_lock(&a->mtx);
	if (accepted)
		a->connections_accepted++;
	else
		a->connections_refused++;
	pthread_mutex_unlock(&a->mtx);
}

void
account_request(struct account *a)
{
	pthread_mutex_lock(&a->mtx);
	a->requests++;
	pthread_mutex_unlock(&a->mtx);
}

static void
count_status(struct account *a, int status)
{
	if (status >= 0 && (size_t)status < ARRAY_SIZE(a->by_status))
		a->by_status[status]++;
}

void
account_reply(struct account *a, int status)
{
	pthread_mutex_lock(&a->mtx);
	count_status(a, status);
	pthread_mutex_unlock(&a->mtx);
}

/* The cumulative counters of @uid (created on first use), or NULL. */
static struct uid_stats *
uid_stats(struct account *a, uid_t uid)
{
	struct uid_stats *u;

	for (unsigned i = 0; i < a->n_stats; i++)
		if (a->stats[i].uid == uid)
			return &a->stats[i];
	if (a->n_stats >= ACCOUNT_MAX_UIDS - 1 && uid != ACCOUNT_UID_OTHER)
		return uid_stats(a, ACCOUNT_UID_OTHER);
	u = realloc(a->stats, (a->n_stats + 1) * sizeof(*u));
	if (!u)
		return NULL;
	a->stats = u;
	u = &a->stats[a->n_stats++];
	*u = (struct uid_stats){.uid = uid};
	return u;
}

static int
reserve_locked(struct account *a, uid_t uid)
{
	struct uid_count *u;

	for (unsigned i = 0; i < a->n_uids; i++) {
		if (a->uids[i].uid == uid) {
			if (a->uids[i].in_flight >= a->max_in_flight_per_uid)
				return -EUSERS;
			a->uids[i].in_flight++;
			return 0;
		}
	}
	/* The table keeps its room when users go idle: a busy user's count
	 * may drop to zero between every two batches. */
	if (a->n_uids == a->uids_cap) {
		unsigned cap = a->uids_cap ? 2 * a->uids_cap : 4;

		u = realloc(a->uids, cap * sizeof(*u));
		if (!u)
			return -ENOMEM;
		a->uids = u;
		a->uids_cap = cap;
	}
	a->uids[a->n_uids++] = (struct uid_count){.uid = uid, .in_flight = 1};
	return 0;
}

int
account_reserve(struct account *a, uid_t uid)
{
	int r;

	pthread_mutex_lock(&a->mtx);
	r = reserve_locked(a, uid);
	pthread_mutex_unlock(&a->mtx);
	return r;
}

static void
unreserve_locked(struct account *a, uid_t uid)
{
	for (unsigned i = 0; i < a->n_uids; i++) {
		if (a->uids[i].uid != uid)
			continue;
		/* Forget idle uids so the table stays as small as the set of
		 * active users. */
		if (--a->uids[i].in_flight == 0)
			a->uids[i] = a->uids[--a->n_uids];
		return;
	}
}

int
account_reserve_handoff(struct account *a, uid_t uid, unsigned max)
{
	int r = -EBUSY;

	/* One step under the lock: two loops cannot both take the last. */
	pthread_mutex_lock(&a->mtx);
	if (a->handoffs_in_flight < max)
		r = reserve_locked(a, uid);
	if (r == 0)
		a->handoffs_in_flight++;
	pthread_mutex_unlock(&a->mtx);
	return r;
}

void
account_unreserve_handoff(struct account *a, uid_t uid)
{
	pthread_mutex_lock(&a->mtx);
	a->handoffs_in_flight--;
	unreserve_locked(a, uid);
	pthread_mutex_unlock(&a->mtx);
}

void
account_unreserve(struct account *a, uid_t uid)
{
	pthread_mutex_lock(&a->mtx);
	unreserve_locked(a, uid);
	pthread_mutex_unlock(&a->mtx);
}

void
account_start(struct account *a, struct transfer_info *info)
{
	struct uid_stats *us;
	account_event_fn fn;
	void *data;

	pthread_mutex_lock(&a->mtx);
	us = uid_stats(a, info->uid);
	info->transfer = ++a->next_transfer;
	a->in_flight++;
	if (info->handoff)
		a->handoffs_taken++;
	if (us)
		us->requests++;
	fn = observer_locked(a, &data);
	pthread_mutex_unlock(&a->mtx);
	if (fn)
		fn(data, TRANSFER_START, info, 0, 0);
}

void
account_done(struct account *a, const struct transfer_info *info, int status, int error)
{
	struct uid_stats *us;
	account_event_fn fn;
	void *data;

	pthread_mutex_lock(&a->mtx);
	fn = observer_locked(a, &data);
	pthread_mutex_unlock(&a->mtx);
	if (fn)
		fn(data, status == WIRE_STATUS_OK ? TRANSFER_DONE : TRANSFER_ERROR, info, status,
		   error);
	pthread_mutex_lock(&a->mtx);
	a->in_flight--;
	if (info->handoff) {
		if (status == WIRE_STATUS_OK)
			a->handoffs_completed++;
		else
			a->handoffs_failed++;
		a->handoffs_in_flight--;
	}
	unreserve_locked(a, info->uid);
	us = uid_stats(a, info->uid);
	if (us)
		us->bytes_sent += info->bytes_sent;
	a->bytes_sent += info->bytes_sent;
	count_status(a, status);
	if (info->method >= 0 && (size_t)info->method < ARRAY_SIZE(a->by_method))
		a->by_method[info->method]++;
	if (status == WIRE_STATUS_TIMED_OUT && info->timeout > 0 &&
	    (size_t)info->timeout < ARRAY_SIZE(a->by_timeout))
		a->by_timeout[info->timeout]++;
	pthread_mutex_unlock(&a->mtx);
}

unsigned
account_in_flight(const struct account *a)
{
	unsigned n;

	pthread_mutex_lock((pthread_mutex_t *)&a->mtx);
	n = a->in_flight;
	pthread_mutex_unlock((pthread_mutex_t *)&a->mtx);
	return n;
}

int
account_snapshot(const struct account *a_, struct account_snapshot *ret)
{
	struct account *a = (struct account *)a_; /* for its lock */
	struct account_uid *uids;

	pthread_mutex_lock(&a->mtx);
	uids = calloc(a->n_stats + 1, sizeof(*uids));
	if (!uids) {
		pthread_mutex_unlock(&a->mtx);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < a->n_stats; i++) {
		uids[i] = (struct account_uid){
		        .uid = a->stats[i].uid,
		        .requests = a->stats[i].requests,
		        .bytes_sent = a->stats[i].bytes_sent,
		};
		for (unsigned j = 0; j < a->n_uids; j++)
			if (a->uids[j].uid == a->stats[i].uid)
				uids[i].in_flight = a->uids[j].in_flight;
	}
	*ret = (struct account_snapshot){
	        .connections_accepted = a->connections_accepted,
	        .connections_refused = a->connections_refused,
	        .requests = a->requests,
	        .in_flight = a->in_flight,
	        .bytes_sent = a->bytes_sent,
	        .handoffs_taken = a->handoffs_taken,
	        .handoffs_completed = a->handoffs_completed,
	        .handoffs_failed = a->handoffs_failed,
	        .handoffs_in_flight = a->handoffs_in_flight,
	        .uids = uids,
	        .n_uids = a->n_stats,
	};
	memcpy(ret->by_status, a->by_status, sizeof(ret->by_status));
	memcpy(ret->by_method, a->by_method, sizeof(ret->by_method));
	memcpy(ret->by_timeout, a->by_timeout, sizeof(ret->by_timeout));
	pthread_mutex_unlock(&a->mtx);
	return 0;
}

void
account_snapshot_free(struct account_snapshot *s)
{
	free(s->uids);
	s->uids = NULL;
	s->n_uids = 0;
}
