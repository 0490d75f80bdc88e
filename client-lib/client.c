/*
 * client.c - libsendfiled: the client side of the data-plane protocol
 * described in docs/PROTOCOL.md.
 *
 * One connection carries many requests; each reply names the request it
 * answers, in any order. The client keeps a table of the requests in flight
 * (id -> what to do with the reply) and a queue of the completions received
 * but not yet handed to sfd_client_dispatch(). Requests the library makes
 * for itself (the blocking sfd_client_sendfile() and every Cancel) are in the
 * same table, so that their replies are told apart from the caller's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fdmsg.h"
#include "macro.h"
#include "sendfiled.h"
#include "sockpath.h"
#include "wire.h"

/* The public enums promise the wire's values: replies are copied as they are. */
#define SAME_VALUE(a, b) _Static_assert((int)(a) == (int)(b), #a " must equal " #b)
SAME_VALUE(SFD_STATUS_OK, WIRE_STATUS_OK);
SAME_VALUE(SFD_STATUS_NOT_AVAILABLE, WIRE_STATUS_NOT_AVAILABLE);
SAME_VALUE(SFD_STATUS_INVALID_ARGUMENT, WIRE_STATUS_INVALID_ARGUMENT);
SAME_VALUE(SFD_STATUS_PEER_CLOSED, WIRE_STATUS_PEER_CLOSED);
SAME_VALUE(SFD_STATUS_IO_ERROR, WIRE_STATUS_IO_ERROR);
SAME_VALUE(SFD_STATUS_CANCELLED, WIRE_STATUS_CANCELLED);
SAME_VALUE(SFD_STATUS_LIMIT, WIRE_STATUS_LIMIT);
SAME_VALUE(SFD_STATUS_PROTOCOL, WIRE_STATUS_PROTOCOL);
SAME_VALUE(SFD_STATUS_SHUTTING_DOWN, WIRE_STATUS_SHUTTING_DOWN);
SAME_VALUE(SFD_STATUS_PERMISSION_DENIED, WIRE_STATUS_PERMISSION_DENIED);
SAME_VALUE(SFD_STATUS_TIMED_OUT, WIRE_STATUS_TIMED_OUT);
SAME_VALUE(SFD_METHOD_NONE, WIRE_METHOD_NONE);
SAME_VALUE(SFD_METHOD_SENDFILE, WIRE_METHOD_SENDFILE);
SAME_VALUE(SFD_METHOD_SPLICE, WIRE_METHOD_SPLICE);
SAME_VALUE(SFD_METHOD_READ_WRITE, WIRE_METHOD_READ_WRITE);
_Static_assert(SFD_MESSAGE_MAX >= WIRE_MAX_MESSAGE, "a reply's message must fit sfd_result");
SAME_VALUE(SFD_FEATURE_DEADLINE, WIRE_FEATURE_DEADLINE);
SAME_VALUE(SFD_FEATURE_RATE_LIMIT, WIRE_FEATURE_RATE_LIMIT);
SAME_VALUE(SFD_FEATURE_CLOSE_WHEN_DONE, WIRE_FEATURE_CLOSE_WHEN_DONE);
SAME_VALUE(SFD_FEATURE_IDLE_TIMEOUT, WIRE_FEATURE_IDLE_TIMEOUT);
_Static_assert(sizeof(((struct sfd_ping_info *)0)->daemon_version) >=
                       sizeof(((struct wire_response *)0)->daemon_version),
               "a daemon's version must fit sfd_ping_info");

/* The features sfd_ping_info.features may carry: those this library knows. */
#define KNOWN_FEATURES                                                                             \
	((1u << SFD_FEATURE_DEADLINE) | (1u << SFD_FEATURE_RATE_LIMIT) |                           \
	 (1u << SFD_FEATURE_CLOSE_WHEN_DONE) | (1u << SFD_FEATURE_IDLE_TIMEOUT))

/* sfd_client_sendfile() retries a request the daemon did not act on (it was
 * shutting down) on a new connection: at most this many attempts, connects
 * included, waiting RETRY_STEP_MS more after each failed connect, up to
 * RETRY_MAX_PAUSE_MS (2.4 s in all), and never past the caller's timeout. */
#define RETRY_MAX 50
#define RETRY_STEP_MS 10
#define RETRY_MAX_PAUSE_MS 50

enum req_kind {
	REQ_USER,   /* from sfd_client_submit(): the completion is queued for dispatch */
	REQ_SYNC,   /* from sfd_client_sendfile(): the result goes to its waiter */
	REQ_CANCEL, /* a Cancel we sent: its reply only says whether it found the target */
};

/* Which file: st_dev and st_ino. A socket's inode is its own, so two
 * descriptors of one socket have the same key. */
struct fkey {
	uint64_t dev;
	uint64_t ino;
};

struct req {
	uint64_t id; /* 0 marks a free slot: ids start at 1 */
	enum req_kind kind;
	void *userdata; /* REQ_USER: the caller's pointer; REQ_SYNC: its struct waiter */
	/* REQ_USER, while the in-caller path is on: its destination and
	 * source, so that no later request to the same destination (or from
	 * the same file, whose position the daemon may be using) is sent in
	 * the caller ahead of it. */
	bool keyed;
	struct fkey dst, src;
	uint64_t pre_sent; /* REQ_USER: bytes the caller sent before it (the daemon has the rest) */
};

struct completion {
	void *userdata;
	struct sfd_result res;
};

/* Lives on the stack of sfd_client_sendfile() or sfd_client_ping(); its
 * table entry points here. */
struct waiter {
	bool done;
	struct sfd_result res;
	struct sfd_ping_info ping; /* a Ping's reply only */
	uint64_t transfer_id;      /* a hand-off's, from its reply */
};

