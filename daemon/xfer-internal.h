/*
 * xfer-internal.h - what the two halves of a transfer share: xfer.c (the
 * methods, xfer_step(), the loop runner, finishing) and xfer-worker.c (worker
 * jobs, the kick signal, time slices). Not for other modules.
 */
#ifndef SFD_XFER_INTERNAL_H
#define SFD_XFER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "dstline.h"
#include "engine.h"
#include "fairq.h"
#include "pace.h"
#include "validate.h"
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
/* Worker jobs move this many chunks before returning to the loop, which
 * re-queues them; a blocked worker costs a thread, not the loop. */
#define WORKER_CHUNKS 8
/* A job blocked this long on a destination that cannot take a byte (a peer
 * that does not read) gives its thread back before its slice ends, and waits
 * on the loop for the destination instead (engine_park()). Also how often a
 * running job is looked at: short, because every job that needs a thread
 * waits that long for a stalled one's (a timer per running job, and at most
 * `workers` run). */
#define FULL_YIELD_MS 10

/* xfer_step()'s private "no zero-copy method applies and fallback is off":
 * outside the errno range, so that a real EOPNOTSUPP cannot be mistaken for
 * it. */
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

/* A transfer's limits and the one timer that enforces them. Loop thread,
 * except pace.idle_from, pace's bucket while a worker job runs, and hungry. */
struct xfer_pace {
	bool on; /* the transfer has a limit */
	bool timer_init;
	bool waiting; /* stopped for the rate limiter: nothing runs it */
	bool hungry;  /* a worker job stopped for the rate limiter */
	int expired;  /* enum pace_expiry that ended it, or 0 */
	struct pace p;
	uv_timer_t timer;
};

struct xfer {
	struct engine *engine;
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
	bool cold;           /* found cold: on a worker to its end */
	uint64_t probed_end; /* the page cache held the source up to here */
	uint64_t sent;       /* bytes delivered to the destination */
	uint64_t limit;      /* bytes to send; UINT64_MAX: until EOF */
	enum wait wait;

	/* A file source: its place among the transfers sending from the same
	 * open file description (engine_src_join()). Alone there, the
	 * transfer sends from the shared position (shared_pos), which then
	 * always says what has left; sharing it, from private offsets. */
	struct engine_src_member srcm;
	bool joined;
	bool shared_pos;
	off_t client_pos; /* shared_pos: where the client had left it */

	/* Its place among the transfers to the same destination (dstline.h). */
	struct dstline_item line;
	bool has_key; /* line.dev and line.ino are known */
	/* Woken by another loop: its turn at the destination came, or its
	 * worker job was taken from the shared queue there. */
	struct engine_waiter remote;

	/* M_SPLICE_BUFFER: our own pipe and the bytes sitting in it. */
	int pipe_rd, pipe_wr;
	size_t piped;
	/* M_COPY: bytes read and not yet written. */
	char *buf;
	size_t buf_len, buf_off;

	/* Loop mode. */
	struct engine_parked dst_watch, src_watch; /* engine_watch() */
	struct engine_parked *watching;            /* the one armed now, if any */
	int pending_closes;

	/* Worker mode. */
	bool on_worker;
	bool job_queued; /* waiting in the worker queue, or handed to the pool */
	struct fairq_job fjob;
	struct engine_parked park; /* waiting on the loop for a full destination */
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

	/* Deadline, idle timeout and rate limit (xfer-pace.c): the timer runs
	 * only for a transfer that has one of them. */
	struct xfer_pace pace;
};

/* xfer.c */
ssize_t xfer_step(struct xfer *x, size_t budget);
bool xfer_range_done(const struct xfer *x);
void xfer_finish(struct xfer *x, int status, int err, const char *msg);
void xfer_finish_error(struct xfer *x, int err);
/* Return: the bytes moved (@x may be gone). */
size_t xfer_run_loop(struct xfer *x, size_t budget);
void xfer_own_line(struct xfer *x);

/* xfer-pace.c */
void xfer_pace_init(struct xfer *x);
/* xfer_pace_arm() - (re)start the timer for the next thing to look at. */
void xfer_pace_arm(struct xfer *x);
/* xfer_pace_start() - its turn came: idleness counts from now. */
void xfer_pace_start(struct xfer *x);
/* xfer_pace_allow() - of @want bytes, how many may go now (0: wait). Any
 * thread that runs the transfer. */
size_t xfer_pace_allow(struct xfer *x, size_t want);
/* xfer_pace_moved() - @n bytes left. Any thread that runs the transfer. */
void xfer_pace_moved(struct xfer *x, size_t n);
/* xfer_pace_wait() - stop until the rate limiter lets it go on (loop). */
void xfer_pace_wait(struct xfer *x);
/* xfer_pace_timeout() - the enum wire_timeout that ended it, or 0. */
int xfer_pace_timeout(const struct xfer *x);

/* xfer-worker.c */
/* xfer_queue_job() - run the transfer on a worker for a time slice. */
void xfer_queue_job(struct xfer *x);
/* xfer_unqueue_job() - cancel a job that has not started: finishes the
 * transfer (at once, or from the pool's callback). Return: whether it had
 * not started. */
bool xfer_unqueue_job(struct xfer *x);
/* xfer_kick() - interrupt the worker's syscall, if it is in one. */
void xfer_kick(struct xfer *x);
/* xfer_kick_timer() - the transfer's one timer: set it up on first use. */
int xfer_kick_timer(struct xfer *x);
int xfer_start_kick_timer(struct xfer *x, uint64_t period_ms);

#endif
