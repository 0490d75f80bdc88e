/*
 * ctl.c - the control plane over nng (see ctl.h): the nng thread and the
 * hand-off between it and the loop, transfer events, setup and teardown.
 * The requests are answered in ctl-requests.c; the listener probe nng 1.5.2
 * needs is in ctl-probe.c.
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
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "config.h"
#include "control.pb-c.h"
#include "account.h"
#include "ctl-internal.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "sockpath.h"
#include "wire.h"

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

int
ctl_listen_endpoint(struct ctl *ctl, struct endpoint *ep)
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
	{
		struct stat st;

		/* Which file is ours, to tell it from a successor's. */
		if (stat(ep->path, &st) == 0) {
			ep->dev = st.st_dev;
			ep->ino = st.st_ino;
		}
	}
	return 0;
}

bool
ctl_endpoint_ours(const struct endpoint *ep)
{
	struct stat st;

	return ep->ino != 0 && stat(ep->path, &st) == 0 && st.st_dev == ep->dev &&
	       st.st_ino == ep->ino;
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

static void ctl_destroy(struct ctl *ctl);

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
		        pthread_create(&ctl->probe_thread, NULL, ctl_probe_thread_main, ctl) == 0;
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
			ctl_restart_listener(ctl, &ctl->rep);
		if (pub)
			ctl_restart_listener(ctl, &ctl->pub);
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
void
ctl_post(struct ctl *ctl, nng_msg *reply, bool rearm, nng_msg *event, struct endpoint *restart)
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
		ctl_handle_request(ctl, m);
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
	ctl_post(ctl, NULL, false, m, NULL);
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
	ev.has_handoff = info->handoff;
	ev.handoff = info->handoff;
	if (kind != TRANSFER_START) {
		ev.has_bytes_sent = ev.has_status = ev.has_error = ev.has_method = true;
		ev.bytes_sent = info->bytes_sent;
		ev.status = (uint32_t)status;
		ev.error = error;
		ev.method = (uint32_t)info->method;
		ev.has_duration_ms = true;
		/* Any loop's thread: its own clock, not loop 0's. */
		ev.duration_ms = uv_hrtime() / 1000000 - info->start_ms;
		if ((int64_t)ev.duration_ms < 0)
			ev.duration_ms = 0;
		ev.has_timeout = info->timeout != 0;
		ev.timeout = (uint32_t)info->timeout;
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
	int n = sockpath_endpoint(given, data_path, name, ep->path, sizeof(ep->path));

	if (n < 0)
		return n;
	n = snprintf(ep->url, sizeof(ep->url), "ipc://%s", ep->path);
	if (n < 0 || (size_t)n >= sizeof(ep->url))
		return -ENAMETOOLONG;
	return 0;
}

/* Who listens on an endpoint's path now. */
enum holder {
	HOLDER_NONE,     /* nobody: no file, or a stale one */
	HOLDER_DRAINING, /* a daemon that is stopping, and has left its data socket */
	HOLDER_LIVE,
};

/* Ask the daemon on the other end of @s (a REQ socket) whether it drains.
 * Any doubt (no answer, no status) counts as a live daemon. */
static enum holder
ask_draining(nng_socket s)
{
	Sendfiled__Control__V1__ControlRequest req = SENDFILED__CONTROL__V1__CONTROL_REQUEST__INIT;
	Sendfiled__Control__V1__Empty empty = SENDFILED__CONTROL__V1__EMPTY__INIT;
	Sendfiled__Control__V1__ControlResponse *resp;
	enum holder h = HOLDER_LIVE;
	uint8_t buf[16];
	nng_msg *m = NULL;
	size_t n;

	req.op_case = SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATUS;
	req.status = &empty;
	n = sendfiled__control__v1__control_request__pack(&req, buf);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, CLAIM_TIMEOUT_MS);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, CLAIM_TIMEOUT_MS);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, CTL_RECV_MAX);
	if (nng_send(s, buf, n, 0) != 0 || nng_recvmsg(s, &m, 0) != 0)
		return h;
	resp = sendfiled__control__v1__control_response__unpack(NULL, nng_msg_len(m),
	                                                        nng_msg_body(m));
	if (resp && resp->body_case == SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_STATUS &&
	    resp->status->draining)
		h = HOLDER_DRAINING;
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	nng_msg_free(m);
	return h;
}

