/*
 * ctl-probe.c - the control plane's listener probe, for nng 1.5.2.
 *
 * nng 1.5.2's IPC listener stops accepting for good when a peer disconnects
 * during the SP handshake (nng issue #1518, fixed in nng 1.6.0). A probe
 * thread completes a handshake with each listener every probe_interval_ms
 * and has the nng thread re-create one that does not answer. This file can
 * go once nng 1.6 is the oldest version supported: delete it, its two
 * callers in ctl.c, and the probe_* fields of struct ctl.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl-internal.h"
#include "log.h"
#include "macro.h"

/*
 * A listener hit by nng issue #1518 still completes SP handshakes, but its
 * socket core has stopped taking the negotiated pipes (the transport reported
 * the dropped peer as NNG_ECLOSED, which the core reads as "listener closed"),
 * so no request ever arrives. Re-create it; clients queued on the dead one
 * reconnect (nng dialers retry) to the new one.
 */
void
ctl_restart_listener(struct ctl *ctl, struct endpoint *ep)
{
	int r;

	/* The next daemon took the path over while we drain: what answers
	 * there is its listener, not a dead one of ours. */
	if (ep->replaced)
		return;
	if (!ctl_endpoint_ours(ep)) {
		ep->replaced = true;
		log_notice("control plane: %s was taken over by the next daemon", ep->path);
		return;
	}
	log_warn("control plane: %s stopped answering; re-creating its listener", ep->path);
	nng_listener_close(ep->listener);
	unlink(ep->path);
	r = ctl_listen_endpoint(ctl, ep);
	if (r < 0)
		log_err("control plane: cannot listen on %s again: %s", ep->path, strerror(-r));
	ctl->listener_restarts++;
}

/*
 * Is @ep's listener alive? Complete an SP handshake with it and wait for the
 * socket core to take the pipe (on_pipe_event() counts it). Runs on the probe
 * thread: it blocks for up to PROBE_TIMEOUT_MS.
 */
static bool
probe(struct endpoint *ep)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	unsigned char hello[8] = {0,
	                          'S',
	                          'P',
	                          0,
	                          (unsigned char)(ep->probe_proto >> 8),
	                          (unsigned char)ep->probe_proto,
	                          0,
	                          0};
	unsigned long before = atomic_load(&ep->attached);
	unsigned char got[8];
	size_t have = 0;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return true; /* cannot tell: do not disturb the listener */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ep->path);
	/* Refused, missing, or a full backlog nobody accepts from: gone. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return false;
	if (send(fd, hello, sizeof(hello), MSG_NOSIGNAL) != sizeof(hello))
		return false;
	while (have < sizeof(got)) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, PROBE_TIMEOUT_MS) <= 0)
			return false;
		n = recv(fd, got + have, sizeof(got) - have, 0);
		if (n <= 0)
			return false;
		have += n;
	}
	for (int waited = 0; waited < PROBE_TIMEOUT_MS; waited += 10) {
		if (atomic_load(&ep->attached) != before)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

/*
 * Probes both listeners every probe_interval_ms until the control plane
 * stops, and has the nng thread re-create one that fails. A thread of its
 * own, started by the nng thread and sharing its descriptor table: a probe
 * blocks for up to a second or two when a listener is dead, which must hold
 * up neither the loop nor replies.
 */
void *
ctl_probe_thread_main(void *arg)
{
	struct ctl *ctl = arg;

	pthread_mutex_lock(&ctl->jobs_mtx);
	while (!ctl->stop) {
		struct timespec ts;
		bool rep_ok, pub_ok;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += ctl->cfg.probe_interval_ms / 1000;
		ts.tv_nsec += (long)(ctl->cfg.probe_interval_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		while (!ctl->stop &&
		       pthread_cond_timedwait(&ctl->probe_cv, &ctl->jobs_mtx, &ts) != ETIMEDOUT)
			;
		if (ctl->stop)
			break;
		pthread_mutex_unlock(&ctl->jobs_mtx);
		rep_ok = probe(&ctl->rep);
		pub_ok = probe(&ctl->pub);
		pthread_mutex_lock(&ctl->jobs_mtx);
		ctl->restart_rep |= !rep_ok;
		ctl->restart_pub |= !pub_ok;
		if (!rep_ok || !pub_ok)
			pthread_cond_signal(&ctl->jobs_cv);
	}
	pthread_mutex_unlock(&ctl->jobs_mtx);
	return NULL;
}
