/*
 * server - the daemon's state: the listening data socket, the connections,
 * the limits and the counters. Owns the listener descriptor and every
 * connection.
 */
#ifndef SFD_SERVER_H
#define SFD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "list.h"

#define SERVER_MAX_ALLOW 64

struct server_config {
	char socket_path[108];
	unsigned socket_mode;
	unsigned max_connections;
	unsigned max_in_flight_per_conn;
	unsigned max_in_flight_per_uid;
	size_t chunk_size;
	unsigned drain_timeout_ms;
	/* Empty lists allow everyone who can open the socket. */
	uid_t allow_uids[SERVER_MAX_ALLOW];
	unsigned n_allow_uids;
	gid_t allow_gids[SERVER_MAX_ALLOW];
	unsigned n_allow_gids;
};

void server_config_defaults(struct server_config *cfg);

struct server_stats {
	uint64_t connections_accepted;
	uint64_t connections_refused;
	uint64_t requests;
	uint64_t bytes_sent;
	uint64_t by_status[16];
	uint64_t by_method[4];
};

struct uid_count {
	uid_t uid;
	unsigned in_flight;
};

/* Cumulative counters per uid, for the control plane. Bounded: past
 * SERVER_MAX_UID_STATS distinct uids, the rest are counted under
 * SERVER_UID_OTHER. */
#define SERVER_MAX_UID_STATS 256
#define SERVER_UID_OTHER ((uid_t)-1)
struct uid_stats {
	uid_t uid;
	uint64_t requests;
	uint64_t bytes_sent;
};

/* What the control plane shows of a transfer. */
struct transfer_info {
	uint64_t transfer;   /* daemon-wide id */
	uint64_t request_id; /* the client's id */
	pid_t pid;
	uid_t uid;
	uint64_t offset;
	uint64_t count;
	bool has_count;
	uint64_t bytes_sent;
	int method;
	bool on_worker;
	bool waiting;      /* behind another transfer to the same destination */
	uint64_t start_ms; /* uv_now() when it started */
};

enum transfer_event_kind {
	TRANSFER_START,
	TRANSFER_DONE,
	TRANSFER_ERROR,
};

typedef void (*server_event_fn)(void *data, enum transfer_event_kind kind,
                                const struct transfer_info *info, int status, int error);

struct server {
	uv_loop_t *loop;
	struct server_config cfg;
	int listen_fd;
	bool listen_owned_path; /* we bound it: unlink on exit */
	uv_poll_t listen_poll;
	bool listen_poll_init;
	uv_timer_t accept_retry;
	uv_timer_t drain_timer;
	struct list_head conns;
	unsigned n_conns;
	unsigned in_flight;
	struct uid_count *uids;
	unsigned n_uids, uids_cap;
	bool stopping;
	struct server_stats stats;
	struct uid_stats *uid_stats;
	unsigned n_uid_stats;
	uint64_t next_transfer;
	uint64_t start_ms;
	/* Transfer events for the control plane; may be NULL. */
	server_event_fn on_event;
	void *on_event_data;
	/* Called once, when server_stop() first runs (whoever calls it). */
	void (*on_stopping)(struct server *srv);
	void (*on_stopped)(struct server *srv);
};

/*
 * server_init() - @listen_fd is an already bound and listening socket to
 * adopt (socket activation; ownership taken), or -1 to bind cfg->socket_path.
 */
int server_init(struct server *srv, uv_loop_t *loop, const struct server_config *cfg,
                int listen_fd);

/*
 * server_stop() - stop accepting; transfers in flight may finish until the
 * drain timeout, then are cancelled; @immediate cancels at once. Calls
 * srv->on_stopped once every connection is gone.
 */
void server_stop(struct server *srv, bool immediate);

void server_free(struct server *srv);

/* server_uid_stats() - the counters of @uid (created on first use). */
struct uid_stats *server_uid_stats(struct server *srv, uid_t uid);

/* server_foreach_transfer() - call @fn for every transfer in flight. */
void server_foreach_transfer(struct server *srv,
                             void (*fn)(const struct transfer_info *info, void *arg), void *arg);

/* server_cancel_transfer() - cancel by daemon-wide id. Return: 0 or -ENOENT. */
int server_cancel_transfer(struct server *srv, uint64_t transfer);

/* Per-uid in-flight accounting (used by conn). */
bool server_uid_acquire(struct server *srv, uid_t uid);
void server_uid_release(struct server *srv, uid_t uid);

#endif
