/*
 * test-loops.c - what must hold across the daemon's event loops: two
 * connections on two loops sending to one destination run one after the
 * other, in order; two loops sending from one open file see each other;
 * the per-uid limit is exact however many loops take
 * requests; the statistics add up to what the clients saw; a drain lets the
 * transfers of every loop finish.
 *
 * Run with SFD_TEST_LOOPS=2 (meson's test-loops-loops2): with one loop the
 * tests that need two are skipped, the others still run. The control plane
 * (sendfilectl --json) says which loop serves what.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "sha256.h"

/* Loops whose transfers the drain test counts. */
#define LOOPS_SEEN 64

/* ---- the control plane, through sendfilectl ------------------------------ */

/* The JSON that `sendfilectl @cmd --json` prints, in @out. */
static void
ctl_json(const char *cmd, char *out, size_t cap)
{
	const char *bin = getenv("SENDFILECTL_BIN");
	char line[PATH_MAX + 256];
	size_t n;
	FILE *f;

	assert_non_null(bin);
	snprintf(line, sizeof(line), "%s -s %s %s --json", bin, daemon_socket(), cmd);
	f = popen(line, "re");
	assert_non_null(f);
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	assert_int_equal(pclose(f), 0);
}

/* The number after "@key": in @json (the first one from @from on). */
static unsigned long long
json_num(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	if (!p)
		fail_msg("no %s in %s", key, json);
	return strtoull(p + strlen(pat), NULL, 10);
}

/* Connections on each loop, from status: how many loops have at least one. */
static unsigned
loops_with_connections(unsigned *ret_loops)
{
	char json[4096];
	const char *p;
	unsigned busy = 0;

	ctl_json("status", json, sizeof(json));
	*ret_loops = (unsigned)json_num(json, "loops");
	p = strstr(json, "\"loop_connections\":[");
	assert_non_null(p);
	p += strlen("\"loop_connections\":[");
	while (*p && *p != ']') {
		char *end;

		if (strtoul(p, &end, 10) > 0)
			busy++;
		p = *end == ',' ? end + 1 : end;
	}
	return busy;
}

struct listed {
	unsigned n;
	unsigned long long count[64];
	unsigned loop[64];
	bool waiting[64];
};

/* The transfers in flight. */
static void
list_transfers(struct listed *l)
{
	static char json[64 * 1024];
	const char *p = json;

	memset(l, 0, sizeof(*l));
	ctl_json("list", json, sizeof(json));
	while ((p = strstr(p, "{\"transfer\":")) && l->n < 64) {
		const char *end = strchr(p, '}');
		char one[1024];

		assert_non_null(end);
		snprintf(one, sizeof(one), "%.*s", (int)(end - p + 1), p);
		l->count[l->n] = strstr(one, "\"count\":null") ? 0 : json_num(one, "count");
		l->loop[l->n] = (unsigned)json_num(one, "loop");
		l->waiting[l->n] = strstr(one, "\"waiting\":true") != NULL;
		l->n++;
		p = end;
	}
}

struct stats {
	unsigned long long requests, bytes_sent, ok, limit, in_flight, refused;
};

static void
get_stats(struct stats *s)
{
	static char json[64 * 1024];
	const char *bs;

	ctl_json("stats", json, sizeof(json));
	s->requests = json_num(json, "requests");
	s->bytes_sent = json_num(json, "bytes_sent");
	s->in_flight = json_num(json, "in_flight");
	s->refused = json_num(json, "connections_refused");
	bs = strstr(json, "\"by_status\":");
	assert_non_null(bs);
	s->ok = json_num(bs, "ok");
	s->limit = json_num(bs, "limit");
}

static void
skip_unless_loops(void)
{
	if (harness_loops() < 2)
		skip();
}

/* Wait until the daemon counts @want connections (accepted, and handed to
 * their loops). */
