/*
 * test-protocol.c - the wire protocol spoken directly (common/fdmsg and
 * common/wire, or raw bytes), as a client in another language would, and
 * abused as a hostile one would: wrong descriptor counts, garbage, records
 * too large, empty records, descriptors on requests that take none, a client
 * that floods and disconnects. After each, every descriptor the daemon
 * received is closed and the daemon still serves other clients.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdmsg.h"
#include "harness.h"
#include "wire.h"

/* SCM_MAX_FD: the most descriptors one message can carry. */
#define MAX_PASS 253

static int
raw_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", daemon_socket());
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* One record with any number of descriptors (fdmsg_send() stops at two). */
static void
raw_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_PASS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	assert_true(nfds <= MAX_PASS);
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
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
raw_request(int sock, const struct wire_request *req, const int *fds, size_t nfds)
{
	unsigned char buf[WIRE_MAX_RECORD];
	ssize_t len = wire_request_encode(req, buf, sizeof(buf));

	assert_true(len > 0);
	raw_send(sock, buf, (size_t)len, fds, nfds);
}

/*
 * raw_recv() - the next reply within @ms. Return: 1 and *ret, 0 when the
 * daemon closed the connection; fails the test on a timeout.
 */
static int
raw_recv(int sock, struct wire_response *ret, int ms)
{
	unsigned char buf[WIRE_MAX_RECORD];
	struct pollfd p = {.fd = sock, .events = POLLIN};
	int fds[FDMSG_MAX_FDS];
	size_t nfds = 0;
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		fail_msg("no reply from the daemon within %d ms", ms);
	n = fdmsg_recv(sock, buf, sizeof(buf), fds, &nfds, MSG_DONTWAIT);
	if (n == 0 || n == -ECONNRESET)
		return 0;
	assert_true(n > 0);
	/* Replies never carry descriptors. */
	assert_int_equal(nfds, 0);
	assert_int_equal(wire_response_decode(buf, (size_t)n, ret), 0);
	return 1;
}

static void
expect_reply(int sock, uint64_t id, int status, int err)
{
	struct wire_response r;

	assert_int_equal(raw_recv(sock, &r, 5000), 1);
	assert_int_equal(r.id, id);
	if (r.status != status || r.error != err)
		fail_msg("reply %llu: status %s, errno %d (%s); want %s, errno %d",
		         (unsigned long long)id, sfd_status_str(r.status), r.error, r.message,
		         sfd_status_str(status), err);
	assert_int_equal(r.bytes_sent, 0);
}

/* The connection still answers: a ping and its pong. */
static void
expect_alive(int sock, uint64_t id)
{
	struct wire_request ping = {.op = WIRE_OP_PING, .id = id};

	raw_request(sock, &ping, NULL, 0);
	expect_reply(sock, id, SFD_STATUS_OK, 0);
}

static void
expect_closed(int sock)
{
	struct wire_response r;

	if (raw_recv(sock, &r, 5000) != 0)
		fail_msg("the daemon answered (id %llu, %s) instead of closing",
		         (unsigned long long)r.id, sfd_status_str(r.status));
}

/* Two descriptors a good request would carry, and a few spare ones. */
struct fds {
	int dst, srv, src;
	int pipe[2];
};

static void
fds_open(struct fds *f)
{
	char path[PATH_MAX];

	tfile_create(path, 64 * KiB, 77);
	f->src = tfile_open(path, O_RDONLY);
	tcp_pair(true, &f->dst, &f->srv);
	assert_int_equal(pipe2(f->pipe, O_CLOEXEC), 0);
}

static void
fds_close(struct fds *f)
{
	close(f->dst);
	close(f->srv);
	close(f->src);
	close(f->pipe[0]);
	close(f->pipe[1]);
}

