/*
 * conf.c - the daemon's settings: defaults, file, environment, validation.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "log.h"
#include "macro.h"
#include "sockpath.h"
#include "xfer.h"

static const char *const key_names[CONF_N_KEYS] = {
        [CONF_SOCKET] = "socket",
        [CONF_SOCKET_MODE] = "socket_mode",
        [CONF_SOCKET_GROUP] = "socket_group",
        [CONF_CONTROL_SOCKET] = "control_socket",
        [CONF_EVENTS_SOCKET] = "events_socket",
        [CONF_CONTROL_MODE] = "control_mode",
        [CONF_CONTROL_PROBE_MS] = "control_probe_ms",
        [CONF_MAX_CONNECTIONS] = "max_connections",
        [CONF_MAX_IN_FLIGHT] = "max_in_flight",
        [CONF_MAX_IN_FLIGHT_PER_UID] = "max_in_flight_per_uid",
        [CONF_CHUNK_SIZE] = "chunk_size",
        [CONF_DRAIN_TIMEOUT_MS] = "drain_timeout_ms",
        [CONF_WORKERS] = "workers",
        [CONF_ALLOW_UIDS] = "allow_uids",
        [CONF_ALLOW_GIDS] = "allow_gids",
        [CONF_LOG_LEVEL] = "log_level",
};

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
	cfg->log_level = LOG_NOTICE;
}

int
conf_key_from_name(const char *name)
{
	for (int k = 0; k < CONF_N_KEYS; k++)
		if (strcmp(name, key_names[k]) == 0)
			return k;
	return -1;
}

const char *
conf_key_name(enum conf_key key)
{
	return (unsigned)key < CONF_N_KEYS ? key_names[key] : "?";
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

/* A byte count with an optional binary suffix: 512K, 2M, 1G. */
static int
parse_size(const char *s, unsigned long long *ret)
{
	unsigned long long v, mult = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1ull << 10;
		break;
	case 'm':
	case 'M':
		mult = 1ull << 20;
		break;
	case 'g':
	case 'G':
		mult = 1ull << 30;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (v > ULLONG_MAX / mult)
		return -EINVAL;
	*ret = v * mult;
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

int
conf_set(struct conf *cfg, enum conf_key key, const char *value, bool append,
         enum conf_origin origin, unsigned line, char *err, size_t errsize)
{
	struct server_config *s = &cfg->srv;
	unsigned long long v;
	unsigned u, lst[SERVER_MAX_ALLOW], n;
	int r = 0;

	switch (key) {
	case CONF_SOCKET:
		r = set_path(s->socket_path, sizeof(s->socket_path), value, false, err, errsize);
		break;
	case CONF_CONTROL_SOCKET:
		r = set_path(cfg->control_path, sizeof(cfg->control_path), value, true, err,
		             errsize);
		break;
	case CONF_EVENTS_SOCKET:
		r = set_path(cfg->events_path, sizeof(cfg->events_path), value, true, err, errsize);
		break;
	case CONF_SOCKET_MODE:
	case CONF_CONTROL_MODE:
		r = parse_mode(value, &u);
		if (r < 0)
			snprintf(err, errsize, "bad file mode '%s' (octal, 0000..0777)", value);
		else if (key == CONF_SOCKET_MODE)
			s->socket_mode = u;
		else
			cfg->control_mode = u;
		break;
	case CONF_SOCKET_GROUP:
		if (!*value) {
			cfg->has_socket_group = false;
			break;
		}
		r = resolve_id(value, true, &u, err, errsize);
		if (r == 0) {
			cfg->has_socket_group = true;
			cfg->socket_group = (gid_t)u;
		}
		break;
	case CONF_MAX_CONNECTIONS:
	case CONF_MAX_IN_FLIGHT:
	case CONF_MAX_IN_FLIGHT_PER_UID:
		r = parse_uint(value, 1, UINT_MAX, &v);
		if (r < 0)
			snprintf(err, errsize, "bad count '%s' (1..%u)", value, UINT_MAX);
		else if (key == CONF_MAX_CONNECTIONS)
			s->max_connections = (unsigned)v;
		else if (key == CONF_MAX_IN_FLIGHT)
			s->max_in_flight_per_conn = (unsigned)v;
		else
			s->max_in_flight_per_uid = (unsigned)v;
		break;
	case CONF_CONTROL_PROBE_MS:
		r = parse_uint(value, 0, UINT_MAX, &v);
		if (r < 0)
			snprintf(err, errsize, "bad period '%s' (milliseconds, 0..%u)", value,
			         UINT_MAX);
		else
			cfg->control_probe_ms = (unsigned)v;
		break;
	case CONF_DRAIN_TIMEOUT_MS:
		r = parse_uint(value, 0, UINT_MAX, &v);
		if (r < 0)
			snprintf(err, errsize, "bad duration '%s' (milliseconds, 0..%u)", value,
			         UINT_MAX);
		else
			s->drain_timeout_ms = (unsigned)v;
		break;
	case CONF_WORKERS:
		r = parse_uint(value, 1, WORKERS_MAX, &v);
		if (r < 0)
			snprintf(err, errsize, "bad thread count '%s' (1..%u)", value, WORKERS_MAX);
		else
			cfg->workers = (unsigned)v;
		break;
	case CONF_CHUNK_SIZE:
		r = parse_size(value, &v);
		if (r == 0 && (v < CHUNK_MIN || v > XFER_SYSCALL_MAX))
			r = -EINVAL;
		if (r < 0)
			snprintf(err, errsize, "bad size '%s' (%u..%u bytes; K, M, G suffixes)",
			         value, CHUNK_MIN, XFER_SYSCALL_MAX);
		else
			s->chunk_size = (size_t)v;
		break;
	case CONF_ALLOW_UIDS:
		for (unsigned i = 0; i < s->n_allow_uids; i++)
			lst[i] = (unsigned)s->allow_uids[i];
		n = s->n_allow_uids;
		r = parse_id_list(value, false, append, lst, &n, err, errsize);
		if (r == 0) {
			for (unsigned i = 0; i < n; i++)
				s->allow_uids[i] = (uid_t)lst[i];
			s->n_allow_uids = n;
		}
		break;
	case CONF_ALLOW_GIDS:
		for (unsigned i = 0; i < s->n_allow_gids; i++)
			lst[i] = (unsigned)s->allow_gids[i];
		n = s->n_allow_gids;
		r = parse_id_list(value, true, append, lst, &n, err, errsize);
		if (r == 0) {
			for (unsigned i = 0; i < n; i++)
				s->allow_gids[i] = (gid_t)lst[i];
			s->n_allow_gids = n;
		}
		break;
	case CONF_LOG_LEVEL:
		r = log_parse_level(value);
		if (r < 0) {
			snprintf(err, errsize,
			         "bad log level '%s' (err, warning, notice, info, debug, or 0..7)",
			         value);
			r = -EINVAL;
		} else {
			cfg->log_level = r;
			r = 0;
		}
		break;
	default:
		snprintf(err, errsize, "unknown key");
		return -EINVAL;
	}
	if (r < 0)
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
	if (cfg->control_path[0])
		r = snprintf(c.control_path, sizeof(c.control_path), "%s", cfg->control_path);
	else
		r = sockpath_sibling(data_path, "control.sock", c.control_path,
		                     sizeof(c.control_path));
	if (r < 0 || (size_t)r >= sizeof(c.control_path))
		return -ENAMETOOLONG;
	if (cfg->events_path[0])
		r = snprintf(c.events_path, sizeof(c.events_path), "%s", cfg->events_path);
	else
		r = sockpath_sibling(data_path, "events.sock", c.events_path,
		                     sizeof(c.events_path));
	if (r < 0 || (size_t)r >= sizeof(c.events_path))
		return -ENAMETOOLONG;
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

static void
print_size(size_t v, FILE *f)
{
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
print_ids(const unsigned *ids, unsigned n, FILE *f)
{
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%s%u", i ? "," : "", ids[i]);
}

void
conf_print(const struct conf *cfg, FILE *f)
{
	const struct server_config *s = &cfg->srv;
	struct ctl_config ctl;
	unsigned ids[SERVER_MAX_ALLOW];
	bool have_ctl = conf_ctl_config(cfg, s->socket_path, &ctl) == 0;

	for (int k = 0; k < CONF_N_KEYS; k++) {
		const char *dflt = NULL;

		fprintf(f, "%s = ", key_names[k]);
		switch ((enum conf_key)k) {
		case CONF_SOCKET:
			fprintf(f, "%s", s->socket_path);
			break;
		case CONF_SOCKET_MODE:
			fprintf(f, "%04o", s->socket_mode);
			break;
		case CONF_SOCKET_GROUP:
			if (cfg->has_socket_group)
				fprintf(f, "%u", (unsigned)cfg->socket_group);
			else
				dflt = "default: none";
			break;
		case CONF_CONTROL_SOCKET:
			fprintf(f, "%s", have_ctl ? ctl.control_path : cfg->control_path);
			dflt = "default: beside the data socket";
			break;
		case CONF_EVENTS_SOCKET:
			fprintf(f, "%s", have_ctl ? ctl.events_path : cfg->events_path);
			dflt = "default: beside the data socket";
			break;
		case CONF_CONTROL_MODE:
			fprintf(f, "%04o", conf_control_mode(cfg));
			dflt = cfg->has_socket_group ? "default: 0660 with a socket_group"
			                             : "default: 0600 without a socket_group";
			break;
		case CONF_CONTROL_PROBE_MS:
			fprintf(f, "%u", cfg->control_probe_ms);
			break;
		case CONF_MAX_CONNECTIONS:
			fprintf(f, "%u", s->max_connections);
			break;
		case CONF_MAX_IN_FLIGHT:
			fprintf(f, "%u", s->max_in_flight_per_conn);
			break;
		case CONF_MAX_IN_FLIGHT_PER_UID:
			fprintf(f, "%u", s->max_in_flight_per_uid);
			break;
		case CONF_CHUNK_SIZE:
			print_size(s->chunk_size, f);
			break;
		case CONF_DRAIN_TIMEOUT_MS:
			fprintf(f, "%u", s->drain_timeout_ms);
			break;
		case CONF_WORKERS:
			fprintf(f, "%u", cfg->workers);
			break;
		case CONF_ALLOW_UIDS:
			for (unsigned i = 0; i < s->n_allow_uids; i++)
				ids[i] = (unsigned)s->allow_uids[i];
			print_ids(ids, s->n_allow_uids, f);
			if (!s->n_allow_uids && !s->n_allow_gids)
				dflt = "default: anyone who can open the socket";
			break;
		case CONF_ALLOW_GIDS:
			for (unsigned i = 0; i < s->n_allow_gids; i++)
				ids[i] = (unsigned)s->allow_gids[i];
			print_ids(ids, s->n_allow_gids, f);
			break;
		case CONF_LOG_LEVEL:
			fprintf(f, "%s", log_level_name(cfg->log_level));
			break;
		case CONF_N_KEYS:
			break;
		}
		print_origin(cfg, (enum conf_key)k, dflt, f);
	}
}
