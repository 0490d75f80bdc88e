/*
 * xfer.c - one transfer: the methods (the only file that calls sendfile(2)
 * and splice(2)), the loop runner, and finishing.
 *
 * A transfer is a small state machine around xfer_step(), which moves at
 * most a budget of bytes with the transfer's current method and says what
 * to wait for when the kernel answers EAGAIN. The loop runner (here) and the
 * worker runner (xfer-worker.c) both drive it; they differ only in how they
 * wait. What transfers of one loop share (the turn's batch, the lines per
 * destination, the chain) is the engine's (engine.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "macro.h"
#include "xfer-internal.h"

/* The user-space copy's buffer. */
#define COPY_BUF_SIZE (64 * 1024)
/* Transfers whose turn came while one ahead of them ran from its start
 * timer: started from there, in a chain, rather than one loop turn each. */
#define CHAIN_MAX 64

uint64_t
xfer_id(const struct xfer *x)
{
	return x->p.id;
}

uint64_t
xfer_bytes_sent(const struct xfer *x)
{
	/* A worker may be adding to it right now. */
	return __atomic_load_n(&x->sent, __ATOMIC_RELAXED);
}

bool
xfer_waiting(const struct xfer *x)
{
	return !x->started && !x->finished && x->line.line;
}

bool
xfer_on_worker(const struct xfer *x)
{
	return x->on_worker;
}

static int
wire_method(const struct xfer *x)
{
	switch (x->method) {
	case M_SENDFILE:
		return WIRE_METHOD_SENDFILE;
	case M_SPLICE:
	case M_SPLICE_BUFFER:
		return WIRE_METHOD_SPLICE;
	case M_COPY:
		return WIRE_METHOD_READ_WRITE;
	}
	return WIRE_METHOD_NONE;
}

int
xfer_method(const struct xfer *x)
{
	return x->sent > 0 ? wire_method(x) : WIRE_METHOD_NONE;
}

static bool
seekable_source(const struct xfer *x)
{
	return x->sinfo.kind == FD_KIND_FILE;
}

/* Does the source have data (or EOF, or an error) to read right now? */
static bool
source_ready(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, 0) > 0;
}

/* Can no zero-copy method serve this pair? Then fallback decides. */
static bool
not_zero_copy(int err)
{
	return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP;
}

static size_t
want_bytes(const struct xfer *x, size_t budget)
{
	uint64_t left = x->limit - x->sent;

	return MIN(MIN((uint64_t)budget, left), (uint64_t)XFER_SYSCALL_MAX);
}

/*
 * The outcome of one syscall of a step, called with errno as the syscall
 * left it: a failure says what to wait for on EAGAIN (@on_eagain); 0 from
 * the source's side (@from_source) is its end.
 * Return: @n, or a negative errno.
 */
static ssize_t
outcome(struct xfer *x, ssize_t n, enum wait on_eagain, bool from_source)
{
	if (n < 0) {
		if (errno == EAGAIN)
			x->wait = on_eagain;
		return -errno;
	}
	if (n == 0 && from_source)
		x->eof = true;
	return n;
}

static ssize_t
step_sendfile(struct xfer *x, size_t want)
{
	off_t off = (off_t)(x->p.offset + x->sent);
	/* From the shared position, the kernel moves it by what it sent, even
	 * when the call is cut short (a signal, the daemon killed). */
	ssize_t n = sendfile(x->dst, x->src, x->shared_pos ? NULL : &off, want);

	/* An offset past the file system's largest file: no data can be
	 * there, whatever fstat said (a size-0 file, one that grew). */
	if (n < 0 && errno == EOVERFLOW && (uint64_t)off >= (uint64_t)x->sinfo.size)
		n = 0;
	x->short_write = n > 0 && (size_t)n < want;
	return outcome(x, n, WAIT_DST, true);
}

