/*
 * test-wire.c - the record codec: round trips, presence, defaults, unknown
 * fields, malformed input and buffer limits. Hand-made records are written
 * out byte by byte (protobuf wire format) so that the test does not trust
 * the encoder it checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "macro.h"
#include "sendfiled.pb-c.h"
#include "wire.h"
#include "helpers.h"

static struct wire_request
decode_ok(const void *buf, size_t len)
{
	struct wire_request r;

	memset(&r, 0xa5, sizeof(r));
	assert_int_equal(wire_request_decode(buf, len, &r), 0);
	return r;
}

static struct wire_request
roundtrip(const struct wire_request *in)
{
	uint8_t buf[WIRE_MAX_RECORD];
	ssize_t n = wire_request_encode(in, buf, sizeof(buf));

	assert_true(n > 0);
	return decode_ok(buf, n);
}

static void
test_request_sendfile_roundtrip(void **state)
{
	struct wire_request in = {
	        .id = UINT64_MAX,
	        .op = WIRE_OP_SENDFILE,
	        .offset = (uint64_t)INT64_MAX,
	        .count = 12345,
	        .has_count = true,
	        .fallback = false,
	};
	struct wire_request out = roundtrip(&in);

	assert_true(out.has_id);
	assert_true(out.id == UINT64_MAX);
	assert_int_equal(out.op, WIRE_OP_SENDFILE);
	assert_true(out.offset == (uint64_t)INT64_MAX);
	assert_true(out.has_count);
	assert_int_equal(out.count, 12345);
	assert_false(out.fallback);

	in.fallback = true;
	in.offset = 0;
	in.id = 0;
	out = roundtrip(&in);
	assert_true(out.has_id);
	assert_int_equal(out.id, 0);
	assert_true(out.fallback);
	assert_int_equal(out.offset, 0);
}

static void
test_request_absent_count(void **state)
{
	struct wire_request in = {.id = 1, .op = WIRE_OP_SENDFILE, .fallback = true};
	struct wire_request out = roundtrip(&in);

	assert_false(out.has_count);
	assert_int_equal(out.count, 0);

	/* Present and zero is not the same as absent: validation rejects it. */
	in.has_count = true;
	in.count = 0;
	out = roundtrip(&in);
	assert_true(out.has_count);
	assert_int_equal(out.count, 0);
}

static void
test_request_cancel_ping_roundtrip(void **state)
{
	struct wire_request in = {.id = 9, .op = WIRE_OP_CANCEL, .target = 1ull << 63};
	struct wire_request out = roundtrip(&in);

	assert_int_equal(out.op, WIRE_OP_CANCEL);
	assert_true(out.target == 1ull << 63);
	assert_int_equal(out.id, 9);

	in = (struct wire_request){.id = 10, .op = WIRE_OP_PING};
	out = roundtrip(&in);
	assert_int_equal(out.op, WIRE_OP_PING);
	assert_int_equal(out.id, 10);
}

static void
test_request_encode_none(void **state)
{
	struct wire_request in = {.id = 1, .op = WIRE_OP_NONE};
	uint8_t buf[64];

	assert_int_equal(wire_request_encode(&in, buf, sizeof(buf)), -EINVAL);
}

static void
test_request_fallback_default(void **state)
{
	/* id=7, sendfile={} : no fallback field at all. */
	static const uint8_t bare[] = {0x08, 0x07, 0x12, 0x00};
	/* id=7, sendfile={fallback=false} */
	static const uint8_t off[] = {0x08, 0x07, 0x12, 0x02, 0x18, 0x00};
	/* id=7, sendfile={fallback=true} */
	static const uint8_t on[] = {0x08, 0x07, 0x12, 0x02, 0x18, 0x01};
	struct wire_request r;

	r = decode_ok(bare, sizeof(bare));
	assert_int_equal(r.op, WIRE_OP_SENDFILE);
	assert_true(r.fallback);
	assert_false(r.has_count);
	assert_int_equal(r.offset, 0);
	r = decode_ok(off, sizeof(off));
	assert_false(r.fallback);
	r = decode_ok(on, sizeof(on));
	assert_true(r.fallback);
}

