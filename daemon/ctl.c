/*
 * ctl.c - the control plane over nng (see ctl.h).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sched.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>

#include "config.h"
#include "control.pb-c.h"
#include "ctl.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "sockpath.h"
#include "wire.h"

/* Control requests are tiny; anything larger is refused by nng itself. */
#define CTL_RECV_MAX (64 * 1024)
/* How long the probe waits for a listener's SP handshake. */
#define PROBE_TIMEOUT_MS 1000
/* SP protocol numbers (see nng's protocol headers): what the probe says it is. */
#define SP_PROTO_REQ0 0x30
#define SP_PROTO_SUB0 0x21
/* How often subscribers hear from an idle daemon. */
#define HEARTBEAT_MS 1000
/* Pipes of one endpoint tracked by id (control clients and subscribers). */
#define MAX_TRACKED_PIPES 256
/* Events waiting for the nng thread; past this, new ones are dropped (as PUB
 * drops for a slow subscriber). */
#define MAX_QUEUED_EVENTS 1024

struct endpoint {
	char path[108];
	char url[128];
	nng_socket sock;
	nng_listener listener;
	bool open;
	int probe_proto;
	/* Pipes the socket core has taken from this endpoint, and those open
	 * now (updated on nng threads). */
	atomic_ulong attached;
	atomic_long connected;
	/* Which pipes are open: nng also reports the removal of a pipe it
	 * never finished adding (one refused mid-handshake, as on a listener
	 * hit by issue #1518), which must not count. */
	pthread_mutex_t pipes_mtx;
	uint32_t pipes[MAX_TRACKED_PIPES];
	unsigned n_pipes;
	bool pipes_overflow; /* more than we track: count as connected from now on */
};

struct ctl {
	struct server *srv;
	struct ctl_config cfg;
	struct endpoint rep, pub;

	nng_ctx ctx;
	nng_aio *aio;
	bool sending; /* the aio carries a reply (else a receive) */
	/* A drain waits until its own reply is on its way: stopping closes
	 * the control plane. */
	bool drain_after_reply;
	atomic_bool drain_now;

	/* Hand-off from nng's threads to the loop: a slot, and an eventfd the
	 * loop polls (not a uv_async_t, whose descriptor is libuv's and would
	 * not be in the nng thread's table; see nng_thread_main()). */
	pthread_mutex_t mtx;
	nng_msg *pending;
	int wake_fd;
	uv_poll_t wake_poll;

	/* Hand-off from the loop to the nng thread, which makes every call
	 * into nng (see nng_thread_main()). */
	pthread_t thread;
	pthread_mutex_t jobs_mtx;
	pthread_cond_t jobs_cv;
	bool ready;     /* the thread has set nng up, or failed to */
	int ready_err;  /* 0, or why it failed */
	nng_msg *reply; /* to send on the REP context */
	bool rearm;     /* no reply this time: receive the next request */
	bool restart_rep, restart_pub;
	bool stop; /* close nng's sockets and end */
	nng_msg *events[MAX_QUEUED_EVENTS];
	unsigned n_events;

	uv_timer_t heartbeat_timer;
	/* The probe thread (see probe_thread_main()); jobs_mtx guards these. */
	pthread_t probe_thread;
	bool probe_started;
	pthread_cond_t probe_cv; /* CLOCK_MONOTONIC */
	bool closing;
	int holds; /* handles still closing: free when 0 */
	atomic_ullong listener_restarts;
};

void
ctl_config_defaults(struct ctl_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = 0600;
	cfg->probe_interval_ms = 1000;
}

static int
nng_to_errno(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_EPERM:
		return -EACCES;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_ECLOSED:
		return -EBADF;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	default:
		if (rv & NNG_ESYSERR)
			return -(rv & ~NNG_ESYSERR);
		return -EIO;
	}
}

/* ---- listeners ---------------------------------------------------------- */

static int
listen_endpoint(struct ctl *ctl, struct endpoint *ep)
{
	int rv;

	rv = nng_listener_create(&ep->listener, ep->sock, ep->url);
	if (rv == 0)
		rv = nng_listener_set_int(ep->listener, NNG_OPT_IPC_PERMISSIONS,
		                          (int)ctl->cfg.mode);
	if (rv == 0)
		rv = nng_listener_start(ep->listener, 0);
	if (rv != 0) {
		nng_listener_close(ep->listener);
		return nng_to_errno(rv);
	}
	/* Here rather than by the caller: a re-created listener needs it too. */
	if (ctl->cfg.has_group && chown(ep->path, (uid_t)-1, ctl->cfg.group) < 0) {
		int r = -errno;

		nng_listener_close(ep->listener);
		return r;
	}
	return 0;
}

