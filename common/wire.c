/*
 * wire.c - protobuf-c glue for the data-plane records.
 */
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "sendfiled.pb-c.h"
#include "wire.h"

#define SAME_VALUE(a, b) _Static_assert((int)(a) == (int)(b), #a " must equal " #b)
SAME_VALUE(WIRE_FEATURE_DEADLINE, SENDFILED__V1__FEATURE__FEATURE_DEADLINE);
SAME_VALUE(WIRE_FEATURE_RATE_LIMIT, SENDFILED__V1__FEATURE__FEATURE_RATE_LIMIT);
SAME_VALUE(WIRE_FEATURE_CLOSE_WHEN_DONE, SENDFILED__V1__FEATURE__FEATURE_CLOSE_WHEN_DONE);
SAME_VALUE(WIRE_FEATURE_IDLE_TIMEOUT, SENDFILED__V1__FEATURE__FEATURE_IDLE_TIMEOUT);
SAME_VALUE(WIRE_TIMEOUT_DEADLINE, SENDFILED__V1__TIMEOUT__TIMEOUT_DEADLINE);
SAME_VALUE(WIRE_TIMEOUT_IDLE, SENDFILED__V1__TIMEOUT__TIMEOUT_IDLE);
SAME_VALUE(WIRE_STATUS_OK, SENDFILED__V1__STATUS__OK);
SAME_VALUE(WIRE_STATUS_NOT_AVAILABLE, SENDFILED__V1__STATUS__NOT_AVAILABLE);
SAME_VALUE(WIRE_STATUS_INVALID_ARGUMENT, SENDFILED__V1__STATUS__INVALID_ARGUMENT);
SAME_VALUE(WIRE_STATUS_PEER_CLOSED, SENDFILED__V1__STATUS__PEER_CLOSED);
SAME_VALUE(WIRE_STATUS_IO_ERROR, SENDFILED__V1__STATUS__IO_ERROR);
SAME_VALUE(WIRE_STATUS_CANCELLED, SENDFILED__V1__STATUS__CANCELLED);
SAME_VALUE(WIRE_STATUS_LIMIT, SENDFILED__V1__STATUS__LIMIT);
SAME_VALUE(WIRE_STATUS_PROTOCOL, SENDFILED__V1__STATUS__PROTOCOL);
SAME_VALUE(WIRE_STATUS_SHUTTING_DOWN, SENDFILED__V1__STATUS__SHUTTING_DOWN);
SAME_VALUE(WIRE_STATUS_PERMISSION_DENIED, SENDFILED__V1__STATUS__PERMISSION_DENIED);
SAME_VALUE(WIRE_STATUS_TIMED_OUT, SENDFILED__V1__STATUS__TIMED_OUT);
SAME_VALUE(WIRE_METHOD_NONE, SENDFILED__V1__METHOD__METHOD_NONE);
SAME_VALUE(WIRE_METHOD_SENDFILE, SENDFILED__V1__METHOD__METHOD_SENDFILE);
SAME_VALUE(WIRE_METHOD_SPLICE, SENDFILED__V1__METHOD__METHOD_SPLICE);
SAME_VALUE(WIRE_METHOD_READ_WRITE, SENDFILED__V1__METHOD__METHOD_READ_WRITE);

static const struct {
	const char *token, *text;
} status_names[] = {
        [WIRE_STATUS_OK] = {"ok", "ok"},
        [WIRE_STATUS_NOT_AVAILABLE] = {"not_available", "not available"},
        [WIRE_STATUS_INVALID_ARGUMENT] = {"invalid_argument", "invalid argument"},
        [WIRE_STATUS_PEER_CLOSED] = {"peer_closed", "peer closed"},
        [WIRE_STATUS_IO_ERROR] = {"io_error", "I/O error"},
        [WIRE_STATUS_CANCELLED] = {"cancelled", "cancelled"},
        [WIRE_STATUS_LIMIT] = {"limit", "limit reached"},
        [WIRE_STATUS_PROTOCOL] = {"protocol", "protocol error"},
        [WIRE_STATUS_SHUTTING_DOWN] = {"shutting_down", "shutting down"},
        [WIRE_STATUS_PERMISSION_DENIED] = {"permission_denied", "permission denied"},
        [WIRE_STATUS_TIMED_OUT] = {"timed_out", "timed out"},
};
_Static_assert(ARRAY_SIZE(status_names) == WIRE_STATUS_COUNT, "a name for every status");

static const char *const method_names[] = {
        [WIRE_METHOD_NONE] = "none",
        [WIRE_METHOD_SENDFILE] = "sendfile",
        [WIRE_METHOD_SPLICE] = "splice",
        [WIRE_METHOD_READ_WRITE] = "read_write",
};
_Static_assert(ARRAY_SIZE(method_names) == WIRE_METHOD_COUNT, "a name for every method");

const char *
wire_status_token(int status)
{
	if (status < 0 || (size_t)status >= ARRAY_SIZE(status_names))
		return "unknown";
	return status_names[status].token;
}

