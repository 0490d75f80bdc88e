/*
 * server.c - the listening data socket and the set of connections.
 *
 * The server owns the connections (it accepts them, keeps the list, stops
 * them); a connection reaches back only through its struct conn_env.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "account.h"
#include "conn.h"
#include "engine.h"
#include "fdmsg.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "wire.h"

/* After EMFILE/ENFILE from accept4(), stop accepting this long instead of
 * spinning on a listener that stays readable. */
#define ACCEPT_RETRY_MS 100
/* Connections accepted per readable event of the listener. */
#define ACCEPTS_PER_WAKE 64
/* Records of a refused peer read and dropped, at most. */
#define DISCARD_MAX 256

struct server {
	uv_loop_t *loop;
	struct server_config cfg;
	struct server_hooks hooks;
	struct engine *engine;
	struct account *account;
	struct conn_env conn_env; /* what every connection is given */
	unsigned char *recv_bufs; /* conn_env.recv_bufs */
	int listen_fd;
	bool listen_owned_path; /* we bound it: unlink on exit */
	uv_poll_t listen_poll;
	bool listen_poll_init;
	uv_timer_t accept_retry;
	uv_timer_t drain_timer;
	int handles; /* handles not closed yet: free the struct when 0 */
	struct list_head conns;
	unsigned n_conns;
	unsigned n_detached; /* in conns, their clients gone, hand-offs running */
	bool stopping;
	bool freeing;
	uint64_t start_ms;
};