static void
test_request_hand_made(void **state)
{
	/* id=300, sendfile={offset=4096, count=1} */
	static const uint8_t rec[] = {0x08, 0xac, 0x02, 0x12, 0x05, 0x08, 0x80, 0x20, 0x10, 0x01};
	/* id absent, cancel={target=5} */
	static const uint8_t cancel[] = {0x1a, 0x02, 0x08, 0x05};
	struct wire_request r;

	r = decode_ok(rec, sizeof(rec));
	assert_true(r.has_id);
	assert_int_equal(r.id, 300);
	assert_int_equal(r.offset, 4096);
	assert_true(r.has_count);
	assert_int_equal(r.count, 1);

	r = decode_ok(cancel, sizeof(cancel));
	assert_false(r.has_id);
	assert_int_equal(r.op, WIRE_OP_CANCEL);
	assert_int_equal(r.target, 5);

	/* An empty record parses: no id, no operation. */
	r = decode_ok("", 0);
	assert_false(r.has_id);
	assert_int_equal(r.op, WIRE_OP_NONE);
}

static void
test_request_unknown_fields(void **state)
{
	/*
	 * id=7, then fields this version does not know, at the top level and
	 * inside Sendfile, of every wire type: varint (15), fixed64 (9),
	 * length-delimited (100, a two-byte key), fixed32 (10).
	 */
	static const uint8_t rec[] = {
	        0x08, 0x07,                                  /* id = 7 */
	        0x78, 0x96, 0x01,                            /* 15: varint 150 */
	        0x49, 1,    2,    3,    4,    5,    6, 7, 8, /* 9: fixed64 */
	        0x12, 0x0c,                                  /* sendfile, 12 bytes: */
	        0x08, 0x0a,                                  /*   offset = 10 */
	        0xa2, 0x06, 0x03, 'a',  'b',  'c',           /*   100: "abc" */
	        0x10, 0x14,                                  /*   count = 20 */
	        0x18, 0x00,                                  /*   fallback = false */
	        0x55, 1,    2,    3,    4,                   /* 10: fixed32 */
	        0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01,          /* field 2^29-1: varint 1 */
	};
	struct wire_request r = decode_ok(rec, sizeof(rec));

	assert_int_equal(r.id, 7);
	assert_int_equal(r.op, WIRE_OP_SENDFILE);
	assert_int_equal(r.offset, 10);
	assert_true(r.has_count);
	assert_int_equal(r.count, 20);
	assert_false(r.fallback);
}

static void
test_request_unknown_op(void **state)
{
	/* id=3 and an operation from a later version (field 20, empty). */
	static const uint8_t rec[] = {0x08, 0x03, 0xa2, 0x01, 0x00};
	struct wire_request r = decode_ok(rec, sizeof(rec));

	assert_true(r.has_id);
	assert_int_equal(r.id, 3);
	assert_int_equal(r.op, WIRE_OP_NONE);
}

static void
test_request_optional_fields(void **state)
{
	/* id=1, sendfile={deadline_ms=5} */
	static const uint8_t deadline[] = {0x08, 0x01, 0x12, 0x02, 0x20, 0x05};
	/* id=1, sendfile={rate_limit_bps=1000} */
	static const uint8_t rate[] = {0x08, 0x01, 0x12, 0x03, 0x28, 0xe8, 0x07};
	/* id=1, sendfile={close_when_done=true} */
	static const uint8_t close_[] = {0x08, 0x01, 0x12, 0x02, 0x30, 0x01};
	/* id=1, sendfile={deadline_ms=0, rate_limit_bps=0, close_when_done=false} */
	static const uint8_t zeros[] = {0x08, 0x01, 0x12, 0x06, 0x20, 0x00, 0x28, 0x00, 0x30, 0x00};
	struct wire_request r;

	r = decode_ok(deadline, sizeof(deadline));
	assert_int_equal(r.deadline_ms, 5);
	r = decode_ok(rate, sizeof(rate));
	assert_int_equal(r.rate_limit_bps, 1000);
	assert_true(decode_ok(close_, sizeof(close_)).close_when_done);
	/* Set to their "off" value they ask for nothing. */
	r = decode_ok(zeros, sizeof(zeros));
	assert_int_equal(r.deadline_ms, 0);
	assert_int_equal(r.rate_limit_bps, 0);
	assert_false(r.close_when_done);
}

struct bad_case {
	const char *name;
	const uint8_t *buf;
	size_t len;
	bool has_id;
	uint64_t id;
};

