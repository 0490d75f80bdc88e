/*
 * test-sendfile.c - one transfer at a time through libsendfiled against a real
 * daemon: what the receiver gets, what the reply says, where the source's file
 * position is left, for every kind of source and destination the daemon
 * serves, and the blocking call's timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* A transfer from a fresh file to a fresh TCP receiver. */
struct setup {
	char path[PATH_MAX];
	uint64_t size;
	int src;
	int dst; /* the client's end: the destination handed to the daemon */
	int dst_flags;
	struct sink *sink;
	int idx;
	struct sfd_client *c;
};

static void
setup_file(struct setup *t, uint64_t size, uint64_t seed, bool nonblock, const struct sink_opts *o)
{
	int srv;

	memset(t, 0, sizeof(*t));
	t->size = size;
	tfile_create(t->path, size, seed);
	t->src = tfile_open(t->path, O_RDONLY);
	tcp_pair(nonblock, &t->dst, &srv);
	t->dst_flags = fd_flags(t->dst);
	t->sink = sink_new();
	t->idx = sink_add(t->sink, srv, o);
	t->c = client_open();
}

/* Close our end of the destination: the receiver then sees end of file once
 * the daemon has closed its duplicate too. */
static void
end_stream(struct setup *t)
{
	/* The daemon never changes the destination's flags (O_NONBLOCK). */
	assert_int_equal(fd_flags(t->dst), t->dst_flags);
	close(t->dst);
	t->dst = -1;
}

static void
teardown_file(struct setup *t)
{
	if (t->dst >= 0)
		close(t->dst);
	close(t->src);
	sink_free(t->sink);
	sfd_client_free(t->c);
}

static void
whole_file(bool nonblock)
{
	struct setup t;
	struct sfd_result res;

	setup_file(&t, 8 * MiB + 4321, 1, nonblock, NULL);
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 0, 0, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, t.size, t.size, SFD_METHOD_SENDFILE);
	assert_int_equal(res.error, 0);
	assert_int_equal(res.flags, 0);
	assert_int_equal(fd_pos(t.src), t.size);
	end_stream(&t);
	assert_received(t.sink, t.idx, t.src, 0, t.size);
	teardown_file(&t);
}

static void
test_whole_file_nonblocking_dst(void **state)
{
	(void)state;
	whole_file(true);
}

/* A blocking destination: served on a worker thread (test-concurrency shows
 * that it does not hold the others up). */
static void
test_whole_file_blocking_dst(void **state)
{
	(void)state;
	whole_file(false);
}

/* A file that is not in the page cache: read on a worker thread, so that the
 * disk does not stall the loop; the result is the same. */
static void
test_cold_file(void **state)
{
	struct setup t;
	struct sfd_result res;

	(void)state;
	setup_file(&t, 32 * MiB + 3, 23, true, NULL);
	if (!tfile_make_cold(t.path)) {
		teardown_file(&t);
		skip();
	}
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 100, 0, 0, 20000, &res), 0);
	assert_result(&res, SFD_STATUS_OK, t.size - 100, t.size, SFD_METHOD_SENDFILE);
	assert_int_equal(res.flags, 0);
	assert_int_equal(fd_pos(t.src), t.size);
	end_stream(&t);
	assert_received(t.sink, t.idx, t.src, 100, t.size - 100);
	teardown_file(&t);
}

static void
test_offset_and_count(void **state)
{
	struct setup t;
	struct sfd_result res;
	const uint64_t off = 12345, count = MiB + 7;

	(void)state;
	setup_file(&t, 3 * MiB, 2, true, NULL);
	/* The position before does not matter: the offset is explicit. */
	assert_int_equal(lseek(t.src, 999, SEEK_SET), 999);
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, off, count, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, count, off + count, SFD_METHOD_SENDFILE);
	assert_int_equal(res.flags & SFD_RESULT_SHORT_SOURCE, 0);
	assert_int_equal(fd_pos(t.src), off + count);
	end_stream(&t);
	assert_received(t.sink, t.idx, t.src, off, count);
	teardown_file(&t);
}

