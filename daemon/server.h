/*
 * server - the daemon's state: the listening data socket, the connections,
 * the limits; the event loops (loops.h), each with its transfer engine and
 * its connections; the accounting, which all loops share. Owns the listener
 * descriptor, every connection, the loops, the engines and the account.
 * Opaque: others ask through the functions below, from loop 0's thread (the
 * one that called server_new()).
 */
#ifndef SFD_SERVER_H
#define SFD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "loops.h"
#include "pace.h"
#include "sockpath.h"

#define SERVER_MAX_ALLOW 64

struct server_config {
	char socket_path[SOCKPATH_MAX];
	unsigned socket_mode;
	unsigned max_connections;
	unsigned max_in_flight_per_conn;
	unsigned max_in_flight_per_uid;
	/* Handed-off transfers in flight, daemon-wide: they outlive their
	 * connections, so no connection limit bounds them (0: refuse them). */
	unsigned max_handoffs;
	size_t chunk_size;
	unsigned drain_timeout_ms;
	/* Transfers' deadline and idle timeout: defaults and maxima. */
	struct pace_conf pace;
	/* The worker pool's threads (UV_THREADPOOL_SIZE): jobs handed to it
	 * at once. */
	unsigned workers;
	/* Event loops, each in a thread of its own (1: the caller's only). */
	unsigned loops;
	/* Empty lists allow everyone who can open the socket. */
	uid_t allow_uids[SERVER_MAX_ALLOW];
	unsigned n_allow_uids;
	gid_t allow_gids[SERVER_MAX_ALLOW];
	unsigned n_allow_gids;
};

void server_config_defaults(struct server_config *cfg);

struct server;
struct account;
struct transfer_info;

/* What the daemon's main wants to hear; @data is passed back. */
struct server_hooks {
	/* Once, when server_stop() first runs (whoever calls it). */
	void (*on_stopping)(void *data);
	/* Once every connection is gone after server_stop(). */
	void (*on_stopped)(void *data);
	void *data;
};

/*
 * server_new() - serve @loop: @listen_fd is an already bound and listening
 * socket to adopt (socket activation; ownership taken on every path), or -1
 * to bind cfg->socket_path. @loop is loop 0; with cfg->loops > 1 it starts
 * the threads of the others (loops.h), with the caller's signal mask. Creates
 * each loop's transfer engine (engine.h) and the accounting (account.h).
 * Return: 0 and *ret, or a negative errno.
 */
int server_new(uv_loop_t *loop, const struct server_config *cfg, int listen_fd,
               const struct server_hooks *hooks, struct server **ret);

/*
 * server_stop() - stop accepting; transfers in flight may finish until the
 * drain timeout, then are cancelled; @immediate cancels at once. Calls
 * hooks->on_stopped once every connection is gone.
 */
void server_stop(struct server *srv, bool immediate);

/* server_free() - close the listener and the engines, stop and join the
 * other loops' threads; the memory goes once loop 0 has run the close
 * callbacks. Every connection must be gone (or none was accepted). NULL is
 * a no-op. */
void server_free(struct server *srv);

uv_loop_t *server_loop(const struct server *srv);
const struct server_config *server_config(const struct server *srv);
struct account *server_account(const struct server *srv);

/* What the control plane and the service manager are told. */
struct server_status {
	unsigned connections;
	bool stopping;
	bool owns_path; /* it bound the socket file itself (not passed) */
	uint64_t uptime_ms;
	unsigned loops;
	unsigned loop_connections[LOOPS_MAX]; /* per loop, [0, loops) */
};

void server_status(const struct server *srv, struct server_status *ret);

/* server_foreach_transfer() - call @fn for every transfer in flight, on
 * each loop's thread in turn (loop 0 waiting for each). */
void server_foreach_transfer(struct server *srv,
                             void (*fn)(const struct transfer_info *info, void *arg), void *arg);

/* server_cancel_transfer() - cancel by daemon-wide id. Return: 0 or -ENOENT. */
int server_cancel_transfer(struct server *srv, uint64_t transfer);

#endif
