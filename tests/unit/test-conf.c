/*
 * test-conf.c - the configuration parser (daemon/conf.c): syntax, every
 * value type, error messages with their line numbers, precedence of the
 * environment, and that the printed effective configuration parses back to
 * the same settings.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "helpers.h"
#include "log.h"

/* ---- helpers ------------------------------------------------------------ */

struct errors {
	int n;
	char msg[16][1024];
};

static void
collect(void *userdata, const char *msg)
{
	struct errors *e = userdata;

	if (e->n < 16)
		snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s", msg);
	e->n++;
}

/* Parse @text as the file "test.conf" over the defaults. Return: the
 * parser's result; errors in *errs. */
static int
parse(struct conf *cfg, const char *text, struct errors *errs)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int r;

	assert_non_null(f);
	memset(errs, 0, sizeof(*errs));
	r = conf_parse(cfg, f, "test.conf", collect, errs);
	fclose(f);
	return r;
}

static void
assert_one_error(const struct errors *e, const char *expect)
{
	if (e->n != 1 || !strstr(e->msg[0], expect))
		fail_msg("expected one error containing \"%s\", got %d: \"%s\"", expect, e->n,
		         e->n ? e->msg[0] : "");
}

/* The descriptor check of every unit test, and none of the environment
 * variables the settings read. */
static int
setup(void **state)
{
	unsetenv("SENDFILED_SOCKET");
	unsetenv("SENDFILED_LOG_LEVEL");
	unsetenv("XDG_RUNTIME_DIR");
	return fdcheck_setup(state);
}

/* ---- tests -------------------------------------------------------------- */

static void
test_defaults(void **state)
{
	struct conf cfg;

	conf_defaults(&cfg);
	assert_string_equal(cfg.srv.socket_path, "/run/sendfiled/sendfiled.sock");
	assert_int_equal(cfg.srv.socket_mode, 0660);
	assert_int_equal(cfg.srv.max_connections, 256);
	assert_int_equal(cfg.srv.max_in_flight_per_conn, 1024);
	assert_int_equal(cfg.srv.max_in_flight_per_uid, 4096);
	assert_int_equal(cfg.srv.chunk_size, 2 * 1024 * 1024);
	assert_int_equal(cfg.srv.drain_timeout_ms, 10000);
	assert_int_equal(cfg.workers, 8);
	/* One loop per CPU we may run on. */
	assert_int_equal(cfg.srv.loops, conf_online_cpus());
	assert_true(cfg.srv.loops >= 1 && cfg.srv.loops <= LOOPS_MAX);
	assert_int_equal(cfg.log_level, LOG_NOTICE);
	assert_false(cfg.has_socket_group);
	assert_int_equal(conf_control_mode(&cfg), 0600);
	for (int k = 0; k < CONF_N_KEYS; k++)
		assert_int_equal(cfg.origin[k], CONF_FROM_DEFAULT);

	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	conf_defaults(&cfg);
	assert_string_equal(cfg.srv.socket_path, "/run/user/1000/sendfiled/sendfiled.sock");
	unsetenv("XDG_RUNTIME_DIR");
}

