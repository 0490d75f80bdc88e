/*
 * test-ping.c - sfd_client_ping() against a real daemon: who answers (the
 * protocol version, the version `sendfiled --version` prints, the features
 * the daemon lists in its own reply, read here without the library), and a
 * ping in the middle of submitted transfers, whose completions must all
 * still be delivered, once each, with the right bytes at the receivers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdmsg.h"
#include "harness.h"
#include "wire.h"

#define ALL_FEATURES                                                                               \
	((1u << SFD_FEATURE_DEADLINE) | (1u << SFD_FEATURE_RATE_LIMIT) |                           \
	 (1u << SFD_FEATURE_CLOSE_WHEN_DONE) | (1u << SFD_FEATURE_IDLE_TIMEOUT))

/* The version the daemon's executable prints: "sendfiled 0.1.0". */
static void
daemon_version_printed(char *buf, size_t size)
{
	const char *bin = getenv("SENDFILED_BIN");
	char cmd[PATH_MAX + 32], line[128];
	FILE *p;

	assert_non_null(bin);
	snprintf(cmd, sizeof(cmd), "'%s' --version", bin);
	p = popen(cmd, "re");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	line[strcspn(line, "\n")] = '\0';
	assert_true(strncmp(line, "sendfiled ", 10) == 0);
	snprintf(buf, size, "%s", line + 10);
}

/* A Ping spoken directly, as docs/PROTOCOL.md describes it: the daemon's own
 * word on what it implements, with no library in between. */
