/*
 * xfer.c - the transfer engine. The only file that calls sendfile(2) and
 * splice(2).
 *
 * A transfer is a small state machine around step(), which moves at most a
 * budget of bytes with the transfer's current method and says what to wait
 * for when the kernel answers EAGAIN. The loop runner and the worker runner
 * both drive step(); they differ only in how they wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "dstline.h"
#include "macro.h"
#include "pool.h"
#include "xfer.h"

/* A worker blocked in sendfile/splice/poll is interrupted with this signal
 * (its handler does nothing and is installed without SA_RESTART). */
#define KICK_SIGNAL (SIGRTMIN + 2)
/* Re-send the kick this often while a cancelled worker job is still running:
 * a kick that lands just before the thread enters the kernel is lost. */
#define KICK_INTERVAL_MS 20
/* A worker job that has run this long (a peer that reads slowly, or not at
 * all) is interrupted and queued again behind the others, so that a few
 * stuck destinations cannot hold every worker thread. */
#define SLICE_MS 200
/* The user-space copy's buffer. */
#define COPY_BUF_SIZE (64 * 1024)
/* Worker jobs move this many chunks before returning to the loop, which
 * re-queues them; a blocked worker costs a thread, not the loop. */
#define WORKER_CHUNKS 8

/* step()'s private "no zero-copy method applies and fallback is off": outside
 * the errno range, so that a real EOPNOTSUPP cannot be mistaken for it. */
#define XFER_ENOZEROCOPY 4096

enum method {
	M_SENDFILE,      /* sendfile(dst, src, &off): seekable source */
	M_SPLICE,        /* splice(src pipe -> dst) */
	M_SPLICE_BUFFER, /* splice(src -> own pipe -> dst): socket or device source */
	M_COPY,          /* read/pread + write: the fallback */
};

enum wait {
	WAIT_NONE = 0,
	WAIT_DST, /* for the destination to become writable */
	WAIT_SRC, /* for the source to become readable */
};

struct xfer {
	uv_loop_t *loop;
	xfer_done_fn done;
	void *userdata;
	struct xfer_params p;
	struct fdinfo dinfo, sinfo;
	int dst, src;

	enum method method;
	bool zero_copy_proven; /* a zero-copy call has moved bytes: EINVAL is real */
	bool started;
	bool finished;
	bool eof;
	bool short_write;    /* the last sendfile() took less than offered */
	bool no_zero_copy;   /* known before starting: fail NOT_AVAILABLE */
	bool cold;           /* on a worker only while its file is read from disk */
	uint64_t probed_end; /* the page cache held the source up to here */
	uint64_t sent;       /* bytes delivered to the destination */
	uint64_t limit;      /* bytes to send; UINT64_MAX: until EOF */
	enum wait wait;

	/* Its place among the transfers to the same destination (dstline.h). */
	struct dstline_item line;
	bool has_key; /* line.dev and line.ino are known */

	/* M_SPLICE_BUFFER: our own pipe and the bytes sitting in it. */
	int pipe_rd, pipe_wr;
	size_t piped;
	/* M_COPY: bytes read and not yet written. */
	char *buf;
	size_t buf_len, buf_off;

	/* Loop mode. */
	uv_poll_t dst_poll, src_poll;
	bool dst_poll_init, src_poll_init;
	uv_poll_t *watching; /* the handle armed now, if any */
	int pending_closes;

	/* Worker mode. */
	bool on_worker;
	bool job_queued;
	uv_work_t work;
	uv_timer_t kick_timer;
	bool kick_timer_init;
	pthread_mutex_t mtx; /* guards cancel, yield, in_syscall, thread, job_start */
	bool cancel;
	bool yield;        /* give the thread back: the job's time is up */
	int64_t job_start; /* CLOCK_MONOTONIC ms when the running job began, or 0 */
	bool in_syscall;
	pthread_t thread;
	int job_err; /* the job's outcome: 0 = more to do, 1 = done, <0 = errno */