#define BAD(n, hid, i, ...)                                                                        \
	{                                                                                          \
		.name = n, .buf = (const uint8_t[]){__VA_ARGS__},                                  \
		.len = sizeof((const uint8_t[]){__VA_ARGS__}), .has_id = hid, .id = i              \
	}

static void
test_request_garbage(void **state)
{
	const struct bad_case cases[] = {
	        /* The id comes first: the reply can still be addressed. */
	        BAD("id then truncated varint", true, 42, 0x08, 0x2a, 0x10, 0xff),
	        BAD("id then overlong length", true, 42, 0x08, 0x2a, 0x12, 0xff, 0xff, 0xff, 0xff,
	            0x0f, 0x00),
	        BAD("id then bad wire type 7", true, 0x1234, 0x08, 0xb4, 0x24, 0x17, 0x00),
	        BAD("id then group start", true, 5, 0x08, 0x05, 0x1b, 0x00),
	        BAD("id then sendfile with offset as bytes", true, 1, 0x08, 0x01, 0x12, 0x02, 0x0a,
	            0x00),
	        BAD("id then sendfile cut short", true, 8, 0x08, 0x08, 0x12, 0x05, 0x08, 0x01),
	        BAD("ping, id, then garbage", true, 7, 0x22, 0x00, 0x08, 0x07, 0xff),
	        BAD("max id then garbage", true, UINT64_MAX, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
	            0xff, 0xff, 0xff, 0xff, 0x01, 0x12, 0x09),
	        /* Field 0 is invalid, but well formed enough to step over. */
	        BAD("field number 0, then id", true, 1, 0x00, 0x01, 0x08, 0x01),
	        /* No id before the damage: nothing to answer to. */
	        BAD("truncated key", false, 0, 0x80),
	        BAD("truncated id", false, 0, 0x08, 0x80),
	        BAD("overlong length before id", false, 0, 0x12, 0x05, 0x00, 0x08, 0x01),
	        BAD("11-byte varint", false, 0, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	            0xff, 0xff, 0xff, 0x01),
	        BAD("wire type 6", false, 0, 0x0e, 0x00),
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct bad_case *c = &cases[i];
		struct wire_request r;

		memset(&r, 0xa5, sizeof(r));
		print_message("case: %s\n", c->name);
		assert_int_equal(wire_request_decode(c->buf, c->len, &r), -EBADMSG);
		assert_int_equal(r.has_id, c->has_id);
		if (c->has_id)
			assert_true(r.id == c->id);
		/* The rest of the request is cleared, not left as it was. */
		assert_int_equal(r.op, WIRE_OP_NONE);
		assert_false(r.has_count);
	}
}

static void
test_request_encode_too_small(void **state)
{
	struct wire_request in = {
	        .id = 77,
	        .op = WIRE_OP_SENDFILE,
	        .offset = 1 << 20,
	        .count = 1 << 30,
	        .has_count = true,
	};
	uint8_t buf[64], guard[64];
	ssize_t n = wire_request_encode(&in, buf, sizeof(buf));

	assert_true(n > 0);
	for (ssize_t cap = 0; cap < n; cap++) {
		memset(guard, 0xee, sizeof(guard));
		assert_int_equal(wire_request_encode(&in, guard, cap), -EMSGSIZE);
		/* Nothing written past (or before) the refusal. */
		for (size_t i = 0; i < sizeof(guard); i++)
			assert_int_equal(guard[i], 0xee);
	}
	assert_int_equal(wire_request_encode(&in, guard, n), n);
	assert_memory_equal(guard, buf, n);
}

static struct wire_response
response_roundtrip(const struct wire_response *in)
{
	uint8_t buf[WIRE_MAX_RECORD];
	struct wire_response out;
	ssize_t n = wire_response_encode(in, buf, sizeof(buf));

	assert_true(n > 0);
	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(wire_response_decode(buf, n, &out), 0);
	return out;
}

