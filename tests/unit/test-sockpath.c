/*
 * test-sockpath.c - default socket paths: environment precedence, the
 * sibling sockets, and buffers too small for the result.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sockpath.h"
#include "helpers.h"

static void
env(const char *sock, const char *xdg)
{
	if (sock)
		assert_int_equal(setenv("SENDFILED_SOCKET", sock, 1), 0);
	else
		assert_int_equal(unsetenv("SENDFILED_SOCKET"), 0);
	if (xdg)
		assert_int_equal(setenv("XDG_RUNTIME_DIR", xdg, 1), 0);
	else
		assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);
}

static void
check_default(const char *want)
{
	char buf[256];

	memset(buf, 'x', sizeof(buf));
	assert_int_equal(sockpath_default(buf, sizeof(buf)), strlen(want));
	assert_string_equal(buf, want);
}

static void
test_default_precedence(void **state)
{
	env("/srv/custom.sock", "/run/user/1000");
	check_default("/srv/custom.sock");

	/* A relative path is taken as given. */
	env("rel/s.sock", NULL);
	check_default("rel/s.sock");

	env(NULL, "/run/user/1000");
	check_default("/run/user/1000/sendfiled/sendfiled.sock");

	/* Empty variables count as unset. */
	env("", "/run/user/42");
	check_default("/run/user/42/sendfiled/sendfiled.sock");
	env("", "");
	check_default("/run/sendfiled/sendfiled.sock");

	env(NULL, NULL);
	check_default("/run/sendfiled/sendfiled.sock");
}

