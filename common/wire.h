/*
 * wire - the record codec: protobuf Request/Response (proto/sendfiled.proto)
 * to and from the plain structs the rest of the code uses, so that protobuf-c
 * types stay in this module.
 */
#ifndef SFD_WIRE_H
#define SFD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Largest record either side accepts. A request is ~30 bytes; a response
 * carries a message of at most WIRE_MAX_MESSAGE bytes. */
#define WIRE_MAX_RECORD 4096
#define WIRE_MAX_MESSAGE 256

/* A reply's outcome: the wire's Status values (wire.c checks them against the
 * generated enum). */
enum wire_status {
	WIRE_STATUS_OK = 0,
	WIRE_STATUS_NOT_AVAILABLE,
	WIRE_STATUS_INVALID_ARGUMENT,
	WIRE_STATUS_PEER_CLOSED,
	WIRE_STATUS_IO_ERROR,
	WIRE_STATUS_CANCELLED,
	WIRE_STATUS_LIMIT,
	WIRE_STATUS_PROTOCOL,
	WIRE_STATUS_SHUTTING_DOWN,
	WIRE_STATUS_PERMISSION_DENIED,
	WIRE_STATUS_TIMED_OUT,
	WIRE_STATUS_COUNT
};

/* How the bytes moved: the wire's Method values. */
enum wire_method {
	WIRE_METHOD_NONE = 0,
	WIRE_METHOD_SENDFILE,
	WIRE_METHOD_SPLICE,
	WIRE_METHOD_READ_WRITE,
	WIRE_METHOD_COUNT
};

/*
 * The one table of names: wire_status_token() gives "not_available" (for
 * programs: JSON, metrics labels), wire_status_text() "not available" (for
 * people), wire_method_name() "read_write". Each returns "unknown" for a
 * value it does not know.
 */
const char *wire_status_token(int status);
const char *wire_status_text(int status);
const char *wire_method_name(int method);

enum wire_op {
	WIRE_OP_NONE = 0, /* no (or an unknown) operation */
	WIRE_OP_SENDFILE,
	WIRE_OP_CANCEL,
	WIRE_OP_PING,
};

struct wire_request {
	uint64_t id;
	bool has_id;
	enum wire_op op;
	/* WIRE_OP_SENDFILE */
	uint64_t offset;
	uint64_t count;
	bool has_count;
	bool fallback;
	/* The optional features (0: none); see proto Sendfile. */
	uint32_t deadline_ms;
	uint32_t idle_timeout_ms;
	uint64_t rate_limit_bps;
	uint64_t rate_limit_after;
	bool close_when_done;
	bool shutdown_write;
	/* WIRE_OP_CANCEL */
	uint64_t target;
};

/* The optional features of the protocol (proto Feature), as bits of
 * wire_response.features: 1 << WIRE_FEATURE_*. */
enum wire_feature {
	WIRE_FEATURE_DEADLINE = 1,
	WIRE_FEATURE_RATE_LIMIT = 2,
	WIRE_FEATURE_CLOSE_WHEN_DONE = 3,
	WIRE_FEATURE_IDLE_TIMEOUT = 4,
};

/* Which limit ended a WIRE_STATUS_TIMED_OUT transfer: proto Timeout. */
enum wire_timeout {
	WIRE_TIMEOUT_NONE = 0,
	WIRE_TIMEOUT_DEADLINE,
	WIRE_TIMEOUT_IDLE,
};

/* The data-plane protocol's version, in a Ping's reply. */
#define WIRE_PROTOCOL_VERSION 1

struct wire_response {
	uint64_t id;
	int status;
	int error;
	uint64_t bytes_sent;
	uint64_t final_offset;
	int method;
	bool short_source;
	int timeout;          /* enum wire_timeout */
	uint64_t transfer_id; /* close_when_done: the daemon's id, 0 if none */
	char message[WIRE_MAX_MESSAGE];
	/* A Ping's reply: has_ping, then who answered. */
	bool has_ping;
	uint32_t protocol_version;
	uint32_t features; /* 1 << enum wire_feature */
	char daemon_version[32];
};

/*
 * wire_request_decode() - parse one record.
 * Return: 0; -EBADMSG when it does not parse (then *ret_req->has_id tells
 * whether an id could still be read, for an error reply).
 */
int wire_request_decode(const void *buf, size_t len, struct wire_request *ret_req);

/* wire_request_encode() - Return: the record's length, or -EMSGSIZE. */
ssize_t wire_request_encode(const struct wire_request *req, void *buf, size_t cap);

int wire_response_decode(const void *buf, size_t len, struct wire_response *ret_resp);
ssize_t wire_response_encode(const struct wire_response *resp, void *buf, size_t cap);

#endif
