/*
 * xfer-worker.c - transfers on worker threads: the job a worker runs, its
 * time slice, and the signal that interrupts a worker blocked in a syscall
 * (cancellation, or a slice that has run out).
 *
 * A job moves up to WORKER_CHUNKS chunks with xfer_step() (xfer.c), waiting
 * in poll(2) when the kernel says EAGAIN, then returns to the loop, which
 * queues it again behind the others or finishes the transfer.
 *
 * Jobs do not go to libuv's pool directly: they wait in the engine's worker
 * queue (fairq.h), which hands the pool at most one job per thread and takes
 * each from the next uid in turn, then the next connection of that uid. The
 * pool's own queue is first come, first served; kept that short, it never
 * decides an order. So a user with a thousand stalled transfers has one job
 * in each round, like everybody else, and a job that used its slice goes to
 * the back of its own connection's line.
 *
 * A job whose destination cannot take a byte (its peer does not read) would
 * only block a thread until its slice ends, then come back and block again:
 * such a transfer waits on the loop instead, for its destination to become
 * writable (engine_park(): an epoll set, since a blocking socket or pipe can
 * be polled for writability like any other), and takes no place in the
 * queue meanwhile. A job that finds its destination full after it started
 * gives its thread back early (FULL_YIELD_MS). So stalled transfers cost the
 * others a thread only while they fill their destination's buffer.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "macro.h"
#include "engine.h"
#include "fairq.h"
#include "pool.h"
#include "xfer-internal.h"

/* Is the destination a socket or pipe that cannot take a byte now? Files and
 * devices cannot be asked: they are taken as writable. */
static bool
dst_full(const struct xfer *x)
{
	struct pollfd pfd = {.fd = x->dst, .events = POLLOUT};

	if (x->dinfo.kind != FD_KIND_SOCKET && x->dinfo.kind != FD_KIND_PIPE)
		return false;
	return poll(&pfd, 1, 0) == 0;
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

/* Worker threads run at a lower priority than the loop (nice + this): a
 * worker sending a cold file on the loop's CPU would otherwise hold it for
 * the scheduler's slice each time a small request wakes the loop. On an
 * idle CPU they lose nothing. */
#define WORKER_NICE 10

static void
lower_priority(void)
{
	static _Thread_local bool done;

	if (done)
		return;
	done = true;
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), getpriority(PRIO_PROCESS, 0) + WORKER_NICE);
}

static void
work_cb(uv_work_t *w)
{
	struct xfer *x = w->data;
	size_t budget = x->p.chunk * WORKER_CHUNKS, moved = 0;

	lower_priority();
	x->job_err = 0;
	x->pace.hungry = false;
	pthread_mutex_lock(&x->mtx);
	x->thread = pthread_self();
	x->job_start = mono_ms();
	pthread_mutex_unlock(&x->mtx);

	while (!xfer_range_done(x) && moved < budget) {
		ssize_t n;
		size_t allow;

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
		/* The rate limit: give the thread back; the transfer's timer
		 * queues it again (xfer-pace.c). */
		allow = xfer_pace_allow(x, budget - moved);
		if (allow == 0) {
			x->pace.hungry = true;
			goto out_locked;
		}
		x->in_syscall = true;
		pthread_mutex_unlock(&x->mtx);

		n = xfer_step(x, allow);
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
		xfer_pace_moved(x, n);
	}
	x->job_err = xfer_range_done(x) ? 1 : 0;
	pthread_mutex_lock(&x->mtx);
out_locked:
	x->yield = false;
	x->job_start = 0;
	pthread_mutex_unlock(&x->mtx);
}

static void dispatch(struct engine *e);

static void
after_work_cb(uv_work_t *w, int status)
{
	struct xfer *x = w->data;
	struct engine *e = x->engine; /* x may be gone below */

	/* The thread is free: the next job in turn takes it, after this one
	 * has had its chance to queue again (at the back). */
	fairq_release(engine_workq(e));
	x->job_queued = false;
	if (x->kick_timer_init)
		uv_timer_stop(&x->kick_timer);
	if (status == UV_ECANCELED || x->job_err == -ECANCELED)
		xfer_finish_error(x, ECANCELED);
	else if (x->job_err < 0)
		xfer_finish_error(x, -x->job_err);
	else if (x->job_err == 1)
		xfer_finish(x, WIRE_STATUS_OK, 0, NULL);
	else if (x->cancel)
		xfer_finish_error(x, ECANCELED);
	else if (x->pace.hungry)
		xfer_pace_wait(x);
	else
		/* A file found cold stays on a worker to its end: the rest is
		 * read from the disk as well, or was just read ahead, and sent
		 * from the loop it would hold it a whole chunk (2 MiB: hundreds
		 * of microseconds) per wake-up, which every small request of
		 * the loop would wait for. */
		xfer_queue_job(x);
	dispatch(e);
}