static void
test_count_past_eof(void **state)
{
	struct setup t;
	struct sfd_result res;

	(void)state;
	setup_file(&t, 100000, 3, true, NULL);
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 90000, 50000, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 10000, 100000, SFD_METHOD_SENDFILE);
	assert_true(res.flags & SFD_RESULT_SHORT_SOURCE);
	assert_int_equal(fd_pos(t.src), 100000);
	end_stream(&t);
	assert_received(t.sink, t.idx, t.src, 90000, 10000);
	teardown_file(&t);
}

/* Beyond any ext4 file (16 TiB), within a file offset. */
#define HUGE_OFFSET ((uint64_t)1 << 62)

static void
test_offset_past_eof(void **state)
{
	struct setup t;
	struct sfd_result res;

	(void)state;
	setup_file(&t, 1000, 4, true, NULL);
	assert_int_equal(lseek(t.src, 77, SEEK_SET), 77);

	/* To end of file from beyond it: nothing, and the position is
	 * untouched because nothing was sent. */
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 5000, 0, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 0, 5000, SFD_METHOD_NONE);
	assert_int_equal(fd_pos(t.src), 77);

	/* With a count: the source ends before the range does. */
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 5000, 10, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 0, 5000, SFD_METHOD_NONE);
	assert_true(res.flags & SFD_RESULT_SHORT_SOURCE);
	assert_int_equal(fd_pos(t.src), 77);

	/* Exactly at end of file. */
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 1000, 0, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 0, 1000, SFD_METHOD_NONE);
	assert_int_equal(fd_pos(t.src), 77);

	/* Past the largest file the file system can hold (16 TiB on ext4):
	 * the same answer, whatever the file system. */
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, HUGE_OFFSET, 10, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 0, HUGE_OFFSET, SFD_METHOD_NONE);
	assert_true(res.flags & SFD_RESULT_SHORT_SOURCE);
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, HUGE_OFFSET, 0, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 0, HUGE_OFFSET, SFD_METHOD_NONE);
	assert_int_equal(res.flags, 0);
	assert_int_equal(fd_pos(t.src), 77);

	end_stream(&t);
	assert_received(t.sink, t.idx, t.src, 0, 0);
	teardown_file(&t);
}

static void
test_empty_file(void **state)
{
	struct setup t;
	struct sfd_result res;

	(void)state;
	setup_file(&t, 0, 5, true, NULL);
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 0, 0, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 0, 0, SFD_METHOD_NONE);
	assert_int_equal(res.flags, 0);
	assert_int_equal(fd_pos(t.src), 0);
	/* A count on an empty file is a short source. */
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 0, 4096, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 0, 0, SFD_METHOD_NONE);
	assert_true(res.flags & SFD_RESULT_SHORT_SOURCE);
	assert_int_equal(fd_pos(t.src), 0);
	/* Also from past the file system's largest file. */
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, HUGE_OFFSET, 4096, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 0, HUGE_OFFSET, SFD_METHOD_NONE);
	assert_true(res.flags & SFD_RESULT_SHORT_SOURCE);
	assert_int_equal(fd_pos(t.src), 0);
	end_stream(&t);
	assert_received(t.sink, t.idx, t.src, 0, 0);
	teardown_file(&t);
}

/* ---- stream sources -------------------------------------------------------- */

/* Writes @size random bytes into a pipe or socket from a thread, hashing them,
 * then closes its end. */
struct feeder {
	pthread_t thread;
	int fd;
	uint64_t size;
	uint64_t seed;
	uint64_t written;
	uint8_t digest[32];
};