/*
 * A listener hit by nng issue #1518 still completes SP handshakes, but its
 * socket core has stopped taking the negotiated pipes (the transport reported
 * the dropped peer as NNG_ECLOSED, which the core reads as "listener closed"),
 * so no request ever arrives. Re-create it; clients queued on the dead one
 * reconnect (nng dialers retry) to the new one.
 */
static void
restart_listener(struct ctl *ctl, struct endpoint *ep)
{
	int r;

	log_warn("control plane: %s stopped answering; re-creating its listener", ep->path);
	nng_listener_close(ep->listener);
	unlink(ep->path);
	r = listen_endpoint(ctl, ep);
	if (r < 0)
		log_err("control plane: cannot listen on %s again: %s", ep->path, strerror(-r));
	ctl->listener_restarts++;
}

static void
on_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct endpoint *ep = arg;
	uint32_t id = nng_pipe_id(p);

	pthread_mutex_lock(&ep->pipes_mtx);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_fetch_add(&ep->attached, 1);
		if (ep->n_pipes < MAX_TRACKED_PIPES)
			ep->pipes[ep->n_pipes++] = id;
		else
			ep->pipes_overflow = true;
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		for (unsigned i = 0; i < ep->n_pipes; i++) {
			if (ep->pipes[i] == id) {
				ep->pipes[i] = ep->pipes[--ep->n_pipes];
				break;
			}
		}
	}
	atomic_store(&ep->connected, (long)ep->n_pipes + ep->pipes_overflow);
	pthread_mutex_unlock(&ep->pipes_mtx);
}

/*
 * Is @ep's listener alive? Complete an SP handshake with it and wait for the
 * socket core to take the pipe (on_pipe_added). Runs on a worker thread: it
 * blocks for up to PROBE_TIMEOUT_MS.
 */
static bool
probe(struct endpoint *ep)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	unsigned char hello[8] = {0,
	                          'S',
	                          'P',
	                          0,
	                          (unsigned char)(ep->probe_proto >> 8),
	                          (unsigned char)ep->probe_proto,
	                          0,
	                          0};
	unsigned long before = atomic_load(&ep->attached);
	unsigned char got[8];
	size_t have = 0;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return true; /* cannot tell: do not disturb the listener */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ep->path);
	/* Refused, missing, or a full backlog nobody accepts from: gone. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return false;
	if (send(fd, hello, sizeof(hello), MSG_NOSIGNAL) != sizeof(hello))
		return false;
	while (have < sizeof(got)) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, PROBE_TIMEOUT_MS) <= 0)
			return false;
		n = recv(fd, got + have, sizeof(got) - have, 0);
		if (n <= 0)
			return false;
		have += n;
	}
	for (int waited = 0; waited < PROBE_TIMEOUT_MS; waited += 10) {
		if (atomic_load(&ep->attached) != before)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

/*
 * Probes both listeners every probe_interval_ms until the control plane
 * stops, and has the nng thread re-create one that fails. A thread of its
 * own, started by the nng thread and sharing its descriptor table: a probe
 * blocks for up to a second or two when a listener is dead, which must hold
 * up neither the loop nor replies.
 */
