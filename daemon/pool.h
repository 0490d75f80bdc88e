/*
 * pool - work for libuv's worker threads, which must not take the signals
 * the loop handles.
 *
 * libuv starts all its workers in the first uv_queue_work(), and a thread
 * inherits its creator's signal mask: started from the loop thread as it is,
 * the workers would take SIGTERM and SIGINT too, and a daemon that has
 * closed its signal handles (which restores the default action) could be
 * killed by a late one. pool_queue_work() starts them with those signals
 * blocked. It starts them only when some work needs them, so that a daemon
 * that never does stays single-threaded: with a descriptor table of its own,
 * each syscall on a descriptor is cheaper.
 */
#ifndef SFD_POOL_H
#define SFD_POOL_H

#include <signal.h>
#include <uv.h>

/* pool_init() - the signals the workers must never take. Before any work. */
void pool_init(const sigset_t *loop_only);

/* pool_queue_work() - uv_queue_work(), from the loop thread. */
int pool_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after);

#endif
