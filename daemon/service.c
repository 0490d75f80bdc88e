/*
 * service.c - socket activation, readiness, status and the watchdog.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "macro.h"
#include "account.h"
#include "server.h"
#include "service.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
#define SD_LISTEN_FDS_START 3
#endif

/* How often STATUS= is refreshed (only sent when it changed). */
#define STATUS_INTERVAL_MS 2000

static void
free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

#if HAVE_SYSTEMD

static int
listen_fds(char ***ret_names)
{
	return sd_listen_fds_with_names(1, ret_names);
}

static int
is_seqpacket_listener(int fd)
{
	return sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0);
}

static int
watchdog_usec(uint64_t *ret)
{
	return sd_watchdog_enabled(0, ret);
}

#else /* !HAVE_SYSTEMD: the same protocols, as sd-daemon(3) documents them */

static int
parse_uint64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int
listen_fds_unset(char ***ret_names)
{
	const char *p = getenv("LISTEN_FDNAMES");
	bool have_names = p != NULL;
	char **names = NULL;
	uint64_t pid, n;
	int r;

	if (parse_uint64(getenv("LISTEN_PID"), &pid) < 0 || pid != (uint64_t)getpid())
		return 0; /* not for us */
	r = parse_uint64(getenv("LISTEN_FDS"), &n);
	if (r < 0 || n > 4096)
		return -EINVAL;
	if (n == 0)
		return 0;
	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + (int)n; fd++) {
		int flags = fcntl(fd, F_GETFD);

		if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
			return -errno;
	}
	names = calloc(n + 1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	/* As sd_listen_fds_with_names(): as many names as descriptors, or
	 * none at all ("unknown" for each). */
	for (uint64_t i = 0; i < n; i++) {
		if (have_names && !p) {
			free_strv(names);
			return -EINVAL;
		}
		if (have_names) {
			const char *end = strchrnul(p, ':');

			names[i] = strndup(p, (size_t)(end - p));
			p = *end ? end + 1 : NULL;
		} else {
			names[i] = strdup("unknown");
		}
		if (!names[i]) {
			free_strv(names);
			return -ENOMEM;
		}
	}
	if (have_names && p) {
		free_strv(names);
		return -EINVAL;
	}
	*ret_names = names;
	return (int)n;
}

static int
listen_fds(char ***ret_names)
{
	int r = listen_fds_unset(ret_names);

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}

static int
is_seqpacket_listener(int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int type = 0, listening = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(listening);

	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) < 0)
		return -errno;
	return len >= sizeof(sa_family_t) && sa.sun_family == AF_UNIX && type == SOCK_SEQPACKET &&
	       listening;
}

static int
watchdog_usec(uint64_t *ret)
{
	const char *pid_s = getenv("WATCHDOG_PID");
	uint64_t usec, pid;

	if (parse_uint64(getenv("WATCHDOG_USEC"), &usec) < 0 || usec == 0)
		return 0;
	if (pid_s && (parse_uint64(pid_s, &pid) < 0 || pid != (uint64_t)getpid()))
		return 0;
	*ret = usec;
	return 1;
}

#endif /* HAVE_SYSTEMD */

/*
 * Send one notification to $NOTIFY_SOCKET, as sd_notify(3) describes the
 * protocol. Not sd_notify() itself: it sends blocking, and a manager that
 * does not read its socket (a full datagram queue) would stop the loop with
 * it. Here such a message is dropped instead.
 */
static void
notify(const char *msg)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	size_t len;

	if (!e || (e[0] != '/' && e[0] != '@'))
		return;
	len = strlen(e);
	if (len >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, e, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* the abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
	           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		log_debug("notification not sent: %s", strerror(errno));
}

/* ---- socket activation -------------------------------------------------- */

static void
socket_path(int fd, char *ret, size_t size)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	size_t n;

	ret[0] = '\0';
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
	    len <= offsetof(struct sockaddr_un, sun_path) || sa.sun_path[0] == '\0')
		return; /* unnamed or abstract: no file to put anything beside */
	n = strnlen(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
	if (n < size) {
		memcpy(ret, sa.sun_path, n);
		ret[n] = '\0';
	}
}

