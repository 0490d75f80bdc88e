/*
 * test-handoff.c - sfd_client_handoff() against a real daemon: the reply
 * comes once the daemon holds the descriptors, before the transfer ends; the
 * transfer survives its client closing everything; SHUT_WR ends the stream
 * even while the client still holds the socket, and without it the stream
 * does not end while the client holds it; a failing hand-off shows in the
 * control plane's events and statistics (read with sendfilectl, as a user
 * would); the limits refuse a hand-off and keep nothing of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* How long a test waits for something that must happen (never asserted as
 * a duration: only that it happened). */
#define WAIT_MS 30000

static const struct sink_opts paused = {.paused = true};

/* ---- sendfilectl, the control plane's client ----------------------------- */

static const char *
ctl_bin(void)
{
	const char *bin = getenv("SENDFILECTL_BIN");

	if (!bin)
		fail_msg("SENDFILECTL_BIN is not set");
	return bin;
}

/* Start `sendfilectl -s SOCKET @args...` with its stdout on a pipe.
 * Return: its pid; *ret_fd is the pipe's read end. */
static pid_t
ctl_spawn(const char *const *args, int *ret_fd)
{
	const char *argv[16] = {ctl_bin(), "-s", daemon_socket()};
	int p[2], n = 3;
	pid_t pid;

	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	*ret_fd = p[0];
	return pid;
}

/* Run sendfilectl to the end; its stdout goes to @out. Asserts exit 0. */
static void
ctl_run(const char *const *args, char *out, size_t cap)
{
	size_t len = 0;
	int fd, status;
	pid_t pid = ctl_spawn(args, &fd);

	for (;;) {
		ssize_t n = read(fd, out + len, cap - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	out[len] = '\0';
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("sendfilectl %s failed (status %d): %s", args[0], status, out);
}

struct hstats {
	unsigned long long taken, completed, failed;
	unsigned in_flight;
};

/* `sendfilectl stats --json`: its "handoffs" object. */
static void
get_hstats(struct hstats *ret)
{
	static const char *const args[] = {"stats", "--json", NULL};
	char out[8192];
	const char *h;

	ctl_run(args, out, sizeof(out));
	h = strstr(out, "\"handoffs\":{");
	if (!h || sscanf(h,
	                 "\"handoffs\":{\"taken\":%llu,\"completed\":%llu,\"failed\":%llu,"
	                 "\"in_flight\":%u}",
	                 &ret->taken, &ret->completed, &ret->failed, &ret->in_flight) != 4)
		fail_msg("no hand-off counters in: %s", out);
}

/* Wait until the hand-offs that ended reach @completed and @failed.
 * Return: the counters then (asserted to be exactly those). */
static void
wait_hstats(unsigned long long completed, unsigned long long failed, struct hstats *ret)
{
	int64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		get_hstats(ret);
		if (ret->completed + ret->failed >= completed + failed || now_ms() > deadline)
			break;
		sleep_ms(20);
	}
	assert_int_equal(ret->completed, completed);
	assert_int_equal(ret->failed, failed);
}

/* ---- one hand-off --------------------------------------------------------- */

struct ho {
	char path[PATH_MAX];
	uint64_t size;
	int src;
	int dst; /* the client's copy of the destination */
	struct sink *sink;
	int idx;
	struct sfd_client *c;
	uint64_t id;
};

static void
ho_setup(struct ho *t, uint64_t size, uint64_t seed, const struct sink_opts *o)
{
	int srv;

	memset(t, 0, sizeof(*t));
	t->size = size;
	tfile_create(t->path, size, seed);
	t->src = tfile_open(t->path, O_RDONLY);
	tcp_pair(true, &t->dst, &srv);
	t->sink = sink_new();
	t->idx = sink_add(t->sink, srv, o);
	t->c = client_open();
}

/* Let go of everything the client holds: its socket, its file, its
 * connection to the daemon. */
static void
ho_leave(struct ho *t)
{
	if (t->dst >= 0)
		close(t->dst);
	t->dst = -1;
	if (t->src >= 0)
		close(t->src);
	t->src = -1;
	sfd_client_free(t->c);
	t->c = NULL;
}

/* The receiver read all of the file (hashed against a fresh descriptor). */
static void
ho_assert_received(struct ho *t)
{
	int fd = tfile_open(t->path, O_RDONLY);

	assert_received(t->sink, t->idx, fd, 0, t->size);
	close(fd);
}

static void
ho_teardown(struct ho *t)
{
	ho_leave(t);
	sink_free(t->sink);
}

/* ---- tests ---------------------------------------------------------------- */

/*
 * The reply comes as soon as the daemon holds the descriptors: the receiver
 * has not read a byte and cannot take the whole file, yet the call has
 * returned, with the id the control plane shows. Then the client closes its
 * socket, its file and its connection, and the receiver still gets every
 * byte, and end of file (the daemon's copy was the last).
 */
static void
test_reply_before_end_and_client_leaves(void **state)
{
	struct hstats before, after;
	char out[8192], want[64];
	static const char *const list[] = {"list", "--json", NULL};
	struct ho t;

	(void)state;
	get_hstats(&before);
	ho_setup(&t, 32 * MiB + 17, 301, &paused);
	assert_int_equal(sfd_client_handoff(t.c, t.dst, t.src, 0, 0, 0, NULL, -1, &t.id), 0);
	assert_true(t.id > 0);
	assert_int_equal(sink_bytes(t.sink, t.idx), 0);
	assert_false(sink_wait(t.sink, t.idx, 0));
	/* Listed, marked, with its owner, while the client is still here... */
	ctl_run(list, out, sizeof(out));
	snprintf(want, sizeof(want), "{\"transfer\":%" PRIu64 ",", t.id);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "\"handoff\":true"));
	ho_leave(&t);
	/* ...and after it left. */
	ctl_run(list, out, sizeof(out));
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "\"uid\":%u,", (unsigned)getuid());
	assert_non_null(strstr(out, want));
	get_hstats(&after);
	assert_int_equal(after.taken, before.taken + 1);
	assert_int_equal(after.in_flight, 1);

	sink_resume(t.sink, t.idx);
	assert_true(sink_wait(t.sink, t.idx, WAIT_MS));
	ho_assert_received(&t);
	wait_hstats(before.completed + 1, before.failed, &after);
	assert_int_equal(after.in_flight, 0);
	ho_teardown(&t);
}