static ssize_t
step_splice(struct xfer *x, size_t want)
{
	ssize_t n = splice(x->src, NULL, x->dst, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

	/* EAGAIN from either end: find out which one to wait for (a poll(2),
	 * so only then). */
	if (n < 0 && errno == EAGAIN) {
		x->wait = source_ready(x->src) ? WAIT_DST : WAIT_SRC;
		return -EAGAIN;
	}
	return outcome(x, n, WAIT_DST, true);
}

static ssize_t
step_splice_buffer(struct xfer *x, size_t want)
{
	ssize_t n;

	if (x->piped == 0) {
		/* Our pipe is empty, so EAGAIN can only come from the source. */
		n = outcome(x,
		            splice(x->src, NULL, x->pipe_wr, NULL, want,
		                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK),
		            WAIT_SRC, true);
		if (n <= 0)
			return n;
		x->piped = n;
	}
	n = outcome(
	        x,
	        splice(x->pipe_rd, NULL, x->dst, NULL, x->piped, SPLICE_F_MOVE | SPLICE_F_NONBLOCK),
	        WAIT_DST, false);
	if (n > 0)
		x->piped -= n;
	return n;
}

static ssize_t
step_copy(struct xfer *x, size_t want)
{
	ssize_t n;

	if (x->buf_off == x->buf_len) {
		size_t len = MIN(want, (size_t)COPY_BUF_SIZE);

		if (seekable_source(x))
			n = pread(x->src, x->buf, len, (off_t)(x->p.offset + x->sent));
		else
			n = read(x->src, x->buf, len);
		n = outcome(x, n, WAIT_SRC, true);
		if (n <= 0)
			return n;
		x->buf_len = n;
		x->buf_off = 0;
	}
	n = outcome(x, write(x->dst, x->buf + x->buf_off, x->buf_len - x->buf_off), WAIT_DST,
	            false);
	if (n > 0) {
		x->buf_off += n;
		/* A read() would move the position past bytes still in our
		 * buffer: pread, then say what has left. */
		if (x->shared_pos)
			(void)lseek(x->src, (off_t)(x->p.offset + x->sent + n), SEEK_SET);
	}
	return n;
}

static int
enter_copy(struct xfer *x)
{
	size_t cap = MAX((size_t)COPY_BUF_SIZE, x->piped);

	x->buf = malloc(cap);
	if (!x->buf)
		return -ENOMEM;
	/* Bytes already taken from a socket source into our pipe must still
	 * reach the destination: they go first. */
	x->buf_len = x->buf_off = 0;
	while (x->piped > 0) {
		ssize_t n = read(x->pipe_rd, x->buf + x->buf_len, x->piped);

		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		x->buf_len += n;
		x->piped -= n;
	}
	x->method = M_COPY;
	return 0;
}

/*
 * xfer_step() - move up to @budget bytes with one syscall (two for the buffered
 * splice).
 * Return: bytes delivered (0 with x->eof at the end of the source), or a
 * negative errno; on -EAGAIN, x->wait says what to wait for. Switches to the
 * user-space copy (or fails with -XFER_ENOZEROCOPY when fallback is off) the first
 * time the kernel says no zero-copy method applies.
 */
ssize_t
xfer_step(struct xfer *x, size_t budget)
{
	size_t want = want_bytes(x, budget);
	ssize_t n;

	x->wait = WAIT_NONE;
	x->short_write = false;
	if (want == 0) {
		x->eof = true;
		return 0;
	}
	switch (x->method) {
	case M_SENDFILE:
		n = step_sendfile(x, want);
		break;
	case M_SPLICE:
		n = step_splice(x, want);
		break;
	case M_SPLICE_BUFFER:
		n = step_splice_buffer(x, want);
		break;
	default:
		return step_copy(x, want);
	}
	if (n > 0) {
		x->zero_copy_proven = true;
	} else if (n < 0 && !x->zero_copy_proven && x->sent == 0 && not_zero_copy(-n)) {
		int r;

		if (!x->p.fallback)
			return -XFER_ENOZEROCOPY;
		r = enter_copy(x);
		if (r < 0)
			return r;
		return step_copy(x, want);
	}
	return n;
}

bool
xfer_range_done(const struct xfer *x)
{
	return x->eof || x->sent >= x->limit;
}

static void
result_of(struct xfer *x, int status, int err, const char *msg, struct xfer_result *ret)
{
	*ret = (struct xfer_result){
	        .status = status,
	        .error = err,
	        .bytes_sent = x->sent,
	        .final_offset = x->p.offset + x->sent,
	        /* "How the bytes moved": nothing moved, no method. */
	        .method = x->sent > 0 ? wire_method(x) : WIRE_METHOD_NONE,
	        .message = msg,
	};
	if (status == WIRE_STATUS_TIMED_OUT)
		ret->timeout = xfer_pace_timeout(x);
	/* The source ended before the range did: a count past EOF, or a file
	 * truncated while being sent (sendfile returned 0 early). */
	if (status == WIRE_STATUS_OK) {
		if (x->p.has_count)
			ret->short_source = x->sent < x->p.count;
		else if (x->sinfo.size > 0)
			ret->short_source = x->p.offset + x->sent < (uint64_t)x->sinfo.size;
	}
}

static void maybe_free(struct xfer *x);
static void release_fds(struct xfer *x);

static void
on_handle_closed(uv_handle_t *h)
{
	struct xfer *x = h->data;

	x->pending_closes--;
	maybe_free(x);
}

static void
close_handle(struct xfer *x, uv_handle_t *h)
{
	x->pending_closes++;
	uv_close(h, on_handle_closed);
}

static void
maybe_free(struct xfer *x)
{
	if (x->pending_closes > 0)
		return;
	release_fds(x);
	free(x->buf);
	pthread_mutex_destroy(&x->mtx);
	free(x);
}

/*
 * Handles must be closed (and so out of epoll) before their descriptors: a
 * description the client still holds would otherwise stay registered under
 * a number we may reuse. uv_close() takes the descriptor out of epoll before
 * it returns, so this may follow it at once.
 */
static void
release_fds(struct xfer *x)
{
	x->dst = engine_bury(x->engine, x->dst);
	x->src = engine_bury(x->engine, x->src);
	x->pipe_rd = safe_close(x->pipe_rd);
	x->pipe_wr = safe_close(x->pipe_wr);
}

static void start_later(struct xfer *x);
static void on_line_turn(struct dstline_item *it);

/*
 * xfer_finish() - report the outcome once, set the source's position, release,
 * and hand the destination to the next transfer waiting for it.
 */
void
xfer_finish(struct xfer *x, int status, int err, const char *msg)
{
	struct engine *e = x->engine;
	struct dstline_item *next;
	struct xfer_result res;
	bool last = true;

	if (x->finished)
		return;
	x->finished = true;

	/* The position is the result: offset + bytes sent whenever anything was
	 * sent, on every outcome. Sent from the shared position, it is that
	 * already (or, nothing sent, goes back to where the client left it).
	 * Others still sending from the same description: the last
	 * of them sets it (as each would, one after the other), and meanwhile
	 * the one that may be using it is not disturbed. The table stays locked
	 * until the position is set: with several loops, a transfer of another
	 * loop joining in between would take the position for its own. */
	engine_src_lock(e);
	if (x->joined) {
		last = engine_src_leave(x->engine, &x->srcm);
		x->joined = false;
	}
	if (last && !x->shared_pos && x->sent > 0 && seekable_source(x))
		(void)lseek(x->src, (off_t)(x->p.offset + x->sent), SEEK_SET);
	/* Nothing sent: the position goes back to where the client left it. */
	if (x->shared_pos && x->sent == 0 && x->client_pos != (off_t)x->p.offset)
		(void)lseek(x->src, x->client_pos, SEEK_SET);
	engine_src_unlock(e);

	/* Let go of the client's descriptors before answering: a client that
	 * has its reply holds the only references (closing its socket then
	 * ends the stream at once). No thread uses them any more: a worker
	 * job has returned before its transfer finishes. */
	engine_unpark(x->engine, &x->dst_watch);
	engine_unpark(x->engine, &x->src_watch);
	x->watching = NULL;
	if (x->kick_timer_init)
		close_handle(x, (uv_handle_t *)&x->kick_timer);
	if (x->pace.timer_init)
		close_handle(x, (uv_handle_t *)&x->pace.timer);
	engine_unpark(x->engine, &x->park);
	/* Every byte left: the peer reads end of file now, whoever else
	 * holds the socket. After a failure the stream is cut short, and a
	 * clean end of file would pass it off as complete: only closed. A
	 * peer already gone makes it fail, which changes nothing. */
	if (x->p.shut_wr && status == WIRE_STATUS_OK)
		(void)shutdown(x->dst, SHUT_WR);
	release_fds(x);
	next = dstline_leave(engine_lines(x->engine), &x->line);
	/* Woken by another loop whose transfer ended, and not started yet. */
	if (engine_has_peers(e))
		engine_unwake(e, &x->remote);
	/* Cancelled before its turn in the chain? */
	engine_chain_forget(x->engine, x);

	result_of(x, status, err, msg, &res);
	x->done(x, &res, x->userdata);
	maybe_free(x);
	/* The next transfer to the same destination starts from the loop, not
	 * from here: a done callback may be cancelling it right now (a closing
	 * connection), and a line of small transfers must not recurse. */
	if (!next)
		return;
	if (!engine_chain_offer(e, container_of(next, struct xfer, line)))
		start_later(container_of(next, struct xfer, line));
}

void
xfer_finish_error(struct xfer *x, int err)
{
	switch (err) {
	case XFER_ENOZEROCOPY:
		xfer_finish(x, WIRE_STATUS_NOT_AVAILABLE, EINVAL,
		            "no zero-copy method applies to these descriptors and fallback is off");
		break;
	case EPIPE:
	case ECONNRESET:
	case ECONNABORTED:
	case ENOTCONN:
	case ESHUTDOWN:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
		xfer_finish(x, WIRE_STATUS_PEER_CLOSED, err,
		            "the destination's peer closed the connection");
		break;
	case ECANCELED:
		/* Stopped by its deadline or idle timeout (xfer-pace.c). */
		if (x->pace.expired)
			xfer_finish(x, WIRE_STATUS_TIMED_OUT, ETIMEDOUT,
			            x->pace.expired == PACE_DEADLINE ? "the deadline passed"
			                                             : "the idle timeout passed");
		else
			xfer_finish(x, WIRE_STATUS_CANCELLED, ECANCELED, "cancelled");
		break;
	case EBADF:
		/* Validation left access checks on files to the first syscall. */
		if (x->sent == 0) {
			xfer_finish(x, WIRE_STATUS_INVALID_ARGUMENT, EBADF,
			            "source is not open for reading");
			break;
		}
		xfer_finish(x, WIRE_STATUS_IO_ERROR, err, "I/O error");
		break;
	default:
		xfer_finish(x, WIRE_STATUS_IO_ERROR, err, "I/O error");
		break;
	}
}

/* ---- loop mode ---------------------------------------------------------- */

/* Ready, or an error or a hang-up, which the next syscall tells (EPIPE,
 * ECONNRESET, the end of a source). */
static void
on_dst_ready(struct engine_parked *p)
{
	struct xfer *x = container_of(p, struct xfer, dst_watch);

	xfer_run_loop(x, x->p.chunk);
}

static void
on_src_ready(struct engine_parked *p)
{
	struct xfer *x = container_of(p, struct xfer, src_watch);

	xfer_run_loop(x, x->p.chunk);
}

/* Which destination: asked only when another transfer is waiting, or this
 * one is about to. */
static bool
dst_key(struct xfer *x)
{
	struct stat st;

	if (!x->has_key && fstat(x->dst, &st) == 0) {
		x->line.dev = st.st_dev;
		x->line.ino = st.st_ino;
		x->has_key = true;
	}
	return x->has_key;
}

/* The transfer outlives its first attempt: later ones to its destination
 * must wait for it. It started only because none was waiting there, and
 * nothing else has run since, so it can take the line. */
void
xfer_own_line(struct xfer *x)
{
	if (!x->line.line && dst_key(x))
		(void)dstline_own(engine_lines(x->engine), &x->line);
}

static int
watch(struct xfer *x, struct engine_parked *w, int fd, uint32_t events, struct engine_parked *other)
{
	int r;

	xfer_own_line(x);
	/* Already armed (level-triggered): nothing to do. */
	if (x->watching == w)
		return 0;
	if (x->watching == other)
		engine_unpark(x->engine, other);
	x->watching = NULL;
	/* Not a uv_poll_t: see engine_watch() for the syscalls it spares. */
	r = engine_watch(x->engine, w, fd, events);
	if (r == 0)
		x->watching = w;
	return r;
}

/*
 * Would reading the next @want bytes of a file source wait for the disk? A
 * cold file must not stall the loop, and with it every other transfer. Asks
 * the page cache for the first and last byte of the range without blocking
 * (RWF_NOWAIT); a filesystem that cannot tell is taken as cached.
 */
static bool
cold(struct xfer *x, size_t want)
{
	uint64_t off = x->p.offset + x->sent, end = off + want;
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};

	/* A range probed already (the socket took only part of it last time)
	 * is not asked about again: one wake-up, at most two syscalls more. */
	if (want == 0 || end <= x->probed_end)
		return false;
	if (engine_hot(x->engine, &x->sinfo, off, end)) {
		x->probed_end = end;
		return false;
	}
	if (off >= x->probed_end && preadv2(x->src, &iov, 1, (off_t)off, RWF_NOWAIT) < 0 &&
	    errno == EAGAIN)
		return true;
	if (want > 4096 && preadv2(x->src, &iov, 1, (off_t)end - 1, RWF_NOWAIT) < 0 &&
	    errno == EAGAIN)
		return true;
	x->probed_end = end;
	engine_hot_add(x->engine, &x->sinfo, off, end);
	return false;
}

