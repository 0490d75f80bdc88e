/*
 * conf.c - the daemon's settings: defaults, file, environment, validation.
 */
#define _GNU_SOURCE 1
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "macro.h"
#include "size.h"
#include "sockpath.h"
#include "xfer.h"

#define CHUNK_MIN 4096u
#define WORKERS_MAX 1024u

void
conf_defaults(struct conf *cfg)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	memset(cfg, 0, sizeof(*cfg));
	server_config_defaults(&cfg->srv);
	/* $SENDFILED_SOCKET is not a default: it overrides the file. */
	if (!xdg || !*xdg ||
	    snprintf(cfg->srv.socket_path, sizeof(cfg->srv.socket_path), "%s%s", xdg,
	             "/sendfiled/sendfiled.sock") >= (int)sizeof(cfg->srv.socket_path))
		snprintf(cfg->srv.socket_path, sizeof(cfg->srv.socket_path), "%s",
		         "/run/sendfiled/sendfiled.sock");
	cfg->control_mode = 0600;
	cfg->control_probe_ms = 1000;
	cfg->workers = 8;
	cfg->srv.loops = conf_online_cpus();
	cfg->log_level = LOG_NOTICE;
}

unsigned
conf_online_cpus(void)
{
	cpu_set_t set;
	long n;

	/* The CPUs we may run on (a cpuset, taskset, CPUAffinity=), else
	 * those online. */
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		n = CPU_COUNT(&set);
	else
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > LOOPS_MAX ? LOOPS_MAX : (unsigned)n;
}

/* ---- values ------------------------------------------------------------- */

static int
parse_uint(const char *s, unsigned long long min, unsigned long long max, unsigned long long *ret)
{
	unsigned long long v;
	char *end;

	/* Digits only: strtoull() would take blanks, a sign and "-1". */
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int
parse_mode(const char *s, unsigned *ret)
{
	unsigned v = 0;

	if (!*s || strlen(s) > 4)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '7')
			return -EINVAL;
		v = v * 8 + (unsigned)(*p - '0');
	}
	if (v > 0777)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* A user or group, by name or number. Return: 0, -EINVAL for a bad
 * number, -ENOENT when no such name exists, or another negative errno. */
static int
parse_id(const char *s, bool group, unsigned *ret)
{
	unsigned long long v;
	char buf[4096];
	int r;

	if (isdigit((unsigned char)*s)) {
		/* (uid_t)-1 means "no change" to chown() and friends. */
		if (parse_uint(s, 0, UINT_MAX - 1, &v) < 0)
			return -EINVAL;
		*ret = (unsigned)v;
		return 0;
	}
	if (group) {
		struct group gr, *res = NULL;

		r = getgrnam_r(s, &gr, buf, sizeof(buf), &res);
		if (r == 0 && res) {
			*ret = (unsigned)res->gr_gid;
			return 0;
		}
	} else {
		struct passwd pw, *res = NULL;

		r = getpwnam_r(s, &pw, buf, sizeof(buf), &res);
		if (r == 0 && res) {
			*ret = (unsigned)res->pw_uid;
			return 0;
		}
	}
	return r > 0 ? -r : -ENOENT;
}