static void *
probe_thread_main(void *arg)
{
	struct ctl *ctl = arg;

	pthread_mutex_lock(&ctl->jobs_mtx);
	while (!ctl->stop) {
		struct timespec ts;
		bool rep_ok, pub_ok;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += ctl->cfg.probe_interval_ms / 1000;
		ts.tv_nsec += (long)(ctl->cfg.probe_interval_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		while (!ctl->stop &&
		       pthread_cond_timedwait(&ctl->probe_cv, &ctl->jobs_mtx, &ts) != ETIMEDOUT)
			;
		if (ctl->stop)
			break;
		pthread_mutex_unlock(&ctl->jobs_mtx);
		rep_ok = probe(&ctl->rep);
		pub_ok = probe(&ctl->pub);
		pthread_mutex_lock(&ctl->jobs_mtx);
		ctl->restart_rep |= !rep_ok;
		ctl->restart_pub |= !pub_ok;
		if (!rep_ok || !pub_ok)
			pthread_cond_signal(&ctl->jobs_cv);
	}
	pthread_mutex_unlock(&ctl->jobs_mtx);
	return NULL;
}

static void ctl_destroy(struct ctl *ctl);
static void post(struct ctl *ctl, nng_msg *reply, bool rearm, nng_msg *event,
                 struct endpoint *restart);

static void
release(struct ctl *ctl)
{
	if (--ctl->holds > 0)
		return;
	ctl_destroy(ctl);
}

/* ---- the nng thread ---------------------------------------------------- */

static int nng_setup(struct ctl *ctl);

static bool
has_jobs(const struct ctl *ctl)
{
	return ctl->reply || ctl->rearm || ctl->restart_rep || ctl->restart_pub || ctl->stop ||
	       ctl->n_events > 0;
}

/*
 * The nng thread makes every call into nng, from setting it up to closing
 * it, and first takes a descriptor table of its own, which nng's threads
 * (started from here) share and the loop's does not. A table shared between
 * threads makes every syscall on a descriptor take a reference on its file;
 * the loop, which makes several per request, keeps the cheaper way as long
 * as it has the table to itself (until a transfer needs a worker thread).
 *
 * nng does a socket's I/O in whichever thread calls it (a reply or an event
 * may be written before nng_ctx_send() or nng_sendmsg() returns), so the
 * loop never calls it: it posts, and this thread runs. The copy of the
 * loop's table this thread gets keeps only the standard descriptors and the
 * eventfd that wakes the loop.
 */
static void *
nng_thread_main(void *arg)
{
	struct ctl *ctl = arg;
	int r;

	if (unshare(CLONE_FILES) == 0) {
		unsigned w = (unsigned)ctl->wake_fd;

		if (w > 3)
			(void)close_range(3, w - 1, 0);
		(void)close_range(w < 3 ? 3 : w + 1, ~0U, 0);
	}
	r = nng_setup(ctl);
	pthread_mutex_lock(&ctl->jobs_mtx);
	ctl->ready = true;
	ctl->ready_err = r;
	pthread_cond_broadcast(&ctl->jobs_cv);
	if (r < 0) {
		pthread_mutex_unlock(&ctl->jobs_mtx);
		return NULL;
	}
	if (ctl->cfg.probe_interval_ms > 0)
		ctl->probe_started =
		        pthread_create(&ctl->probe_thread, NULL, probe_thread_main, ctl) == 0;
	for (;;) {
		nng_msg *reply, *events[MAX_QUEUED_EVENTS];
		unsigned n;
		bool rearm, rep, pub, stop;

		while (!has_jobs(ctl))
			pthread_cond_wait(&ctl->jobs_cv, &ctl->jobs_mtx);
		reply = ctl->reply;
		rearm = ctl->rearm;
		rep = ctl->restart_rep;
		pub = ctl->restart_pub;
		stop = ctl->stop;
		n = ctl->n_events;
		memcpy(events, ctl->events, n * sizeof(*events));
		ctl->reply = NULL;
		ctl->rearm = ctl->restart_rep = ctl->restart_pub = false;
		ctl->n_events = 0;
		pthread_mutex_unlock(&ctl->jobs_mtx);

		if (reply) {
			ctl->sending = true;
			nng_aio_set_msg(ctl->aio, reply);
			nng_ctx_send(ctl->ctx, ctl->aio);
		} else if (rearm) {
			nng_ctx_recv(ctl->ctx, ctl->aio);
		}
		/* PUB drops for slow subscribers; it never blocks. */
		for (unsigned i = 0; i < n; i++)
			if (nng_sendmsg(ctl->pub.sock, events[i], NNG_FLAG_NONBLOCK) != 0)
				nng_msg_free(events[i]);
		if (rep)
			restart_listener(ctl, &ctl->rep);
		if (pub)
			restart_listener(ctl, &ctl->pub);
		if (stop) {
			if (ctl->probe_started)
				pthread_join(ctl->probe_thread, NULL);
			/* Waits for a running callback; after this none will run. */
			nng_aio_stop(ctl->aio);
			nng_ctx_close(ctl->ctx);
			nng_close(ctl->rep.sock);
			nng_close(ctl->pub.sock);
			nng_aio_free(ctl->aio);
			return NULL;
		}
		pthread_mutex_lock(&ctl->jobs_mtx);
	}
}

/* Loop thread: hand @ctl's nng thread what to do next. It takes everything
 * pending at once, so only the first job since it last looked wakes it. */
static void
post(struct ctl *ctl, nng_msg *reply, bool rearm, nng_msg *event, struct endpoint *restart)
{
	bool idle;

	pthread_mutex_lock(&ctl->jobs_mtx);
	idle = !has_jobs(ctl);
	if (reply)
		ctl->reply = reply;
	ctl->rearm |= rearm;
	if (event && ctl->n_events < MAX_QUEUED_EVENTS) {
		ctl->events[ctl->n_events++] = event;
		event = NULL;
	}
	if (restart == &ctl->rep)
		ctl->restart_rep = true;
	else if (restart == &ctl->pub)
		ctl->restart_pub = true;
	if (idle)
		pthread_cond_signal(&ctl->jobs_cv);
	pthread_mutex_unlock(&ctl->jobs_mtx);
	nng_msg_free(event); /* dropped: too many waiting */
}

/* ---- requests ----------------------------------------------------------- */

/* nng thread: tell the loop there is something for it. */
static void
wake(struct ctl *ctl)
{
	uint64_t one = 1;

	(void)!write(ctl->wake_fd, &one, sizeof(one));
}

/* nng thread: hand the request to the loop, or re-arm. Never blocks. */
static void
on_aio(void *arg)
{
	struct ctl *ctl = arg;
	int rv = nng_aio_result(ctl->aio);

	if (ctl->sending) {
		ctl->sending = false;
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(ctl->aio));
		if (rv == NNG_ECLOSED)
			return;
		if (ctl->drain_after_reply) {
			ctl->drain_after_reply = false;
			atomic_store(&ctl->drain_now, true);
			wake(ctl);
		}
		nng_ctx_recv(ctl->ctx, ctl->aio);
		return;
	}
	if (rv == NNG_ECLOSED)
		return;
	if (rv != 0) {
		nng_ctx_recv(ctl->ctx, ctl->aio);
		return;
	}
	pthread_mutex_lock(&ctl->mtx);
	ctl->pending = nng_aio_get_msg(ctl->aio);
	pthread_mutex_unlock(&ctl->mtx);
	wake(ctl);
}

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
	t->has_age_ms = true;
	t->age_ms = lc->now - info->start_ms;
	lc->items[lc->n++] = t;
}

