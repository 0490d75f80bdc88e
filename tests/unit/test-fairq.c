/*
 * test-fairq.c - the order of the worker queue: the bound on a newcomer's
 * wait, whatever others have queued; first in, first out within a
 * connection; the slots; removal.
 *
 * The bound is counted in takes (fairq_pop() calls), not in time: how long
 * a take lasts is the worker's time slice, which the benchmark measures
 * (bench/fairness).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fairq.h"
#include "helpers.h"
#include "macro.h"

#define MAX_JOBS 4096

struct job {
	struct fairq_job fj;
	uint32_t uid;
	uint64_t flow;
	unsigned seq; /* order of pushing within its flow */
};

static struct job jobs[MAX_JOBS];
static unsigned n_jobs;

static struct job *
push(struct fairq *q, uint32_t uid, uint64_t flow)
{
	struct job *j;

	assert_true(n_jobs < MAX_JOBS);
	j = &jobs[n_jobs++];
	*j = (struct job){.uid = uid, .flow = flow};
	assert_int_equal(fairq_push(q, &j->fj, uid, flow), 0);
	return j;
}

/* Take one job and give its slot back at once, as a job that ends its time
 * slice does. */
static struct job *
take(struct fairq *q)
{
	struct fairq_job *fj = fairq_pop(q);

	if (!fj)
		return NULL;
	fairq_release(q);
	return container_of(fj, struct job, fj);
}

/* Take jobs until @want comes out; a job taken is queued again at the back
 * of its connection, as a stalled transfer's next slice is.
 * Return: how many takes it took, @want's included. */
static unsigned
takes_until(struct fairq *q, struct job *want)
{
	for (unsigned n = 1; n <= MAX_JOBS; n++) {
		struct job *j = take(q);

		assert_non_null(j);
		if (j == want)
			return n;
		assert_int_equal(fairq_push(q, &j->fj, j->uid, j->flow), 0);
	}
	fail_msg("never taken");
	return 0;
}

static void
drain(struct fairq *q)
{
	while (take(q))
		;
	assert_int_equal(fairq_waiting(q), 0);
	n_jobs = 0;
}

/* A hostile uid with a big backlog on many connections; others with some.
 * A job of a uid with nothing queued is taken within U takes (U: uids
 * waiting, its own included), wherever the round robin stands. */
static void
test_new_uid_bounded(void **state)
{
	(void)state;
	for (unsigned users = 1; users <= 6; users++) {
		for (unsigned skip = 0; skip < 7; skip++) {
			struct fairq *q = fairq_new(1);
			struct job *mine;
			unsigned n;

			assert_non_null(q);
			/* uid 0: 1,000 jobs on 10 connections. */
			for (unsigned i = 0; i < 1000; i++)
				push(q, 0, i % 10);
			for (unsigned u = 1; u < users; u++)
				for (unsigned i = 0; i < 5 * u; i++)
					push(q, u, 100 + u);
			/* Somewhere in the middle of a round. */
			for (unsigned i = 0; i < skip; i++) {
				struct job *j = take(q);

				assert_int_equal(fairq_push(q, &j->fj, j->uid, j->flow), 0);
			}
			mine = push(q, 1000, 1);
			n = takes_until(q, mine);
			assert_true(n >= 1);
			assert_true(n <= users + 1);
			drain(q);
			fairq_free(q);
		}
	}
}

/* Within one uid, a connection with nothing queued waits for the uid's other
 * connections once each, not for their backlogs. */
static void
test_new_connection_bounded(void **state)
{
	struct fairq *q = fairq_new(1);
	struct job *mine;

	(void)state;
	assert_non_null(q);
	for (unsigned i = 0; i < 900; i++)
		push(q, 7, i % 3); /* three connections of 300 */
	for (unsigned i = 0; i < 50; i++)
		push(q, 8, 50); /* another uid */
	mine = push(q, 7, 99);
	/* uid 7 and 8 alternate; uid 7's four connections take turns. */
	assert_true(takes_until(q, mine) <= 2 * 4);
	drain(q);
	fairq_free(q);
}