static int
resolve_id(const char *s, bool group, unsigned *ret, char *err, size_t errsize)
{
	const char *what = group ? "group" : "user";
	int r = parse_id(s, group, ret);

	if (r == -EINVAL)
		snprintf(err, errsize, "bad %s '%s'", what, s);
	else if (r == -ENOENT)
		snprintf(err, errsize, "no such %s: '%s'", what, s);
	else if (r < 0)
		snprintf(err, errsize, "cannot look up %s '%s': %s", what, s, strerror(-r));
	return r < 0 ? -EINVAL : 0;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* A comma-separated list of users or groups; "" empties it. */
static int
parse_id_list(const char *value, bool group, bool append, unsigned *ids, unsigned *n, char *err,
              size_t errsize)
{
	unsigned out[SERVER_MAX_ALLOW];
	unsigned count = append ? *n : 0;
	char buf[4096];
	char *save = NULL, *item;

	if (snprintf(buf, sizeof(buf), "%s", value) >= (int)sizeof(buf)) {
		snprintf(err, errsize, "list too long");
		return -EINVAL;
	}
	memcpy(out, ids, count * sizeof(*out));
	if (*trim(buf) == '\0') {
		if (append) {
			snprintf(err, errsize, "empty %s", group ? "group" : "user");
			return -EINVAL;
		}
		*n = 0;
		return 0;
	}
	/* strtok_r() would skip empty items: "1,,2" is an error, not "1,2". */
	for (item = buf; item; item = save) {
		save = strchr(item, ',');
		if (save)
			*save++ = '\0';
		item = trim(item);
		if (!*item) {
			snprintf(err, errsize, "empty item in a list");
			return -EINVAL;
		}
		if (count >= SERVER_MAX_ALLOW) {
			snprintf(err, errsize, "more than %d entries", SERVER_MAX_ALLOW);
			return -EINVAL;
		}
		if (resolve_id(item, group, &out[count], err, errsize) < 0)
			return -EINVAL;
		count++;
	}
	memcpy(ids, out, count * sizeof(*out));
	*n = count;
	return 0;
}

static int
set_path(char *dst, size_t size, const char *value, bool may_be_empty, char *err, size_t errsize)
{
	if (!*value && !may_be_empty) {
		snprintf(err, errsize, "empty path");
		return -EINVAL;
	}
	if (strlen(value) >= size) {
		snprintf(err, errsize, "path longer than %zu bytes: '%s'", size - 1, value);
		return -EINVAL;
	}
	strcpy(dst, value);
	return 0;
}

/* ---- the keys ------------------------------------------------------------ */

struct conf_item;

/* Parse @value into @cfg. Return: 0, or -EINVAL with @err filled. */
typedef int (*conf_parse_fn)(const struct conf_item *it, struct conf *cfg, const char *value,
                             bool append, char *err, size_t errsize);
/* Print the value; may set *dflt, what the comment says for a default. */
typedef void (*conf_print_fn)(const struct conf_item *it, const struct conf *cfg, FILE *f,
                              const char **dflt);

/* One key: its name, how it is parsed and printed, where it lives (as
 * systemd's conf-parser ConfigTableItem). */
struct conf_item {
	const char *name;
	conf_parse_fn parse;
	conf_print_fn print;
	size_t offset; /* of the field in struct conf */
	/* Numbers: the range, and what the error message calls the value. */
	unsigned long long min, max;
	const char *what, *unit;
	size_t count_offset; /* lists: of their length */
};

#define FIELD(cfg, it, type) ((type *)((char *)(cfg) + (it)->offset))
#define CFIELD(cfg, it, type) ((const type *)((const char *)(cfg) + (it)->offset))

static int
parse_path_item(const struct conf_item *it, struct conf *cfg, const char *value, bool append,
                char *err, size_t errsize)
{
	/* The data socket needs a path; "" puts a control socket beside it. */
	bool may_be_empty = it->offset != offsetof(struct conf, srv.socket_path);

	(void)append;
	return set_path(FIELD(cfg, it, char), SOCKPATH_MAX, value, may_be_empty, err, errsize);
}

static int
parse_mode_item(const struct conf_item *it, struct conf *cfg, const char *value, bool append,
                char *err, size_t errsize)
{
	(void)append;
	if (parse_mode(value, FIELD(cfg, it, unsigned)) < 0) {
		snprintf(err, errsize, "bad file mode '%s' (octal, 0000..0777)", value);
		return -EINVAL;
	}
	return 0;
}

static int
parse_group_item(const struct conf_item *it, struct conf *cfg, const char *value, bool append,
                 char *err, size_t errsize)
{
	unsigned u;

	(void)it;
	(void)append;
	if (!*value) {
		cfg->has_socket_group = false;
		return 0;
	}
	if (resolve_id(value, true, &u, err, errsize) < 0)
		return -EINVAL;
	cfg->has_socket_group = true;
	cfg->socket_group = (gid_t)u;
	return 0;
}

/* A count, a period, or (no it->what) a size with K, M, G suffixes. */
static int
parse_number_item(const struct conf_item *it, struct conf *cfg, const char *value, bool append,
                  char *err, size_t errsize)
{
	bool size = !it->what;
	unsigned long long v;
	uint64_t bytes = 0;
	int r;

	(void)append;
	r = size ? size_parse(value, &bytes) : parse_uint(value, 0, ULLONG_MAX, &v);
	if (size)
		v = bytes;
	if (r < 0 || v < it->min || v > it->max) {
		if (size)
			snprintf(err, errsize, "bad size '%s' (%llu..%llu bytes; K, M, G suffixes)",
			         value, it->min, it->max);
		else
			snprintf(err, errsize, "bad %s '%s' (%s%llu..%llu)", it->what, value,
			         it->unit, it->min, it->max);
		return -EINVAL;
	}
	if (size)
		*FIELD(cfg, it, size_t) = (size_t)v;
	else
		*FIELD(cfg, it, unsigned) = (unsigned)v;
	return 0;
}

_Static_assert(sizeof(uid_t) == sizeof(unsigned) && sizeof(gid_t) == sizeof(unsigned),
               "ids are stored as unsigned");

static int
parse_ids_item(const struct conf_item *it, struct conf *cfg, const char *value, bool append,
               char *err, size_t errsize)
{
	unsigned *ids = FIELD(cfg, it, unsigned);
	unsigned *n = (unsigned *)((char *)cfg + it->count_offset);

	return parse_id_list(value, it->offset == offsetof(struct conf, srv.allow_gids), append,
	                     ids, n, err, errsize) < 0
	               ? -EINVAL
	               : 0;
}

static int
parse_log_level_item(const struct conf_item *it, struct conf *cfg, const char *value, bool append,
                     char *err, size_t errsize)
{
	int r = log_parse_level(value);

	(void)it;
	(void)append;
	if (r < 0) {
		snprintf(err, errsize,
		         "bad log level '%s' (err, warning, notice, info, debug, or 0..7)", value);
		return -EINVAL;
	}
	cfg->log_level = r;
	return 0;
}

static void print_path_item(const struct conf_item *it, const struct conf *cfg, FILE *f,
                            const char **dflt);
static void print_mode_item(const struct conf_item *it, const struct conf *cfg, FILE *f,
                            const char **dflt);
static void print_group_item(const struct conf_item *it, const struct conf *cfg, FILE *f,
                             const char **dflt);
static void print_uint_item(const struct conf_item *it, const struct conf *cfg, FILE *f,
                            const char **dflt);
static void print_size_item(const struct conf_item *it, const struct conf *cfg, FILE *f,
                            const char **dflt);
static void print_ids_item(const struct conf_item *it, const struct conf *cfg, FILE *f,
                           const char **dflt);
static void print_log_level_item(const struct conf_item *it, const struct conf *cfg, FILE *f,
                                 const char **dflt);

#define PATH(k, n, field) [k] = {n, parse_path_item, print_path_item, offsetof(struct conf, field)}
#define MODE(k, n, field) [k] = {n, parse_mode_item, print_mode_item, offsetof(struct conf, field)}
#define UINT(k, n, field, lo, hi, what, unit)                                                      \
	[k] =                                                                                      \
	        {n,                                                                                \
	         parse_number_item,                                                                \
	         print_uint_item,                                                                  \
	         offsetof(struct conf, field),                                                     \
	         lo,                                                                               \
	         hi,                                                                               \
	         what,                                                                             \
	         unit}
#define IDS(k, n, field, count)                                                                    \
	[k] = {n, parse_ids_item, print_ids_item, offsetof(struct conf, field), 0,                 \
	       0, NULL,           NULL,           offsetof(struct conf, count)}

static const struct conf_item items[CONF_N_KEYS] = {
        PATH(CONF_SOCKET, "socket", srv.socket_path),
        MODE(CONF_SOCKET_MODE, "socket_mode", srv.socket_mode),
        [CONF_SOCKET_GROUP] = {"socket_group", parse_group_item, print_group_item, 0},
        PATH(CONF_CONTROL_SOCKET, "control_socket", control_path),
        PATH(CONF_EVENTS_SOCKET, "events_socket", events_path),
        MODE(CONF_CONTROL_MODE, "control_mode", control_mode),
        UINT(CONF_CONTROL_PROBE_MS, "control_probe_ms", control_probe_ms, 0, UINT_MAX, "period",
             "milliseconds, "),
        UINT(CONF_MAX_CONNECTIONS, "max_connections", srv.max_connections, 1, UINT_MAX, "count",
             ""),
        UINT(CONF_MAX_IN_FLIGHT, "max_in_flight", srv.max_in_flight_per_conn, 1, UINT_MAX, "count",
             ""),
        UINT(CONF_MAX_IN_FLIGHT_PER_UID, "max_in_flight_per_uid", srv.max_in_flight_per_uid, 1,
             UINT_MAX, "count", ""),
        UINT(CONF_MAX_HANDOFFS, "max_handoffs", srv.max_handoffs, 0, UINT_MAX, "count", ""),
        [CONF_CHUNK_SIZE] = {"chunk_size", parse_number_item, print_size_item,
                             offsetof(struct conf, srv.chunk_size), CHUNK_MIN, XFER_SYSCALL_MAX},
        UINT(CONF_DRAIN_TIMEOUT_MS, "drain_timeout_ms", srv.drain_timeout_ms, 0, UINT_MAX,
             "duration", "milliseconds, "),
        UINT(CONF_DEADLINE_MS, "deadline_ms", srv.pace.deadline_ms, 0, UINT_MAX, "duration",
             "milliseconds, "),
        UINT(CONF_MAX_DEADLINE_MS, "max_deadline_ms", srv.pace.max_deadline_ms, 0, UINT_MAX,
             "duration", "milliseconds, "),
        UINT(CONF_IDLE_TIMEOUT_MS, "idle_timeout_ms", srv.pace.idle_timeout_ms, 0, UINT_MAX,
             "duration", "milliseconds, "),
        UINT(CONF_MAX_IDLE_TIMEOUT_MS, "max_idle_timeout_ms", srv.pace.max_idle_timeout_ms, 0,
             UINT_MAX, "duration", "milliseconds, "),
        UINT(CONF_WORKERS, "workers", workers, 1, WORKERS_MAX, "thread count", ""),
        UINT(CONF_LOOPS, "loops", srv.loops, 1, LOOPS_MAX, "loop count", ""),
        IDS(CONF_ALLOW_UIDS, "allow_uids", srv.allow_uids, srv.n_allow_uids),
        IDS(CONF_ALLOW_GIDS, "allow_gids", srv.allow_gids, srv.n_allow_gids),
        [CONF_LOG_LEVEL] = {"log_level", parse_log_level_item, print_log_level_item, 0},
};

int
conf_key_from_name(const char *name)
{
	for (int k = 0; k < CONF_N_KEYS; k++)
		if (strcmp(name, items[k].name) == 0)
			return k;
	return -1;
}

const char *
conf_key_name(enum conf_key key)
{
	return (unsigned)key < CONF_N_KEYS ? items[key].name : "?";
}

int
conf_set(struct conf *cfg, enum conf_key key, const char *value, bool append,
         enum conf_origin origin, unsigned line, char *err, size_t errsize)
{
	if ((unsigned)key >= CONF_N_KEYS) {
		snprintf(err, errsize, "unknown key");
		return -EINVAL;
	}
	if (items[key].parse(&items[key], cfg, value, append, err, errsize) < 0)
		return -EINVAL;
	cfg->origin[key] = origin;
	cfg->line[key] = line;
	return 0;
}

/* ---- the file ----------------------------------------------------------- */

static void
report(conf_error_fn on_error, void *userdata, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (on_error)
		on_error(userdata, msg);
}

/* Cut a comment off @s: from a '#' that starts the line or follows a blank. */
static void
strip_comment(char *s)
{
	for (char *p = s; *p; p++) {
		if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
	}
}

static bool
valid_key_syntax(const char *k)
{
	for (; *k; k++)
		if (!islower((unsigned char)*k) && !isdigit((unsigned char)*k) && *k != '_')
			return false;
	return true;
}

/* Return: 0, or 1 after reporting an error about this line. */
static int
parse_line(struct conf *cfg, char *line, const char *name, unsigned lineno, conf_error_fn on_error,
           void *userdata)
{
	char err[512], hint[128];
	char *eq, *key, *value;
	int k;

	strip_comment(line);
	key = trim(line);
	if (!*key)
		return 0;
	eq = strchr(key, '=');
	if (!eq) {
		report(on_error, userdata, "%s:%u: expected 'key = value', got '%s'", name, lineno,
		       key);
		return 1;
	}
	*eq = '\0';
	value = trim(eq + 1);
	key = trim(key);
	if (!*key) {
		report(on_error, userdata, "%s:%u: missing key before '='", name, lineno);
		return 1;
	}
	k = valid_key_syntax(key) ? conf_key_from_name(key) : -1;
	if (k < 0) {
		char alt[64];

		/* A common slip: the command-line spelling of a key. */
		hint[0] = '\0';
		if (snprintf(alt, sizeof(alt), "%s", key) < (int)sizeof(alt)) {
			for (char *p = alt; *p; p++)
				*p = *p == '-' ? '_' : (char)tolower((unsigned char)*p);
			if (conf_key_from_name(alt) >= 0)
				snprintf(hint, sizeof(hint), " (did you mean '%s'?)", alt);
		}
		report(on_error, userdata, "%s:%u: unknown key '%s'%s", name, lineno, key, hint);
		return 1;
	}
	if (conf_set(cfg, (enum conf_key)k, value, false, CONF_FROM_FILE, lineno, err,
	             sizeof(err)) < 0) {
		report(on_error, userdata, "%s:%u: %s: %s", name, lineno, key, err);
		return 1;
	}
	return 0;
}

int
conf_parse(struct conf *cfg, FILE *f, const char *name, conf_error_fn on_error, void *userdata)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int errors = 0;
	ssize_t n;

	snprintf(cfg->file, sizeof(cfg->file), "%s", name);
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (strlen(line) != (size_t)n) {
			report(on_error, userdata, "%s:%u: NUL byte in line", name, lineno);
			errors++;
			continue;
		}
		errors += parse_line(cfg, line, name, lineno, on_error, userdata);
	}
	if (ferror(f))
		return -EIO;
	return errors;
}