static void
count_transfers(const struct transfer_info *info, void *arg)
{
	(void)info;
	(*(size_t *)arg)++;
}

/* Build and send the reply to one request. Loop thread. */
static void
handle(struct ctl *ctl, nng_msg *req_msg)
{
	Sendfiled__Control__V1__ControlResponse resp =
	        SENDFILED__CONTROL__V1__CONTROL_RESPONSE__INIT;
	Sendfiled__Control__V1__Status st = SENDFILED__CONTROL__V1__STATUS__INIT;
	Sendfiled__Control__V1__Stats stats = SENDFILED__CONTROL__V1__STATS__INIT;
	Sendfiled__Control__V1__TransferList tl = SENDFILED__CONTROL__V1__TRANSFER_LIST__INIT;
	Sendfiled__Control__V1__Limits lim = SENDFILED__CONTROL__V1__LIMITS__INIT;
	Sendfiled__Control__V1__ControlRequest *req;
	struct server *srv = ctl->srv;
	struct list_ctx lc = {0};
	Sendfiled__Control__V1__UidStats *us_store = NULL, **us_items = NULL;
	uint64_t by_status[ARRAY_SIZE(srv->stats.by_status)];
	uint64_t by_method[ARRAY_SIZE(srv->stats.by_method)];
	uint32_t uids[SERVER_MAX_ALLOW], gids[SERVER_MAX_ALLOW];
	char msgbuf[128] = "";
	nng_msg *out = NULL;
	size_t len;

	req = sendfiled__control__v1__control_request__unpack(NULL, nng_msg_len(req_msg),
	                                                      nng_msg_body(req_msg));
	if (!req) {
		resp.has_error = true;
		resp.error = EBADMSG;
		resp.message = "control request does not parse";
		goto send;
	}
	switch (req->op_case) {
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATUS:
		st.version = SFD_VERSION;
		st.has_pid = st.has_uptime_ms = st.has_draining = true;
		st.pid = (uint32_t)getpid();
		st.socket = srv->cfg.socket_path;
		st.uptime_ms = uv_now(srv->loop) - srv->start_ms;
		st.draining = srv->stopping;
		st.has_connections = st.has_in_flight = true;
		st.connections = srv->n_conns;
		st.in_flight = srv->in_flight;
		st.log_level = (char *)log_level_name(log_get_level());
		resp.body_case = SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_STATUS;
		resp.status = &st;
		break;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATS:
		stats.has_connections_accepted = stats.has_connections_refused = true;
		stats.connections_accepted = srv->stats.connections_accepted;
		stats.connections_refused = srv->stats.connections_refused;
		stats.has_connections = stats.has_requests = stats.has_in_flight = true;
		stats.connections = srv->n_conns;
		stats.requests = srv->stats.requests;
		stats.in_flight = srv->in_flight;
		stats.has_bytes_sent = true;
		stats.bytes_sent = srv->stats.bytes_sent;
		memcpy(by_status, srv->stats.by_status, sizeof(by_status));
		memcpy(by_method, srv->stats.by_method, sizeof(by_method));
		stats.n_by_status = 10; /* the Status enum's values */
		stats.by_status = by_status;
		stats.n_by_method = ARRAY_SIZE(by_method);
		stats.by_method = by_method;
		stats.has_control_listener_restarts = true;
		stats.control_listener_restarts = ctl->listener_restarts;
		us_store = calloc(srv->n_uid_stats + 1, sizeof(*us_store));
		us_items = calloc(srv->n_uid_stats + 1, sizeof(*us_items));
		if (us_store && us_items) {
			for (unsigned i = 0; i < srv->n_uid_stats; i++) {
				Sendfiled__Control__V1__UidStats *u = &us_store[i];
				unsigned inflight = 0;

				sendfiled__control__v1__uid_stats__init(u);
				for (unsigned j = 0; j < srv->n_uids; j++)
					if (srv->uids[j].uid == srv->uid_stats[i].uid)
						inflight = srv->uids[j].in_flight;
				u->has_uid = u->has_in_flight = u->has_requests =
				        u->has_bytes_sent = true;
				u->uid = (uint32_t)srv->uid_stats[i].uid;
				u->in_flight = inflight;
				u->requests = srv->uid_stats[i].requests;
				u->bytes_sent = srv->uid_stats[i].bytes_sent;
				us_items[i] = u;
			}
			stats.n_per_uid = srv->n_uid_stats;
			stats.per_uid = us_items;
		}
		resp.body_case = SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_STATS;
		resp.stats = &stats;
		break;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIST: {
		size_t n = 0;

		server_foreach_transfer(srv, count_transfers, &n);
		lc.cap = n;
		lc.now = uv_now(srv->loop);
		lc.store = calloc(n + 1, sizeof(*lc.store));
		lc.items = calloc(n + 1, sizeof(*lc.items));
		if (!lc.store || !lc.items) {
			resp.has_error = true;
			resp.error = ENOMEM;
			resp.message = "out of memory";
			break;
		}
		server_foreach_transfer(srv, collect, &lc);
		tl.n_transfers = lc.n;
		tl.transfers = lc.items;
		resp.body_case = SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_LIST;
		resp.list = &tl;
		break;
	}
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_CANCEL:
		if (!req->cancel->has_transfer ||
		    server_cancel_transfer(srv, req->cancel->transfer) < 0) {
			resp.has_error = true;
			resp.error = ENOENT;
			resp.message = "no such transfer in flight";
		} else {
			log_notice("control plane: cancelled transfer %llu",
			           (unsigned long long)req->cancel->transfer);
		}
		break;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_DRAIN:
		log_notice("control plane: drain requested");
		ctl->drain_after_reply = true;
		break;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_SET_LOG_LEVEL: {
		int lvl =
		        req->set_log_level->level ? log_parse_level(req->set_log_level->level) : -1;

		if (lvl < 0) {
			resp.has_error = true;
			resp.error = EINVAL;
			resp.message = "unknown log level (err, warning, notice, info, debug)";
		} else {
			log_set_level(lvl);
			snprintf(msgbuf, sizeof(msgbuf), "log level is now %s",
			         log_level_name(lvl));
			resp.message = msgbuf;
		}
		break;
	}
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIMITS:
		lim.has_max_connections = lim.has_max_in_flight_per_conn = true;
		lim.max_connections = srv->cfg.max_connections;
		lim.max_in_flight_per_conn = srv->cfg.max_in_flight_per_conn;
		lim.has_max_in_flight_per_uid = lim.has_max_record = true;
		lim.max_in_flight_per_uid = srv->cfg.max_in_flight_per_uid;
		lim.max_record = WIRE_MAX_RECORD;
		lim.has_chunk_size = lim.has_drain_timeout_ms = true;
		lim.chunk_size = srv->cfg.chunk_size;
		lim.drain_timeout_ms = srv->cfg.drain_timeout_ms;
		for (unsigned i = 0; i < srv->cfg.n_allow_uids; i++)
			uids[i] = (uint32_t)srv->cfg.allow_uids[i];
		for (unsigned i = 0; i < srv->cfg.n_allow_gids; i++)
			gids[i] = (uint32_t)srv->cfg.allow_gids[i];
		lim.n_allow_uids = srv->cfg.n_allow_uids;
		lim.allow_uids = uids;
		lim.n_allow_gids = srv->cfg.n_allow_gids;
		lim.allow_gids = gids;
		resp.body_case = SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_LIMITS;
		resp.limits = &lim;
		break;
	default:
		resp.has_error = true;
		resp.error = EOPNOTSUPP;
		resp.message = "unknown control operation";
		break;
	}

send:
	len = sendfiled__control__v1__control_response__get_packed_size(&resp);
	if (nng_msg_alloc(&out, len) == 0) {
		sendfiled__control__v1__control_response__pack(&resp, nng_msg_body(out));
		post(ctl, out, false, NULL, NULL);
	} else {
		post(ctl, NULL, true, NULL, NULL);
	}
	if (req)
		sendfiled__control__v1__control_request__free_unpacked(req, NULL);
	free(lc.store);
	free(lc.items);
	free(us_store);
	free(us_items);
}