static void *
feed(void *arg)
{
	struct feeder *f = arg;
	uint64_t st = f->seed;
	struct sha256 h;
	char buf[64 * 1024];

	sha256_init(&h);
	while (f->written < f->size) {
		size_t k = sizeof(buf);

		if (f->size - f->written < k)
			k = (size_t)(f->size - f->written);
		fill_random(buf, k, &st);
		sha256_update(&h, buf, k);
		for (size_t off = 0; off < k;) {
			ssize_t n = write(f->fd, buf + off, k - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				goto out;
			off += (size_t)n;
			f->written += (uint64_t)n;
		}
	}
out:
	sha256_final(&h, f->digest);
	close(f->fd);
	f->fd = -1;
	return NULL;
}

static void
feeder_start(struct feeder *f, int fd, uint64_t size, uint64_t seed)
{
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->size = size;
	f->seed = seed * 0x9e3779b97f4a7c15ULL + 7;
	assert_int_equal(pthread_create(&f->thread, NULL, feed, f), 0);
}

static void
feeder_join(struct feeder *f)
{
	assert_int_equal(pthread_join(f->thread, NULL), 0);
	assert_int_equal(f->written, f->size);
}

/*
 * Send a whole stream source (@src, fed through @feed_fd) to a TCP receiver
 * and check that the receiver got exactly what the feeder wrote.
 */
static void
stream_source(int src, int feed_fd, bool dst_nonblock, unsigned flags, uint64_t size)
{
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result res;
	struct feeder f;
	uint8_t got[32];
	int dst, srv, idx, src_flags, dst_flags;

	tcp_pair(dst_nonblock, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	src_flags = fd_flags(src);
	dst_flags = fd_flags(dst);
	feeder_start(&f, feed_fd, size, size);

	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, flags, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, size, size, SFD_METHOD_SPLICE);
	assert_int_equal(res.flags, 0);
	assert_int_equal(fd_flags(src), src_flags);
	assert_int_equal(fd_flags(dst), dst_flags);
	feeder_join(&f);

	close(dst);
	assert_true(sink_wait(s, idx, 20000));
	assert_int_equal(sink_bytes(s, idx), size);
	sink_digest(s, idx, got);
	assert_memory_equal(got, f.digest, 32);
	close(src);
	sink_free(s);
	sfd_client_free(c);
}

/* A blocking pipe: served on a worker. */
static void
test_pipe_source(void **state)
{
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	stream_source(p[0], p[1], true, 0, 3 * MiB + 17);
}

/* A non-blocking pipe and a non-blocking destination: served on the loop,
 * waiting for the pipe to be readable. Zero-copy, so no fallback needed. */
static void
test_pipe_source_nonblocking_no_fallback(void **state)
{
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	stream_source(p[0], p[1], true, SFD_NO_FALLBACK, 3 * MiB + 17);
}

/* A pipe to a blocking destination, without fallback. */
static void
test_pipe_source_blocking_dst_no_fallback(void **state)
{
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	stream_source(p[0], p[1], false, SFD_NO_FALLBACK, 2 * MiB + 5);
}

static void
test_unix_socket_source(void **state)
{
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	stream_source(sv[0], sv[1], true, 0, 2 * MiB + 99);
}

static void
test_tcp_socket_source_nonblocking_no_fallback(void **state)
{
	int a, b;

	(void)state;
	/* a: non-blocking, read by the daemon; b: written by the feeder. */
	tcp_pair(true, &a, &b);
	stream_source(a, b, true, SFD_NO_FALLBACK, 2 * MiB + 3);
}

static void
test_tcp_socket_source_blocking(void **state)
{
	int a, b;

	(void)state;
	tcp_pair(false, &a, &b);
	stream_source(a, b, false, 0, MiB + 1);
}

/* A pipe or socket has no offset: asking for one is refused. */
static void
test_stream_source_with_offset(void **state)
{
	struct sfd_client *c = client_open();
	struct sfd_result res;
	int p[2], dst, srv;

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	tcp_pair(true, &dst, &srv);
	assert_int_equal(write(p[1], "abc", 3), 3);
	assert_int_equal(sfd_client_sendfile(c, dst, p[0], 1, 0, 0, -1, &res), 0);
	assert_int_equal(res.status, SFD_STATUS_INVALID_ARGUMENT);
	assert_int_equal(res.error, ESPIPE);
	assert_int_equal(res.bytes_sent, 0);
	/* Nothing was taken from the pipe. */
	{
		char buf[8];

		assert_int_equal(read(p[0], buf, sizeof(buf)), 3);
	}
	close(p[0]);
	close(p[1]);
	close(dst);
	close(srv);
	sfd_client_free(c);
}

/* Read what a stream source holds now, without waiting for more than 2 s
 * (a test must fail, not hang, when the bytes are gone). */
static ssize_t
read_now(int fd, void *buf, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, 2000) != 1)
		return -1;
	return read(fd, buf, len);
}

