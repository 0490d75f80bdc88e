/*
 * conn.c - a client connection on the data socket.
 *
 * One request, start to end: the socket is readable (on_poll()); one batch
 * of records is read (read_records()) and each is handled: judged, refused
 * or given to a new transfer (handle_sendfile() -> xfer_new(), xfer_run()).
 * When the transfer ends, on_xfer_done() counts it and queues its reply; the
 * engine's flush at the end of the loop turn closes the transfer's
 * descriptors and then calls on_flush(), which sends the queued replies in
 * one sendmmsg(2). Every reply leaves from on_flush(), so none can overtake
 * the closing of its request's descriptors.
 *
 * A hand-off (close_when_done) is the exception: its reply is queued as
 * soon as the transfer is set up, and its outcome goes to the control plane
 * only (account_done()). It outlives the connection: a closing connection
 * cancels its other transfers, closes its socket and waits, detached, for
 * its hand-offs to end (CONN_DETACHED below).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <uv.h>

#include "account.h"
#include "config.h"
#include "conn.h"
#include "engine.h"
#include "fdmsg.h"
#include "log.h"
#include "macro.h"
#include "pace.h"
#include "validate.h"
#include "wire.h"
#include "xfer.h"

/* Records per recvmmsg(2), and per readable event: one busy client cannot
 * hold the loop (the poll is level-triggered and brings us back next turn),
 * and each batch is answered at the turn's flush before the next is read,
 * so the client works in parallel with the daemon. With 64 requests in
 * flight, 32 served a few percent more per second than 16, and 8 fewer
 * (bench/RESULTS.md). */
#define READ_BATCH CONN_READ_BATCH
/* Batches of queued requests a stopping daemon still answers. */
#define DRAIN_BATCHES 32

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
	bool handoff; /* answered already; the connection's limit no longer counts it */
	/* A hand-off whose reply goes first: in the connection's to_start
	 * until on_flush() starts it. */
	struct list_head start_link;
	bool to_start;
	uint64_t start_ms;
};

/*
 * The lifecycle, one way only:
 *
 *   OPEN --conn_shutdown()--> DRAINING
 *   OPEN, DRAINING --EOF, error, bad record--> CLOSING
 *   DRAINING --no transfer left, queued records answered--> CLOSING
 *   CLOSING --no transfer left (maybe_close())--> FREED
 *   CLOSING --only hand-offs left--> DETACHED --the last one ends--> FREED
 *
 * OPEN serves every request; DRAINING refuses new transfers
 * (SHUTTING_DOWN) and lets those in flight finish; CLOSING reads nothing,
 * sends nothing more, and cancels its transfers but its hand-offs;
 * DETACHED has closed its socket and lets its hand-offs run (the server no
 * longer counts it as a connection); FREED is waiting for its handle's
 * close callback, which frees it.
 */
enum conn_state {
	CONN_OPEN,
	CONN_DRAINING,
	CONN_CLOSING,
	CONN_DETACHED,
	CONN_FREED,
};

struct conn {
	struct list_head link; /* in the owner's list */
	const struct conn_env *env;
	enum conn_state state;
	int fd;
	uv_poll_t poll;
	int poll_events;
	struct ucred cred;
	struct engine_waiter flush; /* on_flush() at the turn's end */

	struct list_head reqs; /* transfers in flight */
	unsigned n_reqs;
	unsigned n_handoffs;       /* of which handed off */
	struct list_head to_start; /* hand-offs answered, to start after the flush */
	bool socket_gone;          /* DETACHED: the handle is closed, the socket too */

	/* Replies not sent yet, in order. Bounded: reading stops while there
	 * are as many as requests allowed in flight. */
	struct reply *rq_head, *rq_tail;
	unsigned n_replies;
	bool blocked; /* the socket took no more replies: wait until writable */
};

struct list_head *
conn_link(struct conn *c)
{
	return &c->link;
}

struct conn *
conn_from_link(struct list_head *link)
{
	return list_entry(link, struct conn, link);
}

static void
defer_flush(struct conn *c)
{
	engine_defer(c->env->engine, &c->flush);
}

/* ---- replies ------------------------------------------------------------ */