int
conf_load(struct conf *cfg, const char *path, bool must_exist, conf_error_fn on_error,
          void *userdata)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	int r;

	if (!f) {
		r = -errno;
		if (r == -ENOENT && !must_exist)
			return -ENOENT;
		report(on_error, userdata, "%s: cannot open: %s", path, strerror(-r));
		return 1;
	}
	/* A directory opens fine and then fails to read with EISDIR. */
	if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
		report(on_error, userdata, "%s: not a regular file", path);
		fclose(f);
		return 1;
	}
	r = conf_parse(cfg, f, path, on_error, userdata);
	if (r < 0) {
		report(on_error, userdata, "%s: cannot read: %s", path, strerror(-r));
		r = 1;
	}
	fclose(f);
	return r;
}

int
conf_apply_env(struct conf *cfg, conf_error_fn on_error, void *userdata)
{
	static const struct {
		const char *var;
		enum conf_key key;
	} vars[] = {
	        {"SENDFILED_SOCKET", CONF_SOCKET},
	        {"SENDFILED_LOG_LEVEL", CONF_LOG_LEVEL},
	};
	int errors = 0;

	for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
		const char *v = getenv(vars[i].var);
		char err[512];

		if (!v || !*v)
			continue;
		if (conf_set(cfg, vars[i].key, v, false, CONF_FROM_ENV, 0, err, sizeof(err)) < 0) {
			report(on_error, userdata, "$%s: %s", vars[i].var, err);
			errors++;
		}
	}
	return errors;
}

