/*
 * harness.c - the daemon under test, descriptor accounting, receivers,
 * source files and hashes for the integration tests.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdmsg.h"
#include "harness.h"
#include "wire.h"

/* How long the daemon may take to start serving, to settle its descriptors
 * after a test, and to exit after SIGTERM. */
#define START_MS 10000
#define SETTLE_MS 5000
#define STOP_MS 15000

#define MAX_FDS 4096

struct daemon {
	pid_t pid;
	int status; /* from waitpid, once it exited */
	bool reaped;
	char dir[64];
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int baseline;
};

/* Sinks not yet freed: a failed test leaves its sink behind, and the test
 * teardown stops its thread before closing what the test left open. */
#define MAX_SINKS 64
static struct sink *live_sinks[MAX_SINKS];

static const char *daemon_bin;
static const char *const *extra_args;
static unsigned daemon_nofile; /* 0: inherit the limit */
static struct daemon dmn = {.pid = -1};

/* The test process's descriptors at the start of the current test. */
static struct {
	int n;
	int fds[MAX_FDS];
} snapshot;

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void
harness_init(int argc, char **argv)
{
	daemon_bin = getenv("SENDFILED_BIN");
	if ((!daemon_bin || !*daemon_bin) && argc > 1)
		daemon_bin = argv[1];
	if (!daemon_bin || !*daemon_bin) {
		fprintf(stderr, "set SENDFILED_BIN to the sendfiled executable, or pass it\n");
		exit(1);
	}
	signal(SIGPIPE, SIG_IGN);
	/* To run some tests only: SFD_TEST_FILTER=test_cancel* */
	if (getenv("SFD_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SFD_TEST_FILTER"));
}

void
harness_daemon_args(const char *const *args)
{
	extra_args = args;
}

void
harness_daemon_nofile(unsigned n)
{
	daemon_nofile = n;
}

const char *
daemon_socket(void)
{
	return dmn.sock;
}

pid_t
daemon_pid(void)
{
	return dmn.pid;
}

const char *
harness_tmpdir(void)
{
	return dmn.dir;
}

int
daemon_baseline(void)
{
	return dmn.baseline;
}

/* ---- descriptor listings -------------------------------------------------- */

/* List the open descriptors of @pid (0: this process), sorted, without the
 * one used to read the listing. Return: how many, or -errno. */
static int
list_fds(pid_t pid, int *fds, int cap)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/fd");
	else
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);

		if (de->d_name[0] == '.' || *end)
			continue;
		if (pid == 0 && fd == dirfd(d))
			continue;
		if (n < cap)
			fds[n++] = (int)fd;
	}
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];

			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	return n;
}

static void
describe_fd(pid_t pid, int fd, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	else
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, size - 1);
	buf[n < 0 ? 0 : n] = '\0';
}

int
daemon_fd_count(void)
{
	int fds[MAX_FDS];

	return list_fds(dmn.pid, fds, MAX_FDS);
}

bool
daemon_wait_fds(int n, int ms)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		if (daemon_fd_count() == n)
			return true;
		if (now_ms() >= deadline)
			return false;
		sleep_ms(5);
	}
}

static void
print_daemon_fds(void)
{
	int fds[MAX_FDS];
	int n = list_fds(dmn.pid, fds, MAX_FDS);

	fprintf(stderr, "daemon %d holds %d descriptors (baseline %d):\n", (int)dmn.pid, n,
	        dmn.baseline);
	for (int i = 0; i < n; i++) {
		char what[PATH_MAX];

		describe_fd(dmn.pid, fds[i], what, sizeof(what));
		fprintf(stderr, "  %d -> %s\n", fds[i], what);
	}
}

bool
daemon_alive(void)
{
	int st;

	if (dmn.reaped)
		return false;
	if (waitpid(dmn.pid, &st, WNOHANG) == dmn.pid) {
		dmn.status = st;
		dmn.reaped = true;
		return false;
	}
	return true;
}

/* ---- starting and stopping the daemon ------------------------------------ */

