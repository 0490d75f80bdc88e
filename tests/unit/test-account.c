/*
 * test-account.c - the counters and per-user accounting (daemon/account.c):
 * the per-uid limit, what a transfer's start and end count, the observer's
 * events, the bounded table of per-uid counters, and snapshots.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "account.h"
#include "helpers.h"

struct seen {
	unsigned start, done, error;
	uint64_t last_transfer;
	int last_status;
};

static void
observe(void *data, enum transfer_event_kind kind, const struct transfer_info *info, int status,
        int error)
{
	struct seen *s = data;

	(void)error;
	if (kind == TRANSFER_START)
		s->start++;
	else if (kind == TRANSFER_DONE)
		s->done++;
	else
		s->error++;
	s->last_transfer = info->transfer;
	s->last_status = status;
}

static void
test_limit_per_uid(void **state)
{
	struct account *a;

	(void)state;
	assert_int_equal(account_new(2, &a), 0);
	assert_int_equal(account_reserve(a, 1000), 0);
	assert_int_equal(account_reserve(a, 1000), 0);
	assert_int_equal(account_reserve(a, 1000), -EUSERS);
	/* Another user has slots of its own. */
	assert_int_equal(account_reserve(a, 1001), 0);
	account_unreserve(a, 1000);
	assert_int_equal(account_reserve(a, 1000), 0);
	account_free(a);
}

static void
test_start_and_done(void **state)
{
	struct transfer_info info = {.uid = 42, .pid = 7};
	struct account_snapshot snap;
	struct seen seen = {0};
	struct account *a;
	uint64_t first;

	(void)state;
	assert_int_equal(account_new(8, &a), 0);
	account_set_observer(a, observe, &seen);
	account_connection(a, true);
	account_connection(a, false);
	account_request(a);
	account_request(a);
	account_reply(a, WIRE_STATUS_LIMIT);

	assert_int_equal(account_reserve(a, 42), 0);
	account_start(a, &info);
	first = info.transfer;
	assert_true(first > 0);
	assert_int_equal(seen.start, 1);
	assert_int_equal(seen.last_transfer, first);
	assert_int_equal(account_in_flight(a), 1);

	assert_int_equal(account_reserve(a, 42), 0);
	account_start(a, &info);
	assert_true(info.transfer != first); /* daemon-wide ids are unique */

	info.bytes_sent = 4096;
	info.method = WIRE_METHOD_SENDFILE;
	account_done(a, &info, WIRE_STATUS_OK, 0);
	info.bytes_sent = 10;
	info.method = WIRE_METHOD_READ_WRITE;
	account_done(a, &info, WIRE_STATUS_PEER_CLOSED, 32);
	assert_int_equal(seen.done, 1);
	assert_int_equal(seen.error, 1);
	assert_int_equal(seen.last_status, WIRE_STATUS_PEER_CLOSED);
	assert_int_equal(account_in_flight(a), 0);

	assert_int_equal(account_snapshot(a, &snap), 0);
	assert_int_equal(snap.connections_accepted, 1);
	assert_int_equal(snap.connections_refused, 1);
	assert_int_equal(snap.requests, 2);
	assert_int_equal(snap.in_flight, 0);
	assert_int_equal(snap.bytes_sent, 4106);
	assert_int_equal(snap.by_status[WIRE_STATUS_OK], 1);
	assert_int_equal(snap.by_status[WIRE_STATUS_PEER_CLOSED], 1);
	assert_int_equal(snap.by_status[WIRE_STATUS_LIMIT], 1);
	assert_int_equal(snap.by_method[WIRE_METHOD_SENDFILE], 1);
	assert_int_equal(snap.by_method[WIRE_METHOD_READ_WRITE], 1);
	assert_int_equal(snap.n_uids, 1);
	assert_int_equal(snap.uids[0].uid, 42);
	assert_int_equal(snap.uids[0].requests, 2);
	assert_int_equal(snap.uids[0].bytes_sent, 4106);
	assert_int_equal(snap.uids[0].in_flight, 0);
	account_snapshot_free(&snap);

	/* Values outside the wire's enums are not counted anywhere. */
	account_reply(a, WIRE_STATUS_COUNT);
	account_reply(a, -1);
	assert_int_equal(account_snapshot(a, &snap), 0);
	for (int i = 0; i < WIRE_STATUS_COUNT; i++)
		assert_true(snap.by_status[i] <= 1);
	account_snapshot_free(&snap);
	account_free(a);
}

static void
test_uid_table_is_bounded(void **state)
{
	struct account_snapshot snap;
	struct account *a;

	(void)state;
	assert_int_equal(account_new(8, &a), 0);
	for (uid_t uid = 1; uid <= ACCOUNT_MAX_UIDS + 10; uid++) {
		struct transfer_info info = {.uid = uid, .bytes_sent = 1};

		assert_int_equal(account_reserve(a, uid), 0);
		account_start(a, &info);
		account_done(a, &info, WIRE_STATUS_OK, 0);
	}
	assert_int_equal(account_snapshot(a, &snap), 0);
	assert_int_equal(snap.n_uids, ACCOUNT_MAX_UIDS);
	assert_int_equal(snap.uids[ACCOUNT_MAX_UIDS - 1].uid, ACCOUNT_UID_OTHER);
	/* The last uids share the one bucket. */
	assert_int_equal(snap.uids[ACCOUNT_MAX_UIDS - 1].requests, 11);
	assert_int_equal(snap.bytes_sent, ACCOUNT_MAX_UIDS + 10);
	account_snapshot_free(&snap);
	account_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_limit_per_uid),
	        fd_test(test_start_and_done),
	        fd_test(test_uid_table_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
