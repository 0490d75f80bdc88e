/*
 * bench-httpd - the least HTTP/1.1 file server that offloads its bodies to
 * sendfiled, for measuring the daemon's CPU per response against nginx's
 * (bench/http/cpu.sh).
 *
 *   bench-httpd --port PORT --dir DIR [--socket PATH] [--cpu N]
 *
 * One thread, epoll. GET /NAME answers 200 with the file DIR/NAME: the
 * header is sent with MSG_MORE, the body by the daemon (sfd_client_submit()
 * of the whole file to the connection, non-blocking). Each request opens
 * its file and closes it once the daemon has answered, as nginx does
 * without open_file_cache. Keep-alive; no pipelining (wrk does not
 * pipeline), no ranges, nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sendfiled.h"

#define DIE(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "bench-httpd: " __VA_ARGS__);                                      \
		fputc('\n', stderr);                                                               \
		exit(1);                                                                           \
	} while (0)

#define MAX_CONNS 4096
#define REQ_MAX 4096

struct conn {
	int fd;
	int file; /* the body's source while the daemon sends it, else -1 */
	size_t len;
	char buf[REQ_MAX];
};

static struct conn *conns[MAX_CONNS];
static const char *dir;
static int ep;
static uint64_t served, failed;

static void
conn_close(struct conn *c)
{
	/* Not while the daemon sends to it: the completion closes it. */
	if (c->file >= 0) {
		shutdown(c->fd, SHUT_RD);
		return;
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	conns[c->fd] = NULL;
	close(c->fd);
	free(c);
}

static void
reply_error(struct conn *c, const char *status)
{
	char h[256];
	int n = snprintf(h, sizeof(h), "HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n", status);

	(void)send(c->fd, h, (size_t)n, MSG_NOSIGNAL);
}

/* A whole request is in c->buf: start its response. */
static void
serve(struct sfd_client *sc, struct conn *c, size_t end)
{
	char path[PATH_MAX], name[256], h[256];
	struct stat st;
	uint64_t id;
	int n;

	if (sscanf(c->buf, "GET /%255[^ ] HTTP/1.1", name) != 1 || strstr(name, "..")) {
		reply_error(c, "400 Bad Request");
		goto done;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	c->file = open(path, O_RDONLY | O_CLOEXEC);
	if (c->file < 0 || fstat(c->file, &st) < 0) {
		if (c->file >= 0)
			close(c->file);
		c->file = -1;
		reply_error(c, "404 Not Found");
		goto done;
	}
	n = snprintf(h, sizeof(h),
	             "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
	             "Content-Length: %lld\r\n\r\n",
	             (long long)st.st_size);
	if (send(c->fd, h, (size_t)n, MSG_MORE | MSG_NOSIGNAL) != n ||
	    sfd_client_submit(sc, c->fd, c->file, 0, (uint64_t)st.st_size, 0, c, &id) < 0) {
		close(c->file);
		c->file = -1;
		failed++;
		conn_close(c);
		return;
	}
done:
	memmove(c->buf, c->buf + end, c->len - end);
	c->len -= end;
}

static void
try_serve(struct sfd_client *sc, struct conn *c)
{
	char *e;

	if (c->file >= 0)
		return;
	c->buf[c->len] = 0;
	e = strstr(c->buf, "\r\n\r\n");
	if (e)
		serve(sc, c, (size_t)(e + 4 - c->buf));
}

static void
on_readable(struct sfd_client *sc, struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->len >= REQ_MAX - 1) {
			conn_close(c);
			return;
		}
		n = recv(c->fd, c->buf + c->len, REQ_MAX - 1 - c->len, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->len += (size_t)n;
	}
	try_serve(sc, c);
}

static void
on_done(struct sfd_client *sc, uint64_t id, const struct sfd_result *r, void *userdata)
{
	struct conn *c = userdata;

	(void)id;
	close(c->file);
	c->file = -1;
	if (r->status != SFD_STATUS_OK) {
		failed++;
		conn_close(c);
		return;
	}
	served++;
	/* Edge-triggered: what came while the body was sent is read now. */
	on_readable(sc, c);
}

static void
on_accept(int l)
{
	for (;;) {
		int fd = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
		struct conn *c;

		if (fd < 0)
			return;
		if (fd >= MAX_CONNS || !(c = calloc(1, sizeof(*c)))) {
			close(fd);
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5);
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->file = -1;
		conns[fd] = c;
		ev.data.fd = fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

static void
on_term(int sig)
{
	(void)sig;
	fprintf(stderr, "bench-httpd: %llu responses, %llu failed\n", (unsigned long long)served,
	        (unsigned long long)failed);
	_exit(0);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"port", required_argument, NULL, 'p'},
	        {"dir", required_argument, NULL, 'd'},
	        {"socket", required_argument, NULL, 's'},
	        {0},
	};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct epoll_event ev = {.events = EPOLLIN};
	const char *sock = NULL;
	struct sfd_client *sc;
	int port = 0, l, one = 1, o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'p')
			port = atoi(optarg);
		else if (o == 'd')
			dir = optarg;
		else if (o == 's')
			sock = optarg;
		else
			DIE("bad option");
	}
	if (!dir || !port)
		DIE("--port and --dir are needed");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	if (sfd_client_open(sock, &sc) < 0)
		DIE("cannot connect to the daemon");
	l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	a.sin_port = htons((uint16_t)port);
	(void)setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1024) < 0)
		DIE("listen on %d: %s", port, strerror(errno));
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = l;
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	ev.data.fd = sfd_client_get_fd(sc);
	epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == l)
				on_accept(l);
			else if (fd == sfd_client_get_fd(sc)) {
				if (sfd_client_dispatch(sc, on_done) < 0)
					DIE("the daemon went away");
			} else if (conns[fd] && conns[fd]->file < 0) {
				/* While the daemon sends, its completion reads. */
				on_readable(sc, conns[fd]);
			}
		}
	}
}
