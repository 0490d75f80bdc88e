/*
 * conn.c - a client connection on the data socket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <uv.h>

#include "conn.h"
#include "fdmsg.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "validate.h"
#include "wire.h"
#include "xfer.h"

/* Records read per readable event, so that one busy client cannot hold the
 * loop; the poll is level-triggered and brings us back. */
#define READS_PER_WAKE 64
/* Records per recvmmsg(2). Each batch is answered before the next is read:
 * smaller batches let the client work in parallel with the daemon, larger
 * ones spare syscalls. With 64 requests in flight, 32 served a few percent
 * more per second than 16, and 8 fewer (bench/RESULTS.md). */
#define READ_BATCH 32
/* Wake-ups' worth of queued requests a stopping daemon still answers. */
#define DRAIN_READS 16

struct reply {
	struct reply *next;
	size_t len;
	unsigned char buf[];
};

struct req {
	struct list_head link;
	struct conn *c;
	struct xfer *x;
	uint64_t id;
	uint64_t transfer; /* daemon-wide id, for the control plane */
	uint64_t offset, count;
	bool has_count;
	uint64_t start_ms;
};

struct conn {
	struct list_head link; /* in server->conns */
	struct server *srv;
	int fd;
	uv_poll_t poll;
	bool poll_init;
	int poll_events;
	struct ucred cred;

	struct list_head reqs; /* transfers in flight */
	unsigned n_reqs;

	/* Replies the socket would not take yet, in order. Bounded: reading
	 * stops while there are as many as requests allowed in flight. */
	struct reply *rq_head, *rq_tail;
	unsigned n_replies;

	bool corked; /* reading a batch: hold replies, send them together */
	/* Replies held for the end of a batch the transfer engine opened
	 * (conn_flush_held()); in held_conns while true. */
	bool held;
	struct list_head held_link;
	bool blocked;    /* the socket took no more replies: wait until writable */
	bool reading;    /* inside read_records(), which must not nest */
	bool closing;    /* EOF, error or shutdown: read nothing more */
	bool draining;   /* server stopping: refuse new requests */
	bool cancelling; /* inside cancel_all(): defer the free */
	bool freed;
};

static void update_poll(struct conn *c);
static void maybe_close(struct conn *c);

struct conn *
conn_from_link(struct list_head *link)
{
	return list_entry(link, struct conn, link);
}

unsigned
conn_in_flight(const struct conn *c)
{
	return c->n_reqs;
}

/* ---- replies ------------------------------------------------------------ */

static void
fail_conn(struct conn *c, int err)
{
	if (!c->closing)
		log_debug("connection from pid %d uid %u closed: %s", (int)c->cred.pid,
		          (unsigned)c->cred.uid, strerror(err));
	c->closing = true;
}

static int
flush_replies(struct conn *c)
{
	while (c->rq_head) {
		struct iovec iov[FDMSG_BATCH];
		struct reply *r = c->rq_head;
		size_t n = 0;
		int sent;

		for (; r && n < FDMSG_BATCH; r = r->next, n++)
			iov[n] = (struct iovec){.iov_base = r->buf, .iov_len = r->len};
		/* One sendmmsg for the lot: one syscall, one wake-up of the
		 * client, however many replies a batch of requests produced. */
		sent = fdmsg_send_batch(c->fd, iov, n, MSG_DONTWAIT);
		if (sent == -EAGAIN) {
			c->blocked = true;
			return 0;
		}
		if (sent < 0) {
			fail_conn(c, -sent);
			return sent;
		}
		for (int i = 0; i < sent; i++) {
			r = c->rq_head;
			c->rq_head = r->next;
			c->n_replies--;
			free(r);
		}
		if (!c->rq_head)
			c->rq_tail = NULL;
	}
	c->blocked = false;
	return 0;
}

/* Connections with replies held for the end of an engine batch. Loop
 * thread only. */
static struct list_head held_conns = {&held_conns, &held_conns};

void
conn_flush_held(void *arg)
{
	struct list_head *pos, *tmp;

	(void)arg;
	list_for_each_safe(pos, tmp, &held_conns)
	{
		struct conn *c = list_entry(pos, struct conn, held_link);

		list_del(&c->held_link);
		c->held = false;
		if (c->freed)
			continue;
		flush_replies(c);
		update_poll(c);
		maybe_close(c);
	}
}