/*
 * SFD_SHUT_WR: the receiver reads end of file while the client still holds
 * its own copy of the socket, so the end can only come from the daemon's
 * shutdown. The source's position is the end of the range, as for any
 * transfer, and the client that holds the file can read it.
 */
static void
test_shut_wr_ends_the_stream(void **state)
{
	struct hstats before, after;
	struct ho t;

	(void)state;
	get_hstats(&before);
	ho_setup(&t, 8 * MiB + 5, 302, NULL);
	assert_int_equal(
	        sfd_client_handoff(t.c, t.dst, t.src, 0, 0, SFD_SHUT_WR, NULL, 5000, &t.id), 0);
	assert_true(sink_wait(t.sink, t.idx, WAIT_MS));
	ho_assert_received(&t);
	wait_hstats(before.completed + 1, before.failed, &after);
	assert_int_equal(fd_pos(t.src), t.size);
	/* The client's socket is still open, its write side shut. */
	assert_int_equal(send(t.dst, "x", 1, MSG_NOSIGNAL), -1);
	assert_int_equal(errno, EPIPE);
	ho_teardown(&t);
}

/*
 * Without SFD_SHUT_WR, the daemon closing its copy does not end the stream
 * while the client holds its own: every byte arrives, no end of file, until
 * the client closes.
 */
static void
test_no_shut_wr_no_eof_while_client_holds(void **state)
{
	struct hstats before, after;
	struct ho t;

	(void)state;
	get_hstats(&before);
	ho_setup(&t, 4 * MiB + 3, 303, NULL);
	assert_int_equal(sfd_client_handoff(t.c, t.dst, t.src, 0, 0, 0, NULL, 5000, &t.id), 0);
	wait_hstats(before.completed + 1, before.failed, &after);
	/* Done, and the daemon holds none of its descriptors. */
	assert_true(daemon_wait_fds(daemon_baseline() + 1, 5000));
	for (int64_t end = now_ms() + WAIT_MS;
	     sink_bytes(t.sink, t.idx) < t.size && now_ms() < end;)
		sleep_ms(10);
	assert_int_equal(sink_bytes(t.sink, t.idx), t.size);
	assert_false(sink_wait(t.sink, t.idx, 200));
	assert_int_equal(fd_pos(t.src), t.size);
	close(t.dst);
	t.dst = -1;
	assert_true(sink_wait(t.sink, t.idx, WAIT_MS));
	ho_assert_received(&t);
	ho_teardown(&t);
}

