/*
 * account - the daemon's counters and its per-user accounting: connections
 * accepted and refused, requests, replies by status, transfers by method,
 * bytes; requests in flight per user (a limit) and cumulative counts per
 * user (for the control plane); the daemon-wide transfer ids. It tells an
 * observer (the control plane's events) when a transfer starts and ends.
 *
 * Connections write here through account_*() only; the control plane reads
 * a snapshot. One per daemon, shared by every loop: thread-safe (a mutex),
 * so the limits and the totals are exact across loops. The observer is
 * called from the thread of the loop where the transfer runs.
 */
#ifndef SFD_ACCOUNT_H
#define SFD_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

/* Cumulative counters per uid are bounded: past ACCOUNT_MAX_UIDS distinct
 * uids, the rest are counted under ACCOUNT_UID_OTHER. */
#define ACCOUNT_MAX_UIDS 256
#define ACCOUNT_UID_OTHER ((uid_t)-1)

/* What the control plane shows of a transfer. */
struct transfer_info {
	uint64_t transfer;   /* daemon-wide id */
	uint64_t request_id; /* the client's id */
	pid_t pid;
	uid_t uid;
	uint64_t offset;
	uint64_t count;
	bool has_count;
	uint64_t bytes_sent;
	int method; /* enum wire_method */
	bool on_worker;
	bool waiting;      /* behind another transfer to the same destination */
	uint64_t start_ms; /* uv_now() when it started */
	/* Handed off (close_when_done): answered when taken; its outcome is
	 * only the control plane's. */
	bool handoff;
	uint64_t rate_limit_bps; /* 0: none */
	int timeout;             /* at its end: enum wire_timeout */
	unsigned loop;           /* the index of the loop that runs it */
};

enum transfer_event_kind {
	TRANSFER_START,
	TRANSFER_DONE,
	TRANSFER_ERROR,
};

typedef void (*account_event_fn)(void *data, enum transfer_event_kind kind,
                                 const struct transfer_info *info, int status, int error);

struct account_uid {
	uid_t uid;
	unsigned in_flight;
	uint64_t requests;
	uint64_t bytes_sent;
};

struct account_snapshot {
	uint64_t connections_accepted;
	uint64_t connections_refused;
	uint64_t requests;
	unsigned in_flight;
	uint64_t bytes_sent;
	uint64_t by_status[WIRE_STATUS_COUNT];
	uint64_t by_method[WIRE_METHOD_COUNT];
	/* Hand-offs: taken (answered OK), and how those that ended ended;
	 * taken - completed - failed are in flight. */
	uint64_t handoffs_taken;
	uint64_t handoffs_completed;
	uint64_t handoffs_failed;
	unsigned handoffs_in_flight;
	/* TIMED_OUT transfers by the limit that ended them (enum wire_timeout). */
	uint64_t by_timeout[WIRE_TIMEOUT_IDLE + 1];
	struct account_uid *uids; /* malloc'd: account_snapshot_free() */
	unsigned n_uids;
};

struct account;

/* account_new() - @max_in_flight_per_uid: account_reserve()'s limit.
 * Return: 0 and *ret, or -ENOMEM. */
int account_new(unsigned max_in_flight_per_uid, struct account **ret);
void account_free(struct account *a);

/* account_set_observer() - @fn hears of every transfer's start and end
 * (NULL: nobody). */
void account_set_observer(struct account *a, account_event_fn fn, void *data);

void account_connection(struct account *a, bool accepted);
/* account_request() - a record came in. */
void account_request(struct account *a);
/* account_reply() - a reply without a transfer (a refusal, a ping). */
void account_reply(struct account *a, int status);

/*
 * account_reserve() - a request of @uid wants to start: take one of its
 * in-flight slots. Return: 0, or -EUSERS past the limit (or -ENOMEM).
 * account_unreserve() gives it back when the transfer could not be set up.
 */
int account_reserve(struct account *a, uid_t uid);
void account_unreserve(struct account *a, uid_t uid);

/*
 * account_reserve_handoff() - the same for a transfer to be handed off,
 * which also takes one of the daemon's @max hand-off slots: they outlive
 * their connections, so only this bounds them daemon-wide. Return: 0,
 * -EUSERS past the user's limit, -EBUSY past @max (or -ENOMEM).
 * account_unreserve_handoff() gives both back when it could not be set up;
 * account_done() gives them back when it ends.
 */
int account_reserve_handoff(struct account *a, uid_t uid, unsigned max);
void account_unreserve_handoff(struct account *a, uid_t uid);

/* account_start() - the reserved transfer starts: gives it its daemon-wide
 * id (info->transfer) and tells the observer. */
void account_start(struct account *a, struct transfer_info *info);

/* account_done() - it ended with @status (and @error, info->bytes_sent,
 * info->method): releases its slot (and its hand-off slot), counts it,
 * tells the observer. */
void account_done(struct account *a, const struct transfer_info *info, int status, int error);

/* account_in_flight() - transfers started and not done. */
unsigned account_in_flight(const struct account *a);

/* account_snapshot() - a copy of every counter. Return: 0, or -ENOMEM. */
int account_snapshot(const struct account *a, struct account_snapshot *ret);
void account_snapshot_free(struct account_snapshot *s);

#endif
