/*
 * test-nonblocking.c - sfd_client_set_nonblocking(): a connection filled by
 * a client that does not read its replies makes submit and cancel return
 * -EAGAIN at once, with nothing sent and nothing in flight; once the
 * completions are dispatched the connection takes requests again, and every
 * transfer, the refused one sent again included, completes exactly once.
 * Also the blocking call on a socket its owner made non-blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* More than the daemon's requests in flight per connection (1024) plus what
 * the socket buffers hold: a client that never reads must meet -EAGAIN
 * before this. */
#define MAX_SUBMITS 20000
#define FILE_SIZE 1000

struct fill {
	struct sfd_client *c;
	struct sink *s;
	char path[PATH_MAX];
	int src, dst, idx;
	struct done_slot *slots;
	uint64_t *ids;
	unsigned n; /* requests accepted */
	unsigned done;
};

static void
fill_setup(struct fill *f)
{
	int srv;

	memset(f, 0, sizeof(*f));
	f->c = client_open();
	f->s = sink_new();
	tfile_create(f->path, FILE_SIZE, 7);
	f->src = tfile_open(f->path, O_RDONLY);
	tcp_pair(true, &f->dst, &srv);
	f->idx = sink_add(f->s, srv, NULL);
	f->slots = calloc(MAX_SUBMITS + 1, sizeof(*f->slots));
	f->ids = calloc(MAX_SUBMITS + 1, sizeof(*f->ids));
	assert_non_null(f->slots);
	assert_non_null(f->ids);
	for (unsigned i = 0; i <= MAX_SUBMITS; i++)
		f->slots[i].counter = &f->done;
}

/*
 * Submit without ever dispatching until the connection is full for good. A
 * first -EAGAIN may only mean that the daemon has not read yet, so it counts
 * once three tries 100 ms apart meet it: by then the daemon has stopped
 * reading, waiting for its replies to be read. (poll(POLLOUT) cannot tell:
 * an AF_UNIX socket reports writable only below a quarter of its buffer.)
 */
static void
fill_until_eagain(struct fill *f)
{
	unsigned refused = 0;

	for (;;) {
		uint64_t id = UINT64_MAX;
		int r;

		if (f->n >= MAX_SUBMITS)
			fail_msg("%u requests accepted and no -EAGAIN", f->n);
		r = sfd_client_submit(f->c, f->dst, f->src, 0, 0, 0, &f->slots[f->n], &id);
		if (r == -EAGAIN) {
			/* Refused: no id handed out, nothing in flight. */
			assert_int_equal(id, UINT64_MAX);
			if (++refused == 3)
				break;
			usleep(100 * 1000);
			continue;
		}
		refused = 0;
		if (r < 0)
			fail_msg("submit %u: %s", f->n, strerror(-r));
		f->ids[f->n++] = id;
	}
	assert_int_equal(sfd_client_in_flight(f->c), f->n);
	/* Nothing was read while refusing. */
	assert_int_equal(sfd_client_pending(f->c), 0);
}

/* Every transfer completed once, with the whole file; the receiver got all
 * of them, one after the other. */
static void
fill_check(struct fill *f)
{
	uint8_t want[32], got[32], file[FILE_SIZE];
	struct sha256 h;

	assert_true(pump(f->c, &f->done, f->n, 60000));
	assert_int_equal(sfd_client_in_flight(f->c), 0);
	for (unsigned i = 0; i < f->n; i++) {
		assert_int_equal(f->slots[i].times, 1);
		assert_int_equal(f->slots[i].res.id, f->ids[i]);
		assert_result(&f->slots[i].res, SFD_STATUS_OK, FILE_SIZE, FILE_SIZE,
		              SFD_METHOD_SENDFILE);
	}
	assert_int_equal(pread(f->src, file, sizeof(file), 0), FILE_SIZE);
	sha256_init(&h);
	for (unsigned i = 0; i < f->n; i++)
		sha256_update(&h, file, sizeof(file));
	sha256_final(&h, want);
	close(f->dst);
	assert_true(sink_wait(f->s, f->idx, 30000));
	assert_int_equal(sink_bytes(f->s, f->idx), (uint64_t)f->n * FILE_SIZE);
	sink_digest(f->s, f->idx, got);
	assert_memory_equal(got, want, sizeof(want));
	assert_int_equal(fd_pos(f->src), FILE_SIZE);
	close(f->src);
	sink_free(f->s);
	sfd_client_free(f->c);
	free(f->slots);
	free(f->ids);
}

