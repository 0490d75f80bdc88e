/*
 * server.c - the listening data socket and the set of connections.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "conn.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "xfer.h"

/* After EMFILE/ENFILE from accept4(), stop accepting this long instead of
 * spinning on a listener that stays readable. */
#define ACCEPT_RETRY_MS 100

void
server_config_defaults(struct server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_mode = 0660;
	cfg->max_connections = 256;
	cfg->max_in_flight_per_conn = 1024;
	cfg->max_in_flight_per_uid = 4096;
	cfg->chunk_size = 2 * 1024 * 1024;
	cfg->drain_timeout_ms = 10000;
}

bool
server_uid_acquire(struct server *srv, uid_t uid)
{
	struct uid_count *u;

	for (unsigned i = 0; i < srv->n_uids; i++) {
		if (srv->uids[i].uid == uid) {
			if (srv->uids[i].in_flight >= srv->cfg.max_in_flight_per_uid)
				return false;
			srv->uids[i].in_flight++;
			return true;
		}
	}
	/* The table keeps its room when users go idle: a busy user's count
	 * may drop to zero between every two batches. */
	if (srv->n_uids == srv->uids_cap) {
		unsigned cap = srv->uids_cap ? 2 * srv->uids_cap : 4;

		u = realloc(srv->uids, cap * sizeof(*u));
		if (!u)
			return false;
		srv->uids = u;
		srv->uids_cap = cap;
	}
	srv->uids[srv->n_uids++] = (struct uid_count){.uid = uid, .in_flight = 1};
	return true;
}

void
server_uid_release(struct server *srv, uid_t uid)
{
	for (unsigned i = 0; i < srv->n_uids; i++) {
		if (srv->uids[i].uid != uid)
			continue;
		/* Forget idle uids so the table stays as small as the set of
		 * active users. */
		if (--srv->uids[i].in_flight == 0)
			srv->uids[i] = srv->uids[--srv->n_uids];
		return;
	}
}

struct uid_stats *
server_uid_stats(struct server *srv, uid_t uid)
{
	struct uid_stats *u;

	for (unsigned i = 0; i < srv->n_uid_stats; i++)
		if (srv->uid_stats[i].uid == uid)
			return &srv->uid_stats[i];
	if (srv->n_uid_stats >= SERVER_MAX_UID_STATS - 1 && uid != SERVER_UID_OTHER)
		return server_uid_stats(srv, SERVER_UID_OTHER);
	u = realloc(srv->uid_stats, (srv->n_uid_stats + 1) * sizeof(*u));
	if (!u)
		return NULL;
	srv->uid_stats = u;
	u = &srv->uid_stats[srv->n_uid_stats++];
	*u = (struct uid_stats){.uid = uid};
	return u;
}

void
server_foreach_transfer(struct server *srv, void (*fn)(const struct transfer_info *info, void *arg),
                        void *arg)
{
	struct list_head *pos, *tmp;

	list_for_each_safe(pos, tmp, &srv->conns)
	{
		conn_foreach_transfer(conn_from_link(pos), fn, arg);
	}
}

int
server_cancel_transfer(struct server *srv, uint64_t transfer)
{
	struct list_head *pos, *tmp;

	list_for_each_safe(pos, tmp, &srv->conns)
	{
		if (conn_cancel_transfer(conn_from_link(pos), transfer) == 0)
			return 0;
	}
	return -ENOENT;
}

static void on_listen(uv_poll_t *h, int status, int events);

static void
on_accept_retry(uv_timer_t *t)
{
	struct server *srv = t->data;

	if (!srv->stopping && srv->listen_poll_init)
		uv_poll_start(&srv->listen_poll, UV_READABLE, on_listen);
}

static void
refuse(struct server *srv, int fd, const char *why)
{
	srv->stats.connections_refused++;
	log_warn("refused a connection: %s", why);
	safe_close(fd);
}

static void
on_listen(uv_poll_t *h, int status, int events)
{
	struct server *srv = h->data;

	(void)events;
	if (status < 0) {
		log_err("listening socket failed: %s", uv_strerror(status));
		return;
	}
	for (int i = 0; i < 64; i++) {
		struct conn *c;
		int fd, r;

		fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				log_warn("accept: %s: pausing for %d ms", strerror(errno),
				         ACCEPT_RETRY_MS);
				uv_poll_stop(&srv->listen_poll);
				uv_timer_start(&srv->accept_retry, on_accept_retry, ACCEPT_RETRY_MS,
				               0);
			} else if (errno != EAGAIN) {
				log_err("accept: %s", strerror(errno));
			}
			return;
		}
		if (srv->n_conns >= srv->cfg.max_connections) {
			refuse(srv, fd, "too many connections");
			continue;
		}
		r = conn_new(srv, fd, &c);
		if (r < 0) {
			if (r != -EACCES)
				log_warn("cannot set up a connection: %s", strerror(-r));
			srv->stats.connections_refused++;
			continue;
		}
		srv->stats.connections_accepted++;
	}
}