static void
send_reply(struct conn *c, const struct wire_response *resp)
{
	unsigned char buf[WIRE_MAX_RECORD];
	struct reply *r;
	ssize_t len, n;

	if (c->closing)
		return;
	len = wire_response_encode(resp, buf, sizeof(buf));
	if (len < 0) {
		log_err("cannot encode reply: %s", strerror((int)-len));
		return;
	}
	/* In a batch of the engine's own, the descriptors of the request are
	 * closed at its end: the reply waits for conn_flush_held(). */
	if (!c->corked && xfer_batch_is_open() && !c->held) {
		c->held = true;
		list_add_tail(&held_conns, &c->held_link);
	}
	if (!c->rq_head && !c->corked && !c->held) {
		n = fdmsg_send(c->fd, buf, (size_t)len, NULL, 0, MSG_DONTWAIT);
		if (n >= 0)
			return;
		if (n != -EAGAIN) {
			fail_conn(c, (int)-n);
			return;
		}
		c->blocked = true;
	}
	r = malloc(sizeof(*r) + (size_t)len);
	if (!r) {
		/* Losing a reply would leave the client waiting forever. */
		fail_conn(c, ENOMEM);
		return;
	}
	r->next = NULL;
	r->len = (size_t)len;
	memcpy(r->buf, buf, (size_t)len);
	if (c->rq_tail)
		c->rq_tail->next = r;
	else
		c->rq_head = r;
	c->rq_tail = r;
	c->n_replies++;
}

static void
reply_status(struct conn *c, uint64_t id, int status, int err, const char *msg)
{
	struct wire_response resp = {.id = id, .status = status, .error = err};

	c->srv->stats.by_status[status & 15]++;
	if (msg)
		snprintf(resp.message, sizeof(resp.message), "%s", msg);
	send_reply(c, &resp);
}

/* ---- transfers ---------------------------------------------------------- */

static void
req_info(const struct req *rq, struct transfer_info *ret)
{
	*ret = (struct transfer_info){
	        .transfer = rq->transfer,
	        .request_id = rq->id,
	        .pid = rq->c->cred.pid,
	        .uid = rq->c->cred.uid,
	        .offset = rq->offset,
	        .count = rq->count,
	        .has_count = rq->has_count,
	        .bytes_sent = rq->x ? xfer_bytes_sent(rq->x) : 0,
	        .method = rq->x ? xfer_method(rq->x) : 0,
	        .on_worker = rq->x ? xfer_on_worker(rq->x) : false,
	        .waiting = rq->x ? xfer_waiting(rq->x) : false,
	        .start_ms = rq->start_ms,
	};
}

void
conn_foreach_transfer(struct conn *c, void (*fn)(const struct transfer_info *info, void *arg),
                      void *arg)
{
	struct list_head *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->reqs)
	{
		struct transfer_info info;

		req_info(list_entry(pos, struct req, link), &info);
		fn(&info, arg);
	}
}

int
conn_cancel_transfer(struct conn *c, uint64_t transfer)
{
	struct list_head *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->reqs)
	{
		struct req *rq = list_entry(pos, struct req, link);

		if (rq->transfer == transfer) {
			xfer_cancel(rq->x);
			return 0;
		}
	}
	return -ENOENT;
}

static void
on_xfer_done(struct xfer *x, const struct xfer_result *res, void *userdata)
{
	struct req *rq = userdata;
	struct conn *c = rq->c;
	struct server *srv = c->srv;
	struct wire_response resp = {
	        .id = rq->id,
	        .status = res->status,
	        .error = res->error,
	        .bytes_sent = res->bytes_sent,
	        .final_offset = res->final_offset,
	        .method = res->method,
	        .short_source = res->short_source,
	};

	struct uid_stats *us;

	(void)x;
	if (srv->on_event) {
		struct transfer_info info;

		req_info(rq, &info);
		info.bytes_sent = res->bytes_sent;
		info.method = res->method;
		srv->on_event(srv->on_event_data,
		              res->status == WIRE_STATUS_OK ? TRANSFER_DONE : TRANSFER_ERROR, &info,
		              res->status, res->error);
	}
	list_del(&rq->link);
	c->n_reqs--;
	srv->in_flight--;
	server_uid_release(srv, c->cred.uid);
	free(rq);

	us = server_uid_stats(srv, c->cred.uid);
	if (us)
		us->bytes_sent += res->bytes_sent;
	srv->stats.bytes_sent += res->bytes_sent;
	srv->stats.by_status[res->status & 15]++;
	srv->stats.by_method[res->method & 3]++;
	if (res->message)
		snprintf(resp.message, sizeof(resp.message), "%s", res->message);
	if (res->status != WIRE_STATUS_OK)
		log_debug("request %llu of pid %d: status %d (%s), %llu bytes sent",
		          (unsigned long long)resp.id, (int)c->cred.pid, res->status,
		          res->message ? res->message : "", (unsigned long long)res->bytes_sent);
	send_reply(c, &resp);
	if (!c->cancelling) {
		update_poll(c);
		maybe_close(c);
	}
}