/* Wait on the loop for @w: the source readable (WAIT_SRC), else the
 * destination writable. The transfer fails if it cannot be watched. */
static void
wait_on_loop(struct xfer *x, enum wait w)
{
	int r;

	if (w == WAIT_SRC)
		r = watch(x, &x->src_watch, x->src, EPOLLIN, &x->dst_watch);
	else
		r = watch(x, &x->dst_watch, x->dst, EPOLLOUT, &x->src_watch);
	if (r < 0)
		xfer_finish(x, WIRE_STATUS_IO_ERROR, -r, "cannot watch the descriptor");
}

size_t
xfer_run_loop(struct xfer *x, size_t budget)
{
	size_t moved = 0;

	while (!xfer_range_done(x)) {
		ssize_t n;
		size_t allow = xfer_pace_allow(x, budget - moved);

		if (allow == 0) {
			/* The rate limit: its timer brings it back. */
			xfer_pace_wait(x);
			return moved;
		}
		if (seekable_source(x) && (x->method == M_SENDFILE || x->method == M_COPY) &&
		    cold(x, want_bytes(x, allow))) {
			/* Read it on a worker; come back once that job is done. */
			if (x->watching)
				engine_unpark(x->engine, x->watching);
			x->watching = NULL;
			x->cold = true;
			x->on_worker = true;
			xfer_queue_job(x);
			return moved;
		}
		n = xfer_step(x, allow);

		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			wait_on_loop(x, x->wait);
			return moved;
		}
		if (n < 0) {
			xfer_finish_error(x, (int)-n);
			return moved;
		}
		x->sent += n;
		moved += n;
		xfer_pace_moved(x, n);
		/* A short sendfile() means the socket buffer is full: the next
		 * call would only say EAGAIN, so wait right away. */
		if ((moved >= budget || x->short_write) && !xfer_range_done(x)) {
			/* Budget spent: yield to the other transfers and come back
			 * on the next writable event (level-triggered). */
			wait_on_loop(x, WAIT_DST);
			return moved;
		}
	}
	xfer_finish(x, WIRE_STATUS_OK, 0, NULL);
	return moved;
}