/* Is something live listening on @path? Then it is not ours to remove. */
static bool
socket_in_use(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	return connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != ECONNREFUSED;
}

static int
mkdir_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int
bind_listener(const struct server_config *cfg, int *ret_fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r;

	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, cfg->socket_path);
	r = mkdir_parent(cfg->socket_path);
	if (r < 0)
		return r;
	/* A stale socket from a crashed daemon is replaced; a live one, or a
	 * file that is not a socket, is not. */
	if (lstat(cfg->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (socket_in_use(cfg->socket_path))
			return -EADDRINUSE;
		unlink(cfg->socket_path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (chmod(cfg->socket_path, cfg->socket_mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		unlink(cfg->socket_path);
		return r;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int
server_init(struct server *srv, uv_loop_t *loop, const struct server_config *cfg, int listen_fd)
{
	_cleanup_close_ int fd = listen_fd;
	int r;

	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	srv->cfg = *cfg;
	srv->listen_fd = -1;
	list_init(&srv->conns);
	srv->start_ms = uv_now(loop);
	/* Replies of transfers the engine starts in a batch of its own wait
	 * for its end. */
	xfer_set_batch_end_hook(conn_flush_held, NULL);
	if (fd < 0) {
		r = bind_listener(cfg, &fd);
		if (r < 0)
			return r;
		srv->listen_owned_path = true;
	}
	r = uv_poll_init(loop, &srv->listen_poll, fd);
	if (r < 0)
		return r;
	srv->listen_poll.data = srv;
	srv->listen_poll_init = true;
	uv_timer_init(loop, &srv->accept_retry);
	srv->accept_retry.data = srv;
	uv_timer_init(loop, &srv->drain_timer);
	srv->drain_timer.data = srv;
	srv->listen_fd = TAKE_FD(fd);
	return uv_poll_start(&srv->listen_poll, UV_READABLE, on_listen);
}

static void
close_listener(struct server *srv)
{
	if (srv->listen_poll_init) {
		uv_close((uv_handle_t *)&srv->listen_poll, NULL);
		srv->listen_poll_init = false;
	}
	/* uv_close() took the descriptor out of epoll already. */
	srv->listen_fd = safe_close(srv->listen_fd);
	if (srv->listen_owned_path) {
		unlink(srv->cfg.socket_path);
		srv->listen_owned_path = false;
	}
}

static void
shutdown_all(struct server *srv, bool cancel)
{
	struct list_head *pos, *tmp;

	list_for_each_safe(pos, tmp, &srv->conns)
	{
		conn_shutdown(conn_from_link(pos), cancel);
	}
}

static void
on_drain_timeout(uv_timer_t *t)
{
	struct server *srv = t->data;

	log_notice("drain deadline reached: cancelling %u transfers", srv->in_flight);
	shutdown_all(srv, true);
}

void
server_stop(struct server *srv, bool immediate)
{
	bool first = !srv->stopping;

	srv->stopping = true;
	if (first) {
		if (srv->on_stopping)
			srv->on_stopping(srv);
		close_listener(srv);
		uv_timer_stop(&srv->accept_retry);
		if (!immediate && srv->in_flight > 0) {
			log_notice("stopping: letting %u transfers finish (up to %u ms)",
			           srv->in_flight, srv->cfg.drain_timeout_ms);
			uv_timer_start(&srv->drain_timer, on_drain_timeout,
			               srv->cfg.drain_timeout_ms, 0);
		}
	}
	if (immediate)
		uv_timer_stop(&srv->drain_timer);
	shutdown_all(srv, immediate);
	if (srv->n_conns == 0 && srv->on_stopped)
		srv->on_stopped(srv);
}

void
server_free(struct server *srv)
{
	close_listener(srv);
	uv_close((uv_handle_t *)&srv->accept_retry, NULL);
	uv_close((uv_handle_t *)&srv->drain_timer, NULL);
	free(srv->uids);
	srv->uids = NULL;
	srv->n_uids = srv->uids_cap = 0;
	free(srv->uid_stats);
	srv->uid_stats = NULL;
}
