/*
 * xfer - one transfer: moves one range from a source descriptor to a
 * destination descriptor, and is the only module that calls sendfile(2) and
 * splice(2).
 *
 * Two ways to run, chosen per transfer from the descriptors it is given:
 *  - on the loop: the destination is a non-blocking socket or pipe (and a
 *    pipe or socket source is non-blocking too). Each wake-up moves at most
 *    one chunk, then waits for writability (uv_poll) so that one huge
 *    transfer cannot starve the others.
 *  - on a worker thread: anything that could block (a blocking destination,
 *    a regular file or device as destination, a blocking pipe or socket as
 *    source). The loop never blocks; the daemon never changes O_NONBLOCK or
 *    any other state of a passed descriptor except, at the end, the source's
 *    file position, which is the result.
 */
#ifndef SFD_XFER_H
#define SFD_XFER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "pace.h"
#include "validate.h"
#include "wire.h"

/* sendfile(2) moves at most this much per call on Linux. */
#define XFER_SYSCALL_MAX 0x7ffff000u

struct xfer;
struct engine;

struct xfer_params {
	uint64_t id;
	uint64_t offset;
	uint64_t count; /* meaningful when has_count */
	bool has_count;
	bool fallback;
	size_t chunk; /* bytes per wake-up (per worker job: 8 x this) */
	/* Whose it is, for the worker queue's turns (fairq.h): the client's
	 * uid, and its connection (any key unique among live connections). */
	uint32_t uid;
	uint64_t flow;
	/* A handed-off transfer that ends the response: shutdown(SHUT_WR) the
	 * destination (a socket) after its last byte, on success only. */
	bool shut_wr;
	/* Deadline, idle timeout, rate limit (pace.h); zero: none. */
	struct pace_limits limits;
};

struct xfer_result {
	int status; /* enum wire_status */
	int error;  /* positive errno or 0 */
	uint64_t bytes_sent;
	uint64_t final_offset;
	int method; /* enum wire_method */
	bool short_source;
	int timeout;         /* enum wire_timeout: which limit ended a TIMED_OUT one */
	const char *message; /* static, or NULL */
};

/* Called once per transfer, on the loop thread. The xfer frees itself after
 * the callback returns: do not touch it again. */
typedef void (*xfer_done_fn)(struct xfer *x, const struct xfer_result *res, void *userdata);

/*
 * xfer_global_init() - once per process (a signal's handler is the
 * process's): installs the no-op handler of the
 * signal used to interrupt a worker blocked in a syscall (cancellation).
 */
int xfer_global_init(void);

/*
 * xfer_new() - set up a transfer of @e's loop without starting it. Takes
 * ownership of @dst and @src on every path (closed on failure). When it
 * ends, its descriptors are closed at @e's next flush (engine.h), after its
 * done callback and before any reply the callback queued is sent.
 * Return: 0 and *ret_x, or a negative errno.
 */
int xfer_new(struct engine *e, int dst, const struct fdinfo *dinfo, int src,
             const struct fdinfo *sinfo, const struct xfer_params *p, xfer_done_fn done,
             void *userdata, struct xfer **ret_x);

/*
 * xfer_run() - start it, or, when another transfer to the same destination
 * is under way, queue it behind that one (dstline.h): it starts from the
 * loop when its turn comes. @done is called exactly once from now on,
 * possibly before xfer_run() returns (a small transfer finishes at once).
 */
void xfer_run(struct xfer *x);

/*
 * xfer_cancel() - stop the transfer. Its done callback reports CANCELLED
 * with the bytes sent so far (or its real outcome if it had just finished).
 * May call the callback before returning. Safe to call twice.
 */
void xfer_cancel(struct xfer *x);

uint64_t xfer_id(const struct xfer *x);
uint64_t xfer_bytes_sent(const struct xfer *x);
bool xfer_on_worker(const struct xfer *x);
/* xfer_waiting() - is it waiting for an earlier transfer to its destination? */
bool xfer_waiting(const struct xfer *x);
/* xfer_method() - the enum wire_method in use now (WIRE_METHOD_NONE before
 * any byte). */
int xfer_method(const struct xfer *x);
/* xfer_rate_limit() - its rate limit in bytes/s, 0 for none. */
uint64_t xfer_rate_limit(const struct xfer *x);

#endif
