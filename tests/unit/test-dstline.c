/*
 * test-dstline.c - the line of transfers per destination: who owns it, who
 * comes next, leaving while waiting, and many destinations at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dstline.h"
#include "helpers.h"

/* One table for the group, as one engine has for its loop: each test leaves
 * it empty. */
static struct dstline_table *t;

static int
group_setup(void **state)
{
	(void)state;
	t = dstline_table_new();
	return t ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	dstline_table_free(t);
	return 0;
}

static struct dstline_item
item(dev_t dev, ino_t ino)
{
	return (struct dstline_item){.dev = dev, .ino = ino};
}

static void
test_free_destination(void **state)
{
	struct dstline_item a = item(1, 10);

	(void)state;
	assert_false(dstline_any(t));
	assert_false(dstline_wait(t, &a));
	assert_null(a.line);
	assert_null(dstline_leave(t, &a)); /* in no line: nothing happens */
	assert_false(dstline_any(t));
}

static void
test_next_in_order(void **state)
{
	struct dstline_item a = item(1, 10), b = item(1, 10), c = item(1, 10), d = item(1, 10);
	struct dstline_item other = item(2, 10);

	(void)state;
	assert_int_equal(dstline_own(t, &a), 0);
	assert_int_equal(dstline_own(t, &a), 0); /* once is enough */
	assert_true(dstline_any(t));
	assert_true(dstline_wait(t, &b));
	assert_true(dstline_wait(t, &c));
	assert_true(dstline_wait(t, &d));
	/* Same inode number on another device: another destination. */
	assert_false(dstline_wait(t, &other));

	assert_ptr_equal(dstline_leave(t, &a), &b);
	assert_ptr_equal(dstline_leave(t, &b), &c);
	assert_ptr_equal(dstline_leave(t, &c), &d);
	assert_null(dstline_leave(t, &d));
	assert_false(dstline_any(t));
	assert_null(d.line);
}

static void
test_leave_while_waiting(void **state)
{
	struct dstline_item a = item(3, 30), b = item(3, 30), c = item(3, 30), d = item(3, 30);

	(void)state;
	assert_int_equal(dstline_own(t, &a), 0);
	assert_true(dstline_wait(t, &b));
	assert_true(dstline_wait(t, &c));
	assert_true(dstline_wait(t, &d));
	/* The middle one, then the last one: the line stays whole. */
	assert_null(dstline_leave(t, &c));
	assert_null(dstline_leave(t, &d));
	assert_true(dstline_wait(t, &c));
	assert_ptr_equal(dstline_leave(t, &a), &b);
	assert_ptr_equal(dstline_leave(t, &b), &c);
	/* The first waiting one leaves: the owner's successor is the next. */
	assert_true(dstline_wait(t, &a));
	assert_true(dstline_wait(t, &b));
	assert_null(dstline_leave(t, &a));
	assert_ptr_equal(dstline_leave(t, &c), &b);
	assert_null(dstline_leave(t, &b));
	assert_false(dstline_any(t));
}

/* Enough destinations to grow the table several times; each keeps its
 * own line. */
static void
test_many_destinations(void **state)
{
	enum { N = 5000 };
	static struct dstline_item owners[N], waiters[N];

	(void)state;
	for (int i = 0; i < N; i++) {
		owners[i] = item(7, (ino_t)i * 4099);
		waiters[i] = owners[i];
		assert_false(dstline_wait(t, &owners[i]));
		assert_int_equal(dstline_own(t, &owners[i]), 0);
	}
	for (int i = 0; i < N; i++)
		assert_true(dstline_wait(t, &waiters[i]));
	for (int i = N - 1; i >= 0; i--) {
		assert_ptr_equal(dstline_leave(t, &owners[i]), &waiters[i]);
		assert_null(dstline_leave(t, &waiters[i]));
	}
	assert_false(dstline_any(t));
}

/* What a shared table's wake was given, and from where. */
static struct dstline_item *woken;

static void
on_wake(struct dstline_item *it)
{
	woken = it;
}

/*
 * A table shared by several loops: a transfer that finds its destination
 * free owns the line at once (another loop could start one meanwhile); the
 * next one, of another owner (loop), is woken there instead of returned.
 */
static void
test_shared_table(void **state)
{
	struct dstline_table *st = dstline_table_new_shared();
	int loop_a, loop_b;
	struct dstline_item a = item(1, 7), b = item(1, 7), c = item(1, 7);

	(void)state;
	assert_non_null(st);
	a.owner = &loop_a;
	b.owner = &loop_b;
	c.owner = &loop_a;
	a.wake = b.wake = c.wake = on_wake;
	/* Always asked: the others' transfers are not seen otherwise. */
	assert_true(dstline_any(st));
	assert_false(dstline_wait(st, &a));
	assert_non_null(a.line); /* owns it */
	assert_true(dstline_wait(st, &b));
	assert_true(dstline_wait(st, &c));
	/* b is of another loop: woken there, not returned here. */
	woken = NULL;
	assert_null(dstline_leave(st, &a));
	assert_ptr_equal(woken, &b);
	/* b leaves on its loop: c is of loop a, woken too. */
	woken = NULL;
	assert_null(dstline_leave(st, &b));
	assert_ptr_equal(woken, &c);
	assert_null(dstline_leave(st, &c));
	/* Same owner: returned, as with one loop. */
	b.owner = &loop_a;
	assert_false(dstline_wait(st, &a));
	assert_true(dstline_wait(st, &b));
	woken = NULL;
	assert_ptr_equal(dstline_leave(st, &a), &b);
	assert_null(woken);
	assert_null(dstline_leave(st, &b));
	dstline_table_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_free_destination, fdcheck_setup,
	                                        fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_next_in_order, fdcheck_setup,
	                                        fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_leave_while_waiting, fdcheck_setup,
	                                        fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_many_destinations, fdcheck_setup,
	                                        fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_shared_table, fdcheck_setup, fdcheck_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
