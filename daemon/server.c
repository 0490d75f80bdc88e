/*
 * server.c - the listening data socket and the set of connections.
 *
 * The server owns the connections (it accepts them, keeps the list, stops
 * them); a connection reaches back only through its struct conn_env.
 *
 * With several loops (loops.h), each loop has a shard: its engine, its
 * connections, its receive buffers. Loop 0 accepts every connection and
 * hands it to the shard with the fewest connections. Why not let every loop
 * poll the shared listener: each connect would then wake every loop (libuv
 * offers no EPOLLEXCLUSIVE), and all but one would find EAGAIN; handing the
 * descriptor over costs one wake-up of the chosen loop (a uv_async_t, which
 * a burst of connections shares), and the least loaded loop is known here,
 * where max_connections is checked anyway. Connections stay on their loop.
 */
#include <errno.h>
#include <stdatomic.h>
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
#include "dstline.h"
#include "fairq.h"
#include "list.h"
#include "log.h"
#include "loops.h"
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

/* What one loop serves. Its fields are its loop's, but for @load. */
struct shard {
	struct server *srv;
	unsigned index;
	uv_loop_t *loop;
	struct engine *engine;
	struct conn_env conn_env; /* what every connection is given */
	unsigned char *recv_bufs; /* conn_env.recv_bufs */
	struct list_head conns;
	/* Its connections, and those handed to it and not adopted yet: read
	 * by loop 0 to choose where the next one goes, and by status. */
	atomic_uint load;
	/* server_stop() and the drain deadline, posted to this loop. */
	struct loops_task stop_task;
	atomic_bool stop_cancel;
};

/* A connection on its way from loop 0 to its shard. */
struct handover {
	struct loops_task task;
	struct shard *shard;
	int fd;
	struct ucred cred;
};

struct server {
	uv_loop_t *loop; /* loop 0's: the listener, the timers, the hooks */
	struct server_config cfg;
	struct server_hooks hooks;
	struct loops *loops;
	struct shard *shards;
	unsigned n_shards;
	unsigned next_shard; /* where the search for the least loaded starts */
	struct account *account;
	/* With several loops, what their engines share (engine.h); freed
	 * after the loops have stopped. */
	struct engine_shared shared;
	int listen_fd;
	bool listen_owned_path; /* we bound it: unlink on exit */
	uv_poll_t listen_poll;
	bool listen_poll_init;
	uv_timer_t accept_retry;
	uv_timer_t drain_timer;
	int handles; /* handles not closed yet: free the struct when 0 */
	/* Every loop's connections, for max_connections and the stop. */
	atomic_uint n_conns;
	/* Connections whose clients are gone while their hand-offs run: in
	 * their shard's list (for the control plane and a drain), no longer
	 * counted in n_conns. */
	atomic_uint n_detached;
	atomic_bool stopping;
	bool told_stopped;
	/* A loop whose last connection went while stopping tells loop 0. */
	struct loops_task stopped_task;
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
	cfg->loops = 1;
}

struct foreach_ctx {
	struct shard *sh;
	void (*fn)(const struct transfer_info *info, void *arg);
	void *arg;
	uint64_t transfer; /* cancel: the one to find */
	int r;
};

/* Adds what the connection does not know: its loop. */
static void
with_loop(const struct transfer_info *info, void *arg)
{
	struct foreach_ctx *fc = arg;
	struct transfer_info i = *info;

	i.loop = fc->sh->index;
	fc->fn(&i, fc->arg);
}

/* On the shard's loop. */
static void
foreach_on_shard(void *arg)
{
	struct foreach_ctx *fc = arg;
	struct list_head *pos, *tmp;

	list_for_each_safe(pos, tmp, &fc->sh->conns)
	{
		conn_foreach_transfer(conn_from_link(pos), with_loop, fc);
	}
}

void
server_foreach_transfer(struct server *srv, void (*fn)(const struct transfer_info *info, void *arg),
                        void *arg)
{
	for (unsigned i = 0; i < srv->n_shards; i++) {
		struct foreach_ctx fc = {.sh = &srv->shards[i], .fn = fn, .arg = arg};

		loops_call(srv->loops, i, foreach_on_shard, &fc);
	}
}

static void
cancel_on_shard(void *arg)
{
	struct foreach_ctx *fc = arg;
	struct list_head *pos, *tmp;

	fc->r = -ENOENT;
	list_for_each_safe(pos, tmp, &fc->sh->conns)
	{
		if (conn_cancel_transfer(conn_from_link(pos), fc->transfer) == 0) {
			fc->r = 0;
			return;
		}
	}
}

int
server_cancel_transfer(struct server *srv, uint64_t transfer)
{
	for (unsigned i = 0; i < srv->n_shards; i++) {
		struct foreach_ctx fc = {.sh = &srv->shards[i], .transfer = transfer};

		loops_call(srv->loops, i, cancel_on_shard, &fc);
		if (fc.r == 0)
			return 0;
	}
	return -ENOENT;
}

static void on_listen(uv_poll_t *h, int status, int events);
static void on_conn_gone(struct shard *sh, bool detached);

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

