/*
 * runner-c.c - the conformance runner of libsendfiled, the C client.
 *
 * Reads cases from standard input, one per line ("key=value ..."), runs each
 * through the public API (sfd_client_sendfile(), or sfd_client_submit() and
 * sfd_client_cancel() for a cancel mid-transfer) against the daemon at
 * $SENDFILED_SOCKET, and prints one JSON report per case. It judges nothing:
 * tests/conformance/run.py does (see README.md there).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sendfiled.h"
#include "sha256.h"

struct kase {
	char name[128], op[16], source[16], dest[16], action[16], path[256];
	uint64_t size, offset, count, at; /* count 0: absent, to end of file */
	bool fallback;
};

/* The reading end of the destination, on a thread of its own. */
struct receiver {
	int fd;
	const struct kase *k;
	int reached; /* eventfd: written once @at bytes were read */
	int resume;  /* eventfd: the cancel's answer came, read the rest */
	uint64_t len;
	struct sha256 hash;
	pthread_t thread;
};

static uint8_t
gen_byte(uint64_t i)
{
	return (uint8_t)((i * 31 + (i >> 12)) & 0xff);
}

static void
gen_fill(uint8_t *buf, uint64_t from, size_t n)
{
	for (size_t j = 0; j < n; j++)
		buf[j] = gen_byte(from + j);
}

static void
die(const char *what)
{
	fprintf(stderr, "runner-c: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void
notify(int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) < 0)
		die("eventfd write");
}

static void
wait_event(int efd)
{
	uint64_t v;

	while (read(efd, &v, sizeof(v)) < 0)
		if (errno != EINTR)
			die("eventfd read");
}