struct sfd_client {
	int fd;
	/* Once the connection is unusable (closed by the daemon, or it sent a
	 * record we cannot read), every later call returns this error, except
	 * that sfd_client_sendfile() may replace the connection (see
	 * may_reconnect()). */
	int err;
	bool reset_seen; /* ECONNRESET was read once already */
	bool lost;       /* user requests were in flight when it failed: not reported yet */
	uint64_t next_id;
	/* Where to connect again after a daemon restart. */
	char path[SOCKPATH_MAX];
	/* The connection may be replaced after a daemon restart unless the
	 * caller said no (sfd_client_set_reconnect(): an event loop watches
	 * fd) or submitted a request (completions may be due on it). */
	bool reconnect_off;
	bool submitted;
	/* sfd_client_set_nonblocking(): sfd_client_submit() and
	 * sfd_client_cancel() return -EAGAIN rather than wait for room. */
	bool nonblocking;
	/* sfd_client_set_inline_max(): the largest range sent in the caller
	 * (see try_inline()); 0: never. */
	size_t inline_max;
	/* Someone set O_NONBLOCK on the socket (sfd_client_get_fd()): reads
	 * cannot wait, poll(2) must. */
	bool fd_nonblock;

	/* Requests in flight: open addressing with linear probing, a
	 * power-of-two number of slots, at most half of them used. */
	struct req *reqs;
	size_t reqs_cap;
	size_t n_reqs;
	unsigned n_user; /* how many of them are REQ_USER */

	/* Completions not yet dispatched: a ring of q_cap entries. Its room
	 * is reserved at submit time (q_cap >= q_len + n_user), so a reply
	 * is never lost to a failed allocation when it arrives. */
	struct completion *queue;
	size_t q_cap;
	size_t q_head;
	size_t q_len;
};

static size_t
home_slot(const struct sfd_client *c, uint64_t id)
{
	/* Ids are handed out in sequence, so their low bits already spread
	 * them evenly over the slots. */
	return (size_t)id & (c->reqs_cap - 1);
}

static void
reqs_place(struct sfd_client *c, const struct req *r)
{
	size_t mask = c->reqs_cap - 1;
	size_t i = home_slot(c, r->id);

	while (c->reqs[i].id)
		i = (i + 1) & mask;
	c->reqs[i] = *r;
}

/* Make room for @n more requests. */
static int
reqs_reserve(struct sfd_client *c, size_t n)
{
	struct req *old = c->reqs;
	size_t old_cap = c->reqs_cap;
	size_t cap = old_cap ? old_cap : 16;
	struct req *fresh;

	while ((c->n_reqs + n) * 2 > cap)
		cap *= 2;
	if (cap == old_cap)
		return 0;
	fresh = calloc(cap, sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	c->reqs = fresh;
	c->reqs_cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].id)
			reqs_place(c, &old[i]);
	free(old);
	return 0;
}

/* Return: the slot holding @id, or -1. */
static ssize_t
reqs_find(const struct sfd_client *c, uint64_t id)
{
	size_t mask = c->reqs_cap - 1;

	if (c->reqs_cap == 0 || id == 0)
		return -1;
	for (size_t i = home_slot(c, id); c->reqs[i].id; i = (i + 1) & mask)
		if (c->reqs[i].id == id)
			return (ssize_t)i;
	return -1;
}

/* Remove the request in slot @i and return it. Later members of its probe
 * run move back into the hole, so lookups need no tombstones. */
static struct req
reqs_take(struct sfd_client *c, size_t i)
{
	struct req r = c->reqs[i];
	size_t mask = c->reqs_cap - 1;
	size_t j = i;

	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!c->reqs[j].id)
			break;
		home = home_slot(c, c->reqs[j].id);
		/* The entry at j stays unless the hole lies between its home
		 * slot and j, where a lookup would stop before reaching it. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			c->reqs[i] = c->reqs[j];
			i = j;
		}
	}
	memset(&c->reqs[i], 0, sizeof(c->reqs[i]));
	c->n_reqs--;
	return r;
}

static void
reqs_drop(struct sfd_client *c, uint64_t id)
{
	ssize_t i = reqs_find(c, id);

	if (i >= 0)
		reqs_take(c, (size_t)i);
}

static int
queue_reserve(struct sfd_client *c, size_t need)
{
	struct completion *fresh;
	size_t cap;

	if (need <= c->q_cap)
		return 0;
	cap = MAX(MAX(need, c->q_cap * 2), (size_t)16);
	fresh = malloc(cap * sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	for (size_t k = 0; k < c->q_len; k++)
		fresh[k] = c->queue[(c->q_head + k) % c->q_cap];
	free(c->queue);
	c->queue = fresh;
	c->q_cap = cap;
	c->q_head = 0;
	return 0;
}

static void
queue_push(struct sfd_client *c, const struct completion *x)
{
	c->queue[(c->q_head + c->q_len) % c->q_cap] = *x;
	c->q_len++;
}

static void
queue_pop(struct sfd_client *c, struct completion *ret_x)
{
	*ret_x = c->queue[c->q_head];
	c->q_head = (c->q_head + 1) % c->q_cap;
	c->q_len--;
}

static void
result_from_wire(const struct wire_response *w, struct sfd_result *ret_res)
{
	struct sfd_result res = {
	        .bytes_sent = w->bytes_sent,
	        .final_offset = w->final_offset,
	        .status = w->status,
	        .error = w->error,
	        .method = w->method,
	        .flags = w->short_source ? SFD_RESULT_SHORT_SOURCE : 0,
	        .id = w->id,
	};

	if (w->timeout == WIRE_TIMEOUT_DEADLINE)
		res.flags |= SFD_RESULT_DEADLINE;
	else if (w->timeout == WIRE_TIMEOUT_IDLE)
		res.flags |= SFD_RESULT_IDLE;

	snprintf(res.message, sizeof(res.message), "%s", w->message);
	*ret_res = res;
}

/* A daemon older than PingInfo answers without it: protocol 1, nothing optional. */
static void
ping_from_wire(const struct wire_response *w, struct sfd_ping_info *ret_ping)
{
	struct sfd_ping_info p = {.protocol_version = 1};

	if (w->has_ping) {
		p.protocol_version = w->protocol_version;
		p.features = w->features & KNOWN_FEATURES;
		snprintf(p.daemon_version, sizeof(p.daemon_version), "%s", w->daemon_version);
	}
	*ret_ping = p;
}

