/*
 * fuzz-response.c - libFuzzer target for the response decoder (what a client
 * library reads from the daemon) and the encoder: any input that decodes must
 * re-encode within one record and decode to the same response.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
same(const struct wire_response *a, const struct wire_response *b)
{
	return a->id == b->id && a->status == b->status && a->error == b->error &&
	       a->bytes_sent == b->bytes_sent && a->final_offset == b->final_offset &&
	       a->method == b->method && a->short_source == b->short_source &&
	       strcmp(a->message, b->message) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_response resp, again;
	uint8_t buf[WIRE_MAX_RECORD];
	ssize_t n;
	int r;

	r = wire_response_decode(data, size, &resp);
	if (r < 0) {
		if (r != -EBADMSG)
			abort();
		return 0;
	}
	/* The message is always terminated within its buffer. */
	if (strnlen(resp.message, sizeof(resp.message)) >= sizeof(resp.message))
		abort();

	n = wire_response_encode(&resp, buf, sizeof(buf));
	if (n < 0)
		abort();
	if (wire_response_decode(buf, (size_t)n, &again) < 0)
		abort();
	if (!same(&resp, &again))
		abort();

	/* Too small a buffer is refused, never overrun. */
	if (n > 0 && wire_response_encode(&resp, buf, (size_t)n - 1) != -EMSGSIZE)
		abort();
	return 0;
}