static void
raw_ping(struct wire_response *ret)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct wire_request req = {.op = WIRE_OP_PING, .id = 5};
	unsigned char buf[WIRE_MAX_RECORD];
	struct pollfd p = {.events = POLLIN};
	int fds[FDMSG_MAX_FDS];
	size_t nfds = 0;
	ssize_t len, n;
	int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(sock >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", daemon_socket());
	assert_int_equal(connect(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	len = wire_request_encode(&req, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(fdmsg_send(sock, buf, (size_t)len, NULL, 0, 0), len);
	p.fd = sock;
	assert_int_equal(poll(&p, 1, 10000), 1);
	n = fdmsg_recv(sock, buf, sizeof(buf), fds, &nfds, MSG_DONTWAIT);
	assert_true(n > 0);
	assert_int_equal(nfds, 0);
	assert_int_equal(wire_response_decode(buf, (size_t)n, ret), 0);
	assert_int_equal(ret->id, 5);
	assert_int_equal(ret->status, SFD_STATUS_OK);
	assert_true(ret->has_ping);
	close(sock);
}

static int
own_fd_count(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (access(path, F_OK) == 0)
			n++;
	}
	return n;
}

static void
test_who_answers(void **state)
{
	struct sfd_ping_info info, again;
	struct wire_response raw;
	char version[128];
	int before = own_fd_count();
	struct sfd_client *c;

	(void)state;
	daemon_version_printed(version, sizeof(version));
	raw_ping(&raw);

	c = client_open();
	memset(&info, 0xa5, sizeof(info));
	assert_int_equal(sfd_client_ping(c, 10000, &info), 0);
	assert_int_equal(info.protocol_version, 1);
	assert_string_equal(info.daemon_version, version);
	/* Only features this library knows, and exactly those the daemon
	 * lists: whichever they are today. */
	assert_int_equal(info.features & ~ALL_FEATURES, 0);
	assert_int_equal(info.features, raw.features & ALL_FEATURES);

	/* A second ping on the same connection says the same. */
	assert_int_equal(sfd_client_ping(c, -1, &again), 0);
	assert_memory_equal(&info, &again, sizeof(info));
	/* Pings are not transfers: nothing in flight, nothing to dispatch. */
	assert_int_equal(sfd_client_in_flight(c), 0);
	assert_int_equal(sfd_client_pending(c), 0);
	assert_int_equal(sfd_client_dispatch(c, harness_on_done), 0);

	/* The daemon holds the connection only while it is open. */
	assert_true(daemon_wait_fds(daemon_baseline() + 1, 5000));
	sfd_client_free(c);
	assert_true(daemon_wait_fds(daemon_baseline(), 5000));
	assert_int_equal(own_fd_count(), before);
}

#define SMALL 4
#define SMALL_SIZE (64 * KiB + 3)
#define BIG_SIZE (16 * MiB)

/*
 * Transfers submitted and not dispatched, one stalled on a receiver that
 * reads nothing: a ping between them is answered, and every completion,
 * those that arrived while it waited included, is delivered once afterwards.
 */
static void
test_ping_amid_transfers(void **state)
{
	int before = own_fd_count();
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sink_opts paused = {.paused = true};
	struct done_slot slot[SMALL + 1] = {0};
	int src[SMALL + 1], dst[SMALL + 1], idx[SMALL + 1];
	uint64_t size[SMALL + 1], id;
	struct sfd_ping_info info;
	unsigned done = 0;

	(void)state;
	for (int i = 0; i <= SMALL; i++) {
		char path[PATH_MAX];
		int srv;

		size[i] = i < SMALL ? SMALL_SIZE + (uint64_t)i : BIG_SIZE;
		tfile_create(path, size[i], 40 + (uint64_t)i);
		src[i] = tfile_open(path, O_RDONLY);
		tcp_pair(true, &dst[i], &srv);
		idx[i] = sink_add(s, srv, i < SMALL ? NULL : &paused);
		slot[i].counter = &done;
	}
	/* The stalled one first, so that it is surely in flight at the ping. */
	assert_int_equal(sfd_client_submit(c, dst[SMALL], src[SMALL], 0, 0, 0, &slot[SMALL], &id),
	                 0);
	assert_true(sink_wait_queued(s, idx[SMALL], 64 * KiB, 10000));
	for (int i = 0; i < SMALL; i++)
		assert_int_equal(sfd_client_submit(c, dst[i], src[i], 0, 0, 0, &slot[i], &id), 0);

	assert_int_equal(sfd_client_ping(c, 10000, &info), 0);
	assert_int_equal(info.protocol_version, 1);
	/* Nothing was delivered by the ping, and nothing lost: each request
	 * is still in flight or waits for dispatch. */
	assert_int_equal(done, 0);
	assert_int_equal(sfd_client_in_flight(c) + sfd_client_pending(c), SMALL + 1);
	assert_true(sfd_client_in_flight(c) >= 1);

	if (!pump(c, &done, SMALL, 30000))
		fail_msg("%u of %d small transfers completed", done, SMALL);
	assert_false(slot[SMALL].done);
	/* And again with a completion surely due: it stays queued. */
	sink_resume(s, idx[SMALL]);
	assert_int_equal(sfd_client_ping(c, 10000, &info), 0);
	if (!pump(c, &done, SMALL + 1, 30000))
		fail_msg("the stalled transfer did not complete");

	for (int i = 0; i <= SMALL; i++) {
		assert_int_equal(slot[i].times, 1);
		assert_result(&slot[i].res, SFD_STATUS_OK, size[i], size[i], SFD_METHOD_SENDFILE);
		assert_int_equal(fd_pos(src[i]), size[i]);
		close(dst[i]);
		assert_true(sink_wait(s, idx[i], 30000));
		assert_received(s, idx[i], src[i], 0, size[i]);
		close(src[i]);
	}
	assert_int_equal(sfd_client_in_flight(c), 0);
	assert_int_equal(sfd_client_pending(c), 0);
	sink_free(s);
	sfd_client_free(c);
	assert_true(daemon_wait_fds(daemon_baseline(), 5000));
	assert_int_equal(own_fd_count(), before);
}

/*
 * The daemon killed while a transfer is in flight: a ping cannot replace the
 * connection (completions were due on it), so it reports the daemon gone,
 * and dispatch still reports the transfer's outcome as unknown.
 */
static void
test_ping_after_crash(void **state)
{
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sink_opts paused = {.paused = true};
	struct done_slot slot = {0};
	struct sfd_ping_info info = {.protocol_version = 77};
	char path[PATH_MAX];
	int src, dst, srv, idx, r;
	uint64_t id;

	(void)state;
	tfile_create(path, BIG_SIZE, 9);
	src = tfile_open(path, O_RDONLY);
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, &paused);
	assert_int_equal(sfd_client_submit(c, dst, src, 0, 0, 0, &slot, &id), 0);
	assert_true(sink_wait_queued(s, idx, 64 * KiB, 10000));

	daemon_crash_and_restart();

	r = sfd_client_ping(c, 10000, &info);
	if (r != -ECONNRESET && r != -EPIPE)
		fail_msg("sfd_client_ping: %d (%s), want -ECONNRESET or -EPIPE", r, strerror(-r));
	/* Written on success only. */
	assert_int_equal(info.protocol_version, 77);
	assert_int_equal(sfd_client_dispatch(c, harness_on_done), -SFD_EOUTCOME_UNKNOWN);
	assert_false(slot.done);
	close(dst);
	sink_resume(s, idx);
	assert_true(sink_wait(s, idx, 30000));
	assert_int_equal(fd_pos(src), sink_bytes(s, idx));
	assert_received(s, idx, src, 0, sink_bytes(s, idx));
	close(src);
	sink_free(s);
	sfd_client_free(c);

	/* The new daemon answers a new client. */
	c = client_open();
	assert_int_equal(sfd_client_ping(c, 10000, &info), 0);
	assert_int_equal(info.protocol_version, 1);
	sfd_client_free(c);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        HTEST(test_who_answers),
	        HTEST(test_ping_amid_transfers),
	        HTEST(test_ping_after_crash),
	};

	harness_init(argc, argv);
	return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