/* The daemon's outcome for the rest of a range of which the caller sent
 * @pre bytes. Its final_offset already counts them (it started there). */
static void
combine(uint64_t pre, struct sfd_result *res)
{
	if (pre == 0)
		return;
	if (res->bytes_sent == 0)
		res->method = SFD_METHOD_SENDFILE;
	res->bytes_sent += pre;
}

/* The daemon closed the connection, or was closing it. */
static bool
went_away(int e)
{
	return e == -ECONNRESET || e == -EPIPE;
}

/*
 * The connection cannot be used any more. Requests in flight are forgotten:
 * their replies can no longer be matched. Shutting the socket down tells the
 * daemon at once, so it cancels what it still sends for us and settles those
 * file positions. Return: the sticky error.
 */
static int
fail(struct sfd_client *c, int err)
{
	if (!c->err) {
		c->err = err;
		/* Their outcome is known to the file positions only. */
		c->lost = c->n_user > 0 && went_away(err);
		shutdown(c->fd, SHUT_RDWR);
		if (c->reqs)
			memset(c->reqs, 0, c->reqs_cap * sizeof(*c->reqs));
		c->n_reqs = 0;
		c->n_user = 0;
	}
	return c->err;
}

static int
connection_error(const struct wire_response *w)
{
	if (w->status == SFD_STATUS_PERMISSION_DENIED)
		return -EACCES;
	if (w->error > 0)
		return -w->error;
	return -ECONNRESET;
}

static int
handle_record(struct sfd_client *c, const void *buf, size_t len)
{
	struct wire_response w;
	struct completion x;
	struct waiter *waiter;
	struct req r;
	ssize_t i;

	if (wire_response_decode(buf, len, &w) < 0)
		return fail(c, -EBADMSG);
	/* Our ids start at 1: a reply without one is about the connection
	 * itself (a refused user), and the daemon closes it next. */
	if (w.id == 0)
		return fail(c, connection_error(&w));
	i = reqs_find(c, w.id);
	/* A reply to nothing we wait for: the request of a blocking call that
	 * gave up on an error. Nobody wants it. */
	if (i < 0)
		return 0;
	r = reqs_take(c, (size_t)i);
	switch (r.kind) {
	case REQ_USER:
		x.userdata = r.userdata;
		result_from_wire(&w, &x.res);
		combine(r.pre_sent, &x.res);
		c->n_user--;
		queue_push(c, &x);
		break;
	case REQ_SYNC:
		waiter = r.userdata;
		result_from_wire(&w, &waiter->res);
		ping_from_wire(&w, &waiter->ping);
		waiter->transfer_id = w.transfer_id;
		waiter->done = true;
		break;
	case REQ_CANCEL:
		break;
	}
	return 0;
}

/* Read and route every reply waiting now, a batch per recvmmsg(2); with
 * @block, the first read waits for one (a signal ends the wait early).
 * Return: 0 or a negative errno; -EAGAIN when @block could not wait: the
 * caller made the socket non-blocking (an event loop polling it). */
static int
read_replies(struct sfd_client *c, bool block)
{
	static _Thread_local uint8_t bufs[FDMSG_BATCH][WIRE_MAX_RECORD];

	for (;;) {
		struct fdmsg_record recs[FDMSG_BATCH];
		int n, r;

		if (c->err)
			return c->err;
		for (size_t i = 0; i < FDMSG_BATCH; i++)
			recs[i] = (struct fdmsg_record){.buf = bufs[i], .cap = WIRE_MAX_RECORD};
		n = fdmsg_recv_records(c->fd, recs, FDMSG_BATCH, block ? 0 : MSG_DONTWAIT);
		if (n == -EAGAIN && block)
			return -EAGAIN;
		block = false;
		if (n == -EAGAIN || n == -EINTR)
			return 0;
		/* The daemon closed with requests of ours unread. The kernel
		 * reports that once, before the replies still queued for us
		 * (a refusal, the last completions): read those first, the
		 * end comes after them. */
		if (n == -ECONNRESET) {
			if (c->reset_seen)
				return fail(c, -ECONNRESET);
			c->reset_seen = true;
			continue;
		}
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			/* The daemon never sends descriptors: drop any. */
			fdmsg_close_all(recs[i].fds, recs[i].nfds);
			/* A reply we cannot read is a request we can never
			 * complete. */
			if (recs[i].error)
				return fail(c, -EBADMSG);
			/* An empty record is the end of the connection (the
			 * protocol has no empty records). */
			if (recs[i].len == 0)
				return fail(c, -ECONNRESET);
			r = handle_record(c, recs[i].buf, recs[i].len);
			if (r < 0)
				return r;
		}
		if (n < FDMSG_BATCH)
			return 0;
	}
}

static int
read_available(struct sfd_client *c)
{
	return read_replies(c, false);
}

/*
 * Send one record, waiting while the socket is full unless @may_wait is
 * false (then -EAGAIN, nothing sent). The daemon may itself be blocked on us
 * reading its replies before it reads more requests, so the wait keeps
 * reading them (into the queue) until there is room.
 */
static int
send_record(struct sfd_client *c, const void *buf, size_t len, const int *fds, size_t nfds,
            bool may_wait)
{
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLOUT};
		ssize_t n;
		int r;

		if (c->err)
			return c->err;
		n = fdmsg_send(c->fd, buf, len, fds, nfds, MSG_DONTWAIT);
		if (n >= 0)
			return 0;
		/* The daemon has closed: what it said before closing (a
		 * refusal) explains it better than EPIPE does. */
		if (n == -EPIPE || n == -ECONNRESET) {
			read_available(c);
			return c->err ? c->err : (int)n;
		}
		if (n != -EAGAIN || !may_wait)
			return (int)n;
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p.revents & (POLLIN | POLLHUP)) {
			r = read_available(c);
			if (r < 0)
				return r;
		}
	}
}