/* Connect, ping, and wait for the pong. Return: the connected socket or -1. */
static int
probe(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct wire_request req = {.op = WIRE_OP_PING, .id = 1};
	struct wire_response resp;
	unsigned char buf[WIRE_MAX_RECORD];
	struct pollfd p;
	int fds[FDMSG_MAX_FDS];
	size_t nfds = 0;
	ssize_t len;
	int fd;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", dmn.sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	len = wire_request_encode(&req, buf, sizeof(buf));
	if (len < 0 || fdmsg_send(fd, buf, (size_t)len, NULL, 0, 0) != len)
		goto fail;
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 2000) != 1)
		goto fail;
	len = fdmsg_recv(fd, buf, sizeof(buf), fds, &nfds, MSG_DONTWAIT);
	if (len <= 0 || wire_response_decode(buf, (size_t)len, &resp) < 0 || resp.id != 1 ||
	    resp.status != 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

static const char *
harness_loops_arg(void)
{
	const char *v = getenv("SFD_TEST_LOOPS");

	return v && *v ? v : "1";
}

unsigned
harness_loops(void)
{
	return (unsigned)atoi(harness_loops_arg());
}

static int
daemon_start(void)
{
	const char *argv[64];
	int64_t deadline;
	int argc = 0, fd, with_conn;

	memset(&dmn, 0, sizeof(dmn));
	dmn.pid = -1;
	snprintf(dmn.dir, sizeof(dmn.dir), "/tmp/sfd-it-XXXXXX");
	if (!mkdtemp(dmn.dir)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	snprintf(dmn.sock, sizeof(dmn.sock), "%s/sendfiled.sock", dmn.dir);

	argv[argc++] = daemon_bin;
	argv[argc++] = "--socket";
	argv[argc++] = dmn.sock;
	/* The control plane's listener check briefly holds two sockets: it
	 * would disturb the exact descriptor counts these tests compare. */
	argv[argc++] = "--control-probe-ms";
	argv[argc++] = "0";
	/* Every suite runs with one loop and again with several (meson sets
	 * SFD_TEST_LOOPS); a test's own --loops comes later and wins. */
	argv[argc++] = "--loops";
	argv[argc++] = harness_loops_arg();
	for (size_t i = 0; extra_args && extra_args[i] && argc < 62; i++)
		argv[argc++] = extra_args[i];
	argv[argc] = NULL;

	dmn.pid = fork();
	if (dmn.pid < 0)
		return -1;
	if (dmn.pid == 0) {
		/* Ours are all close-on-exec; whatever the test runner left
		 * open is not the daemon's business either: it starts with
		 * stdin, stdout and stderr only. */
		close_range(3, ~0u, 0);
		signal(SIGPIPE, SIG_DFL);
		if (daemon_nofile > 0) {
			/* The hard limit: the daemon raises its soft limit to
			 * the hard one at start. */
			struct rlimit rl = {daemon_nofile, daemon_nofile};

			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				_exit(126);
		}
		execv(daemon_bin, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", daemon_bin, strerror(errno));
		_exit(127);
	}

	deadline = now_ms() + START_MS;
	while ((fd = probe()) < 0) {
		if (!daemon_alive()) {
			fprintf(stderr, "the daemon exited during startup (status 0x%x)\n",
			        dmn.status);
			return -1;
		}
		if (now_ms() > deadline) {
			fprintf(stderr, "the daemon did not start serving %s\n", dmn.sock);
			return -1;
		}
		sleep_ms(10);
	}
	/* The probe's connection is the only one: without it the daemon is
	 * idle, and that is the count every test must come back to. */
	with_conn = daemon_fd_count();
	close(fd);
	dmn.baseline = with_conn - 1;
	if (!daemon_wait_fds(dmn.baseline, SETTLE_MS)) {
		fprintf(stderr, "the daemon did not close the probe connection\n");
		print_daemon_fds();
		return -1;
	}
	return 0;
}

static void
remove_tmpdir(void)
{
	DIR *d = opendir(dmn.dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX * 2];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dmn.dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dmn.dir);
}

/* Return: 0 if it exited with status 0 within STOP_MS. */
static int
daemon_stop(void)
{
	int64_t deadline = now_ms() + STOP_MS;
	int r = 0;

	if (dmn.pid <= 0)
		return -1;
	if (!dmn.reaped)
		kill(dmn.pid, SIGTERM);
	while (daemon_alive()) {
		if (now_ms() > deadline) {
			fprintf(stderr, "the daemon ignored SIGTERM for %d ms\n", STOP_MS);
			kill(dmn.pid, SIGKILL);
			waitpid(dmn.pid, &dmn.status, 0);
			dmn.reaped = true;
			r = -1;
			break;
		}
		sleep_ms(5);
	}
	if (r == 0 && !(WIFEXITED(dmn.status) && WEXITSTATUS(dmn.status) == 0)) {
		if (WIFSIGNALED(dmn.status))
			fprintf(stderr, "the daemon died of signal %d\n", WTERMSIG(dmn.status));
		else
			fprintf(stderr, "the daemon exited with status %d\n",
			        WEXITSTATUS(dmn.status));
		r = -1;
	}
	if (r == 0 && access(dmn.sock, F_OK) == 0) {
		fprintf(stderr, "the daemon left its socket %s behind\n", dmn.sock);
		r = -1;
	}
	remove_tmpdir();
	dmn.pid = -1;
	return r;
}

void
daemon_crash_and_restart(void)
{
	assert_true(daemon_alive());
	assert_int_equal(kill(dmn.pid, SIGKILL), 0);
	assert_int_equal(waitpid(dmn.pid, &dmn.status, 0), dmn.pid);
	dmn.reaped = true;
	/* It had no chance to remove its socket. */
	(void)unlink(dmn.sock);
	remove_tmpdir();
	assert_int_equal(daemon_start(), 0);
}

void
daemon_restart(void)
{
	assert_int_equal(daemon_stop(), 0);
	assert_int_equal(daemon_start(), 0);
}

int
harness_group_setup(void **state)
{
	(void)state;
	if (daemon_start() < 0) {
		if (dmn.pid > 0 && !dmn.reaped) {
			kill(dmn.pid, SIGKILL);
			waitpid(dmn.pid, NULL, 0);
		}
		remove_tmpdir();
		return -1;
	}
	return 0;
}

int
harness_group_teardown(void **state)
{
	bool idle;

	(void)state;
	idle = daemon_alive() && daemon_wait_fds(dmn.baseline, SETTLE_MS);
	if (!idle && daemon_alive()) {
		fprintf(stderr, "the daemon is not back to its baseline descriptors\n");
		print_daemon_fds();
	}
	if (!daemon_alive())
		fprintf(stderr, "the daemon is gone before the end of the group\n");
	return daemon_stop() == 0 && idle ? 0 : -1;
}

int
harness_test_setup(void **state)
{
	(void)state;
	snapshot.n = list_fds(0, snapshot.fds, MAX_FDS);
	assert_true(snapshot.n >= 0);
	assert_true(daemon_alive());
	return 0;
}

static bool
in_snapshot(int fd)
{
	for (int i = 0; i < snapshot.n; i++)
		if (snapshot.fds[i] == fd)
			return true;
	return false;
}

int
harness_test_teardown(void **state)
{
	int fds[MAX_FDS];
	int n;
	bool same = true, idle;

	(void)state;
	for (int i = 0; i < MAX_SINKS; i++)
		if (live_sinks[i]) {
			fprintf(stderr, "a receiver was left running by the test\n");
			sink_free(live_sinks[i]);
			same = false;
		}
	n = list_fds(0, fds, MAX_FDS);
	same = same && n == snapshot.n;
	for (int i = 0; i < n; i++) {
		char what[PATH_MAX];

		if (in_snapshot(fds[i]))
			continue;
		same = false;
		describe_fd(0, fds[i], what, sizeof(what));
		fprintf(stderr, "descriptor %d left open by the test: %s\n", fds[i], what);
		close(fds[i]);
	}
	for (int i = 0; i < snapshot.n; i++) {
		bool found = false;

		for (int j = 0; j < n; j++)
			found = found || fds[j] == snapshot.fds[i];
		if (!found) {
			same = false;
			fprintf(stderr, "descriptor %d was closed by the test\n", snapshot.fds[i]);
		}
	}
	assert_true(daemon_alive());
	idle = daemon_wait_fds(dmn.baseline, SETTLE_MS);
	if (!idle)
		print_daemon_fds();
	assert_true(same);
	assert_true(idle);
	return 0;
}

struct sfd_client *
client_open(void)
{
	struct sfd_client *c = NULL;

	assert_int_equal(sfd_client_open(dmn.sock, &c), 0);
	assert_non_null(c);
	return c;
}

/* ---- files ---------------------------------------------------------------- */

void
fill_random(void *buf, size_t n, uint64_t *state)
{
	unsigned char *p = buf;

	while (n > 0) {
		uint64_t x = *state, v;
		size_t k = n < 8 ? n : 8;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		*state = x;
		v = x * 0x2545f4914f6cdd1dULL;
		memcpy(p, &v, k);
		p += k;
		n -= k;
	}
}

void
tfile_create(char *path, uint64_t size, uint64_t seed)
{
	static unsigned serial;
	uint64_t st = seed * 0x9e3779b97f4a7c15ULL + 1;
	char *buf = malloc(MiB);
	int fd;

	assert_non_null(buf);
	snprintf(path, PATH_MAX, "%s/src-%u-%llu", dmn.dir, serial++, (unsigned long long)seed);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	for (uint64_t done = 0; done < size;) {
		size_t k = size - done < MiB ? (size_t)(size - done) : (size_t)MiB;

		fill_random(buf, k, &st);
		assert_int_equal(write(fd, buf, k), (ssize_t)k);
		done += k;
	}
	close(fd);
	free(buf);
}

bool
tfile_make_cold(const char *path)
{
	struct iovec iov;
	struct stat st;
	char byte;
	bool cold;
	int fd = tfile_open(path, O_RDONLY);

	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	/* Ask the page cache without reading from disk: is it gone? */
	iov = (struct iovec){.iov_base = &byte, .iov_len = 1};
	cold = preadv2(fd, &iov, 1, st.st_size / 2, RWF_NOWAIT) < 0 && errno == EAGAIN;
	close(fd);
	return cold;
}

int
tfile_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
	assert_true(fd >= 0);
	return fd;
}

off_t
fd_pos(int fd)
{
	return lseek(fd, 0, SEEK_CUR);
}

int
fd_flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl >= 0);
	return fl;
}