static void
test_every_key(void **state)
{
	struct conf cfg;
	struct errors e;
	const char *text = "# a comment\n"
	                   "\n"
	                   "socket = /tmp/sfd test/s.sock\n"
	                   "  socket_mode=0640  \n"
	                   "socket_group = 0\n"
	                   "control_socket = /tmp/c.sock # where sendfilectl looks\n"
	                   "events_socket = /tmp/e.sock\n"
	                   "control_mode = 660\n"
	                   "max_connections = 7\n"
	                   "max_in_flight = 8\n"
	                   "max_in_flight_per_uid = 9\n"
	                   "chunk_size = 64K\n"
	                   "drain_timeout_ms = 0\n"
	                   "workers = 3\n"
	                   "loops = 5\n"
	                   "allow_uids = 0, 1000,1001\n"
	                   "allow_gids = root\n"
	                   "\tlog_level = debug\r\n";

	conf_defaults(&cfg);
	assert_int_equal(parse(&cfg, text, &e), 0);
	assert_int_equal(e.n, 0);
	/* Blanks inside a value are kept; around it they are not. */
	assert_string_equal(cfg.srv.socket_path, "/tmp/sfd test/s.sock");
	assert_int_equal(cfg.srv.socket_mode, 0640);
	assert_true(cfg.has_socket_group);
	assert_int_equal(cfg.socket_group, 0);
	assert_string_equal(cfg.control_path, "/tmp/c.sock");
	assert_string_equal(cfg.events_path, "/tmp/e.sock");
	assert_int_equal(conf_control_mode(&cfg), 0660);
	assert_int_equal(cfg.srv.max_connections, 7);
	assert_int_equal(cfg.srv.max_in_flight_per_conn, 8);
	assert_int_equal(cfg.srv.max_in_flight_per_uid, 9);
	assert_int_equal(cfg.srv.chunk_size, 65536);
	assert_int_equal(cfg.srv.drain_timeout_ms, 0);
	assert_int_equal(cfg.workers, 3);
	assert_int_equal(cfg.srv.loops, 5);
	assert_int_equal(cfg.srv.n_allow_uids, 3);
	assert_int_equal(cfg.srv.allow_uids[0], 0);
	assert_int_equal(cfg.srv.allow_uids[1], 1000);
	assert_int_equal(cfg.srv.allow_uids[2], 1001);
	assert_int_equal(cfg.srv.n_allow_gids, 1);
	assert_int_equal(cfg.srv.allow_gids[0], 0);
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_int_equal(cfg.origin[CONF_WORKERS], CONF_FROM_FILE);
	assert_int_equal(cfg.origin[CONF_LOOPS], CONF_FROM_FILE);
	assert_int_equal(cfg.line[CONF_SOCKET], 3);
	assert_int_equal(cfg.line[CONF_LOG_LEVEL], 18);
	assert_string_equal(cfg.file, "test.conf");
}