const char *
wire_status_text(int status)
{
	if (status < 0 || (size_t)status >= ARRAY_SIZE(status_names))
		return "unknown";
	return status_names[status].text;
}

const char *
wire_method_name(int method)
{
	if (method < 0 || (size_t)method >= ARRAY_SIZE(method_names))
		return "unknown";
	return method_names[method];
}

/*
 * Decoding allocates a few small objects and frees them at once: take them
 * from a buffer on the caller's stack, and from the heap only for a record
 * that needs more (long strings, unknown fields).
 */
struct arena {
	ProtobufCAllocator allocator;
	size_t used;
	alignas(max_align_t) unsigned char buf[1024];
};

static void *
arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	size_t n = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);

	if (n <= sizeof(a->buf) - a->used) {
		void *p = a->buf + a->used;

		a->used += n;
		return p;
	}
	return malloc(size);
}

static void
arena_free(void *data, void *p)
{
	struct arena *a = data;
	uintptr_t u = (uintptr_t)p, b = (uintptr_t)a->buf;

	if (u < b || u >= b + sizeof(a->buf))
		free(p);
}

#define ARENA_INIT(a)                                                                              \
	{                                                                                          \
		.allocator = { arena_alloc, arena_free, &(a) }                                     \
	}

/* Read one varint of at most 10 bytes at *i. Return: false if it runs off
 * the end or is too long. */
static bool
read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift <= 63; shift += 7) {
		if (*i >= len)
			return false;
		v |= (uint64_t)(p[*i] & 0x7f) << shift;
		if (!(p[(*i)++] & 0x80)) {
			*ret = v;
			return true;
		}
	}
	return false;
}

/*
 * Find field 1 (the request id, a varint) in a record that protobuf-c
 * rejected, so that the client still gets an error reply it can match.
 * Walks top-level fields only; stops at the first malformed one.
 */
static bool
salvage_id(const uint8_t *p, size_t len, uint64_t *ret_id)
{
	size_t i = 0;

	while (i < len) {
		uint64_t key, v;

		if (!read_varint(p, len, &i, &key))
			return false;
		switch (key & 7) {
		case 0:
			if (!read_varint(p, len, &i, &v))
				return false;
			if ((key >> 3) == 1) {
				*ret_id = v;
				return true;
			}
			break;
		case 1:
			i += 8;
			break;
		case 5:
			i += 4;
			break;
		case 2:
			if (!read_varint(p, len, &i, &v) || v > len - i)
				return false;
			i += v;
			break;
		default:
			return false;
		}
	}
	return false;
}

int
wire_request_decode(const void *buf, size_t len, struct wire_request *ret_req)
{
	struct arena arena = ARENA_INIT(arena);
	Sendfiled__V1__Request *m;
	struct wire_request r = {0};

	m = sendfiled__v1__request__unpack(&arena.allocator, len, buf);
	if (!m) {
		r.has_id = salvage_id(buf, len, &r.id);
		*ret_req = r;
		return -EBADMSG;
	}
	r.has_id = m->has_id;
	r.id = m->id;
	switch (m->op_case) {
	case SENDFILED__V1__REQUEST__OP_SENDFILE: {
		Sendfiled__V1__Sendfile *s = m->sendfile;

		r.op = WIRE_OP_SENDFILE;
		r.offset = s->offset;
		r.has_count = s->has_count;
		r.count = s->count;
		r.fallback = s->has_fallback ? s->fallback : true;
		r.deadline_ms = s->has_deadline_ms ? s->deadline_ms : 0;
		r.idle_timeout_ms = s->has_idle_timeout_ms ? s->idle_timeout_ms : 0;
		r.rate_limit_bps = s->has_rate_limit_bps ? s->rate_limit_bps : 0;
		r.rate_limit_after = s->has_rate_limit_after ? s->rate_limit_after : 0;
		r.close_when_done = s->has_close_when_done && s->close_when_done;
		r.shutdown_write = s->has_shutdown_write && s->shutdown_write;
		break;
	}
	case SENDFILED__V1__REQUEST__OP_CANCEL:
		r.op = WIRE_OP_CANCEL;
		r.target = m->cancel->target;
		break;
	case SENDFILED__V1__REQUEST__OP_PING:
		r.op = WIRE_OP_PING;
		break;
	default:
		r.op = WIRE_OP_NONE;
		break;
	}
	sendfiled__v1__request__free_unpacked(m, &arena.allocator);
	*ret_req = r;
	return 0;
}