static void
test_full_connection_returns_eagain(void **state)
{
	struct fill f;
	int64_t deadline;
	uint64_t id = UINT64_MAX;
	bool sent = false;

	(void)state;
	fill_setup(&f);
	assert_int_equal(sfd_client_set_nonblocking(f.c, true), 0);
	fill_until_eagain(&f);

	/* The daemon reads no more until its replies are read: the
	 * connection stays full, and a cancel is refused the same way. */
	assert_int_equal(sfd_client_cancel(f.c, f.ids[0]), -EAGAIN);
	assert_int_equal(sfd_client_submit(f.c, f.dst, f.src, 0, 0, 0, &f.slots[f.n], &id),
	                 -EAGAIN);
	assert_int_equal(sfd_client_in_flight(f.c), f.n);

	/* An event loop's way out: dispatch when readable, send the refused
	 * request again when writable. */
	deadline = now_ms() + 60000;
	while (!sent) {
		struct pollfd p = {.fd = sfd_client_get_fd(f.c), .events = POLLIN | POLLOUT};
		int r;

		if (now_ms() > deadline)
			fail_msg("the connection never took the request again");
		assert_true(poll(&p, 1, 1000) >= 0);
		if (p.revents & POLLIN)
			assert_true(sfd_client_dispatch(f.c, harness_on_done) >= 0);
		if (p.revents & POLLOUT) {
			r = sfd_client_submit(f.c, f.dst, f.src, 0, 0, 0, &f.slots[f.n], &id);
			if (r == 0) {
				f.ids[f.n++] = id;
				sent = true;
			} else if (r != -EAGAIN) {
				fail_msg("submit: %s", strerror(-r));
			}
		}
	}
	fill_check(&f);
}

static void
test_blocking_again_waits_for_room(void **state)
{
	struct fill f;
	uint64_t id = 0;

	(void)state;
	fill_setup(&f);
	assert_int_equal(sfd_client_set_nonblocking(f.c, true), 0);
	fill_until_eagain(&f);

	/* Back to the default: the submit waits, reading completions for
	 * the next dispatch meanwhile. */
	assert_int_equal(sfd_client_set_nonblocking(f.c, false), 0);
	assert_int_equal(sfd_client_submit(f.c, f.dst, f.src, 0, 0, 0, &f.slots[f.n], &id), 0);
	assert_true(id != 0);
	f.ids[f.n++] = id;
	assert_true(sfd_client_pending(f.c) > 0);
	fill_check(&f);
}

/*
 * sfd_client_sendfile() without a deadline waits for its reply in the read
 * itself: on a socket whose owner made it non-blocking (an event loop
 * polling sfd_client_get_fd() does), it must still wait, and get the reply,
 * as it does on the socket as opened; a second call works the same.
 */
static void
test_sync_on_nonblocking_socket(void **state)
{
	struct sfd_client *c;
	struct sfd_result res;
	struct sink *s;
	char path[PATH_MAX];
	int src, dst, srv, idx, fl;

	(void)state;
	c = client_open();
	s = sink_new();
	tfile_create(path, 300000, 11);
	src = tfile_open(path, O_RDONLY);
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	fl = fcntl(sfd_client_get_fd(c), F_GETFL);
	assert_true(fl >= 0);
	assert_int_equal(fcntl(sfd_client_get_fd(c), F_SETFL, fl | O_NONBLOCK), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		        sfd_client_sendfile(c, dst, src, (uint64_t)i * 100000, 100000, 0, -1, &res),
		        0);
		assert_int_equal(res.status, SFD_STATUS_OK);
		assert_int_equal(res.bytes_sent, 100000);
		assert_int_equal(fd_pos(src), (i + 1) * 100000);
	}
	close(dst);
	assert_true(sink_wait(s, idx, 10000));
	assert_received(s, idx, src, 0, 200000);
	close(src);
	sink_free(s);
	sfd_client_free(c);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        HTEST(test_full_connection_returns_eagain),
	        HTEST(test_blocking_again_waits_for_room),
	        HTEST(test_sync_on_nonblocking_socket),
	};

	harness_init(argc, argv);
	return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
