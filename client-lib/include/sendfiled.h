/*
 * sendfiled.h - client library of sendfiled, the zero-copy file sending daemon.
 *
 * A client hands the daemon a destination descriptor (normally a connected
 * socket) and a source descriptor (normally a regular file); the daemon sends
 * the requested range with sendfile(2), splice(2), or, when allowed, a
 * read/write copy, and answers with the bytes sent and the final file offset.
 * The semantics are those of Python asyncio's loop.sendfile().
 *
 * Conventions:
 *  - Functions returning int return >= 0 on success and a negative errno on
 *    failure. Out-parameters (ret*) are written only on success.
 *  - Descriptors passed in are borrowed: the library never closes them and
 *    keeps none after the call returns (the daemon receives duplicates).
 *  - The library never logs and never raises signals (it sends with
 *    MSG_NOSIGNAL).
 *  - Thread-safety: a struct sfd_client is not thread-safe. Use one client per
 *    thread, or serialise all calls on one client with a lock. Distinct
 *    clients are independent.
 *
 * Daemon restarts:
 *  - A daemon that is stopping does nothing with a new request: it answers
 *    SFD_STATUS_SHUTTING_DOWN (nothing sent, the file position untouched), or
 *    closes the connection without reading the request. A request the daemon
 *    may have started is never sent twice by the library.
 *  - sfd_client_sendfile() then sends the request again on a new connection
 *    to the same socket, so that a restart fails no call. Under socket
 *    activation the new connection waits in the socket's backlog until the
 *    new daemon accepts it. While nothing listens on the socket, connecting
 *    is retried every 10 to 50 ms; at most 50 attempts in all, never past
 *    the call's timeout. A connection the daemon closed before the call is
 *    replaced the same way first. If the connection ends after the daemon
 *    read the request, the call fails.
 *  - It replaces the connection only while that is allowed: by default, on
 *    a client never given to sfd_client_submit() (completions may be due on
 *    its connection); never after sfd_client_set_reconnect(c, 0), which a
 *    caller watching sfd_client_get_fd() from an event loop must call. On a
 *    client that may not reconnect, the SFD_STATUS_SHUTTING_DOWN outcome or
 *    the error is returned as it is.
 *  - sfd_client_submit(): a completion with SFD_STATUS_SHUTTING_DOWN means
 *    the same. Open a new client on the same socket and submit the request
 *    again there; under socket activation the new connection is served by
 *    the next daemon. The old client still delivers the completions of
 *    transfers the stopping daemon finishes, then reports -ECONNRESET. A
 *    submit that fails with -EPIPE or -ECONNRESET sent nothing either.
 */
#ifndef SENDFILED_H
#define SENDFILED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SFD_VERSION_MAJOR 0
#define SFD_VERSION_MINOR 1
#define SFD_VERSION_MICRO 0

/* Flags for sfd_client_sendfile() and sfd_client_submit(). */
/* Fail with SFD_STATUS_NOT_AVAILABLE instead of copying through user space. */
#define SFD_NO_FALLBACK (1u << 0)

/* Outcome of a request (struct sfd_result.status); the wire enum's values. */
enum sfd_status {
	SFD_STATUS_OK = 0,
	SFD_STATUS_NOT_AVAILABLE = 1, /* no zero-copy method and SFD_NO_FALLBACK: nothing sent */
	SFD_STATUS_INVALID_ARGUMENT = 2,
	SFD_STATUS_PEER_CLOSED = 3, /* destination's peer closed or reset mid-transfer */
	SFD_STATUS_IO_ERROR = 4,
	SFD_STATUS_CANCELLED = 5,
	SFD_STATUS_LIMIT = 6,             /* a daemon limit was reached; retry later */
	SFD_STATUS_PROTOCOL = 7,          /* the daemon could not parse the request */
	SFD_STATUS_SHUTTING_DOWN = 8,     /* the daemon is stopping (a restart?): nothing sent */
	SFD_STATUS_PERMISSION_DENIED = 9, /* uid/gid not allowed by the daemon */
	SFD_STATUS_TIMED_OUT = 10,        /* the transfer's deadline or idle timeout ended it */
};