static void *
receive(void *arg)
{
	struct receiver *r = arg;
	uint8_t buf[64 * 1024];
	bool stop_at = strcmp(r->k->action, "none") != 0;

	for (;;) {
		size_t want = sizeof(buf);
		ssize_t n;

		if (stop_at && r->len < r->k->at && r->k->at - r->len < want)
			want = (size_t)(r->k->at - r->len);
		n = read(r->fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		sha256_update(&r->hash, buf, (size_t)n);
		r->len += (uint64_t)n;
		if (stop_at && r->len == r->k->at) {
			stop_at = false;
			if (strcmp(r->k->action, "reset") == 0) {
				struct linger lg = {.l_onoff = 1, .l_linger = 0};

				setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				close(r->fd);
				r->fd = -1;
				notify(r->reached);
				return NULL;
			}
			notify(r->reached);
			wait_event(r->resume);
		}
	}
	return NULL;
}

struct writer {
	int fd;
	uint64_t size;
	pthread_t thread;
};

/* Fills a pipe source, then closes its end (EPIPE when the reader left). */
static void *
fill_pipe(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[65536];
	uint64_t done = 0;

	while (done < w->size) {
		size_t n = w->size - done < sizeof(buf) ? (size_t)(w->size - done) : sizeof(buf);
		ssize_t k;

		gen_fill(buf, done, n);
		k = write(w->fd, buf, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		done += (uint64_t)k;
	}
	close(w->fd);
	return NULL;
}

static int
make_file_source(const struct kase *k, const char *tmp)
{
	char path[4096];
	uint8_t buf[65536];
	int fd;

	snprintf(path, sizeof(path), "%s/src-%s", tmp, k->name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die(path);
	for (uint64_t done = 0; done < k->size;) {
		size_t n = k->size - done < sizeof(buf) ? (size_t)(k->size - done) : sizeof(buf);

		gen_fill(buf, done, n);
		if (write(fd, buf, n) != (ssize_t)n)
			die("write source");
		done += n;
	}
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(path);
	unlink(path);
	return fd;
}

static void
tcp_pair(int *ret_dst, int *ret_rcv)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0 ||
	    connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("tcp pair");
	*ret_rcv = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*ret_rcv < 0)
		die("accept");
	close(l);
	*ret_dst = c;
}

static const char *
status_name(int st)
{
	static const char *const names[] = {
	        [SFD_STATUS_OK] = "ok",
	        [SFD_STATUS_NOT_AVAILABLE] = "not_available",
	        [SFD_STATUS_INVALID_ARGUMENT] = "invalid_argument",
	        [SFD_STATUS_PEER_CLOSED] = "peer_closed",
	        [SFD_STATUS_IO_ERROR] = "io_error",
	        [SFD_STATUS_CANCELLED] = "cancelled",
	        [SFD_STATUS_LIMIT] = "limit",
	        [SFD_STATUS_PROTOCOL] = "protocol",
	        [SFD_STATUS_SHUTTING_DOWN] = "shutting_down",
	        [SFD_STATUS_PERMISSION_DENIED] = "permission_denied",
	};

	return st >= 0 && st < (int)(sizeof(names) / sizeof(names[0])) && names[st] ? names[st]
	                                                                            : "unknown";
}

struct done {
	bool seen;
	struct sfd_result res;
};

static void
on_done(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	struct done *d = userdata;

	(void)c;
	(void)id;
	d->seen = true;
	d->res = *res;
}

/* Submit, cancel once the receiver has read @at bytes, and collect. */
static int
send_and_cancel(struct sfd_client *c, int dst, int src, const struct kase *k, struct receiver *r,
                struct sfd_result *ret)
{
	struct done d = {0};
	uint64_t id;
	int e;

	e = sfd_client_submit(c, dst, src, k->offset, k->count, k->fallback ? 0 : SFD_NO_FALLBACK,
	                      &d, &id);
	if (e < 0)
		return e;
	wait_event(r->reached);
	e = sfd_client_cancel(c, id);
	if (e < 0 && e != -ENOENT)
		return e;
	while (!d.seen) {
		struct pollfd p = {.fd = sfd_client_get_fd(c), .events = POLLIN};

		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
		e = sfd_client_dispatch(c, on_done);
		if (e < 0)
			return e;
	}
	*ret = d.res;
	return 0;
}

static void
run_case(const struct kase *k, const char *tmp)
{
	struct receiver r = {.fd = -1, .k = k};
	struct writer w = {.fd = -1};
	struct sfd_client *c = NULL;
	struct sfd_result res = {0};
	int src = -1, dst = -1, e;
	bool have_writer = false, have_receiver = false;
	char append_path[4096] = "", hex[65];
	uint8_t digest[32];
	off_t pos;

	sha256_init(&r.hash);
	r.reached = eventfd(0, EFD_CLOEXEC);
	r.resume = eventfd(0, EFD_CLOEXEC);
	if (r.reached < 0 || r.resume < 0)
		die("eventfd");

	if (strcmp(k->source, "file") == 0) {
		src = make_file_source(k, tmp);
	} else if (strcmp(k->source, "pipe") == 0) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) < 0)
			die("pipe");
		src = p[0];
		w = (struct writer){.fd = p[1], .size = k->size};
		if (pthread_create(&w.thread, NULL, fill_pipe, &w) != 0)
			die("thread");
		have_writer = true;
	} else {
		src = open(k->path, O_RDONLY | O_CLOEXEC);
		if (src < 0)
			die(k->path);
	}

	if (strcmp(k->dest, "tcp") == 0) {
		tcp_pair(&dst, &r.fd);
	} else if (strcmp(k->dest, "unix") == 0) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			die("socketpair");
		dst = sv[0];
		r.fd = sv[1];
	} else if (strcmp(k->dest, "pipe") == 0) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) < 0)
			die("pipe");
		dst = p[1];
		r.fd = p[0];
	} else {
		snprintf(append_path, sizeof(append_path), "%s/dst-%s", tmp, k->name);
		dst = open(append_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
		if (dst < 0)
			die(append_path);
	}
	if (r.fd >= 0) {
		if (pthread_create(&r.thread, NULL, receive, &r) != 0)
			die("thread");
		have_receiver = true;
	}

	e = sfd_client_open(NULL, &c);
	if (e == 0 && strcmp(k->action, "cancel") == 0)
		e = send_and_cancel(c, dst, src, k, &r, &res);
	else if (e == 0)
		e = sfd_client_sendfile(c, dst, src, k->offset, k->count,
		                        k->fallback ? 0 : SFD_NO_FALLBACK, -1, &res);
	sfd_client_free(c);

	pos = lseek(src, 0, SEEK_CUR);
	/* The receiver reads to end of stream: close the writing end. */
	close(dst);
	if (strcmp(k->action, "cancel") == 0)
		notify(r.resume);
	if (have_receiver)
		pthread_join(r.thread, NULL);
	close(src);
	if (have_writer)
		pthread_join(w.thread, NULL);
	if (append_path[0]) {
		int fd = open(append_path, O_RDONLY | O_CLOEXEC);
		uint8_t buf[65536];
		ssize_t n;

		if (fd < 0)
			die(append_path);
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			sha256_update(&r.hash, buf, (size_t)n);
			r.len += (uint64_t)n;
		}
		close(fd);
		unlink(append_path);
	}
	if (r.fd >= 0)
		close(r.fd);
	close(r.reached);
	close(r.resume);
	sha256_final(&r.hash, digest);
	sha256_hex(digest, hex);

	if (e < 0) {
		printf("{\"client\":\"c\",\"case\":\"%s\",\"status\":\"call_failed\",\"error\":\"%"
		       "s\"}\n",
		       k->name, strerror(-e));
	} else {
		printf("{\"client\":\"c\",\"case\":\"%s\",\"status\":\"%s\",\"bytes\":%" PRIu64
		       ",\"final_offset\":%" PRIu64 ",\"position\":",
		       k->name, status_name(res.status), res.bytes_sent, res.final_offset);
		if (pos < 0)
			printf("null");
		else
			printf("%lld", (long long)pos);
		printf(",\"method\":");
		if (res.method == SFD_METHOD_NONE)
			printf("null");
		else
			printf("\"%s\"", sfd_method_str(res.method));
		printf(",\"received_len\":%" PRIu64
		       ",\"received_sha256\":\"%s\",\"error\":\"%s\"}\n",
		       r.len, hex, res.status ? sfd_status_str(res.status) : "");
	}
	fflush(stdout);
}