static void
test_response_roundtrip(void **state)
{
	struct wire_response in = {
	        .id = 1ull << 60,
	        .status = WIRE_STATUS_PEER_CLOSED,
	        .error = EPIPE,
	        .bytes_sent = (1ull << 40) + 3,
	        .final_offset = (1ull << 40) + 10,
	        .method = WIRE_METHOD_SPLICE,
	        .short_source = true,
	};
	struct wire_response out;

	strcpy(in.message, "the destination's peer closed the connection");
	out = response_roundtrip(&in);
	assert_true(out.id == in.id);
	assert_int_equal(out.status, in.status);
	assert_int_equal(out.error, EPIPE);
	assert_true(out.bytes_sent == in.bytes_sent);
	assert_true(out.final_offset == in.final_offset);
	assert_int_equal(out.method, in.method);
	assert_true(out.short_source);
	assert_string_equal(out.message, in.message);

	/* The all-default response: OK, no error, no message. */
	in = (struct wire_response){.id = 5};
	out = response_roundtrip(&in);
	assert_int_equal(out.id, 5);
	assert_int_equal(out.status, WIRE_STATUS_OK);
	assert_int_equal(out.error, 0);
	assert_int_equal(out.bytes_sent, 0);
	assert_int_equal(out.method, WIRE_METHOD_NONE);
	assert_false(out.short_source);
	assert_string_equal(out.message, "");
}

static void
test_response_hand_made(void **state)
{
	/* id=2, status=CANCELLED, error=ECANCELED(125), message="x",
	 * bytes_sent=1, unknown field 20 = "zz", final_offset=9, method=3,
	 * short_source=true */
	static const uint8_t rec[] = {0x08, 0x02, 0x10, 0x05, 0x18, 0x7d, 0x22, 0x01,
	                              'x',  0x28, 0x01, 0xa2, 0x01, 0x02, 'z',  'z',
	                              0x30, 0x09, 0x38, 0x03, 0x40, 0x01};
	struct wire_response r;

	assert_int_equal(wire_response_decode(rec, sizeof(rec), &r), 0);
	assert_int_equal(r.id, 2);
	assert_int_equal(r.status, WIRE_STATUS_CANCELLED);
	assert_int_equal(r.error, 125);
	assert_string_equal(r.message, "x");
	assert_int_equal(r.bytes_sent, 1);
	assert_int_equal(r.final_offset, 9);
	assert_int_equal(r.method, WIRE_METHOD_READ_WRITE);
	assert_true(r.short_source);

	/* An empty record is the all-default response. */
	memset(&r, 0xa5, sizeof(r));
	assert_int_equal(wire_response_decode("", 0, &r), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.id, 0);
	assert_string_equal(r.message, "");
}

static void
test_response_garbage(void **state)
{
	static const uint8_t cut[] = {0x08, 0x02, 0x22, 0x10, 'a'};
	static const uint8_t badtype[] = {0x08, 0x02, 0x12, 0x01, 0x00};
	struct wire_response r;

	memset(&r, 0xa5, sizeof(r));
	assert_int_equal(wire_response_decode(cut, sizeof(cut), &r), -EBADMSG);
	/* ret_resp is written only on success. */
	assert_int_equal(r.status, (int)0xa5a5a5a5);
	assert_int_equal(wire_response_decode(badtype, sizeof(badtype), &r), -EBADMSG);
	assert_int_equal(wire_response_decode("\x80", 1, &r), -EBADMSG);
}

/* One table names every status and method, for programs and for people. */
static void
test_names(void **state)
{
	(void)state;
	for (int s = 0; s < WIRE_STATUS_COUNT; s++) {
		assert_string_not_equal(wire_status_token(s), "unknown");
		assert_string_not_equal(wire_status_text(s), "unknown");
	}
	for (int m = 0; m < WIRE_METHOD_COUNT; m++)
		assert_string_not_equal(wire_method_name(m), "unknown");
	assert_string_equal(wire_status_token(WIRE_STATUS_NOT_AVAILABLE), "not_available");
	assert_string_equal(wire_status_text(WIRE_STATUS_NOT_AVAILABLE), "not available");
	assert_string_equal(wire_method_name(WIRE_METHOD_READ_WRITE), "read_write");
	assert_string_equal(wire_status_token(WIRE_STATUS_COUNT), "unknown");
	assert_string_equal(wire_status_text(-1), "unknown");
	assert_string_equal(wire_method_name(WIRE_METHOD_COUNT), "unknown");
}