static void
handle_sendfile(struct conn *c, const struct wire_request *req, struct fdmsg_record *rec)
{
	struct server *srv = c->srv;
	struct fdinfo dinfo, sinfo;
	struct xfer_params p;
	const char *msg = NULL;
	struct req *rq;
	int r;

	if (rec->nfds != 2) {
		fdmsg_close_all(rec->fds, rec->nfds);
		reply_status(c, req->id, WIRE_STATUS_PROTOCOL, EBADMSG,
		             "a sendfile request carries exactly two descriptors");
		return;
	}
	r = validate_request(req, &msg);
	if (r == 0)
		r = validate_dst(rec->fds[0], &dinfo, &msg);
	if (r == 0)
		r = validate_src(rec->fds[1], &sinfo, &msg);
	if (r == 0 && sinfo.kind != FD_KIND_FILE && req->offset != 0) {
		r = -ESPIPE;
		msg = "offset must be 0 for a source that cannot seek";
	}
	if (r < 0) {
		fdmsg_close_all(rec->fds, rec->nfds);
		reply_status(c, req->id, WIRE_STATUS_INVALID_ARGUMENT, -r, msg);
		return;
	}
	if (c->n_reqs >= srv->cfg.max_in_flight_per_conn) {
		fdmsg_close_all(rec->fds, rec->nfds);
		reply_status(c, req->id, WIRE_STATUS_LIMIT, EBUSY,
		             "too many requests in flight on this connection");
		return;
	}
	if (!server_uid_acquire(srv, c->cred.uid)) {
		fdmsg_close_all(rec->fds, rec->nfds);
		reply_status(c, req->id, WIRE_STATUS_LIMIT, EUSERS,
		             "too many requests in flight for this user");
		return;
	}
	rq = calloc(1, sizeof(*rq));
	if (!rq) {
		server_uid_release(srv, c->cred.uid);
		fdmsg_close_all(rec->fds, rec->nfds);
		reply_status(c, req->id, WIRE_STATUS_LIMIT, ENOMEM, "out of memory");
		return;
	}
	p = (struct xfer_params){
	        .id = req->id,
	        .offset = req->offset,
	        .count = req->count,
	        .has_count = req->has_count,
	        .fallback = req->fallback,
	        .chunk = srv->cfg.chunk_size,
	};
	r = xfer_new(srv->loop, rec->fds[0], &dinfo, rec->fds[1], &sinfo, &p, on_xfer_done, rq,
	             &rq->x);
	rec->fds[0] = rec->fds[1] = -1; /* xfer_new took them, on every path */
	rec->nfds = 0;
	if (r < 0) {
		free(rq);
		server_uid_release(srv, c->cred.uid);
		reply_status(c, req->id, WIRE_STATUS_LIMIT, -r, "cannot start the transfer");
		return;
	}
	rq->c = c;
	rq->id = req->id;
	rq->transfer = ++srv->next_transfer;
	rq->offset = req->offset;
	rq->count = req->count;
	rq->has_count = req->has_count;
	rq->start_ms = uv_now(srv->loop);
	list_add_tail(&c->reqs, &rq->link);
	c->n_reqs++;
	srv->in_flight++;
	{
		struct uid_stats *us = server_uid_stats(srv, c->cred.uid);

		if (us)
			us->requests++;
	}
	if (srv->on_event) {
		struct transfer_info info;

		req_info(rq, &info);
		srv->on_event(srv->on_event_data, TRANSFER_START, &info, 0, 0);
	}
	xfer_run(rq->x);
}

static struct req *
find_req(struct conn *c, uint64_t id)
{
	struct list_head *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->reqs)
	{
		struct req *rq = list_entry(pos, struct req, link);

		if (rq->id == id)
			return rq;
	}
	return NULL;
}

