#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "validate.h"

int
validate_request(const struct wire_request *req, const char **ret_msg)
{
	if (req->op != WIRE_OP_SENDFILE) {
		*ret_msg = "not a sendfile request";
		return -EINVAL;
	}
	if (req->shutdown_write && !req->close_when_done) {
		/* The daemon shuts down only a destination it was handed. */
		*ret_msg = "shutdown_write needs close_when_done";
		return -EINVAL;
	}
	if (req->offset > INT64_MAX) {
		*ret_msg = "offset must be a non-negative 64-bit file offset";
		return -EINVAL;
	}
	if (req->has_count && req->count == 0) {
		*ret_msg = "count must be a positive integer";
		return -EINVAL;
	}
	if (req->has_count && req->count > (uint64_t)INT64_MAX - req->offset) {
		*ret_msg = "offset + count overflows a file offset";
		return -EOVERFLOW;
	}
	return 0;
}

static int
check_flags(int fd, bool want_write, struct fdinfo *info, const char **ret_msg)
{
	int fl = fcntl(fd, F_GETFL), acc;

	if (fl < 0) {
		*ret_msg = "not an open descriptor";
		return -EBADF;
	}
	if (fl & O_PATH) {
		*ret_msg = "an O_PATH descriptor cannot be read or written";
		return -EBADF;
	}
	acc = fl & O_ACCMODE;
	if (want_write ? acc == O_RDONLY : acc == O_WRONLY) {
		*ret_msg = want_write ? "destination is not open for writing"
		                      : "source is not open for reading";
		return -EBADF;
	}
	info->nonblock = fl & O_NONBLOCK;
	info->append = fl & O_APPEND;
	return 0;
}

/*
 * Is @fd a stream socket? One getsockopt() answers both questions.
 * Return: 1 for a SOCK_STREAM socket, 0 for no socket at all, or -EINVAL
 * (with *ret_msg) for a socket of another type.
 */
static int
stream_socket(int fd, const char **ret_msg)
{
	int type = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return 0;
	if (type != SOCK_STREAM) {
		*ret_msg = "socket is not a SOCK_STREAM socket";
		return -EINVAL;
	}
	return 1;
}

/* What kind of descriptor @st describes, for a destination (@dst) or a
 * source. Return: 0, or a negative errno with *ret_msg. */
static int
kind_of(const struct stat *st, bool dst, struct fdinfo *info, const char **ret_msg)
{
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
	case S_IFBLK:
		info->kind = FD_KIND_FILE;
		return 0;
	case S_IFIFO:
		info->kind = FD_KIND_PIPE;
		return 0;
	case S_IFCHR:
		info->kind = FD_KIND_CHAR;
		return 0;
	case S_IFSOCK:
		/* A destination socket was recognised before any fstat(). */
		if (dst)
			break;
		info->kind = FD_KIND_SOCKET;
		return 0;
	case S_IFDIR:
		*ret_msg = "descriptor is a directory";
		return -EISDIR;
	}
	*ret_msg = dst ? "descriptor type cannot be used as a destination"
	               : "descriptor type cannot be used as a source";
	return -EINVAL;
}

int
validate_dst(int fd, struct fdinfo *ret_info, const char **ret_msg)
{
	struct fdinfo info = {0};
	struct stat st;
	int r;

	r = check_flags(fd, true, &info, ret_msg);
	if (r < 0)
		return r;
	/* A destination is usually a socket: asking its type first spares
	 * the fstat() on the hot path. */
	r = stream_socket(fd, ret_msg);
	if (r < 0)
		return r;
	if (r > 0) {
		info.kind = FD_KIND_SOCKET;
		*ret_info = info;
		return 0;
	}
	if (fstat(fd, &st) < 0) {
		*ret_msg = "not an open descriptor";
		return -EBADF;
	}
	r = kind_of(&st, true, &info, ret_msg);
	if (r < 0)
		return r;
	*ret_info = info;
	return 0;
}

int
validate_src(int fd, struct fdinfo *ret_info, const char **ret_msg)
{
	struct fdinfo info = {0};
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0) {
		*ret_msg = "not an open descriptor";
		return -EBADF;
	}
	r = kind_of(&st, false, &info, ret_msg);
	if (r < 0)
		return r;
	if (info.kind == FD_KIND_FILE) {
		info.size = S_ISREG(st.st_mode) ? st.st_size : 0;
		info.dev = st.st_dev;
		info.ino = st.st_ino;
	} else if (info.kind == FD_KIND_SOCKET) {
		r = stream_socket(fd, ret_msg);
		if (r == 0) {
			*ret_msg = "socket is not a SOCK_STREAM socket";
			r = -EINVAL;
		}
		if (r < 0)
			return r;
	}
	/* A file's flags only matter for access, and sendfile()/pread() check
	 * that themselves (EBADF, reported as INVALID_ARGUMENT before anything
	 * is sent): spare the fcntl() on the hot path. Streams need to know
	 * whether they block. */
	if (info.kind != FD_KIND_FILE) {
		r = check_flags(fd, false, &info, ret_msg);
		if (r < 0)
			return r;
	}
	*ret_info = info;
	return 0;
}

bool
validate_past_end(const struct fdinfo *s, uint64_t offset)
{
	return s->kind == FD_KIND_FILE && s->size > 0 && offset >= (uint64_t)s->size;
}

int
validate_range(const struct wire_request *req, int src, const struct fdinfo *s,
               const char **ret_msg)
{
	struct fdinfo scratch;

	if (s->kind == FD_KIND_CHAR && !req->has_count) {
		*ret_msg = "a character device as source needs a count";
		return -EINVAL;
	}
	if (validate_past_end(s, req->offset))
		return check_flags(src, false, &scratch, ret_msg);
	return 0;
}