/* ---- sockets -------------------------------------------------------------- */

static void
set_cubic(int fd)
{
	static const char algo[] = "cubic";

	/* Not every kernel has it: the tests do not depend on it. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, algo, sizeof(algo) - 1);
}

void
tcp_pair(bool client_nonblock, int *ret_client, int *ret_server)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int lfd, cfd, sfd, r;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);

	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (client_nonblock ? SOCK_NONBLOCK : 0),
	             0);
	assert_true(cfd >= 0);
	set_cubic(cfd);
	r = connect(cfd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno == EINPROGRESS) {
		struct pollfd p = {.fd = cfd, .events = POLLOUT};
		int err = 0;
		socklen_t elen = sizeof(err);

		assert_int_equal(poll(&p, 1, 5000), 1);
		assert_int_equal(getsockopt(cfd, SOL_SOCKET, SO_ERROR, &err, &elen), 0);
		r = err ? -1 : 0;
	}
	assert_int_equal(r, 0);
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(sfd >= 0);
	set_cubic(sfd);
	close(lfd);
	*ret_client = cfd;
	*ret_server = sfd;
}

void
range_sha256(int fd, uint64_t off, uint64_t len, uint8_t out[32])
{
	struct sha256 s;
	char *buf = malloc(MiB);

	assert_non_null(buf);
	sha256_init(&s);
	while (len > 0) {
		ssize_t n = pread(fd, buf, len < MiB ? (size_t)len : (size_t)MiB, (off_t)off);

		assert_true(n > 0);
		sha256_update(&s, buf, (size_t)n);
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	free(buf);
	sha256_final(&s, out);
}

/* ---- receivers ------------------------------------------------------------ */

#define SINK_BUF (256 * 1024)
#define SINK_SLOW_READ (16 * 1024)

struct stream {
	int fd;
	struct sink_opts o;
	bool paused;
	bool done;
	int err; /* errno of a failed read, 0 */
	uint64_t bytes;
	int64_t next_read_ms; /* slow streams: not before this */
	struct sha256 hash;
	uint8_t digest[32];
};

struct sink {
	pthread_t thread;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	int wake; /* eventfd: the set of streams changed */
	bool stop;
	struct stream *st;
	size_t n, cap;
};

static void
sink_wake(struct sink *s)
{
	uint64_t one = 1;

	(void)!write(s->wake, &one, sizeof(one));
}

/* Called with the lock held. */
static void
stream_end(struct sink *s, struct stream *st, int err)
{
	st->err = err;
	st->done = true;
	sha256_final(&st->hash, st->digest);
	close(st->fd);
	st->fd = -1;
	pthread_cond_broadcast(&s->cond);
}

static void *
sink_thread(void *arg)
{
	struct sink *s = arg;
	char *buf = malloc(SINK_BUF);
	struct pollfd *pfd = NULL;
	size_t *idx = NULL, pcap = 0;

	if (!buf)
		abort();
	for (;;) {
		int64_t now = now_ms();
		int timeout = -1;
		size_t np = 1;

		pthread_mutex_lock(&s->mtx);
		if (s->stop) {
			pthread_mutex_unlock(&s->mtx);
			break;
		}
		if (pcap < s->n + 1) {
			pcap = 2 * (s->n + 1);
			pfd = realloc(pfd, pcap * sizeof(*pfd));
			idx = realloc(idx, pcap * sizeof(*idx));
			if (!pfd || !idx)
				abort();
		}
		pfd[0] = (struct pollfd){.fd = s->wake, .events = POLLIN};
		for (size_t i = 0; i < s->n; i++) {
			struct stream *st = &s->st[i];

			if (st->done || st->paused)
				continue;
			if (st->next_read_ms > now) {
				int left = (int)(st->next_read_ms - now);

				if (timeout < 0 || left < timeout)
					timeout = left;
				continue;
			}
			pfd[np] = (struct pollfd){.fd = st->fd, .events = POLLIN};
			idx[np++] = i;
		}
		pthread_mutex_unlock(&s->mtx);

		if (poll(pfd, np, timeout) < 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			uint64_t v;

			(void)!read(s->wake, &v, sizeof(v));
		}
		for (size_t k = 1; k < np; k++) {
			struct stream *st;
			size_t want = SINK_BUF;
			uint64_t limit;
			ssize_t n;
			int err;

			if (!pfd[k].revents)
				continue;
			pthread_mutex_lock(&s->mtx);
			st = &s->st[idx[k]];
			if (st->o.delay_ms)
				want = SINK_SLOW_READ;
			limit = st->o.close_after;
			if (limit && limit - st->bytes < want)
				want = (size_t)(limit - st->bytes);
			pthread_mutex_unlock(&s->mtx);

			/* Only this thread reads or closes a stream's fd. */
			if (pfd[k].revents & POLLNVAL) {
				n = -1;
				err = EBADF;
			} else {
				n = read(pfd[k].fd, buf, want);
				err = n < 0 ? errno : 0;
			}
			if (n < 0 && (err == EAGAIN || err == EINTR))
				continue;

			pthread_mutex_lock(&s->mtx);
			st = &s->st[idx[k]];
			if (n > 0) {
				sha256_update(&st->hash, buf, (size_t)n);
				st->bytes += (uint64_t)n;
				if (st->o.delay_ms)
					st->next_read_ms = now_ms() + st->o.delay_ms;
				if (limit && st->bytes >= limit)
					stream_end(s, st, 0);
			} else {
				stream_end(s, st, n < 0 ? err : 0);
			}
			pthread_mutex_unlock(&s->mtx);
		}
	}
	free(buf);
	free(pfd);
	free(idx);
	return NULL;
}

struct sink *
sink_new(void)
{
	struct sink *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;

	assert_non_null(s);
	pthread_mutex_init(&s->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	s->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(s->wake >= 0);
	assert_int_equal(pthread_create(&s->thread, NULL, sink_thread, s), 0);
	for (int i = 0; i < MAX_SINKS; i++)
		if (!live_sinks[i]) {
			live_sinks[i] = s;
			break;
		}
	return s;
}

int
sink_add(struct sink *s, int fd, const struct sink_opts *o)
{
	static const struct sink_opts defaults;
	struct stream *st;
	int i;

	pthread_mutex_lock(&s->mtx);
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->st = realloc(s->st, s->cap * sizeof(*s->st));
		if (!s->st)
			abort();
	}
	i = (int)s->n++;
	st = &s->st[i];
	memset(st, 0, sizeof(*st));
	st->fd = fd;
	st->o = o ? *o : defaults;
	st->paused = st->o.paused;
	sha256_init(&st->hash);
	pthread_mutex_unlock(&s->mtx);
	sink_wake(s);
	return i;
}

void
sink_resume(struct sink *s, int idx)
{
	pthread_mutex_lock(&s->mtx);
	s->st[idx].paused = false;
	s->st[idx].o.delay_ms = 0;
	s->st[idx].next_read_ms = 0;
	pthread_mutex_unlock(&s->mtx);
	sink_wake(s);
}

static struct timespec
deadline_ts(int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

bool
sink_wait(struct sink *s, int idx, int ms)
{
	struct timespec ts = deadline_ts(ms);
	bool done;

	pthread_mutex_lock(&s->mtx);
	while (!s->st[idx].done)
		if (pthread_cond_timedwait(&s->cond, &s->mtx, &ts) == ETIMEDOUT)
			break;
	done = s->st[idx].done;
	pthread_mutex_unlock(&s->mtx);
	return done;
}

size_t
sink_queued(struct sink *s, int idx)
{
	int q = 0;

	pthread_mutex_lock(&s->mtx);
	if (s->st[idx].fd >= 0)
		(void)ioctl(s->st[idx].fd, FIONREAD, &q);
	pthread_mutex_unlock(&s->mtx);
	return q > 0 ? (size_t)q : 0;
}

bool
sink_wait_queued(struct sink *s, int idx, size_t n, int ms)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		size_t q = sink_queued(s, idx);

		if (q > 0 && q >= n)
			return true;
		if (now_ms() > deadline)
			return false;
		sleep_ms(2);
	}
}

