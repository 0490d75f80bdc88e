/*
 * account.c - counters and per-user accounting (see account.h).
 */
#include <errno.h>
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
	free(a);
}

void
account_set_observer(struct account *a, account_event_fn fn, void *data)
{
	a->on_event = fn;
	a->on_event_data = data;
}

void
account_connection(struct account *a, bool accepted)
{
	if (accepted)
		a->connections_accepted++;
	else
		a->connections_refused++;
}

void
account_request(struct account *a)
{
	a->requests++;
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
	count_status(a, status);
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

int
account_reserve(struct account *a, uid_t uid)
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

void
account_unreserve(struct account *a, uid_t uid)
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
	int r;

	if (a->handoffs_in_flight >= max)
		return -EBUSY;
	r = account_reserve(a, uid);
	if (r == 0)
		a->handoffs_in_flight++;
	return r;
}

void
account_unreserve_handoff(struct account *a, uid_t uid)
{
	a->handoffs_in_flight--;
	account_unreserve(a, uid);
}

void
account_start(struct account *a, struct transfer_info *info)
{
	struct uid_stats *us = uid_stats(a, info->uid);

	info->transfer = ++a->next_transfer;
	a->in_flight++;
	if (info->handoff)
		a->handoffs_taken++;
	if (us)
		us->requests++;
	if (a->on_event)
		a->on_event(a->on_event_data, TRANSFER_START, info, 0, 0);
}

void
account_done(struct account *a, const struct transfer_info *info, int status, int error)
{
	struct uid_stats *us;

	if (a->on_event)
		a->on_event(a->on_event_data,
		            status == WIRE_STATUS_OK ? TRANSFER_DONE : TRANSFER_ERROR, info, status,
		            error);
	a->in_flight--;
	if (info->handoff) {
		if (status == WIRE_STATUS_OK)
			a->handoffs_completed++;
		else
			a->handoffs_failed++;
		account_unreserve_handoff(a, info->uid);
	} else {
		account_unreserve(a, info->uid);
	}
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
}

unsigned
account_in_flight(const struct account *a)
{
	return a->in_flight;
}

int
account_snapshot(const struct account *a, struct account_snapshot *ret)
{
	struct account_uid *uids = calloc(a->n_stats + 1, sizeof(*uids));

	if (!uids)
		return -ENOMEM;
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
	return 0;
}

void
account_snapshot_free(struct account_snapshot *s)
{
	free(s->uids);
	s->uids = NULL;
	s->n_uids = 0;
}