/*
 * Give @wr a fresh id, record it as in flight and send it with @fds; see
 * send_record() for @may_wait.
 * Return: 0 and *ret_id, or a negative errno (then nothing is in flight).
 */
static int
start_request(struct sfd_client *c, enum req_kind kind, struct wire_request *wr, const int *fds,
              size_t nfds, bool may_wait, void *userdata, uint64_t *ret_id)
{
	uint8_t buf[WIRE_MAX_RECORD];
	struct req r = {.kind = kind, .userdata = userdata};
	ssize_t len;
	int e;

	if (c->err)
		return c->err;
	e = reqs_reserve(c, 1);
	if (e < 0)
		return e;
	if (kind == REQ_USER) {
		e = queue_reserve(c, c->q_len + c->n_user + 1);
		if (e < 0)
			return e;
	}
	r.id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	wr->id = r.id;
	len = wire_request_encode(wr, buf, sizeof(buf));
	if (len < 0)
		return (int)len;

	reqs_place(c, &r);
	c->n_reqs++;
	e = send_record(c, buf, (size_t)len, fds, nfds, may_wait);
	if (e < 0) {
		reqs_drop(c, r.id);
		return e;
	}
	if (kind == REQ_USER)
		c->n_user++;
	*ret_id = r.id;
	return 0;
}

static int
send_cancel(struct sfd_client *c, uint64_t target, bool may_wait)
{
	struct wire_request wr = {.op = WIRE_OP_CANCEL, .target = target};
	uint64_t id;

	return start_request(c, REQ_CANCEL, &wr, NULL, 0, may_wait, NULL, &id);
}

/* The transfer's limits; reserved fields must be zero, so that a later
 * version can give them a meaning. */
static int
request_options(const struct sfd_options *opts, struct wire_request *req)
{
	if (!opts)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(opts->reserved); i++)
		if (opts->reserved[i])
			return -EINVAL;
	if (opts->rate_limit_after && !opts->rate_limit_bps)
		return -EINVAL;
	req->deadline_ms = opts->deadline_ms;
	req->idle_timeout_ms = opts->idle_timeout_ms;
	req->rate_limit_bps = opts->rate_limit_bps;
	req->rate_limit_after = opts->rate_limit_after;
	return 0;
}

static int
sendfile_request(int out_fd, int in_fd, uint64_t offset, uint64_t count, unsigned flags,
                 const struct sfd_options *opts, struct wire_request *ret_req)
{
	struct wire_request req;

	if (out_fd < 0 || in_fd < 0)
		return -EBADF;
	if (flags & ~(SFD_NO_FALLBACK | SFD_NO_INLINE))
		return -EINVAL;
	req = (struct wire_request){
	        .op = WIRE_OP_SENDFILE,
	        .offset = offset,
	        .count = count,
	        .has_count = count != 0,
	        .fallback = !(flags & SFD_NO_FALLBACK),
	};
	if (request_options(opts, &req) < 0)
		return -EINVAL;
	*ret_req = req;
	return 0;
}

/* ---- the in-caller path ------------------------------------------------- */

/* What try_inline() did: @sent bytes left from the caller; when @done, @res
 * is the whole outcome and the daemon is not asked. */
struct inline_part {
	uint64_t sent;
	bool done;
	bool keyed; /* dst and src hold the descriptors' keys */
	struct fkey dst, src;
	struct sfd_result res;
};

static struct fkey
key_of(const struct stat *st)
{
	return (struct fkey){.dev = (uint64_t)st->st_dev, .ino = (uint64_t)st->st_ino};
}

static int
fd_key(int fd, struct fkey *ret_key)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*ret_key = key_of(&st);
	return 0;
}

static bool
same_key(const struct fkey *a, const struct fkey *b)
{
	return a->dev == b->dev && a->ino == b->ino;
}

/*
 * Is a submitted request in flight at the daemon to @dst, or from @src? The
 * first would be overtaken (transfers to one destination run in the order
 * submitted); the second may be sending from the file position we would
 * move. A request submitted while the path was off has no keys: it counts
 * as both.
 */
static bool
busy_at_daemon(const struct sfd_client *c, const struct fkey *dst, const struct fkey *src)
{
	for (size_t i = 0; i < c->reqs_cap; i++) {
		const struct req *r = &c->reqs[i];

		if (!r->id || r->kind != REQ_USER)
			continue;
		if (!r->keyed || same_key(&r->dst, dst) || same_key(&r->src, src))
			return true;
	}
	return false;
}

/*
 * sendfile(2) raises SIGPIPE on a socket that can no longer send (it has no
 * MSG_NOSIGNAL), and the library promises never to raise a signal. A
 * process that ignores SIGPIPE (most servers; Python and Node.js do at
 * start) discards it as it is raised: one query then. Otherwise the
 * signal is blocked in this thread around the call, and one it raised is
 * taken back before the mask is restored; one that was already pending,
 * from the caller's own writes, is left alone.
 */
struct pipe_guard {
	bool masked;      /* we blocked it */
	bool was_blocked; /* the caller had it blocked already */
	bool was_pending;
	sigset_t old;
};

/* Return: whether sending may go ahead (no SIGPIPE can escape). */
static bool
guard_enter(struct pipe_guard *g)
{
	struct sigaction sa;
	sigset_t set;

	*g = (struct pipe_guard){0};
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
		return true;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, &g->old) != 0)
		return false;
	g->masked = true;
	g->was_blocked = sigismember(&g->old, SIGPIPE) == 1;
	/* Unblocked until now, none can be pending for this thread; only
	 * when the caller had it blocked is sigpending() worth a syscall. */
	if (g->was_blocked) {
		sigset_t pending;

		g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
	}
	return true;
}

