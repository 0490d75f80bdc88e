/*
 * test-errors.c - requests the daemon must refuse: descriptors it cannot use,
 * ranges that overflow, arguments the library rejects before asking, and the
 * daemon's limit on requests in flight. Each refusal sends nothing, leaves
 * the source's position alone, closes what the daemon received, and leaves
 * the client and the daemon usable.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* Is @fd still open in this process? */
static bool
fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/*
 * expect_invalid() - the daemon answers INVALID_ARGUMENT with @want_errno,
 * nothing is sent, the position is untouched, our descriptors are intact,
 * and the same connection then serves a good request.
 */
static void
expect_invalid(int dst, int src, uint64_t off, uint64_t count, int want_errno)
{
	struct sfd_client *c = client_open();
	struct sfd_result res;
	off_t pos = lseek(src, 0, SEEK_CUR);

	assert_int_equal(sfd_client_sendfile(c, dst, src, off, count, 0, 10000, &res), 0);
	if (res.status != SFD_STATUS_INVALID_ARGUMENT || res.error != want_errno)
		fail_msg("status %s, errno %d (%s), want invalid argument, errno %d",
		         sfd_status_str(res.status), res.error, res.message, want_errno);
	assert_int_equal(res.bytes_sent, 0);
	/* final_offset is offset + bytes sent on every reply, refusals too. */
	assert_int_equal(res.final_offset, off);
	assert_int_equal(res.method, SFD_METHOD_NONE);
	assert_int_equal(res.flags, 0);
	/* The daemon explains itself. */
	assert_true(res.message[0] != '\0');
	assert_int_equal(lseek(src, 0, SEEK_CUR), pos);
	assert_true(fd_open(dst));
	assert_true(fd_open(src));
	/* What the daemon received is closed already, before the reply. */
	assert_true(daemon_wait_fds(daemon_baseline() + 1, 2000));

	/* The connection is still good. */
	{
		char path[PATH_MAX];
		int f, d, srv, idx;
		struct sink *s = sink_new();

		tfile_create(path, 5000, 99);
		f = tfile_open(path, O_RDONLY);
		tcp_pair(true, &d, &srv);
		idx = sink_add(s, srv, NULL);
		assert_int_equal(sfd_client_sendfile(c, d, f, 0, 0, 0, 10000, &res), 0);
		assert_result(&res, SFD_STATUS_OK, 5000, 5000, SFD_METHOD_SENDFILE);
		close(d);
		assert_received(s, idx, f, 0, 5000);
		close(f);
		sink_free(s);
	}
	sfd_client_free(c);
}

/* A source file and a destination socket that would work. */
static void
good_pair(int *ret_dst, int *ret_srv, int *ret_src)
{
	char path[PATH_MAX];

	tfile_create(path, 64 * KiB, 98);
	*ret_src = tfile_open(path, O_RDONLY);
	tcp_pair(true, ret_dst, ret_srv);
}

static void
test_directory_source(void **state)
{
	int dst, srv, src, dir;

	(void)state;
	good_pair(&dst, &srv, &src);
	dir = tfile_open(harness_tmpdir(), O_RDONLY | O_DIRECTORY);
	expect_invalid(dst, dir, 0, 0, EISDIR);
	close(dir);
	close(dst);
	close(srv);
	close(src);
}

static void
test_write_only_source(void **state)
{
	char path[PATH_MAX];
	int dst, srv, src, wo;

	(void)state;
	good_pair(&dst, &srv, &src);
	tfile_create(path, 1000, 97);
	wo = tfile_open(path, O_WRONLY);
	expect_invalid(dst, wo, 0, 0, EBADF);
	/* Also where nothing would be read: at or past the end. */
	expect_invalid(dst, wo, 1000, 0, EBADF);
	expect_invalid(dst, wo, 5000, 10, EBADF);
	close(wo);
	close(dst);
	close(srv);
	close(src);
}