ssize_t
wire_request_encode(const struct wire_request *req, void *buf, size_t cap)
{
	Sendfiled__V1__Request m = SENDFILED__V1__REQUEST__INIT;
	Sendfiled__V1__Sendfile s = SENDFILED__V1__SENDFILE__INIT;
	Sendfiled__V1__Cancel c = SENDFILED__V1__CANCEL__INIT;
	Sendfiled__V1__Ping p = SENDFILED__V1__PING__INIT;

	m.has_id = true;
	m.id = req->id;
	switch (req->op) {
	case WIRE_OP_SENDFILE:
		m.op_case = SENDFILED__V1__REQUEST__OP_SENDFILE;
		m.sendfile = &s;
		s.has_offset = req->offset != 0;
		s.offset = req->offset;
		s.has_count = req->has_count;
		s.count = req->count;
		s.has_fallback = !req->fallback;
		s.fallback = req->fallback;
		s.has_deadline_ms = req->deadline_ms != 0;
		s.deadline_ms = req->deadline_ms;
		s.has_idle_timeout_ms = req->idle_timeout_ms != 0;
		s.idle_timeout_ms = req->idle_timeout_ms;
		s.has_rate_limit_bps = req->rate_limit_bps != 0;
		s.rate_limit_bps = req->rate_limit_bps;
		s.has_rate_limit_after = req->rate_limit_after != 0;
		s.rate_limit_after = req->rate_limit_after;
		s.has_close_when_done = req->close_when_done;
		s.close_when_done = req->close_when_done;
		s.has_shutdown_write = req->shutdown_write;
		s.shutdown_write = req->shutdown_write;
		break;
	case WIRE_OP_CANCEL:
		m.op_case = SENDFILED__V1__REQUEST__OP_CANCEL;
		m.cancel = &c;
		c.has_target = true;
		c.target = req->target;
		break;
	case WIRE_OP_PING:
		m.op_case = SENDFILED__V1__REQUEST__OP_PING;
		m.ping = &p;
		break;
	default:
		return -EINVAL;
	}
	if (sendfiled__v1__request__get_packed_size(&m) > cap)
		return -EMSGSIZE;
	return sendfiled__v1__request__pack(&m, buf);
}

int
wire_response_decode(const void *buf, size_t len, struct wire_response *ret_resp)
{
	struct arena arena = ARENA_INIT(arena);
	Sendfiled__V1__Response *m;
	struct wire_response r = {0};

	m = sendfiled__v1__response__unpack(&arena.allocator, len, buf);
	if (!m)
		return -EBADMSG;
	r.id = m->id;
	r.status = m->status;
	r.error = m->error;
	r.bytes_sent = m->bytes_sent;
	r.final_offset = m->final_offset;
	r.method = m->method;
	r.short_source = m->short_source;
	r.timeout = m->timeout;
	r.transfer_id = m->transfer_id;
	if (m->message) {
		strncpy(r.message, m->message, sizeof(r.message) - 1);
		r.message[sizeof(r.message) - 1] = '\0';
	}
	if (m->ping) {
		r.has_ping = true;
		r.protocol_version = m->ping->protocol_version;
		if (m->ping->daemon_version)
			snprintf(r.daemon_version, sizeof(r.daemon_version), "%s",
			         m->ping->daemon_version);
		/* Features this decoder does not know are not ours to report. */
		for (size_t i = 0; i < m->ping->n_features; i++)
			if (m->ping->features[i] > 0 && m->ping->features[i] < 32)
				r.features |= 1u << m->ping->features[i];
	}
	sendfiled__v1__response__free_unpacked(m, &arena.allocator);
	*ret_resp = r;
	return 0;
}

ssize_t
wire_response_encode(const struct wire_response *resp, void *buf, size_t cap)
{
	Sendfiled__V1__Response m = SENDFILED__V1__RESPONSE__INIT;
	Sendfiled__V1__PingInfo ping = SENDFILED__V1__PING_INFO__INIT;
	Sendfiled__V1__Feature features[32];

	m.has_id = true;
	m.id = resp->id;
	m.has_status = resp->status != 0;
	m.status = resp->status;
	m.has_error = resp->error != 0;
	m.error = resp->error;
	m.has_bytes_sent = true;
	m.bytes_sent = resp->bytes_sent;
	m.has_final_offset = true;
	m.final_offset = resp->final_offset;
	m.has_method = resp->method != 0;
	m.method = resp->method;
	m.has_short_source = resp->short_source;
	m.short_source = resp->short_source;
	m.has_timeout = resp->timeout != 0;
	m.timeout = resp->timeout;
	m.has_transfer_id = resp->transfer_id != 0;
	m.transfer_id = resp->transfer_id;
	if (resp->message[0])
		m.message = (char *)resp->message;
	if (resp->has_ping) {
		ping.has_protocol_version = true;
		ping.protocol_version = resp->protocol_version;
		if (resp->daemon_version[0])
			ping.daemon_version = (char *)resp->daemon_version;
		for (int f = 1; f < 32; f++)
			if (resp->features & (1u << f))
				features[ping.n_features++] = (Sendfiled__V1__Feature)f;
		ping.features = features;
		m.ping = &ping;
	}
	if (sendfiled__v1__response__get_packed_size(&m) > cap)
		return -EMSGSIZE;
	return sendfiled__v1__response__pack(&m, buf);
}
