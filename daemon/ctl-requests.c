/*
 * ctl-requests.c - the control plane's requests: one function per
 * operation, behind a table indexed by the request's oneof case. Each fills
 * the response (and the storage its body points into, in struct answer);
 * ctl_handle_request() packs it and posts it. Loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "config.h"
#include "control.pb-c.h"
#include "ctl-internal.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "wire.h"

struct list_ctx {
	Sendfiled__Control__V1__Transfer **items;
	Sendfiled__Control__V1__Transfer *store;
	size_t n, cap;
	uint64_t now;
};

static void
collect(const struct transfer_info *info, void *arg)
{
	struct list_ctx *lc = arg;
	Sendfiled__Control__V1__Transfer *t;

	if (lc->n >= lc->cap)
		return;
	t = &lc->store[lc->n];
	sendfiled__control__v1__transfer__init(t);
	t->has_transfer = t->has_request_id = t->has_pid = t->has_uid = true;
	t->transfer = info->transfer;
	t->request_id = info->request_id;
	t->pid = (uint32_t)info->pid;
	t->uid = (uint32_t)info->uid;
	t->has_offset = t->has_bytes_sent = t->has_method = t->has_on_worker = true;
	t->offset = info->offset;
	t->has_count = info->has_count;
	t->count = info->count;
	t->bytes_sent = info->bytes_sent;
	t->method = (uint32_t)info->method;
	t->on_worker = info->on_worker;
	t->has_waiting = true;
	t->waiting = info->waiting;
	t->has_handoff = info->handoff;
	t->handoff = info->handoff;
	t->has_rate_limit_bps = info->rate_limit_bps != 0;
	t->rate_limit_bps = info->rate_limit_bps;
	t->has_age_ms = t->has_loop = true;
	/* Started on another loop, whose clock may be a tick ahead. */
	t->age_ms = lc->now > info->start_ms ? lc->now - info->start_ms : 0;
	t->loop = info->loop;
	lc->items[lc->n++] = t;
}

static void
count_transfers(const struct transfer_info *info, void *arg)
{
	(void)info;
	(*(size_t *)arg)++;
}

/* A response and what its body points to, freed after packing. */
struct answer {
	uint32_t loop_conns[LOOPS_MAX];
	Sendfiled__Control__V1__ControlResponse resp;
	Sendfiled__Control__V1__Status st;
	Sendfiled__Control__V1__Stats stats;
	Sendfiled__Control__V1__TransferList tl;
	Sendfiled__Control__V1__Limits lim;
	struct account_snapshot snap;
	bool has_snap;
	Sendfiled__Control__V1__UidStats *us_store, **us_items;
	struct list_ctx lc;
	uint32_t uids[SERVER_MAX_ALLOW], gids[SERVER_MAX_ALLOW];
	char msgbuf[128];
};

static void
fail(struct answer *a, int error, const char *msg)
{
	a->resp.has_error = true;
	a->resp.error = error;
	a->resp.message = (char *)msg;
}

static void
op_status(struct ctl *ctl, const Sendfiled__Control__V1__ControlRequest *req, struct answer *a)
{
	struct server *srv = ctl->srv;
	Sendfiled__Control__V1__Status *st = &a->st;
	struct server_status ss;

	(void)req;
	server_status(srv, &ss);
	st->version = SFD_VERSION;
	st->has_pid = st->has_uptime_ms = st->has_draining = true;
	st->pid = (uint32_t)getpid();
	st->socket = (char *)server_config(srv)->socket_path;
	st->uptime_ms = ss.uptime_ms;
	st->draining = ss.stopping;
	st->has_connections = st->has_in_flight = true;
	st->connections = ss.connections;
	st->in_flight = account_in_flight(server_account(srv));
	st->log_level = (char *)log_level_name(log_get_level());
	st->has_loops = true;
	st->loops = ss.loops;
	for (unsigned i = 0; i < ss.loops; i++)
		a->loop_conns[i] = ss.loop_connections[i];
	st->n_loop_connections = ss.loops;
	st->loop_connections = a->loop_conns;
	a->resp.body_case = SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_STATUS;
	a->resp.status = st;
}