/* ---- public ------------------------------------------------------------- */

static bool
needs_worker(const struct fdinfo *d, const struct fdinfo *s)
{
	/* Only sockets and pipes can be polled; only non-blocking ones can be
	 * written without blocking the loop. */
	if (d->kind != FD_KIND_SOCKET && d->kind != FD_KIND_PIPE)
		return true;
	if (!d->nonblock)
		return true;
	/* A blocking stream source would block the loop on an empty read;
	 * devices may block on read. */
	if (s->kind == FD_KIND_CHAR)
		return true;
	if ((s->kind == FD_KIND_PIPE || s->kind == FD_KIND_SOCKET) && !s->nonblock)
		return true;
	return false;
}

int
xfer_new(struct engine *e, int dst, const struct fdinfo *dinfo, int src, const struct fdinfo *sinfo,
         const struct xfer_params *p, xfer_done_fn done, void *userdata, struct xfer **ret_x)
{
	_cleanup_close_ int d = dst, s = src;
	struct xfer *x;

	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->engine = e;
	x->loop = engine_loop(e);
	x->line.owner = e;
	x->line.wake = on_line_turn;
	x->done = done;
	x->userdata = userdata;
	x->p = *p;
	xfer_pace_init(x);
	x->dinfo = *dinfo;
	x->sinfo = *sinfo;
	x->pipe_rd = x->pipe_wr = -1;
	x->dst_watch.fn = on_dst_ready;
	x->src_watch.fn = on_src_ready;
	pthread_mutex_init(&x->mtx, NULL);

	if (validate_past_end(sinfo, p->offset))
		/* Nothing there: sendfile() would only say so, and on a file
		 * system whose largest file ends before the offset it says
		 * EOVERFLOW instead. */
		x->limit = 0;
	else if (p->has_count)
		x->limit = p->count;
	else if (sinfo->kind == FD_KIND_FILE && sinfo->size > 0)
		/* To EOF as it stood when the request came: the size from
		 * fstat spares a last sendfile() that would only return 0. */
		x->limit =
		        (uint64_t)sinfo->size > p->offset ? (uint64_t)sinfo->size - p->offset : 0;
	else
		x->limit = UINT64_MAX;

	switch (sinfo->kind) {
	case FD_KIND_FILE:
		x->method = M_SENDFILE;
		break;
	case FD_KIND_PIPE:
		x->method = M_SPLICE;
		break;
	default: {
		int pfd[2];

		/* Sockets and devices are spliced through a pipe of our own. */
		if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
			int r = -errno;

			pthread_mutex_destroy(&x->mtx);
			free(x);
			return r;
		}
		x->pipe_rd = pfd[0];
		x->pipe_wr = pfd[1];
		(void)fcntl(x->pipe_wr, F_SETPIPE_SZ, 256 * 1024);
		x->method = M_SPLICE_BUFFER;
		break;
	}
	}
	x->on_worker = needs_worker(dinfo, sinfo);
	/* sendfile and splice refuse an O_APPEND file. Knowing it now keeps a
	 * socket source from losing bytes to a splice that cannot go on. */
	if (dinfo->kind == FD_KIND_FILE && dinfo->append) {
		if (!p->fallback) {
			x->no_zero_copy = true;
		} else if (enter_copy(x) < 0) {
			x->pipe_rd = safe_close(x->pipe_rd);
			x->pipe_wr = safe_close(x->pipe_wr);
			pthread_mutex_destroy(&x->mtx);
			free(x);
			return -ENOMEM;
		}
	}
	x->dst = TAKE_FD(d);
	x->src = TAKE_FD(s);
	*ret_x = x;
	return 0;
}