/* On the shard's loop: adopt a connection (@fd closed on every path). */
static void
adopt_here(struct shard *sh, int fd, const struct ucred *cred)
{
	struct server *srv = sh->srv;
	struct conn *c;
	int r;

	/* Handed over while the daemon began to stop: not served. */
	if (atomic_load(&srv->stopping)) {
		safe_close(fd);
		r = -ESHUTDOWN;
	} else {
		r = conn_new(&sh->conn_env, fd, cred, &c);
		if (r < 0)
			log_warn("cannot set up a connection: %s", strerror(-r));
	}
	if (r < 0) {
		account_connection(srv->account, false);
		/* As if it had come and gone. */
		on_conn_gone(sh, false);
		return;
	}
	list_add_tail(&sh->conns, conn_link(c));
	account_connection(srv->account, true);
}

static void
on_handover(struct loops_task *t)
{
	struct handover *h = container_of(t, struct handover, task);

	adopt_here(h->shard, h->fd, &h->cred);
	free(h);
}

/* The shard with the fewest connections; ties go round. */
static struct shard *
least_loaded(struct server *srv)
{
	struct shard *best = NULL;
	unsigned best_load = 0;

	for (unsigned k = 0; k < srv->n_shards; k++) {
		struct shard *sh = &srv->shards[(srv->next_shard + k) % srv->n_shards];
		unsigned load = atomic_load(&sh->load);

		if (!best || load < best_load) {
			best = sh;
			best_load = load;
		}
	}
	srv->next_shard = (best->index + 1) % srv->n_shards;
	return best;
}