static void
stats_per_uid(struct answer *a)
{
	const struct account_snapshot *snap = &a->snap;

	a->us_store = calloc(snap->n_uids + 1, sizeof(*a->us_store));
	a->us_items = calloc(snap->n_uids + 1, sizeof(*a->us_items));
	if (!a->us_store || !a->us_items)
		return;
	for (unsigned i = 0; i < snap->n_uids; i++) {
		Sendfiled__Control__V1__UidStats *u = &a->us_store[i];

		sendfiled__control__v1__uid_stats__init(u);
		u->has_uid = u->has_in_flight = u->has_requests = u->has_bytes_sent = true;
		u->uid = (uint32_t)snap->uids[i].uid;
		u->in_flight = snap->uids[i].in_flight;
		u->requests = snap->uids[i].requests;
		u->bytes_sent = snap->uids[i].bytes_sent;
		a->us_items[i] = u;
	}
	a->stats.n_per_uid = snap->n_uids;
	a->stats.per_uid = a->us_items;
}

static void
op_stats(struct ctl *ctl, const Sendfiled__Control__V1__ControlRequest *req, struct answer *a)
{
	Sendfiled__Control__V1__Stats *stats = &a->stats;
	struct account_snapshot *snap = &a->snap;
	struct server_status ss;

	(void)req;
	server_status(ctl->srv, &ss);
	if (account_snapshot(server_account(ctl->srv), snap) < 0) {
		fail(a, ENOMEM, "out of memory");
		return;
	}
	a->has_snap = true;
	stats->has_connections_accepted = stats->has_connections_refused = true;
	stats->connections_accepted = snap->connections_accepted;
	stats->connections_refused = snap->connections_refused;
	stats->has_connections = stats->has_requests = stats->has_in_flight = true;
	stats->connections = ss.connections;
	stats->requests = snap->requests;
	stats->in_flight = snap->in_flight;
	stats->has_bytes_sent = true;
	stats->bytes_sent = snap->bytes_sent;
	stats->n_by_status = ARRAY_SIZE(snap->by_status);
	stats->by_status = snap->by_status;
	stats->n_by_method = ARRAY_SIZE(snap->by_method);
	stats->by_method = snap->by_method;
	stats->n_by_timeout = ARRAY_SIZE(snap->by_timeout);
	stats->by_timeout = snap->by_timeout;
	stats->has_control_listener_restarts = true;
	stats->control_listener_restarts = ctl->listener_restarts;
	stats->has_handoffs_taken = stats->has_handoffs_completed = true;
	stats->has_handoffs_failed = stats->has_handoffs_in_flight = true;
	stats->handoffs_taken = snap->handoffs_taken;
	stats->handoffs_completed = snap->handoffs_completed;
	stats->handoffs_failed = snap->handoffs_failed;
	stats->handoffs_in_flight = snap->handoffs_in_flight;
	stats_per_uid(a);
	a->resp.body_case = SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_STATS;
	a->resp.stats = stats;
}

static void
op_list(struct ctl *ctl, const Sendfiled__Control__V1__ControlRequest *req, struct answer *a)
{
	struct list_ctx *lc = &a->lc;
	size_t n = 0;

	(void)req;
	server_foreach_transfer(ctl->srv, count_transfers, &n);
	lc->cap = n;
	lc->now = uv_hrtime() / 1000000;
	lc->store = calloc(n + 1, sizeof(*lc->store));
	lc->items = calloc(n + 1, sizeof(*lc->items));
	if (!lc->store || !lc->items) {
		fail(a, ENOMEM, "out of memory");
		return;
	}
	server_foreach_transfer(ctl->srv, collect, lc);
	a->tl.n_transfers = lc->n;
	a->tl.transfers = lc->items;
	a->resp.body_case = SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_LIST;
	a->resp.list = &a->tl;
}

static void
op_cancel(struct ctl *ctl, const Sendfiled__Control__V1__ControlRequest *req, struct answer *a)
{
	if (!req->cancel->has_transfer ||
	    server_cancel_transfer(ctl->srv, req->cancel->transfer) < 0) {
		fail(a, ENOENT, "no such transfer in flight");
		return;
	}
	log_notice("control plane: cancelled transfer %llu",
	           (unsigned long long)req->cancel->transfer);
}

static void
op_drain(struct ctl *ctl, const Sendfiled__Control__V1__ControlRequest *req, struct answer *a)
{
	(void)req;
	(void)a;
	log_notice("control plane: drain requested");
	/* Stopping closes the control plane: after this reply is on its way. */
	ctl->drain_after_reply = true;
}

