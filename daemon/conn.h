/*
 * conn - one client connection on the data socket: reads request records,
 * starts transfers, queues one reply per request and sends the replies at
 * the engine's flush (engine.h). Owns the connection's descriptor, every
 * descriptor received on it until a transfer takes it, and its transfers.
 *
 * A connection knows nothing of the server that accepted it: what it needs
 * (the engine, the accounting, two limits, whom to tell when it is gone)
 * comes in a struct conn_env.
 */
#ifndef SFD_CONN_H
#define SFD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "list.h"

struct conn;
struct engine;
struct account;
struct transfer_info;
struct pace_conf;

/* Records read per recvmmsg(2) (conn.c says why this many). */
#define CONN_READ_BATCH 32

/* What a connection uses of its owner's. Must outlive the connection. */
struct conn_env {
	struct engine *engine;
	struct account *account;
	/* CONN_READ_BATCH buffers of WIRE_MAX_RECORD bytes, shared by the
	 * connections of one loop (they read one at a time). */
	unsigned char *recv_bufs;
	unsigned max_in_flight; /* requests in flight per connection */
	unsigned max_handoffs;  /* hand-offs in flight, daemon-wide (account.h) */
	size_t chunk_size;      /* bytes per wake-up of a transfer */
	/* The client is gone but hand-offs of its still run: no longer a
	 * connection, though still the owner's until closed(). */
	void (*detached)(void *owner, struct conn *c);
	/* Deadline and idle timeout: the defaults and maxima (pace.h). */
	const struct pace_conf *pace;
	/* The connection is gone (from its last close callback): unlink it. */
	void (*closed)(void *owner, struct conn *c);
	void *owner;
};

/*
 * conn_new() - adopt an accepted connection of the peer @cred and start
 * reading from it. Takes ownership of @fd on every path, failure included.
 * Return: 0 and *ret_conn, or a negative errno.
 */
int conn_new(const struct conn_env *env, int fd, const struct ucred *cred, struct conn **ret_conn);

/*
 * conn_shutdown() - the server is stopping: refuse new requests; close once
 * the transfers in flight are done. With @cancel, cancel them now (their
 * CANCELLED replies are still sent).
 */
void conn_shutdown(struct conn *c, bool cancel);

/* conn_link() - the connection's entry in its owner's list. */
struct list_head *conn_link(struct conn *c);
/* conn_from_link() - the connection of such an entry. */
struct conn *conn_from_link(struct list_head *link);

/* conn_detached() - has detached() been called for it? */
bool conn_detached(const struct conn *c);

void conn_foreach_transfer(struct conn *c, void (*fn)(const struct transfer_info *info, void *arg),
                           void *arg);
/* conn_cancel_transfer() - Return: 0 if @transfer is one of ours, else -ENOENT. */
int conn_cancel_transfer(struct conn *c, uint64_t transfer);

#endif
