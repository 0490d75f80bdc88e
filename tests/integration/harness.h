/*
 * harness - what the integration tests share: a real daemon process on a
 * socket in a temporary directory, the descriptor accounting every test is
 * checked against (the test process's own set, and the daemon's count), TCP
 * loopback receivers that hash what they read, random source files, and a
 * small SHA-256.
 *
 * Every helper asserts with cmocka on failure: a test reads as the sequence
 * of things a user would do and check.
 */
#ifndef SFD_TEST_HARNESS_H
#define SFD_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "sendfiled.h"
#include "sha256.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)

/* ---- the daemon under test ---------------------------------------------- */

/*
 * harness_init() - find the daemon: $SENDFILED_BIN, else argv[1]. Ignores
 * SIGPIPE (receivers close sockets under writers on purpose).
 */
void harness_init(int argc, char **argv);

/* harness_loops() - the daemon's event loops in this run: $SFD_TEST_LOOPS,
 * else 1 (passed as --loops). */
unsigned harness_loops(void);

/* harness_daemon_args() - extra command-line arguments for the daemons the
 * next groups start (a NULL-terminated array that must outlive them). */
void harness_daemon_args(const char *const *args);
/* harness_daemon_nofile() - start the next groups' daemons with this hard
 * RLIMIT_NOFILE (0: the test's own). */
void harness_daemon_nofile(unsigned n);

/*
 * Group fixtures: start a daemon and record its descriptor count once it
 * serves; stop it with SIGTERM, check that it exits with status 0, that it
 * removed its socket, and that it held only its baseline before.
 */
int harness_group_setup(void **state);
int harness_group_teardown(void **state);

/*
 * Test fixtures: snapshot the test process's open descriptors; afterwards
 * require the same set, and the daemon back at its baseline count (polled:
 * the daemon closes a connection the test has just closed on its next turn).
 * Descriptors a failed test left open are reported and closed, so that one
 * failure does not cascade into the next tests.
 */
int harness_test_setup(void **state);
int harness_test_teardown(void **state);

#define HTEST(f) cmocka_unit_test_setup_teardown(f, harness_test_setup, harness_test_teardown)

const char *daemon_socket(void);
pid_t daemon_pid(void);
/* Descriptors the daemon holds now, and once idle. */
int daemon_fd_count(void);
int daemon_baseline(void);
/* daemon_wait_fds() - wait up to @ms for the daemon to hold exactly @n. */
bool daemon_wait_fds(int n, int ms);
/* daemon_alive() - has the daemon not exited? */
bool daemon_alive(void);

/*
 * daemon_crash_and_restart() - kill the daemon with SIGKILL, as a crash would,
 * then start a new one for the rest of the group (on a new socket).
 */
void daemon_crash_and_restart(void);

/*
 * daemon_restart() - wait for the daemon to stop (a SIGTERM, unless it has
 * exited already), assert that it exited 0 and removed its socket, then
 * start a new one for the rest of the group.
 */
void daemon_restart(void);

/* client_open() - a libsendfiled client connected to the daemon under test. */
struct sfd_client *client_open(void);

/*
 * assert_daemon_serves() - a new client has a small file sent and received
 * correctly: the daemon survived whatever the test did to it.
 */
void assert_daemon_serves(void);

/* ---- files and descriptors ---------------------------------------------- */

/* The group's temporary directory (the daemon's socket lives there too). */
const char *harness_tmpdir(void);

/* fill_random() - @n pseudo-random bytes from *@state (xorshift64*). */
void fill_random(void *buf, size_t n, uint64_t *state);

/*
 * tfile_create() - a new file of @size random bytes (seeded by @seed) in the
 * temporary directory; its path goes to @path (PATH_MAX bytes).
 */
void tfile_create(char *path, uint64_t size, uint64_t seed);
/*
 * tfile_make_cold() - write @path back and drop it from the page cache, so
 * that reading it waits for the disk. Return: false if the filesystem keeps
 * it cached anyway (tmpfs).
 */
bool tfile_make_cold(const char *path);
/* tfile_open() - open(@path, @flags | O_CLOEXEC), asserted. */
int tfile_open(const char *path, int flags);