/* A character device never ends (/dev/zero): only with a count. */
static void
test_char_device_source(void **state)
{
	struct sfd_client *c;
	struct sfd_result res;
	int dst, srv, src, dev, idx;
	struct sink *s;

	(void)state;
	good_pair(&dst, &srv, &src);
	dev = tfile_open("/dev/zero", O_RDONLY);
	expect_invalid(dst, dev, 0, 0, EINVAL);
	c = client_open();
	s = sink_new();
	idx = sink_add(s, srv, NULL);
	/* The daemon's way (a small range to a non-blocking socket would
	 * be sent by the caller's own sendfile()). */
	assert_int_equal(sfd_client_sendfile(c, dst, dev, 0, 100000, SFD_NO_INLINE, 10000, &res),
	                 0);
	assert_result(&res, SFD_STATUS_OK, 100000, 100000, SFD_METHOD_SPLICE);
	close(dst);
	assert_true(sink_wait(s, idx, 10000));
	assert_int_equal(sink_bytes(s, idx), 100000);
	close(dev);
	close(src);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_read_only_destination(void **state)
{
	char path[PATH_MAX];
	int dst, srv, src, ro;

	(void)state;
	good_pair(&dst, &srv, &src);
	tfile_create(path, 1000, 96);
	ro = tfile_open(path, O_RDONLY);
	expect_invalid(ro, src, 0, 0, EBADF);
	close(ro);
	close(dst);
	close(srv);
	close(src);
}

static void
test_udp_destination(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int dst, srv, src, rx, udp;

	(void)state;
	good_pair(&dst, &srv, &src);
	/* A connected UDP socket: writable, but not a stream. */
	rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(rx >= 0);
	assert_int_equal(bind(rx, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(rx, (struct sockaddr *)&sa, &len), 0);
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(udp >= 0);
	assert_int_equal(connect(udp, (struct sockaddr *)&sa, sizeof(sa)), 0);
	expect_invalid(udp, src, 0, 0, EINVAL);
	close(udp);
	close(rx);
	close(dst);
	close(srv);
	close(src);
}

static void
test_seqpacket_destination(void **state)
{
	int dst, srv, src, sv[2];

	(void)state;
	good_pair(&dst, &srv, &src);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	expect_invalid(sv[0], src, 0, 0, EINVAL);
	close(sv[0]);
	close(sv[1]);
	close(dst);
	close(srv);
	close(src);
}

static void
test_o_path_source(void **state)
{
	char path[PATH_MAX];
	int dst, srv, src, op;

	(void)state;
	good_pair(&dst, &srv, &src);
	tfile_create(path, 1000, 95);
	op = tfile_open(path, O_PATH);
	expect_invalid(dst, op, 0, 0, EBADF);
	close(op);
	close(dst);
	close(srv);
	close(src);
}

static void
test_range_overflow(void **state)
{
	int dst, srv, src;

	(void)state;
	good_pair(&dst, &srv, &src);
	/* offset + count beyond the largest file offset. */
	expect_invalid(dst, src, 1, INT64_MAX, EOVERFLOW);
	expect_invalid(dst, src, INT64_MAX, 1, EOVERFLOW);
	expect_invalid(dst, src, 0, UINT64_MAX, EOVERFLOW);
	/* An offset that is no file offset at all. */
	expect_invalid(dst, src, (uint64_t)INT64_MAX + 1, 0, EINVAL);
	expect_invalid(dst, src, UINT64_MAX, 0, EINVAL);
	close(dst);
	close(srv);
	close(src);
}

/* The largest range that does not overflow is valid: a short source. */
static void
test_largest_range(void **state)
{
	struct sfd_client *c = client_open();
	struct sfd_result res;
	int dst, srv, src;

	(void)state;
	good_pair(&dst, &srv, &src);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, INT64_MAX, 0, 10000, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 64 * KiB, 64 * KiB, SFD_METHOD_SENDFILE);
	assert_true(res.flags & SFD_RESULT_SHORT_SOURCE);
	close(dst);
	close(srv);
	close(src);
	sfd_client_free(c);
}

/* Arguments the library refuses without asking the daemon. */
static void
test_library_refusals(void **state)
{
	struct sfd_client *c = client_open();
	struct sfd_result res = {.status = -1};
	uint64_t id = 0;
	int dst, srv, src, closed;

	(void)state;
	good_pair(&dst, &srv, &src);
	closed = dup(src);
	assert_true(closed >= 0);
	close(closed);

	assert_int_equal(sfd_client_sendfile(c, -1, src, 0, 0, 0, 1000, &res), -EBADF);
	assert_int_equal(sfd_client_sendfile(c, dst, -1, 0, 0, 0, 1000, &res), -EBADF);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, 0x80, 1000, &res), -EINVAL);
	/* A descriptor number that is not open: sendmsg(2) refuses it. */
	assert_int_equal(sfd_client_sendfile(c, dst, closed, 0, 0, 0, 1000, &res), -EBADF);
	assert_int_equal(res.status, -1);
	assert_int_equal(sfd_client_submit(c, -1, src, 0, 0, 0, NULL, &id), -EBADF);
	assert_int_equal(sfd_client_submit(c, dst, src, 0, 0, ~0u, NULL, &id), -EINVAL);
	assert_int_equal(sfd_client_submit(c, closed, src, 0, 0, 0, NULL, &id), -EBADF);
	assert_int_equal(id, 0);
	assert_int_equal(sfd_client_in_flight(c), 0);
	assert_int_equal(fd_pos(src), 0);

	/* The client still works. */
	{
		struct sink *s = sink_new();
		int idx = sink_add(s, srv, NULL);

		assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, 0, 10000, &res), 0);
		assert_result(&res, SFD_STATUS_OK, 64 * KiB, 64 * KiB, SFD_METHOD_SENDFILE);
		close(dst);
		assert_received(s, idx, src, 0, 64 * KiB);
		sink_free(s);
	}
	close(src);
	sfd_client_free(c);
}