/* Each uid gets one take per round, however many jobs or connections it
 * has: over 3 rounds of 3 uids, each is served 3 times. */
static void
test_round_robin_per_uid(void **state)
{
	struct fairq *q = fairq_new(1);
	unsigned served[3] = {0};

	(void)state;
	assert_non_null(q);
	for (unsigned i = 0; i < 300; i++)
		push(q, 0, i % 30);
	for (unsigned i = 0; i < 3; i++)
		push(q, 1, 0);
	for (unsigned i = 0; i < 10; i++)
		push(q, 2, i);
	for (unsigned i = 0; i < 9; i++) {
		struct job *j = take(q);

		assert_non_null(j);
		served[j->uid]++;
	}
	assert_int_equal(served[0], 3);
	assert_int_equal(served[1], 3);
	assert_int_equal(served[2], 3);
	/* uid 1 is done: the others alternate. */
	assert_int_equal(take(q)->uid, 0);
	assert_int_equal(take(q)->uid, 2);
	drain(q);
	fairq_free(q);
}

/* One connection's jobs come out in the order they were queued (a line per
 * destination depends on it no more than on the order of requests, but a
 * client sees it). */
static void
test_fifo_per_connection(void **state)
{
	struct fairq *q = fairq_new(1);
	unsigned next = 0;

	(void)state;
	assert_non_null(q);
	for (unsigned i = 0; i < 20; i++)
		push(q, 5, 1)->seq = i;
	for (unsigned i = 0; i < 20; i++)
		push(q, 5, 2);
	for (struct job *j; (j = take(q));)
		if (j->flow == 1)
			assert_int_equal(j->seq, next++);
	assert_int_equal(next, 20);
	n_jobs = 0;
	fairq_free(q);
}

/* At most @slots jobs are out at once. */
static void
test_slots(void **state)
{
	struct fairq *q = fairq_new(3);

	(void)state;
	assert_non_null(q);
	for (unsigned i = 0; i < 5; i++)
		push(q, i, i);
	assert_non_null(fairq_pop(q));
	assert_non_null(fairq_pop(q));
	assert_non_null(fairq_pop(q));
	assert_int_equal(fairq_running(q), 3);
	assert_null(fairq_pop(q));
	assert_int_equal(fairq_waiting(q), 2);
	fairq_release(q);
	assert_non_null(fairq_pop(q));
	assert_null(fairq_pop(q));
	fairq_release(q);
	fairq_release(q);
	fairq_release(q);
	assert_int_equal(fairq_running(q), 0);
	assert_non_null(fairq_pop(q));
	fairq_release(q);
	assert_null(fairq_pop(q));
	n_jobs = 0;
	fairq_free(q);
}

/* A cancelled job leaves the queue and is never taken; a uid whose last job
 * goes loses its place. */
static void
test_remove(void **state)
{
	struct fairq *q = fairq_new(1);
	struct job *a, *b, *c;

	(void)state;
	assert_non_null(q);
	a = push(q, 1, 1);
	b = push(q, 2, 2);
	c = push(q, 1, 1);
	assert_true(fairq_queued(&b->fj));
	assert_true(fairq_remove(q, &b->fj));
	assert_false(fairq_queued(&b->fj));
	assert_false(fairq_remove(q, &b->fj));
	assert_int_equal(fairq_waiting(q), 2);
	assert_ptr_equal(take(q), a);
	assert_ptr_equal(take(q), c);
	assert_null(take(q));
	/* Removing the only job frees its uid: pushing again works. */
	b = push(q, 2, 2);
	assert_true(fairq_remove(q, &b->fj));
	assert_int_equal(fairq_waiting(q), 0);
	assert_null(take(q));
	n_jobs = 0;
	fairq_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_new_uid_bounded),
	        fd_test(test_new_connection_bounded),
	        fd_test(test_round_robin_per_uid),
	        fd_test(test_fifo_per_connection),
	        fd_test(test_slots),
	        fd_test(test_remove),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
