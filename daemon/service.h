/*
 * service - running under a service manager: the listening socket it passes
 * (socket activation, $LISTEN_FDS), readiness, status and stopping
 * notifications ($NOTIFY_SOCKET, Type=notify), and the watchdog
 * ($WATCHDOG_USEC). systemd's sd-daemon reads what the manager passes when
 * the daemon is built with it; otherwise a small equivalent of the same
 * protocols does. Notifications are always sent here, without blocking: the
 * loop never waits for the manager to read them. Without a manager the
 * daemon binds its own socket and every notification is a no-op.
 */
#ifndef SFD_SERVICE_H
#define SFD_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct server;

struct service {
	struct server *srv;
	uv_timer_t status_timer;
	uv_timer_t watchdog_timer;
	bool started;
	bool stopping;
	char status[256]; /* the last STATUS= sent */
};

/*
 * service_take_listener() - adopt the data socket passed by the manager: the
 * descriptor named "data" (FileDescriptorName=data), or the only one passed
 * whatever its name. It must be an AF_UNIX SOCK_SEQPACKET socket that
 * listens; it is made non-blocking and close-on-exec. Other passed
 * descriptors are closed, and $LISTEN_FDS, $LISTEN_PID and $LISTEN_FDNAMES
 * are removed from the environment.
 * @ret_path receives the socket's file system path, "" when it has none
 * (abstract or unnamed).
 * Logs what it finds wrong.
 * Return: 1 and *ret_fd (owned by the caller) when a socket was passed, 0
 * when none was (not socket-activated), or a negative errno.
 */
int service_take_listener(int *ret_fd, char *ret_path, size_t path_size);

/*
 * service_start() - tell the manager the daemon is ready (READY=1 and a first
 * STATUS=), then keep STATUS= current with @srv's live counts and, when the
 * manager asks for it, ping the watchdog at half its interval. Both timers run
 * on @loop, so a stuck loop stops the pings. They do not keep the loop alive.
 */
void service_start(struct service *svc, uv_loop_t *loop, struct server *srv);

/* service_stopping() - STOPPING=1 and a "Draining" status. Idempotent. */
void service_stopping(struct service *svc);

/* service_update_status() - send STATUS= now if the counts changed. */
void service_update_status(struct service *svc);

/* service_close() - stop the timers (closes their handles). */
void service_close(struct service *svc);

#endif