static void
wait_connections(unsigned want)
{
	int64_t deadline = now_ms() + 5000;
	char json[4096];

	for (;;) {
		ctl_json("status", json, sizeof(json));
		if (json_num(json, "connections") == want)
			return;
		if (now_ms() > deadline)
			fail_msg("%llu connections, want %u", json_num(json, "connections"), want);
		sleep_ms(5);
	}
}

/* One client per loop (the daemon hands each new connection to the loop
 * with the fewest), checked with status. Return: how many were opened. */
static unsigned
clients_on_every_loop(struct sfd_client **c, unsigned max)
{
	unsigned loops = 0;

	(void)loops_with_connections(&loops);
	assert_true(loops >= 1 && loops <= max);
	for (unsigned i = 0; i < loops; i++)
		c[i] = client_open();
	wait_connections(loops);
	assert_int_equal(loops_with_connections(&loops), loops);
	return loops;
}

/* ---- one destination, two loops ------------------------------------------ */

/*
 * A large file A from a connection on one loop, then a file B to the same
 * socket from a connection on another: B waits for A (the list says so, and
 * names two loops), then follows it. The peer receives A then B.
 */
static void
test_two_loops_one_destination_in_order(void **state)
{
	const uint64_t size_a = 8 * MiB, size_b = 1 * MiB;
	const struct sink_opts paused = {.paused = true};
	struct sfd_client *c[8];
	struct done_slot slot_a = {0}, slot_b = {0};
	char path_a[PATH_MAX], path_b[PATH_MAX];
	unsigned n, done_a = 0, done_b = 0;
	uint8_t want[32], got[32];
	struct sha256 h;
	int src_a, src_b, dst, srv, idx;
	uint64_t id_a, id_b;
	struct sink *s;
	struct listed l;
	int64_t deadline;
	bool seen = false;

	(void)state;
	skip_unless_loops();
	n = clients_on_every_loop(c, 8);
	assert_true(n >= 2);
	tfile_create(path_a, size_a, 501);
	tfile_create(path_b, size_b, 502);
	src_a = tfile_open(path_a, O_RDONLY);
	src_b = tfile_open(path_b, O_RDONLY);
	s = sink_new();
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, &paused);
	slot_a.counter = &done_a;
	slot_b.counter = &done_b;

	/* A starts (its first bytes wait in the paused receiver's socket)... */
	assert_int_equal(
	        sfd_client_submit(c[0], dst, src_a, 0, size_a, SFD_NO_INLINE, &slot_a, &id_a), 0);
	assert_true(sink_wait_queued(s, idx, 1, 5000));
	/* ...then B, on the last client opened: another loop than c[0]'s. */
	assert_int_equal(
	        sfd_client_submit(c[n - 1], dst, src_b, 0, size_b, SFD_NO_INLINE, &slot_b, &id_b),
	        0);
	deadline = now_ms() + 5000;
	while (!seen && now_ms() < deadline) {
		list_transfers(&l);
		if (l.n == 2) {
			/* Request ids are per connection: told apart by count. */
			unsigned ia = l.count[0] == size_a ? 0 : 1, ib = 1 - ia;

			assert_int_equal(l.count[ia], size_a);
			assert_int_equal(l.count[ib], size_b);
			/* Two loops, and B waits behind A. */
			assert_int_not_equal(l.loop[ia], l.loop[ib]);
			assert_false(l.waiting[ia]);
			assert_true(l.waiting[ib]);
			seen = true;
		} else {
			sleep_ms(10);
		}
	}
	assert_true(seen);

	sink_resume(s, idx);
	assert_true(pump(c[0], &done_a, 1, 30000));
	assert_true(pump(c[n - 1], &done_b, 1, 30000));
	assert_result(&slot_a.res, SFD_STATUS_OK, size_a, size_a, SFD_METHOD_SENDFILE);
	assert_result(&slot_b.res, SFD_STATUS_OK, size_b, size_b, SFD_METHOD_SENDFILE);
	assert_int_equal(fd_pos(src_a), size_a);
	assert_int_equal(fd_pos(src_b), size_b);
	close(dst);
	assert_true(sink_wait(s, idx, 30000));
	assert_int_equal(sink_bytes(s, idx), size_a + size_b);

	/* The whole stream: all of A, then all of B. */
	sha256_init(&h);
	{
		static unsigned char buf[1 << 16];

		for (int k = 0; k < 2; k++) {
			int fd = k == 0 ? src_a : src_b;
			uint64_t size = k == 0 ? size_a : size_b;

			for (uint64_t off = 0; off < size; off += sizeof(buf)) {
				ssize_t r = pread(fd, buf, sizeof(buf), (off_t)off);

				assert_true(r > 0);
				sha256_update(&h, buf, (size_t)r);
			}
		}
	}
	sha256_final(&h, want);
	sink_digest(s, idx, got);
	assert_memory_equal(got, want, 32);

	sink_free(s);
	close(src_a);
	close(src_b);
	for (unsigned i = 0; i < n; i++)
		sfd_client_free(c[i]);
}

