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
 *    MSG_NOSIGNAL; see "The in-caller path" for its sendfile(2)).
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
/* sfd_client_handoff() only: shutdown(SHUT_WR) the destination after its last
 * byte, so that the peer reads end of file (a response that ends with the
 * connection). */
#define SFD_SHUT_WR (1u << 2)
/* Never send in the caller: the whole range goes to the daemon (see
 * sfd_client_set_inline_max()). */
#define SFD_NO_INLINE (1u << 1)

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
/* SFD_STATUS_TIMED_OUT: the transfer's deadline ended it. */
#define SFD_RESULT_DEADLINE (1u << 1)
/* SFD_STATUS_TIMED_OUT: its idle timeout ended it (no byte moved for that
 * long: the destination's reader stopped reading). */
#define SFD_RESULT_IDLE (1u << 2)
/* The caller sent all of it itself (see sfd_client_set_inline_max()): the
 * daemon was not asked. */
#define SFD_RESULT_INLINE (1u << 3)

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
 * their file positions); their completions are never delivered. Hand-offs
 * (sfd_client_handoff()) are not: the daemon finishes them.
 */
void sfd_client_free(struct sfd_client *c);

/*
 * sfd_client_sendfile() - send a range of @in_fd to @out_fd and wait.
 * @out_fd: destination (socket, pipe or file open for writing); borrowed.
 * @in_fd: source (regular file, pipe or socket open for reading); borrowed.
 * @offset: start of the range (0 for pipes and sockets).
 * @count: bytes to send; 0 means to end of file.
 * @flags: SFD_NO_FALLBACK, SFD_NO_INLINE, or 0.
 * @timeout_ms: how long to wait for the answer; -1 (any negative value) waits
 *        forever. On timeout the request is cancelled and its answer awaited
 *        so that the file position is settled before returning -ETIMEDOUT;
 *        if the transfer ended on its own before the cancel reached the
 *        daemon, that real outcome is returned instead.
 * @ret: the outcome; written when the daemon answered, which includes
 *        -ETIMEDOUT: then ret->status is SFD_STATUS_CANCELLED, with the bytes
 *        sent before the cancel and the final offset.
 *
 * A small range to a non-blocking socket may be sent in the caller (see "The
 * in-caller path" above).
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

/*
 * The in-caller path. A round trip to the daemon costs several times an
 * in-process sendfile(2) of a few KiB, so small ranges are first tried in
 * the calling thread.
 *
 * When: the destination is a non-blocking (O_NONBLOCK) SOCK_STREAM socket
 * and the range is at most the client's threshold (a count of 0, "to end of
 * file", is measured with fstat()). Never for a blocking destination (it
 * could block the caller), with SFD_NO_INLINE, with any limit in struct
 * sfd_options (the daemon paces and judges those), on a client whose threshold
 * is 0, in non-blocking mode (sfd_client_set_nonblocking()), and not by
 * sfd_client_submit() while a request it submitted to the same destination
 * (or from the same file) is in flight at the daemon: transfers to one
 * destination keep their order. A client knows only its own requests: when
 * several clients (threads, processes) send to one socket and count on the
 * daemon's order across them, pass SFD_NO_INLINE (or set the threshold to
 * 0) on those clients, or a small range may leave from the caller while
 * another client's transfer to that socket is still under way.
 *
 * What: sendfile(2) runs in the caller with an explicit offset; what it
 * could not send at once (the socket's buffer was full) goes to the daemon
 * as (offset + sent, count - sent), and the results are combined: bytes_sent
 * counts both parts, final_offset and the file position are offset + bytes
 * sent, method is SFD_METHOD_SENDFILE. When the caller sent it all,
 * ret->flags has SFD_RESULT_INLINE and the daemon was not asked.
 *
 * Errors: a closed or reset peer is reported in the caller as the daemon
 * reports it (the same status, errno and message, with SFD_RESULT_INLINE);
 * any other error (a source sendfile cannot read, say) leaves the range to
 * the daemon, which reports it as it always does. SIGPIPE is never raised:
 * it is blocked in the calling thread around the call unless the process
 * ignores it. If the daemon cannot be asked for the rest of a range the
 * caller began, the call fails as it would have, and the file position
 * tells how much was sent (offset + bytes sent).
 *
 * Caveats: a cold file is read from disk in the caller, as its own
 * sendfile() would be. The daemon does not see these transfers: its
 * statistics, limits and allow-list apply to what reaches it (a refused
 * user learns it at its first request that does). The source is not asked
 * its type (a syscall per request): a pipe or socket fails at once (ESPIPE)
 * and goes to the daemon; a seekable character device that sendfile(2) can
 * read (/dev/zero) is sent in the caller, where the daemon would splice it:
 * ret->method says which ran.
 *
 * Cost per request: fcntl() and getsockopt() on the destination,
 * sigaction() (and two sigprocmask() unless SIGPIPE is ignored), sendfile(),
 * lseek(); fstat() of the source for a count of 0; fstat() of both while
 * submitted requests are in flight; a second sendfile() when the first was
 * short. And sfd_client_submit() of a range that goes to the daemon, unless
 * the path is off or the client is in non-blocking mode: fstat() of both
 * descriptors, so that later requests know where it sends and from what.
 */