/* ---- derived values and printing ---------------------------------------- */

unsigned
conf_control_mode(const struct conf *cfg)
{
	if (cfg->origin[CONF_CONTROL_MODE] != CONF_FROM_DEFAULT)
		return cfg->control_mode;
	return cfg->has_socket_group ? 0660 : 0600;
}

int
conf_ctl_config(const struct conf *cfg, const char *data_path, struct ctl_config *ret)
{
	struct ctl_config c;
	int r;

	ctl_config_defaults(&c);
	c.mode = conf_control_mode(cfg);
	c.probe_interval_ms = cfg->control_probe_ms;
	r = sockpath_endpoint(cfg->control_path, data_path, SOCKPATH_CONTROL, c.control_path,
	                      sizeof(c.control_path));
	if (r >= 0)
		r = sockpath_endpoint(cfg->events_path, data_path, SOCKPATH_EVENTS, c.events_path,
		                      sizeof(c.events_path));
	if (r < 0)
		return r;
	*ret = c;
	return 0;
}

static void
print_origin(const struct conf *cfg, enum conf_key k, const char *dflt, FILE *f)
{
	switch (cfg->origin[k]) {
	case CONF_FROM_DEFAULT:
		fprintf(f, "  # %s\n", dflt ? dflt : "default");
		break;
	case CONF_FROM_FILE:
		fprintf(f, "  # %s:%u\n", cfg->file, cfg->line[k]);
		break;
	case CONF_FROM_ENV:
		fprintf(f, "  # environment ($%s)\n",
		        k == CONF_SOCKET ? "SENDFILED_SOCKET" : "SENDFILED_LOG_LEVEL");
		break;
	case CONF_FROM_CMDLINE:
		fprintf(f, "  # command line\n");
		break;
	}
}

