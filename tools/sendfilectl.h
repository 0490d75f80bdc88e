/*
 * sendfilectl - the command-line client of sendfiled.
 *
 * main() (sendfilectl.c) reads the options that come before the command's
 * name and runs the command from its table. Each command lives in a file of
 * its own, cmd-<name>.c, and is declared here; the helpers they share are
 * below.
 */
#ifndef SFD_SENDFILECTL_H
#define SFD_SENDFILECTL_H

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

/* Options given before the command's name. */
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
	int (*run)(const struct sfctl_global *g, int argc, char **argv);
};

/* The commands. */
int sfctl_cmd_send(const struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_status(const struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_stats(const struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_list(const struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_cancel(const struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_drain(const struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_watch(const struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_metrics(const struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_log_level(const struct sfctl_global *g, int argc, char **argv);
int sfctl_cmd_limits(const struct sfctl_global *g, int argc, char **argv);

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