/*
 * A count on a stream source takes exactly that many bytes from it: the rest
 * stays readable. Past the end of the stream: what there is, a short source.
 */
static void
stream_count(int src, int wr)
{
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result res;
	char data[100], rest[100];
	uint64_t st = 5;
	int dst, srv, idx;

	fill_random(data, sizeof(data), &st);
	assert_int_equal(write(wr, data, sizeof(data)), (ssize_t)sizeof(data));
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 40, SFD_NO_FALLBACK, 5000, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 40, 40, SFD_METHOD_SPLICE);
	assert_int_equal(res.flags, 0);
	/* The other 60 bytes are still in the source, untouched. */
	assert_int_equal(read_now(src, rest, sizeof(rest)), 60);
	assert_memory_equal(rest, data + 40, 60);

	/* 30 more, the writer gone, and a count of 1000. */
	assert_int_equal(write(wr, data, 30), 30);
	close(wr);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 1000, 0, 5000, &res), 0);
	assert_result(&res, SFD_STATUS_OK, 30, 30, SFD_METHOD_SPLICE);
	assert_true(res.flags & SFD_RESULT_SHORT_SOURCE);

	close(dst);
	assert_true(sink_wait(s, idx, 5000));
	assert_int_equal(sink_bytes(s, idx), 70);
	{
		struct sha256 h;
		uint8_t want[32], got[32];

		sha256_init(&h);
		sha256_update(&h, data, 40);
		sha256_update(&h, data, 30);
		sha256_final(&h, want);
		sink_digest(s, idx, got);
		assert_memory_equal(got, want, 32);
	}
	close(src);
	sink_free(s);
	sfd_client_free(c);
}

static void
test_pipe_source_count(void **state)
{
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	stream_count(p[0], p[1]);
}

static void
test_socket_source_count(void **state)
{
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	stream_count(sv[0], sv[1]);
}

/* A pipe as destination, read by the receiver: non-blocking (the loop) and
 * blocking (a worker). */
static void
test_pipe_destination(void **state)
{
	char path[PATH_MAX];
	const uint64_t size = 3 * MiB + 11;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result res;
	int src;

	(void)state;
	tfile_create(path, size, 20);
	src = tfile_open(path, O_RDONLY);
	for (int nonblock = 0; nonblock < 2; nonblock++) {
		int p[2], idx, fl;

		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		if (nonblock)
			assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
		fl = fd_flags(p[1]);
		idx = sink_add(s, p[0], NULL);
		assert_int_equal(sfd_client_sendfile(c, p[1], src, 7, 0, 0, 10000, &res), 0);
		assert_result(&res, SFD_STATUS_OK, size - 7, size, SFD_METHOD_SENDFILE);
		assert_int_equal(fd_pos(src), size);
		assert_int_equal(fd_flags(p[1]), fl);
		close(p[1]);
		assert_received(s, idx, src, 7, size - 7);
	}
	close(src);
	sink_free(s);
	sfd_client_free(c);
}

/* The receiver is gone before the request (and has said so with a reset):
 * nothing sent, the position kept. */
static void
test_peer_already_closed(void **state)
{
	struct setup t;
	struct sfd_result res;

	(void)state;
	setup_file(&t, MiB, 21, true, NULL);
	sink_free(t.sink);
	t.sink = NULL;
	/* The first write to a closed peer still succeeds; it answers with a
	 * reset, after which every write fails. */
	assert_int_equal(write(t.dst, "x", 1), 1);
	sleep_ms(50);
	assert_int_equal(lseek(t.src, 5, SEEK_SET), 5);
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 0, 0, 0, 5000, &res), 0);
	assert_result(&res, SFD_STATUS_PEER_CLOSED, 0, 0, SFD_METHOD_NONE);
	assert_true(res.error == EPIPE || res.error == ECONNRESET);
	assert_int_equal(fd_pos(t.src), 5);
	teardown_file(&t);
}