/* ---- one open file, two loops ------------------------------------------- */

/*
 * One source descriptor (one open file description) sent from connections
 * on two loops at once, two ranges to two receivers: each must see that the
 * other shares the description, or both would move its one position and
 * send each other's bytes. Each receiver gets exactly its range; the one to
 * finish last sets the position.
 */
static void
test_two_loops_one_source(void **state)
{
	const uint64_t size = 16 * MiB, len = 4 * MiB, off_b = 8 * MiB;
	const struct sink_opts paused = {.paused = true};
	struct sfd_client *c[8];
	struct done_slot slot_a = {0}, slot_b = {0};
	unsigned n, done_a = 0, done_b = 0;
	char path[PATH_MAX];
	int src, dst_a, dst_b, srv, idx_a, idx_b;
	uint64_t id;
	struct sink *s;
	struct listed l;

	(void)state;
	skip_unless_loops();
	n = clients_on_every_loop(c, 8);
	tfile_create(path, size, 506);
	src = tfile_open(path, O_RDONLY);
	s = sink_new();
	tcp_pair(true, &dst_a, &srv);
	idx_a = sink_add(s, srv, &paused);
	tcp_pair(true, &dst_b, &srv);
	idx_b = sink_add(s, srv, &paused);
	slot_a.counter = &done_a;
	slot_b.counter = &done_b;
	assert_int_equal(sfd_client_submit(c[0], dst_a, src, 0, len, SFD_NO_INLINE, &slot_a, &id),
	                 0);
	assert_int_equal(
	        sfd_client_submit(c[n - 1], dst_b, src, off_b, len, SFD_NO_INLINE, &slot_b, &id),
	        0);
	assert_true(sink_wait_queued(s, idx_a, 1, 5000));
	assert_true(sink_wait_queued(s, idx_b, 1, 5000));
	list_transfers(&l);
	assert_int_equal(l.n, 2);
	assert_int_not_equal(l.loop[0], l.loop[1]);

	/* A first, then B: B is the last to finish. */
	sink_resume(s, idx_a);
	assert_true(pump(c[0], &done_a, 1, 30000));
	assert_result(&slot_a.res, SFD_STATUS_OK, len, len, SFD_METHOD_SENDFILE);
	sink_resume(s, idx_b);
	assert_true(pump(c[n - 1], &done_b, 1, 30000));
	assert_result(&slot_b.res, SFD_STATUS_OK, len, off_b + len, SFD_METHOD_SENDFILE);
	assert_int_equal(fd_pos(src), off_b + len);
	close(dst_a);
	close(dst_b);
	assert_received(s, idx_a, src, 0, len);
	assert_received(s, idx_b, src, off_b, len);
	sink_free(s);
	close(src);
	for (unsigned i = 0; i < n; i++)
		sfd_client_free(c[i]);
}

/* ---- statistics ----------------------------------------------------------- */

/*
 * Many small transfers from connections on every loop: the daemon's totals
 * grow by exactly what the clients were told. (SFD_NO_INLINE here and below:
 * these tests are about the daemon, which must see every byte.)
 */