/* How the bytes were moved (struct sfd_result.method). */
enum sfd_method {
	SFD_METHOD_NONE = 0,
	SFD_METHOD_SENDFILE = 1,
	SFD_METHOD_SPLICE = 2,
	SFD_METHOD_READ_WRITE = 3, /* the user-space copy ("fallback") */
};

/* Bits of struct sfd_result.flags. */
/* The source ended before the requested range did (short file, truncation). */
#define SFD_RESULT_SHORT_SOURCE (1u << 0)

/*
 * -SFD_EOUTCOME_UNKNOWN: the connection to the daemon was lost (it was killed,
 * or crashed) while a request was in flight, so no reply will come for it.
 * Not an errno: outside their range, so that it cannot be mistaken for one. The
 * transfer may have sent part of its range: the source's file position says
 * how much (offset + bytes that left) when no other transfer was sending from
 * the same open file description; see docs/PROTOCOL.md, "When the daemon
 * dies".
 */
#define SFD_EOUTCOME_UNKNOWN 4096

/* Size of struct sfd_result.message, terminating NUL included. */
#define SFD_MESSAGE_MAX 256

struct sfd_result {
	uint64_t bytes_sent;   /* always filled, also on error */
	uint64_t final_offset; /* offset + bytes_sent; the source's position if bytes_sent > 0 */
	int status;            /* enum sfd_status */
	int error;             /* positive errno giving the cause, 0 if none */
	int method;            /* enum sfd_method */
	unsigned flags;        /* SFD_RESULT_* */
	uint64_t id;           /* the request's id, as sfd_client_submit() returns it */
	/* The daemon's explanation of a failure, NUL-terminated, "" if it gave
	 * none. English, for people and logs: programs should test status and
	 * error instead. */
	char message[SFD_MESSAGE_MAX];
};

struct sfd_client;

/*
 * sfd_client_open() - connect to the daemon.
 * @path: the daemon's data socket, or NULL for the default: $SENDFILED_SOCKET,
 *        else $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock if it exists (a
 *        per-user daemon), else /run/sendfiled/sendfiled.sock (the system's).
 * Blocks for the connect(2) only.
 * A daemon with an allow-list accepts the connection before it checks the
 * user, so a refusal shows at the first exchange instead: the call that
 * meets it, and every later one, returns -EACCES.
 * Return: 0 and *ret, or a negative errno (-ENOENT, -ECONNREFUSED when no
 * daemon listens, -ENAMETOOLONG for a path too long for sockaddr_un).
 */
int sfd_client_open(const char *path, struct sfd_client **ret);

/*
 * sfd_client_free() - close the connection and free the client. NULL is a
 * no-op. Transfers still in flight are cancelled by the daemon (it updates
 * their file positions); their completions are never delivered.
 */
void sfd_client_free(struct sfd_client *c);

/*
 * sfd_client_sendfile() - send a range of @in_fd to @out_fd and wait.
 * @out_fd: destination (socket, pipe or file open for writing); borrowed.
 * @in_fd: source (regular file, pipe or socket open for reading); borrowed.
 * @offset: start of the range (0 for pipes and sockets).
 * @count: bytes to send; 0 means to end of file.
 * @flags: SFD_NO_FALLBACK or 0.
 * @timeout_ms: how long to wait for the answer; -1 (any negative value) waits
 *        forever. On timeout the request is cancelled and its answer awaited
 *        so that the file position is settled before returning -ETIMEDOUT;
 *        if the transfer ended on its own before the cancel reached the
 *        daemon, that real outcome is returned instead.
 * @ret: the outcome; written when the daemon answered, which includes
 *        -ETIMEDOUT: then ret->status is SFD_STATUS_CANCELLED, with the bytes
 *        sent before the cancel and the final offset.
 *
 * Blocks the calling thread. Completions of requests made with
 * sfd_client_submit() that arrive meanwhile are kept for sfd_client_dispatch().
 * After a daemon restart it may send the request again on a new connection
 * (see "Daemon restarts" at the top).
 *
 * Return: 0 when the daemon answered (the outcome, success or not, is in
 * ret->status, with bytes_sent and final_offset always filled;
 * SFD_STATUS_SHUTTING_DOWN only when the retries above ran out); a negative
 * errno when it could not ask: -EBADF for a bad descriptor, -EINVAL for
 * unknown @flags, -ECONNRESET or -EPIPE when the daemon went away before it
 * read the request (and no daemon answered again in time),
 * -SFD_EOUTCOME_UNKNOWN when it went away after (the file position tells
 * what was sent; the request is not sent again), -EACCES when it refused this user (see
 * sfd_client_open()), -EBADMSG when it sent a record that cannot be parsed
 * (the connection is then shut down), -ETIMEDOUT.
 */
