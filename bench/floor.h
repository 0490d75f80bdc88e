/*
 * floor - the least a server can do per request and still speak the
 * protocol: the per-request syscalls every daemon of this design needs, and
 * nothing else (no event loop, no bookkeeping, no limits, no page cache
 * probe; it blocks on a full destination). It tells how much of the
 * daemon's cost is its own and how much the design's.
 */
#ifndef SFD_BENCH_FLOOR_H
#define SFD_BENCH_FLOOR_H

#include <sys/types.h>

/*
 * floor_start() - fork a floor server listening on @path (removed first if
 * it exists). It serves one connection at a time, on one thread, until
 * floor_stop(). Return: its pid, or a negative errno.
 */
pid_t floor_start(const char *path);

/* floor_stop() - kill and reap the server started by floor_start(). */
void floor_stop(pid_t pid);

#endif