int
service_take_listener(int *ret_fd, char *ret_path, size_t path_size)
{
	char **names = NULL;
	int n, pick = -1, fd, r;

	n = listen_fds(&names);
	if (n < 0) {
		log_err("socket activation: bad $LISTEN_FDS or $LISTEN_FDNAMES: %s", strerror(-n));
		return n;
	}
	if (n == 0) {
		free_strv(names);
		return 0;
	}
	for (int i = 0; i < n && pick < 0; i++)
		if (names && names[i] && strcmp(names[i], "data") == 0)
			pick = i;
	/* A single descriptor is the data socket whatever its name (the
	 * socket unit's name, or "unknown", when FileDescriptorName= is not
	 * set). */
	if (pick < 0 && n == 1)
		pick = 0;
	for (int i = 0; i < n; i++) {
		if (i == pick)
			continue;
		log_warn("socket activation: closing descriptor %d named '%s': only 'data' is "
		         "used",
		         SD_LISTEN_FDS_START + i, names && names[i] ? names[i] : "?");
		close(SD_LISTEN_FDS_START + i);
	}
	free_strv(names);
	if (pick < 0) {
		log_err("socket activation: %d descriptors passed and none is named 'data' "
		        "(FileDescriptorName=data)",
		        n);
		return -ENOENT;
	}
	fd = SD_LISTEN_FDS_START + pick;
	r = is_seqpacket_listener(fd);
	if (r <= 0) {
		log_err("socket activation: descriptor %d is not a listening AF_UNIX "
		        "SOCK_SEQPACKET socket%s%s",
		        fd, r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
		close(fd);
		return r < 0 ? r : -ENOTSOCK;
	}
	/* The accept loop runs until EAGAIN. The manager keeps its own copy
	 * of this listener and never accepts from it itself. */
	r = fcntl(fd, F_GETFL);
	if (r < 0 || fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0) {
		r = -errno;
		log_err("socket activation: cannot make the listener non-blocking: %s",
		        strerror(-r));
		close(fd);
		return r;
	}
	socket_path(fd, ret_path, path_size);
	*ret_fd = fd;
	return 1;
}

/* ---- notifications ------------------------------------------------------ */

static void
format_status(const struct service *svc, char *buf, size_t size)
{
	const struct server *srv = svc->srv;
	struct server_status ss;
	unsigned c, t = account_in_flight(server_account(srv));

	server_status(srv, &ss);
	c = ss.connections;

	if (svc->stopping)
		snprintf(buf, size, "Draining: %u transfer%s in flight, %u connection%s", t,
		         t == 1 ? "" : "s", c, c == 1 ? "" : "s");
	else
		snprintf(buf, size, "Serving: %u connection%s, %u transfer%s in flight", c,
		         c == 1 ? "" : "s", t, t == 1 ? "" : "s");
}

void
service_update_status(struct service *svc)
{
	char status[sizeof(svc->status)], msg[sizeof(svc->status) + 16];

	if (!svc->started)
		return;
	format_status(svc, status, sizeof(status));
	if (strcmp(status, svc->status) == 0)
		return;
	snprintf(svc->status, sizeof(svc->status), "%s", status);
	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	notify(msg);
}

static void
on_status_timer(uv_timer_t *t)
{
	service_update_status(t->data);
}

static void
on_watchdog_timer(uv_timer_t *t)
{
	(void)t;
	notify("WATCHDOG=1");
}

void
service_start(struct service *svc, uv_loop_t *loop, struct server *srv)
{
	char msg[sizeof(svc->status) + 32];
	uint64_t usec = 0;

	memset(svc, 0, sizeof(*svc));
	svc->srv = srv;
	svc->started = true;
	format_status(svc, svc->status, sizeof(svc->status));
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", svc->status);
	notify(msg);

	/* Setting up may have taken a while: count the intervals from now. */
	uv_update_time(loop);
	uv_timer_init(loop, &svc->status_timer);
	svc->status_timer.data = svc;
	uv_timer_start(&svc->status_timer, on_status_timer, STATUS_INTERVAL_MS, STATUS_INTERVAL_MS);
	uv_unref((uv_handle_t *)&svc->status_timer);

	uv_timer_init(loop, &svc->watchdog_timer);
	svc->watchdog_timer.data = svc;
	if (watchdog_usec(&usec) > 0) {
		/* Half the interval, as sd_watchdog_enabled(3) advises. */
		uint64_t ms = usec / 2000;

		if (ms == 0)
			ms = 1;
		log_info("watchdog: pinging every %" PRIu64 " ms", ms);
		notify("WATCHDOG=1");
		uv_timer_start(&svc->watchdog_timer, on_watchdog_timer, ms, ms);
	}
	uv_unref((uv_handle_t *)&svc->watchdog_timer);
}

void
service_stopping(struct service *svc)
{
	char msg[sizeof(svc->status) + 32];

	if (!svc->started || svc->stopping)
		return;
	svc->stopping = true;
	format_status(svc, svc->status, sizeof(svc->status));
	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", svc->status);
	notify(msg);
}

void
service_close(struct service *svc)
{
	if (!svc->started)
		return;
	service_update_status(svc);
	svc->started = false;
	uv_close((uv_handle_t *)&svc->status_timer, NULL);
	uv_close((uv_handle_t *)&svc->watchdog_timer, NULL);
}