	int final_status, final_error;
	const char *final_msg;
};

/* ---- batches ----------------------------------------------------------- */

/* Descriptors of the transfers that ended during the current batch. */
#define GRAVE_MAX 128
/* File ranges the page cache held during the current batch. */
#define HOT_MAX 4

static struct {
	bool open;
	size_t n_grave;
	int grave[GRAVE_MAX];
	unsigned n_hot;
	struct hot_range {
		dev_t dev;
		ino_t ino;
		uint64_t start, end;
	} hot[HOT_MAX];
} batch;

static void (*batch_end_hook)(void *arg);
static void *batch_end_arg;

void
xfer_set_batch_end_hook(void (*fn)(void *arg), void *arg)
{
	batch_end_hook = fn;
	batch_end_arg = arg;
}

bool
xfer_batch_is_open(void)
{
	return batch.open;
}

void
xfer_batch_begin(void)
{
	batch.open = true;
	batch.n_hot = 0;
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static void
close_buried(void)
{
	size_t i = 0;

	qsort(batch.grave, batch.n_grave, sizeof(int), cmp_int);
	while (i < batch.n_grave) {
		size_t j = i;

		while (j + 1 < batch.n_grave && batch.grave[j + 1] == batch.grave[j] + 1)
			j++;
		if (j == i || close_range(batch.grave[i], batch.grave[j], 0) < 0)
			for (size_t k = i; k <= j; k++)
				(void)close(batch.grave[k]);
		i = j + 1;
	}
	batch.n_grave = 0;
}

void
xfer_batch_end(void)
{
	close_buried();
	batch.open = false;
}

/* Close @fd now, or with the batch's others when a batch is being handled. */
static int
bury(int fd)
{
	if (fd < 0)
		return -1;
	if (!batch.open)
		return safe_close(fd);
	if (batch.n_grave == GRAVE_MAX)
		close_buried();
	batch.grave[batch.n_grave++] = fd;
	return -1;
}

/* Was [start, end) of this file found in the page cache during this batch?
 * Its requests came in together and those pages were just read, the last
 * an eviction would take. */
static bool
batch_hot(const struct fdinfo *f, uint64_t start, uint64_t end)
{
	for (unsigned i = 0; i < batch.n_hot; i++) {
		const struct hot_range *h = &batch.hot[i];

		if (h->ino == f->ino && h->dev == f->dev && start >= h->start && end <= h->end)
			return true;
	}
	return false;
}

static void
batch_hot_add(const struct fdinfo *f, uint64_t start, uint64_t end)
{
	if (!batch.open)
		return;
	batch.hot[batch.n_hot % HOT_MAX] = (struct hot_range){f->dev, f->ino, start, end};
	if (batch.n_hot < HOT_MAX)
		batch.n_hot++;
}

static void
kick_handler(int sig)
{
	(void)sig;
}

int
xfer_global_init(void)
{
	struct sigaction sa = {.sa_handler = kick_handler};

	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return 0;
}

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

static ssize_t
step_sendfile(struct xfer *x, size_t want)
{
	off_t off = (off_t)(x->p.offset + x->sent);
	ssize_t n = sendfile(x->dst, x->src, &off, want);

	x->short_write = n > 0 && (size_t)n < want;
	if (n < 0) {
		if (errno == EAGAIN)
			x->wait = WAIT_DST;
		return -errno;
	}
	if (n == 0)
		x->eof = true;
	return n;
}

static ssize_t
step_splice(struct xfer *x, size_t want)
{
	ssize_t n = splice(x->src, NULL, x->dst, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

	if (n < 0) {
		/* EAGAIN from either end: find out which one to wait for. */
		if (errno == EAGAIN)
			x->wait = source_ready(x->src) ? WAIT_DST : WAIT_SRC;
		return -errno;
	}
	if (n == 0)
		x->eof = true;
	return n;
}

static ssize_t
step_splice_buffer(struct xfer *x, size_t want)
{
	ssize_t n;

	if (x->piped == 0) {
		n = splice(x->src, NULL, x->pipe_wr, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			/* Our pipe is empty, so EAGAIN can only come from the source. */
			if (errno == EAGAIN)
				x->wait = WAIT_SRC;
			return -errno;
		}
		if (n == 0) {
			x->eof = true;
			return 0;
		}
		x->piped = n;
	}
	n = splice(x->pipe_rd, NULL, x->dst, NULL, x->piped, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0) {
		if (errno == EAGAIN)
			x->wait = WAIT_DST;
		return -errno;
	}
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
		if (n < 0) {
			if (errno == EAGAIN)
				x->wait = WAIT_SRC;
			return -errno;
		}
		if (n == 0) {
			x->eof = true;
			return 0;
		}
		x->buf_len = n;
		x->buf_off = 0;
	}
	n = write(x->dst, x->buf + x->buf_off, x->buf_len - x->buf_off);
	if (n < 0) {
		if (errno == EAGAIN)
			x->wait = WAIT_DST;
		return -errno;
	}
	x->buf_off += n;
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
 * step() - move up to @budget bytes with one syscall (two for the buffered
 * splice).
 * Return: bytes delivered (0 with x->eof at the end of the source), or a
 * negative errno; on -EAGAIN, x->wait says what to wait for. Switches to the
 * user-space copy (or fails with -XFER_ENOZEROCOPY when fallback is off) the first
 * time the kernel says no zero-copy method applies.
 */
static ssize_t
step(struct xfer *x, size_t budget)
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

static bool
range_done(const struct xfer *x)
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
	x->dst = bury(x->dst);
	x->src = bury(x->src);
	x->pipe_rd = safe_close(x->pipe_rd);
	x->pipe_wr = safe_close(x->pipe_wr);
}

/* Transfers whose turn came while on_start_timer() ran one ahead of them:
 * started from there, in a chain, rather than one loop iteration each. */
#define CHAIN_MAX 64
static struct {
	bool running;
	struct xfer *next;
} chain;

static void start_later(struct xfer *x);

/*
 * finish() - report the outcome once, set the source's position, release,
 * and hand the destination to the next transfer waiting for it.
 */
static void
finish(struct xfer *x, int status, int err, const char *msg)
{
	struct dstline_item *next;
	struct xfer_result res;

	if (x->finished)
		return;
	x->finished = true;

	/* The position is the result: offset + bytes sent whenever anything was
	 * sent, on every outcome. Nothing sent: untouched. */
	if (x->sent > 0 && seekable_source(x))
		(void)lseek(x->src, (off_t)(x->p.offset + x->sent), SEEK_SET);

	/* Let go of the client's descriptors before answering: a client that
	 * has its reply holds the only references (closing its socket then
	 * ends the stream at once). No thread uses them any more: a worker
	 * job has returned before its transfer finishes. */
	if (x->dst_poll_init)
		close_handle(x, (uv_handle_t *)&x->dst_poll);
	if (x->src_poll_init)
		close_handle(x, (uv_handle_t *)&x->src_poll);
	if (x->kick_timer_init)
		close_handle(x, (uv_handle_t *)&x->kick_timer);
	release_fds(x);
	next = dstline_leave(&x->line);
	if (chain.next == x)
		chain.next = NULL; /* cancelled before its turn in the chain */

	result_of(x, status, err, msg, &res);
	x->done(x, &res, x->userdata);
	maybe_free(x);
	/* The next transfer to the same destination starts from the loop, not
	 * from here: a done callback may be cancelling it right now (a closing
	 * connection), and a line of small transfers must not recurse. */
	if (!next)
		return;
	if (chain.running && !chain.next)
		chain.next = container_of(next, struct xfer, line);
	else
		start_later(container_of(next, struct xfer, line));
}

static void
finish_error(struct xfer *x, int err)
{
	switch (err) {
	case XFER_ENOZEROCOPY:
		finish(x, WIRE_STATUS_NOT_AVAILABLE, EINVAL,
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
		finish(x, WIRE_STATUS_PEER_CLOSED, err,
		       "the destination's peer closed the connection");
		break;
	case ECANCELED:
		finish(x, WIRE_STATUS_CANCELLED, ECANCELED, "cancelled");
		break;
	case EBADF:
		/* Validation left access checks on files to the first syscall. */
		if (x->sent == 0) {
			finish(x, WIRE_STATUS_INVALID_ARGUMENT, EBADF,
			       "source is not open for reading");
			break;
		}
		finish(x, WIRE_STATUS_IO_ERROR, err, "I/O error");
		break;
	default:
		finish(x, WIRE_STATUS_IO_ERROR, err, "I/O error");
		break;
	}
}

/* ---- loop mode ---------------------------------------------------------- */

static void run_loop(struct xfer *x, size_t budget);

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct xfer *x = h->data;

	/* On POLLERR libuv stops the handle and reports UV_EBADF; the next
	 * syscall tells the real error (EPIPE, ECONNRESET). */
	if (status < 0)
		x->watching = NULL;
	(void)events;
	run_loop(x, x->p.chunk);
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
static void
own_line(struct xfer *x)
{
	if (!x->line.line && dst_key(x))
		(void)dstline_own(&x->line);
}

static int
watch(struct xfer *x, uv_poll_t *h, bool *inited, int fd, int events, uv_poll_t *other)
{
	int r;

	own_line(x);
	/* Already armed (level-triggered): re-arming would cost two epoll_ctl
	 * calls per wake-up, since uv_poll_start() stops the handle first. */
	if (x->watching == h)
		return 0;
	if (!*inited) {
		/* uv_poll_init() sets O_NONBLOCK; loop mode is only chosen for
		 * descriptors that already have it, so nothing shared changes. */
		r = uv_poll_init(x->loop, h, fd);
		if (r < 0)
			return r;
		h->data = x;
		*inited = true;
	}
	if (x->watching == other)
		uv_poll_stop(other);
	x->watching = NULL;
	r = uv_poll_start(h, events, on_poll);
	if (r == 0)
		x->watching = h;
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
	if (batch.open && batch_hot(&x->sinfo, off, end)) {
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
	batch_hot_add(&x->sinfo, off, end);
	return false;
}

static void queue_job(struct xfer *x);

static void
run_loop(struct xfer *x, size_t budget)
{
	size_t moved = 0;
	int r;

	while (!range_done(x)) {
		ssize_t n;

		if (seekable_source(x) && (x->method == M_SENDFILE || x->method == M_COPY) &&
		    cold(x, want_bytes(x, budget - moved))) {
			/* Read it on a worker; come back once that job is done. */
			if (x->watching)
				uv_poll_stop(x->watching);
			x->watching = NULL;
			x->cold = true;
			x->on_worker = true;
			queue_job(x);
			return;
		}
		n = step(x, budget - moved);

		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			if (x->wait == WAIT_SRC)
				r = watch(x, &x->src_poll, &x->src_poll_init, x->src, UV_READABLE,
				          &x->dst_poll);
			else
				r = watch(x, &x->dst_poll, &x->dst_poll_init, x->dst, UV_WRITABLE,
				          &x->src_poll);
			if (r < 0)
				finish(x, WIRE_STATUS_IO_ERROR, -r, "cannot watch the descriptor");
			return;
		}
		if (n < 0) {
			finish_error(x, (int)-n);
			return;
		}
		x->sent += n;
		moved += n;
		/* A short sendfile() means the socket buffer is full: the next
		 * call would only say EAGAIN, so wait right away. */
		if ((moved >= budget || x->short_write) && !range_done(x)) {
			/* Budget spent: yield to the other transfers and come back
			 * on the next writable event (level-triggered). */
			r = watch(x, &x->dst_poll, &x->dst_poll_init, x->dst, UV_WRITABLE,
			          &x->src_poll);
			if (r < 0)
				finish(x, WIRE_STATUS_IO_ERROR, -r, "cannot watch the descriptor");
			return;
		}
	}
	finish(x, WIRE_STATUS_OK, 0, NULL);
}

/* ---- worker mode -------------------------------------------------------- */

static void
work_cb(uv_work_t *w)
{
	struct xfer *x = w->data;
	size_t budget = x->p.chunk * WORKER_CHUNKS, moved = 0;

	x->job_err = 0;
	pthread_mutex_lock(&x->mtx);
	x->thread = pthread_self();
	x->job_start = mono_ms();
	pthread_mutex_unlock(&x->mtx);

	while (!range_done(x) && moved < budget) {
		ssize_t n;

		/* Checking cancel and announcing the syscall under one lock
		 * means a canceller either sees us in the syscall (and kicks)
		 * or we see its flag. */
		pthread_mutex_lock(&x->mtx);
		if (x->cancel) {
			x->job_err = -ECANCELED;
			goto out_locked;
		}
		if (x->yield)
			goto out_locked; /* job_err 0: more to do, queued again */
		x->in_syscall = true;
		pthread_mutex_unlock(&x->mtx);

		n = step(x, budget - moved);
		if (n == -EAGAIN) {
			struct pollfd pfd = {
			        .fd = x->wait == WAIT_SRC ? x->src : x->dst,
			        .events = x->wait == WAIT_SRC ? POLLIN : POLLOUT,
			};

			(void)poll(&pfd, 1, -1);
		}

		pthread_mutex_lock(&x->mtx);
		x->in_syscall = false;
		pthread_mutex_unlock(&x->mtx);

		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0) {
			x->job_err = (int)n;
			pthread_mutex_lock(&x->mtx);
			goto out_locked;
		}
		__atomic_store_n(&x->sent, x->sent + n, __ATOMIC_RELAXED);
		moved += n;
	}
	x->job_err = range_done(x) ? 1 : 0;
	pthread_mutex_lock(&x->mtx);
out_locked:
	x->yield = false;
	x->job_start = 0;
	pthread_mutex_unlock(&x->mtx);
}

static int start_kick_timer(struct xfer *x, uint64_t period_ms);

static void
after_work_cb(uv_work_t *w, int status)
{
	struct xfer *x = w->data;

	x->job_queued = false;
	if (x->kick_timer_init)
		uv_timer_stop(&x->kick_timer);
	if (status == UV_ECANCELED || x->job_err == -ECANCELED)
		finish_error(x, ECANCELED);
	else if (x->job_err < 0)
		finish_error(x, -x->job_err);
	else if (x->job_err == 1)
		finish(x, WIRE_STATUS_OK, 0, NULL);
	else if (x->cancel)
		finish_error(x, ECANCELED);
	else if (x->cold) {
		/* The disk has been read: back to the loop, which probes again. */
		x->cold = false;
		x->on_worker = false;
		run_loop(x, x->p.chunk);
	} else
		queue_job(x);
}

static void
queue_job(struct xfer *x)
{
	int r;

	own_line(x);
	x->work.data = x;
	r = pool_queue_work(x->loop, &x->work, work_cb, after_work_cb);
	if (r < 0) {
		finish(x, WIRE_STATUS_IO_ERROR, -r, "cannot queue work");
		return;
	}
	x->job_queued = true;
	/* Watches the job's time slice (see SLICE_MS). */
	(void)start_kick_timer(x, SLICE_MS / 4);
}

static void
kick(struct xfer *x)
{
	pthread_mutex_lock(&x->mtx);
	if (x->in_syscall)
		pthread_kill(x->thread, KICK_SIGNAL);
	pthread_mutex_unlock(&x->mtx);
}

static void
on_kick_timer(uv_timer_t *t)
{
	struct xfer *x = t->data;

	pthread_mutex_lock(&x->mtx);
	/* Cancelled: interrupt until the job notices. Running past its slice:
	 * ask it to yield, and interrupt a syscall that may never return. */
	if (!x->cancel && x->job_start && mono_ms() - x->job_start >= SLICE_MS)
		x->yield = true;
	if ((x->cancel || x->yield) && x->in_syscall)
		pthread_kill(x->thread, KICK_SIGNAL);
	pthread_mutex_unlock(&x->mtx);
}

static int
start_kick_timer(struct xfer *x, uint64_t period_ms)
{
	if (!x->kick_timer_init) {
		if (uv_timer_init(x->loop, &x->kick_timer) < 0)
			return -ENOMEM;
		x->kick_timer.data = x;
		x->kick_timer_init = true;
	}
	return uv_timer_start(&x->kick_timer, on_kick_timer, period_ms, period_ms);
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
xfer_new(uv_loop_t *loop, int dst, const struct fdinfo *dinfo, int src, const struct fdinfo *sinfo,
         const struct xfer_params *p, xfer_done_fn done, void *userdata, struct xfer **ret_x)
{
	_cleanup_close_ int d = dst, s = src;
	struct xfer *x;

	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->loop = loop;
	x->done = done;
	x->userdata = userdata;
	x->p = *p;
	x->dinfo = *dinfo;
	x->sinfo = *sinfo;
	x->pipe_rd = x->pipe_wr = -1;
	pthread_mutex_init(&x->mtx, NULL);

	if (p->has_count)
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

static void
start(struct xfer *x)
{
	x->started = true;
	if (x->on_worker) {
		queue_job(x);
		return;
	}
	/* Try at once: a small transfer usually completes without waiting,
	 * sparing a poll registration. A smaller first budget keeps a burst of
	 * new requests from holding the loop. */
	run_loop(x, MIN(x->p.chunk, (size_t)256 * 1024));
}

static void
on_start_timer(uv_timer_t *t)
{
	struct xfer *x = t->data;

	/* The chain is a batch, like the records a connection reads at once:
	 * descriptors closed together, a hot file probed once, and replies
	 * sent together at the end (the hook). */
	xfer_batch_begin();
	chain.running = true;
	for (int i = 0; x; i++) {
		chain.next = NULL;
		start(x);
		x = chain.next;
		if (x && i + 1 >= CHAIN_MAX) {
			/* Let the loop serve the others before going on. */
			start_later(x);
			break;
		}
	}
	chain.running = false;
	xfer_batch_end();
	if (batch_end_hook)
		batch_end_hook(batch_end_arg);
}

/* Start a transfer whose turn has come, from the loop's next iteration.
 * Its kick timer is free: it has not run yet. */
static void
start_later(struct xfer *x)
{
	int r = 0;

	if (!x->kick_timer_init) {
		r = uv_timer_init(x->loop, &x->kick_timer);
		if (r == 0) {
			x->kick_timer.data = x;
			x->kick_timer_init = true;
		}
	}
	if (r == 0)
		r = uv_timer_start(&x->kick_timer, on_start_timer, 0, 0);
	if (r < 0)
		finish(x, WIRE_STATUS_IO_ERROR, -r, "cannot start the transfer");
}

void
xfer_run(struct xfer *x)
{
	if (x->no_zero_copy) {
		finish_error(x, XFER_ENOZEROCOPY);
		return;
	}
	/* Another transfer to the same destination is under way: wait for it,
	 * so that their bytes do not interleave. */
	if (dstline_any() && dst_key(x) && dstline_wait(&x->line))
		return;
	start(x);
}

void
xfer_cancel(struct xfer *x)
{
	if (x->finished)
		return;
	/* Waiting for its turn, or not started yet: nothing runs it. */
	if (!x->started || !x->on_worker) {
		finish_error(x, ECANCELED);
		return;
	}
	pthread_mutex_lock(&x->mtx);
	x->cancel = true;
	pthread_mutex_unlock(&x->mtx);
	/* Not started yet: libuv can drop it, after_work_cb then reports. */
	if (x->job_queued && uv_cancel((uv_req_t *)&x->work) == 0)
		return;
	kick(x);
	(void)start_kick_timer(x, KICK_INTERVAL_MS);
}
