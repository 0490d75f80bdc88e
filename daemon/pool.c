#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "pool.h"

static sigset_t loop_only_signals;
/* Any loop may queue the first job. */
static atomic_bool started;

void
pool_init(const sigset_t *loop_only)
{
	loop_only_signals = *loop_only;
}

int
pool_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after)
{
	sigset_t old;
	int r;

	if (atomic_load(&started))
		return uv_queue_work(loop, req, work, after);
	/* The first one starts the threads, with our mask: block the loop's
	 * signals for that long (one that comes meanwhile waits, and is then
	 * taken by this thread, the only one left to take it). */
	pthread_sigmask(SIG_BLOCK, &loop_only_signals, &old);
	r = uv_queue_work(loop, req, work, after);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	atomic_store(&started, true);
	return r;
}
