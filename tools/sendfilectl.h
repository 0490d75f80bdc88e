/*
 * sendfilectl - the command-line client of sendfiled.
 *
 * main() (sendfilectl.c) reads the options that come before the command's
 * name and runs the command from its table. Each command lives in a file of
 * its own, cmd-<name>.c, and is declared here; the helpers they share are
 * below. The global options are accepted after the command's name too: each
 * command's option table carries them (SFCTL_GLOBAL_OPTIONS) and hands them
 * to sfctl_global_option(), so that `sendfilectl status --json -s PATH`
 * works as people type it.
 */
#ifndef SFD_SENDFILECTL_H
#define SFD_SENDFILECTL_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes, the same for every command. */
enum {
	SFCTL_EXIT_OK = 0,
	SFCTL_EXIT_FAILED = 1,      /* the daemon answered with a non-OK status */
	SFCTL_EXIT_USAGE = 2,       /* bad command line */
	SFCTL_EXIT_UNREACHABLE = 3, /* the daemon could not be reached, or went away */
	SFCTL_EXIT_LOCAL = 4,       /* a local file or destination could not be opened */
};

/* The global options, before or after the command's name. */
struct sfctl_global {
	const char *socket_path;  /* the data socket; NULL for the library's default */
	const char *control_path; /* NULL: control.sock beside the data socket */
	const char *events_path;  /* NULL: events.sock beside the data socket */
	int timeout_ms;           /* for control-plane requests */
};

struct sfctl_command {
	const char *name;
	const char *synopsis; /* what follows the name, for --help */
	const char *summary;
	/* @argv[0] is the command's name; getopt is reset for it. Return: an
	 * exit code. */
	int (*run)(struct sfctl_global *g, int argc, char **argv);
};

/* The commands. */
int sfctl_cmd_send(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_status(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_stats(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_list(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_cancel(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_drain(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_watch(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_metrics(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_log_level(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_limits(struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_ping(struct sfctl_global *g, int argc, char **argv);

/*
 * sfctl_transfer_progress() - how far a transfer of this process has got, as
 * the control plane's `list` shows it, asked quietly (nothing on stderr) and
 * waiting up to @timeout_ms. @transfer: in, the daemon's id of the transfer,
 * or 0 to find the one this process started at @offset; out, its id once found.
 * Return: 0 and *ret_sent; -ENOENT when it is not in flight (not yet, or no
 * longer); -ENOTCONN when there is no control plane to ask; -EAGAIN when it
 * did not answer in time.
 */
int sfctl_transfer_progress(const struct sfctl_global *g, int timeout_ms, uint64_t offset,
                            uint64_t *transfer, uint64_t *ret_sent);

/*
 * The global options' entries for a command's getopt_long() table, and their
 * short letters for its option string. --timeout-ms (-t) is separate: `send`
 * has a -t of its own, the transfer's timeout, which wins after its name.
 */
/* Kept by hand: clang-format would spread each entry over four lines. */
/* clang-format off */
#define SFCTL_GLOBAL_OPTIONS                                                                       \
	{"socket", required_argument, NULL, 's'},                                                  \
	{"control", required_argument, NULL, 'c'},                                                 \
	{"events", required_argument, NULL, 'e'}
#define SFCTL_GLOBAL_TIMEOUT {"timeout-ms", required_argument, NULL, 't'}
/* clang-format on */
#define SFCTL_GLOBAL_SHORT "s:c:e:"

/*
 * sfctl_global_option() - apply a global option that getopt_long() returned
 * as @opt with @arg, in whichever table it was found.
 * Return: 0 when @opt is a global option and *g holds it; -ENOENT when @opt is
 * not one (the caller's own, or getopt's '?'); -EINVAL for a bad value, after
 * saying so on stderr (exit with SFCTL_EXIT_USAGE).
 */
int sfctl_global_option(struct sfctl_global *g, int opt, const char *arg);

/*
 * sfctl_usage_error() - report a bad command line on stderr, with a hint to
 * `sendfilectl [@cmd] --help`. Return: SFCTL_EXIT_USAGE.
 */
int sfctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sfctl_error() - "sendfilectl: <message>" on stderr. */
void sfctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sfctl_parse_u64() - a decimal number, nothing else. Return: 0 and *ret, or
 * -EINVAL / -ERANGE. */
int sfctl_parse_u64(const char *s, uint64_t *ret);

/* sfctl_socket_path() - the data socket in use, for messages. */
const char *sfctl_socket_path(const struct sfctl_global *g, char *buf, size_t size);

/* sfctl_json_string() - @s as a JSON string literal, quotes included. */
void sfctl_json_string(FILE *f, const char *s);

#endif