/* The path @it stands for, as in effect: the control and events sockets are
 * beside the data socket unless given. May point into @ctl. */
static const char *
path_value(const struct conf_item *it, const struct conf *cfg, struct ctl_config *ctl)
{
	bool control = it->offset == offsetof(struct conf, control_path);

	if (it->offset == offsetof(struct conf, srv.socket_path))
		return cfg->srv.socket_path;
	if (conf_ctl_config(cfg, cfg->srv.socket_path, ctl) == 0)
		return control ? ctl->control_path : ctl->events_path;
	return CFIELD(cfg, it, char);
}

static void
print_path_item(const struct conf_item *it, const struct conf *cfg, FILE *f, const char **dflt)
{
	struct ctl_config ctl;

	fprintf(f, "%s", path_value(it, cfg, &ctl));
	if (it->offset != offsetof(struct conf, srv.socket_path))
		*dflt = "default: beside the data socket";
}

static void
print_mode_item(const struct conf_item *it, const struct conf *cfg, FILE *f, const char **dflt)
{
	if (it->offset != offsetof(struct conf, control_mode)) {
		fprintf(f, "%04o", *CFIELD(cfg, it, unsigned));
		return;
	}
	fprintf(f, "%04o", conf_control_mode(cfg));
	*dflt = cfg->has_socket_group ? "default: 0660 with a socket_group"
	                              : "default: 0600 without a socket_group";
}