/*
 * The source shrinks while it is being sent: the transfer ends at the new end
 * of file with a short source, without spinning, and the receiver gets the
 * file as it now is.
 */
static void
test_source_truncated_during_transfer(void **state)
{
	const struct sink_opts paused = {.paused = true};
	struct setup t;
	struct done_slot slot = {0};
	unsigned done = 0;
	uint64_t id, sent, cut;
	int outq = 0, fd;

	(void)state;
	setup_file(&t, 64 * MiB, 22, true, &paused);
	slot.counter = &done;
	assert_int_equal(sfd_client_submit(t.c, t.dst, t.src, 0, 0, 0, &slot, &id), 0);
	assert_true(sink_wait_queued(t.sink, t.idx, 1, 5000));
	/* What the daemon has sent sits in the two socket buffers: wait until
	 * they are full (the count stops growing), then cut the file beyond. */
	sent = 0;
	for (int64_t end = now_ms() + 5000;;) {
		uint64_t before = sent;

		sleep_ms(30);
		assert_int_equal(ioctl(t.dst, SIOCOUTQ, &outq), 0);
		sent = (uint64_t)outq + sink_queued(t.sink, t.idx);
		if (sent == before || now_ms() > end)
			break;
	}
	assert_int_equal(sfd_client_dispatch(t.c, harness_on_done), 0);
	cut = sent + 2 * MiB;
	assert_true(cut < t.size);
	fd = tfile_open(t.path, O_WRONLY);
	assert_int_equal(ftruncate(fd, (off_t)cut), 0);
	close(fd);

	sink_resume(t.sink, t.idx);
	assert_true(pump(t.c, &done, 1, 10000));
	assert_result(&slot.res, SFD_STATUS_OK, cut, cut, SFD_METHOD_SENDFILE);
	assert_true(slot.res.flags & SFD_RESULT_SHORT_SOURCE);
	assert_int_equal(fd_pos(t.src), cut);
	end_stream(&t);
	assert_received(t.sink, t.idx, t.src, 0, cut);
	teardown_file(&t);
}

/* ---- the user-space fallback ---------------------------------------------- */

/* Does the kernel refuse zero-copy from this file? (Newer kernels splice
 * more /proc files; the test needs one they do not.) */
static bool
zero_copy_refused(int fd)
{
	int sv[2];
	off_t off = 0;
	ssize_t n;
	int err;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	n = sendfile(sv[0], fd, &off, 16);
	err = errno;
	close(sv[0]);
	close(sv[1]);
	return n < 0 && err == EINVAL;
}

static void
test_proc_source(void **state)
{
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result res;
	char content[65536];
	ssize_t len;
	int src, dst, srv, idx;

	(void)state;
	/* This process's command line: stable while the test runs. */
	src = tfile_open("/proc/self/cmdline", O_RDONLY);
	if (!zero_copy_refused(src)) {
		close(src);
		sink_free(s);
		sfd_client_free(c);
		skip();
	}
	len = pread(src, content, sizeof(content), 0);
	assert_true(len > 0);

	/* Without fallback: refused, nothing sent, position untouched. */
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, SFD_NO_FALLBACK, -1, &res), 0);
	assert_int_equal(res.status, SFD_STATUS_NOT_AVAILABLE);
	assert_int_equal(res.error, EINVAL);
	assert_int_equal(res.bytes_sent, 0);
	assert_int_equal(res.final_offset, 0);
	assert_int_equal(fd_pos(src), 0);
	close(dst);
	assert_received(s, idx, src, 0, 0);

	/* With fallback: copied through user space. */
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, (uint64_t)len, (uint64_t)len, SFD_METHOD_READ_WRITE);
	assert_int_equal(fd_pos(src), len);
	close(dst);
	assert_received(s, idx, src, 0, (uint64_t)len);

	/* And a range of it, to a blocking destination (a worker). */
	if (len > 3) {
		tcp_pair(false, &dst, &srv);
		idx = sink_add(s, srv, NULL);
		assert_int_equal(
		        sfd_client_sendfile(c, dst, src, 1, (uint64_t)len - 2, 0, -1, &res), 0);
		assert_result(&res, SFD_STATUS_OK, (uint64_t)len - 2, (uint64_t)len - 1,
		              SFD_METHOD_READ_WRITE);
		assert_int_equal(fd_pos(src), len - 1);
		close(dst);
		assert_received(s, idx, src, 1, (uint64_t)len - 2);
	}

	close(src);
	sink_free(s);
	sfd_client_free(c);
}