static void
guard_leave(const struct pipe_guard *g, int err)
{
	if (!g->masked)
		return;
	if (err == EPIPE && !g->was_pending) {
		static const struct timespec zero = {0};
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	if (!g->was_blocked)
		pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/*
 * The errors that end a stream for good. The first send after a reset
 * consumes the socket's pending error (ECONNRESET; EPIPE after it), so the
 * daemon could not see the same one again: these are reported here,
 * exactly as the daemon reports them (daemon/xfer.c, xfer_finish_error()).
 */
#define PEER_GONE_MESSAGE "the destination's peer closed the connection"

static bool
peer_gone(int err)
{
	switch (err) {
	case EPIPE:
	case ECONNRESET:
	case ECONNABORTED:
	case ENOTCONN:
	case ESHUTDOWN:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
		return true;
	}
	return false;
}

/* A range with limits is the daemon's: it paces a rate from the first byte
 * (the caller would send at full speed), and it is the one to judge the
 * limits, so that a bad one is refused however small the range. */
static unsigned
inline_flags(unsigned flags, const struct sfd_options *opts)
{
	bool limited = opts && (opts->deadline_ms || opts->idle_timeout_ms ||
	                        opts->rate_limit_bps || opts->rate_limit_after);

	return limited ? flags | SFD_NO_INLINE : flags;
}

/*
 * try_inline() - send a small range in the caller, before (or instead of)
 * asking the daemon.
 *
 * A round trip to the daemon costs several times an in-process sendfile of a
 * few KiB, so for a range of at most c->inline_max bytes to a non-blocking
 * stream socket, sendfile(2) runs here first, with an explicit offset: a
 * source it cannot read that way (a pipe, a socket: ESPIPE) fails before
 * anything is sent. Whatever stops it early, other than the end of the
 * file, is left to the daemon: a full socket (EAGAIN) for the rest of the
 * range, and every error but a closed peer (see peer_gone()), which the
 * daemon meets again and reports as it always does (status, errno,
 * message), so that the outcome is the same on both paths. The position is set to offset + sent
 * before the daemon is asked, which is where the daemon then starts.
 *
 * Not taken, at no cost: the path is off, SFD_NO_INLINE, a count above the
 * threshold, a dead connection. Then the syscalls, each needed: fcntl()
 * (a blocking destination would block the caller) and getsockopt(SO_TYPE)
 * (the daemon refuses other socket types) on the destination; fstat() of
 * the source only when the range runs to the end of the file (its size);
 * fstat() of both only while submitted requests are in flight (the keys
 * busy_at_daemon() compares); sigaction(), plus two sigprocmask() unless
 * SIGPIPE is ignored (see struct pipe_guard); sendfile() until the range is
 * sent or the socket is full (a second call tells a full socket from the
 * end of the file); lseek() when anything was sent. The caller's
 * descriptors are borrowed and their flags never changed.
 */
static void
try_inline(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset, uint64_t count,
           unsigned flags, struct inline_part *ret)
{
	struct pipe_guard g;
	uint64_t want = count, size = 0, sent = 0;
	socklen_t len = sizeof(int);
	bool have_src = false, eof = false;
	int fl, type = 0, err = 0;

	*ret = (struct inline_part){0};
	if (!c->inline_max || (flags & SFD_NO_INLINE) || c->err)
		return;
	if (count > c->inline_max || offset > (uint64_t)INT64_MAX - c->inline_max)
		return;
	fl = fcntl(out_fd, F_GETFL);
	if (fl < 0 || !(fl & O_NONBLOCK) || (fl & (O_APPEND | O_PATH)) ||
	    (fl & O_ACCMODE) == O_RDONLY)
		return;
	if (getsockopt(out_fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
		return;
	if (count == 0) {
		struct stat st;

		/* Size 0 is not always empty (/proc files): the daemon
		 * reads those to their real end. */
		if (fstat(in_fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
		    offset >= (uint64_t)st.st_size)
			return;
		size = (uint64_t)st.st_size;
		want = size - offset;
		if (want > c->inline_max)
			return;
		ret->src = key_of(&st);
		have_src = true;
	}
	if (c->n_user > 0) {
		if (fd_key(out_fd, &ret->dst) < 0 || (!have_src && fd_key(in_fd, &ret->src) < 0))
			return;
		ret->keyed = true;
		if (busy_at_daemon(c, &ret->dst, &ret->src))
			return;
	}

	if (!guard_enter(&g))
		return;
	while (sent < want) {
		off_t off = (off_t)(offset + sent);
		ssize_t n = sendfile(out_fd, in_fd, &off, (size_t)(want - sent));

		if (n > 0) {
			sent += (uint64_t)n;
		} else if (n == 0) {
			eof = true;
			break;
		} else if (errno != EINTR) {
			err = errno;
			break;
		}
	}
	guard_leave(&g, err);

	/* sendfile() with an offset leaves the position alone: the result
	 * sets it, as the daemon does. */
	if (sent > 0)
		(void)lseek(in_fd, (off_t)(offset + sent), SEEK_SET);
	ret->sent = sent;
	if (sent < want && !eof && !peer_gone(err))
		return;
	ret->done = true;
	ret->res = (struct sfd_result){
	        .bytes_sent = sent,
	        .final_offset = offset + sent,
	        .status = SFD_STATUS_OK,
	        .method = sent > 0 ? SFD_METHOD_SENDFILE : SFD_METHOD_NONE,
	        .flags = SFD_RESULT_INLINE,
	};
	if (peer_gone(err)) {
		ret->res.status = SFD_STATUS_PEER_CLOSED;
		ret->res.error = err;
		snprintf(ret->res.message, sizeof(ret->res.message), "%s", PEER_GONE_MESSAGE);
	} else if (count ? sent < count : offset + sent < size) {
		ret->res.flags |= SFD_RESULT_SHORT_SOURCE;
	}
}

/* What the daemon is asked after the caller sent @sent bytes of @wr. */
static void
rest_of(struct wire_request *wr, uint64_t sent)
{
	wr->offset += sent;
	if (wr->has_count)
		wr->count -= sent;
}

/*
 * Read replies until @w has its own, routing the others. @deadline is a
 * mono_ms() time, or -1 to wait as long as it takes.
 * Return: 0, -ETIMEDOUT, or a negative errno.
 */
static int
wait_for(struct sfd_client *c, const struct waiter *w, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int timeout = -1;
		int e;

		/* No deadline: the read itself waits, one recvmmsg(2) per
		 * reply instead of a read that finds nothing, a poll(2) and a
		 * read (the socket blocks: only sends are made with
		 * MSG_DONTWAIT). Not before a reply read while sending. */
		if (deadline < 0 && !w->done && !c->fd_nonblock) {
			e = read_replies(c, true);
			if (w->done)
				return 0;
			if (e == -EAGAIN)
				c->fd_nonblock = true; /* poll from now on */
			else if (e < 0)
				return e;
			continue;
		}
		e = read_available(c);
		/* Checked first: the reply may have come just before the end. */
		if (w->done)
			return 0;
		if (e < 0)
			return e;
		if (deadline >= 0) {
			int64_t left = deadline - mono_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			timeout = (int)MIN(left, (int64_t)INT_MAX);
		}
		if (poll(&p, 1, timeout) < 0 && errno != EINTR)
			return -errno;
	}
}

/* Return: 0 and *ret_fd, a connected socket, or a negative errno. */
static int
connect_path(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	int r;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* An AF_UNIX connect interrupted while waiting for room in the
	 * listener's backlog leaves the socket unconnected: just retry. */
	do
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int
sfd_client_open(const char *path, struct sfd_client **ret)
{
	char buf[SOCKPATH_MAX];
	struct sfd_client *c;
	int fd = -1, r;

	if (path) {
		size_t len = strlen(path);

		if (len == 0)
			return -EINVAL;
		if (len >= sizeof(buf))
			return -ENAMETOOLONG;
		memcpy(buf, path, len + 1);
	} else {
		r = sockpath_client_default(buf, sizeof(buf));
		if (r < 0)
			return r;
	}
	r = connect_path(buf, &fd);
	if (r < 0)
		return r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		safe_close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->next_id = 1;
	c->inline_max = SFD_INLINE_MAX_DEFAULT;
	memcpy(c->path, buf, sizeof(buf));
	*ret = c;
	return 0;
}

void
sfd_client_free(struct sfd_client *c)
{
	if (!c)
		return;
	safe_close(c->fd);
	free(c->reqs);
	free(c->queue);
	free(c);
}

int
sfd_client_get_fd(const struct sfd_client *c)
{
	return c->fd;
}

int
sfd_client_set_reconnect(struct sfd_client *c, int enable)
{
	c->reconnect_off = !enable;
	return 0;
}

int
sfd_client_set_inline_max(struct sfd_client *c, size_t bytes)
{
	c->inline_max = bytes;
	return 0;
}

/* A completion produced in the caller: queued like the daemon's, so that
 * it reaches the callback through sfd_client_dispatch(), under its own id. */
static uint64_t
queue_inline(struct sfd_client *c, struct inline_part *p, void *userdata)
{
	struct completion x = {.userdata = userdata, .res = p->res};

	x.res.id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	queue_push(c, &x);
	return x.res.id;
}

int
sfd_client_submit(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset, uint64_t count,
                  unsigned flags, void *userdata, uint64_t *ret_id)
{
	return sfd_client_submit_opts(c, out_fd, in_fd, offset, count, flags, NULL, userdata,
	                              ret_id);
}

int
sfd_client_submit_opts(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset, uint64_t count,
                       unsigned flags, const struct sfd_options *opts, void *userdata,
                       uint64_t *ret_id)
{
	int fds[2] = {out_fd, in_fd};
	struct inline_part p = {0};
	struct wire_request wr;
	uint64_t id;
	ssize_t i;
	int e;

	e = sendfile_request(out_fd, in_fd, offset, count, flags, opts, &wr);
	if (e < 0)
		return e;
	c->submitted = true;
	/* In non-blocking mode a submit that finds the connection full must
	 * be able to say "nothing was sent": a range begun in the caller
	 * could not be taken back. */
	if (!c->nonblocking && c->inline_max) {
		/* Room for the completion first: once bytes have left, it
		 * must not be lost to a failed allocation. */
		e = queue_reserve(c, c->q_len + c->n_user + 1);
		if (e < 0)
			return e;
		try_inline(c, out_fd, in_fd, offset, count, inline_flags(flags, opts), &p);
		if (p.done) {
			*ret_id = queue_inline(c, &p, userdata);
			return 0;
		}
		rest_of(&wr, p.sent);
	}
	e = start_request(c, REQ_USER, &wr, fds, 2, !c->nonblocking, userdata, &id);
	/* A failure after the caller sent part of the range: the file
	 * position (offset + the bytes sent) tells how much, as it does when
	 * the daemon is lost. */
	if (e < 0)
		return e;
	/* Its keys, for the in-caller path of later requests (none in
	 * non-blocking mode: a request without keys holds that path back
	 * for every destination while it is in flight). */
	i = reqs_find(c, id);
	if (i >= 0 && c->inline_max && !c->nonblocking) {
		struct req *r = &c->reqs[i];

		r->pre_sent = p.sent;
		r->keyed = p.keyed || (fd_key(out_fd, &p.dst) == 0 && fd_key(in_fd, &p.src) == 0);
		r->dst = p.dst;
		r->src = p.src;
	}
	*ret_id = id;
	return 0;
}

/*
 * Replacing the connection is safe while nothing but blocking calls ever
 * used it (no completion can be due on it) and the caller has not said that
 * an event loop watches it.
 */
static bool
may_reconnect(const struct sfd_client *c)
{
	return !c->reconnect_off && !c->submitted;
}

/* Sleep before retry number @attempt, within @deadline. Return: false when
 * the deadline leaves no time for it. */
static bool
pause_before_retry(unsigned attempt, int64_t deadline)
{
	int64_t ms = MIN((int64_t)attempt * RETRY_STEP_MS, (int64_t)RETRY_MAX_PAUSE_MS);
	struct timespec ts;

	if (deadline >= 0 && mono_ms() + ms >= deadline)
		return false;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return true;
}

/*
 * Replace the connection with a new one to the same path. While nobody
 * listens there (a daemon that binds its own socket is restarting), wait and
 * try again, counting each try in *@attempts.
 * Return: 0, or the last connect() error (the old connection is kept).
 */
static int
reconnect(struct sfd_client *c, int64_t deadline, unsigned *attempts)
{
	for (;;) {
		int fd = -1, r = connect_path(c->path, &fd);

		if (r == 0) {
			safe_close(c->fd);
			c->fd = fd;
			c->err = 0;
			c->lost = false;
			c->reset_seen = false;
			/* Only our own requests were in flight, and those the
			 * caller has given up on: none is on the new one. */
			if (c->reqs)
				memset(c->reqs, 0, c->reqs_cap * sizeof(*c->reqs));
			c->n_reqs = 0;
			return 0;
		}
		if (r != -ECONNREFUSED && r != -ENOENT && r != -EAGAIN)
			return r;
		if (++*attempts >= RETRY_MAX || !pause_before_retry(*attempts, deadline))
			return r;
	}
}

/*
 * One try of sfd_client_sendfile() on the current connection. Sets
 * *ret_unsent when the daemon certainly did nothing with the request, so that
 * sending it again cannot send anything twice: it was not sent, the daemon
 * closed without reading it, or it answered SHUTTING_DOWN.
 */
static int
sendfile_once(struct sfd_client *c, struct wire_request *wr, const int *fds, int64_t deadline,
              struct waiter *w, bool *ret_unsent)
{
	uint64_t id;
	int e;

	*ret_unsent = false;
	e = start_request(c, REQ_SYNC, wr, fds, 2, true, w, &id);
	if (e < 0) {
		/* Nothing left here: sendmsg() never took the record. */
		*ret_unsent = went_away(e);
		return e;
	}
	e = wait_for(c, w, deadline);
	if (e == -ETIMEDOUT) {
		/* The daemon answers a Cancel at once; waiting for the
		 * target's reply means its file position is final when we
		 * return. */
		e = send_cancel(c, id, true);
		if (e == 0)
			e = wait_for(c, w, -1);
		/* A transfer that ended by itself first keeps its outcome. */
		if (e == 0 && w->res.status == SFD_STATUS_CANCELLED)
			e = -ETIMEDOUT;
	} else if (went_away(e) && c->reset_seen) {
		/* The kernel reports ECONNRESET when the daemon closed with
		 * records unread. Ours was the last one we sent, and records
		 * are read in order: it was unread. */
		*ret_unsent = true;
	} else if (went_away(e)) {
		/* It was read, and no reply came: the daemon died with it. */
		e = -SFD_EOUTCOME_UNKNOWN;
	}
	if (e < 0) {
		/* Its entry points into this stack frame: a late reply
		 * must find nothing. */
		reqs_drop(c, id);
		return e;
	}
	*ret_unsent = w->res.status == SFD_STATUS_SHUTTING_DOWN;
	return 0;
}

/*
 * exchange() - send a Sendfile and await its reply within @deadline, sending
 * it again on a new connection while a restarting daemon did nothing with
 * it (see "Daemon restarts" in sendfiled.h): the daemon is going away, and a
 * new connection is accepted by the next one (under socket activation it
 * is queued until then). If none can be made, what this one said is
 * reported. Room for two requests must be reserved.
 * Return: as sendfile_once(); *w holds the reply when w->done.
 */
static int
exchange(struct sfd_client *c, struct wire_request *wr, const int *fds, int64_t deadline,
         struct waiter *w)
{
	unsigned attempts = 0;
	bool unsent;
	int e;

	memset(w, 0, sizeof(*w));
	/* A daemon that closed this connection earlier may be back (or a new
	 * one may be listening on the same socket). */
	if (went_away(c->err) && may_reconnect(c) && reconnect(c, deadline, &attempts) < 0)
		return c->err;
	for (;;) {
		memset(w, 0, sizeof(*w));
		e = sendfile_once(c, wr, fds, deadline, w, &unsent);
		if (!unsent || !may_reconnect(c) || ++attempts >= RETRY_MAX ||
		    (deadline >= 0 && mono_ms() >= deadline))
			return e;
		if (reconnect(c, deadline, &attempts) < 0)
			return e;
		e = reqs_reserve(c, 2);
		if (e < 0)
			return e;
	}
}

int
sfd_client_sendfile(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset, uint64_t count,
                    unsigned flags, int timeout_ms, struct sfd_result *ret)
{
	return sfd_client_sendfile_opts(c, out_fd, in_fd, offset, count, flags, NULL, timeout_ms,
	                                ret);
}

int
sfd_client_sendfile_opts(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset,
                         uint64_t count, unsigned flags, const struct sfd_options *opts,
                         int timeout_ms, struct sfd_result *ret)
{
	int fds[2] = {out_fd, in_fd};
	struct wire_request wr;
	struct inline_part p;
	struct waiter w;
	int64_t deadline = -1;
	int e;

	e = sendfile_request(out_fd, in_fd, offset, count, flags, opts, &wr);
	if (e < 0)
		return e;
	/* Room for the request and for the Cancel a timeout may need, so
	 * that a timeout can always stop the transfer. */
	e = reqs_reserve(c, 2);
	if (e < 0)
		return e;
	try_inline(c, out_fd, in_fd, offset, count, inline_flags(flags, opts), &p);
	if (p.done) {
		p.res.id = c->next_id++;
		if (c->next_id == 0)
			c->next_id = 1;
		*ret = p.res;
		return 0;
	}
	rest_of(&wr, p.sent);
	if (timeout_ms >= 0)
		deadline = mono_ms() + timeout_ms;
	e = exchange(c, &wr, fds, deadline, &w);
	if (w.done)
		combine(p.sent, &w.res);
	/* A timed-out transfer was cancelled and its answer awaited: what it
	 * sent and where it left the file position are known, and useful. */
	if (e == -ETIMEDOUT && w.done)
		*ret = w.res;
	/* A failure after the caller sent part of the range: the file
	 * position (offset + the bytes sent) tells how much, as it does when
	 * the daemon is lost. */
	if (e < 0)
		return e;
	*ret = w.res;
	return 0;
}

/* One Ping on the current connection, its reply awaited within @deadline. */
static int
ping_once(struct sfd_client *c, int64_t deadline, struct waiter *w)
{
	struct wire_request wr = {.op = WIRE_OP_PING};
	uint64_t id;
	int e;

	memset(w, 0, sizeof(*w));
	e = start_request(c, REQ_SYNC, &wr, NULL, 0, true, w, &id);
	if (e < 0)
		return e;
	e = wait_for(c, w, deadline);
	if (e < 0)
		/* Its entry points into the caller's frame: a late reply
		 * must find nothing. */
		reqs_drop(c, id);
	return e;
}

int
sfd_client_ping(struct sfd_client *c, int timeout_ms, struct sfd_ping_info *ret)
{
	int64_t deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1;
	unsigned attempts = 0;
	struct waiter w;
	int e;

	if (went_away(c->err) && may_reconnect(c) && reconnect(c, deadline, &attempts) < 0)
		return c->err;
	for (;;) {
		e = ping_once(c, deadline, &w);
		/* A Ping does nothing, so unlike a Sendfile it may be sent
		 * again even when the daemon may have read it. */
		if (!went_away(e) || !may_reconnect(c) || ++attempts >= RETRY_MAX ||
		    (deadline >= 0 && mono_ms() >= deadline))
			break;
		if (reconnect(c, deadline, &attempts) < 0)
			break;
	}
	if (e < 0)
		return e;
	if (w.res.status != SFD_STATUS_OK)
		return w.res.error > 0 ? -w.res.error : -EPROTO;
	*ret = w.ping;
	return 0;
}

/* The request of a hand-off: a Sendfile that gives the destination away. */
static int
handoff_request(int out_fd, int in_fd, uint64_t offset, uint64_t count, unsigned flags,
                const struct sfd_options *opts, struct wire_request *ret_req)
{
	struct wire_request wr;
	int e;

	if (flags & ~(SFD_NO_FALLBACK | SFD_SHUT_WR))
		return -EINVAL;
	/* The options are checked and encoded as for any request. */
	e = sendfile_request(out_fd, in_fd, offset, count, flags & SFD_NO_FALLBACK, opts, &wr);
	if (e < 0)
		return e;
	wr.close_when_done = true;
	wr.shutdown_write = flags & SFD_SHUT_WR;
	*ret_req = wr;
	return 0;
}

int
sfd_client_handoff(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset, uint64_t count,
                   unsigned flags, const struct sfd_options *opts, int timeout_ms,
                   uint64_t *ret_transfer_id)
{
	int fds[2] = {out_fd, in_fd};
	struct wire_request wr;
	struct waiter w;
	int64_t deadline = -1;
	int e;

	e = handoff_request(out_fd, in_fd, offset, count, flags, opts, &wr);
	if (e < 0)
		return e;
	/* The same exchange as sfd_client_sendfile()'s, restarts included;
	 * only the reply comes sooner: once the daemon holds the
	 * descriptors. */
	e = reqs_reserve(c, 2);
	if (e < 0)
		return e;
	if (timeout_ms >= 0)
		deadline = mono_ms() + timeout_ms;
	e = exchange(c, &wr, fds, deadline, &w);
	if (e < 0)
		return e;
	/* Refused: nothing was taken, the daemon's errno says why. */
	if (w.res.status != SFD_STATUS_OK)
		return w.res.error > 0 ? -w.res.error : -EPROTO;
	*ret_transfer_id = w.transfer_id;
	return 0;
}

int
sfd_client_dispatch(struct sfd_client *c, sfd_completion_fn cb)
{
	bool read = false;
	int n = 0;

	if (!cb)
		return -EINVAL;
	for (;;) {
		struct completion x;
		int e;

		if (c->q_len > 0) {
			/* A copy: the callback may submit, and that may
			 * move the queue. */
			queue_pop(c, &x);
			cb(c, x.res.id, &x.res, x.userdata);
			if (n < INT_MAX)
				n++;
			continue;
		}
		/* A dead connection is reported after the replies it brought
		 * before it died, and even after deliveries: the caller's
		 * poller may not wake us again for it. */
		if (c->err) {
			if (!c->lost)
				return c->err;
			c->lost = false;
			return -SFD_EOUTCOME_UNKNOWN;
		}
		if (read)
			return n;
		/* Everything waiting now, in recvmmsg(2) batches (the queue has
		 * room for every reply in flight), then delivered. */
		e = read_available(c);
		read = true;
		if (e < 0 && !c->err)
			return n > 0 ? n : e;
	}
}

int
sfd_client_cancel(struct sfd_client *c, uint64_t id)
{
	ssize_t i;

	if (c->err)
		return c->err;
	i = reqs_find(c, id);
	if (i < 0 || c->reqs[i].kind != REQ_USER)
		return -ENOENT;
	return send_cancel(c, id, !c->nonblocking);
}

int
sfd_client_set_nonblocking(struct sfd_client *c, bool on)
{
	c->nonblocking = on;
	return 0;
}

unsigned
sfd_client_pending(const struct sfd_client *c)
{
	return (unsigned)c->q_len;
}

unsigned
sfd_client_in_flight(const struct sfd_client *c)
{
	return c->n_user;
}

const char *
sfd_status_str(int status)
{
	return wire_status_text(status);
}

const char *
sfd_method_str(int method)
{
	return wire_method_name(method);
}

int
sfd_default_socket_path(char *buf, size_t size)
{
	char path[PATH_MAX];
	int n;

	/* Through a local buffer: @buf is written only on success. */
	n = sockpath_client_default(path, sizeof(path));
	if (n < 0)
		return n;
	if ((unsigned long)n >= size)
		return -ENAMETOOLONG;
	memcpy(buf, path, (size_t)n + 1);
	return n;
}
