/*
 * validate - checks on everything a client sends before the daemon acts on
 * it: the request's fields (pure, fuzzed) and the two descriptors (fstat,
 * fcntl, getsockopt; nothing about them is changed).
 */
#ifndef SFD_VALIDATE_H
#define SFD_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

enum fd_kind {
	FD_KIND_FILE, /* regular file or block device: seekable, sendfile(2) */
	FD_KIND_PIPE,
	FD_KIND_SOCKET, /* SOCK_STREAM */
	FD_KIND_CHAR,   /* character device, e.g. /dev/null */
};

struct fdinfo {
	enum fd_kind kind;
	bool nonblock; /* O_NONBLOCK is set on the (shared) file description */
	bool append;   /* O_APPEND (destinations): sendfile and splice refuse it */
	off_t size;    /* st_size for FD_KIND_FILE, else 0 */
	dev_t dev;     /* FD_KIND_FILE: which file, for the page cache probe */
	ino_t ino;
};

/*
 * validate_request() - check a decoded sendfile request's fields.
 * Return: 0, or a negative errno with a static message in *ret_msg.
 */
int validate_request(const struct wire_request *req, const char **ret_msg);

/* validate_dst() - the destination must be open for writing: a stream
 * socket, a pipe, a regular file or a character device. */
int validate_dst(int fd, struct fdinfo *ret_info, const char **ret_msg);

/* validate_src() - the source must be a regular file, a block or character
 * device, a pipe or a stream socket (see validate_range() for what a request
 * on it must say). For files, whether it is open for
 * reading is left to the first read (EBADF): that spares a syscall per
 * request; streams must be readable here. */
int validate_src(int fd, struct fdinfo *ret_info, const char **ret_msg);

/* validate_past_end() - does @offset start at or past the end of a
 * non-empty regular file @s, as fstat saw it? Then nothing is sent, and no
 * syscall on the source would check its access mode. A size of 0 says
 * nothing: /proc files have data behind it. */
bool validate_past_end(const struct fdinfo *s, uint64_t offset);

/*
 * validate_range() - what the request asks of this source: a character
 * device (/dev/zero never ends) needs a count; a range that sends nothing
 * still needs a source open for reading, checked here since no read will.
 * Return: 0, or a negative errno with a static message in *ret_msg.
 */
int validate_range(const struct wire_request *req, int src, const struct fdinfo *s,
                   const char **ret_msg);

#endif