static void
test_stats_add_up(void **state)
{
	enum { CLIENTS = 6, EACH = 40 };
	struct sfd_client *c[CLIENTS];
	struct stats before, after;
	char path[PATH_MAX];
	uint64_t sum = 0;
	int src;

	(void)state;
	tfile_create(path, 256 * KiB, 503);
	src = tfile_open(path, O_RDONLY);
	for (int i = 0; i < CLIENTS; i++)
		c[i] = client_open();
	get_stats(&before);
	for (int k = 0; k < EACH; k++) {
		for (int i = 0; i < CLIENTS; i++) {
			struct sink *s = sink_new();
			struct sfd_result res;
			uint64_t off = (uint64_t)(k * 977 + i * 4099) % (256 * KiB);
			int dst, srv, idx;

			tcp_pair(true, &dst, &srv);
			idx = sink_add(s, srv, NULL);
			assert_int_equal(sfd_client_sendfile(c[i], dst, src, off, 0, SFD_NO_INLINE,
			                                     10000, &res),
			                 0);
			assert_int_equal(res.status, SFD_STATUS_OK);
			sum += res.bytes_sent;
			close(dst);
			assert_received(s, idx, src, off, res.bytes_sent);
			sink_free(s);
		}
	}
	get_stats(&after);
	assert_int_equal(after.requests - before.requests, CLIENTS * EACH);
	assert_int_equal(after.ok - before.ok, CLIENTS * EACH);
	assert_int_equal(after.bytes_sent - before.bytes_sent, sum);
	assert_int_equal(after.in_flight, 0);
	for (int i = 0; i < CLIENTS; i++)
		sfd_client_free(c[i]);
	close(src);
}

/* ---- the per-uid limit (a daemon allowing 8 per uid, 9 connections) ------- */

#define UID_LIMIT 8

/*
 * Requests from 8 connections spread over the loops, 4 each, to receivers
 * that do not read: exactly UID_LIMIT are taken, the rest refused with
 * LIMIT; never more than UID_LIMIT in flight; the counts in stats are exact.
 */
