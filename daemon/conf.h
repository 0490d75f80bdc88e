/*
 * conf - the daemon's settings and where each one came from: built-in
 * defaults, then the configuration file, then the environment, then the
 * command line, each overriding the one before.
 *
 * The file is one "key = value" per line. Blank lines and lines starting
 * with '#' are ignored, and a '#' after a blank starts a comment; the value
 * is the rest of the line with surrounding blanks removed. Unknown keys,
 * bad values and malformed lines are errors. docs/sendfiled.conf.5 is the
 * reference.
 *
 * Nothing here logs: errors go to the caller's conf_error_fn, once each,
 * already formatted with their origin ("FILE:LINE: ...", "--flag: ...").
 */
#ifndef SFD_CONF_H
#define SFD_CONF_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "ctl.h"
#include "server.h"

enum conf_key {
	CONF_SOCKET,
	CONF_SOCKET_MODE,
	CONF_SOCKET_GROUP,
	CONF_CONTROL_SOCKET,
	CONF_EVENTS_SOCKET,
	CONF_CONTROL_MODE,
	CONF_CONTROL_PROBE_MS,
	CONF_MAX_CONNECTIONS,
	CONF_MAX_IN_FLIGHT,
	CONF_MAX_IN_FLIGHT_PER_UID,
	CONF_MAX_HANDOFFS,
	CONF_CHUNK_SIZE,
	CONF_DRAIN_TIMEOUT_MS,
	CONF_DEADLINE_MS,
	CONF_MAX_DEADLINE_MS,
	CONF_IDLE_TIMEOUT_MS,
	CONF_MAX_IDLE_TIMEOUT_MS,
	CONF_WORKERS,
	CONF_LOOPS,
	CONF_ALLOW_UIDS,
	CONF_ALLOW_GIDS,
	CONF_LOG_LEVEL,
	CONF_N_KEYS,
};

enum conf_origin {
	CONF_FROM_DEFAULT,
	CONF_FROM_FILE,
	CONF_FROM_ENV,
	CONF_FROM_CMDLINE,
};

struct conf {
	struct server_config srv;        /* data socket, its mode, limits, allow-lists */
	char control_path[SOCKPATH_MAX]; /* "" = control.sock beside the data socket */
	char events_path[SOCKPATH_MAX];  /* "" = events.sock beside the data socket */
	unsigned control_mode;           /* meaningful when origin[CONF_CONTROL_MODE] is set */
	unsigned control_probe_ms;       /* listener health check period; 0: never */
	bool has_socket_group;
	gid_t socket_group;
	unsigned workers;
	int log_level;

	/* The file the CONF_FROM_FILE values were read from. */
	char file[4096];
	/* Where each key's value came from, and its line for CONF_FROM_FILE. */
	enum conf_origin origin[CONF_N_KEYS];
	unsigned line[CONF_N_KEYS];
};

/* Receives one formatted error message (no trailing newline). */
typedef void (*conf_error_fn)(void *userdata, const char *msg);

/*
 * conf_defaults() - the built-in defaults. The data socket is
 * $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock when that variable is set, else
 * /run/sendfiled/sendfiled.sock ($SENDFILED_SOCKET is conf_apply_env()'s).
 */
void conf_defaults(struct conf *cfg);

/* conf_online_cpus() - the default for loops: the CPUs this process may run
 * on (sched_getaffinity), at most LOOPS_MAX. */
unsigned conf_online_cpus(void);

/* conf_key_from_name() - the key called @name, or -1. */
int conf_key_from_name(const char *name);
const char *conf_key_name(enum conf_key key);

/*
 * conf_set() - parse @value for @key and store it, recording @origin and
 * @line. On failure nothing is stored and a message without origin prefix
 * ("bad value ...") is written to @err.
 * For CONF_ALLOW_UIDS and CONF_ALLOW_GIDS, @append adds to the list set so
 * far instead of replacing it (repeated command-line flags).
 * Return: 0, or -EINVAL.
 */
int conf_set(struct conf *cfg, enum conf_key key, const char *value, bool append,
             enum conf_origin origin, unsigned line, char *err, size_t errsize);

/*
 * conf_parse() - read settings from @f, named @name in error messages, until
 * end of file. Reports every error through @on_error and keeps going, so
 * that one run shows them all. Does not close @f.
 * Return: the number of errors (0 when the whole file is good), or a
 * negative errno when @f cannot be read.
 */
int conf_parse(struct conf *cfg, FILE *f, const char *name, conf_error_fn on_error, void *userdata);

/*
 * conf_load() - conf_parse() the file at @path. A missing file is an error
 * only when @must_exist (an explicit --config or $SENDFILED_CONFIG); a
 * missing default file leaves @cfg alone.
 * Return: the number of errors, or -ENOENT (missing, !@must_exist). Errors
 * opening or reading the file are reported through @on_error and counted.
 */
int conf_load(struct conf *cfg, const char *path, bool must_exist, conf_error_fn on_error,
              void *userdata);

/*
 * conf_apply_env() - $SENDFILED_SOCKET and $SENDFILED_LOG_LEVEL, when set and
 * not empty. Return: the number of errors (reported through @on_error).
 */
int conf_apply_env(struct conf *cfg, conf_error_fn on_error, void *userdata);

/*
 * conf_control_mode() - the file mode of the control and events sockets:
 * control_mode when it was set, else 0660 with a socket_group, else 0600.
 */
unsigned conf_control_mode(const struct conf *cfg);

/*
 * conf_ctl_config() - the control plane's configuration, its socket paths
 * made explicit: beside @data_path (the data socket actually served) unless
 * control_socket / events_socket were set.
 * Return: 0, or -ENAMETOOLONG.
 */
int conf_ctl_config(const struct conf *cfg, const char *data_path, struct ctl_config *ret);

/*
 * conf_print() - the effective configuration in the file's own syntax, one
 * key per line with its origin as a comment, so that the output is itself a
 * valid configuration file.
 */
void conf_print(const struct conf *cfg, FILE *f);

#endif
