/*
 * test-fdmsg.c - records and descriptors over a real SOCK_SEQPACKET pair.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "fdmsg.h"
#include "macro.h"
#include "helpers.h"

struct pair {
	int tx, rx;
};

static void
pair_open(struct pair *p)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	p->tx = sv[0];
	p->rx = sv[1];
}

static void
pair_close(struct pair *p)
{
	close(p->tx);
	close(p->rx);
}

/* Do @a and @b name the same open file? */
static bool
same_file(int a, int b)
{
	struct stat sa, sb;

	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* sendmsg() with any number of descriptors, bypassing fdmsg_send()'s limit. */
static void
raw_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	char ctl[CMSG_SPACE(sizeof(int) * 64)];
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;

	assert_true(nfds <= 64);
	memset(ctl, 0, sizeof(ctl));
	if (nfds > 0) {
		msg.msg_control = ctl;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	assert_int_equal(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

static void
test_no_fds(void **state)
{
	struct pair p;
	char buf[64];
	int fds[FDMSG_MAX_FDS] = {-1, -1};
	size_t nfds = 99;

	pair_open(&p);
	assert_int_equal(fdmsg_send(p.tx, "hello", 5, NULL, 0, 0), 5);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, 0), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(nfds, 0);
	assert_int_equal(fds[0], -1);
	pair_close(&p);
}

static void
test_one_fd(void **state)
{
	struct pair p;
	char buf[64];
	int pfd[2], fds[FDMSG_MAX_FDS] = {-1, -1};
	size_t nfds = 0;

	pair_open(&p);
	/* Without O_CLOEXEC on our side: the received copy must still get it. */
	assert_int_equal(pipe(pfd), 0);
	assert_false(fd_is_cloexec(pfd[0]));
	assert_int_equal(fdmsg_send(p.tx, "x", 1, &pfd[0], 1, 0), 1);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, 0), 1);
	assert_int_equal(nfds, 1);
	assert_true(fds[0] >= 0);
	assert_int_not_equal(fds[0], pfd[0]);
	assert_true(fd_is_cloexec(fds[0]));
	assert_true(same_file(fds[0], pfd[0]));
	/* The sender's descriptor was borrowed, not closed. */
	assert_true(fd_is_open(pfd[0]));

	/* It is the same pipe: what goes in one end comes out of the copy. */
	write_all(pfd[1], "z", 1);
	assert_int_equal(read(fds[0], buf, 1), 1);
	assert_int_equal(buf[0], 'z');

	close(fds[0]);
	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
}

static void
test_two_fds(void **state)
{
	struct pair p;
	char buf[64];
	int a = make_file(10, O_RDONLY), b = make_file(20, O_RDWR);
	int send_fds[2] = {a, b}, fds[FDMSG_MAX_FDS] = {-1, -1};
	size_t nfds = 0;

	pair_open(&p);
	assert_int_equal(fdmsg_send(p.tx, "req", 3, send_fds, 2, MSG_DONTWAIT), 3);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, 0), 3);
	assert_int_equal(nfds, 2);
	/* Order is kept: [0] destination, [1] source. */
	assert_true(same_file(fds[0], a));
	assert_true(same_file(fds[1], b));
	assert_false(same_file(fds[0], b));
	assert_true(fd_is_cloexec(fds[0]));
	assert_true(fd_is_cloexec(fds[1]));

	fdmsg_close_all(fds, nfds);
	assert_int_equal(fds[0], -1);
	assert_int_equal(fds[1], -1);
	close(a);
	close(b);
	pair_close(&p);
}

static void
test_send_too_many_fds(void **state)
{
	struct pair p;
	int fds[3] = {0, 1, 2};

	pair_open(&p);
	assert_int_equal(fdmsg_send(p.tx, "x", 1, fds, 3, 0), -EINVAL);
	/* Nothing was sent. */
	assert_int_equal(fdmsg_recv(p.rx, (char[8]){0}, 8, fds, &(size_t){0}, MSG_DONTWAIT),
	                 -EAGAIN);
	pair_close(&p);
}

/* Send @n descriptors (fresh dups of a pipe end) in one record, close ours,
 * and check that receiving closes every one the kernel installed. */