static void
test_sizes(void **state)
{
	static const struct {
		const char *text;
		size_t value; /* 0: an error */
	} cases[] = {
	        {"4096", 4096},
	        {"4K", 4096},
	        {"4k", 4096},
	        {"2M", 2u << 20},
	        {"1G", 1u << 30},
	        {"1048576", 1048576},
	        {"4095", 0},
	        {"3K", 0},
	        {"2G", 0},
	        {"1T", 0},
	        {"1KB", 0},
	        {"K", 0},
	        {"-4K", 0},
	        {"4 K", 0},
	        {"", 0},
	        {"0x1000", 0},
	        {"99999999999999G", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf cfg;
		char err[256] = "";
		int r;

		conf_defaults(&cfg);
		r = conf_set(&cfg, CONF_CHUNK_SIZE, cases[i].text, false, CONF_FROM_CMDLINE, 0, err,
		             sizeof(err));
		if (cases[i].value) {
			if (r != 0)
				fail_msg("'%s' refused: %s", cases[i].text, err);
			assert_int_equal(cfg.srv.chunk_size, cases[i].value);
			assert_int_equal(cfg.origin[CONF_CHUNK_SIZE], CONF_FROM_CMDLINE);
		} else {
			if (r != -EINVAL)
				fail_msg("'%s' accepted", cases[i].text);
			/* A refused value changes nothing. */
			assert_int_equal(cfg.srv.chunk_size, 2 * 1024 * 1024);
			assert_int_equal(cfg.origin[CONF_CHUNK_SIZE], CONF_FROM_DEFAULT);
			assert_non_null(strstr(err, "bad size"));
		}
	}
}

static void
test_bad_values(void **state)
{
	static const struct {
		const char *line;
		const char *error;
	} cases[] = {
	        {"socket =", "empty path"},
	        {"socket_mode = 0888", "bad file mode"},
	        {"socket_mode = 01777", "bad file mode"},
	        {"control_mode = rw", "bad file mode"},
	        {"socket_group = no-such-group-here", "no such group"},
	        {"max_connections = 0", "bad count"},
	        {"max_connections = -1", "bad count"},
	        {"max_in_flight = 4294967296", "bad count"},
	        {"max_in_flight_per_uid = 12 apples", "bad count"},
	        {"drain_timeout_ms = 1.5", "bad duration"},
	        {"workers = 0", "bad thread count"},
	        {"workers = 1025", "bad thread count"},
	        {"loops = 0", "bad loop count"},
	        {"loops = 65", "bad loop count"},
	        {"allow_uids = 1000,,1001", "empty item"},
	        {"allow_uids = no-such-user-here", "no such user"},
	        {"allow_gids = 4294967295", "bad group"},
	        {"log_level = loud", "bad log level"},
	        {"socket = /tmp/"
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
	         "path longer than 107 bytes"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf cfg, before;
		struct errors e;
		char text[512], expect[256];

		/* The bad line is line 3: the message must say so. */
		snprintf(text, sizeof(text), "# x\nworkers = 2\n%s\n", cases[i].line);
		conf_defaults(&cfg);
		assert_int_equal(parse(&cfg, text, &e), 1);
		snprintf(expect, sizeof(expect), "test.conf:3: ");
		assert_one_error(&e, expect);
		assert_one_error(&e, cases[i].error);
		/* The good line before it still counts. */
		assert_int_equal(cfg.workers, 2);
		conf_defaults(&before);
		assert_int_equal(cfg.srv.max_connections, before.srv.max_connections);
		assert_int_equal(cfg.srv.n_allow_uids, 0);
	}
}

static void
test_syntax_errors(void **state)
{
	struct conf cfg;
	struct errors e;

	conf_defaults(&cfg);
	assert_int_equal(parse(&cfg, "\n\nfrobnicate = 1\n", &e), 1);
	assert_one_error(&e, "test.conf:3: unknown key 'frobnicate'");

	/* The command-line spelling gets a hint. */
	assert_int_equal(parse(&cfg, "max-connections = 5\n", &e), 1);
	assert_one_error(&e, "test.conf:1: unknown key 'max-connections' (did you mean "
	                     "'max_connections'?)");
	/* Keys are case-sensitive. */
	assert_int_equal(parse(&cfg, "Workers = 5\n", &e), 1);
	assert_one_error(&e, "unknown key 'Workers'");
	assert_int_equal(cfg.workers, 8);

	assert_int_equal(parse(&cfg, "workers 5\n", &e), 1);
	assert_one_error(&e, "test.conf:1: expected 'key = value'");
	assert_int_equal(parse(&cfg, " = 5\n", &e), 1);
	assert_one_error(&e, "missing key");

	/* Every error is reported, each with its own line. */
	assert_int_equal(parse(&cfg, "a = 1\nworkers = 4\nb\nworkers = x\n", &e), 3);
	assert_int_equal(e.n, 3);
	assert_non_null(strstr(e.msg[0], "test.conf:1: unknown key 'a'"));
	assert_non_null(strstr(e.msg[1], "test.conf:3: expected"));
	assert_non_null(strstr(e.msg[2], "test.conf:4: workers: bad thread count 'x'"));
	assert_int_equal(cfg.workers, 4);
}

static void
test_comments_and_repeats(void **state)
{
	struct conf cfg;
	struct errors e;

	conf_defaults(&cfg);
	/* '#' starts a comment only at the start or after a blank. */
	assert_int_equal(parse(&cfg,
	                       "#workers = 5\n"
	                       "   # workers = 6\n"
	                       "socket = /tmp/a#b.sock\t# comment\n"
	                       "workers = 3#4\n",
	                       &e),
	                 1);
	assert_one_error(&e, "test.conf:4: workers: bad thread count '3#4'");
	assert_string_equal(cfg.srv.socket_path, "/tmp/a#b.sock");
	assert_int_equal(cfg.workers, 8);

	/* The last assignment wins; an empty list empties it. */
	assert_int_equal(parse(&cfg,
	                       "workers = 2\nworkers = 5\n"
	                       "allow_uids = 1,2\nallow_uids = 3\n"
	                       "allow_gids = 1\nallow_gids =\n"
	                       "socket_group = 0\nsocket_group =\n",
	                       &e),
	                 0);
	assert_int_equal(cfg.workers, 5);
	assert_int_equal(cfg.line[CONF_WORKERS], 2);
	assert_int_equal(cfg.srv.n_allow_uids, 1);
	assert_int_equal(cfg.srv.allow_uids[0], 3);
	assert_int_equal(cfg.srv.n_allow_gids, 0);
	assert_false(cfg.has_socket_group);
}

static void
test_allow_list_limits(void **state)
{
	char list[1024] = "", err[256];
	struct conf cfg;
	size_t len = 0;

	conf_defaults(&cfg);
	for (int i = 0; i < SERVER_MAX_ALLOW; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", i ? "," : "",
		                        2000 + i);
	assert_int_equal(
	        conf_set(&cfg, CONF_ALLOW_UIDS, list, false, CONF_FROM_FILE, 1, err, sizeof(err)),
	        0);
	assert_int_equal(cfg.srv.n_allow_uids, SERVER_MAX_ALLOW);
	/* One more is refused, and the list is left as it was. */
	assert_int_equal(
	        conf_set(&cfg, CONF_ALLOW_UIDS, "5", true, CONF_FROM_CMDLINE, 0, err, sizeof(err)),
	        -EINVAL);
	assert_non_null(strstr(err, "more than"));
	assert_int_equal(cfg.srv.n_allow_uids, SERVER_MAX_ALLOW);
	assert_int_equal(cfg.srv.allow_uids[SERVER_MAX_ALLOW - 1], 2000 + SERVER_MAX_ALLOW - 1);

	/* Repeated flags: the first replaces, the next ones add. */
	assert_int_equal(conf_set(&cfg, CONF_ALLOW_UIDS, "root", false, CONF_FROM_CMDLINE, 0, err,
	                          sizeof(err)),
	                 0);
	assert_int_equal(conf_set(&cfg, CONF_ALLOW_UIDS, "7,8", true, CONF_FROM_CMDLINE, 0, err,
	                          sizeof(err)),
	                 0);
	assert_int_equal(cfg.srv.n_allow_uids, 3);
	assert_int_equal(cfg.srv.allow_uids[0], 0);
	assert_int_equal(cfg.srv.allow_uids[2], 8);
}

static void
test_environment_overrides_file(void **state)
{
	struct conf cfg;
	struct errors e;

	conf_defaults(&cfg);
	assert_int_equal(parse(&cfg, "socket = /tmp/file.sock\nlog_level = err\nworkers = 2\n", &e),
	                 0);
	setenv("SENDFILED_SOCKET", "/tmp/env.sock", 1);
	setenv("SENDFILED_LOG_LEVEL", "info", 1);
	memset(&e, 0, sizeof(e));
	assert_int_equal(conf_apply_env(&cfg, collect, &e), 0);
	assert_string_equal(cfg.srv.socket_path, "/tmp/env.sock");
	assert_int_equal(cfg.origin[CONF_SOCKET], CONF_FROM_ENV);
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_int_equal(cfg.workers, 2);

	/* An empty variable is unset; a bad one is an error naming it. */
	setenv("SENDFILED_SOCKET", "", 1);
	setenv("SENDFILED_LOG_LEVEL", "chatty", 1);
	conf_defaults(&cfg);
	memset(&e, 0, sizeof(e));
	assert_int_equal(conf_apply_env(&cfg, collect, &e), 1);
	assert_one_error(&e, "$SENDFILED_LOG_LEVEL: bad log level 'chatty'");
	assert_string_equal(cfg.srv.socket_path, "/run/sendfiled/sendfiled.sock");
	unsetenv("SENDFILED_SOCKET");
	unsetenv("SENDFILED_LOG_LEVEL");
}

static void
test_load(void **state)
{
	char path[] = "/tmp/sfd-test-conf-XXXXXX";
	struct conf cfg;
	struct errors e = {0};
	int fd;

	conf_defaults(&cfg);
	/* A missing default file is no error; a missing explicit one is. */
	assert_int_equal(conf_load(&cfg, "/nonexistent/sendfiled.conf", false, collect, &e),
	                 -ENOENT);
	assert_int_equal(e.n, 0);
	assert_int_equal(conf_load(&cfg, "/nonexistent/sendfiled.conf", true, collect, &e), 1);
	assert_one_error(&e, "/nonexistent/sendfiled.conf: cannot open");
	memset(&e, 0, sizeof(e));
	assert_int_equal(conf_load(&cfg, "/tmp", true, collect, &e), 1);
	assert_one_error(&e, "not a regular file");

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "workers = 6\nbogus\n", 18), 18);
	close(fd);
	memset(&e, 0, sizeof(e));
	assert_int_equal(conf_load(&cfg, path, true, collect, &e), 1);
	assert_int_equal(cfg.workers, 6);
	assert_string_equal(cfg.file, path);
	assert_non_null(strstr(e.msg[0], path));
	assert_non_null(strstr(e.msg[0], ":2: expected"));
	unlink(path);
}