/* No daemon at the path. */
static void
test_open_errors(void **state)
{
	char path[PATH_MAX + 10];
	struct sfd_client *c = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/nobody-here.sock", harness_tmpdir());
	assert_int_equal(sfd_client_open(path, &c), -ENOENT);
	memset(path, 'x', 200);
	path[200] = '\0';
	assert_int_equal(sfd_client_open(path, &c), -ENAMETOOLONG);
	assert_null(c);
}

/* ---- limits (a daemon allowing 4 requests in flight per connection) ---- */

static void
test_limit_in_flight(void **state)
{
	enum { LIMIT = 4 };
	const struct sink_opts paused = {.paused = true};
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct done_slot slot[LIMIT + 1];
	uint64_t id[LIMIT + 1];
	int src[LIMIT + 1], dst[LIMIT + 1], idx[LIMIT + 1];
	char path[PATH_MAX];
	unsigned done = 0;

	(void)state;
	memset(slot, 0, sizeof(slot));
	tfile_create(path, 32 * MiB, 94);
	for (int i = 0; i <= LIMIT; i++) {
		int srv;

		src[i] = tfile_open(path, O_RDONLY);
		tcp_pair(true, &dst[i], &srv);
		idx[i] = sink_add(s, srv, &paused);
		slot[i].counter = &done;
	}
	for (int i = 0; i < LIMIT; i++) {
		assert_int_equal(sfd_client_submit(c, dst[i], src[i], 0, 0, 0, &slot[i], &id[i]),
		                 0);
		assert_true(sink_wait_queued(s, idx[i], 1, 5000));
	}
	/* One more is refused: nothing sent, its descriptors closed. */
	assert_int_equal(
	        sfd_client_submit(c, dst[LIMIT], src[LIMIT], 0, 0, 0, &slot[LIMIT], &id[LIMIT]), 0);
	assert_true(pump(c, &done, 1, 5000));
	assert_true(slot[LIMIT].done);
	assert_int_equal(slot[LIMIT].res.status, SFD_STATUS_LIMIT);
	assert_int_equal(slot[LIMIT].res.error, EBUSY);
	assert_int_equal(slot[LIMIT].res.bytes_sent, 0);
	assert_int_equal(fd_pos(src[LIMIT]), 0);
	assert_true(daemon_wait_fds(daemon_baseline() + 1 + 2 * LIMIT, 2000));

	for (int i = 0; i < LIMIT; i++)
		assert_int_equal(sfd_client_cancel(c, id[i]), 0);
	assert_true(pump(c, &done, LIMIT + 1, 5000));
	for (int i = 0; i <= LIMIT; i++) {
		uint64_t sent = slot[i].res.bytes_sent;

		if (i < LIMIT)
			assert_int_equal(slot[i].res.status, SFD_STATUS_CANCELLED);
		assert_int_equal(fd_pos(src[i]), sent);
		sink_resume(s, idx[i]);
		close(dst[i]);
		assert_received(s, idx[i], src[i], 0, sent);
		close(src[i]);
	}
	sink_free(s);
	sfd_client_free(c);
	/* Below the limit again. */
	assert_daemon_serves();
}

int
main(int argc, char **argv)
{
	static const char *const limit_args[] = {"--max-in-flight", "4", NULL};
	const struct CMUnitTest tests[] = {
	        HTEST(test_directory_source),   HTEST(test_write_only_source),
	        HTEST(test_char_device_source), HTEST(test_read_only_destination),
	        HTEST(test_udp_destination),    HTEST(test_seqpacket_destination),
	        HTEST(test_o_path_source),      HTEST(test_range_overflow),
	        HTEST(test_largest_range),      HTEST(test_library_refusals),
	        HTEST(test_open_errors),
	};
	const struct CMUnitTest limit_tests[] = {
	        HTEST(test_limit_in_flight),
	};
	int failed;

	harness_init(argc, argv);
	failed = cmocka_run_group_tests_name("errors", tests, harness_group_setup,
	                                     harness_group_teardown);
	harness_daemon_args(limit_args);
	failed += cmocka_run_group_tests_name("limits", limit_tests, harness_group_setup,
	                                      harness_group_teardown);
	return failed ? 1 : 0;
}