static void
test_response_message_truncated(void **state)
{
	Sendfiled__V1__Response m = SENDFILED__V1__RESPONSE__INIT;
	char msg[1000];
	uint8_t buf[2048];
	struct wire_response r;
	size_t n;

	/* A peer may send a longer message than ours: keep its first
	 * WIRE_MAX_MESSAGE - 1 bytes, terminated. */
	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	msg[0] = 'A';
	msg[WIRE_MAX_MESSAGE - 2] = 'Z';
	m.has_id = true;
	m.id = 4;
	m.message = msg;
	n = sendfiled__v1__response__get_packed_size(&m);
	assert_true(n <= sizeof(buf));
	assert_int_equal(sendfiled__v1__response__pack(&m, buf), n);

	assert_int_equal(wire_response_decode(buf, n, &r), 0);
	assert_int_equal(r.id, 4);
	assert_int_equal(strlen(r.message), WIRE_MAX_MESSAGE - 1);
	assert_int_equal(r.message[0], 'A');
	assert_int_equal(r.message[WIRE_MAX_MESSAGE - 2], 'Z');
	assert_memory_equal(r.message + 1, msg + 1, WIRE_MAX_MESSAGE - 3);

	/* The longest message we can hold survives a round trip whole. */
	memset(r.message, 'q', WIRE_MAX_MESSAGE - 1);
	r.message[WIRE_MAX_MESSAGE - 1] = '\0';
	r = response_roundtrip(&r);
	assert_int_equal(strlen(r.message), WIRE_MAX_MESSAGE - 1);
	assert_int_equal(r.message[WIRE_MAX_MESSAGE - 2], 'q');
}

/* A Ping's reply: who answered, and the optional features it implements. */
static void
test_response_ping_info(void **state)
{
	struct wire_response in = {.id = 5, .has_ping = true, .protocol_version = 1}, out;
	/* id 5, bytes_sent 0, final_offset 0, ping {1: 1, 2: "x", 3: 1, 3: 3} */
	static const uint8_t want[] = {0x08, 0x05, 0x28, 0x00, 0x30, 0x00, 0x4a, 0x09, 0x08,
	                               0x01, 0x12, 0x01, 'x',  0x18, 0x01, 0x18, 0x03};
	uint8_t buf[WIRE_MAX_RECORD];
	ssize_t n;

	(void)state;
	snprintf(in.daemon_version, sizeof(in.daemon_version), "x");
	in.features = 1u << WIRE_FEATURE_DEADLINE | 1u << WIRE_FEATURE_CLOSE_WHEN_DONE;
	n = wire_response_encode(&in, buf, sizeof(buf));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	out = response_roundtrip(&in);
	assert_true(out.has_ping);
	assert_int_equal(out.protocol_version, 1);
	assert_string_equal(out.daemon_version, "x");
	assert_int_equal(out.features, in.features);

	/* Not a Ping's reply: no PingInfo on the wire, none decoded. */
	in = (struct wire_response){.id = 6};
	out = response_roundtrip(&in);
	assert_false(out.has_ping);
	assert_int_equal(out.features, 0);
}

static void
test_response_encode_too_small(void **state)
{
	struct wire_response in = {.id = 3, .status = 4, .error = EIO, .bytes_sent = 100};
	uint8_t buf[512], guard[512];
	ssize_t n;

	memset(in.message, 'e', WIRE_MAX_MESSAGE - 1);
	n = wire_response_encode(&in, buf, sizeof(buf));
	assert_true(n > WIRE_MAX_MESSAGE);
	assert_true(n <= WIRE_MAX_RECORD);
	for (ssize_t cap = 0; cap < n; cap += (cap < 16 ? 1 : 37)) {
		memset(guard, 0xee, sizeof(guard));
		assert_int_equal(wire_response_encode(&in, guard, cap), -EMSGSIZE);
		assert_int_equal(guard[0], 0xee);
	}
	assert_int_equal(wire_response_encode(&in, guard, n - 1), -EMSGSIZE);
	assert_int_equal(wire_response_encode(&in, guard, n), n);
	assert_memory_equal(guard, buf, n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_request_sendfile_roundtrip),
	        fd_test(test_request_absent_count),
	        fd_test(test_request_cancel_ping_roundtrip),
	        fd_test(test_request_encode_none),
	        fd_test(test_request_fallback_default),
	        fd_test(test_request_hand_made),
	        fd_test(test_request_unknown_fields),
	        fd_test(test_request_unknown_op),
	        fd_test(test_request_optional_fields),
	        fd_test(test_request_garbage),
	        fd_test(test_request_encode_too_small),
	        fd_test(test_response_roundtrip),
	        fd_test(test_response_hand_made),
	        fd_test(test_response_garbage),
	        fd_test(test_response_message_truncated),
	        fd_test(test_names),
	        fd_test(test_response_encode_too_small),
	        fd_test(test_response_ping_info),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
