/*
 * fuzz-request.c - libFuzzer target for the request decoder and validator:
 * any record a client can send goes through wire_request_decode() and, when
 * it parses, validate_request(), exactly as the daemon does.
 *
 * Beyond "no crash", it checks what the daemon relies on: a failure is
 * -EBADMSG; a request that validates describes a range of real file
 * offsets; and what decoded survives a re-encode unchanged.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "validate.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_valid_range(const struct wire_request *req)
{
	if (req->op != WIRE_OP_SENDFILE)
		abort();
	if (req->offset > (uint64_t)INT64_MAX)
		abort();
	if (req->has_count && (req->count == 0 || req->count > (uint64_t)INT64_MAX - req->offset))
		abort();
}

static void
check_reencode(const struct wire_request *req)
{
	uint8_t buf[WIRE_MAX_RECORD];
	struct wire_request again;
	ssize_t n;

	n = wire_request_encode(req, buf, sizeof(buf));
	if (n < 0)
		abort();
	if (wire_request_decode(buf, (size_t)n, &again) < 0)
		abort();
	if (!again.has_id || again.id != req->id || again.op != req->op)
		abort();
	switch (req->op) {
	case WIRE_OP_SENDFILE:
		if (again.offset != req->offset || again.has_count != req->has_count ||
		    (req->has_count && again.count != req->count) ||
		    again.fallback != req->fallback)
			abort();
		break;
	case WIRE_OP_CANCEL:
		if (again.target != req->target)
			abort();
		break;
	default:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_request req;
	const char *msg = NULL;
	int r;

	r = wire_request_decode(data, size, &req);
	if (r < 0) {
		if (r != -EBADMSG)
			abort();
		/* Only an id was salvaged: nothing else may be filled in. */
		if (req.op != WIRE_OP_NONE || (!req.has_id && req.id != 0))
			abort();
		return 0;
	}
	if (!req.has_id && req.id != 0)
		abort();

	r = validate_request(&req, &msg);
	if (r > 0 || (r < 0 && !msg))
		abort();
	if (r == 0)
		check_valid_range(&req);

	if (req.op != WIRE_OP_NONE)
		check_reencode(&req);
	return 0;
}
