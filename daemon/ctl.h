/*
 * ctl - the control plane: nng REQ/REP on the control socket (status, stats,
 * list, cancel, drain, log level, limits) and nng PUB on the events socket
 * (one protobuf Event per transfer start and finish).
 *
 * nng runs its own threads, and one thread of ours makes every call into
 * nng: nng does a socket's I/O in the calling thread, and that thread and
 * nng's have a descriptor table of their own, so that the loop's is not
 * shared (each syscall on a shared table's descriptor takes a reference on
 * its file). The loop posts replies and events to that thread; nng's
 * callbacks hand a request to the loop (a mutex-guarded slot and an eventfd
 * the loop polls) and never block. Everything that touches the server runs
 * on the loop thread.
 *
 * nng 1.5.2's IPC listener stops accepting for good when a peer disconnects
 * during the SP handshake (fixed in nng 1.6.0). A probe thread (ctl-probe.c)
 * completes a handshake with each listener every probe_interval_ms and has a
 * listener that does not answer re-created.
 */
#ifndef SFD_CTL_H
#define SFD_CTL_H

#include <stdbool.h>
#include <sys/types.h>

#include "sockpath.h"

struct server;
struct ctl;

struct ctl_config {
	char control_path[SOCKPATH_MAX]; /* "" = control.sock beside the data socket */
	char events_path[SOCKPATH_MAX];  /* "" = events.sock beside the data socket */
	unsigned mode;                   /* file mode of both sockets, e.g. 0600 */
	bool has_group;                  /* give both sockets to @group */
	gid_t group;
	unsigned probe_interval_ms;
};

void ctl_config_defaults(struct ctl_config *cfg);

/*
 * ctl_start() - listen on both sockets and hook into @srv's transfer events.
 * Return: 0 and *ret, or a negative errno (nng errors are mapped).
 */
int ctl_start(struct server *srv, const struct ctl_config *cfg, struct ctl **ret);

/* ctl_free() - close both sockets, remove their files. NULL is a no-op.
 * Blocks until nng's callbacks and a running probe have returned. */
void ctl_free(struct ctl *ctl);

#endif