/* The default threshold of a new client, in bytes. Measured on loopback TCP
 * (bench/RESULTS.md, "small files sent in the caller"): sending in the
 * caller costs it less CPU than asking the daemon up to 512 KiB, as much at
 * 1 MiB; 256 KiB keeps a margin for cold files and full sockets. */
#define SFD_INLINE_MAX_DEFAULT (256u * 1024)

/*
 * sfd_client_set_inline_max() - the largest range the client tries to send
 * in the caller (see "The in-caller path" above); 0 turns the path off.
 * New clients start at SFD_INLINE_MAX_DEFAULT. Return: 0.
 */
int sfd_client_set_inline_max(struct sfd_client *c, size_t bytes);

/*
 * Limits of one transfer, enforced by the daemon; zero means none. A limit
 * that runs out ends the transfer with SFD_STATUS_TIMED_OUT, error
 * ETIMEDOUT, SFD_RESULT_DEADLINE or SFD_RESULT_IDLE in flags, and the bytes
 * sent so far (the file position says the same, as on any outcome).
 *
 * @deadline_ms: the transfer ends this long after the daemon received the
 *   request, time waiting behind another transfer to the same destination
 *   included.
 * @idle_timeout_ms: it ends after this long without a byte moving (waiting
 *   for the rate limit does not count).
 * @rate_limit_bps: at most this many bytes per second, after
 * @rate_limit_after bytes sent at full speed (which needs a rate).
 * @reserved: must be zero.
 *
 * The daemon refuses (SFD_STATUS_INVALID_ARGUMENT) a deadline or idle
 * timeout beyond its configured maximum (one day by default).
 */
struct sfd_options {
	uint32_t deadline_ms;
	uint32_t idle_timeout_ms;
	uint64_t rate_limit_bps;
	uint64_t rate_limit_after;
	uint64_t reserved[4];
};

/*
 * sfd_client_sendfile_opts() - sfd_client_sendfile() with @opts (NULL: no
 * limits). @timeout_ms is the caller's own wait, as there; the daemon's
 * limits are @opts's. Return: as sfd_client_sendfile(); -EINVAL also for
 * nonzero reserved fields or rate_limit_after without rate_limit_bps.
 */