void
server_config_defaults(struct server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_mode = 0660;
	cfg->max_connections = 256;
	cfg->max_in_flight_per_conn = 1024;
	cfg->max_in_flight_per_uid = 4096;
	cfg->max_handoffs = 1024;
	cfg->chunk_size = 2 * 1024 * 1024;
	cfg->drain_timeout_ms = 10000;
	pace_conf_defaults(&cfg->pace);
	cfg->workers = ENGINE_WORKERS_DEFAULT;
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

static bool
allowed(const struct server_config *cfg, const struct ucred *cr)
{
	if (cfg->n_allow_uids == 0 && cfg->n_allow_gids == 0)
		return true;
	if (cr->uid == 0)
		return true;
	for (unsigned i = 0; i < cfg->n_allow_uids; i++)
		if (cfg->allow_uids[i] == cr->uid)
			return true;
	for (unsigned i = 0; i < cfg->n_allow_gids; i++)
		if (cfg->allow_gids[i] == cr->gid)
			return true;
	return false;
}

/*
 * Close a connection we will not serve without losing what we told it.
 * Linux reports ECONNRESET to a peer whose records were closed unread, ahead
 * of the replies queued for it, so a client that sent before reading would
 * see the reset first. Shut the connection (the peer can send no more and
 * reads end of file after our reply), then read and drop what it had sent,
 * closing any descriptors that came with it. Bounded: by what the peer could
 * queue before the shutdown, and by DISCARD_MAX records, whatever is left
 * then is closed unread.
 */
static void
discard_and_close(int fd)
{
	unsigned char buf[WIRE_MAX_RECORD];

	(void)shutdown(fd, SHUT_RDWR);
	for (int i = 0; i < DISCARD_MAX; i++) {
		struct fdmsg_record rec = {.buf = buf, .cap = sizeof(buf)};

		/* 0: the end, or an empty record; either way stop. */
		if (fdmsg_recv_record(fd, &rec, MSG_DONTWAIT) <= 0)
			break;
		fdmsg_close_all(rec.fds, rec.nfds);
	}
	safe_close(fd);
}

/* Tell a user who is not allowed why, in the one reply of id 0, and close. */
static void
refuse_user(int fd, const struct ucred *cr)
{
	struct wire_response resp = {.status = WIRE_STATUS_PERMISSION_DENIED, .error = EACCES};
	unsigned char buf[WIRE_MAX_RECORD];
	ssize_t n;

	snprintf(resp.message, sizeof(resp.message), "uid %u is not allowed", (unsigned)cr->uid);
	n = wire_response_encode(&resp, buf, sizeof(buf));
	if (n > 0)
		(void)fdmsg_send(fd, buf, (size_t)n, NULL, 0, MSG_DONTWAIT);
	log_notice("refused connection from pid %d uid %u: not in the allow-list", (int)cr->pid,
	           (unsigned)cr->uid);
	discard_and_close(fd);
}

/* Take over an accepted connection; @fd is closed on every path. */
static void
adopt(struct server *srv, int fd)
{
	socklen_t len = sizeof(struct ucred);
	struct ucred cred;
	struct conn *c;
	int r;

	if (srv->n_conns >= srv->cfg.max_connections) {
		log_warn("refused a connection: too many connections");
		safe_close(fd);
		account_connection(srv->account, false);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("cannot set up a connection: %s", strerror(errno));
		safe_close(fd);
		account_connection(srv->account, false);
		return;
	}
	if (!allowed(&srv->cfg, &cred)) {
		refuse_user(fd, &cred);
		account_connection(srv->account, false);
		return;
	}
	r = conn_new(&srv->conn_env, fd, &cred, &c);
	if (r < 0) {
		log_warn("cannot set up a connection: %s", strerror(-r));
		account_connection(srv->account, false);
		return;
	}
	list_add_tail(&srv->conns, conn_link(c));
	srv->n_conns++;
	account_connection(srv->account, true);
}

/* Its client is gone, its hand-offs are not (conn_env.detached): it stays in
 * the list, for the control plane and for a drain, but is no longer a
 * connection. */
static void
on_conn_detached(void *owner, struct conn *c)
{
	struct server *srv = owner;

	(void)c;
	srv->n_conns--;
	srv->n_detached++;
}

/* A connection is gone (conn_env.closed). */
static void
on_conn_closed(void *owner, struct conn *c)
{
	struct server *srv = owner;

	list_del(conn_link(c));
	if (conn_detached(c))
		srv->n_detached--;
	else
		srv->n_conns--;
	if (srv->stopping && list_empty(&srv->conns) && srv->hooks.on_stopped)
		srv->hooks.on_stopped(srv->hooks.data);
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
	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		int fd;

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
		adopt(srv, fd);
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
	char dir[SOCKPATH_MAX];
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

static int
listen_on(struct server *srv, int listen_fd)
{
	_cleanup_close_ int fd = listen_fd;
	int r;

	if (fd < 0) {
		r = bind_listener(&srv->cfg, &fd);
		if (r < 0)
			return r;
		srv->listen_owned_path = true;
	}
	r = uv_poll_init(srv->loop, &srv->listen_poll, fd);
	if (r < 0)
		return r;
	srv->listen_poll.data = srv;
	srv->listen_poll_init = true;
	srv->handles++;
	srv->listen_fd = TAKE_FD(fd);
	return uv_poll_start(&srv->listen_poll, UV_READABLE, on_listen);
}

int
server_new(uv_loop_t *loop, const struct server_config *cfg, int listen_fd,
           const struct server_hooks *hooks, struct server **ret)
{
	_cleanup_close_ int fd = listen_fd;
	struct server *srv = calloc(1, sizeof(*srv));
	int r;

	if (!srv)
		return -ENOMEM;
	srv->loop = loop;
	srv->cfg = *cfg;
	srv->hooks = *hooks;
	srv->listen_fd = -1;
	list_init(&srv->conns);
	srv->start_ms = uv_now(loop);
	uv_timer_init(loop, &srv->accept_retry);
	srv->accept_retry.data = srv;
	uv_timer_init(loop, &srv->drain_timer);
	srv->drain_timer.data = srv;
	srv->handles = 2;
	/* One loop reads one connection at a time: one set of receive
	 * buffers serves them all. */
	srv->recv_bufs = malloc((size_t)CONN_READ_BATCH * WIRE_MAX_RECORD);
	r = srv->recv_bufs ? engine_new(loop, &srv->engine) : -ENOMEM;
	if (r == 0) {
		engine_set_workers(srv->engine, cfg->workers);
		r = account_new(cfg->max_in_flight_per_uid, &srv->account);
	}
	if (r == 0) {
		srv->conn_env = (struct conn_env){
		        .engine = srv->engine,
		        .account = srv->account,
		        .recv_bufs = srv->recv_bufs,
		        .max_in_flight = cfg->max_in_flight_per_conn,
		        .max_handoffs = cfg->max_handoffs,
		        .detached = on_conn_detached,
		        .chunk_size = cfg->chunk_size,
		        .pace = &srv->cfg.pace,
		        .closed = on_conn_closed,
		        .owner = srv,
		};
		r = listen_on(srv, TAKE_FD(fd));
	}
	if (r < 0) {
		server_free(srv);
		return r;
	}
	*ret = srv;
	return 0;
}

static void on_handle_closed(uv_handle_t *h);

static void
close_listener(struct server *srv)
{
	if (srv->listen_poll_init) {
		uv_close((uv_handle_t *)&srv->listen_poll, on_handle_closed);
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

	log_notice("drain deadline reached: cancelling %u transfers",
	           account_in_flight(srv->account));
	shutdown_all(srv, true);
}

void
server_stop(struct server *srv, bool immediate)
{
	bool first = !srv->stopping;

	srv->stopping = true;
	if (first) {
		if (srv->hooks.on_stopping)
			srv->hooks.on_stopping(srv->hooks.data);
		close_listener(srv);
		uv_timer_stop(&srv->accept_retry);
		if (!immediate && account_in_flight(srv->account) > 0) {
			log_notice("stopping: letting %u transfers finish (up to %u ms)",
			           account_in_flight(srv->account), srv->cfg.drain_timeout_ms);
			uv_timer_start(&srv->drain_timer, on_drain_timeout,
			               srv->cfg.drain_timeout_ms, 0);
		}
	}
	if (immediate)
		uv_timer_stop(&srv->drain_timer);
	shutdown_all(srv, immediate);
	if (list_empty(&srv->conns) && srv->hooks.on_stopped)
		srv->hooks.on_stopped(srv->hooks.data);
}

static void
on_handle_closed(uv_handle_t *h)
{
	struct server *srv = h->data;

	if (--srv->handles > 0)
		return;
	account_free(srv->account);
	free(srv->recv_bufs);
	free(srv);
}

void
server_free(struct server *srv)
{
	if (!srv || srv->freeing)
		return;
	srv->freeing = true;
	close_listener(srv);
	engine_free(srv->engine);
	uv_close((uv_handle_t *)&srv->accept_retry, on_handle_closed);
	uv_close((uv_handle_t *)&srv->drain_timer, on_handle_closed);
}

uv_loop_t *
server_loop(const struct server *srv)
{
	return srv->loop;
}

const struct server_config *
server_config(const struct server *srv)
{
	return &srv->cfg;
}

struct account *
server_account(const struct server *srv)
{
	return srv->account;
}

void
server_status(const struct server *srv, struct server_status *ret)
{
	*ret = (struct server_status){
	        .connections = srv->n_conns,
	        .stopping = srv->stopping,
	        .owns_path = srv->listen_owned_path,
	        .uptime_ms = uv_now(srv->loop) - srv->start_ms,
	};
}
