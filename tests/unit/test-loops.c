/*
 * test-loops.c - the daemon's event loops: threads that run their own loops,
 * tasks posted from any thread and run on the loop they were posted to,
 * once however often posted; loops_call() waiting for its function;
 * loops_free() joining every thread and leaving no descriptor behind; one
 * loop starting no thread at all.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include "helpers.h"
#include "loops.h"
#include "macro.h"

#define N 4

struct probe {
	struct loops_task task;
	struct loops *l;
	uv_loop_t *want_loop;
	pthread_t ran_on;
	atomic_uint runs;
};

static void
on_probe(struct loops_task *t)
{
	struct probe *p = container_of(t, struct probe, task);

	p->ran_on = pthread_self();
	atomic_fetch_add(&p->runs, 1);
}

static void
on_timer(uv_timer_t *t)
{
	(void)t;
}

/* Which thread runs loop @i: asked on it through loops_call(). */
static void
note_thread(void *arg)
{
	*(pthread_t *)arg = pthread_self();
}

static int
open_fds(void)
{
	struct fdset s;

	fdset_snapshot(&s);
	return fdset_count(&s);
}

static void
test_threads_tasks_and_calls(void **state)
{
	uv_loop_t first;
	struct loops *l;
	pthread_t threads[N];
	struct probe p[N];
	int fds = open_fds();

	(void)state;
	assert_int_equal(uv_loop_init(&first), 0);
	assert_int_equal(loops_new(&first, N, &l), 0);
	assert_int_equal(loops_count(l), N);
	assert_int_equal(loops_start(l), 0);
	for (unsigned i = 0; i < N; i++) {
		loops_call(l, i, note_thread, &threads[i]);
		/* Loop 0 is ours: called directly. */
		assert_int_equal(pthread_equal(threads[i], pthread_self()) != 0, i == 0);
		for (unsigned j = 0; j < i; j++)
			assert_false(pthread_equal(threads[i], threads[j]));
	}
	/* Posted twice before it runs: runs once, on its loop's thread. */
	for (unsigned i = 1; i < N; i++) {
		p[i] = (struct probe){.task.fn = on_probe};
		loops_post(l, i, &p[i].task);
		loops_post(l, i, &p[i].task);
	}
	for (unsigned i = 1; i < N; i++) {
		pthread_t t;

		/* A call queued behind the task: the task has run by now. */
		loops_call(l, i, note_thread, &t);
		assert_int_equal(atomic_load(&p[i].runs), 1);
		assert_true(pthread_equal(p[i].ran_on, threads[i]));
	}
	/* Posted to loop 0 from another loop: runs when loop 0 turns. */
	p[0] = (struct probe){.task.fn = on_probe};
	loops_post(l, 0, &p[0].task);
	{
		/* Loop 0's wake-up handle keeps nobody alive: a timer does,
		 * for the one turn that takes the task. */
		uv_timer_t keep;

		uv_timer_init(&first, &keep);
		uv_timer_start(&keep, on_timer, 60000, 0);
		uv_run(&first, UV_RUN_ONCE);
		uv_close((uv_handle_t *)&keep, NULL);
	}
	assert_int_equal(atomic_load(&p[0].runs), 1);
	assert_true(pthread_equal(p[0].ran_on, pthread_self()));

	loops_free(l);
	/* Loop 0's handle closes on loop 0. */
	uv_run(&first, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&first), 0);
	assert_int_equal(open_fds(), fds);
}

/* One loop: no thread, no handle: the loop has nothing to run. */
static void
test_one_loop_is_just_the_loop(void **state)
{
	uv_loop_t first;
	struct loops *l;
	pthread_t t;

	(void)state;
	assert_int_equal(uv_loop_init(&first), 0);
	assert_int_equal(loops_new(&first, 1, &l), 0);
	assert_int_equal(loops_start(l), 0);
	assert_int_equal(uv_loop_alive(&first), 0);
	loops_call(l, 0, note_thread, &t);
	assert_true(pthread_equal(t, pthread_self()));
	loops_free(l);
	assert_int_equal(uv_loop_close(&first), 0);
}

static void
test_bad_counts(void **state)
{
	uv_loop_t first;
	struct loops *l = NULL;

	(void)state;
	assert_int_equal(uv_loop_init(&first), 0);
	assert_int_equal(loops_new(&first, 0, &l), -EINVAL);
	assert_int_equal(loops_new(&first, LOOPS_MAX + 1, &l), -EINVAL);
	assert_null(l);
	assert_int_equal(uv_loop_close(&first), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_threads_tasks_and_calls),
	        fd_test(test_one_loop_is_just_the_loop),
	        fd_test(test_bad_counts),
	};
	uv_loop_t once;

	/* libuv opens a process-wide pipe at its first loop: before the
	 * descriptor snapshots. */
	uv_loop_init(&once);
	uv_loop_close(&once);

	return cmocka_run_group_tests(tests, NULL, NULL);
}
