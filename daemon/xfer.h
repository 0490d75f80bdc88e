/*
 * xfer - the transfer engine: moves one range from a source descriptor to a
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

#include "validate.h"
#include "wire.h"

/* sendfile(2) moves at most this much per call on Linux. */
#define XFER_SYSCALL_MAX 0x7ffff000u

struct xfer;

struct xfer_params {
	uint64_t id;
	uint64_t offset;
	uint64_t count; /* meaningful when has_count */
	bool has_count;
	bool fallback;
	size_t chunk; /* bytes per wake-up (per worker job: 8 x this) */
};

struct xfer_result {
	int status; /* Sendfiled__V1__Status values */
	int error;  /* positive errno or 0 */
	uint64_t bytes_sent;
	uint64_t final_offset;
	int method; /* Sendfiled__V1__Method values */
	bool short_source;
	const char *message; /* static, or NULL */
};

/* Called once per transfer, on the loop thread. The xfer frees itself after
 * the callback returns: do not touch it again. */
typedef void (*xfer_done_fn)(struct xfer *x, const struct xfer_result *res, void *userdata);

/*
 * xfer_global_init() - once per process: installs the no-op handler of the
 * signal used to interrupt a worker blocked in a syscall (cancellation).
 */
int xfer_global_init(void);

/*
 * xfer_new() - set up a transfer without starting it. Takes ownership of
 * @dst and @src on every path (closed on failure).
 * Return: 0 and *ret_x, or a negative errno.
 */
int xfer_new(uv_loop_t *loop, int dst, const struct fdinfo *dinfo, int src,
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

/*
 * xfer_batch_begin(), xfer_batch_end() - bracket the handling of a batch of
 * requests received together. Transfers that end in between have their
 * descriptors closed by xfer_batch_end(), adjacent numbers in one
 * close_range(2), and a file range found in the page cache is not probed
 * again for the batch's other requests. Loop thread only; the replies of
 * the batch go out after xfer_batch_end(), so that a client never sees a
 * reply while the daemon still holds its descriptors.
 */
void xfer_batch_begin(void);
void xfer_batch_end(void);

/* xfer_batch_is_open() - is a batch open? Replies must wait for its end. */
bool xfer_batch_is_open(void);

/*
 * xfer_set_batch_end_hook() - @fn runs at the end of each batch the engine
 * opens itself (the transfers it starts when their turn at a destination
 * comes, see xfer_run()), once their descriptors are closed: the place to
 * send the replies held meanwhile.
 */
void xfer_set_batch_end_hook(void (*fn)(void *arg), void *arg);

uint64_t xfer_id(const struct xfer *x);
uint64_t xfer_bytes_sent(const struct xfer *x);
bool xfer_on_worker(const struct xfer *x);
/* xfer_waiting() - is it waiting for an earlier transfer to its destination? */
bool xfer_waiting(const struct xfer *x);
/* xfer_method() - the wire Method in use now (METHOD_NONE before any byte). */
int xfer_method(const struct xfer *x);

#endif