static void
handle_record(struct conn *c, struct fdmsg_record *rec)
{
	struct wire_request req;
	int r;

	c->srv->stats.requests++;
	r = wire_request_decode(rec->buf, rec->len, &req);
	/* Id 0 is the daemon's own, for replies about the connection. */
	if (req.has_id && req.id == 0)
		req.has_id = false;
	if (rec->error || r < 0 || !req.has_id) {
		fdmsg_close_all(rec->fds, rec->nfds);
		if (!req.has_id) {
			/* Nothing to address a reply to: the stream of records can
			 * no longer be trusted. */
			log_info("pid %d sent an unreadable record: closing its connection",
			         (int)c->cred.pid);
			fail_conn(c, EBADMSG);
			return;
		}
		reply_status(c, req.id, WIRE_STATUS_PROTOCOL, rec->error ? rec->error : EBADMSG,
		             rec->error == EMSGSIZE ? "record too large"
		             : rec->error           ? "bad descriptors in the record"
		                                    : "record does not parse");
		return;
	}
	if (req.op != WIRE_OP_SENDFILE && rec->nfds > 0) {
		fdmsg_close_all(rec->fds, rec->nfds);
		reply_status(c, req.id, WIRE_STATUS_PROTOCOL, EBADMSG,
		             "only a sendfile request carries descriptors");
		return;
	}
	if (c->draining && req.op == WIRE_OP_SENDFILE) {
		fdmsg_close_all(rec->fds, rec->nfds);
		reply_status(c, req.id, WIRE_STATUS_SHUTTING_DOWN, ESHUTDOWN,
		             "the daemon is shutting down");
		return;
	}
	switch (req.op) {
	case WIRE_OP_SENDFILE:
		handle_sendfile(c, &req, rec);
		break;
	case WIRE_OP_PING:
		reply_status(c, req.id, WIRE_STATUS_OK, 0, NULL);
		break;
	case WIRE_OP_CANCEL: {
		struct req *rq = find_req(c, req.target);

		if (!rq) {
			reply_status(c, req.id, WIRE_STATUS_INVALID_ARGUMENT, ENOENT,
			             "no such request in flight");
			break;
		}
		/* A loop-mode target's CANCELLED reply goes out first; a
		 * worker-mode target's comes when its thread has stopped. */
		xfer_cancel(rq->x);
		reply_status(c, req.id, WIRE_STATUS_OK, 0, NULL);
		break;
	}
	default:
		reply_status(c, req.id, WIRE_STATUS_INVALID_ARGUMENT, EOPNOTSUPP,
		             "unknown operation");
		break;
	}
}

/* ---- the connection ----------------------------------------------------- */

static void
read_records(struct conn *c)
{
	/* The loop is single-threaded: one set of receive buffers serves
	 * every connection. */
	static unsigned char bufs[READ_BATCH][WIRE_MAX_RECORD];
	unsigned budget = READS_PER_WAKE;

	c->corked = true;
	c->reading = true;
	while (budget > 0 && !c->closing) {
		struct fdmsg_record recs[READ_BATCH];
		unsigned room = c->srv->cfg.max_in_flight_per_conn -
		                MIN(c->n_replies, c->srv->cfg.max_in_flight_per_conn);
		size_t want = MIN(MIN(budget, (unsigned)READ_BATCH), room);
		int got;

		if (want == 0)
			break; /* the client is not reading: stop reading it */
		for (size_t i = 0; i < want; i++)
			recs[i] = (struct fdmsg_record){.buf = bufs[i], .cap = WIRE_MAX_RECORD};
		got = fdmsg_recv_records(c->fd, recs, want, MSG_DONTWAIT);
		if (got == -EAGAIN)
			break;
		if (got < 0) {
			fail_conn(c, -got);
			break;
		}
		xfer_batch_begin();
		for (int i = 0; i < got; i++) {
			if (c->closing) {
				/* Records after a fatal one: close what they carry. */
				fdmsg_close_all(recs[i].fds, recs[i].nfds);
				continue;
			}
			if (recs[i].len == 0 && recs[i].nfds == 0 && !recs[i].error) {
				fail_conn(c, 0);
				continue;
			}
			handle_record(c, &recs[i]);
		}
		xfer_batch_end();
		/* Answer each batch at once rather than the whole wake-up's: the
		 * client refills its window while the next batch is served. */
		flush_replies(c);
		/* No other connection's reply should be held by a batch of
		 * this connection's records; sending any is cheap insurance
		 * against one waiting for the engine's next batch. */
		conn_flush_held(NULL);
		budget -= (unsigned)got;
		if ((size_t)got < want)
			break; /* drained */
	}
	c->corked = false;
	c->reading = false;
	flush_replies(c);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;

	if (status < 0) {
		fail_conn(c, EIO);
	} else {
		if (events & UV_WRITABLE)
			flush_replies(c);
		if (events & (UV_READABLE | UV_DISCONNECT))
			read_records(c);
	}
	update_poll(c);
	maybe_close(c);
}

