/*
 * helpers.h - shared by the unit tests: the open-descriptor check every test
 * runs, temporary files with known content, and a thread that drains a
 * socket. Header-only (static inline) so that each test executable stays one
 * translation unit plus the module under test.
 *
 * Include after <cmocka.h>.
 */
#ifndef SFD_TEST_HELPERS_H
#define SFD_TEST_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the open descriptor set ------------------------------------------- */

#define FDSET_MAX 4096

struct fdset {
	uint64_t bits[FDSET_MAX / 64];
	bool overflow; /* a descriptor >= FDSET_MAX was open */
};

/* fdset_snapshot() - the descriptors open in this process, read from
 * /proc/self/fd (the directory's own descriptor excluded). */
static inline void
fdset_snapshot(struct fdset *ret)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	memset(ret, 0, sizeof(*ret));
	assert_non_null(d);
	while ((de = readdir(d))) {
		char *end;
		long fd;

		if (de->d_name[0] == '.')
			continue;
		fd = strtol(de->d_name, &end, 10);
		if (*end || fd == dirfd(d))
			continue;
		if (fd >= FDSET_MAX)
			ret->overflow = true;
		else
			ret->bits[fd / 64] |= UINT64_C(1) << (fd % 64);
	}
	closedir(d);
}

static inline bool
fdset_has(const struct fdset *s, int fd)
{
	return fd >= 0 && fd < FDSET_MAX && (s->bits[fd / 64] >> (fd % 64)) & 1;
}

static inline int
fdset_count(const struct fdset *s)
{
	int n = 0;

	for (size_t i = 0; i < FDSET_MAX / 64; i++)
		n += __builtin_popcountll(s->bits[i]);
	return n;
}

/* Compare two snapshots, naming every descriptor that differs. */
static inline bool
fdset_same(const struct fdset *before, const struct fdset *now)
{
	bool same = before->overflow == now->overflow;

	for (int fd = 0; fd < FDSET_MAX; fd++) {
		bool a = fdset_has(before, fd), b = fdset_has(now, fd);

		if (a == b)
			continue;
		same = false;
		print_error("descriptor %d %s\n", fd,
		            b ? "leaked (open now, not before)" : "closed (open before, not now)");
	}
	return same;
}

/* Fail unless the open descriptors are those of @before. */
static inline void
assert_fdset_unchanged(const struct fdset *before)
{
	struct fdset now;

	fdset_snapshot(&now);
	assert_true(fdset_same(before, &now));
}

/* cmocka fixtures: every test checks the open descriptor set before/after. */
static inline int
fdcheck_setup(void **state)
{
	struct fdset *s = malloc(sizeof(*s));

	if (!s)
		return -1;
	fdset_snapshot(s);
	*state = s;
	return 0;
}

static inline int
fdcheck_teardown(void **state)
{
	struct fdset *s = *state;

	assert_fdset_unchanged(s);
	free(s);
	return 0;
}

#define fd_test(f) cmocka_unit_test_setup_teardown(f, fdcheck_setup, fdcheck_teardown)

/* ---- descriptors -------------------------------------------------------- */

static inline bool
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static inline bool
fd_is_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	assert_true(fl >= 0);
	return fl & FD_CLOEXEC;
}

static inline void
set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), 0);
}

static inline int
dup_cloexec(int fd)
{
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	assert_true(r >= 0);
	return r;
}

static inline off_t
fd_position(int fd)
{
	return lseek(fd, 0, SEEK_CUR);
}

static inline void
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		p += n;
		len -= n;
	}
}

/* ---- files with known content ------------------------------------------ */

/* The byte at @i of every test file: not periodic over any small power of
 * two, so a misplaced chunk shows. */
static inline uint8_t
pattern_byte(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 9) * 7 + (i >> 17));
}

static inline void
pattern_fill(uint8_t *buf, size_t len, uint64_t start)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_byte(start + i);
}

/* Index of the first byte of @buf that is not the pattern from @start, or
 * @len when all are. */
static inline size_t
pattern_mismatch(const uint8_t *buf, size_t len, uint64_t start)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern_byte(start + i))
			return i;
	return len;
}

/*
 * make_file() - an unlinked temporary regular file holding @size pattern
 * bytes, open with @flags (O_RDWR, O_RDONLY...), position 0. Close-on-exec.
 */
static inline int
make_file(size_t size, int flags)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	uint8_t *buf = malloc(size ? size : 1);
	int fd, ro;

	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/sfd-test-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	pattern_fill(buf, size, 0);
	write_all(fd, buf, size);
	free(buf);
	if ((flags & O_ACCMODE) != O_RDWR || (flags & ~O_ACCMODE)) {
		ro = open(path, flags | O_CLOEXEC);
		assert_true(ro >= 0);
		close(fd);
		fd = ro;
	}
	assert_int_equal(unlink(path), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* ---- draining a socket in a thread -------------------------------------- */

struct sink {
	pthread_t thread;
	int fd;
	int delay_ms;        /* wait this long before the first read */
	size_t hangup_after; /* 0, or shut the socket down after this many bytes */
	uint8_t *data;
	size_t len, cap;
	int error; /* errno of a failed read, 0 at EOF */
};

static inline void *
sink_main(void *arg)
{
	struct sink *s = arg;

	if (s->delay_ms > 0) {
		struct timespec ts = {s->delay_ms / 1000, (s->delay_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
	for (;;) {
		ssize_t n;

		if (s->cap - s->len < 65536) {
			size_t ncap = s->cap ? s->cap * 2 : 1 << 20;
			uint8_t *p = realloc(s->data, ncap);

			if (!p) {
				s->error = ENOMEM;
				return NULL;
			}
			s->data = p;
			s->cap = ncap;
		}
		n = read(s->fd, s->data + s->len, s->cap - s->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			s->error = errno;
			return NULL;
		}
		if (n == 0)
			return NULL;
		s->len += n;
		if (s->hangup_after && s->len >= s->hangup_after) {
			/* Like a peer that closes: the writer gets EPIPE. */
			shutdown(s->fd, SHUT_RDWR);
			return NULL;
		}
	}
}

/* sink_start() - read @fd (blocking) to EOF in a new thread. @fd is borrowed:
 * sink_join() does not close it. */
static inline void
sink_start_ex(struct sink *s, int fd, int delay_ms, size_t hangup_after)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->delay_ms = delay_ms;
	s->hangup_after = hangup_after;
	assert_int_equal(pthread_create(&s->thread, NULL, sink_main, s), 0);
}

static inline void
sink_start(struct sink *s, int fd, int delay_ms)
{
	sink_start_ex(s, fd, delay_ms, 0);
}

static inline void
sink_join(struct sink *s)
{
	assert_int_equal(pthread_join(s->thread, NULL), 0);
	assert_int_equal(s->error, 0);
}

static inline void
sink_free(struct sink *s)
{
	free(s->data);
	s->data = NULL;
}

/* Monotonic milliseconds. */
static inline int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