int sfd_client_sendfile_opts(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset,
                             uint64_t count, unsigned flags, const struct sfd_options *opts,
                             int timeout_ms, struct sfd_result *ret);

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
 * different destinations run concurrently. Across clients, this holds for
 * requests that go to the daemon (see "The in-caller path" for the one
 * exception, and SFD_NO_INLINE).
 * May block briefly while the connection's send buffer is full; while it
 * waits it keeps reading completions, which it holds for the next dispatch:
 * call sfd_client_dispatch() after a submit when sfd_client_pending() > 0.
 * With sfd_client_set_nonblocking() it returns -EAGAIN instead of waiting.
 * A small range may be sent in the caller (see "The in-caller path" above):
 * its completion is queued at once, under the id returned, and delivered by
 * the next sfd_client_dispatch() like any other; sfd_client_pending() says
 * so (the descriptor does not become readable for it).
 * A completion with SFD_STATUS_SHUTTING_DOWN: see "Daemon restarts" at the
 * top. From the first submit on, sfd_client_sendfile() no longer replaces
 * the connection.
 *
 * Return: 0 and *ret_id (never 0), or a negative errno.
 */
int sfd_client_submit(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset, uint64_t count,
                      unsigned flags, void *userdata, uint64_t *ret_id);

/*
 * sfd_client_submit_opts() - sfd_client_submit() with @opts (NULL: no
 * limits; see struct sfd_options). Return: as sfd_client_submit(); -EINVAL
 * also for bad @opts.
 */
int sfd_client_submit_opts(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset,
                           uint64_t count, unsigned flags, const struct sfd_options *opts,
                           void *userdata, uint64_t *ret_id);

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
/*
 * sfd_client_handoff() - give the daemon a download to finish on its own:
 * it sends the range of @in_fd to @out_fd, then closes both (with
 * SFD_SHUT_WR, shuts the write side of @out_fd down first, after the last
 * byte and only if every byte was sent), and the outcome goes to its control
 * plane (events, statistics, `sendfilectl list`), not to the caller.
 * @out_fd: destination; with SFD_SHUT_WR a socket. Borrowed.
 * @in_fd: source; borrowed. @offset, @count: as for sfd_client_sendfile().
 * @flags: SFD_NO_FALLBACK, SFD_SHUT_WR, or 0.
 * @opts: per-transfer options, or NULL for none.
 * @timeout_ms: how long to wait for the daemon to take it; -1 (any negative
 *        value) waits forever. On timeout the request is cancelled: -ETIMEDOUT
 *        when it was, success when the daemon had taken it already.
 * @ret_transfer_id: the daemon's id of the transfer, as `sendfilectl list`
 *        and the events show it.
 *
 * Blocks the calling thread until the daemon has taken the descriptors, not
 * until the transfer ends. From the return on, the caller may close its own
 * descriptors, free @c and exit: the transfer goes on. The source's file
 * position moves as for any transfer (offset + bytes sent, when it ends, if
 * no other transfer sends from the same open file description). The daemon
 * bounds hand-offs per user and in all; past either it takes nothing.
 * After a daemon restart it may send the request again on a new connection,
 * as sfd_client_sendfile() does (see "Daemon restarts" at the top).
 *
 * Return: 0 and *ret_transfer_id; a negative errno when nothing was taken:
 * the daemon's refusal (its errno: -EINVAL, -EBADF, -ENOTSOCK and the
 * others of docs/PROTOCOL.md for a bad request; -EUSERS or -EBUSY past a
 * limit; -ESHUTDOWN while it stops; -EOPNOTSUPP for an option it does not
 * implement), -EINVAL for unknown @flags or nonzero opts->reserved[], and
 * the errors of sfd_client_sendfile() (-ECONNRESET, -EPIPE,
 * -SFD_EOUTCOME_UNKNOWN, -EACCES, -EBADMSG, -ETIMEDOUT).
 */
int sfd_client_handoff(struct sfd_client *c, int out_fd, int in_fd, uint64_t offset, uint64_t count,
                       unsigned flags, const struct sfd_options *opts, int timeout_ms,
                       uint64_t *ret_transfer_id);

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