static void
test_uid_limit_exact_across_loops(void **state)
{
	enum { CLIENTS = 8, EACH = 4, TOTAL = CLIENTS * EACH };
	const struct sink_opts paused = {.paused = true};
	struct sfd_client *c[CLIENTS];
	struct done_slot *slot = calloc(TOTAL, sizeof(*slot));
	unsigned done[CLIENTS] = {0};
	int src[TOTAL], dst[TOTAL], idx[TOTAL];
	uint64_t id[TOTAL];
	struct stats before, mid, after;
	unsigned ok = 0, limited = 0, busy, loops;
	char path[PATH_MAX];
	struct sink *s = sink_new();
	uint64_t sum = 0;
	struct listed l;

	(void)state;
	assert_non_null(slot);
	tfile_create(path, 32 * MiB, 504);
	for (int i = 0; i < CLIENTS; i++)
		c[i] = client_open();
	wait_connections(CLIENTS);
	busy = loops_with_connections(&loops);
	assert_int_equal(busy, loops < CLIENTS ? loops : CLIENTS);
	get_stats(&before);
	for (int k = 0; k < TOTAL; k++) {
		int srv;

		src[k] = tfile_open(path, O_RDONLY);
		tcp_pair(true, &dst[k], &srv);
		idx[k] = sink_add(s, srv, &paused);
		slot[k].counter = &done[k % CLIENTS];
	}
	/* Interleaved over the connections, so every loop takes requests at
	 * the same time. */
	for (int k = 0; k < TOTAL; k++)
		assert_int_equal(sfd_client_submit(c[k % CLIENTS], dst[k], src[k], 0, 0,
		                                   SFD_NO_INLINE, &slot[k], &id[k]),
		                 0);
	/* The refused ones are answered at once. */
	for (int i = 0; i < CLIENTS; i++) {
		int64_t deadline = now_ms() + 10000;

		while (now_ms() < deadline) {
			(void)pump(c[i], &done[i], EACH, 20);
			get_stats(&mid);
			if (mid.limit - before.limit == TOTAL - UID_LIMIT)
				break;
		}
	}
	get_stats(&mid);
	assert_int_equal(mid.limit - before.limit, TOTAL - UID_LIMIT);
	assert_int_equal(mid.in_flight, UID_LIMIT);
	list_transfers(&l);
	assert_int_equal(l.n, UID_LIMIT);
	for (int k = 0; k < TOTAL; k++) {
		if (!slot[k].done)
			continue;
		assert_int_equal(slot[k].res.status, SFD_STATUS_LIMIT);
		assert_int_equal(slot[k].res.bytes_sent, 0);
		assert_int_equal(fd_pos(src[k]), 0);
		limited++;
	}
	assert_int_equal(limited, TOTAL - UID_LIMIT);

	for (int k = 0; k < TOTAL; k++)
		sink_resume(s, idx[k]);
	for (int i = 0; i < CLIENTS; i++)
		assert_true(pump(c[i], &done[i], EACH, 60000));
	for (int k = 0; k < TOTAL; k++) {
		if (slot[k].res.status == SFD_STATUS_OK) {
			assert_int_equal(slot[k].res.bytes_sent, 32 * MiB);
			assert_int_equal(fd_pos(src[k]), 32 * MiB);
			sum += slot[k].res.bytes_sent;
			ok++;
		}
		close(dst[k]);
		assert_received(s, idx[k], src[k], 0, slot[k].res.bytes_sent);
		close(src[k]);
	}
	assert_int_equal(ok, UID_LIMIT);
	get_stats(&after);
	assert_int_equal(after.ok - before.ok, UID_LIMIT);
	assert_int_equal(after.limit - before.limit, TOTAL - UID_LIMIT);
	assert_int_equal(after.requests - before.requests, TOTAL);
	assert_int_equal(after.bytes_sent - before.bytes_sent, sum);
	assert_int_equal(after.in_flight, 0);
	sink_free(s);
	for (int i = 0; i < CLIENTS; i++)
		sfd_client_free(c[i]);
	free(slot);
}

/* ---- max_connections (9, with the per-uid limit's group) ------------------ */

#define MAX_CONNS 9

/* A bare connection to the data socket. */
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

/*
 * Connections accepted by loop 0 and served by every loop count against one
 * limit: MAX_CONNS are taken, the next is closed at once and counted as
 * refused; one that goes makes room for one more.
 */
static void
test_max_connections_across_loops(void **state)
{
	int fd[MAX_CONNS], extra;
	struct stats before, after;
	unsigned loops, busy;
	struct pollfd p;
	char b;

	(void)state;
	get_stats(&before);
	for (int i = 0; i < MAX_CONNS; i++)
		fd[i] = raw_connect();
	wait_connections(MAX_CONNS);
	busy = loops_with_connections(&loops);
	assert_int_equal(busy, loops < MAX_CONNS ? loops : MAX_CONNS);

	/* One too many: the daemon closes it. */
	extra = raw_connect();
	p = (struct pollfd){.fd = extra, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_true(recv(extra, &b, 1, 0) <= 0);
	close(extra);
	get_stats(&after);
	assert_int_equal(after.refused - before.refused, 1);
	wait_connections(MAX_CONNS);

	/* One goes: room for one more. */
	close(fd[0]);
	wait_connections(MAX_CONNS - 1);
	fd[0] = raw_connect();
	wait_connections(MAX_CONNS);
	get_stats(&after);
	assert_int_equal(after.refused - before.refused, 1);
	for (int i = 0; i < MAX_CONNS; i++)
		close(fd[i]);
	wait_connections(0);
}

/* ---- drain ----------------------------------------------------------------- */

/* pump(), for a connection the daemon closes right after the last reply
 * (it is stopping): the end may come in the same read as the reply. */
static bool
pump_to_end(struct sfd_client *c, const unsigned *counter, unsigned target, int ms)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		struct pollfd p = {.fd = sfd_client_get_fd(c), .events = POLLIN};
		int r = sfd_client_dispatch(c, harness_on_done);

		if (*counter >= target)
			return true;
		if (r < 0)
			fail_msg("sfd_client_dispatch: %s", strerror(-r));
		if (now_ms() > deadline)
			return false;
		(void)poll(&p, 1, 100);
	}
}

