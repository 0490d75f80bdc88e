/*
 * macro.h - small helpers shared by every part of sendfiled: scope-bound
 * cleanup of descriptors and heap memory, in the style of systemd.
 */
#ifndef SFD_MACRO_H
#define SFD_MACRO_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* The structure that embeds *@ptr as its @member. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* mono_ms() - CLOCK_MONOTONIC in milliseconds, for deadlines and time slices. */
static inline int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* close() that keeps errno, accepts -1, and returns -1 for "fd = safe_close(fd)". */
static inline int
safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return -1;
}

static inline void
closep(int *fd)
{
	safe_close(*fd);
}

static inline void
freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_ _cleanup_(freep)

/* Hand a descriptor or pointer out of a cleanup-managed local. */
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd_ = (fd);                                                                   \
		(fd) = -1;                                                                         \
		_fd_;                                                                              \
	})
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p_ = (p);                                                           \
		(p) = NULL;                                                                        \
		_p_;                                                                               \
	})

#endif