/* Hand a job that took a slot to the pool. */
static void
submit(struct xfer *x)
{
	int r;

	x->work.data = x;
	r = pool_queue_work(x->loop, &x->work, work_cb, after_work_cb);
	if (r < 0) {
		fairq_release(engine_workq(x->engine));
		x->job_queued = false;
		xfer_finish(x, WIRE_STATUS_IO_ERROR, -r, "cannot queue work");
		return;
	}
	/* Watches the job's time slice and its destination (see SLICE_MS,
	 * FULL_YIELD_MS). */
	(void)xfer_start_kick_timer(x, FULL_YIELD_MS);
}

/* A job of ours that another loop took from the shared queue. */
static void
on_remote_job(struct engine_waiter *w)
{
	submit(container_of(w, struct xfer, remote));
}

/* Fill the free threads, each with the next job in turn. With several loops
 * the queue is theirs in common: a job of another loop is handed to it
 * (uv_queue_work() is for a loop's own thread), holding its slot. Until it
 * has run, its transfer stays (a cancel waits for the job). */
static void
dispatch(struct engine *e)
{
	struct fairq_job *j;

	while ((j = fairq_pop(engine_workq(e)))) {
		struct xfer *x = container_of(j, struct xfer, fjob);

		if (x->engine == e) {
			submit(x);
			continue;
		}
		x->remote.fn = on_remote_job;
		engine_wake(x->engine, &x->remote);
	}
}

/* Take a place in the worker queue, and a thread if one is free. */
static void
enqueue(struct xfer *x)
{
	int r;

	r = fairq_push(engine_workq(x->engine), &x->fjob, x->p.uid, x->p.flow);
	if (r < 0) {
		xfer_finish(x, WIRE_STATUS_IO_ERROR, -r, "cannot queue work");
		return;
	}
	x->job_queued = true;
	dispatch(x->engine);
}

static void
on_writable(struct engine_parked *p)
{
	enqueue(container_of(p, struct xfer, park));
}

void
xfer_queue_job(struct xfer *x)
{
	xfer_own_line(x);
	x->park.fn = on_writable;
	/* If it cannot be parked, the job blocks a thread instead: slower for
	 * the others, still correct. */
	if (dst_full(x) && engine_park(x->engine, &x->park, x->dst) == 0)
		return;
	enqueue(x);
}

bool
xfer_unqueue_job(struct xfer *x)
{
	if (x->park.parked || fairq_remove(engine_workq(x->engine), &x->fjob)) {
		engine_unpark(x->engine, &x->park);
		x->job_queued = false;
		xfer_finish_error(x, ECANCELED);
		return true;
	}
	/* Handed to the pool and not started: libuv can drop it, and
	 * after_work_cb then reports. */
	return x->job_queued && uv_cancel((uv_req_t *)&x->work) == 0;
}

void
xfer_kick(struct xfer *x)
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
	if (!x->cancel && x->job_start) {
		int64_t ran = mono_ms() - x->job_start;

		/* Blocked on a full destination: the loop can wait for it. */
		if (ran >= SLICE_MS || (ran >= FULL_YIELD_MS && x->in_syscall && dst_full(x)))
			x->yield = true;
	}
	if ((x->cancel || x->yield) && x->in_syscall)
		pthread_kill(x->thread, KICK_SIGNAL);
	pthread_mutex_unlock(&x->mtx);
}

int
xfer_kick_timer(struct xfer *x)
{
	int r;

	if (x->kick_timer_init)
		return 0;
	r = uv_timer_init(x->loop, &x->kick_timer);
	if (r < 0)
		return r;
	x->kick_timer.data = x;
	x->kick_timer_init = true;
	return 0;
}

int
xfer_start_kick_timer(struct xfer *x, uint64_t period_ms)
{
	int r = xfer_kick_timer(x);

	if (r < 0)
		return r;
	return uv_timer_start(&x->kick_timer, on_kick_timer, period_ms, period_ms);
}