/*
 * Who holds @ep's path? A complete nng dial (with @open_peer, the peer's
 * protocol) tells a live listener from a stale socket file; a bare connect()
 * would not, and could stop a live nng 1.5.2 listener (see ctl-probe.c). On
 * the control socket (@ask), a live daemon is also asked whether it drains.
 */
static enum holder
holder_of(struct endpoint *ep, int (*open_peer)(nng_socket *), bool ask)
{
	enum holder h = HOLDER_NONE;
	nng_socket s;

	if (open_peer(&s) != 0)
		return HOLDER_LIVE; /* cannot tell: leave it alone */
	if (nng_dial(s, ep->url, NULL, 0) == 0)
		h = ask ? ask_draining(s) : HOLDER_LIVE;
	nng_close(s);
	return h;
}

/*
 * Make both endpoints' paths ours to listen on. Sockets a running daemon
 * listens on are refused: two daemons sharing a control plane would answer
 * for each other. Those of a daemon that is draining are taken over: it has
 * left its data socket to its successor (docs/PROTOCOL.md, section 6), and
 * its control plane goes with it (it keeps serving the clients connected to
 * it, and leaves the files alone when it exits). Stale files, left by a
 * daemon that died, are replaced.
 * Return: 0, -EADDRINUSE, or a negative errno.
 */
static int
claim_paths(struct ctl *ctl)
{
	enum holder rep = holder_of(&ctl->rep, nng_req0_open, true);
	enum holder pub = holder_of(&ctl->pub, nng_sub0_open, false);

	if (rep == HOLDER_LIVE || (pub == HOLDER_LIVE && rep != HOLDER_DRAINING))
		return -EADDRINUSE;
	if (rep == HOLDER_DRAINING)
		log_notice("control plane: taking over %s and %s from a daemon that is stopping",
		           ctl->rep.path, ctl->pub.path);
	if (unlink(ctl->rep.path) < 0 && errno != ENOENT)
		return -errno;
	if (unlink(ctl->pub.path) < 0 && errno != ENOENT)
		return -errno;
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

	r = claim_paths(ctl);
	if (r < 0)
		goto fail;
	r = ctl_listen_endpoint(ctl, &ctl->rep);
	if (r == 0)
		r = ctl_listen_endpoint(ctl, &ctl->pub);
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
	r = endpoint_paths(&ctl->rep, cfg->control_path, server_config(srv)->socket_path,
	                   SOCKPATH_CONTROL);
	if (r == 0)
		r = endpoint_paths(&ctl->pub, cfg->events_path, server_config(srv)->socket_path,
		                   SOCKPATH_EVENTS);
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

	uv_poll_init(server_loop(srv), &ctl->wake_poll, ctl->wake_fd);
	ctl->wake_poll.data = ctl;
	uv_poll_start(&ctl->wake_poll, UV_READABLE, on_wake);
	uv_timer_init(server_loop(srv), &ctl->heartbeat_timer);
	ctl->heartbeat_timer.data = ctl;
	uv_timer_start(&ctl->heartbeat_timer, on_heartbeat_timer, HEARTBEAT_MS, HEARTBEAT_MS);
	/* Neither keeps the loop alive once everything else stops. */
	uv_unref((uv_handle_t *)&ctl->heartbeat_timer);
	uv_unref((uv_handle_t *)&ctl->wake_poll);

	account_set_observer(server_account(srv), on_event, ctl);
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
	account_set_observer(server_account(ctl->srv), NULL, NULL);
	/* The nng thread closes nng's sockets (waiting for a running callback;
	 * after that none will run) and ends. */
	pthread_mutex_lock(&ctl->jobs_mtx);
	ctl->stop = true;
	pthread_cond_signal(&ctl->jobs_cv);
	pthread_cond_signal(&ctl->probe_cv);
	pthread_mutex_unlock(&ctl->jobs_mtx);
	pthread_join(ctl->thread, NULL);
	/* A successor may have taken them over (claim_paths()). */
	if (ctl_endpoint_ours(&ctl->rep))
		unlink(ctl->rep.path);
	if (ctl_endpoint_ours(&ctl->pub))
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