/*
 * A file source alone on its open file description is sent from its shared
 * position: it is moved to the offset here (one lseek() more when it is not
 * there already), and not at the end. Nothing to send (an offset at or past
 * the end), or a file whose size says nothing (/proc, which may refuse every
 * method): the position is left alone until bytes move, and set at the end.
 */
static void
take_position(struct xfer *x)
{
	off_t cur;
	int r;

	if (!seekable_source(x) || x->limit == 0 || x->p.offset >= (uint64_t)x->sinfo.size)
		return;
	r = engine_src_join(x->engine, &x->srcm, x->src, &x->sinfo);
	if (r < 0)
		return; /* private offsets, the position set at the end */
	x->joined = true;
	if (r == 0)
		return;
	/* Where the client left it, for a transfer that sends nothing. */
	cur = lseek(x->src, 0, SEEK_CUR);
	if (cur < 0 ||
	    (cur != (off_t)x->p.offset && lseek(x->src, (off_t)x->p.offset, SEEK_SET) < 0))
		return;
	x->client_pos = cur;
	x->shared_pos = true;
}

static void
start(struct xfer *x)
{
	struct engine *e;

	x->started = true;
	xfer_pace_start(x);
	take_position(x);
	if (x->on_worker) {
		xfer_queue_job(x);
		return;
	}
	/* Try at once: a small transfer usually completes without waiting,
	 * sparing a poll registration, and one of a chunk or less (a 1 MiB
	 * response) with the whole chunk completes without waiting too: no
	 * epoll_ctl pair, no destination fstat for its line, no wake-up. The
	 * first attempts of one loop turn together move no more than a burst
	 * of new requests did when each had 256 KiB (engine_first_budget()),
	 * so that a burst still cannot hold the loop longer. */
	e = x->engine;
	engine_first_moved(e, xfer_run_loop(x, engine_first_budget(e, x->p.chunk)));
}

