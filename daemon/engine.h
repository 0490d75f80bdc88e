/*
 * engine - the transfer engine of one event loop: what the transfers of that
 * loop share. Nothing here is global, so that several loops can each have
 * one.
 *
 * It owns:
 *  - the turn's batch: the descriptors of the transfers that ended during
 *    this loop turn (the "grave"), closed together, adjacent numbers in one
 *    close_range(2); and the file ranges found in the page cache this turn,
 *    which are not probed again;
 *  - the chain: transfers whose turn at a destination came, started one
 *    after the other from one timer callback instead of one loop turn each;
 *  - the destination lines (dstline.h): one transfer at a time per
 *    destination;
 *  - the hand-off to the worker pool (pool.h), through which transfers that
 *    could block run on threads: the worker queue (fairq.h) decides whose
 *    job takes the next free thread.
 *
 * The flush: once per loop turn, after the I/O callbacks (a uv_check_t,
 * where libuv drains its own per-loop queues), engine_flush() closes the
 * grave, forgets the hot ranges, then runs the waiters deferred during the
 * turn (engine_defer()). A connection defers itself when it has replies to
 * send: so no client ever sees a reply while the daemon still holds the
 * descriptors of its request. Loop thread only, except engine_wake() and
 * what is said to be shared below.
 *
 * With several loops (loops.h), the tables that must hold across loops are
 * shared by every engine (engine_new_shared()): the destination lines, the
 * sources in flight and the worker queue, each under its own lock. The rest
 * stays per loop.
 */
#ifndef SFD_ENGINE_H
#define SFD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"

struct engine;
struct fdinfo;
struct xfer;
struct dstline_table;
struct fairq;

/* libuv's thread count when UV_THREADPOOL_SIZE is not set. */
#define ENGINE_WORKERS_DEFAULT 4

/* Embedded in what wants to run at the next flush. */
struct engine_waiter {
	struct list_head link;
	void (*fn)(struct engine_waiter *w);
	bool queued;
};

/*
 * engine_new() - an engine for @loop, the only one: its tables are its own.
 * Its handles do not keep the loop alive, except while something waits for
 * a flush.
 * Return: 0 and *ret, or a negative errno.
 */
int engine_new(uv_loop_t *loop, struct engine **ret);

struct engine_srcs;

/* What the engines of several loops share; the caller owns these and frees
 * them after the last engine is gone. */
struct engine_shared {
	struct dstline_table *lines; /* dstline_table_new_shared() */
	struct engine_srcs *srcs;    /* engine_srcs_new() */
	struct fairq *workq;         /* fairq_new(workers) */
};

/*
 * engine_new_shared() - an engine for @loop, one of several: it uses
 * @shared's tables (NULL: its own, as engine_new()), and takes wake-ups from
 * the other loops (engine_wake()).
 * Return: 0 and *ret, or a negative errno.
 */
int engine_new_shared(uv_loop_t *loop, const struct engine_shared *shared, struct engine **ret);

/* The sources in flight, for engine_shared. Return: it, or NULL. */
struct engine_srcs *engine_srcs_new(void);
void engine_srcs_free(struct engine_srcs *s);

/* engine_has_peers() - does it share its tables with other loops? */
bool engine_has_peers(const struct engine *e);

/*
 * engine_free() - flush one last time and close the engine's handles; the
 * memory goes once the loop has run their close callbacks. Every transfer
 * must have finished. NULL is a no-op.
 */
void engine_free(struct engine *e);

/* engine_flush() - the turn's end (see above); also called by engine_free(). */
void engine_flush(struct engine *e);

/* engine_defer() - run @w->fn at the next flush (once, however many times it
 * is deferred before). */
void engine_defer(struct engine *e, struct engine_waiter *w);

/* engine_undefer() - take @w back (its owner is going away). */
void engine_undefer(struct engine_waiter *w);

/*
 * engine_wake() - run @w->fn on @e's loop soon (once, however many times it
 * is woken before). Any thread; for an engine with peers only. The loop is
 * woken through one uv_async_t per batch of wake-ups.
 */
void engine_wake(struct engine *e, struct engine_waiter *w);

/* engine_unwake() - take @w back: its owner is going away. @e's loop only. */
void engine_unwake(struct engine *e, struct engine_waiter *w);

uv_loop_t *engine_loop(const struct engine *e);

/* engine_set_workers() - the pool's thread count (UV_THREADPOOL_SIZE): at
 * most this many worker jobs are handed to the pool at once. */
void engine_set_workers(struct engine *e, unsigned n);

/* ---- for the transfers (xfer*.c) ---------------------------------------- */

/* engine_bury() - close @fd at the next flush. Return: -1, for the caller's
 * variable. */
int engine_bury(struct engine *e, int fd);

