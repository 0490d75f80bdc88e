/*
 * test-validate.c - request field checks (a table) and descriptor
 * classification with real descriptors of every kind a client may pass,
 * checking that nothing about a descriptor changes while it is examined.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "macro.h"
#include "validate.h"
#include "helpers.h"

/* ---- requests ----------------------------------------------------------- */

#define SENDFILE(...)                                                                              \
	{                                                                                          \
		.op = WIRE_OP_SENDFILE, .fallback = true, __VA_ARGS__                              \
	}

static void
test_request_table(void **state)
{
	static const struct {
		const char *name;
		struct wire_request req;
		int want;
	} cases[] = {
	        {"to EOF", SENDFILE(.offset = 0), 0},
	        {"count 1", SENDFILE(.count = 1, .has_count = true), 0},
	        {"count 0", SENDFILE(.count = 0, .has_count = true), -EINVAL},
	        {"count 0 at an offset", SENDFILE(.offset = 10, .has_count = true), -EINVAL},
	        {"count absent, value ignored", SENDFILE(.count = 0, .has_count = false), 0},
	        {"no fallback", {.op = WIRE_OP_SENDFILE, .fallback = false}, 0},
	        {"offset INT64_MAX to EOF", SENDFILE(.offset = INT64_MAX), 0},
	        {"offset INT64_MAX + 1", SENDFILE(.offset = (uint64_t)INT64_MAX + 1), -EINVAL},
	        {"offset UINT64_MAX", SENDFILE(.offset = UINT64_MAX), -EINVAL},
	        {"offset past 2^63 with count",
	         SENDFILE(.offset = 1ull << 63, .count = 1, .has_count = true), -EINVAL},
	        {"end exactly INT64_MAX",
	         SENDFILE(.offset = INT64_MAX - 1, .count = 1, .has_count = true), 0},
	        {"end INT64_MAX + 1", SENDFILE(.offset = INT64_MAX, .count = 1, .has_count = true),
	         -EOVERFLOW},
	        {"count INT64_MAX", SENDFILE(.count = INT64_MAX, .has_count = true), 0},
	        {"count INT64_MAX + 1",
	         SENDFILE(.count = (uint64_t)INT64_MAX + 1, .has_count = true), -EOVERFLOW},
	        {"offset 1, count INT64_MAX",
	         SENDFILE(.offset = 1, .count = INT64_MAX, .has_count = true), -EOVERFLOW},
	        {"count UINT64_MAX", SENDFILE(.count = UINT64_MAX, .has_count = true), -EOVERFLOW},
	        {"offset + count wraps 2^64",
	         SENDFILE(.offset = 1ull << 62, .count = UINT64_MAX - (1ull << 61),
	                  .has_count = true),
	         -EOVERFLOW},
	        {"hand-off", SENDFILE(.close_when_done = true), 0},
	        {"hand-off with shutdown",
	         SENDFILE(.close_when_done = true, .shutdown_write = true), 0},
	        {"shutdown without hand-off", SENDFILE(.shutdown_write = true), -EINVAL},
	        {"ping", {.op = WIRE_OP_PING}, -EINVAL},
	        {"cancel", {.op = WIRE_OP_CANCEL, .target = 1}, -EINVAL},
	        {"no operation", {.op = WIRE_OP_NONE}, -EINVAL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *msg = "untouched";
		int r;

		print_message("case: %s\n", cases[i].name);
		r = validate_request(&cases[i].req, &msg);
		assert_int_equal(r, cases[i].want);
		if (r == 0) {
			assert_string_equal(msg, "untouched");
		} else {
			assert_non_null(msg);
			assert_string_not_equal(msg, "untouched");
			assert_true(strlen(msg) > 0);
		}
	}
}

/* ---- descriptors -------------------------------------------------------- */

/* Everything a check could change about a descriptor. */
struct fdstate {
	int fl, fd_flags;
	off_t pos;
	int pos_errno;
};

static void
fdstate_get(int fd, struct fdstate *s)
{
	s->fl = fcntl(fd, F_GETFL);
	s->fd_flags = fcntl(fd, F_GETFD);
	errno = 0;
	s->pos = lseek(fd, 0, SEEK_CUR);
	s->pos_errno = s->pos < 0 ? errno : 0;
}

struct fd_case {
	const char *name;
	int fd;
	int want_src, want_dst; /* 0 or a negative errno */
	enum fd_kind kind;      /* when accepted */
	bool nonblock;
	off_t size; /* of a source */
	/* A regular file's access mode may be left to the engine's first
	 * syscall (which then answers INVALID_ARGUMENT/EBADF before anything
	 * is sent, see test-xfer): validate_src() may accept it. */
	bool src_access_deferred;
};

static void
check_case(const struct fd_case *c)
{
	struct fdstate before, after;
	struct fdinfo info;
	const char *msg;
	int r;

	print_message("case: %s\n", c->name);
	for (int dst = 0; dst < 2; dst++) {
		int want = dst ? c->want_dst : c->want_src;

		fdstate_get(c->fd, &before);
		memset(&info, 0x5a, sizeof(info));
		msg = NULL;
		r = dst ? validate_dst(c->fd, &info, &msg) : validate_src(c->fd, &info, &msg);
		print_message("  %s: %d %s\n", dst ? "dst" : "src", r, msg ? msg : "");
		if (!dst && c->src_access_deferred && r == 0)
			want = 0;
		assert_int_equal(r, want);
		if (r == 0) {
			assert_int_equal(info.kind, c->kind);
			/* Whether a file blocks does not matter to the engine. */
			if (c->kind != FD_KIND_FILE)
				assert_int_equal(info.nonblock, c->nonblock);
			if (!dst)
				assert_int_equal(info.size, c->size);
		} else {
			/* Out-parameters are written only on success. */
			assert_int_equal(((unsigned char *)&info)[0], 0x5a);
			assert_non_null(msg);
		}
		fdstate_get(c->fd, &after);
		assert_int_equal(after.fl, before.fl);
		assert_int_equal(after.fd_flags, before.fd_flags);
		assert_int_equal(after.pos, before.pos);
		assert_int_equal(after.pos_errno, before.pos_errno);
	}
}

static void
test_regular_files(void **state)
{
	int rw = make_file(100, O_RDWR), ro = make_file(50, O_RDONLY);
	int wo = make_file(7, O_WRONLY), nb = make_file(1, O_RDONLY | O_NONBLOCK);
	int opath;
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
	opath = open(path, O_PATH | O_CLOEXEC);
	assert_true(opath >= 0);
	{
		const struct fd_case cases[] = {
		        {"file O_RDWR", rw, 0, 0, FD_KIND_FILE, false, 100},
		        {"file O_RDONLY", ro, 0, -EBADF, FD_KIND_FILE, false, 50},
		        {"file O_WRONLY", wo, -EBADF, 0, FD_KIND_FILE, false, 7, true},
		        {"file O_NONBLOCK", nb, 0, -EBADF, FD_KIND_FILE, true, 1},
		        {"file O_PATH", opath, -EBADF, -EBADF, FD_KIND_FILE, false, 100, true},
		};

		/* A position that is not 0, to see that it stays. */
		assert_int_equal(lseek(rw, 33, SEEK_SET), 33);
		assert_int_equal(lseek(ro, 5, SEEK_SET), 5);
		for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
			check_case(&cases[i]);
	}
	close(rw);
	close(ro);
	close(wo);
	close(nb);
	close(opath);
}

static void
test_unusable(void **state)
{
	const char *tmp = getenv("TMPDIR");
	int dir = open(tmp && *tmp ? tmp : "/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int path = open("/dev/null", O_PATH | O_CLOEXEC);
	int dirpath = open("/", O_PATH | O_CLOEXEC);
	int closed = dup_cloexec(0);
	const struct fd_case cases[] = {
	        {"directory", dir, -EISDIR, -EBADF},
	        {"O_PATH of a device", path, -EBADF, -EBADF},
	        {"O_PATH of a directory", dirpath, -EISDIR, -EBADF},
	};
	struct fdinfo info;
	const char *msg = NULL;

	assert_true(dir >= 0);
	assert_true(path >= 0);
	assert_true(dirpath >= 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		check_case(&cases[i]);

	close(closed);
	assert_int_equal(validate_src(closed, &info, &msg), -EBADF);
	assert_non_null(msg);
	assert_int_equal(validate_dst(closed, &info, &msg), -EBADF);
	assert_int_equal(validate_dst(-1, &info, &msg), -EBADF);
	close(dir);
	close(path);
	close(dirpath);
}

static void
test_pipes(void **state)
{
	int p[2], q[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);
	{
		const struct fd_case cases[] = {
		        {"pipe read end", p[0], 0, -EBADF, FD_KIND_PIPE, false, 0},
		        {"pipe write end", p[1], -EBADF, 0, FD_KIND_PIPE, false, 0},
		        {"non-blocking pipe read end", q[0], 0, -EBADF, FD_KIND_PIPE, true, 0},
		        {"non-blocking pipe write end", q[1], -EBADF, 0, FD_KIND_PIPE, true, 0},
		};

		for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
			check_case(&cases[i]);
	}
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

static void
test_sockets(void **state)
{
	int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int tcp_nb = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int st[2], nb[2], sp[2], dg[2];

	assert_true(tcp >= 0);
	assert_true(tcp_nb >= 0);
	assert_true(udp >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, nb), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg), 0);
	{
		const struct fd_case cases[] = {
		        {"TCP socket", tcp, 0, 0, FD_KIND_SOCKET, false, 0},
		        {"non-blocking TCP socket", tcp_nb, 0, 0, FD_KIND_SOCKET, true, 0},
		        {"UDP socket", udp, -EINVAL, -EINVAL},
		        {"unix stream socket", st[0], 0, 0, FD_KIND_SOCKET, false, 0},
		        {"non-blocking unix stream socket", nb[1], 0, 0, FD_KIND_SOCKET, true, 0},
		        {"unix seqpacket socket", sp[0], -EINVAL, -EINVAL},
		        {"unix datagram socket", dg[0], -EINVAL, -EINVAL},
		};

		for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
			check_case(&cases[i]);
	}
	close(tcp);
	close(tcp_nb);
	close(udp);
	close(st[0]);
	close(st[1]);
	close(nb[0]);
	close(nb[1]);
	close(sp[0]);
	close(sp[1]);
	close(dg[0]);
	close(dg[1]);
}

static void
test_char_devices(void **state)
{
	int rw = open("/dev/null", O_RDWR | O_CLOEXEC);
	int wo = open("/dev/null", O_WRONLY | O_CLOEXEC | O_NONBLOCK);
	int ro = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	const struct fd_case cases[] = {
	        {"/dev/null O_RDWR", rw, 0, 0, FD_KIND_CHAR, false, 0},
	        {"/dev/null O_WRONLY|O_NONBLOCK", wo, -EBADF, 0, FD_KIND_CHAR, true, 0},
	        {"/dev/zero O_RDONLY", ro, 0, -EBADF, FD_KIND_CHAR, false, 0},
	};

	assert_true(rw >= 0);
	assert_true(wo >= 0);
	assert_true(ro >= 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		check_case(&cases[i]);
	close(rw);
	close(wo);
	close(ro);
}

/* The nonblock flag is read from the shared description: a dup sees it, and
 * a later change by the owner shows on the next check. */
static void
test_nonblock_shared(void **state)
{
	int sv[2], d;
	struct fdinfo info;
	const char *msg;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	d = dup_cloexec(sv[0]);
	assert_int_equal(validate_dst(d, &info, &msg), 0);
	assert_false(info.nonblock);
	set_nonblock(sv[0], true);
	assert_int_equal(validate_dst(d, &info, &msg), 0);
	assert_true(info.nonblock);
	set_nonblock(sv[0], false);
	assert_int_equal(validate_src(d, &info, &msg), 0);
	assert_false(info.nonblock);
	close(d);
	close(sv[0]);
	close(sv[1]);
}

/* The size is the file's size now, whatever the position. */
static void
test_file_size(void **state)
{
	int fd = make_file(4096, O_RDWR);
	struct fdinfo info;
	const char *msg;

	assert_int_equal(validate_src(fd, &info, &msg), 0);
	assert_int_equal(info.size, 4096);
	assert_int_equal(ftruncate(fd, 10), 0);
	assert_int_equal(validate_src(fd, &info, &msg), 0);
	assert_int_equal(info.size, 10);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(validate_src(fd, &info, &msg), 0);
	assert_int_equal(info.size, 0);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_request_table),   fd_test(test_regular_files),
	        fd_test(test_unusable),        fd_test(test_pipes),
	        fd_test(test_sockets),         fd_test(test_char_devices),
	        fd_test(test_nonblock_shared), fd_test(test_file_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