static void
check_over_full(size_t n)
{
	struct pair p;
	struct fdset before;
	int pfd[2], sent[64], fds[FDMSG_MAX_FDS] = {-1, -1};
	size_t nfds = 77;
	char buf[16];

	assert_true(n <= 64);
	pair_open(&p);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	for (size_t i = 0; i < n; i++)
		sent[i] = dup_cloexec(pfd[0]);
	raw_send(p.tx, "abc", 3, sent, n);
	for (size_t i = 0; i < n; i++)
		close(sent[i]);

	fdset_snapshot(&before);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, 0), -EBADMSG);
	assert_fdset_unchanged(&before);
	assert_int_equal(nfds, 77); /* not written on failure */
	assert_int_equal(fds[0], -1);

	/* The pipe's read end is gone everywhere but in pfd[0]: once we close
	 * it, the writer sees EPIPE. So no received copy survived. */
	close(pfd[0]);
	assert_int_equal(write(pfd[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(pfd[1]);
	pair_close(&p);
}

static void
test_three_fds_rejected(void **state)
{
	check_over_full(3);
}

/* More than fdmsg's control buffer holds: the kernel truncates (MSG_CTRUNC). */
static void
test_many_fds_rejected(void **state)
{
	check_over_full(40);
}

static void
test_three_fds_record(void **state)
{
	struct pair p;
	struct fdset before;
	int pfd[2], sent[3];
	char buf[16];
	struct fdmsg_record rec = {.buf = buf, .cap = sizeof(buf)};

	pair_open(&p);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	sent[0] = pfd[0];
	sent[1] = pfd[1];
	sent[2] = pfd[0];
	raw_send(p.tx, "\x08\x07", 2, sent, 3);

	fdset_snapshot(&before);
	assert_int_equal(fdmsg_recv_record(p.rx, &rec, 0), 1);
	assert_fdset_unchanged(&before);
	assert_int_equal(rec.error, EBADMSG);
	assert_int_equal(rec.nfds, 0);
	/* The data is still there, so that the caller can answer by id. */
	assert_int_equal(rec.len, 2);
	assert_memory_equal(buf, "\x08\x07", 2);
	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
}

static void
test_truncated_data(void **state)
{
	struct pair p;
	struct fdset before;
	uint8_t big[100], buf[10];
	int pfd[2], fds[FDMSG_MAX_FDS] = {-1, -1};
	size_t nfds = 5;

	pair_open(&p);
	pattern_fill(big, sizeof(big), 0);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(fdmsg_send(p.tx, big, sizeof(big), pfd, 2, 0), (ssize_t)sizeof(big));

	fdset_snapshot(&before);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, 0), -EMSGSIZE);
	assert_fdset_unchanged(&before);
	assert_int_equal(nfds, 5);
	assert_int_equal(fds[0], -1);
	assert_int_equal(fds[1], -1);

	/* The record's tail is discarded with it: the next record is whole. */
	assert_int_equal(fdmsg_send(p.tx, "next", 4, NULL, 0, 0), 4);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, 0), 4);
	assert_memory_equal(buf, "next", 4);
	assert_int_equal(nfds, 0);

	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
}

static void
test_truncated_record(void **state)
{
	struct pair p;
	struct fdset before;
	uint8_t big[100], buf[10];
	int pfd[2];
	struct fdmsg_record rec = {.buf = buf, .cap = sizeof(buf)};

	pair_open(&p);
	pattern_fill(big, sizeof(big), 0);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(fdmsg_send(p.tx, big, sizeof(big), pfd, 1, 0), (ssize_t)sizeof(big));

	fdset_snapshot(&before);
	assert_int_equal(fdmsg_recv_record(p.rx, &rec, 0), 1);
	assert_fdset_unchanged(&before);
	assert_int_equal(rec.error, EMSGSIZE);
	assert_int_equal(rec.nfds, 0);
	assert_int_equal(rec.len, sizeof(buf));
	assert_memory_equal(buf, big, sizeof(buf));

	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
}

static void
test_record_ok(void **state)
{
	struct pair p;
	char buf[32];
	int pfd[2];
	struct fdmsg_record rec = {.buf = buf, .cap = sizeof(buf)};

	pair_open(&p);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(fdmsg_send(p.tx, "twelve bytes", 12, pfd, 2, 0), 12);
	rec.error = 123;
	assert_int_equal(fdmsg_recv_record(p.rx, &rec, 0), 1);
	assert_int_equal(rec.error, 0);
	assert_int_equal(rec.len, 12);
	assert_int_equal(rec.nfds, 2);
	assert_true(same_file(rec.fds[0], pfd[0]));
	assert_true(same_file(rec.fds[1], pfd[1]));
	assert_true(fd_is_cloexec(rec.fds[0]));
	assert_true(fd_is_cloexec(rec.fds[1]));
	fdmsg_close_all(rec.fds, rec.nfds);

	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
}