/* Take over an accepted connection; @fd is closed on every path. */
static void
adopt(struct server *srv, int fd)
{
	socklen_t len = sizeof(struct ucred);
	struct ucred cred;
	struct handover *h;
	struct shard *sh;

	if (atomic_load(&srv->n_conns) >= srv->cfg.max_connections) {
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
	sh = least_loaded(srv);
	/* Counted now, so that the next accept sees it. */
	atomic_fetch_add(&srv->n_conns, 1);
	atomic_fetch_add(&sh->load, 1);
	if (sh->index == 0) {
		adopt_here(sh, fd, &cred);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		log_warn("cannot set up a connection: %s", strerror(ENOMEM));
		safe_close(fd);
		account_connection(srv->account, false);
		atomic_fetch_sub(&sh->load, 1);
		atomic_fetch_sub(&srv->n_conns, 1);
		return;
	}
	*h = (struct handover){.task.fn = on_handover, .shard = sh, .fd = fd, .cred = cred};
	loops_post(srv->loops, sh->index, &h->task);
}

/* Loop 0: every connection is gone after server_stop()? Tell main, once. */
static void
check_stopped(struct server *srv)
{
	if (!atomic_load(&srv->stopping) || atomic_load(&srv->n_conns) > 0 ||
	    atomic_load(&srv->n_detached) > 0 || srv->told_stopped)
		return;
	srv->told_stopped = true;
	if (srv->hooks.on_stopped)
		srv->hooks.on_stopped(srv->hooks.data);
}

static void
on_stopped_task(struct loops_task *t)
{
	check_stopped(container_of(t, struct server, stopped_task));
}

/*
 * On the shard's loop: one of its connections is gone (or never came);
 * @detached: it was no longer counted as a connection (conn_env.detached).
 * Each counter is lowered before the other is read, so that of two loops
 * losing the last two at once, one sees both at zero.
 */
static void
on_conn_gone(struct shard *sh, bool detached)
{
	struct server *srv = sh->srv;

	atomic_fetch_sub(&sh->load, 1);
	atomic_fetch_sub(detached ? &srv->n_detached : &srv->n_conns, 1);
	if (!atomic_load(&srv->stopping) || atomic_load(&srv->n_conns) > 0 ||
	    atomic_load(&srv->n_detached) > 0)
		return;
	if (sh->index == 0)
		check_stopped(srv);
	else
		loops_post(srv->loops, 0, &srv->stopped_task);
}

/* Its client is gone, its hand-offs are not (conn_env.detached): it stays in
 * its shard's list, for the control plane and for a drain, but is no longer
 * a connection. Counted as detached first, so that the two counters are
 * never both zero while it lives. */
static void
on_conn_detached(void *owner, struct conn *c)
{
	struct shard *sh = owner;

	(void)c;
	atomic_fetch_add(&sh->srv->n_detached, 1);
	atomic_fetch_sub(&sh->srv->n_conns, 1);
}

/* A connection is gone (conn_env.closed). */
static void
on_conn_closed(void *owner, struct conn *c)
{
	list_del(conn_link(c));
	on_conn_gone(owner, conn_detached(c));
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

/* Before the threads start: a loop's handles may be set up from here. */
static int
shard_init(struct server *srv, unsigned i)
{
	struct shard *sh = &srv->shards[i];
	int r;

	sh->srv = srv;
	sh->index = i;
	sh->loop = loops_loop(srv->loops, i);
	list_init(&sh->conns);
	sh->stop_task.fn = NULL; /* set by server_stop() */
	/* One loop reads one connection at a time: one set of receive
	 * buffers serves all of its connections. */
	sh->recv_bufs = malloc((size_t)CONN_READ_BATCH * WIRE_MAX_RECORD);
	if (!sh->recv_bufs)
		return -ENOMEM;
	r = engine_new_shared(sh->loop, srv->n_shards > 1 ? &srv->shared : NULL, &sh->engine);
	if (r < 0)
		return r;
	engine_set_workers(sh->engine, srv->cfg.workers);
	sh->conn_env = (struct conn_env){
	        .engine = sh->engine,
	        .account = srv->account,
	        .recv_bufs = sh->recv_bufs,
	        .max_in_flight = srv->cfg.max_in_flight_per_conn,
	        .max_handoffs = srv->cfg.max_handoffs,
	        .detached = on_conn_detached,
	        .chunk_size = srv->cfg.chunk_size,
	        .pace = &srv->cfg.pace,
	        .closed = on_conn_closed,
	        .owner = sh,
	};
	return 0;
}

static int
shards_new(struct server *srv, unsigned n)
{
	int r;

	r = loops_new(srv->loop, n, &srv->loops);
	if (r < 0)
		return r;
	srv->shards = calloc(n, sizeof(*srv->shards));
	if (!srv->shards)
		return -ENOMEM;
	srv->n_shards = n;
	if (n > 1) {
		srv->shared.lines = dstline_table_new_shared();
		srv->shared.srcs = engine_srcs_new();
		srv->shared.workq = fairq_new(srv->cfg.workers);
		if (!srv->shared.lines || !srv->shared.srcs || !srv->shared.workq)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		r = shard_init(srv, i);
		if (r < 0)
			return r;
	}
	return 0;
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
	if (srv->cfg.loops < 1)
		srv->cfg.loops = 1;
	srv->hooks = *hooks;
	srv->listen_fd = -1;
	srv->stopped_task.fn = on_stopped_task;
	srv->start_ms = uv_now(loop);
	uv_timer_init(loop, &srv->accept_retry);
	srv->accept_retry.data = srv;
	uv_timer_init(loop, &srv->drain_timer);
	srv->drain_timer.data = srv;
	srv->handles = 2;
	r = account_new(cfg->max_in_flight_per_uid, &srv->account);
	if (r == 0)
		r = shards_new(srv, srv->cfg.loops);
	if (r == 0)
		r = listen_on(srv, TAKE_FD(fd));
	if (r == 0)
		r = loops_start(srv->loops);
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

/* On the shard's loop. */
static void
on_stop_task(struct loops_task *t)
{
	struct shard *sh = container_of(t, struct shard, stop_task);
	struct list_head *pos, *tmp;
	bool cancel = atomic_exchange(&sh->stop_cancel, false);

	list_for_each_safe(pos, tmp, &sh->conns)
	{
		conn_shutdown(conn_from_link(pos), cancel);
	}
}

static void
shutdown_all(struct server *srv, bool cancel)
{
	for (unsigned i = 0; i < srv->n_shards; i++) {
		struct shard *sh = &srv->shards[i];

		if (cancel)
			atomic_store(&sh->stop_cancel, true);
		sh->stop_task.fn = on_stop_task;
		if (i == 0)
			on_stop_task(&sh->stop_task);
		else
			loops_post(srv->loops, i, &sh->stop_task);
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
	bool first = !atomic_load(&srv->stopping);

	atomic_store(&srv->stopping, true);
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
	check_stopped(srv);
}

static void
on_handle_closed(uv_handle_t *h)
{
	struct server *srv = h->data;

	if (--srv->handles > 0)
		return;
	/* Every loop has stopped (server_free()), their engines are gone. */
	dstline_table_free(srv->shared.lines);
	engine_srcs_free(srv->shared.srcs);
	fairq_free(srv->shared.workq);
	account_free(srv->account);
	for (unsigned i = 0; i < srv->n_shards; i++)
		free(srv->shards[i].recv_bufs);
	free(srv->shards);
	free(srv);
}

/* On the shard's loop: its engine closes its handles there. */
static void
shard_fini(void *arg)
{
	struct shard *sh = arg;

	engine_free(sh->engine);
	sh->engine = NULL;
}

void
server_free(struct server *srv)
{
	if (!srv || srv->freeing)
		return;
	srv->freeing = true;
	close_listener(srv);
	for (unsigned i = 0; i < srv->n_shards; i++)
		loops_call(srv->loops, i, shard_fini, &srv->shards[i]);
	/* The other loops run until their engines' handles have closed, and
	 * their threads are joined. */
	loops_free(srv->loops);
	srv->loops = NULL;
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
	        .connections = atomic_load(&srv->n_conns),
	        .stopping = atomic_load(&srv->stopping),
	        .owns_path = srv->listen_owned_path,
	        .uptime_ms = uv_now(srv->loop) - srv->start_ms,
	        .loops = srv->n_shards,
	};
	for (unsigned i = 0; i < srv->n_shards && i < LOOPS_MAX; i++)
		ret->loop_connections[i] = atomic_load(&srv->shards[i].load);
}