/*
 * Transfers in flight on every loop when SIGTERM comes: the daemon stops
 * accepting, lets every one of them finish, then exits 0 having removed its
 * socket (daemon_restart() checks), every thread joined.
 */
static void
test_drain_every_loop(void **state)
{
	enum { MAXC = 8 };
	const struct sink_opts paused = {.paused = true};
	const uint64_t size = 4 * MiB;
	struct sfd_client *c[MAXC];
	struct done_slot slot[MAXC];
	unsigned done[MAXC] = {0}, n, loops, on_loop[LOOPS_SEEN] = {0};
	int src[MAXC], dst[MAXC], idx[MAXC];
	uint64_t id[MAXC];
	char path[PATH_MAX];
	struct sink *s = sink_new();
	struct listed l;

	(void)state;
	memset(slot, 0, sizeof(slot));
	n = clients_on_every_loop(c, MAXC);
	(void)loops_with_connections(&loops);
	tfile_create(path, size, 505);
	for (unsigned i = 0; i < n; i++) {
		int srv;

		src[i] = tfile_open(path, O_RDONLY);
		tcp_pair(true, &dst[i], &srv);
		idx[i] = sink_add(s, srv, &paused);
		slot[i].counter = &done[i];
		assert_int_equal(sfd_client_submit(c[i], dst[i], src[i], 0, 0, SFD_NO_INLINE,
		                                   &slot[i], &id[i]),
		                 0);
		assert_true(sink_wait_queued(s, idx[i], 1, 5000));
	}
	list_transfers(&l);
	assert_int_equal(l.n, n);
	for (unsigned i = 0; i < l.n; i++)
		if (l.loop[i] < LOOPS_SEEN)
			on_loop[l.loop[i]]++;
	for (unsigned i = 0; i < loops && i < LOOPS_SEEN; i++)
		assert_true(on_loop[i] > 0);

	assert_int_equal(kill(daemon_pid(), SIGTERM), 0);
	for (unsigned i = 0; i < n; i++)
		sink_resume(s, idx[i]);
	for (unsigned i = 0; i < n; i++) {
		assert_true(pump_to_end(c[i], &done[i], 1, 30000));
		assert_result(&slot[i].res, SFD_STATUS_OK, size, size, SFD_METHOD_SENDFILE);
		assert_int_equal(fd_pos(src[i]), size);
		close(dst[i]);
		assert_received(s, idx[i], src[i], 0, size);
		close(src[i]);
	}
	sink_free(s);
	for (unsigned i = 0; i < n; i++)
		sfd_client_free(c[i]);
	/* It exits 0, its socket removed; a new one serves the rest. */
	daemon_restart();
}

int
main(int argc, char **argv)
{
	static const char *const limit_args[] = {"--max-in-flight-per-uid", "8",
	                                         "--max-connections", "9", NULL};
	const struct CMUnitTest tests[] = {
	        HTEST(test_two_loops_one_destination_in_order),
	        HTEST(test_two_loops_one_source),
	        HTEST(test_stats_add_up),
	        HTEST(test_drain_every_loop),
	        HTEST(test_stats_add_up),
	};
	const struct CMUnitTest limit_tests[] = {
	        HTEST(test_uid_limit_exact_across_loops),
	        HTEST(test_max_connections_across_loops),
	};
	int failed;

	harness_init(argc, argv);
	failed = cmocka_run_group_tests_name("loops", tests, harness_group_setup,
	                                     harness_group_teardown);
	harness_daemon_args(limit_args);
	failed += cmocka_run_group_tests_name("uid-limit", limit_tests, harness_group_setup,
	                                      harness_group_teardown);
	return failed;
}