/* A control message other than SCM_RIGHTS (here SCM_CREDENTIALS, which the
 * kernel attaches to every record once SO_PASSCRED is on) is a bad record. */
static void
test_foreign_cmsg(void **state)
{
	struct pair p;
	struct fdset before;
	char buf[32];
	int pfd[2], on = 1;
	struct fdmsg_record rec = {.buf = buf, .cap = sizeof(buf)};

	pair_open(&p);
	assert_int_equal(setsockopt(p.rx, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(fdmsg_send(p.tx, "abc", 3, pfd, 2, 0), 3);

	fdset_snapshot(&before);
	assert_int_equal(fdmsg_recv_record(p.rx, &rec, 0), 1);
	assert_fdset_unchanged(&before);
	assert_int_equal(rec.error, EBADMSG);
	assert_int_equal(rec.nfds, 0);
	assert_int_equal(rec.len, 3);

	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
}

static void
test_eof(void **state)
{
	struct pair p;
	char buf[16];
	int fds[FDMSG_MAX_FDS] = {-1, -1};
	size_t nfds = 3;
	struct fdmsg_record rec = {.buf = buf, .cap = sizeof(buf)};

	pair_open(&p);
	close(p.tx);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, 0), 0);
	assert_int_equal(nfds, 3);
	assert_int_equal(fdmsg_recv_record(p.rx, &rec, 0), 0);
	assert_int_equal(rec.error, 0);
	assert_int_equal(rec.nfds, 0);
	assert_int_equal(rec.len, 0);
	close(p.rx);
}

static void
test_empty_record_with_fds(void **state)
{
	struct pair p;
	char buf[16];
	int pfd[2];
	struct fdmsg_record rec = {.buf = buf, .cap = sizeof(buf)};

	/* An empty record that carries descriptors is not end-of-stream. */
	pair_open(&p);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(fdmsg_send(p.tx, "", 0, pfd, 1, 0), 0);
	assert_int_equal(fdmsg_recv_record(p.rx, &rec, 0), 1);
	assert_int_equal(rec.len, 0);
	assert_int_equal(rec.error, 0);
	assert_int_equal(rec.nfds, 1);
	assert_true(same_file(rec.fds[0], pfd[0]));
	fdmsg_close_all(rec.fds, rec.nfds);

	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
}

/* fdmsg_recv() cannot tell an empty record from EOF by its return value:
 * it must not hand out descriptors with one. */
static void
test_empty_record_recv(void **state)
{
	struct pair p;
	struct fdset before;
	char buf[16];
	int pfd[2], fds[FDMSG_MAX_FDS] = {-1, -1};
	size_t nfds = 9;

	pair_open(&p);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(fdmsg_send(p.tx, "", 0, pfd, 2, 0), 0);
	fdset_snapshot(&before);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, 0), 0);
	assert_fdset_unchanged(&before);
	assert_int_equal(fds[0], -1);
	assert_int_equal(fds[1], -1);

	/* The connection is still usable: that was a record, not EOF. */
	assert_int_equal(fdmsg_send(p.tx, "ok", 2, NULL, 0, 0), 2);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, 0), 2);
	assert_int_equal(nfds, 0);

	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
}

static void
test_nonblocking_empty(void **state)
{
	struct pair p;
	char buf[16];
	int fds[FDMSG_MAX_FDS] = {-1, -1};
	size_t nfds = 0;
	struct fdmsg_record rec = {.buf = buf, .cap = sizeof(buf)};

	pair_open(&p);
	assert_int_equal(fdmsg_recv(p.rx, buf, sizeof(buf), fds, &nfds, MSG_DONTWAIT), -EAGAIN);
	assert_int_equal(fdmsg_recv_record(p.rx, &rec, MSG_DONTWAIT), -EAGAIN);
	pair_close(&p);
}

static void
test_send_errors(void **state)
{
	struct pair p;
	int fd;

	pair_open(&p);
	close(p.rx);
	/* The peer is gone: EPIPE, and no SIGPIPE (it would kill the test). */
	assert_int_equal(fdmsg_send(p.tx, "x", 1, NULL, 0, 0), -EPIPE);
	close(p.tx);

	fd = make_file(0, O_RDWR);
	assert_int_equal(fdmsg_send(fd, "x", 1, NULL, 0, 0), -ENOTSOCK);
	/* A closed descriptor cannot be passed. */
	pair_open(&p);
	assert_int_equal(fdmsg_send(p.tx, "x", 1, (int[]){999}, 1, 0), -EBADF);
	close(fd);
	pair_close(&p);
}