/* Only the connection left in the daemon: the record's descriptors are gone. */
static void
expect_daemon_holds_connection_only(void)
{
	if (!daemon_wait_fds(daemon_baseline() + 1, 2000))
		fail_msg("the daemon holds %d descriptors; idle %d, plus one connection",
		         daemon_fd_count(), daemon_baseline());
}

/* ---- the protocol as documented ----------------------------------------- */

static void
test_ping(void **state)
{
	struct wire_response r;
	int sock = raw_connect();

	(void)state;
	/* docs/PROTOCOL.md's example bytes: id 3, ping. */
	raw_send(sock, "\x08\x03\x22\x00", 4, NULL, 0);
	assert_int_equal(raw_recv(sock, &r, 5000), 1);
	assert_int_equal(r.id, 3);
	assert_int_equal(r.status, SFD_STATUS_OK);
	/* Who answered: protocol 1, a version, and the optional features:
	 * deadline, rate limit, hand-off, idle timeout. */
	assert_true(r.has_ping);
	assert_int_equal(r.protocol_version, 1);
	assert_true(r.daemon_version[0] != '\0');
	assert_int_equal(r.features, 1u << WIRE_FEATURE_DEADLINE | 1u << WIRE_FEATURE_RATE_LIMIT |
	                                     1u << WIRE_FEATURE_CLOSE_WHEN_DONE |
	                                     1u << WIRE_FEATURE_IDLE_TIMEOUT);
	/* Only a Ping's reply says so. */
	raw_request(sock, &(struct wire_request){.op = WIRE_OP_CANCEL, .id = 4, .target = 9}, NULL,
	            0);
	assert_int_equal(raw_recv(sock, &r, 5000), 1);
	assert_int_equal(r.id, 4);
	assert_false(r.has_ping);
	close(sock);
}

/* A whole file with the documented bytes, the way another language would. */
static void
test_raw_sendfile(void **state)
{
	struct sink *s = sink_new();
	struct wire_response r;
	struct fds f;
	int sock = raw_connect(), idx;

	(void)state;
	fds_open(&f);
	idx = sink_add(s, f.srv, NULL);
	f.srv = -1;
	/* id 1, send the whole file from offset 0: [0] destination, [1] source. */
	raw_send(sock, "\x08\x01\x12\x00", 4, (int[]){f.dst, f.src}, 2);
	assert_int_equal(raw_recv(sock, &r, 5000), 1);
	assert_int_equal(r.id, 1);
	assert_int_equal(r.status, SFD_STATUS_OK);
	assert_int_equal(r.bytes_sent, 64 * KiB);
	assert_int_equal(r.final_offset, 64 * KiB);
	assert_int_equal(r.method, SFD_METHOD_SENDFILE);
	assert_int_equal(fd_pos(f.src), 64 * KiB);

	/* id 7, offset 4096, count 1000, fallback false. */
	raw_send(sock, "\x08\x07\x12\x08\x08\x80\x20\x10\xe8\x07\x18\x00", 12,
	         (int[]){f.dst, f.src}, 2);
	assert_int_equal(raw_recv(sock, &r, 5000), 1);
	assert_int_equal(r.id, 7);
	assert_int_equal(r.status, SFD_STATUS_OK);
	assert_int_equal(r.bytes_sent, 1000);
	assert_int_equal(r.final_offset, 5096);
	assert_int_equal(fd_pos(f.src), 5096);

	close(f.dst);
	f.dst = -1;
	assert_true(sink_wait(s, idx, 5000));
	assert_int_equal(sink_bytes(s, idx), 64 * KiB + 1000);
	sink_free(s);
	fds_close(&f);
	close(sock);
}