static void
on_start_timer(uv_timer_t *t)
{
	struct xfer *x = t->data;
	struct engine *e = x->engine;

	/* Its descriptors are closed, and replies sent, at the turn's flush
	 * with the others': a line of small transfers costs one close_range()
	 * and one sendmmsg() per client. */
	for (int i = 0; x; i++) {
		engine_chain_begin(e);
		start(x);
		x = engine_chain_end(e);
		if (x && i + 1 >= CHAIN_MAX) {
			/* Let the loop serve the others before going on. */
			start_later(x);
			break;
		}
	}
}

/* Start a transfer whose turn has come, from the loop's next iteration.
 * Its kick timer is free: it has not run yet. */
static void
start_later(struct xfer *x)
{
	int r = xfer_kick_timer(x);

	if (r == 0)
		r = uv_timer_start(&x->kick_timer, on_start_timer, 0, 0);
	if (r < 0)
		xfer_finish(x, WIRE_STATUS_IO_ERROR, -r, "cannot start the transfer");
}

/* Its turn came on another loop (dstline_leave() there): now on its own. */
static void
on_remote_turn(struct engine_waiter *w)
{
	start_later(container_of(w, struct xfer, remote));
}

/* dstline's wake: from the loop whose transfer ended, the line locked. */
static void
on_line_turn(struct dstline_item *it)
{
	struct xfer *x = container_of(it, struct xfer, line);

	x->remote.fn = on_remote_turn;
	engine_wake(x->engine, &x->remote);
}

void
xfer_run(struct xfer *x)
{
	if (x->no_zero_copy) {
		xfer_finish_error(x, XFER_ENOZEROCOPY);
		return;
	}
	/* A deadline counts in the line too. */
	xfer_pace_arm(x);
	/* Another transfer to the same destination is under way: wait for it,
	 * so that their bytes do not interleave. */
	if (dstline_any(engine_lines(x->engine)) && dst_key(x) &&
	    dstline_wait(engine_lines(x->engine), &x->line))
		return;
	start(x);
}

void
xfer_cancel(struct xfer *x)
{
	if (x->finished)
		return;
	/* Waiting for its turn, not started yet, or stopped for the rate
	 * limit: nothing runs it. */
	if (!x->started || !x->on_worker || x->pace.waiting) {
		xfer_finish_error(x, ECANCELED);
		return;
	}
	pthread_mutex_lock(&x->mtx);
	x->cancel = true;
	pthread_mutex_unlock(&x->mtx);
	/* Its job has not started yet: dropped, and reported. */
	if (xfer_unqueue_job(x))
		return;
	xfer_kick(x);
	(void)xfer_start_kick_timer(x, KICK_INTERVAL_MS);
}