/* `sendfilectl watch --json`, subscribed: a small transfer's event has come
 * through it. */
struct watcher {
	pid_t pid;
	int fd;
	char buf[65536];
	size_t len;
};

/* Read what the watcher printed, for up to @ms. Return: whether it had
 * anything. */
static bool
watch_read(struct watcher *w, int ms)
{
	struct pollfd p = {.fd = w->fd, .events = POLLIN};
	ssize_t n;

	if (poll(&p, 1, ms) <= 0)
		return false;
	n = read(w->fd, w->buf + w->len, sizeof(w->buf) - 1 - w->len);
	if (n <= 0)
		return false;
	w->len += (size_t)n;
	w->buf[w->len] = '\0';
	return true;
}

static void
watch_start(struct watcher *w)
{
	static const char *const args[] = {"watch", "--json", NULL};
	char path[PATH_MAX];
	struct sfd_client *c = client_open();
	struct sfd_result res;
	int src, p[2];

	memset(w, 0, sizeof(*w));
	w->pid = ctl_spawn(args, &w->fd);
	tfile_create(path, 100, 304);
	src = tfile_open(path, O_RDONLY);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	/* A subscription takes a moment: send until one is heard. */
	for (int i = 0; i < 300; i++) {
		assert_int_equal(sfd_client_sendfile(c, p[1], src, 0, 0, 0, 5000, &res), 0);
		assert_int_equal(res.status, SFD_STATUS_OK);
		/* 100 bytes a try: the pipe holds them all. */
		if (watch_read(w, 100))
			break;
	}
	assert_true(w->len > 0);
	close(p[0]);
	close(p[1]);
	close(src);
	sfd_client_free(c);
}

/* Wait for an event line holding every one of @needles. Return: found. */
static bool
watch_find(struct watcher *w, const char *const *needles)
{
	int64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		for (char *line = w->buf, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
			bool all = true;

			*nl = '\0';
			for (int i = 0; needles[i] && all; i++)
				all = strstr(line, needles[i]) != NULL;
			*nl = '\n';
			if (all)
				return true;
		}
		if (now_ms() > deadline)
			return false;
		watch_read(w, 100);
	}
}

static void
watch_stop(struct watcher *w)
{
	int status;

	kill(w->pid, SIGTERM);
	waitpid(w->pid, &status, 0);
	close(w->fd);
}

/*
 * A hand-off whose receiver resets mid-way: nobody waits for its reply, so
 * its outcome is in the events (ERROR, PEER_CLOSED, the bytes sent, marked
 * as a hand-off) and in the statistics (failed).
 */
static void
test_failing_handoff_reported(void **state)
{
	const struct sink_opts resets = {.close_after = 1 * MiB};
	struct hstats before, after;
	struct watcher w;
	char want[64];
	struct ho t;

	(void)state;
	watch_start(&w);
	get_hstats(&before);
	ho_setup(&t, 64 * MiB, 305, &resets);
	assert_int_equal(
	        sfd_client_handoff(t.c, t.dst, t.src, 0, 0, SFD_SHUT_WR, NULL, 5000, &t.id), 0);
	ho_leave(&t);
	assert_true(sink_wait(t.sink, t.idx, WAIT_MS));
	wait_hstats(before.completed, before.failed + 1, &after);
	assert_int_equal(after.taken, before.taken + 1);
	snprintf(want, sizeof(want), "\"transfer\":%" PRIu64 ",", t.id);
	assert_true(watch_find(&w, (const char *const[]){"\"event\":\"error\"", want,
	                                                 "\"status\":\"peer_closed\"",
	                                                 "\"handoff\":true", NULL}));
	watch_stop(&w);
	ho_teardown(&t);
}

/* `sendfilectl cancel` stops a hand-off whose client has gone: counted as
 * failed, and the receiver reads end of file (the daemon held the last
 * copy). */