static void
assert_file_is(const char *path, const char *prefix, int src, uint64_t size)
{
	int fd = tfile_open(path, O_RDONLY);
	size_t plen = strlen(prefix);
	uint8_t want[32], got[32];
	char head[64];
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, plen + size);
	assert_int_equal(pread(fd, head, plen, 0), (ssize_t)plen);
	assert_memory_equal(head, prefix, plen);
	range_sha256(src, 0, size, want);
	range_sha256(fd, plen, size, got);
	assert_memory_equal(got, want, 32);
	close(fd);
}

static void
test_append_dst(void **state)
{
	static const char prefix[] = "existing content\n";
	struct sfd_client *c = client_open();
	char src_path[PATH_MAX], dst_path[PATH_MAX];
	const uint64_t size = MiB + 5;
	struct sfd_result res;
	int src, dst;

	(void)state;
	tfile_create(src_path, size, 6);
	src = tfile_open(src_path, O_RDONLY);
	snprintf(dst_path, sizeof(dst_path), "%s/append-dst", harness_tmpdir());
	dst = tfile_open(dst_path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND);
	assert_int_equal(write(dst, prefix, strlen(prefix)), (ssize_t)strlen(prefix));

	/* Without fallback: sendfile(2) refuses O_APPEND; nothing written. */
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, SFD_NO_FALLBACK, -1, &res), 0);
	assert_int_equal(res.status, SFD_STATUS_NOT_AVAILABLE);
	assert_int_equal(res.error, EINVAL);
	assert_int_equal(res.bytes_sent, 0);
	assert_int_equal(res.final_offset, 0);
	assert_int_equal(fd_pos(src), 0);
	assert_file_is(dst_path, prefix, src, 0);

	/* With fallback: appended by read/write. */
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, 0, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, size, size, SFD_METHOD_READ_WRITE);
	assert_int_equal(fd_pos(src), size);
	assert_true(fd_flags(dst) & O_APPEND);
	assert_file_is(dst_path, prefix, src, size);

	close(dst);
	close(src);
	sfd_client_free(c);
}

/*
 * A stream source to an O_APPEND file: splice(2) refuses the destination, so
 * the bytes go through user space (with fallback) and every one of them must
 * arrive, or (without fallback) none may be taken from the source.
 */