static void
test_control_paths(void **state)
{
	struct ctl_config cc;
	struct conf cfg;
	char err[256];

	conf_defaults(&cfg);
	assert_int_equal(conf_ctl_config(&cfg, "/run/x/data.sock", &cc), 0);
	assert_string_equal(cc.control_path, "/run/x/data.control.sock");
	assert_string_equal(cc.events_path, "/run/x/data.events.sock");
	assert_int_equal(cc.mode, 0600);
	/* A socket group opens the control plane to the group too... */
	assert_int_equal(conf_set(&cfg, CONF_SOCKET_GROUP, "root", false, CONF_FROM_FILE, 1, err,
	                          sizeof(err)),
	                 0);
	assert_int_equal(conf_ctl_config(&cfg, "/run/x/data.sock", &cc), 0);
	assert_int_equal(cc.mode, 0660);
	/* ...unless control_mode says otherwise. */
	assert_int_equal(conf_set(&cfg, CONF_CONTROL_MODE, "0600", false, CONF_FROM_FILE, 2, err,
	                          sizeof(err)),
	                 0);
	assert_int_equal(conf_set(&cfg, CONF_CONTROL_SOCKET, "/tmp/ctl", false, CONF_FROM_FILE, 3,
	                          err, sizeof(err)),
	                 0);
	assert_int_equal(conf_ctl_config(&cfg, "/run/x/data.sock", &cc), 0);
	assert_int_equal(cc.mode, 0600);
	assert_string_equal(cc.control_path, "/tmp/ctl");
	assert_string_equal(cc.events_path, "/run/x/data.events.sock");
	assert_int_equal(
	        conf_ctl_config(&cfg,
	                        "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/s",
	                        &cc),
	        -ENAMETOOLONG);
}