static void
test_cancel_from_control_plane(void **state)
{
	struct hstats before, after;
	char id[32], out[256];
	struct ho t;

	(void)state;
	get_hstats(&before);
	ho_setup(&t, 32 * MiB, 306, &paused);
	assert_int_equal(sfd_client_handoff(t.c, t.dst, t.src, 0, 0, 0, NULL, 5000, &t.id), 0);
	ho_leave(&t);
	snprintf(id, sizeof(id), "%" PRIu64, t.id);
	ctl_run((const char *const[]){"cancel", id, NULL}, out, sizeof(out));
	wait_hstats(before.completed, before.failed + 1, &after);
	sink_resume(t.sink, t.idx);
	assert_true(sink_wait(t.sink, t.idx, WAIT_MS));
	assert_true(sink_bytes(t.sink, t.idx) < t.size);
	ho_teardown(&t);
}

/* Bad hand-offs are refused and nothing is kept. */
static void
test_refusals(void **state)
{
	struct sfd_options opts = {0};
	struct ho t;
	uint64_t id = 0;
	int p[2];

	(void)state;
	ho_setup(&t, 4096, 307, NULL);
	/* Unknown flags, nonzero reserved options: the library says no. */
	assert_int_equal(sfd_client_handoff(t.c, t.dst, t.src, 0, 0, 1u << 9, NULL, 5000, &id),
	                 -EINVAL);
	opts.reserved[3] = 1;
	assert_int_equal(sfd_client_handoff(t.c, t.dst, t.src, 0, 0, 0, &opts, 5000, &id), -EINVAL);
	/* SHUT_WR on a pipe: not a socket. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(sfd_client_handoff(t.c, p[1], t.src, 0, 0, SFD_SHUT_WR, NULL, 5000, &id),
	                 -ENOTSOCK);
	/* A limit beyond the daemon's maximum (one day): refused, not
	 * clamped. */
	memset(&opts, 0, sizeof(opts));
	opts.deadline_ms = UINT32_MAX;
	assert_int_equal(sfd_client_handoff(t.c, t.dst, t.src, 0, 0, 0, &opts, 5000, &id), -EINVAL);
	assert_int_equal(id, 0);
	assert_int_equal(fd_pos(t.src), 0);
	close(p[0]);
	close(p[1]);
	/* Nothing sent: our copy closed, the receiver reads end of file. */
	close(t.dst);
	t.dst = -1;
	assert_true(sink_wait(t.sink, t.idx, WAIT_MS));
	assert_int_equal(sink_bytes(t.sink, t.idx), 0);
	ho_teardown(&t);
}

/* ---- limits (a daemon started with small ones) --------------------------- */

#define MAX_HANDOFFS 3
#define MAX_PER_UID 4
#define MAX_PER_CONN 2

/*
 * Hand-offs do not count against their connection's limit (one connection
 * hands off more than it may have in flight); the daemon-wide cap does: one
 * more is refused with LIMIT (-EBUSY), nothing of it kept: the daemon holds
 * no more descriptors than before, and the receiver reads end of file as
 * soon as the client closes its copy.
 */
static void
test_limit_daemon_wide(void **state)
{
	struct ho t[MAX_HANDOFFS + 1];
	struct sfd_result res;
	int held;

	(void)state;
	for (int i = 0; i <= MAX_HANDOFFS; i++)
		ho_setup(&t[i], 32 * MiB, 310 + i, &paused);
	for (int i = 0; i < MAX_HANDOFFS; i++)
		assert_int_equal(sfd_client_handoff(t[0].c, t[i].dst, t[i].src, 0, 0, 0, NULL, 5000,
		                                    &t[i].id),
		                 0);
	assert_true(MAX_HANDOFFS > MAX_PER_CONN);
	/* 4 connections open, 3 hand-offs of 2 descriptors each. */
	held = daemon_baseline() + (MAX_HANDOFFS + 1) + 2 * MAX_HANDOFFS;
	assert_true(daemon_wait_fds(held, 5000));
	assert_int_equal(sfd_client_handoff(t[MAX_HANDOFFS].c, t[MAX_HANDOFFS].dst,
	                                    t[MAX_HANDOFFS].src, 0, 0, 0, NULL, 5000,
	                                    &t[MAX_HANDOFFS].id),
	                 -EBUSY);
	assert_int_equal(daemon_fd_count(), held);
	close(t[MAX_HANDOFFS].dst);
	t[MAX_HANDOFFS].dst = -1;
	sink_resume(t[MAX_HANDOFFS].sink, t[MAX_HANDOFFS].idx);
	assert_true(sink_wait(t[MAX_HANDOFFS].sink, t[MAX_HANDOFFS].idx, WAIT_MS));
	assert_int_equal(sink_bytes(t[MAX_HANDOFFS].sink, t[MAX_HANDOFFS].idx), 0);
	/* The connection that handed off is still served: its own limit
	 * counts only what it waits for. */
	{
		char path[PATH_MAX];
		int p[2], src;

		tfile_create(path, 1000, 320);
		src = tfile_open(path, O_RDONLY);
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		assert_int_equal(sfd_client_sendfile(t[0].c, p[1], src, 0, 0, 0, 5000, &res), 0);
		assert_result(&res, SFD_STATUS_OK, 1000, 1000, SFD_METHOD_SENDFILE);
		close(p[0]);
		close(p[1]);
		close(src);
	}
	for (int i = 0; i <= MAX_HANDOFFS; i++)
		ho_leave(&t[i]);
	for (int i = 0; i < MAX_HANDOFFS; i++) {
		sink_resume(t[i].sink, t[i].idx);
		assert_true(sink_wait(t[i].sink, t[i].idx, WAIT_MS));
		ho_assert_received(&t[i]);
	}
	for (int i = 0; i <= MAX_HANDOFFS; i++)
		ho_teardown(&t[i]);
}