static void
stream_to_append(int src, int wr, bool fallback)
{
	static const char prefix[] = "log:\n";
	const uint64_t size = MiB + 77;
	struct sfd_client *c = client_open();
	char dst_path[PATH_MAX];
	struct sfd_result res;
	uint8_t got[32];
	struct stat sb;
	int dst, rd;

	snprintf(dst_path, sizeof(dst_path), "%s/append-stream-%d-%d", harness_tmpdir(), src,
	         fallback);
	dst = tfile_open(dst_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND);
	assert_int_equal(write(dst, prefix, strlen(prefix)), (ssize_t)strlen(prefix));

	if (!fallback) {
		/* Refused, and the source keeps its bytes. */
		char data[100], back[100];
		uint64_t st = 9;

		fill_random(data, sizeof(data), &st);
		assert_int_equal(write(wr, data, sizeof(data)), (ssize_t)sizeof(data));
		assert_int_equal(
		        sfd_client_sendfile(c, dst, src, 0, 0, SFD_NO_FALLBACK, 5000, &res), 0);
		assert_int_equal(res.status, SFD_STATUS_NOT_AVAILABLE);
		assert_int_equal(res.bytes_sent, 0);
		assert_int_equal(res.method, SFD_METHOD_NONE);
		assert_int_equal(read_now(src, back, sizeof(back)), (ssize_t)sizeof(back));
		assert_memory_equal(back, data, sizeof(data));
		close(wr);
		close(dst);
		assert_file_is(dst_path, prefix, src, 0);
	} else {
		/* Every byte, appended through user space. */
		struct feeder f;

		feeder_start(&f, wr, size, 33);
		assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, 0, 10000, &res), 0);
		feeder_join(&f);
		assert_result(&res, SFD_STATUS_OK, size, size, SFD_METHOD_READ_WRITE);
		close(dst);
		rd = tfile_open(dst_path, O_RDONLY);
		assert_int_equal(fstat(rd, &sb), 0);
		assert_int_equal(sb.st_size, strlen(prefix) + size);
		range_sha256(rd, strlen(prefix), size, got);
		assert_memory_equal(got, f.digest, 32);
		close(rd);
	}
	close(src);
	sfd_client_free(c);
}

static void
append_from_pipe(bool fallback)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	stream_to_append(p[0], p[1], fallback);
}

static void
append_from_socket(bool fallback)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	stream_to_append(sv[0], sv[1], fallback);
}

static void
test_pipe_source_append_dst(void **state)
{
	(void)state;
	append_from_pipe(true);
}

static void
test_pipe_source_append_dst_no_fallback(void **state)
{
	(void)state;
	append_from_pipe(false);
}

static void
test_socket_source_append_dst(void **state)
{
	(void)state;
	append_from_socket(true);
}

static void
test_socket_source_append_dst_no_fallback(void **state)
{
	(void)state;
	append_from_socket(false);
}

/* A regular file as destination (not O_APPEND): sendfile(2) serves it. */
static void
test_regular_file_dst(void **state)
{
	struct sfd_client *c = client_open();
	char src_path[PATH_MAX], dst_path[PATH_MAX];
	const uint64_t size = 2 * MiB + 1;
	struct sfd_result res;
	int src, dst;

	(void)state;
	tfile_create(src_path, size, 7);
	src = tfile_open(src_path, O_RDONLY);
	snprintf(dst_path, sizeof(dst_path), "%s/file-dst", harness_tmpdir());
	dst = tfile_open(dst_path, O_WRONLY | O_CREAT | O_EXCL);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 0, 0, SFD_NO_FALLBACK, -1, &res), 0);
	assert_result(&res, SFD_STATUS_OK, size, size, SFD_METHOD_SENDFILE);
	assert_int_equal(fd_pos(src), size);
	assert_file_is(dst_path, "", src, size);
	close(dst);
	close(src);
	sfd_client_free(c);
}

/* ---- failures mid-transfer ------------------------------------------------ */

static void
peer_closes(bool nonblock)
{
	const struct sink_opts o = {.close_after = MiB};
	struct setup t;
	struct sfd_result res;

	setup_file(&t, 64 * MiB, 8, nonblock, &o);
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 0, 0, 0, -1, &res), 0);
	if (res.status != SFD_STATUS_PEER_CLOSED)
		fail_msg("status %s (errno %d, %s)", sfd_status_str(res.status), res.error,
		         res.message);
	assert_true(res.error == EPIPE || res.error == ECONNRESET);
	/* The receiver read 1 MiB before closing: at least that was sent. */
	assert_true(res.bytes_sent >= MiB);
	assert_true(res.bytes_sent < t.size);
	assert_int_equal(res.final_offset, res.bytes_sent);
	assert_int_equal(res.method, SFD_METHOD_SENDFILE);
	assert_int_equal(fd_pos(t.src), res.final_offset);
	assert_true(sink_wait(t.sink, t.idx, 5000));
	assert_int_equal(sink_bytes(t.sink, t.idx), MiB);
	end_stream(&t);
	teardown_file(&t);
}