static void
on_wake(uv_poll_t *h, int status, int events)
{
	struct ctl *ctl = h->data;
	uint64_t n;
	nng_msg *m;

	(void)status;
	(void)events;
	(void)!read(ctl->wake_fd, &n, sizeof(n));
	pthread_mutex_lock(&ctl->mtx);
	m = ctl->pending;
	ctl->pending = NULL;
	pthread_mutex_unlock(&ctl->mtx);
	if (m && !ctl->closing)
		handle(ctl, m);
	nng_msg_free(m);
	/* Last: stopping may free the control plane (ctl_free()). */
	if (atomic_exchange(&ctl->drain_now, false) && !ctl->closing)
		server_stop(ctl->srv, false);
}

/* ---- events ------------------------------------------------------------- */

static uint64_t
realtime_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void
publish(struct ctl *ctl, const Sendfiled__Control__V1__Event *ev)
{
	size_t len = sendfiled__control__v1__event__get_packed_size(ev);
	nng_msg *m;

	if (nng_msg_alloc(&m, len) != 0)
		return;
	sendfiled__control__v1__event__pack(ev, nng_msg_body(m));
	post(ctl, NULL, false, m, NULL);
}

static void
on_event(void *data, enum transfer_event_kind kind, const struct transfer_info *info, int status,
         int error)
{
	struct ctl *ctl = data;
	Sendfiled__Control__V1__Event ev = SENDFILED__CONTROL__V1__EVENT__INIT;

	/* Nobody listening: spare the encoding and nng's per-message work,
	 * which would otherwise cost every request. */
	if (atomic_load(&ctl->pub.connected) <= 0)
		return;
	ev.has_kind = true;
	ev.kind = kind == TRANSFER_START  ? SENDFILED__CONTROL__V1__EVENT__KIND__START
	          : kind == TRANSFER_DONE ? SENDFILED__CONTROL__V1__EVENT__KIND__DONE
	                                  : SENDFILED__CONTROL__V1__EVENT__KIND__ERROR;
	ev.has_transfer = ev.has_request_id = ev.has_pid = ev.has_uid = true;
	ev.transfer = info->transfer;
	ev.request_id = info->request_id;
	ev.pid = (uint32_t)info->pid;
	ev.uid = (uint32_t)info->uid;
	ev.has_offset = true;
	ev.offset = info->offset;
	ev.has_count = info->has_count;
	ev.count = info->count;
	ev.has_time_ms = true;
	ev.time_ms = realtime_ms();
	if (kind != TRANSFER_START) {
		ev.has_bytes_sent = ev.has_status = ev.has_error = ev.has_method = true;
		ev.bytes_sent = info->bytes_sent;
		ev.status = (uint32_t)status;
		ev.error = error;
		ev.method = (uint32_t)info->method;
		ev.has_duration_ms = true;
		ev.duration_ms = uv_now(ctl->srv->loop) - info->start_ms;
	}
	publish(ctl, &ev);
}