static void
fail_conn(struct conn *c, int err)
{
	if (c->state >= CONN_CLOSING)
		return;
	log_debug("connection from pid %d uid %u closed%s%s", (int)c->cred.pid,
	          (unsigned)c->cred.uid, err ? ": " : " by the client", err ? strerror(err) : "");
	c->state = CONN_CLOSING;
	defer_flush(c);
}

/* Send what the socket takes now. Only from on_flush() (and the last words
 * of a draining connection), after the engine has closed the turn's
 * descriptors. */
static void
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
			return;
		}
		if (sent < 0) {
			fail_conn(c, -sent);
			return;
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
}

static void
queue_reply(struct conn *c, const struct wire_response *resp)
{
	unsigned char buf[WIRE_MAX_RECORD];
	struct reply *r;
	ssize_t len;

	if (c->state >= CONN_CLOSING)
		return;
	len = wire_response_encode(resp, buf, sizeof(buf));
	if (len < 0) {
		log_err("cannot encode reply: %s", strerror((int)-len));
		return;
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
	defer_flush(c);
}

/* A reply that is not a transfer's outcome. @offset is a refused Sendfile's
 * offset: its final_offset is offset + 0 bytes sent, as for every Sendfile
 * reply (PROTOCOL.md, section 4); 0 for other requests. */
static void
reply_status(struct conn *c, uint64_t id, uint64_t offset, int status, int err, const char *msg)
{
	struct wire_response resp = {
	        .id = id, .status = status, .error = err, .final_offset = offset};

	account_reply(c->env->account, status);
	if (msg)
		snprintf(resp.message, sizeof(resp.message), "%s", msg);
	queue_reply(c, &resp);
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
	        .handoff = rq->handoff,
	        .rate_limit_bps = rq->x ? xfer_rate_limit(rq->x) : 0,
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

static struct req *
find_req(struct conn *c, bool by_transfer, uint64_t id)
{
	struct list_head *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->reqs)
	{
		struct req *rq = list_entry(pos, struct req, link);

		/* A hand-off was answered: to its client it is no longer in
		 * flight, only the control plane can stop it. */
		if (by_transfer ? rq->transfer == id : rq->id == id && !rq->handoff)
			return rq;
	}
	return NULL;
}

int
conn_cancel_transfer(struct conn *c, uint64_t transfer)
{
	struct req *rq = find_req(c, true, transfer);

	if (!rq)
		return -ENOENT;
	xfer_cancel(rq->x);
	return 0;
}

static void
on_xfer_done(struct xfer *x, const struct xfer_result *res, void *userdata)
{
	struct req *rq = userdata;
	struct conn *c = rq->c;
	struct wire_response resp = {
	        .id = rq->id,
	        .status = res->status,
	        .error = res->error,
	        .bytes_sent = res->bytes_sent,
	        .final_offset = res->final_offset,
	        .method = res->method,
	        .short_source = res->short_source,
	        .timeout = res->timeout,
	};
	struct transfer_info info;

	(void)x;
	req_info(rq, &info);
	info.bytes_sent = res->bytes_sent;
	info.method = res->method;
	info.timeout = res->timeout;
	account_done(c->env->account, &info, res->status, res->error);
	list_del(&rq->link);
	c->n_reqs--;
	if (rq->to_start)
		list_del(&rq->start_link); /* cancelled before it started */
	if (rq->handoff) {
		/* Answered when taken: the outcome is the control plane's. */
		c->n_handoffs--;
		if (res->status != WIRE_STATUS_OK)
			log_info("hand-off %llu of uid %u: status %d (%s), %llu bytes sent",
			         (unsigned long long)rq->transfer, (unsigned)c->cred.uid,
			         res->status, res->message ? res->message : "",
			         (unsigned long long)res->bytes_sent);
		free(rq);
		defer_flush(c);
		return;
	}
	free(rq);

	if (res->message)
		snprintf(resp.message, sizeof(resp.message), "%s", res->message);
	if (res->status != WIRE_STATUS_OK)
		log_debug("request %llu of pid %d: status %d (%s), %llu bytes sent",
		          (unsigned long long)resp.id, (int)c->cred.pid, res->status,
		          res->message ? res->message : "", (unsigned long long)res->bytes_sent);
	queue_reply(c, &resp);
	/* A closing connection may be waiting for this one to go. */
	defer_flush(c);
}

/* Why a request is refused: a reply without a transfer. */
struct refusal {
	int status, error;
	const char *msg;
};

/* Judge a sendfile request and its descriptors. Return: true, or false with
 * *no filled. */
static bool
admissible(struct conn *c, const struct wire_request *req, const struct fdmsg_record *rec,
           struct fdinfo *dinfo, struct fdinfo *sinfo, struct pace_limits *lim, struct refusal *no)
{
	const char *msg = NULL;
	int r;

	if (rec->nfds != 2) {
		*no = (struct refusal){WIRE_STATUS_PROTOCOL, EBADMSG,
		                       "a sendfile request carries exactly two descriptors"};
		return false;
	}
	r = validate_request(req, &msg);
	if (r == 0)
		r = pace_limits_resolve(c->env->pace, req, lim, &msg);
	if (r == 0)
		r = validate_dst(rec->fds[0], dinfo, &msg);
	if (r == 0)
		r = validate_src(rec->fds[1], sinfo, &msg);
	if (r == 0)
		r = validate_range(req, rec->fds[1], sinfo, &msg);
	if (r == 0 && sinfo->kind != FD_KIND_FILE && req->offset != 0) {
		r = -ESPIPE;
		msg = "offset must be 0 for a source that cannot seek";
	}
	if (r == 0 && req->shutdown_write && dinfo->kind != FD_KIND_SOCKET) {
		r = -ENOTSOCK;
		msg = "shutdown_write needs a socket destination";
	}
	if (r < 0) {
		*no = (struct refusal){WIRE_STATUS_INVALID_ARGUMENT, -r, msg};
		return false;
	}
	/* Hand-offs are bounded per user and daemon-wide (new_req()), not
	 * here: they outlive the connection. */
	if (!req->close_when_done && c->n_reqs - c->n_handoffs >= c->env->max_in_flight) {
		*no = (struct refusal){WIRE_STATUS_LIMIT, EBUSY,
		                       "too many requests in flight on this connection"};
		return false;
	}
	return true;
}

static void
unreserve(struct conn *c, bool handoff)
{
	if (handoff)
		account_unreserve_handoff(c->env->account, c->cred.uid);
	else
		account_unreserve(c->env->account, c->cred.uid);
}

/* Set up the transfer of an admitted request; takes the record's
 * descriptors on every path. Return: the request, or NULL with *no filled. */
static struct req *
new_req(struct conn *c, const struct wire_request *req, struct fdmsg_record *rec,
        const struct fdinfo *dinfo, const struct fdinfo *sinfo, const struct pace_limits *lim,
        struct refusal *no)
{
	struct xfer_params p = {
	        .id = req->id,
	        .offset = req->offset,
	        .count = req->count,
	        .has_count = req->has_count,
	        .fallback = req->fallback,
	        .chunk = c->env->chunk_size,
	        .uid = (uint32_t)c->cred.uid,
	        /* A connection's transfers have all finished before it is
	         * freed (and its address reused). */
	        .flow = (uint64_t)(uintptr_t)c,
	        .shut_wr = req->shutdown_write,
	        .limits = *lim,
	};
	bool handoff = req->close_when_done;
	struct req *rq;
	int r;

	r = handoff ? account_reserve_handoff(c->env->account, c->cred.uid, c->env->max_handoffs)
	            : account_reserve(c->env->account, c->cred.uid);
	if (r < 0) {
		*no = (struct refusal){WIRE_STATUS_LIMIT, r == -EBUSY ? EBUSY : EUSERS,
		                       r == -EBUSY ? "too many hand-offs in flight in the daemon"
		                                   : "too many requests in flight for this user"};
		return NULL;
	}
	rq = calloc(1, sizeof(*rq));
	if (!rq) {
		unreserve(c, handoff);
		*no = (struct refusal){WIRE_STATUS_LIMIT, ENOMEM, "out of memory"};
		return NULL;
	}
	r = xfer_new(c->env->engine, rec->fds[0], dinfo, rec->fds[1], sinfo, &p, on_xfer_done, rq,
	             &rq->x);
	rec->fds[0] = rec->fds[1] = -1; /* xfer_new took them, on every path */
	rec->nfds = 0;
	if (r < 0) {
		free(rq);
		unreserve(c, handoff);
		*no = (struct refusal){WIRE_STATUS_LIMIT, -r, "cannot start the transfer"};
		return NULL;
	}
	*rq = (struct req){
	        .c = c,
	        .x = rq->x,
	        .id = req->id,
	        .offset = req->offset,
	        .count = req->count,
	        .has_count = req->has_count,
	        .handoff = handoff,
	        .start_ms = uv_now(engine_loop(c->env->engine)),
	};
	return rq;
}

static void
handle_sendfile(struct conn *c, const struct wire_request *req, struct fdmsg_record *rec)
{
	struct fdinfo dinfo, sinfo;
	struct pace_limits lim;
	struct refusal no;
	struct transfer_info info;
	struct req *rq;

	if (!admissible(c, req, rec, &dinfo, &sinfo, &lim, &no) ||
	    !(rq = new_req(c, req, rec, &dinfo, &sinfo, &lim, &no))) {
		/* The one way out of a refusal: nothing is kept. */
		fdmsg_close_all(rec->fds, rec->nfds);
		reply_status(c, req->id, req->offset, no.status, no.error, no.msg);
		return;
	}
	list_add_tail(&c->reqs, &rq->link);
	c->n_reqs++;
	req_info(rq, &info);
	account_start(c->env->account, &info);
	rq->transfer = info.transfer;
	if (rq->handoff) {
		/* Taken: the one reply goes first, at this turn's flush, and
		 * names the transfer for the control plane; the transfer
		 * starts right after it (on_flush()), so that the client's
		 * wait does not include its first chunk. */
		struct wire_response resp = {.id = req->id,
		                             .status = WIRE_STATUS_OK,
		                             .final_offset = req->offset,
		                             .transfer_id = rq->transfer};

		c->n_handoffs++;
		queue_reply(c, &resp);
		rq->to_start = true;
		list_add_tail(&c->to_start, &rq->start_link);
		defer_flush(c);
		return;
	}
	xfer_run(rq->x);
}

/* Start the hand-offs answered at this flush. */
static void
start_handoffs(struct conn *c)
{
	while (!list_empty(&c->to_start)) {
		struct req *rq = list_entry(c->to_start.next, struct req, start_link);

		list_del(&rq->start_link);
		rq->to_start = false;
		xfer_run(rq->x);
	}
}

static void
handle_ping(struct conn *c, const struct wire_request *req, struct fdmsg_record *rec)
{
	/* Who answers, so that a client can tell what it may ask for. */
	struct wire_response resp = {
	        .id = req->id,
	        .has_ping = true,
	        .protocol_version = WIRE_PROTOCOL_VERSION,
	        .features = 1u << WIRE_FEATURE_DEADLINE | 1u << WIRE_FEATURE_RATE_LIMIT |
	                    1u << WIRE_FEATURE_CLOSE_WHEN_DONE | 1u << WIRE_FEATURE_IDLE_TIMEOUT,
	};

	(void)rec;
	snprintf(resp.daemon_version, sizeof(resp.daemon_version), "%s", SFD_VERSION);
	account_reply(c->env->account, WIRE_STATUS_OK);
	queue_reply(c, &resp);
}

static void
handle_cancel(struct conn *c, const struct wire_request *req, struct fdmsg_record *rec)
{
	struct req *rq = find_req(c, false, req->target);

	(void)rec;
	if (!rq) {
		reply_status(c, req->id, 0, WIRE_STATUS_INVALID_ARGUMENT, ENOENT,
		             "no such request in flight");
		return;
	}
	/* A loop-mode target's CANCELLED reply goes out first; a
	 * worker-mode target's comes when its thread has stopped. */
	xfer_cancel(rq->x);
	reply_status(c, req->id, 0, WIRE_STATUS_OK, 0, NULL);
}

static void (*const handlers[])(struct conn *c, const struct wire_request *req,
                                struct fdmsg_record *rec) = {
        [WIRE_OP_SENDFILE] = handle_sendfile,
        [WIRE_OP_CANCEL] = handle_cancel,
        [WIRE_OP_PING] = handle_ping,
};

/* Why a record cannot be served before looking at its operation, or NULL. */
static const char *
record_refusal(const struct conn *c, const struct wire_request *req, const struct fdmsg_record *rec,
               int decoded, struct refusal *no)
{
	if (rec->error == EMFILE)
		/* Our limit, not the client's mistake: it may retry later. */
		*no = (struct refusal){WIRE_STATUS_LIMIT, EMFILE,
		                       "the daemon is out of descriptors"};
	else if (rec->error || decoded < 0)
		*no = (struct refusal){WIRE_STATUS_PROTOCOL, rec->error ? rec->error : EBADMSG,
		                       rec->error == EMSGSIZE ? "record too large"
		                       : rec->error           ? "bad descriptors in the record"
		                                              : "record does not parse"};
	else if (req->op != WIRE_OP_SENDFILE && rec->nfds > 0)
		*no = (struct refusal){WIRE_STATUS_PROTOCOL, EBADMSG,
		                       "only a sendfile request carries descriptors"};
	else if (c->state == CONN_DRAINING && req->op == WIRE_OP_SENDFILE)
		*no = (struct refusal){WIRE_STATUS_SHUTTING_DOWN, ESHUTDOWN,
		                       "the daemon is shutting down"};
	else if ((size_t)req->op >= ARRAY_SIZE(handlers) || !handlers[req->op])
		*no = (struct refusal){WIRE_STATUS_INVALID_ARGUMENT, EOPNOTSUPP,
		                       "unknown operation"};
	else
		return NULL;
	return no->msg;
}

static void
handle_record(struct conn *c, struct fdmsg_record *rec)
{
	struct wire_request req;
	struct refusal no;
	int r;

	account_request(c->env->account);
	r = wire_request_decode(rec->buf, rec->len, &req);
	/* Id 0 is the daemon's own, for replies about the connection. */
	if (!req.has_id || req.id == 0) {
		/* Nothing to address a reply to: the stream of records can no
		 * longer be trusted. */
		fdmsg_close_all(rec->fds, rec->nfds);
		log_info("pid %d sent an unreadable record: closing its connection",
		         (int)c->cred.pid);
		fail_conn(c, EBADMSG);
		return;
	}
	if (record_refusal(c, &req, rec, r, &no)) {
		fdmsg_close_all(rec->fds, rec->nfds);
		reply_status(c, req.id, req.op == WIRE_OP_SENDFILE ? req.offset : 0, no.status,
		             no.error, no.msg);
		return;
	}
	handlers[req.op](c, &req, rec);
}

/* ---- the connection ----------------------------------------------------- */

/* Read and handle one batch of records. Return: how many were read. */
static int
read_records(struct conn *c)
{
	struct fdmsg_record recs[READ_BATCH];
	unsigned max = c->env->max_in_flight;
	size_t want = MIN((unsigned)READ_BATCH, max - MIN(c->n_replies, max));
	int got;

	if (want == 0 || c->state >= CONN_CLOSING)
		return 0; /* the client is not reading its replies: stop reading it */
	for (size_t i = 0; i < want; i++)
		recs[i] = (struct fdmsg_record){.buf = c->env->recv_bufs + i * WIRE_MAX_RECORD,
		                                .cap = WIRE_MAX_RECORD};
	got = fdmsg_recv_records(c->fd, recs, want, MSG_DONTWAIT);
	if (got == -EAGAIN)
		return 0;
	if (got < 0) {
		fail_conn(c, -got);
		return 0;
	}
	for (int i = 0; i < got; i++) {
		if (c->state >= CONN_CLOSING) {
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
	return got;
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;

	if (status < 0)
		fail_conn(c, EIO);
	else if (events & (UV_READABLE | UV_DISCONNECT))
		read_records(c);
	/* Writable: the flush sends what waits. */
	defer_flush(c);
}

static void
update_poll(struct conn *c)
{
	int ev = 0;

	if (c->state >= CONN_DETACHED)
		return;
	/* Only a full socket is worth a writable watch: replies queued for a
	 * moment are sent at the turn's flush, and arming and disarming would
	 * cost epoll_ctl calls per batch. */
	if (c->rq_head && c->blocked && c->state < CONN_CLOSING)
		ev |= UV_WRITABLE;
	if (c->state < CONN_CLOSING && c->n_replies < c->env->max_in_flight)
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
free_conn(struct conn *c)
{
	engine_undefer(&c->flush);
	c->env->closed(c->env->owner, c);
	free(c);
}

static void
on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->fd = safe_close(c->fd);
	while (c->rq_head) {
		struct reply *r = c->rq_head;

		c->rq_head = r->next;
		free(r);
	}
	/* Detached: freed when its last hand-off ends (on_flush()). */
	if (c->state == CONN_DETACHED && c->n_reqs > 0) {
		c->socket_gone = true;
		return;
	}
	free_conn(c);
}

/* Cancel the transfers in flight; hand-offs only with @handoffs. */
static void
cancel_all(struct conn *c, bool handoffs)
{
	struct list_head *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->reqs)
	{
		struct req *rq = list_entry(pos, struct req, link);

		if (handoffs || !rq->handoff)
			xfer_cancel(rq->x);
	}
}

/*
 * The server is stopping and the last transfer is done: the requests
 * already queued on the connection are answered (SHUTTING_DOWN) rather than
 * lost with it, a bounded number in case the client keeps sending; then it
 * closes.
 */
static void
answer_queued(struct conn *c)
{
	for (unsigned i = 0; i < DRAIN_BATCHES && c->state == CONN_DRAINING; i++)
		if (read_records(c) == 0)
			break;
	/* Refusals close their descriptors at once, and no transfer is left
	 * to bury any: these replies may go now. */
	flush_replies(c);
	c->state = CONN_CLOSING;
}

static void
maybe_close(struct conn *c)
{
	if (c->state != CONN_CLOSING)
		return;
	/* The client is gone: stop its transfers (each still sets its file
	 * position); worker transfers report back later. Hand-offs were given
	 * away: they go on. */
	if (c->n_reqs > c->n_handoffs)
		cancel_all(c, false);
	if (c->n_reqs > c->n_handoffs)
		return;
	if (c->n_reqs > 0) {
		c->state = CONN_DETACHED;
		log_debug("connection from pid %d uid %u closed, %u hand-offs go on",
		          (int)c->cred.pid, (unsigned)c->cred.uid, c->n_handoffs);
		c->env->detached(c->env->owner, c);
	} else {
		c->state = CONN_FREED;
	}
	uv_close((uv_handle_t *)&c->poll, on_closed);
}

/* The engine's flush: the turn's descriptors are closed. */
static void
on_flush(struct engine_waiter *w)
{
	struct conn *c = container_of(w, struct conn, flush);

	if (c->state == CONN_FREED)
		return;
	if (c->state == CONN_DETACHED) {
		if (c->n_reqs == 0 && c->socket_gone)
			free_conn(c);
		return;
	}
	flush_replies(c);
	start_handoffs(c);
	/* Hand-offs do not keep the client's connection open. */
	if (c->state == CONN_DRAINING && c->n_reqs == c->n_handoffs)
		answer_queued(c);
	update_poll(c);
	maybe_close(c);
}

void
conn_shutdown(struct conn *c, bool cancel)
{
	if (c->state == CONN_OPEN)
		c->state = CONN_DRAINING;
	if (cancel)
		cancel_all(c, true);
	defer_flush(c);
}

bool
conn_detached(const struct conn *c)
{
	/* A detached connection stays so until freed. */
	return c->state == CONN_DETACHED;
}

int
conn_new(const struct conn_env *env, int fd, const struct ucred *cred, struct conn **ret_conn)
{
	_cleanup_close_ int owned = fd;
	struct conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = uv_poll_init(engine_loop(env->engine), &c->poll, owned);
	if (r < 0) {
		free(c);
		return r;
	}
	c->poll.data = c;
	c->env = env;
	c->state = CONN_OPEN;
	c->cred = *cred;
	c->flush.fn = on_flush;
	c->fd = TAKE_FD(owned);
	list_init(&c->link);
	list_init(&c->reqs);
	list_init(&c->to_start);
	update_poll(c);
	log_debug("connection from pid %d uid %u", (int)c->cred.pid, (unsigned)c->cred.uid);
	*ret_conn = c;
	return 0;
}
