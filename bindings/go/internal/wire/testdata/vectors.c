/*
 * vectors.c - print records encoded by the C codec (common/wire.c), one per
 * line, for the Go codec's tests (vectors.txt). From the top of the tree,
 * after ninja -C build:
 *
 *   cc -Icommon -Ibuild/proto bindings/go/internal/wire/testdata/vectors.c \
 *      build/common/libsfdcommon.a build/proto/libsfdproto.a -lprotobuf-c -o /tmp/vectors &&
 *   /tmp/vectors > bindings/go/internal/wire/testdata/vectors.txt
 *
 * Line format, fields separated by spaces:
 *   req ID OP OFFSET COUNT HAS_COUNT FALLBACK TARGET HEX
 *   resp ID STATUS ERROR BYTES_SENT FINAL_OFFSET METHOD SHORT_SOURCE MESSAGE_HEX HEX
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

static void
hex(const unsigned char *p, size_t n)
{
	if (n == 0)
		fputs("-", stdout);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

static void
req(struct wire_request r)
{
	unsigned char buf[WIRE_MAX_RECORD];
	ssize_t n = wire_request_encode(&r, buf, sizeof(buf));

	if (n < 0)
		return;
	printf("req %" PRIu64 " %d %" PRIu64 " %" PRIu64 " %d %d %" PRIu64 " ", r.id, (int)r.op,
	       r.offset, r.count, r.has_count, r.fallback, r.target);
	hex(buf, (size_t)n);
	putchar('\n');
}

static void
resp(struct wire_response r)
{
	unsigned char buf[WIRE_MAX_RECORD];
	ssize_t n = wire_response_encode(&r, buf, sizeof(buf));

	if (n < 0)
		return;
	printf("resp %" PRIu64 " %d %d %" PRIu64 " %" PRIu64 " %d %d ", r.id, r.status, r.error,
	       r.bytes_sent, r.final_offset, r.method, r.short_source);
	hex((const unsigned char *)r.message, strlen(r.message));
	putchar(' ');
	hex(buf, (size_t)n);
	putchar('\n');
}

int
main(void)
{
	static const uint64_t big[] = {
	        0,         1,         127, 128, 300, 4096, 1u << 20, 0x7ffff000, UINT64_C(1) << 32,
	        INT64_MAX, UINT64_MAX};
	static const char *const msgs[] = {"", "x", "the daemon is shutting down",
	                                   "sendfile: Broken pipe \xc3\xa9"};

	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		for (int fb = 0; fb <= 1; fb++) {
			req((struct wire_request){.op = WIRE_OP_SENDFILE,
			                          .id = big[i] ? big[i] : 1,
			                          .offset = big[i],
			                          .fallback = fb});
			req((struct wire_request){.op = WIRE_OP_SENDFILE,
			                          .id = 7,
			                          .offset = 4096,
			                          .count = big[i] ? big[i] : 1,
			                          .has_count = true,
			                          .fallback = fb});
		}
		req((struct wire_request){.op = WIRE_OP_CANCEL, .id = i + 2, .target = big[i]});
		req((struct wire_request){.op = WIRE_OP_PING, .id = big[i] ? big[i] : 3});
	}
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		for (int st = 0; st <= 9; st++) {
			struct wire_response r = {
			        .id = big[i],
			        .status = st,
			        .error = st ? 32 + st : 0,
			        .bytes_sent = big[i],
			        .final_offset = big[i] + (big[i] < UINT64_MAX ? 1 : 0),
			        .method = st % 4,
			        .short_source = st == 0 && i % 2,
			};

			snprintf(r.message, sizeof(r.message), "%s", msgs[(i + st) % 4]);
			resp(r);
		}
	}
	/* A negative error (not sent by the daemon, but an int32 on the wire). */
	resp((struct wire_response){.id = 5, .status = 4, .error = -1});
	return 0;
}