static void
test_peer_closes_nonblocking_dst(void **state)
{
	(void)state;
	peer_closes(true);
}

static void
test_peer_closes_blocking_dst(void **state)
{
	(void)state;
	peer_closes(false);
}

/*
 * The blocking call gives up after its timeout: it cancels the transfer and
 * waits for the position to settle, so what the receiver eventually reads is
 * exactly the range up to the new position.
 */
static void
timeout(bool nonblock)
{
	const struct sink_opts o = {.paused = true};
	struct sfd_result res = {.status = -1};
	struct setup t;
	int64_t start;
	off_t pos;

	setup_file(&t, 64 * MiB, 9, nonblock, &o);
	start = now_ms();
	assert_int_equal(sfd_client_sendfile(t.c, t.dst, t.src, 0, 0, 0, 300, &res), -ETIMEDOUT);
	assert_true(now_ms() - start >= 300);
	assert_true(now_ms() - start < 10000);
	/* The cancelled transfer's outcome comes with the timeout. */
	assert_int_equal(res.status, SFD_STATUS_CANCELLED);
	pos = fd_pos(t.src);
	assert_true(pos > 0);
	assert_true((uint64_t)pos < t.size);
	assert_int_equal(res.bytes_sent, (uint64_t)pos);
	assert_int_equal(res.final_offset, (uint64_t)pos);

	sink_resume(t.sink, t.idx);
	end_stream(&t);
	assert_received(t.sink, t.idx, t.src, 0, (uint64_t)pos);
	/* The client is still usable after a timeout. */
	{
		int dst, srv, idx;

		tcp_pair(true, &dst, &srv);
		idx = sink_add(t.sink, srv, NULL);
		assert_int_equal(sfd_client_sendfile(t.c, dst, t.src, 5, 1000, 0, 5000, &res), 0);
		assert_result(&res, SFD_STATUS_OK, 1000, 1005, SFD_METHOD_SENDFILE);
		close(dst);
		assert_received(t.sink, idx, t.src, 5, 1000);
	}
	teardown_file(&t);
}

static void
test_timeout_nonblocking_dst(void **state)
{
	(void)state;
	timeout(true);
}

static void
test_timeout_blocking_dst(void **state)
{
	(void)state;
	timeout(false);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        HTEST(test_whole_file_nonblocking_dst),
	        HTEST(test_whole_file_blocking_dst),
	        HTEST(test_cold_file),
	        HTEST(test_offset_and_count),
	        HTEST(test_count_past_eof),
	        HTEST(test_offset_past_eof),
	        HTEST(test_empty_file),
	        HTEST(test_pipe_source),
	        HTEST(test_pipe_source_nonblocking_no_fallback),
	        HTEST(test_pipe_source_blocking_dst_no_fallback),
	        HTEST(test_unix_socket_source),
	        HTEST(test_tcp_socket_source_nonblocking_no_fallback),
	        HTEST(test_tcp_socket_source_blocking),
	        HTEST(test_stream_source_with_offset),
	        HTEST(test_pipe_source_count),
	        HTEST(test_socket_source_count),
	        HTEST(test_pipe_destination),
	        HTEST(test_peer_already_closed),
	        HTEST(test_source_truncated_during_transfer),
	        HTEST(test_proc_source),
	        HTEST(test_append_dst),
	        HTEST(test_pipe_source_append_dst),
	        HTEST(test_pipe_source_append_dst_no_fallback),
	        HTEST(test_socket_source_append_dst),
	        HTEST(test_socket_source_append_dst_no_fallback),
	        HTEST(test_regular_file_dst),
	        HTEST(test_peer_closes_nonblocking_dst),
	        HTEST(test_peer_closes_blocking_dst),
	        HTEST(test_timeout_nonblocking_dst),
	        HTEST(test_timeout_blocking_dst),
	};

	harness_init(argc, argv);
	return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
