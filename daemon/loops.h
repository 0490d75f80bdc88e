/*
 * loops - the daemon's event loops and their threads.
 *
 * Loop 0 is the caller's (the main thread's uv_default_loop(): signals, the
 * control plane, the listening socket); loops 1..n-1 each run in a thread of
 * their own, started by loops_start() and joined by loops_free(). With one
 * loop there is no thread and no wake-up handle: the daemon is the single
 * loop it always was.
 *
 * The loops talk through tasks: loops_post() queues one for a loop (a list
 * under a mutex, and a uv_async_t that wakes that loop once per batch);
 * loops_call() runs a function on a loop and waits for it. Nothing else
 * crosses: each loop's handles are touched by its own thread only.
 *
 * Threads take the signal mask of the thread that starts them: start them
 * with the stop signals blocked, so that only loop 0 takes those.
 */
#ifndef SFD_LOOPS_H
#define SFD_LOOPS_H

#include <stdbool.h>
#include <uv.h>

#include "list.h"

/* At most this many loops. */
#define LOOPS_MAX 64

struct loops;

/* Embedded in what is to run on another loop. */
struct loops_task {
	struct list_head link;
	void (*fn)(struct loops_task *t);
	bool queued;
};

/*
 * loops_new() - @n loops (1 to LOOPS_MAX): @first is loop 0, the others are
 * created here, not yet running. Return: 0 and *ret, or a negative errno.
 */
int loops_new(uv_loop_t *first, unsigned n, struct loops **ret);

/* loops_start() - start the threads of loops 1..n-1, once their handles
 * are set up. Return: 0, or a negative errno (then none runs). */
int loops_start(struct loops *l);

unsigned loops_count(const struct loops *l);
uv_loop_t *loops_loop(const struct loops *l, unsigned i);

/*
 * loops_post() - run @t->fn on loop @i soon, from its thread (once, however
 * many times it is posted before it runs). Any thread. Not for a loop that
 * has stopped, nor with one loop (there, call directly).
 */
void loops_post(struct loops *l, unsigned i, struct loops_task *t);

/*
 * loops_call() - run @fn(@arg) on loop @i and wait until it has returned.
 * From loop 0's thread only (loop 0 itself: called directly); the other
 * loops never wait for loop 0, so this cannot deadlock. Before loops_start()
 * it runs directly too: nothing else touches those loops yet.
 */
void loops_call(struct loops *l, unsigned i, void (*fn)(void *arg), void *arg);

/*
 * loops_free() - from loop 0's thread: stop loops 1..n-1 (each closes its
 * wake-up handle, runs until its last handle has closed, and returns from
 * uv_run()), join their threads, close those loops. Their handles must all
 * be closing already. Tasks still queued for loop 0 are dropped. NULL is a
 * no-op.
 */
void loops_free(struct loops *l);

#endif
