/*
 * wire-vectors.c - the C side of the codec tests: encodes and decodes records with
 * common/wire.c, the code the daemon and libsendfiled use, for the Rust tests to
 * compare with. One command per line on stdin, one answer per line on stdout:
 *
 *   req ID OP OFFSET HAS_COUNT COUNT FALLBACK TARGET   -> hex of the request record
 *   resp ID STATUS ERROR BYTES FINAL METHOD SHORT MSGHEX -> hex of the reply record
 *   decreq HEX -> "ID HAS_ID OP OFFSET HAS_COUNT COUNT FALLBACK TARGET" or "error"
 *
 * OP is s (Sendfile), c (Cancel) or p (Ping); MSGHEX is the message in hex, "-" for none.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static void
put_hex(const uint8_t *b, ssize_t n)
{
	for (ssize_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

static size_t
from_hex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (s[0] && s[1] && n < cap) {
		unsigned v;

		if (sscanf(s, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

int
main(void)
{
	char line[16384];
	uint8_t buf[WIRE_MAX_RECORD];

	while (fgets(line, sizeof(line), stdin)) {
		char op, hex[8192];
		struct wire_request rq = {0};
		struct wire_response rs = {0};
		unsigned has_count, fallback, shrt;
		ssize_t n;

		if (sscanf(line, "req %" SCNu64 " %c %" SCNu64 " %u %" SCNu64 " %u %" SCNu64,
		           &rq.id, &op, &rq.offset, &has_count, &rq.count, &fallback,
		           &rq.target) == 7) {
			rq.op = op == 's'   ? WIRE_OP_SENDFILE
			        : op == 'c' ? WIRE_OP_CANCEL
			                    : WIRE_OP_PING;
			rq.has_count = has_count;
			rq.fallback = fallback;
			n = wire_request_encode(&rq, buf, sizeof(buf));
			if (n < 0)
				return 1;
			put_hex(buf, n);
		} else if (sscanf(line,
		                  "resp %" SCNu64 " %d %d %" SCNu64 " %" SCNu64 " %d %u %8191s",
		                  &rs.id, &rs.status, &rs.error, &rs.bytes_sent, &rs.final_offset,
		                  &rs.method, &shrt, hex) == 8) {
			uint8_t msg[WIRE_MAX_MESSAGE];
			size_t m = strcmp(hex, "-") ? from_hex(hex, msg, sizeof(msg) - 1) : 0;

			memcpy(rs.message, msg, m);
			rs.message[m] = '\0';
			rs.short_source = shrt;
			n = wire_response_encode(&rs, buf, sizeof(buf));
			if (n < 0)
				return 1;
			put_hex(buf, n);
		} else if (sscanf(line, "decreq %8191s", hex) == 1) {
			size_t len = from_hex(hex, buf, sizeof(buf));

			if (wire_request_decode(buf, len, &rq) < 0) {
				printf("error\n");
				continue;
			}
			printf("%" PRIu64 " %d %d %" PRIu64 " %d %" PRIu64 " %d %" PRIu64 "\n",
			       rq.id, rq.has_id, (int)rq.op, rq.offset, rq.has_count, rq.count,
			       rq.fallback, rq.target);
		} else {
			return 2;
		}
		fflush(stdout);
	}
	return 0;
}