/* Subscribers cannot always tell a connection nng has dropped on our side
 * from a quiet daemon: a heartbeat every second lets them (sendfilectl
 * watch dials again after three silent seconds). */
static void
on_heartbeat_timer(uv_timer_t *t)
{
	struct ctl *ctl = t->data;
	Sendfiled__Control__V1__Event ev = SENDFILED__CONTROL__V1__EVENT__INIT;

	if (atomic_load(&ctl->pub.connected) <= 0)
		return;
	ev.has_kind = ev.has_time_ms = true;
	ev.kind = SENDFILED__CONTROL__V1__EVENT__KIND__HEARTBEAT;
	ev.time_ms = realtime_ms();
	publish(ctl, &ev);
}

/* ---- setup -------------------------------------------------------------- */

static int
endpoint_paths(struct endpoint *ep, const char *given, const char *data_path, const char *name)
{
	int n;

	if (given && *given)
		n = snprintf(ep->path, sizeof(ep->path), "%s", given);
	else
		n = sockpath_sibling(data_path, name, ep->path, sizeof(ep->path));
	if (n < 0 || (size_t)n >= sizeof(ep->path))
		return -ENAMETOOLONG;
	n = snprintf(ep->url, sizeof(ep->url), "ipc://%s", ep->path);
	if (n < 0 || (size_t)n >= sizeof(ep->url))
		return -ENAMETOOLONG;
	return 0;
}

