/*
 * conn - one client connection on the data socket: reads request records,
 * starts transfers, sends one reply per request. Owns the connection's
 * descriptor, every descriptor received on it, and its transfers.
 */
#ifndef SFD_CONN_H
#define SFD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "list.h"

struct server;
struct conn;

/*
 * conn_new() - adopt an accepted connection and start reading from it.
 * Takes ownership of @fd on every path, failure included.
 * Return: 0 and *ret_conn (linked into the server), or a negative errno.
 */
int conn_new(struct server *srv, int fd, struct conn **ret_conn);

/*
 * conn_flush_held() - send the replies held while the transfer engine ran a
 * batch of its own (xfer_set_batch_end_hook()): its descriptors are closed
 * now. @arg is unused. Loop thread only.
 */
void conn_flush_held(void *arg);

/*
 * conn_shutdown() - the server is stopping: refuse new requests; close once
 * the transfers in flight are done. With @cancel, cancel them now (their
 * CANCELLED replies are still sent).
 */
void conn_shutdown(struct conn *c, bool cancel);

/* conn_from_link() - the connection of a server list entry. */
struct conn *conn_from_link(struct list_head *link);

unsigned conn_in_flight(const struct conn *c);

struct transfer_info;
void conn_foreach_transfer(struct conn *c, void (*fn)(const struct transfer_info *info, void *arg),
                           void *arg);
/* conn_cancel_transfer() - Return: 0 if @transfer is one of ours, else -ENOENT. */
int conn_cancel_transfer(struct conn *c, uint64_t transfer);

#endif