static void
test_default_too_long(void **state)
{
	char buf[64], big[300];
	const char *want = "/run/user/1000/sendfiled/sendfiled.sock";
	size_t len = strlen(want);

	env(NULL, "/run/user/1000");
	/* Room for the path and its terminator: fits exactly. */
	assert_int_equal(sockpath_default(buf, len + 1), len);
	assert_string_equal(buf, want);
	assert_int_equal(sockpath_default(buf, len), -ENAMETOOLONG);
	assert_int_equal(sockpath_default(buf, 1), -ENAMETOOLONG);

	memset(big, 'd', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	env(big, NULL);
	assert_int_equal(sockpath_default(buf, sizeof(buf)), -ENAMETOOLONG);
	env(NULL, big);
	assert_int_equal(sockpath_default(buf, sizeof(buf)), -ENAMETOOLONG);
	env(NULL, NULL);
	assert_int_equal(sockpath_default(buf, 10), -ENAMETOOLONG);
}

static void
check_sibling(const char *path, const char *name, const char *want)
{
	char buf[256];

	assert_int_equal(sockpath_sibling(path, name, buf, sizeof(buf)), strlen(want));
	assert_string_equal(buf, want);
}

static void
test_sibling(void **state)
{
	check_sibling("/run/sendfiled/sendfiled.sock", "control.sock",
	              "/run/sendfiled/control.sock");
	check_sibling("/run/user/1000/sendfiled/sendfiled.sock", "events.sock",
	              "/run/user/1000/sendfiled/events.sock");
	check_sibling("/data.sock", "control.sock", "/control.sock");
	check_sibling("data.sock", "control.sock", "./control.sock");
	check_sibling("a/b/data.sock", "control.sock", "a/b/control.sock");
	check_sibling("dir/", "control.sock", "dir/control.sock");
}

static void
test_sibling_too_long(void **state)
{
	const char *path = "/run/sendfiled/sendfiled.sock";
	const char *want = "/run/sendfiled/control.sock";
	size_t len = strlen(want);
	char buf[64];

	assert_int_equal(sockpath_sibling(path, "control.sock", buf, len + 1), len);
	assert_string_equal(buf, want);
	assert_int_equal(sockpath_sibling(path, "control.sock", buf, len), -ENAMETOOLONG);
	assert_int_equal(sockpath_sibling("x.sock", "control.sock", buf, 5), -ENAMETOOLONG);
}

static void
check_endpoint(const char *data, const char *name, const char *want)
{
	char buf[SOCKPATH_MAX];

	assert_int_equal(sockpath_endpoint(NULL, data, name, buf, sizeof(buf)), strlen(want));
	assert_string_equal(buf, want);
}

/* The one rule for the control-plane sockets: given, else named after the
 * data socket, beside it, else nowhere. */
static void
test_endpoint(void **state)
{
	char buf[SOCKPATH_MAX];

	(void)state;
	assert_int_equal(sockpath_endpoint("/x/ctl.sock", "/run/s/d.sock", SOCKPATH_CONTROL, buf,
	                                   sizeof(buf)),
	                 strlen("/x/ctl.sock"));
	assert_string_equal(buf, "/x/ctl.sock");
	assert_int_equal(sockpath_endpoint("", "/run/s/d.sock", SOCKPATH_EVENTS, buf, sizeof(buf)),
	                 strlen("/run/s/d.events.sock"));
	assert_string_equal(buf, "/run/s/d.events.sock");
	assert_int_equal(
	        sockpath_endpoint(NULL, "/run/s/d.sock", SOCKPATH_CONTROL, buf, sizeof(buf)),
	        strlen("/run/s/d.control.sock"));
	assert_string_equal(buf, "/run/s/d.control.sock");
	assert_int_equal(sockpath_endpoint(NULL, "", SOCKPATH_CONTROL, buf, sizeof(buf)),
	                 -EDESTADDRREQ);
	/* Two data sockets in one directory: two control planes. */
	check_endpoint("/run/s/a.sock", SOCKPATH_CONTROL, "/run/s/a.control.sock");
	check_endpoint("/run/s/b.sock", SOCKPATH_CONTROL, "/run/s/b.control.sock");
	check_endpoint("/run/s/b.sock", SOCKPATH_EVENTS, "/run/s/b.events.sock");
	check_endpoint("/run/s/plain", SOCKPATH_EVENTS, "/run/s/plain.events.sock");
	check_endpoint("rel.sock", SOCKPATH_CONTROL, "rel.control.sock");
	check_endpoint("/.sock", SOCKPATH_CONTROL, "/.sock.control.sock");
	/* The default name keeps the historic names. */
	check_endpoint("/run/sendfiled/sendfiled.sock", SOCKPATH_CONTROL,
	               "/run/sendfiled/control.sock");
	check_endpoint("/run/user/1/sendfiled/sendfiled.sock", SOCKPATH_EVENTS,
	               "/run/user/1/sendfiled/events.sock");
	assert_int_equal(sockpath_endpoint(NULL, "/run/s/a.sock", SOCKPATH_CONTROL, buf,
	                                   strlen("/run/s/a.control.sock")),
	                 -ENAMETOOLONG);
	assert_int_equal(
	        sockpath_endpoint("/a/long/path.sock", "/d.sock", SOCKPATH_CONTROL, buf, 8),
	        -ENAMETOOLONG);
}

/* Clients prefer a per-user daemon only when its socket exists. */
static void
test_client_default(void **state)
{
	char dir[] = "/tmp/sfd-sockpath-XXXXXX", sub[64], sock[96], buf[256];
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/sendfiled", dir);
	snprintf(sock, sizeof(sock), "%s/sendfiled.sock", sub);

	env("/srv/custom.sock", dir);
	assert_int_equal(sockpath_client_default(buf, sizeof(buf)), strlen("/srv/custom.sock"));
	assert_string_equal(buf, "/srv/custom.sock");

	env(NULL, dir);
	assert_int_equal(sockpath_client_default(buf, sizeof(buf)),
	                 strlen("/run/sendfiled/sendfiled.sock"));
	assert_string_equal(buf, "/run/sendfiled/sendfiled.sock");

	assert_int_equal(mkdir(sub, 0700), 0);
	fd = open(sock, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sockpath_client_default(buf, sizeof(buf)), strlen(sock));
	assert_string_equal(buf, sock);

	unlink(sock);
	rmdir(sub);
	rmdir(dir);
	env(NULL, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_default_precedence),
	        fd_test(test_default_too_long),
	        fd_test(test_sibling),
	        fd_test(test_sibling_too_long),
	        fd_test(test_endpoint),
	        fd_test(test_client_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