/* nng thread: open both sockets, listen, and wait for the first request.
 * Return: 0, or a negative errno with nothing left open. */
static int
nng_setup(struct ctl *ctl)
{
	int r, rv;

	rv = nng_rep0_open(&ctl->rep.sock);
	if (rv != 0)
		return nng_to_errno(rv);
	ctl->rep.open = true;
	rv = nng_pub0_open(&ctl->pub.sock);
	if (rv != 0) {
		r = nng_to_errno(rv);
		goto fail;
	}
	ctl->pub.open = true;
	nng_pipe_notify(ctl->rep.sock, NNG_PIPE_EV_ADD_POST, on_pipe_event, &ctl->rep);
	nng_pipe_notify(ctl->rep.sock, NNG_PIPE_EV_REM_POST, on_pipe_event, &ctl->rep);
	nng_pipe_notify(ctl->pub.sock, NNG_PIPE_EV_ADD_POST, on_pipe_event, &ctl->pub);
	nng_pipe_notify(ctl->pub.sock, NNG_PIPE_EV_REM_POST, on_pipe_event, &ctl->pub);
	/* nng 1.5.2 accepts messages of any size by default. */
	nng_socket_set_size(ctl->rep.sock, NNG_OPT_RECVMAXSZ, CTL_RECV_MAX);
	nng_socket_set_size(ctl->pub.sock, NNG_OPT_RECVMAXSZ, CTL_RECV_MAX);

	/* Stale socket files from a crashed daemon would make nng refuse. */
	unlink(ctl->rep.path);
	unlink(ctl->pub.path);
	r = listen_endpoint(ctl, &ctl->rep);
	if (r == 0)
		r = listen_endpoint(ctl, &ctl->pub);
	if (r < 0)
		goto fail;

	rv = nng_aio_alloc(&ctl->aio, on_aio, ctl);
	if (rv == 0)
		rv = nng_ctx_open(&ctl->ctx, ctl->rep.sock);
	if (rv != 0) {
		r = nng_to_errno(rv);
		goto fail;
	}
	nng_ctx_recv(ctl->ctx, ctl->aio);
	return 0;

fail:
	if (ctl->aio)
		nng_aio_free(ctl->aio);
	ctl->aio = NULL;
	if (ctl->rep.open)
		nng_close(ctl->rep.sock);
	if (ctl->pub.open)
		nng_close(ctl->pub.sock);
	ctl->rep.open = ctl->pub.open = false;
	return r;
}