int sfd_client_sendfile(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset,
                        uint64_t count, unsigned flags, int timeout_ms, struct sfd_result *ret);

/* The asynchronous interface, for event loops. */

/*
 * sfd_completion_fn - called by sfd_client_dispatch() once per finished request.
 * @id: the id sfd_client_submit() returned; @userdata: the pointer given there.
 * @res: valid during the call only. The callback may call sfd_client_submit()
 * and sfd_client_cancel() but must not free @c.
 */
typedef void (*sfd_completion_fn)(struct sfd_client *c, uint64_t id, const struct sfd_result *res,
                                  void *userdata);

/*
 * sfd_client_get_fd() - the descriptor to watch for readability (POLLIN).
 * Owned by the client: do not close it or change its flags. When it is
 * readable, call sfd_client_dispatch(). Changes nothing: a caller that keeps
 * watching it calls sfd_client_set_reconnect(c, 0) first, so that it stays
 * the same for the client's life.
 */
int sfd_client_get_fd(const struct sfd_client *c);

/*
 * sfd_client_set_reconnect() - may sfd_client_sendfile() replace the
 * connection after a daemon restart (see "Daemon restarts" at the top)?
 * @enable: 1 (the default): yes, as long as sfd_client_submit() was never
 * called on this client; 0: no, for a caller that watches
 * sfd_client_get_fd(). Return: 0.
 */
int sfd_client_set_reconnect(struct sfd_client *c, int enable);

/*
 * sfd_client_submit() - start a transfer without waiting (see
 * sfd_client_sendfile() for the arguments). Its completion is delivered by
 * sfd_client_dispatch() with @userdata.
 * Transfers to the same destination (the same socket through any of its
 * descriptors) run one after the other in the order submitted, so several
 * files can be queued on one connection without waiting; transfers to
 * different destinations run concurrently.
 * May block briefly while the connection's send buffer is full; while it
 * waits it keeps reading completions, which it holds for the next dispatch:
 * call sfd_client_dispatch() after a submit when sfd_client_pending() > 0.
 * With sfd_client_set_nonblocking() it returns -EAGAIN instead of waiting.
 * A completion with SFD_STATUS_SHUTTING_DOWN: see "Daemon restarts" at the
 * top. From the first submit on, sfd_client_sendfile() no longer replaces
 * the connection.
 *
 * Return: 0 and *ret_id (never 0), or a negative errno.
 */
int sfd_client_submit(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset, uint64_t count,
                      unsigned flags, void *userdata, uint64_t *ret_id);

/*
 * sfd_client_dispatch() - deliver every completion available now, without
 * blocking, through @cb.
 * Completions already received are delivered before an error is reported.
 * Return: the number of completions delivered (0 if none), or a negative
 * errno: -ECONNRESET when the daemon closed the connection with no request
 * in flight, -SFD_EOUTCOME_UNKNOWN (once; -ECONNRESET after) when requests
 * were in flight: none of them will complete, each source's position tells
 * what was sent (see SFD_EOUTCOME_UNKNOWN), -EACCES when it refused this
 * user, -EBADMSG when it sent a record that cannot be parsed. These are
 * final: every later call returns an error, and the client is only good for
 * sfd_client_free().
 */
int sfd_client_dispatch(struct sfd_client *c, sfd_completion_fn cb);

/*
 * sfd_client_cancel() - ask the daemon to stop request @id. Does not wait: the
 * request still completes, normally with SFD_STATUS_CANCELLED and the bytes
 * sent so far (or with its real outcome if it finished first).
 * Return: 0, -ENOENT if @id is not in flight (a completion already received
 * and waiting for sfd_client_dispatch() is no longer in flight), -EAGAIN in
 * non-blocking mode when the connection is full (see
 * sfd_client_set_nonblocking()), or a negative errno.
 */