/* The user's limit covers hand-offs with the rest: past it, -EUSERS. */
static void
test_limit_per_uid(void **state)
{
	enum { N = MAX_PER_UID + 1 };
	struct done_slot slot[2];
	struct ho t[N];
	unsigned done = 0;
	uint64_t id;

	(void)state;
	memset(slot, 0, sizeof(slot));
	for (int i = 0; i < N; i++)
		ho_setup(&t[i], 32 * MiB, 330 + i, &paused);
	/* Two ordinary transfers and two hand-offs fill the user's four. */
	for (int i = 0; i < 2; i++) {
		slot[i].counter = &done;
		assert_int_equal(
		        sfd_client_submit(t[i].c, t[i].dst, t[i].src, 0, 0, 0, &slot[i], &id), 0);
	}
	for (int i = 2; i < MAX_PER_UID; i++)
		assert_int_equal(sfd_client_handoff(t[i].c, t[i].dst, t[i].src, 0, 0, 0, NULL, 5000,
		                                    &t[i].id),
		                 0);
	assert_int_equal(sfd_client_handoff(t[N - 1].c, t[N - 1].dst, t[N - 1].src, 0, 0, 0, NULL,
	                                    5000, &t[N - 1].id),
	                 -EUSERS);
	/* The ordinary ones are cancelled when their clients leave; the
	 * hand-offs go on. */
	for (int i = 0; i < N; i++)
		ho_leave(&t[i]);
	for (int i = 2; i < MAX_PER_UID; i++) {
		sink_resume(t[i].sink, t[i].idx);
		assert_true(sink_wait(t[i].sink, t[i].idx, WAIT_MS));
		ho_assert_received(&t[i]);
	}
	for (int i = 0; i < N; i++)
		ho_teardown(&t[i]);
}

int
main(int argc, char **argv)
{
	static const char *const limit_args[] = {"--max-handoffs",
	                                         "3",
	                                         "--max-in-flight-per-uid",
	                                         "4",
	                                         "--max-in-flight",
	                                         "2",
	                                         NULL};
	const struct CMUnitTest tests[] = {
	        HTEST(test_reply_before_end_and_client_leaves),
	        HTEST(test_shut_wr_ends_the_stream),
	        HTEST(test_no_shut_wr_no_eof_while_client_holds),
	        HTEST(test_failing_handoff_reported),
	        HTEST(test_cancel_from_control_plane),
	        HTEST(test_refusals),
	};
	const struct CMUnitTest limit_tests[] = {
	        HTEST(test_limit_daemon_wide),
	        HTEST(test_limit_per_uid),
	};
	int failed;

	harness_init(argc, argv);
	failed = cmocka_run_group_tests_name("handoff", tests, harness_group_setup,
	                                     harness_group_teardown);
	harness_daemon_args(limit_args);
	failed += cmocka_run_group_tests_name("handoff limits", limit_tests, harness_group_setup,
	                                      harness_group_teardown);
	return failed ? 1 : 0;
}