/* The source position as the client sees it. */
off_t fd_pos(int fd);
int fd_flags(int fd);

/*
 * tcp_pair() - a connected TCP loopback pair on 127.0.0.1: *ret_client is the
 * destination handed to the daemon (blocking or not), *ret_server the end a
 * receiver reads. TCP_CONGESTION is set to cubic on both where the kernel
 * allows.
 */
void tcp_pair(bool client_nonblock, int *ret_client, int *ret_server);

/* ---- SHA-256 ------------------------------------------------------------- */

/* range_sha256() - hash of bytes [@off, @off + @len) of @fd, read with pread. */
void range_sha256(int fd, uint64_t off, uint64_t len, uint8_t out[32]);

/* ---- receivers ----------------------------------------------------------- */

/*
 * A sink reads any number of streams on one thread, to end of file, counting
 * and hashing each. A stream may start paused (nothing read until
 * sink_resume()), read slowly (16 KiB every @delay_ms), or close after
 * @close_after bytes (0: never), leaving the rest unread so that the sender
 * sees a reset.
 */
struct sink_opts {
	uint64_t close_after;
	unsigned delay_ms;
	bool paused;
};

struct sink;

struct sink *sink_new(void);
/* sink_add() - read @fd (owned by the sink from now on). Return: its index. */
int sink_add(struct sink *s, int fd, const struct sink_opts *o);
/* sink_resume() - read the stream at full speed from now on. */
void sink_resume(struct sink *s, int idx);
/* sink_wait() - wait up to @ms for the stream to end. Return: whether it did. */
bool sink_wait(struct sink *s, int idx, int ms);
/* sink_wait_queued() - wait up to @ms until at least @n bytes wait unread in
 * a (paused) stream's socket: the sender has started. */
bool sink_wait_queued(struct sink *s, int idx, size_t n, int ms);
/* sink_queued() - bytes waiting unread in the stream's socket or pipe now. */
size_t sink_queued(struct sink *s, int idx);
uint64_t sink_bytes(struct sink *s, int idx);
/* sink_digest() - the SHA-256 of everything the ended stream read. */
void sink_digest(struct sink *s, int idx, uint8_t out[32]);
/* sink_free() - stop the thread and close every stream still open. */
void sink_free(struct sink *s);

/*
 * assert_received() - the ended stream @idx read exactly bytes
 * [@off, @off + @len) of @src_fd.
 */
void assert_received(struct sink *s, int idx, int src_fd, uint64_t off, uint64_t len);

/* ---- the asynchronous API ------------------------------------------------ */

/* One submitted request: give its address as sfd_client_submit()'s userdata
 * and harness_on_done as the dispatch callback. */
struct done_slot {
	bool done;
	unsigned times; /* completions delivered for it: must end at 1 */
	struct sfd_result res;
	unsigned *counter; /* incremented per completion, if set */
};

void harness_on_done(struct sfd_client *c, uint64_t id, const struct sfd_result *res,
                     void *userdata);

/*
 * pump() - poll the client's descriptor and dispatch until *@counter reaches
 * @target or @ms pass. Return: whether it reached @target.
 */
bool pump(struct sfd_client *c, const unsigned *counter, unsigned target, int ms);

/*
 * assert_result() - a reply's status, bytes_sent, final_offset and method. A
 * wrong status fails with the daemon's explanation.
 */
#define assert_result(r, want_status, want_sent, want_final, want_method)                          \
	do {                                                                                       \
		const struct sfd_result *r_ = (r);                                                 \
		if (r_->status != (int)(want_status))                                              \
			fail_msg("status %s (errno %d, \"%s\", %llu bytes sent), want %s",         \
			         sfd_status_str(r_->status), r_->error, r_->message,               \
			         (unsigned long long)r_->bytes_sent, sfd_status_str(want_status)); \
		assert_int_equal(r_->bytes_sent, (want_sent));                                     \
		assert_int_equal(r_->final_offset, (want_final));                                  \
		assert_string_equal(sfd_method_str(r_->method), sfd_method_str(want_method));      \
	} while (0)

/* now_ms() - CLOCK_MONOTONIC in milliseconds. */
int64_t now_ms(void);
void sleep_ms(unsigned ms);

#endif