/* What --check-config prints is a configuration file that gives back the
 * same settings. */
static void
test_print_parses_back(void **state)
{
	struct conf a, b;
	struct errors e;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	conf_defaults(&a);
	assert_int_equal(parse(&a,
	                       "socket = /tmp/p.sock\nsocket_mode = 0604\nsocket_group = 0\n"
	                       "max_connections = 11\nmax_in_flight = 12\n"
	                       "max_in_flight_per_uid = 13\nchunk_size = 12345\n"
	                       "drain_timeout_ms = 14\nworkers = 15\nallow_uids = 0,16\n"
	                       "allow_gids = 17\nlog_level = warning\n",
	                       &e),
	                 0);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	conf_print(&a, f);
	fclose(f);
	assert_non_null(strstr(buf, "workers = 15  # test.conf:9\n"));
	assert_non_null(strstr(buf, "max_connections = 11  # test.conf:4\n"));
	assert_non_null(strstr(buf, "control_socket = /tmp/p.control.sock  # default"));

	conf_defaults(&b);
	assert_int_equal(parse(&b, buf, &e), 0);
	free(buf);
	assert_string_equal(b.srv.socket_path, a.srv.socket_path);
	assert_int_equal(b.srv.socket_mode, a.srv.socket_mode);
	assert_int_equal(b.has_socket_group, a.has_socket_group);
	assert_int_equal(b.socket_group, a.socket_group);
	assert_int_equal(conf_control_mode(&b), conf_control_mode(&a));
	assert_int_equal(b.srv.max_connections, 11);
	assert_int_equal(b.srv.max_in_flight_per_conn, 12);
	assert_int_equal(b.srv.max_in_flight_per_uid, 13);
	assert_int_equal(b.srv.chunk_size, 12345);
	assert_int_equal(b.srv.drain_timeout_ms, 14);
	assert_int_equal(b.workers, 15);
	assert_int_equal(b.srv.n_allow_uids, 2);
	assert_int_equal(b.srv.allow_uids[1], 16);
	assert_int_equal(b.srv.n_allow_gids, 1);
	assert_int_equal(b.srv.allow_gids[0], 17);
	assert_int_equal(b.log_level, LOG_WARNING);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_defaults, setup, fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_every_key, setup, fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_sizes, setup, fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_bad_values, setup, fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_comments_and_repeats, setup, fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_allow_list_limits, setup, fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_environment_overrides_file, setup,
	                                        fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_load, setup, fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_control_paths, setup, fdcheck_teardown),
	        cmocka_unit_test_setup_teardown(test_print_parses_back, setup, fdcheck_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