/* ---- batches (recvmmsg/sendmmsg) ---------------------------------------- */

struct batch {
	char bufs[FDMSG_BATCH + 8][64];
	struct fdmsg_record recs[FDMSG_BATCH + 8];
};

static void
batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	for (size_t i = 0; i < ARRAY_SIZE(b->recs); i++) {
		b->recs[i].buf = b->bufs[i];
		b->recs[i].cap = sizeof(b->bufs[i]);
		b->recs[i].fds[0] = b->recs[i].fds[1] = -1;
	}
}

static void
test_batch_roundtrip(void **state)
{
	struct pair p;
	struct batch b;
	struct iovec iov[5];
	char text[5][8];

	pair_open(&p);
	for (int i = 0; i < 5; i++) {
		snprintf(text[i], sizeof(text[i]), "rec%d", i);
		iov[i] = (struct iovec){.iov_base = text[i], .iov_len = strlen(text[i])};
	}
	assert_int_equal(fdmsg_send_batch(p.tx, iov, 5, 0), 5);
	batch_init(&b);
	assert_int_equal(fdmsg_recv_records(p.rx, b.recs, 8, MSG_DONTWAIT), 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(b.recs[i].error, 0);
		assert_int_equal(b.recs[i].nfds, 0);
		assert_int_equal(b.recs[i].len, 4);
		assert_memory_equal(b.bufs[i], text[i], 4);
	}
	assert_int_equal(fdmsg_recv_records(p.rx, b.recs, 8, MSG_DONTWAIT), -EAGAIN);
	pair_close(&p);
}

/* Good and bad records in one batch: each judged alone, and every
 * descriptor of a bad one closed. */
static void
test_batch_mixed(void **state)
{
	struct pair p;
	struct batch b;
	struct fdset before;
	int pfd[2], three[3];

	pair_open(&p);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	three[0] = three[1] = three[2] = pfd[0];
	assert_int_equal(fdmsg_send(p.tx, "good", 4, pfd, 2, 0), 4);
	raw_send(p.tx, "bad", 3, three, 3);
	assert_int_equal(fdmsg_send(p.tx, "plain", 5, NULL, 0, 0), 5);
	close(p.tx);

	batch_init(&b);
	fdset_snapshot(&before);
	/* Three records, then the end of the stream. */
	assert_int_equal(fdmsg_recv_records(p.rx, b.recs, 8, MSG_DONTWAIT), 4);
	assert_int_equal(b.recs[0].error, 0);
	assert_int_equal(b.recs[0].nfds, 2);
	assert_true(same_file(b.recs[0].fds[0], pfd[0]));
	assert_true(same_file(b.recs[0].fds[1], pfd[1]));
	assert_true(fd_is_cloexec(b.recs[0].fds[0]));
	assert_int_equal(b.recs[1].error, EBADMSG);
	assert_int_equal(b.recs[1].nfds, 0);
	assert_int_equal(b.recs[1].len, 3);
	assert_int_equal(b.recs[2].error, 0);
	assert_int_equal(b.recs[2].len, 5);
	assert_int_equal(b.recs[3].len, 0);
	assert_int_equal(b.recs[3].nfds, 0);
	assert_int_equal(b.recs[3].error, 0);
	fdmsg_close_all(b.recs[0].fds, b.recs[0].nfds);
	assert_fdset_unchanged(&before);

	close(pfd[0]);
	close(pfd[1]);
	close(p.rx);
}

/*
 * An empty record is the end-of-stream marker, but on SEQPACKET a peer can
 * send one and keep going. Records that arrived in the same batch after it
 * must not leave their descriptors open in the receiver.
 */
static void
test_batch_empty_record_then_fds(void **state)
{
	struct pair p;
	struct batch b;
	struct fdset before, after;
	int pfd[2], r;

	pair_open(&p);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(fdmsg_send(p.tx, "", 0, NULL, 0, 0), 0);
	assert_int_equal(fdmsg_send(p.tx, "after", 5, pfd, 2, 0), 5);
	assert_int_equal(fdmsg_send(p.tx, "more", 4, pfd, 1, 0), 4);

	batch_init(&b);
	fdset_snapshot(&before);
	r = fdmsg_recv_records(p.rx, b.recs, 8, MSG_DONTWAIT);
	for (int i = 0; i < r; i++)
		fdmsg_close_all(b.recs[i].fds, b.recs[i].nfds);
	/* Whatever was returned is closed now; nothing else may be open. */
	fdset_snapshot(&after);
	/* Close what leaked, so that only the assertion below reports it. */
	for (int fd = 0; fd < FDSET_MAX; fd++)
		if (fdset_has(&after, fd) && !fdset_has(&before, fd))
			close(fd);
	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
	assert_true(r >= 1);
	assert_true(fdset_same(&before, &after));
}