static void
ctl_destroy(struct ctl *ctl)
{
	safe_close(ctl->wake_fd);
	pthread_cond_destroy(&ctl->jobs_cv);
	pthread_cond_destroy(&ctl->probe_cv);
	pthread_mutex_destroy(&ctl->jobs_mtx);
	pthread_mutex_destroy(&ctl->mtx);
	pthread_mutex_destroy(&ctl->rep.pipes_mtx);
	pthread_mutex_destroy(&ctl->pub.pipes_mtx);
	free(ctl);
}

int
ctl_start(struct server *srv, const struct ctl_config *cfg, struct ctl **ret)
{
	struct ctl *ctl;
	int r;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->srv = srv;
	ctl->cfg = *cfg;
	pthread_mutex_init(&ctl->mtx, NULL);
	pthread_mutex_init(&ctl->jobs_mtx, NULL);
	pthread_cond_init(&ctl->jobs_cv, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&ctl->probe_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&ctl->rep.pipes_mtx, NULL);
	pthread_mutex_init(&ctl->pub.pipes_mtx, NULL);
	ctl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctl->wake_fd < 0) {
		r = -errno;
		ctl_destroy(ctl);
		return r;
	}
	r = endpoint_paths(&ctl->rep, cfg->control_path, srv->cfg.socket_path, "control.sock");
	if (r == 0)
		r = endpoint_paths(&ctl->pub, cfg->events_path, srv->cfg.socket_path,
		                   "events.sock");
	if (r < 0) {
		ctl_destroy(ctl);
		return r;
	}
	ctl->rep.probe_proto = SP_PROTO_REQ0;
	ctl->pub.probe_proto = SP_PROTO_SUB0;

	r = -pthread_create(&ctl->thread, NULL, nng_thread_main, ctl);
	if (r < 0) {
		ctl_destroy(ctl);
		return r;
	}
	pthread_mutex_lock(&ctl->jobs_mtx);
	while (!ctl->ready)
		pthread_cond_wait(&ctl->jobs_cv, &ctl->jobs_mtx);
	r = ctl->ready_err;
	pthread_mutex_unlock(&ctl->jobs_mtx);
	if (r < 0) {
		pthread_join(ctl->thread, NULL);
		ctl_destroy(ctl);
		return r;
	}

	uv_poll_init(srv->loop, &ctl->wake_poll, ctl->wake_fd);
	ctl->wake_poll.data = ctl;
	uv_poll_start(&ctl->wake_poll, UV_READABLE, on_wake);
	uv_timer_init(srv->loop, &ctl->heartbeat_timer);
	ctl->heartbeat_timer.data = ctl;
	uv_timer_start(&ctl->heartbeat_timer, on_heartbeat_timer, HEARTBEAT_MS, HEARTBEAT_MS);
	/* Neither keeps the loop alive once everything else stops. */
	uv_unref((uv_handle_t *)&ctl->heartbeat_timer);
	uv_unref((uv_handle_t *)&ctl->wake_poll);

	srv->on_event = on_event;
	srv->on_event_data = ctl;
	log_info("control plane on %s, events on %s", ctl->rep.path, ctl->pub.path);
	*ret = ctl;
	return 0;
}

static void
on_ctl_closed(uv_handle_t *h)
{
	release(h->data);
}

void
ctl_free(struct ctl *ctl)
{
	if (!ctl)
		return;
	ctl->closing = true;
	ctl->srv->on_event = NULL;
	/* The nng thread closes nng's sockets (waiting for a running callback;
	 * after that none will run) and ends. */
	pthread_mutex_lock(&ctl->jobs_mtx);
	ctl->stop = true;
	pthread_cond_signal(&ctl->jobs_cv);
	pthread_cond_signal(&ctl->probe_cv);
	pthread_mutex_unlock(&ctl->jobs_mtx);
	pthread_join(ctl->thread, NULL);
	unlink(ctl->rep.path);
	unlink(ctl->pub.path);
	pthread_mutex_lock(&ctl->mtx);
	nng_msg_free(ctl->pending);
	ctl->pending = NULL;
	pthread_mutex_unlock(&ctl->mtx);
	/* The struct lives until the handles have closed. */
	ctl->holds = 2;
	uv_timer_stop(&ctl->heartbeat_timer);
	uv_close((uv_handle_t *)&ctl->heartbeat_timer, on_ctl_closed);
	uv_close((uv_handle_t *)&ctl->wake_poll, on_ctl_closed);
}