uint64_t
sink_bytes(struct sink *s, int idx)
{
	uint64_t n;

	pthread_mutex_lock(&s->mtx);
	n = s->st[idx].bytes;
	pthread_mutex_unlock(&s->mtx);
	return n;
}

void
sink_digest(struct sink *s, int idx, uint8_t out[32])
{
	pthread_mutex_lock(&s->mtx);
	memcpy(out, s->st[idx].digest, 32);
	pthread_mutex_unlock(&s->mtx);
}

void
sink_free(struct sink *s)
{
	if (!s)
		return;
	for (int i = 0; i < MAX_SINKS; i++)
		if (live_sinks[i] == s)
			live_sinks[i] = NULL;
	pthread_mutex_lock(&s->mtx);
	s->stop = true;
	pthread_mutex_unlock(&s->mtx);
	sink_wake(s);
	pthread_join(s->thread, NULL);
	for (size_t i = 0; i < s->n; i++)
		if (s->st[i].fd >= 0)
			close(s->st[i].fd);
	close(s->wake);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mtx);
	free(s->st);
	free(s);
}

void
assert_received(struct sink *s, int idx, int src_fd, uint64_t off, uint64_t len)
{
	uint8_t want[32], got[32];

	if (!sink_wait(s, idx, 20000))
		fail_msg("receiver %d did not see end of file (%llu bytes read)", idx,
		         (unsigned long long)sink_bytes(s, idx));
	assert_int_equal(sink_bytes(s, idx), len);
	range_sha256(src_fd, off, len, want);
	sink_digest(s, idx, got);
	assert_memory_equal(got, want, 32);
}