static void
update_poll(struct conn *c)
{
	int ev = 0;

	if (c->freed || !c->poll_init)
		return;
	/* Only a full socket is worth a writable watch: replies queued for a
	 * moment (a batch being served) are sent before the loop sleeps, and
	 * arming and disarming would cost epoll_ctl calls per batch. */
	if (c->rq_head && c->blocked && !c->closing)
		ev |= UV_WRITABLE;
	if (!c->closing && c->n_replies < c->srv->cfg.max_in_flight_per_conn)
		ev |= UV_READABLE | UV_DISCONNECT;
	if (ev == c->poll_events)
		return;
	c->poll_events = ev;
	if (ev)
		uv_poll_start(&c->poll, ev, on_poll);
	else
		uv_poll_stop(&c->poll);
}

static void
on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct server *srv = c->srv;

	c->fd = safe_close(c->fd);
	if (c->held)
		list_del(&c->held_link);
	while (c->rq_head) {
		struct reply *r = c->rq_head;

		c->rq_head = r->next;
		free(r);
	}
	list_del(&c->link);
	srv->n_conns--;
	free(c);
	if (srv->stopping && srv->n_conns == 0 && srv->on_stopped)
		srv->on_stopped(srv);
}

static void
cancel_all(struct conn *c)
{
	struct list_head *pos, *tmp;

	c->cancelling = true;
	list_for_each_safe(pos, tmp, &c->reqs)
	{
		xfer_cancel(list_entry(pos, struct req, link)->x);
	}
	c->cancelling = false;
}

static void
maybe_close(struct conn *c)
{
	if (c->freed)
		return;
	if (c->closing && c->n_reqs > 0) {
		/* The client is gone: stop its transfers (each still sets its
		 * file position); worker transfers report back later. */
		cancel_all(c);
	}
	if (c->draining && c->n_reqs == 0 && !c->closing && !c->reading) {
		/* Requests already queued on the connection are answered
		 * (SHUTTING_DOWN) rather than lost with it; a bounded number,
		 * in case the client keeps sending. */
		for (unsigned i = 0; i < DRAIN_READS && !c->closing; i++) {
			uint64_t before = c->srv->stats.requests;

			read_records(c);
			if (c->srv->stats.requests == before)
				break;
		}
		flush_replies(c);
		c->closing = true;
	}
	if (!c->closing || c->n_reqs > 0)
		return;
	c->freed = true;
	uv_close((uv_handle_t *)&c->poll, on_closed);
}

void
conn_shutdown(struct conn *c, bool cancel)
{
	c->draining = true;
	if (cancel)
		cancel_all(c);
	update_poll(c);
	maybe_close(c);
}

static bool
allowed(const struct server_config *cfg, const struct ucred *cr)
{
	if (cfg->n_allow_uids == 0 && cfg->n_allow_gids == 0)
		return true;
	if (cr->uid == 0)
		return true;
	for (unsigned i = 0; i < cfg->n_allow_uids; i++)
		if (cfg->allow_uids[i] == cr->uid)
			return true;
	for (unsigned i = 0; i < cfg->n_allow_gids; i++)
		if (cfg->allow_gids[i] == cr->gid)
			return true;
	return false;
}

int
conn_new(struct server *srv, int fd, struct conn **ret_conn)
{
	_cleanup_close_ int owned = fd;
	socklen_t len = sizeof(struct ucred);
	struct conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (getsockopt(owned, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
		r = -errno;
		free(c);
		return r;
	}
	if (!allowed(&srv->cfg, &c->cred)) {
		struct wire_response resp = {.status = WIRE_STATUS_PERMISSION_DENIED,
		                             .error = EACCES};
		unsigned char buf[WIRE_MAX_RECORD];
		ssize_t n;

		snprintf(resp.message, sizeof(resp.message), "uid %u is not allowed",
		         (unsigned)c->cred.uid);
		n = wire_response_encode(&resp, buf, sizeof(buf));
		if (n > 0)
			(void)fdmsg_send(owned, buf, (size_t)n, NULL, 0, MSG_DONTWAIT);
		log_notice("refused connection from pid %d uid %u: not in the allow-list",
		           (int)c->cred.pid, (unsigned)c->cred.uid);
		free(c);
		return -EACCES;
	}
	r = uv_poll_init(srv->loop, &c->poll, owned);
	if (r < 0) {
		free(c);
		return r;
	}
	c->poll.data = c;
	c->poll_init = true;
	c->srv = srv;
	c->fd = TAKE_FD(owned);
	list_init(&c->reqs);
	list_add_tail(&srv->conns, &c->link);
	srv->n_conns++;
	update_poll(c);
	log_debug("connection from pid %d uid %u", (int)c->cred.pid, (unsigned)c->cred.uid);
	*ret_conn = c;
	return 0;
}