/* Unknown fields are skipped; the optional ones are checked. */
static void
test_unknown_and_reserved_fields(void **state)
{
	struct wire_response r;
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	/* id 2, sendfile { count 10, field 100 (varint) = 1 }, field 99 = "x". */
	raw_send(sock, "\x08\x02\x12\x05\x10\x0a\xa0\x06\x01\x9a\x06\x01x", 13,
	         (int[]){f.dst, f.src}, 2);
	assert_int_equal(raw_recv(sock, &r, 5000), 1);
	assert_int_equal(r.id, 2);
	assert_int_equal(r.status, SFD_STATUS_OK);
	assert_int_equal(r.bytes_sent, 10);

	/* count 1, deadline_ms = 60000: served. */
	raw_send(sock, "\x08\x03\x12\x06\x10\x01\x20\xe0\xd4\x03", 10, (int[]){f.dst, f.src}, 2);
	assert_int_equal(raw_recv(sock, &r, 5000), 1);
	assert_int_equal(r.id, 3);
	assert_int_equal(r.status, SFD_STATUS_OK);
	assert_int_equal(r.bytes_sent, 1);
	/* deadline_ms = 2^32 - 1: beyond the daemon's maximum (one day). */
	raw_send(sock, "\x08\x04\x12\x06\x20\xff\xff\xff\xff\x0f", 10, (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 4, SFD_STATUS_INVALID_ARGUMENT, EINVAL);
	/* rate_limit_after = 1 without a rate. */
	raw_send(sock, "\x08\x07\x12\x02\x40\x01", 6, (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 7, SFD_STATUS_INVALID_ARGUMENT, EINVAL);
	/* close_when_done = true: a hand-off, answered as soon as it is
	 * taken, with nothing sent yet and the daemon's transfer id. */
	raw_send(sock, "\x08\x05\x12\x02\x30\x01", 6, (int[]){f.dst, f.src}, 2);
	assert_int_equal(raw_recv(sock, &r, 5000), 1);
	assert_int_equal(r.id, 5);
	assert_int_equal(r.status, SFD_STATUS_OK);
	assert_int_equal(r.bytes_sent, 0);
	assert_int_equal(r.final_offset, 0);
	assert_true(r.transfer_id > 0);
	/* shutdown_write = true without close_when_done */
	raw_send(sock, "\x08\x0b\x12\x02\x48\x01", 6, (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 11, SFD_STATUS_INVALID_ARGUMENT, EINVAL);
	/* shutdown_write with close_when_done, to a pipe: not a socket */
	raw_send(sock, "\x08\x0c\x12\x04\x30\x01\x48\x01", 8, (int[]){f.pipe[1], f.src}, 2);
	expect_reply(sock, 12, SFD_STATUS_INVALID_ARGUMENT, ENOTSOCK);
	/* Reserved fields set to their zero values are not "set". */
	raw_send(sock, "\x08\x06\x12\x08\x10\x01\x20\x00\x28\x00\x30\x00", 12,
	         (int[]){f.dst, f.src}, 2);
	assert_int_equal(raw_recv(sock, &r, 5000), 1);
	assert_int_equal(r.id, 6);
	assert_int_equal(r.status, SFD_STATUS_OK);
	assert_int_equal(r.bytes_sent, 1);
	/* count present and 0 */
	raw_send(sock, "\x08\x08\x12\x02\x10\x00", 6, (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 8, SFD_STATUS_INVALID_ARGUMENT, EINVAL);
	/* No operation at all. */
	raw_send(sock, "\x08\x09", 2, NULL, 0);
	expect_reply(sock, 9, SFD_STATUS_INVALID_ARGUMENT, EOPNOTSUPP);

	expect_daemon_holds_connection_only();
	expect_alive(sock, 10);
	fds_close(&f);
	close(sock);
}

static void
test_cancel(void **state)
{
	const struct sink_opts paused = {.paused = true};
	struct wire_request req = {.op = WIRE_OP_SENDFILE, .id = 1, .fallback = true};
	struct wire_request cancel = {.op = WIRE_OP_CANCEL, .id = 2, .target = 1};
	struct sink *s = sink_new();
	struct wire_response r;
	char path[PATH_MAX];
	bool got_target = false, got_cancel = false;
	int sock = raw_connect(), src, dst, srv, idx;

	(void)state;
	tfile_create(path, 64 * MiB, 78);
	src = tfile_open(path, O_RDONLY);
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, &paused);

	/* Nothing in flight yet. */
	raw_request(sock, &cancel, NULL, 0);
	expect_reply(sock, 2, SFD_STATUS_INVALID_ARGUMENT, ENOENT);

	raw_request(sock, &req, (int[]){dst, src}, 2);
	assert_true(sink_wait_queued(s, idx, 1, 5000));
	cancel.id = 3;
	raw_request(sock, &cancel, NULL, 0);
	/* Two replies, in either order. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(raw_recv(sock, &r, 5000), 1);
		if (r.id == 1) {
			assert_false(got_target);
			got_target = true;
			assert_int_equal(r.status, SFD_STATUS_CANCELLED);
			assert_int_equal(r.error, ECANCELED);
			assert_true(r.bytes_sent > 0);
			assert_int_equal(r.final_offset, r.bytes_sent);
			assert_int_equal(fd_pos(src), r.bytes_sent);
		} else {
			assert_int_equal(r.id, 3);
			assert_false(got_cancel);
			got_cancel = true;
			assert_int_equal(r.status, SFD_STATUS_OK);
		}
	}
	sink_resume(s, idx);
	close(dst);
	assert_received(s, idx, src, 0, (uint64_t)fd_pos(src));
	expect_daemon_holds_connection_only();
	close(src);
	sink_free(s);
	close(sock);
}

/* ---- wrong descriptors -------------------------------------------------- */

static void
test_sendfile_with_one_descriptor(void **state)
{
	struct wire_request req = {.op = WIRE_OP_SENDFILE, .id = 11, .fallback = true};
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	raw_request(sock, &req, (int[]){f.dst}, 1);
	expect_reply(sock, 11, SFD_STATUS_PROTOCOL, EBADMSG);
	raw_request(sock, &req, NULL, 0);
	expect_reply(sock, 11, SFD_STATUS_PROTOCOL, EBADMSG);
	expect_daemon_holds_connection_only();
	/* Nothing was sent to the destination. */
	assert_int_equal(fd_pos(f.src), 0);
	expect_alive(sock, 12);
	fds_close(&f);
	close(sock);
	assert_daemon_serves();
}

static void
test_sendfile_with_three_descriptors(void **state)
{
	struct wire_request req = {.op = WIRE_OP_SENDFILE, .id = 13, .fallback = true};
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	raw_request(sock, &req, (int[]){f.dst, f.src, f.pipe[0]}, 3);
	expect_reply(sock, 13, SFD_STATUS_PROTOCOL, EBADMSG);
	expect_daemon_holds_connection_only();
	expect_alive(sock, 14);
	fds_close(&f);
	close(sock);
	assert_daemon_serves();
}

/* More descriptors than the daemon's control buffer holds: truncated. */
static void
test_sendfile_with_many_descriptors(void **state)
{
	struct wire_request req = {.op = WIRE_OP_SENDFILE, .id = 15, .fallback = true};
	int fds[MAX_PASS];
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	for (int i = 0; i < MAX_PASS; i++)
		fds[i] = i % 2 ? f.src : f.dst;
	raw_request(sock, &req, fds, MAX_PASS);
	expect_reply(sock, 15, SFD_STATUS_PROTOCOL, EBADMSG);
	expect_daemon_holds_connection_only();
	expect_alive(sock, 16);
	fds_close(&f);
	close(sock);
}

static void
test_descriptors_on_ping_and_cancel(void **state)
{
	struct wire_request ping = {.op = WIRE_OP_PING, .id = 17};
	struct wire_request cancel = {.op = WIRE_OP_CANCEL, .id = 18, .target = 1};
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	raw_request(sock, &ping, (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 17, SFD_STATUS_PROTOCOL, EBADMSG);
	raw_request(sock, &cancel, (int[]){f.pipe[0]}, 1);
	expect_reply(sock, 18, SFD_STATUS_PROTOCOL, EBADMSG);
	expect_daemon_holds_connection_only();
	expect_alive(sock, 19);
	fds_close(&f);
	close(sock);
}

/* ---- garbage -------------------------------------------------------------- */

static void
test_garbage_with_id(void **state)
{
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	/* id 5, then a key whose varint never ends. */
	raw_send(sock, "\x08\x05\xff\xff\xff", 5, (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 5, SFD_STATUS_PROTOCOL, EBADMSG);
	/* id 6, then a Sendfile claiming 5 bytes and holding 1. */
	raw_send(sock, "\x08\x06\x12\x05\x08", 5, (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 6, SFD_STATUS_PROTOCOL, EBADMSG);
	/* A wrong wire type for a known field, after the id. */
	raw_send(sock, "\x08\x07\x15\x00\x00\x00\x00", 7, NULL, 0);
	expect_reply(sock, 7, SFD_STATUS_PROTOCOL, EBADMSG);
	expect_daemon_holds_connection_only();
	assert_int_equal(fd_pos(f.src), 0);
	expect_alive(sock, 8);
	fds_close(&f);
	close(sock);
	assert_daemon_serves();
}

static void
test_garbage_without_id(void **state)
{
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	raw_send(sock, "\xff\xff\xff\xff", 4, (int[]){f.dst, f.src}, 2);
	expect_closed(sock);
	close(sock);
	assert_true(daemon_wait_fds(daemon_baseline(), 2000));
	fds_close(&f);
	assert_daemon_serves();
}

/* Well-formed, but no id to answer to: the connection closes. */
static void
test_record_without_id(void **state)
{
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	/* A sendfile request, complete but for its id. */
	raw_send(sock, "\x12\x00", 2, (int[]){f.dst, f.src}, 2);
	expect_closed(sock);
	close(sock);
	assert_true(daemon_wait_fds(daemon_baseline(), 2000));
	assert_int_equal(fd_pos(f.src), 0);
	fds_close(&f);
	assert_daemon_serves();
}

/* Id 0 is the daemon's own (replies about the connection): a request that
 * uses it cannot be answered either, and closes the connection. */
static void
test_record_with_id_zero(void **state)
{
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	/* id 0, send the whole file. */
	raw_send(sock, "\x08\x00\x12\x00", 4, (int[]){f.dst, f.src}, 2);
	expect_closed(sock);
	close(sock);
	assert_true(daemon_wait_fds(daemon_baseline(), 2000));
	fds_close(&f);

	/* id 0, ping. */
	sock = raw_connect();
	raw_send(sock, "\x08\x00\x22\x00", 4, NULL, 0);
	expect_closed(sock);
	close(sock);
	assert_true(daemon_wait_fds(daemon_baseline(), 2000));
	assert_daemon_serves();
}

/* A record larger than 4096 bytes: answered EMSGSIZE by its id. */
static void
test_oversized_record(void **state)
{
	unsigned char buf[5000];
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	/* id 9, a ping, then an unknown length-delimited field 15 that runs
	 * past 4096 bytes. */
	memcpy(buf, "\x08\x09\x22\x00\x7a\x8a\x27", 7);
	memset(buf + 7, 'A', sizeof(buf) - 7);
	raw_send(sock, buf, sizeof(buf), (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 9, SFD_STATUS_PROTOCOL, EMSGSIZE);
	expect_daemon_holds_connection_only();
	expect_alive(sock, 10);
	fds_close(&f);
	close(sock);
	assert_daemon_serves();
}

/* The protocol: a zero-length record, like end of file, closes the connection. */
static void
test_empty_record(void **state)
{
	int sock = raw_connect();

	(void)state;
	raw_send(sock, "", 0, NULL, 0);
	expect_closed(sock);
	close(sock);
	assert_true(daemon_wait_fds(daemon_baseline(), 2000));
}

/* The same with descriptors attached: closed too, and so are they. */
static void
test_empty_record_with_descriptors(void **state)
{
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	raw_send(sock, "", 0, (int[]){f.dst, f.src}, 2);
	expect_closed(sock);
	close(sock);
	assert_true(daemon_wait_fds(daemon_baseline(), 2000));
	fds_close(&f);
	assert_daemon_serves();
}

/* ---- clients that go away ------------------------------------------------- */

/*
 * A client sends many records with descriptors (transfers that get stuck on
 * destinations nobody reads, on the loop and on workers; wrong counts;
 * garbage) and disconnects without reading a reply.
 */
static void
test_many_descriptors_then_disconnect(void **state)
{
	struct wire_request req = {.op = WIRE_OP_SENDFILE, .fallback = true};
	char path[PATH_MAX];
	int nb[2], bl[2], src, sock = raw_connect();
	uint64_t id = 1;

	(void)state;
	tfile_create(path, 8 * MiB, 79);
	src = tfile_open(path, O_RDONLY);
	/* Destinations nobody reads. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, nb), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bl), 0);

	for (int i = 0; i < 40; i++) {
		req.id = id++;
		req.offset = (uint64_t)i * 4096;
		raw_request(sock, &req, (int[]){nb[0], src}, 2);
	}
	for (int i = 0; i < 12; i++) {
		req.id = id++;
		raw_request(sock, &req, (int[]){bl[0], src}, 2);
	}
	for (int i = 0; i < 20; i++) {
		req.id = id++;
		raw_request(sock, &req, (int[]){nb[0], src, src}, 3);
		req.id = id++;
		raw_request(sock, &req, (int[]){src}, 1);
		raw_send(sock, "\x08\x05\xff\xff", 4, (int[]){src, src}, 2);
	}
	/* The daemon holds the stuck transfers' descriptors now. */
	for (int64_t end = now_ms() + 5000;
	     daemon_fd_count() <= daemon_baseline() + 1 && now_ms() < end;)
		sleep_ms(2);
	assert_true(daemon_fd_count() > daemon_baseline() + 1);
	close(sock);

	if (!daemon_wait_fds(daemon_baseline(), 5000))
		fail_msg("the daemon holds %d descriptors after the client left, %d when idle",
		         daemon_fd_count(), daemon_baseline());
	/* Something was sent, and the position says where it stopped. */
	assert_true(fd_pos(src) > 0);
	close(nb[0]);
	close(nb[1]);
	close(bl[0]);
	close(bl[1]);
	close(src);
	assert_daemon_serves();
}

/*
 * A client that sends without reading its replies: the daemon stops reading
 * it once its reply queue is full, and frees that queue when it leaves.
 */
static void
test_flood_without_reading(void **state)
{
	struct wire_request ping = {.op = WIRE_OP_PING};
	unsigned char buf[64];
	int sock = raw_connect(), sent = 0;
	int64_t deadline = now_ms() + 10000;

	(void)state;
	for (;;) {
		ssize_t len, n;

		ping.id = (uint64_t)sent + 1;
		len = wire_request_encode(&ping, buf, sizeof(buf));
		assert_true(len > 0);
		n = send(sock, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			/* Full: wait for the daemon to read more, and stop
			 * once it has not for 500 ms. */
			struct pollfd p = {.fd = sock, .events = POLLOUT};

			if (poll(&p, 1, 500) == 0)
				break;
			continue;
		}
		assert_int_equal(n, len);
		sent++;
		assert_true(now_ms() < deadline);
	}
	/* It stopped at its limits, not before the first thousand. */
	assert_true(sent > 1000);
	/* Still serving others meanwhile. */
	assert_daemon_serves();
	close(sock);
	assert_true(daemon_wait_fds(daemon_baseline(), 5000));
	assert_daemon_serves();
}

/* ---- batches (a daemon allowing 4 requests in flight per connection) ----- */

/* Records we sent that the daemon has not read yet (SIOCOUTQ). */
static int
unread_by_daemon(int sock)
{
	int n = 0;

	assert_int_equal(ioctl(sock, SIOCOUTQ, &n), 0);
	return n;
}

/*
 * Ping without reading the replies until the daemon stops reading us: its
 * socket buffer towards us is full and it holds as many replies as requests
 * may be in flight. Return: the number of pings sent.
 */
static unsigned
stall_daemon(int sock)
{
	struct wire_request ping = {.op = WIRE_OP_PING};
	unsigned sent = 0;

	for (;;) {
		int64_t deadline;

		ping.id = ++sent;
		raw_request(sock, &ping, NULL, 0);
		deadline = now_ms() + 50;
		while (unread_by_daemon(sock) > 0 && now_ms() < deadline)
			sleep_ms(1);
		/* Still unread after a while: it has stopped reading us. */
		if (unread_by_daemon(sock) > 0) {
			sleep_ms(100);
			if (unread_by_daemon(sock) > 0)
				return sent;
		}
		assert_true(sent < 100000);
	}
}

/*
 * The daemon reads records in batches. An empty record ends the connection;
 * a record that came after it in the same batch was received all the same,
 * and its descriptors must be closed, not lost.
 */
static void
test_records_after_empty_record(void **state)
{
	struct wire_request req = {.op = WIRE_OP_SENDFILE, .id = 1000000, .fallback = true};
	struct wire_response r;
	unsigned pings, replies = 0;
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	pings = stall_daemon(sock);
	/* Queued behind the last ping: the next read takes all three. */
	raw_send(sock, "", 0, NULL, 0);
	raw_request(sock, &req, (int[]){f.dst, f.src}, 2);
	/* Reading the replies lets the daemon flush and read again. */
	while (raw_recv(sock, &r, 5000) == 1) {
		assert_int_equal(r.id, ++replies);
		assert_int_equal(r.status, SFD_STATUS_OK);
	}
	assert_int_equal(replies, pings);
	close(sock);
	/* Nothing was sent: the request after the end was never served. */
	assert_int_equal(fd_pos(f.src), 0);
	if (!daemon_wait_fds(daemon_baseline(), 2000))
		fail_msg("the daemon holds %d descriptors after the client left, %d when idle",
		         daemon_fd_count(), daemon_baseline());
	fds_close(&f);
	assert_daemon_serves();
}

/* The same with a well-formed request behind an ordinary ping batch: served. */
static void
test_records_after_stall(void **state)
{
	struct wire_request req = {.op = WIRE_OP_SENDFILE, .id = 1000000, .fallback = true};
	struct wire_response r;
	unsigned pings, replies = 0;
	bool got_sendfile = false;
	struct fds f;
	int sock = raw_connect();

	(void)state;
	fds_open(&f);
	pings = stall_daemon(sock);
	raw_request(sock, &req, (int[]){f.dst, f.src}, 2);
	while (replies < pings || !got_sendfile) {
		assert_int_equal(raw_recv(sock, &r, 5000), 1);
		if (r.id == req.id) {
			got_sendfile = true;
			assert_int_equal(r.status, SFD_STATUS_OK);
			assert_int_equal(r.bytes_sent, 64 * KiB);
		} else {
			assert_int_equal(r.id, ++replies);
		}
	}
	assert_int_equal(fd_pos(f.src), 64 * KiB);
	close(sock);
	assert_true(daemon_wait_fds(daemon_baseline(), 2000));
	fds_close(&f);
}

/* ---- the daemon out of descriptors --------------------------------------- */

/* The daemon's hard RLIMIT_NOFILE in the group below. */
#define NOFILE 64

/*
 * With its descriptor table full, the daemon cannot take a request's
 * descriptors (the kernel cuts the control data): that is its own limit, a
 * LIMIT/EMFILE to retry later, whether none of them or one of them fit. A
 * record with three descriptors, with room for them, is still the client's
 * mistake.
 */
static void
test_out_of_descriptors(void **state)
{
	struct wire_request req = {.op = WIRE_OP_SENDFILE, .id = 21, .fallback = true};
	int conns[NOFILE];
	int n = 0, sock = raw_connect();
	struct fds f;

	(void)state;
	fds_open(&f);
	expect_daemon_holds_connection_only();
	/* Fill the table with connections, one at a time, so that none
	 * waits in the backlog for a slot. */
	while (daemon_fd_count() < NOFILE) {
		int want = daemon_fd_count() + 1;

		assert_true(n < NOFILE);
		conns[n++] = raw_connect();
		assert_true(daemon_wait_fds(want, 5000));
	}
	raw_request(sock, &req, (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 21, SFD_STATUS_LIMIT, EMFILE);
	assert_int_equal(daemon_fd_count(), NOFILE);

	/* One slot free: the destination arrives, the source does not. */
	close(conns[--n]);
	assert_true(daemon_wait_fds(NOFILE - 1, 5000));
	req.id = 22;
	raw_request(sock, &req, (int[]){f.dst, f.src}, 2);
	expect_reply(sock, 22, SFD_STATUS_LIMIT, EMFILE);
	assert_true(daemon_wait_fds(NOFILE - 1, 5000));

	/* Room for three. */
	close(conns[--n]);
	close(conns[--n]);
	assert_true(daemon_wait_fds(NOFILE - 3, 5000));
	req.id = 23;
	raw_request(sock, &req, (int[]){f.dst, f.src, f.pipe[0]}, 3);
	expect_reply(sock, 23, SFD_STATUS_PROTOCOL, EBADMSG);
	expect_alive(sock, 24);

	while (n > 0)
		close(conns[--n]);
	expect_daemon_holds_connection_only();
	fds_close(&f);
	close(sock);
	assert_daemon_serves();
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        HTEST(test_ping),
	        HTEST(test_raw_sendfile),
	        HTEST(test_unknown_and_reserved_fields),
	        HTEST(test_cancel),
	        HTEST(test_sendfile_with_one_descriptor),
	        HTEST(test_sendfile_with_three_descriptors),
	        HTEST(test_sendfile_with_many_descriptors),
	        HTEST(test_descriptors_on_ping_and_cancel),
	        HTEST(test_garbage_with_id),
	        HTEST(test_garbage_without_id),
	        HTEST(test_record_without_id),
	        HTEST(test_record_with_id_zero),
	        HTEST(test_oversized_record),
	        HTEST(test_empty_record),
	        HTEST(test_empty_record_with_descriptors),
	        HTEST(test_many_descriptors_then_disconnect),
	        HTEST(test_flood_without_reading),
	};

	static const char *const limit_args[] = {"--max-in-flight", "4", NULL};
	const struct CMUnitTest batch_tests[] = {
	        HTEST(test_records_after_stall),
	        HTEST(test_records_after_empty_record),
	};
	const struct CMUnitTest nofile_tests[] = {
	        HTEST(test_out_of_descriptors),
	};
	int failed;

	harness_init(argc, argv);
	failed = cmocka_run_group_tests_name("protocol", tests, harness_group_setup,
	                                     harness_group_teardown);
	harness_daemon_args(limit_args);
	failed += cmocka_run_group_tests_name("batches", batch_tests, harness_group_setup,
	                                      harness_group_teardown);
	harness_daemon_args(NULL);
	harness_daemon_nofile(NOFILE);
	failed += cmocka_run_group_tests_name("out of descriptors", nofile_tests,
	                                      harness_group_setup, harness_group_teardown);
	return failed ? 1 : 0;
}