static void
op_set_log_level(struct ctl *ctl, const Sendfiled__Control__V1__ControlRequest *req,
                 struct answer *a)
{
	int lvl = req->set_log_level->level ? log_parse_level(req->set_log_level->level) : -1;

	(void)ctl;
	if (lvl < 0) {
		fail(a, EINVAL, "unknown log level (err, warning, notice, info, debug)");
		return;
	}
	log_set_level(lvl);
	snprintf(a->msgbuf, sizeof(a->msgbuf), "log level is now %s", log_level_name(lvl));
	a->resp.message = a->msgbuf;
}

static void
op_limits(struct ctl *ctl, const Sendfiled__Control__V1__ControlRequest *req, struct answer *a)
{
	const struct server_config *cfg = server_config(ctl->srv);
	Sendfiled__Control__V1__Limits *lim = &a->lim;

	(void)req;
	lim->has_max_connections = lim->has_max_in_flight_per_conn = true;
	lim->max_connections = cfg->max_connections;
	lim->max_in_flight_per_conn = cfg->max_in_flight_per_conn;
	lim->has_max_in_flight_per_uid = lim->has_max_record = true;
	lim->max_in_flight_per_uid = cfg->max_in_flight_per_uid;
	lim->has_max_handoffs = true;
	lim->max_handoffs = cfg->max_handoffs;
	lim->max_record = WIRE_MAX_RECORD;
	lim->has_chunk_size = lim->has_drain_timeout_ms = true;
	lim->chunk_size = cfg->chunk_size;
	lim->drain_timeout_ms = cfg->drain_timeout_ms;
	for (unsigned i = 0; i < cfg->n_allow_uids; i++)
		a->uids[i] = (uint32_t)cfg->allow_uids[i];
	for (unsigned i = 0; i < cfg->n_allow_gids; i++)
		a->gids[i] = (uint32_t)cfg->allow_gids[i];
	lim->n_allow_uids = cfg->n_allow_uids;
	lim->allow_uids = a->uids;
	lim->n_allow_gids = cfg->n_allow_gids;
	lim->allow_gids = a->gids;
	a->resp.body_case = SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_LIMITS;
	a->resp.limits = lim;
}

static void (*const ops[])(struct ctl *ctl, const Sendfiled__Control__V1__ControlRequest *req,
                           struct answer *a) = {
        [SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATUS] = op_status,
        [SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATS] = op_stats,
        [SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIST] = op_list,
        [SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_CANCEL] = op_cancel,
        [SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_DRAIN] = op_drain,
        [SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_SET_LOG_LEVEL] = op_set_log_level,
        [SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIMITS] = op_limits,
};

void
ctl_handle_request(struct ctl *ctl, nng_msg *req_msg)
{
	struct answer a = {
	        .resp = SENDFILED__CONTROL__V1__CONTROL_RESPONSE__INIT,
	        .st = SENDFILED__CONTROL__V1__STATUS__INIT,
	        .stats = SENDFILED__CONTROL__V1__STATS__INIT,
	        .tl = SENDFILED__CONTROL__V1__TRANSFER_LIST__INIT,
	        .lim = SENDFILED__CONTROL__V1__LIMITS__INIT,
	};
	Sendfiled__Control__V1__ControlRequest *req;
	nng_msg *out = NULL;
	size_t len;

	req = sendfiled__control__v1__control_request__unpack(NULL, nng_msg_len(req_msg),
	                                                      nng_msg_body(req_msg));
	if (!req)
		fail(&a, EBADMSG, "control request does not parse");
	else if ((size_t)req->op_case < ARRAY_SIZE(ops) && ops[req->op_case])
		ops[req->op_case](ctl, req, &a);
	else
		fail(&a, EOPNOTSUPP, "unknown control operation");

	len = sendfiled__control__v1__control_response__get_packed_size(&a.resp);
	if (nng_msg_alloc(&out, len) == 0) {
		sendfiled__control__v1__control_response__pack(&a.resp, nng_msg_body(out));
		ctl_post(ctl, out, false, NULL, NULL);
	} else {
		ctl_post(ctl, NULL, true, NULL, NULL);
	}
	if (req)
		sendfiled__control__v1__control_request__free_unpacked(req, NULL);
	if (a.has_snap)
		account_snapshot_free(&a.snap);
	free(a.lc.store);
	free(a.lc.items);
	free(a.us_store);
	free(a.us_items);
}