/* engine_first_budget() - what a new transfer's first attempt may move:
 * the whole @chunk while this turn's first attempts have moved less than
 * 8 MiB (what 32 of them moved at 256 KiB each), else 256 KiB.
 * engine_first_moved() counts what one moved. */
size_t engine_first_budget(const struct engine *e, size_t chunk);
void engine_first_moved(struct engine *e, size_t n);

/* engine_hot() - was [start, end) of this file found in the page cache in
 * the last moment (HOT_MS, 100 ms)? Its pages were just read, the last an
 * eviction would take. */
bool engine_hot(const struct engine *e, const struct fdinfo *f, uint64_t start, uint64_t end);
void engine_hot_add(struct engine *e, const struct fdinfo *f, uint64_t start, uint64_t end);

struct dstline_table *engine_lines(struct engine *e);

/* engine_workq() - the worker queue: jobs wait here for a free thread. */
struct fairq *engine_workq(struct engine *e);

/* Embedded in what waits for a descriptor to become writable (or, watched,
 * readable). */
struct engine_parked {
	void (*fn)(struct engine_parked *p);
	int fd;
	bool parked;
	bool watch;      /* engine_watch(): stays armed after a call */
	uint32_t events; /* EPOLLOUT, EPOLLIN */
};

/*
 * engine_park() - call @p->fn once, from the loop, when @fd (borrowed; a
 * socket or pipe, blocking or not) is writable, has an error or was hung
 * up. Unlike a uv_poll_t it leaves the descriptor's flags alone, so a
 * blocking destination can wait here instead of in a worker thread.
 * Return: 0, or a negative errno (then nothing waits).
 */
int engine_park(struct engine *e, struct engine_parked *p, int fd);

/*
 * engine_watch() - call @p->fn from the loop whenever @fd (borrowed) is
 * ready for @events (EPOLLOUT or EPOLLIN; errors and hang-ups too), until
 * engine_unpark(): level-triggered, like a started uv_poll_t, which the
 * loop's transfers used to wait with. A uv_poll_t costs, per descriptor, four
 * syscalls more than the epoll_ctl() that adds it and the one that removes
 * it (uv_poll_init() adds and removes it to check it, sets O_NONBLOCK with
 * an ioctl(), and starting removes it once more), and a transfer's
 * descriptor is new with each request. Asking again for what is armed
 * already costs nothing. Return: 0, or a negative errno (then nothing
 * waits).
 */
int engine_watch(struct engine *e, struct engine_parked *p, int fd, uint32_t events);

/* engine_unpark() - stop waiting (no call); before @p's descriptor closes.
 * A no-op when it is not parked or watched. */
void engine_unpark(struct engine *e, struct engine_parked *p);

/*
 * The sources in flight: which transfers (of this loop, or of every loop
 * when shared) send from the same open file description. A transfer alone
 * on its description sends from the shared file position, so that the
 * position tells the truth at every moment, a crash of the daemon included; a transfer that shares
 * it with others uses private offsets, as file caches serving one descriptor to many sockets need,
 * and only the last one to finish sets the position.
 */
struct engine_src;

/* Embedded in a transfer; @fd stays open until engine_src_leave(). */
struct engine_src_member {
	struct list_head link;
	struct engine_src *src;
	int fd;
};

/*
 * engine_src_join() - @m (@fd, the file @f) starts sending. Another member
 * found with the same st_dev/st_ino is asked kcmp(KCMP_FILE); if kcmp
 * cannot tell, the description is taken as shared. No syscall when no
 * transfer in flight sends from the same file.
 * Return: 1 when @m is alone on its description, 0 when it shares it, or
 * a negative errno (nothing joined).
 */
int engine_src_join(struct engine *e, struct engine_src_member *m, int fd, const struct fdinfo *f);

/* engine_src_leave() - @m is done with its description. Under
 * engine_src_lock(), held until the position is set: a transfer of another
 * loop must not join the description between the two.
 * Return: whether it was the last member in flight. */
bool engine_src_leave(struct engine *e, struct engine_src_member *m);
void engine_src_lock(struct engine *e);
void engine_src_unlock(struct engine *e);

/*
 * The chain. engine_chain_begin() and engine_chain_end() bracket the
 * starting of a transfer whose turn came; engine_chain_offer() is asked, by
 * a transfer that finishes, whether its successor @next can be started by
 * the chain now running (then it returns true and engine_chain_end() hands
 * it back) instead of from a timer of its own.
 */
void engine_chain_begin(struct engine *e);
bool engine_chain_offer(struct engine *e, struct xfer *next);
struct xfer *engine_chain_end(struct engine *e);
/* engine_chain_forget() - @x is finishing: it is no longer the one to start next. */
void engine_chain_forget(struct engine *e, struct xfer *x);

#endif