int sfd_client_cancel(struct sfd_client *c, uint64_t id);

/*
 * sfd_client_set_nonblocking() - never wait for room on the connection.
 * While @on, sfd_client_submit() and sfd_client_cancel() return -EAGAIN
 * instead of waiting when the connection's send buffer is full: nothing was
 * sent and nothing is in flight (a submit's descriptors were not passed, no
 * id was used up). Keep the request, watch sfd_client_get_fd() for
 * writability as well as readability, call sfd_client_dispatch() when it is
 * readable (the daemon makes room by sending replies), and try again when it
 * is writable. Off by default; an event loop that must never block turns it
 * on once, after sfd_client_open().
 * sfd_client_sendfile() is not affected: it blocks, as it always does.
 * Return: 0.
 */
int sfd_client_set_nonblocking(struct sfd_client *c, bool on);

/* sfd_client_pending() - completions received and not yet dispatched. */
unsigned sfd_client_pending(const struct sfd_client *c);

/* sfd_client_in_flight() - requests submitted and not yet completed. */
unsigned sfd_client_in_flight(const struct sfd_client *c);

/* The optional parts of the protocol a daemon may implement: the values of
 * proto/sendfiled.proto's enum Feature, as bits of struct
 * sfd_ping_info.features (1u << SFD_FEATURE_*). */
enum sfd_feature {
	SFD_FEATURE_DEADLINE = 1,        /* Sendfile.deadline_ms */
	SFD_FEATURE_RATE_LIMIT = 2,      /* Sendfile.rate_limit_bps, rate_limit_after */
	SFD_FEATURE_CLOSE_WHEN_DONE = 3, /* Sendfile.close_when_done, shutdown_write */
	SFD_FEATURE_IDLE_TIMEOUT = 4,    /* Sendfile.idle_timeout_ms */
};

/* Who answered a Ping (sfd_client_ping()). */
struct sfd_ping_info {
	uint32_t protocol_version; /* the data-plane protocol's version: 1 */
	/* The optional features the daemon implements: bit (1u << Feature) for
	 * each enum sfd_feature value it lists. Values this library does not
	 * know are dropped. */
	uint32_t features;
	char daemon_version[32]; /* e.g. "0.1.0", NUL-terminated; "" if not given */
};

/*
 * sfd_client_ping() - ask the daemon who it is and what it implements, and
 * wait for the answer.
 * @timeout_ms: how long to wait; -1 (any negative value) waits forever.
 * @ret: written on success only. A daemon too old to say who it is answers
 *        protocol 1, no features, daemon_version "".
 *
 * Blocks the calling thread. Completions of requests made with
 * sfd_client_submit() that arrive meanwhile are kept for
 * sfd_client_dispatch(). The daemon handles a connection's records in order,
 * so the answer also means that every request sent before it was handled (a
 * Cancel has taken effect). A Ping changes nothing, so it is sent again on a
 * new connection whenever sfd_client_sendfile() would reconnect (see "Daemon
 * restarts" at the top), also after the old connection ended with the Ping
 * unanswered: on a client that may reconnect, a successful ping means a
 * daemon serves the socket now.
 *
 * Return: 0; -ETIMEDOUT; -ECONNRESET or -EPIPE when the daemon went away
 * (then, if submitted requests were in flight, sfd_client_dispatch() reports
 * -SFD_EOUTCOME_UNKNOWN for them), -EACCES when it refused this user,
 * -EBADMSG when it sent a record that cannot be parsed, or another negative
 * errno (the daemon's error, should it refuse the Ping).
 */
int sfd_client_ping(struct sfd_client *c, int timeout_ms, struct sfd_ping_info *ret);

/* sfd_status_str() - a static English name for an enum sfd_status value. */
const char *sfd_status_str(int status);

/* sfd_method_str() - a static name for an enum sfd_method value. */
const char *sfd_method_str(int method);

/* sfd_default_socket_path() - the default data socket path, as described at
 * sfd_client_open(), written into @buf. Return: its length, or -ENAMETOOLONG. */
int sfd_default_socket_path(char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SENDFILED_H */