static void
test_batch_clamped(void **state)
{
	struct pair p;
	struct batch b;
	struct iovec iov[FDMSG_BATCH + 8];
	char c = 'r';

	pair_open(&p);
	for (size_t i = 0; i < ARRAY_SIZE(iov); i++)
		iov[i] = (struct iovec){.iov_base = &c, .iov_len = 1};
	/* At most FDMSG_BATCH per call, each way. */
	assert_int_equal(fdmsg_send_batch(p.tx, iov, ARRAY_SIZE(iov), 0), FDMSG_BATCH);
	assert_int_equal(fdmsg_send_batch(p.tx, iov, 8, 0), 8);
	batch_init(&b);
	assert_int_equal(fdmsg_recv_records(p.rx, b.recs, ARRAY_SIZE(b.recs), MSG_DONTWAIT),
	                 FDMSG_BATCH);
	assert_int_equal(fdmsg_recv_records(p.rx, b.recs, ARRAY_SIZE(b.recs), MSG_DONTWAIT), 8);
	pair_close(&p);
}

static void
test_batch_errors(void **state)
{
	struct pair p;
	struct batch b;
	struct iovec iov = {.iov_base = "x", .iov_len = 1};

	pair_open(&p);
	batch_init(&b);
	assert_int_equal(fdmsg_recv_records(p.rx, b.recs, 4, MSG_DONTWAIT), -EAGAIN);
	close(p.rx);
	assert_int_equal(fdmsg_send_batch(p.tx, &iov, 1, 0), -EPIPE);
	close(p.tx);
}

/*
 * "Up to n records": on a blocking socket, a batch returns what is there once
 * at least one record has arrived, rather than waiting for n of them.
 */
static void
test_batch_blocking_returns_early(void **state)
{
	struct pair p;
	struct batch b;
	struct timeval tv = {.tv_usec = 400000};
	int64_t t0, took;
	int r;

	pair_open(&p);
	/* A bound on the wait, so that the test fails rather than hangs. */
	assert_int_equal(setsockopt(p.rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(fdmsg_send(p.tx, "a", 1, NULL, 0, 0), 1);
	assert_int_equal(fdmsg_send(p.tx, "b", 1, NULL, 0, 0), 1);
	batch_init(&b);
	t0 = now_ms();
	r = fdmsg_recv_records(p.rx, b.recs, 8, 0);
	took = now_ms() - t0;
	print_message("2 records in %lld ms\n", (long long)took);
	pair_close(&p);
	assert_int_equal(r, 2);
	assert_true(took < 200);
}

static void
test_close_all(void **state)
{
	int fds[3] = {dup_cloexec(0), -1, dup_cloexec(0)};
	int a = fds[0], c = fds[2];

	fdmsg_close_all(fds, 3);
	assert_int_equal(fds[0], -1);
	assert_int_equal(fds[1], -1);
	assert_int_equal(fds[2], -1);
	assert_false(fd_is_open(a));
	assert_false(fd_is_open(c));
	fdmsg_close_all(NULL, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_no_fds),
	        fd_test(test_one_fd),
	        fd_test(test_two_fds),
	        fd_test(test_send_too_many_fds),
	        fd_test(test_three_fds_rejected),
	        fd_test(test_many_fds_rejected),
	        fd_test(test_three_fds_record),
	        fd_test(test_truncated_data),
	        fd_test(test_truncated_record),
	        fd_test(test_record_ok),
	        fd_test(test_foreign_cmsg),
	        fd_test(test_eof),
	        fd_test(test_empty_record_with_fds),
	        fd_test(test_empty_record_recv),
	        fd_test(test_nonblocking_empty),
	        fd_test(test_send_errors),
	        fd_test(test_batch_roundtrip),
	        fd_test(test_batch_mixed),
	        fd_test(test_batch_empty_record_then_fds),
	        fd_test(test_batch_clamped),
	        fd_test(test_batch_errors),
	        fd_test(test_batch_blocking_returns_early),
	        fd_test(test_close_all),
	};

	/* A write to a pipe whose reader is gone must fail, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