/* A ping case: who answers, through sfd_client_ping(). */
static void
run_ping(const struct kase *k)
{
	static const char *const names[] = {NULL, "deadline", "rate_limit", "close_when_done",
	                                    "idle_timeout"};
	struct sfd_ping_info info;
	struct sfd_client *c = NULL;
	bool first = true;
	int e;

	e = sfd_client_open(NULL, &c);
	if (e == 0)
		e = sfd_client_ping(c, 10000, &info);
	sfd_client_free(c);
	if (e < 0) {
		printf("{\"client\":\"c\",\"case\":\"%s\",\"status\":\"call_failed\","
		       "\"error\":\"%s\"}\n",
		       k->name, strerror(-e));
		fflush(stdout);
		return;
	}
	printf("{\"client\":\"c\",\"case\":\"%s\",\"status\":\"ok\",\"protocol_version\":%u,"
	       "\"daemon_version\":\"%s\",\"features\":[",
	       k->name, info.protocol_version, info.daemon_version);
	for (unsigned f = 1; f < sizeof(names) / sizeof(names[0]); f++) {
		if (!(info.features & (1u << f)))
			continue;
		printf("%s\"%s\"", first ? "" : ",", names[f]);
		first = false;
	}
	printf("],\"error\":\"\"}\n");
	fflush(stdout);
}

static bool
parse_line(char *line, struct kase *k)
{
	*k = (struct kase){.fallback = true};
	strcpy(k->action, "none");
	strcpy(k->op, "sendfile");
	for (char *save, *tok = strtok_r(line, " \t\n", &save); tok;
	     tok = strtok_r(NULL, " \t\n", &save)) {
		char *v = strchr(tok, '=');

		if (!v)
			return false;
		*v++ = 0;
		if (strcmp(tok, "name") == 0)
			snprintf(k->name, sizeof(k->name), "%s", v);
		else if (strcmp(tok, "op") == 0)
			snprintf(k->op, sizeof(k->op), "%s", v);
		else if (strcmp(tok, "source") == 0)
			snprintf(k->source, sizeof(k->source), "%s", v);
		else if (strcmp(tok, "path") == 0)
			snprintf(k->path, sizeof(k->path), "%s", v);
		else if (strcmp(tok, "dest") == 0)
			snprintf(k->dest, sizeof(k->dest), "%s", v);
		else if (strcmp(tok, "action") == 0)
			snprintf(k->action, sizeof(k->action), "%s", v);
		else if (strcmp(tok, "size") == 0)
			k->size = strtoull(v, NULL, 10);
		else if (strcmp(tok, "offset") == 0)
			k->offset = strtoull(v, NULL, 10);
		else if (strcmp(tok, "count") == 0)
			k->count = strcmp(v, "-") == 0 ? 0 : strtoull(v, NULL, 10);
		else if (strcmp(tok, "at") == 0)
			k->at = strtoull(v, NULL, 10);
		else if (strcmp(tok, "fallback") == 0)
			k->fallback = strcmp(v, "0") != 0;
	}
	return k->name[0] != 0;
}

int
main(void)
{
	const char *tmp = getenv("CONFORMANCE_TMP");
	char line[1024];

	signal(SIGPIPE, SIG_IGN);
	if (!tmp)
		tmp = "/tmp";
	while (fgets(line, sizeof(line), stdin)) {
		struct kase k;

		if (!parse_line(line, &k))
			continue;
		if (strcmp(k.op, "ping") == 0)
			run_ping(&k);
		else
			run_case(&k, tmp);
	}
	return 0;
}