/* ---- the asynchronous API ------------------------------------------------- */

void
harness_on_done(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	struct done_slot *slot = userdata;

	(void)c;
	(void)id;
	slot->res = *res;
	slot->done = true;
	slot->times++;
	if (slot->counter)
		(*slot->counter)++;
}

bool
pump(struct sfd_client *c, const unsigned *counter, unsigned target, int ms)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		struct pollfd p = {.fd = sfd_client_get_fd(c), .events = POLLIN};
		int64_t left;
		int r;

		r = sfd_client_dispatch(c, harness_on_done);
		if (r < 0)
			fail_msg("sfd_client_dispatch: %s", strerror(-r));
		if (*counter >= target)
			return true;
		left = deadline - now_ms();
		if (left <= 0)
			return false;
		(void)poll(&p, 1, (int)left);
	}
}

void
assert_daemon_serves(void)
{
	const uint64_t size = 100 * KiB + 1;
	struct sfd_client *c = client_open();
	struct sink *s = sink_new();
	struct sfd_result res;
	char path[PATH_MAX];
	int src, dst, srv, idx;

	tfile_create(path, size, 0xfeed);
	src = tfile_open(path, O_RDONLY);
	tcp_pair(true, &dst, &srv);
	idx = sink_add(s, srv, NULL);
	assert_int_equal(sfd_client_sendfile(c, dst, src, 1, 0, 0, 10000, &res), 0);
	assert_result(&res, SFD_STATUS_OK, size - 1, size, SFD_METHOD_SENDFILE);
	assert_int_equal(fd_pos(src), size);
	close(dst);
	assert_received(s, idx, src, 1, size - 1);
	close(src);
	unlink(path);
	sink_free(s);
	sfd_client_free(c);
}