static void
print_group_item(const struct conf_item *it, const struct conf *cfg, FILE *f, const char **dflt)
{
	(void)it;
	if (cfg->has_socket_group)
		fprintf(f, "%u", (unsigned)cfg->socket_group);
	else
		*dflt = "default: none";
}

static void
print_uint_item(const struct conf_item *it, const struct conf *cfg, FILE *f, const char **dflt)
{
	(void)dflt;
	fprintf(f, "%u", *CFIELD(cfg, it, unsigned));
}

static void
print_size_item(const struct conf_item *it, const struct conf *cfg, FILE *f, const char **dflt)
{
	size_t v = *CFIELD(cfg, it, size_t);

	(void)dflt;
	if (v % (1u << 30) == 0)
		fprintf(f, "%zuG", v >> 30);
	else if (v % (1u << 20) == 0)
		fprintf(f, "%zuM", v >> 20);
	else if (v % (1u << 10) == 0)
		fprintf(f, "%zuK", v >> 10);
	else
		fprintf(f, "%zu", v);
}

static void
print_ids_item(const struct conf_item *it, const struct conf *cfg, FILE *f, const char **dflt)
{
	const unsigned *ids = CFIELD(cfg, it, unsigned);
	unsigned n = *(const unsigned *)((const char *)cfg + it->count_offset);

	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%s%u", i ? "," : "", ids[i]);
	if (it->offset == offsetof(struct conf, srv.allow_uids) && !cfg->srv.n_allow_uids &&
	    !cfg->srv.n_allow_gids)
		*dflt = "default: anyone who can open the socket";
}

static void
print_log_level_item(const struct conf_item *it, const struct conf *cfg, FILE *f, const char **dflt)
{
	(void)it;
	(void)dflt;
	fprintf(f, "%s", log_level_name(cfg->log_level));
}

void
conf_print(const struct conf *cfg, FILE *f)
{
	for (int k = 0; k < CONF_N_KEYS; k++) {
		const char *dflt = NULL;
		struct ctl_config ctl;

		fprintf(f, "%s =", items[k].name);
		/* A '#' after a blank starts a comment: a path that begins
		 * with one follows the '=' directly. */
		if (items[k].print != print_path_item || path_value(&items[k], cfg, &ctl)[0] != '#')
			fputc(' ', f);
		items[k].print(&items[k], cfg, f, &dflt);
		print_origin(cfg, (enum conf_key)k, dflt, f);
	}
}
